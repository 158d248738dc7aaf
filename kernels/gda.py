"""Grouped Differential Attention kernels: forward with the fused epilogue, and the backward.

Explained and tested in nbs/02_attention.ipynb (`gda_triton` is the autograd wrapper there). Layouts, all contiguous,
exactly the projection outputs after RoPE:
  q (B, T, G, g+1, D): signal queries j < g, the noise query at j = g
  k (B, T, G, 2, D):   K1 at index 0, K2 at index 1 (k_proj's interleaved heads)
  v (B, T, G, 2D):     [V1 || V2] (v_proj's interleaved heads)
  y, a (B, T, G, g, 2D); o2 (B, T, G, 2D) in the input dtype (fp32 math in the kernels); lse1, rstd, delta1 (B, G, g, T); lse2, delta2 (B, G, T)
Forward: one launch for the G noise heads (O_n and its log-sum-exp, once per group), then one launch for the signal
heads whose epilogue reads O_n and applies A = O_s - lambda O_n, the subln RMSNorm over 2D and the (1 - lambda_init)
scale. One program = one head x BM query positions (value width 2D). Max logits are the running softmax maxima.
Backward: a row-wise kernel (subln backward, dO of both maps, Delta, partial dw and dlambda); then, split (the default),
dV per group and key block over all g+1 maps and dK per group and key block (dK1 from the g signal maps and dK2 from
the noise map, one launch), or fused, dK/dV per group and key block (noise launch, then signal launch adding into dV);
dQ per head and query block (signal and noise heads, one launch). The key-block kernels work on the transposed map
P^T = exp2(K Q^T - lse), so that no register tile is transposed.
Grids are 1-D; `_lpt` maps a program to its block and head: heads in chunks, heaviest causal blocks first in a chunk.
Softmax is base 2 (log2(e) folded into the scale); lse is in log2 units. Masks: causal, in bounds, and with VARLEN
the key must not precede the query's document start. No make_block_ptr (gone in triton 3.9); every load is masked
(the interpreter does not catch out-of-bounds accesses)."""
import os
import triton
import triton.language as tl

_INTERPRET = os.environ.get('TRITON_INTERPRET', '0') not in ('', '0', 'false', 'False')
NEG: tl.constexpr = tl.constexpr(-1.0e30)   # finite: fully masked rows stay NaN-free
_ONLY = os.environ.get('MOTIF_GDA_ONLY_CONFIG')      # compile one config per process (parallel warm-up of the cache)


def _configs(kind):
    "Autotune candidates (BM query rows, BN keys, warps, stages)."
    if _INTERPRET: return [triton.Config({'BM': 16, 'BN': 16}, num_warps=4, num_stages=1)]
    # the fastest candidates of an H100 sweep (bench/gda_tune.py, figures/gda_tune.csv; dV and dK since their loops run
    # over maps x blocks: figures/gda_tune_dk_dv.csv); every swept layout passes the check against fp32 SDPA
    # (figures/gda_tune_check.csv)
    table = {'fwd': [(128, 64, 8, 3), (64, 64, 4, 2), (128, 32, 8, 3)],
             'dkdv': [(32, 64, 4, 2), (64, 128, 8, 2), (32, 128, 8, 2)],
             'dq': [(128, 64, 8, 2), (64, 32, 4, 2), (64, 64, 4, 3)],
             # split backward (the default): the sweep's fastest dV and dK layouts
             'dv': [(64, 128, 8, 3), (64, 128, 8, 2), (32, 128, 8, 3)],
             'dk': [(64, 128, 8, 2), (32, 128, 8, 3), (64, 64, 4, 3)]}[kind]
    cs = [triton.Config({'BM': bm, 'BN': bn}, num_warps=w, num_stages=s) for bm, bn, w, s in table]
    if _ONLY is not None: cs = [cs[min(int(_ONLY), len(cs) - 1)]]
    return cs


