"""Fused Grouped Differential Attention kernels (forward, backward dK/dV, backward dQ).

Explained and tested in nbs/02_attention.ipynb (`gda_triton` is the autograd wrapper there). Layouts, all contiguous,
exactly the projection outputs after RoPE:
  q (B, T, G, g+1, D): signal queries j < g, the noise query at j = g
  k (B, T, G, 2, D):   K1 at index 0, K2 at index 1 (k_proj's interleaved heads)
  v (B, T, G, 2D):     [V1 || V2] (v_proj's interleaved heads)
  y, a (B, T, G, g, 2D); o2 (B, T, G, 2D); lse1, rstd, delta1 (B, G, g, T); lse2, delta2 (B, G, T)
One program owns one group and a block of BM positions: its g signal heads are stacked into one tile of GP*BM rows
(GP = g rounded up to a power of two; row r is head r // BM, position r % BM), its noise head is a tile of BM rows,
and every K1/K2/V tile is loaded once for both. Softmax is base 2 (log2(e) folded into the scale); lse is in log2
units. Masks: causal, in bounds, and with VARLEN the key must not precede the query's document start.
No make_block_ptr (gone in triton 3.9), every load masked (the interpreter does not catch out-of-bounds accesses)."""
import os
import triton
import triton.language as tl

_INTERPRET = os.environ.get('TRITON_INTERPRET', '0') not in ('', '0', 'false', 'False')
NEG: tl.constexpr = tl.constexpr(-1.0e30)   # finite: fully masked rows stay NaN-free


_ONLY = os.environ.get('MOTIF_GDA_ONLY_CONFIG')      # compile one config per process (parallel warm-up of the cache)


def _configs(kind):
    "Autotune candidates (BM query positions, BN keys, HB signal heads per backward step, warps, stages)."
    if _INTERPRET:
        return [triton.Config({'BM': 16, 'BN': 16, 'HB': 2} if kind == 'dkdv' else {'BM': 16, 'BN': 16}, num_warps=4, num_stages=1)]
    if kind == 'fwd':
        cs = [triton.Config({'BM': bm, 'BN': bn}, num_warps=w, num_stages=s)
              for bm, bn, w, s in [(16, 32, 8, 2), (16, 64, 8, 2), (16, 32, 8, 3)]]
    elif kind == 'dkdv':
        cs = [triton.Config({'BM': bm, 'BN': bn, 'HB': hb}, num_warps=w, num_stages=s)
              for bm, bn, hb, w, s in [(16, 32, 2, 8, 2), (16, 32, 1, 4, 2), (16, 32, 2, 4, 2)]]
    else:
        cs = [triton.Config({'BM': bm, 'BN': bn}, num_warps=w, num_stages=s)
              for bm, bn, w, s in [(16, 32, 8, 2), (16, 64, 8, 2), (16, 32, 8, 3)]]
    if _ONLY is not None: cs = [cs[min(int(_ONLY), len(cs) - 1)]]
    return cs