@triton.jit
def _fwd_inner(acc, l, m, q, kb, vb, lo, hi, ts, dst, qk_scale, sk_t,
               D: tl.constexpr, BN: tl.constexpr, MASK: tl.constexpr, VARLEN: tl.constexpr):
    dc = tl.arange(0, D); vc = tl.arange(0, 2 * D)
    for n0 in range(lo, hi, BN):
        kn = n0 + tl.arange(0, BN)
        kok = kn < hi
        koff = kn[:, None].to(tl.int64) * sk_t
        k = tl.load(kb + koff + dc[None, :], mask=kok[:, None], other=0.)
        v = tl.load(vb + koff + vc[None, :], mask=kok[:, None], other=0.)
        s = tl.dot(q, tl.trans(k)) * qk_scale
        if MASK:
            mk = (kn[None, :] <= ts[:, None]) & kok[None, :]
            if VARLEN:
                mk = mk & (kn[None, :] >= dst[:, None])
            s = tl.where(mk, s, NEG)
        mn = tl.maximum(m, tl.max(s, 1))
        p = tl.exp2(s - mn[:, None])
        al = tl.exp2(m - mn)
        l = l * al + tl.sum(p, 1)
        acc = acc * al[:, None] + tl.dot(p.to(v.dtype), v)
        m = mn
    return acc, l, m


@triton.jit
def _lpt(T, BLK: tl.constexpr, LAST_FIRST: tl.constexpr, CH):
    """Program of a 1-D grid -> (block, head). Heads go in chunks of CH; within a chunk, every head's block with the most
    causal work (the last query block, or the first key block) first, then the next block. CH = 1 is head-major (one
    head's blocks, then the next head's); CH = all heads is longest-first over the whole launch. Small chunks keep what
    the chunk's programs share (K/V, or Q/dO) in L2; longest-first keeps long programs away from the end of the launch."""
    nb = tl.cdiv(T, BLK)
    nh = tl.num_programs(0) // nb
    pid = tl.program_id(0)
    c0 = (pid // (CH * nb)) * CH
    ch = tl.minimum(CH, nh - c0)
    r = pid - c0 * nb
    blk = r // ch
    if LAST_FIRST:
        blk = nb - 1 - blk
    return blk, c0 + r % ch


@triton.jit
def _head_block(T, G, g, CH, D: tl.constexpr, BM: tl.constexpr, SIGNAL: tl.constexpr):
    "Per-head kernels' program: block, head, batch x group, head in group, key column, batch, group, positions, mask."
    pid_m, pid_h = _lpt(T, BM, True, CH)
    if SIGNAL:
        bg = pid_h // g; j = pid_h % g; kcol = 0
    else:
        bg = pid_h; j = g; kcol = D
    ts = pid_m * BM + tl.arange(0, BM)
    return pid_m, pid_h, bg, j, kcol, bg // G, bg % G, ts, ts < T


@triton.autotune(configs=_configs('fwd'), key=['T', 'D', 'VARLEN', 'SIGNAL'])
@triton.jit
def gda_fwd_kernel(Q, K, V, W, LAM, Y, A, O2, LSE1, LSE2, RSTD, ML, DOC_START,
                   T, G, g, n_mblocks, qk_scale, eps, out_scale, CH,
                   D: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, VARLEN: tl.constexpr, SIGNAL: tl.constexpr):
    "One head x BM positions. SIGNAL=False: the noise heads (write O_n, lse2). SIGNAL=True: signal heads + epilogue."
    pid_m, pid_h, bg, j, kcol, b, grp, ts, ok = _head_block(T, G, g, CH, D, BM, SIGNAL)
    t0 = pid_m * BM
    dc = tl.arange(0, D); vc = tl.arange(0, 2 * D)
    sq_t = G * (g + 1) * D
    sk_t = G * 2 * D
    q = tl.load(Q + b.to(tl.int64) * T * sq_t + ts[:, None].to(tl.int64) * sq_t + (grp * (g + 1) + j) * D + dc[None, :],
                mask=ok[:, None], other=0.)
    kb = K + b.to(tl.int64) * T * sk_t + grp * 2 * D + kcol
    vb = V + b.to(tl.int64) * T * sk_t + grp * 2 * D
    hi = tl.minimum(t0 + BM, T)
    m = tl.full([BM], NEG, tl.float32)
    l = tl.zeros([BM], tl.float32)
    acc = tl.zeros([BM, 2 * D], tl.float32)
    if VARLEN:
        lo = tl.load(DOC_START + t0)
        dst = tl.load(DOC_START + ts, mask=ok, other=0)
        acc, l, m = _fwd_inner(acc, l, m, q, kb, vb, lo, hi, ts, dst, qk_scale, sk_t, D, BN, True, True)
    else:
        n_full = (t0 // BN) * BN          # key tiles entirely before the block: no mask
        acc, l, m = _fwd_inner(acc, l, m, q, kb, vb, 0, n_full, ts, ts, qk_scale, sk_t, D, BN, False, False)
        acc, l, m = _fwd_inner(acc, l, m, q, kb, vb, n_full, hi, ts, ts, qk_scale, sk_t, D, BN, True, False)
    l = tl.where(l > 0, l, 1.)
    o = acc / l[:, None]
    lse = m + tl.log2(l)
    o2off = (b.to(tl.int64) * T + ts[:, None]) * G * 2 * D + grp * 2 * D + vc[None, :]
    # max logits for free: the running maxima are the row maxima of the visible scaled logits
    tl.store(ML + pid_h.to(tl.int64) * n_mblocks + pid_m, tl.max(tl.where(ok, m, NEG), 0))
    if SIGNAL:
        on = tl.load(O2 + o2off, mask=ok[:, None], other=0.).to(tl.float32)
        lam = tl.load(LAM)
        a = o - lam * on
        rstd = 1.0 / tl.sqrt(tl.sum(a * a, 1) / (2 * D) + eps)
        w = tl.load(W + vc).to(tl.float32)
        y = a * rstd[:, None] * w[None, :] * out_scale
        sy_t = G * g * 2 * D
        yoff = b.to(tl.int64) * T * sy_t + ts[:, None].to(tl.int64) * sy_t + (grp * g + j) * 2 * D + vc[None, :]
        tl.store(Y + yoff, y.to(Y.dtype.element_ty), mask=ok[:, None])
        tl.store(A + yoff, a.to(A.dtype.element_ty), mask=ok[:, None])
        soff = (bg * g + j).to(tl.int64) * T + ts
        tl.store(LSE1 + soff, lse, mask=ok)
        tl.store(RSTD + soff, rstd, mask=ok)
    else:
        tl.store(O2 + o2off, o.to(O2.dtype.element_ty), mask=ok[:, None])
        tl.store(LSE2 + bg.to(tl.int64) * T + ts, lse, mask=ok)


@triton.jit
def gda_bwd_pre_kernel(DY, A, O2, RSTD, W, LAM, DO1, DO2, DELTA1, DELTA2, DW_PART, DLAM_PART,
                       T, G, g, n_chunks, out_scale, D: tl.constexpr, GP: tl.constexpr, BT: tl.constexpr, RB: tl.constexpr):
    """Row-wise part of the backward: subln backward, dO of both maps, Delta = rowsum(dO*O), partial dw and dlambda.
    One program = one group x RB*BT positions, BT at a time as [BT, GP, 2D] tiles: the g signal heads of a position are
    one contiguous g*2D run, read in one load (memory-bound: the bytes in flight set the speed)."""
    pid = tl.program_id(0)
    bg = pid // n_chunks; chunk = pid % n_chunks
    b = bg // G; grp = bg % G
    jj = tl.arange(0, GP); vc = tl.arange(0, 2 * D)
    w = tl.load(W + vc).to(tl.float32) * out_scale
    lam = tl.load(LAM)
    dw = tl.zeros([2 * D], tl.float32)
    dlam = tl.zeros([BT], tl.float32)
    for r in range(RB):
        tn = (chunk * RB + r) * BT + tl.arange(0, BT)
        ok = tn < T
        okj = ok[:, None] & (jj[None, :] < g)
        row = (b.to(tl.int64) * T + tn) * G + grp                               # (b, t, grp) row of O2 / dO2
        o2off = row[:, None] * 2 * D + vc[None, :]
        yoff = ((row * g)[:, None] + jj[None, :])[:, :, None] * 2 * D + vc[None, None, :]
        soff = (bg * g + jj[None, :]).to(tl.int64) * T + tn[:, None]           # rstd / Delta rows (B, G, g, T)
        o2 = tl.load(O2 + o2off, mask=ok[:, None], other=0.).to(tl.float32)
        dy = tl.load(DY + yoff, mask=okj[:, :, None], other=0.).to(tl.float32)
        a = tl.load(A + yoff, mask=okj[:, :, None], other=0.).to(tl.float32)
        rstd = tl.load(RSTD + soff, mask=okj, other=0.)
        u = dy * w[None, None, :]
        c = rstd * rstd * tl.sum(u * a, 2) / (2 * D)
        da = rstd[:, :, None] * (u - a * c[:, :, None])
        dw += tl.sum(tl.sum(dy * a * rstd[:, :, None], 1), 0)
        tl.store(DO1 + yoff, da.to(DO1.dtype.element_ty), mask=okj[:, :, None])
        tl.store(DELTA1 + soff, tl.sum(da * (a + lam * o2[:, None, :]), 2), mask=okj)
        s2 = tl.sum(tl.sum(da, 1) * o2, 1)                                      # sum_c dsum * O_n, dsum = sum_j dA_j
        tl.store(DO2 + o2off, (-lam * tl.sum(da, 1)).to(DO2.dtype.element_ty), mask=ok[:, None])
        tl.store(DELTA2 + bg.to(tl.int64) * T + tn, -lam * s2, mask=ok)
        dlam -= s2
    tl.store(DW_PART + pid * 2 * D + vc, dw * out_scale)
    tl.store(DLAM_PART + pid, tl.sum(dlam, 0))


@triton.jit
def _bwd_cols(k, qb, dob, LSE, DOC_START, m0, T, kn, kok, qk_scale, sq_t, so_t,
              D: tl.constexpr, BM: tl.constexpr, MASK: tl.constexpr, VARLEN: tl.constexpr):
    """Query block m0 of one map against a key tile, keys on rows: positions, in-bounds mask, Q^T, dO and the (masked)
    transposed probabilities P^T (BN x BM). Computing P^T = exp2(K Q^T - lse) directly keeps every later product in
    the layout the tensor cores read (a transposed register tile would go through shared memory)."""
    dc = tl.arange(0, D); vc = tl.arange(0, 2 * D)
    ts = m0 + tl.arange(0, BM)
    ok = ts < T
    qT = tl.load(qb + ts[None, :].to(tl.int64) * sq_t + dc[:, None], mask=ok[None, :], other=0.)
    do = tl.load(dob + ts[:, None].to(tl.int64) * so_t + vc[None, :], mask=ok[:, None], other=0.)
    lse = tl.load(LSE + ts, mask=ok, other=float('inf'))
    pT = tl.exp2(tl.dot(k, qT) * qk_scale - lse[None, :])
    if MASK:
        mk = ok[None, :] & kok[:, None] & (kn[:, None] <= ts[None, :])
        if VARLEN:
            dst = tl.load(DOC_START + ts, mask=ok, other=0)
            mk = mk & (kn[:, None] >= dst[None, :])
        pT = tl.where(mk, pT, 0.)
    return ts, ok, qT, do, pT


@triton.jit
def _dkdv_inner(dv, dk, k, v, qb, dob, LSE, DELTA, DOC_START, m_lo, m_hi, T, kn, kok, qk_scale, sq_t, so_t,
                D: tl.constexpr, BM: tl.constexpr, MASK: tl.constexpr, VARLEN: tl.constexpr):
    "One head's queries m_lo..m_hi (BM at a time) against one K/V tile: accumulate dV and dK."
    for m0 in range(m_lo, m_hi, BM):
        ts, ok, qT, do, pT = _bwd_cols(k, qb, dob, LSE, DOC_START, m0, T, kn, kok, qk_scale, sq_t, so_t, D, BM, MASK, VARLEN)
        de = tl.load(DELTA + ts, mask=ok, other=0.)
        dv += tl.dot(pT.to(do.dtype), do)
        dsT = pT * (tl.dot(v, tl.trans(do)) - de[None, :])
        dk += tl.dot(dsT.to(qT.dtype), tl.trans(qT))
    return dv, dk


@triton.jit
def _key_block(pid_n, T, DOC_END, BM: tl.constexpr, BN: tl.constexpr, VARLEN: tl.constexpr):
    "Key block of a program: its first key, key indices, in-bounds mask, end of the masked query range, query end."
    n0 = pid_n * BN
    kn = n0 + tl.arange(0, BN)
    if VARLEN:
        hi = tl.load(DOC_END + tl.minimum(n0 + BN, T) - 1)
        diag_end = hi
    else:
        hi = T
        diag_end = n0 + ((BN + BM - 1) // BM) * BM   # the query blocks that overlap the key block need the causal mask
    return n0, kn, kn < T, diag_end, hi


@triton.jit
def _map_rows(j, b, bg, grp, T, G, g, D: tl.constexpr, DO1, DO2, LSE1, LSE2, DELTA1, DELTA2):
    "Map j of group (b, grp): j < g is signal head j, j = g the noise map. Its dO base and row stride, lse and Delta rows."
    if j < g:
        row = (bg * g + j).to(tl.int64) * T
        so_t = G * g * 2 * D
        dob = DO1 + b.to(tl.int64) * T * so_t + (grp * g + j) * 2 * D
        LS = LSE1 + row; DE = DELTA1 + row
    else:
        row = bg.to(tl.int64) * T
        so_t = G * 2 * D
        dob = DO2 + b.to(tl.int64) * T * so_t + grp * 2 * D
        LS = LSE2 + row; DE = DELTA2 + row
    return dob, so_t, LS, DE


@triton.autotune(configs=_configs('dkdv'), key=['T', 'D', 'VARLEN', 'SIGNAL'], restore_value=['DV'])
@triton.jit
def gda_bwd_dkdv_kernel(Q, K, V, DO1, DO2, LSE1, LSE2, DELTA1, DELTA2, DK, DV, DOC_START, DOC_END,
                        T, G, g, qk_scale, sm_scale, CH,
                        D: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, VARLEN: tl.constexpr, SIGNAL: tl.constexpr):
    "One group x BN keys. SIGNAL=False: noise map -> dK2, dV. SIGNAL=True: the g signal maps -> dK1, dV += ."
    pid_n, bg = _lpt(T, BN, False, CH)
    b = bg // G; grp = bg % G
    n0, kn, kok, diag_end, hi = _key_block(pid_n, T, DOC_END, BM, BN, VARLEN)
    dc = tl.arange(0, D); vc = tl.arange(0, 2 * D)
    sk_t = G * 2 * D
    sq_t = G * (g + 1) * D
    if SIGNAL:
        kcol = 0; j0 = 0; j1 = g
    else:
        kcol = D; j0 = g; j1 = g + 1
    koff = b.to(tl.int64) * T * sk_t + kn[:, None].to(tl.int64) * sk_t + grp * 2 * D
    k = tl.load(K + koff + kcol + dc[None, :], mask=kok[:, None], other=0.)
    v = tl.load(V + koff + vc[None, :], mask=kok[:, None], other=0.)
    dv = tl.zeros([BN, 2 * D], tl.float32)
    dk = tl.zeros([BN, D], tl.float32)
    qb0 = Q + b.to(tl.int64) * T * sq_t + grp * (g + 1) * D
    for j in range(j0, j1):
        dob, so_t, LS, DE = _map_rows(j, b, bg, grp, T, G, g, D, DO1, DO2, LSE1, LSE2, DELTA1, DELTA2)
        dv, dk = _dkdv_inner(dv, dk, k, v, qb0 + j * D, dob, LS, DE, DOC_START, n0, diag_end, T, kn, kok, qk_scale, sq_t,
                             so_t, D, BM, True, VARLEN)
        if not VARLEN:
            dv, dk = _dkdv_inner(dv, dk, k, v, qb0 + j * D, dob, LS, DE, DOC_START, diag_end, hi, T, kn, kok, qk_scale, sq_t,
                                 so_t, D, BM, False, False)
    if SIGNAL:
        dv += tl.load(DV + koff + vc[None, :], mask=kok[:, None], other=0.).to(tl.float32)   # the noise map's share
    tl.store(DK + koff + kcol + dc[None, :], (dk * sm_scale).to(DK.dtype.element_ty), mask=kok[:, None])
    tl.store(DV + koff + vc[None, :], dv.to(DV.dtype.element_ty), mask=kok[:, None])


@triton.jit
def _dq_inner(dq, q, do, lse, de, kb, vb, lo, hi, ts, dst, ok, qk_scale, sk_t,
              D: tl.constexpr, BN: tl.constexpr, MASK: tl.constexpr, VARLEN: tl.constexpr):
    dc = tl.arange(0, D); vc = tl.arange(0, 2 * D)
    for n0 in range(lo, hi, BN):
        kn = n0 + tl.arange(0, BN)
        kok = kn < hi
        koff = kn[:, None].to(tl.int64) * sk_t
        k = tl.load(kb + koff + dc[None, :], mask=kok[:, None], other=0.)
        v = tl.load(vb + koff + vc[None, :], mask=kok[:, None], other=0.)
        s = tl.dot(q, tl.trans(k)) * qk_scale
        p = tl.exp2(s - lse[:, None])
        if MASK:
            mk = ok[:, None] & kok[None, :] & (kn[None, :] <= ts[:, None])
            if VARLEN:
                mk = mk & (kn[None, :] >= dst[:, None])
            p = tl.where(mk, p, 0.)
        dp = tl.dot(do, tl.trans(v))
        ds = p * (dp - de[:, None])
        dq += tl.dot(ds.to(k.dtype), k)
    return dq


@triton.autotune(configs=_configs('dq'), key=['T', 'D', 'VARLEN'])
@triton.jit
def gda_bwd_dq_kernel(Q, K, V, DO1, DO2, LSE1, LSE2, DELTA1, DELTA2, DQ, DOC_START,
                      T, G, g, n_signal, qk_scale, sm_scale, CH,
                      D: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, VARLEN: tl.constexpr):
    """dQ of one head x BM positions. Heads below n_signal = B*G*g are the signal heads, the others the noise heads: one
    launch for both."""
    pid_m, pid_h = _lpt(T, BM, True, CH)
    t0 = pid_m * BM
    ts = t0 + tl.arange(0, BM)
    ok = ts < T
    dc = tl.arange(0, D); vc = tl.arange(0, 2 * D)
    sq_t = G * (g + 1) * D
    sk_t = G * 2 * D
    noise = (pid_h >= n_signal).to(tl.int32)
    bg = tl.where(noise == 1, pid_h - n_signal, pid_h // g)
    j = tl.where(noise == 1, g, pid_h % g)
    b = bg // G; grp = bg % G
    dob, so_t, LS, DE = _map_rows(j, b, bg, grp, T, G, g, D, DO1, DO2, LSE1, LSE2, DELTA1, DELTA2)
    qoff = b.to(tl.int64) * T * sq_t + ts[:, None].to(tl.int64) * sq_t + (grp * (g + 1) + j) * D + dc[None, :]
    q = tl.load(Q + qoff, mask=ok[:, None], other=0.)
    do = tl.load(dob + ts[:, None].to(tl.int64) * so_t + vc[None, :], mask=ok[:, None], other=0.)
    lse = tl.load(LS + ts, mask=ok, other=float('inf'))
    de = tl.load(DE + ts, mask=ok, other=0.)
    kb = K + b.to(tl.int64) * T * sk_t + grp * 2 * D + noise * D
    vb = V + b.to(tl.int64) * T * sk_t + grp * 2 * D
    hi = tl.minimum(t0 + BM, T)
    dq = tl.zeros([BM, D], tl.float32)
    if VARLEN:
        lo = tl.load(DOC_START + t0)
        dst = tl.load(DOC_START + ts, mask=ok, other=0)
        dq = _dq_inner(dq, q, do, lse, de, kb, vb, lo, hi, ts, dst, ok, qk_scale, sk_t, D, BN, True, True)
    else:
        n_full = (t0 // BN) * BN
        dq = _dq_inner(dq, q, do, lse, de, kb, vb, 0, n_full, ts, ts, ok, qk_scale, sk_t, D, BN, False, False)
        dq = _dq_inner(dq, q, do, lse, de, kb, vb, n_full, hi, ts, ts, ok, qk_scale, sk_t, D, BN, True, False)
    tl.store(DQ + qoff, (dq * sm_scale).to(DQ.dtype.element_ty), mask=ok[:, None])


# ---- split backward: dV in one kernel (all g+1 maps of a group), dK in another (K1 from the g signal maps, K2 from the
# noise map). One more recomputation of Q K^T than the fused dK/dV kernel, but one accumulator per kernel.

@triton.jit
def _maps_block(it, nm, m_lo, BM: tl.constexpr):
    "Step `it` of a loop over maps x query blocks (nm blocks per map from m_lo): the map's offset j and the block's start."
    j = it // nm
    return j, m_lo + (it - j * nm) * BM


@triton.jit
def _dv_maps(dv, k, qb, dob, LSE, DOC_START, n_maps, m_lo, m_hi, T, kn, kok, qk_scale, sq_t, so_t,
             D: tl.constexpr, BM: tl.constexpr, MASK: tl.constexpr, VARLEN: tl.constexpr):
    """dV += P^T dO over n_maps consecutive maps of one key kind (queries D apart, dO 2D apart, lse rows T apart), queries
    m_lo..m_hi of each, against one key tile. One loop over maps x blocks: the software pipeline runs across maps."""
    nm = tl.cdiv(m_hi - m_lo, BM)
    for it in range(n_maps * nm):
        j, m0 = _maps_block(it, nm, m_lo, BM)
        ts, ok, qT, do, pT = _bwd_cols(k, qb + j * D, dob + j * 2 * D, LSE + j * T, DOC_START, m0, T, kn, kok, qk_scale,
                                       sq_t, so_t, D, BM, MASK, VARLEN)
        dv += tl.dot(pT.to(do.dtype), do)
    return dv


@triton.jit
def _dk_maps(dk, k, v, qb, dob, LSE, DELTA, DOC_START, n_maps, m_lo, m_hi, T, kn, kok, qk_scale, sq_t, so_t,
             D: tl.constexpr, BM: tl.constexpr, MASK: tl.constexpr, VARLEN: tl.constexpr):
    "dK += dS^T Q (dS^T = P^T * (V dO^T - Delta)), the same loop as `_dv_maps`."
    nm = tl.cdiv(m_hi - m_lo, BM)
    for it in range(n_maps * nm):
        j, m0 = _maps_block(it, nm, m_lo, BM)
        ts, ok, qT, do, pT = _bwd_cols(k, qb + j * D, dob + j * 2 * D, LSE + j * T, DOC_START, m0, T, kn, kok, qk_scale,
                                       sq_t, so_t, D, BM, MASK, VARLEN)
        de = tl.load(DELTA + j * T + ts, mask=ok, other=0.)
        dsT = pT * (tl.dot(v, tl.trans(do)) - de[None, :])
        dk += tl.dot(dsT.to(qT.dtype), tl.trans(qT))
    return dk


@triton.autotune(configs=_configs('dv'), key=['T', 'D', 'VARLEN'])
@triton.jit
def gda_bwd_dv_kernel(Q, K, DO1, DO2, LSE1, LSE2, DV, DOC_START, DOC_END, T, G, g, qk_scale, CH,
                      D: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, VARLEN: tl.constexpr):
    "dV of one group x BN keys: the g signal maps (keys K1) and the noise map (keys K2) into one accumulator."
    pid_n, bg = _lpt(T, BN, False, CH)
    b = bg // G; grp = bg % G
    n0, kn, kok, diag_end, hi = _key_block(pid_n, T, DOC_END, BM, BN, VARLEN)
    dc = tl.arange(0, D); vc = tl.arange(0, 2 * D)
    sk_t = G * 2 * D; sq_t = G * (g + 1) * D
    koff = b.to(tl.int64) * T * sk_t + kn[:, None].to(tl.int64) * sk_t + grp * 2 * D
    qb0 = Q + b.to(tl.int64) * T * sq_t + grp * (g + 1) * D
    dv = tl.zeros([BN, 2 * D], tl.float32)
    for noise in tl.static_range(2):      # the g signal maps against K1, then the noise map against K2
        dob, so_t, LS, _ = _map_rows(noise * g, b, bg, grp, T, G, g, D, DO1, DO2, LSE1, LSE2, LSE1, LSE2)   # no Delta for dV
        n_maps = g - noise * (g - 1)
        k = tl.load(K + koff + noise * D + dc[None, :], mask=kok[:, None], other=0.)
        qb = qb0 + noise * g * D
        dv = _dv_maps(dv, k, qb, dob, LS, DOC_START, n_maps, n0, diag_end, T, kn, kok, qk_scale, sq_t, so_t,
                      D, BM, True, VARLEN)
        if not VARLEN:
            dv = _dv_maps(dv, k, qb, dob, LS, DOC_START, n_maps, diag_end, hi, T, kn, kok, qk_scale, sq_t, so_t,
                          D, BM, False, False)
    tl.store(DV + koff + vc[None, :], dv.to(DV.dtype.element_ty), mask=kok[:, None])


@triton.autotune(configs=_configs('dk'), key=['T', 'D', 'VARLEN'])
@triton.jit
def gda_bwd_dk_kernel(Q, K, V, DO1, DO2, LSE1, LSE2, DELTA1, DELTA2, DK, DOC_START, DOC_END, T, G, g, qk_scale, sm_scale,
                      CH, D: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, VARLEN: tl.constexpr):
    """dK of one group x BN keys: the two programs of a group are dK1 (the g signal maps) and dK2 (the noise map), in one
    launch; per key block, so the last blocks' short programs fill the tail."""
    pid_n, h = _lpt(T, BN, False, CH)
    bg = h // 2; noise = h % 2
    b = bg // G; grp = bg % G
    n0, kn, kok, diag_end, hi = _key_block(pid_n, T, DOC_END, BM, BN, VARLEN)
    dc = tl.arange(0, D); vc = tl.arange(0, 2 * D)
    sk_t = G * 2 * D; sq_t = G * (g + 1) * D
    kcol = noise * D; j0 = noise * g; j1 = g + noise
    koff = b.to(tl.int64) * T * sk_t + kn[:, None].to(tl.int64) * sk_t + grp * 2 * D
    k = tl.load(K + koff + kcol + dc[None, :], mask=kok[:, None], other=0.)
    v = tl.load(V + koff + vc[None, :], mask=kok[:, None], other=0.)
    qb0 = Q + b.to(tl.int64) * T * sq_t + grp * (g + 1) * D
    dk = tl.zeros([BN, D], tl.float32)
    dob, so_t, LS, DE = _map_rows(j0, b, bg, grp, T, G, g, D, DO1, DO2, LSE1, LSE2, DELTA1, DELTA2)   # the program's first map
    qb = qb0 + j0 * D
    dk = _dk_maps(dk, k, v, qb, dob, LS, DE, DOC_START, j1 - j0, n0, diag_end, T, kn, kok, qk_scale, sq_t, so_t,
                  D, BM, True, VARLEN)
    if not VARLEN:
        dk = _dk_maps(dk, k, v, qb, dob, LS, DE, DOC_START, j1 - j0, diag_end, hi, T, kn, kok, qk_scale, sq_t, so_t,
                      D, BM, False, False)
    tl.store(DK + koff + kcol + dc[None, :], (dk * sm_scale).to(DK.dtype.element_ty), mask=kok[:, None])