@triton.jit
def _fwd_step(q1, q2, kb, vb, n0, hi, ts, tn, ds_s, ds_n, m1, l1, acc1, m2, l2, acc2, qk_scale, sk_t,
              D: tl.constexpr, BN: tl.constexpr, MASK: tl.constexpr, VARLEN: tl.constexpr):
    dc = tl.arange(0, D); vc = tl.arange(0, 2 * D)
    kn = n0 + tl.arange(0, BN)
    kok = kn < hi
    koff = kn[:, None].to(tl.int64) * sk_t
    k1 = tl.load(kb + koff + dc[None, :], mask=kok[:, None], other=0.)
    k2 = tl.load(kb + koff + D + dc[None, :], mask=kok[:, None], other=0.)
    v = tl.load(vb + koff + vc[None, :], mask=kok[:, None], other=0.)
    # signal heads of the group
    s1 = tl.dot(q1, tl.trans(k1)) * qk_scale
    if MASK:
        mk1 = (kn[None, :] <= ts[:, None]) & kok[None, :]
        if VARLEN:
            mk1 = mk1 & (kn[None, :] >= ds_s[:, None])
        s1 = tl.where(mk1, s1, NEG)
    mn1 = tl.maximum(m1, tl.max(s1, 1))
    p1 = tl.exp2(s1 - mn1[:, None])
    al1 = tl.exp2(m1 - mn1)
    l1 = l1 * al1 + tl.sum(p1, 1)
    acc1 = acc1 * al1[:, None] + tl.dot(p1.to(v.dtype), v)
    # the group's noise head, once for its g signal heads, same K/V tile
    s2 = tl.dot(q2, tl.trans(k2)) * qk_scale
    if MASK:
        mk2 = (kn[None, :] <= tn[:, None]) & kok[None, :]
        if VARLEN:
            mk2 = mk2 & (kn[None, :] >= ds_n[:, None])
        s2 = tl.where(mk2, s2, NEG)
    mn2 = tl.maximum(m2, tl.max(s2, 1))
    p2 = tl.exp2(s2 - mn2[:, None])
    al2 = tl.exp2(m2 - mn2)
    l2 = l2 * al2 + tl.sum(p2, 1)
    acc2 = acc2 * al2[:, None] + tl.dot(p2.to(v.dtype), v)
    return mn1, l1, acc1, mn2, l2, acc2


@triton.autotune(configs=_configs('fwd'), key=['T', 'D', 'GP', 'VARLEN'])
@triton.jit
def gda_fwd_kernel(Q, K, V, W, LAM, Y, A, O2, LSE1, LSE2, RSTD, ML, DOC_START,
                   T, G, g, n_mblocks, qk_scale, eps, out_scale,
                   D: tl.constexpr, GP: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, VARLEN: tl.constexpr):
    pid_m = tl.program_id(0); bg = tl.program_id(1)
    b = bg // G; grp = bg % G
    t0 = pid_m * BM
    r = tl.arange(0, GP * BM)
    j = r // BM
    ts = t0 + r % BM
    tn = t0 + tl.arange(0, BM)
    dc = tl.arange(0, D); vc = tl.arange(0, 2 * D)
    ok_s = (j < g) & (ts < T)
    ok_n = tn < T
    sq_t = G * (g + 1) * D
    qb = Q + b.to(tl.int64) * T * sq_t + grp * (g + 1) * D
    q1 = tl.load(qb + ts[:, None].to(tl.int64) * sq_t + j[:, None] * D + dc[None, :], mask=ok_s[:, None], other=0.)
    q2 = tl.load(qb + tn[:, None].to(tl.int64) * sq_t + g * D + dc[None, :], mask=ok_n[:, None], other=0.)
    sk_t = G * 2 * D
    kb = K + b.to(tl.int64) * T * sk_t + grp * 2 * D
    vb = V + b.to(tl.int64) * T * sk_t + grp * 2 * D
    hi = tl.minimum(t0 + BM, T)
    m1 = tl.full([GP * BM], NEG, tl.float32); l1 = tl.zeros([GP * BM], tl.float32)
    acc1 = tl.zeros([GP * BM, 2 * D], tl.float32)
    m2 = tl.full([BM], NEG, tl.float32); l2 = tl.zeros([BM], tl.float32)
    acc2 = tl.zeros([BM, 2 * D], tl.float32)
    if VARLEN:
        lo = tl.load(DOC_START + t0)
        ds_s = tl.load(DOC_START + ts, mask=ts < T, other=0)
        ds_n = tl.load(DOC_START + tn, mask=ok_n, other=0)
        for n0 in range(lo, hi, BN):
            m1, l1, acc1, m2, l2, acc2 = _fwd_step(q1, q2, kb, vb, n0, hi, ts, tn, ds_s, ds_n, m1, l1, acc1, m2, l2, acc2,
                                                   qk_scale, sk_t, D, BN, True, True)
    else:
        n_full = (t0 // BN) * BN          # key tiles entirely before the block: no mask
        for n0 in range(0, n_full, BN):
            m1, l1, acc1, m2, l2, acc2 = _fwd_step(q1, q2, kb, vb, n0, hi, ts, tn, ts, tn, m1, l1, acc1, m2, l2, acc2,
                                                   qk_scale, sk_t, D, BN, False, False)
        for n0 in range(n_full, hi, BN):
            m1, l1, acc1, m2, l2, acc2 = _fwd_step(q1, q2, kb, vb, n0, hi, ts, tn, ts, tn, m1, l1, acc1, m2, l2, acc2,
                                                   qk_scale, sk_t, D, BN, True, False)
    l1 = tl.where(l1 > 0, l1, 1.); l2 = tl.where(l2 > 0, l2, 1.)
    o1 = acc1 / l1[:, None]
    o2 = acc2 / l2[:, None]
    lam = tl.load(LAM)
    a = tl.reshape(tl.reshape(o1, [GP, BM, 2 * D]) - lam * tl.reshape(o2, [1, BM, 2 * D]), [GP * BM, 2 * D])
    rstd = 1.0 / tl.sqrt(tl.sum(a * a, 1) / (2 * D) + eps)
    w = tl.load(W + vc).to(tl.float32)
    y = a * rstd[:, None] * w[None, :] * out_scale
    sy_t = G * g * 2 * D
    yoff = b.to(tl.int64) * T * sy_t + ts[:, None].to(tl.int64) * sy_t + (grp * g + j[:, None]) * 2 * D + vc[None, :]
    tl.store(Y + yoff, y.to(Y.dtype.element_ty), mask=ok_s[:, None])
    tl.store(A + yoff, a.to(A.dtype.element_ty), mask=ok_s[:, None])
    o2off = (b.to(tl.int64) * T + tn[:, None]) * G * 2 * D + grp * 2 * D + vc[None, :]
    tl.store(O2 + o2off, o2.to(O2.dtype.element_ty), mask=ok_n[:, None])
    soff = ((b * G + grp) * g + j).to(tl.int64) * T + ts
    tl.store(LSE1 + soff, m1 + tl.log2(l1), mask=ok_s)
    tl.store(RSTD + soff, rstd, mask=ok_s)
    tl.store(LSE2 + (b * G + grp).to(tl.int64) * T + tn, m2 + tl.log2(l2), mask=ok_n)
    # max logits for free: the running maxima are the row maxima of the visible scaled logits
    mlb = ML + (bg * n_mblocks + pid_m) * (GP + 1)
    mx1 = tl.max(tl.reshape(tl.where(ok_s, m1, NEG), [GP, BM]), 1)
    tl.store(mlb + tl.arange(0, GP), mx1)
    tl.store(mlb + GP, tl.max(tl.where(ok_n, m2, NEG), 0))


@triton.jit
def gda_bwd_pre_kernel(DY, A, O2, RSTD, W, LAM, DO1, DO2, DELTA1, DELTA2, DW_PART, DLAM_PART,
                       T, G, g, out_scale, D: tl.constexpr, GP: tl.constexpr, BT: tl.constexpr):
    "Row-wise part of the backward: subln backward, dO of both maps, Delta = rowsum(dO*O), partial dw and dlambda."
    pid_t = tl.program_id(0); bg = tl.program_id(1)
    b = bg // G; grp = bg % G
    tn = pid_t * BT + tl.arange(0, BT)
    vc = tl.arange(0, 2 * D)
    ok = tn < T
    o2off = (b.to(tl.int64) * T + tn[:, None]) * G * 2 * D + grp * 2 * D + vc[None, :]
    o2 = tl.load(O2 + o2off, mask=ok[:, None], other=0.).to(tl.float32)
    w = tl.load(W + vc).to(tl.float32)
    lam = tl.load(LAM)
    sy_t = G * g * 2 * D
    dsum = tl.zeros([BT, 2 * D], tl.float32)
    dw = tl.zeros([2 * D], tl.float32)
    dlam = tl.zeros([BT], tl.float32)
    for j in tl.static_range(GP):
        okj = ok & (tl.full([BT], j, tl.int32) < g)
        yoff = b.to(tl.int64) * T * sy_t + tn[:, None].to(tl.int64) * sy_t + (grp * g + j) * 2 * D + vc[None, :]
        dy = tl.load(DY + yoff, mask=okj[:, None], other=0.).to(tl.float32)
        a = tl.load(A + yoff, mask=okj[:, None], other=0.).to(tl.float32)
        soff = ((b * G + grp) * g + j).to(tl.int64) * T + tn
        rstd = tl.load(RSTD + soff, mask=okj, other=0.)
        u = dy * w[None, :] * out_scale
        da = rstd[:, None] * (u - a * (rstd * rstd)[:, None] * (tl.sum(u * a, 1) / (2 * D))[:, None])
        dw += tl.sum(dy * a * rstd[:, None], 0)
        dlam -= tl.sum(da * o2, 1)
        dsum += da
        tl.store(DO1 + yoff, da.to(DO1.dtype.element_ty), mask=okj[:, None])
        tl.store(DELTA1 + soff, tl.sum(da * (a + lam * o2), 1), mask=okj)
    do2 = -lam * dsum
    tl.store(DO2 + o2off, do2.to(DO2.dtype.element_ty), mask=ok[:, None])
    tl.store(DELTA2 + (b * G + grp).to(tl.int64) * T + tn, tl.sum(do2 * o2, 1), mask=ok)
    pid = bg * tl.num_programs(0) + pid_t
    tl.store(DW_PART + pid * 2 * D + vc, dw * out_scale)
    tl.store(DLAM_PART + pid, tl.sum(dlam, 0))


@triton.jit
def _dkdv_sig(qb, d1b, LSE1, DELTA1, DOC_START, s1b, m0, jj, T, g, kn, kok, k1, v, dv, dk1, qk_scale, sq_t, sd_t,
              D: tl.constexpr, BM: tl.constexpr, HB: tl.constexpr, MASK: tl.constexpr, VARLEN: tl.constexpr):
    "HB signal heads (jj..jj+HB-1) x BM queries against one K1/V tile: accumulate dV and dK1."
    dc = tl.arange(0, D); vc = tl.arange(0, 2 * D)
    r = tl.arange(0, HB * BM)
    j = jj + r // BM
    ts = m0 + r % BM
    ok = (j < g) & (ts < T)
    q = tl.load(qb + ts[:, None].to(tl.int64) * sq_t + j[:, None] * D + dc[None, :], mask=ok[:, None], other=0.)
    do = tl.load(d1b + ts[:, None].to(tl.int64) * sd_t + j[:, None] * 2 * D + vc[None, :], mask=ok[:, None], other=0.)
    lse = tl.load(LSE1 + s1b + j * T + ts, mask=ok, other=float('inf'))
    de = tl.load(DELTA1 + s1b + j * T + ts, mask=ok, other=0.)
    s = tl.dot(q, tl.trans(k1)) * qk_scale
    p = tl.exp2(s - lse[:, None])
    if MASK:
        mk = ok[:, None] & kok[None, :] & (kn[None, :] <= ts[:, None])
        if VARLEN:
            dst = tl.load(DOC_START + ts, mask=ts < T, other=0)
            mk = mk & (kn[None, :] >= dst[:, None])
        p = tl.where(mk, p, 0.)
    dv += tl.dot(tl.trans(p.to(do.dtype)), do)
    dp = tl.dot(do, tl.trans(v))
    ds = p * (dp - de[:, None])
    dk1 += tl.dot(tl.trans(ds.to(q.dtype)), q)
    return dv, dk1


@triton.jit
def _dkdv_noise(qb, d2b, LSE2, DELTA2, DOC_START, s2b, m0, T, g, kn, kok, k2, v, dv, dk2, qk_scale, sq_t, sk_t,
                D: tl.constexpr, BM: tl.constexpr, MASK: tl.constexpr, VARLEN: tl.constexpr):
    "The group's noise head x BM queries against one K2/V tile: accumulate dV and dK2."
    dc = tl.arange(0, D); vc = tl.arange(0, 2 * D)
    tn = m0 + tl.arange(0, BM)
    ok = tn < T
    q = tl.load(qb + tn[:, None].to(tl.int64) * sq_t + g * D + dc[None, :], mask=ok[:, None], other=0.)
    do = tl.load(d2b + tn[:, None].to(tl.int64) * sk_t + vc[None, :], mask=ok[:, None], other=0.)
    lse = tl.load(LSE2 + s2b + tn, mask=ok, other=float('inf'))
    de = tl.load(DELTA2 + s2b + tn, mask=ok, other=0.)
    s = tl.dot(q, tl.trans(k2)) * qk_scale
    p = tl.exp2(s - lse[:, None])
    if MASK:
        mk = ok[:, None] & kok[None, :] & (kn[None, :] <= tn[:, None])
        if VARLEN:
            dst = tl.load(DOC_START + tn, mask=ok, other=0)
            mk = mk & (kn[None, :] >= dst[:, None])
        p = tl.where(mk, p, 0.)
    dv += tl.dot(tl.trans(p.to(do.dtype)), do)
    dp = tl.dot(do, tl.trans(v))
    ds = p * (dp - de[:, None])
    dk2 += tl.dot(tl.trans(ds.to(q.dtype)), q)
    return dv, dk2


@triton.autotune(configs=_configs('dkdv'), key=['T', 'D', 'GP', 'VARLEN'])
@triton.jit
def gda_bwd_dkdv_kernel(Q, K, V, DO1, DO2, LSE1, LSE2, DELTA1, DELTA2, DK, DV, DOC_START, DOC_END,
                        T, G, g, qk_scale, sm_scale,
                        D: tl.constexpr, GP: tl.constexpr, HB: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
                        VARLEN: tl.constexpr):
    "One program per group and K/V block: K1, K2, V read once; dV collects the g signal maps and the noise map."
    pid_n = tl.program_id(0); bg = tl.program_id(1)
    b = bg // G; grp = bg % G
    n0 = pid_n * BN
    kn = n0 + tl.arange(0, BN)
    kok = kn < T
    dc = tl.arange(0, D); vc = tl.arange(0, 2 * D)
    sk_t = G * 2 * D
    koff = b.to(tl.int64) * T * sk_t + kn[:, None].to(tl.int64) * sk_t + grp * 2 * D
    k1 = tl.load(K + koff + dc[None, :], mask=kok[:, None], other=0.)
    k2 = tl.load(K + koff + D + dc[None, :], mask=kok[:, None], other=0.)
    v = tl.load(V + koff + vc[None, :], mask=kok[:, None], other=0.)
    dv = tl.zeros([BN, 2 * D], tl.float32)
    dk1 = tl.zeros([BN, D], tl.float32)
    dk2 = tl.zeros([BN, D], tl.float32)
    sq_t = G * (g + 1) * D
    qb = Q + b.to(tl.int64) * T * sq_t + grp * (g + 1) * D
    sd_t = G * g * 2 * D
    d1b = DO1 + b.to(tl.int64) * T * sd_t + grp * g * 2 * D
    d2b = DO2 + b.to(tl.int64) * T * sk_t + grp * 2 * D
    s1b = ((b * G + grp) * g).to(tl.int64) * T
    s2b = (b * G + grp).to(tl.int64) * T
    if VARLEN:
        hi = tl.load(DOC_END + tl.minimum(n0 + BN, T) - 1)
        for m0 in range(n0, hi, BM):
            for jj in range(0, g, HB):
                dv, dk1 = _dkdv_sig(qb, d1b, LSE1, DELTA1, DOC_START, s1b, m0, jj, T, g, kn, kok, k1, v, dv, dk1,
                                    qk_scale, sq_t, sd_t, D, BM, HB, True, True)
            dv, dk2 = _dkdv_noise(qb, d2b, LSE2, DELTA2, DOC_START, s2b, m0, T, g, kn, kok, k2, v, dv, dk2,
                                  qk_scale, sq_t, sk_t, D, BM, True, True)
    else:
        diag_end = tl.minimum(n0 + ((BN + BM - 1) // BM) * BM, T)   # query blocks that overlap the key block
        for m0 in range(n0, diag_end, BM):
            for jj in range(0, g, HB):
                dv, dk1 = _dkdv_sig(qb, d1b, LSE1, DELTA1, DOC_START, s1b, m0, jj, T, g, kn, kok, k1, v, dv, dk1,
                                    qk_scale, sq_t, sd_t, D, BM, HB, True, False)
            dv, dk2 = _dkdv_noise(qb, d2b, LSE2, DELTA2, DOC_START, s2b, m0, T, g, kn, kok, k2, v, dv, dk2,
                                  qk_scale, sq_t, sk_t, D, BM, True, False)
        for m0 in range(diag_end, T, BM):
            for jj in range(0, g, HB):
                dv, dk1 = _dkdv_sig(qb, d1b, LSE1, DELTA1, DOC_START, s1b, m0, jj, T, g, kn, kok, k1, v, dv, dk1,
                                    qk_scale, sq_t, sd_t, D, BM, HB, False, False)
            dv, dk2 = _dkdv_noise(qb, d2b, LSE2, DELTA2, DOC_START, s2b, m0, T, g, kn, kok, k2, v, dv, dk2,
                                  qk_scale, sq_t, sk_t, D, BM, False, False)
    tl.store(DK + koff + dc[None, :], (dk1 * sm_scale).to(DK.dtype.element_ty), mask=kok[:, None])
    tl.store(DK + koff + D + dc[None, :], (dk2 * sm_scale).to(DK.dtype.element_ty), mask=kok[:, None])
    tl.store(DV + koff + vc[None, :], dv.to(DV.dtype.element_ty), mask=kok[:, None])


@triton.jit
def _dq_step(q1, q2, do1, do2, lse1, lse2, de1, de2, kb, vb, n0, hi, ts, tn, ds_s, ds_n, ok_s, ok_n, dq1, dq2,
             qk_scale, sk_t, D: tl.constexpr, BN: tl.constexpr, MASK: tl.constexpr, VARLEN: tl.constexpr):
    dc = tl.arange(0, D); vc = tl.arange(0, 2 * D)
    kn = n0 + tl.arange(0, BN)
    kok = kn < hi
    koff = kn[:, None].to(tl.int64) * sk_t
    k1 = tl.load(kb + koff + dc[None, :], mask=kok[:, None], other=0.)
    k2 = tl.load(kb + koff + D + dc[None, :], mask=kok[:, None], other=0.)
    v = tl.load(vb + koff + vc[None, :], mask=kok[:, None], other=0.)
    s1 = tl.dot(q1, tl.trans(k1)) * qk_scale
    p1 = tl.exp2(s1 - lse1[:, None])
    if MASK:
        mk1 = ok_s[:, None] & kok[None, :] & (kn[None, :] <= ts[:, None])
        if VARLEN:
            mk1 = mk1 & (kn[None, :] >= ds_s[:, None])
        p1 = tl.where(mk1, p1, 0.)
    dp1 = tl.dot(do1, tl.trans(v))
    ds1 = p1 * (dp1 - de1[:, None])
    dq1 += tl.dot(ds1.to(k1.dtype), k1)
    s2 = tl.dot(q2, tl.trans(k2)) * qk_scale
    p2 = tl.exp2(s2 - lse2[:, None])
    if MASK:
        mk2 = ok_n[:, None] & kok[None, :] & (kn[None, :] <= tn[:, None])
        if VARLEN:
            mk2 = mk2 & (kn[None, :] >= ds_n[:, None])
        p2 = tl.where(mk2, p2, 0.)
    dp2 = tl.dot(do2, tl.trans(v))
    ds2 = p2 * (dp2 - de2[:, None])
    dq2 += tl.dot(ds2.to(k2.dtype), k2)
    return dq1, dq2


@triton.autotune(configs=_configs('dq'), key=['T', 'D', 'GP', 'VARLEN'])
@triton.jit
def gda_bwd_dq_kernel(Q, K, V, DO1, DO2, LSE1, LSE2, DELTA1, DELTA2, DQ, DOC_START,
                      T, G, g, qk_scale, sm_scale,
                      D: tl.constexpr, GP: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, VARLEN: tl.constexpr):
    pid_m = tl.program_id(0); bg = tl.program_id(1)
    b = bg // G; grp = bg % G
    t0 = pid_m * BM
    r = tl.arange(0, GP * BM)
    j = r // BM
    ts = t0 + r % BM
    tn = t0 + tl.arange(0, BM)
    dc = tl.arange(0, D); vc = tl.arange(0, 2 * D)
    ok_s = (j < g) & (ts < T)
    ok_n = tn < T
    sq_t = G * (g + 1) * D
    qoff = b.to(tl.int64) * T * sq_t + grp * (g + 1) * D
    q1 = tl.load(Q + qoff + ts[:, None].to(tl.int64) * sq_t + j[:, None] * D + dc[None, :], mask=ok_s[:, None], other=0.)
    q2 = tl.load(Q + qoff + tn[:, None].to(tl.int64) * sq_t + g * D + dc[None, :], mask=ok_n[:, None], other=0.)
    sk_t = G * 2 * D
    sd_t = G * g * 2 * D
    do1 = tl.load(DO1 + b.to(tl.int64) * T * sd_t + ts[:, None].to(tl.int64) * sd_t + (grp * g + j[:, None]) * 2 * D + vc[None, :],
                  mask=ok_s[:, None], other=0.)
    do2 = tl.load(DO2 + (b.to(tl.int64) * T + tn[:, None]) * sk_t + grp * 2 * D + vc[None, :], mask=ok_n[:, None], other=0.)
    s1b = ((b * G + grp) * g).to(tl.int64) * T
    s2b = (b * G + grp).to(tl.int64) * T
    lse1 = tl.load(LSE1 + s1b + j * T + ts, mask=ok_s, other=float('inf'))
    de1 = tl.load(DELTA1 + s1b + j * T + ts, mask=ok_s, other=0.)
    lse2 = tl.load(LSE2 + s2b + tn, mask=ok_n, other=float('inf'))
    de2 = tl.load(DELTA2 + s2b + tn, mask=ok_n, other=0.)
    kb = K + b.to(tl.int64) * T * sk_t + grp * 2 * D
    vb = V + b.to(tl.int64) * T * sk_t + grp * 2 * D
    hi = tl.minimum(t0 + BM, T)
    dq1 = tl.zeros([GP * BM, D], tl.float32)
    dq2 = tl.zeros([BM, D], tl.float32)
    if VARLEN:
        lo = tl.load(DOC_START + t0)
        ds_s = tl.load(DOC_START + ts, mask=ts < T, other=0)
        ds_n = tl.load(DOC_START + tn, mask=ok_n, other=0)
        for n0 in range(lo, hi, BN):
            dq1, dq2 = _dq_step(q1, q2, do1, do2, lse1, lse2, de1, de2, kb, vb, n0, hi, ts, tn, ds_s, ds_n, ok_s, ok_n,
                                dq1, dq2, qk_scale, sk_t, D, BN, True, True)
    else:
        n_full = (t0 // BN) * BN
        for n0 in range(0, n_full, BN):
            dq1, dq2 = _dq_step(q1, q2, do1, do2, lse1, lse2, de1, de2, kb, vb, n0, hi, ts, tn, ts, tn, ok_s, ok_n,
                                dq1, dq2, qk_scale, sk_t, D, BN, False, False)
        for n0 in range(n_full, hi, BN):
            dq1, dq2 = _dq_step(q1, q2, do1, do2, lse1, lse2, de1, de2, kb, vb, n0, hi, ts, tn, ts, tn, ok_s, ok_n,
                                dq1, dq2, qk_scale, sk_t, D, BN, True, False)
    tl.store(DQ + qoff + ts[:, None].to(tl.int64) * sq_t + j[:, None] * D + dc[None, :], (dq1 * sm_scale).to(DQ.dtype.element_ty), mask=ok_s[:, None])
    tl.store(DQ + qoff + tn[:, None].to(tl.int64) * sq_t + g * D + dc[None, :], (dq2 * sm_scale).to(DQ.dtype.element_ty), mask=ok_n[:, None])
