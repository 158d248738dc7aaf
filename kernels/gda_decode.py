"""GDA decoding attention: the new token of every row attends over a static KV cache, signal and noise maps and the GDA
epilogue in one kernel.

Explained, tested and used in `nbs/03a_generate.ipynb` (`decode_attn_mlp`, `StaticGenerator(attn_impl=...)`).

Notation. A decode step has one new token per row. For row b and group h of the cache (G groups, head dim d):

    Q_s  (g, d)    the group's g signal queries          K1 (S, d)   keys of the signal map
    q_n  (d,)      its noise query                       K2 (S, d)   keys of the noise map
    V    (S, 2d)   [V1 || V2], shared by both maps       bias (S,)   0 on a valid slot, -inf on an empty one
    O_s = softmax(Q_s K1^T / sqrt(d) + bias) V,   O_n = softmax(q_n K2^T / sqrt(d) + bias) V
    A   = O_s - lam O_n,   out = A * (mean(A^2) + eps)^(-1/2) * w * out_scale      (per signal query, over 2d)

with lam the layer's scalar lambda, w the subln weight (2d,) and out_scale = 1 - lambda_init. Names: Q, K1, K2, V, BIAS,
SLOT, LAM, W, SCALE, O are pointers to the tensors of the same name, and M, L, ACC to the fp32 scratch of the split
path (below); `s*_` arguments are strides in elements (the last dim of every tensor is contiguous, and W is read
with stride 1: `gda_decode` checks q, k, v and bias, and `gda_decode_launch` passes `w.contiguous()`); BN is the
number of cache slots one iteration loads.

Schedule. Two paths, chosen by NSPLIT (the `splits` argument), the number of chunks the filled slots are cut into.
Both load the g signal queries as the first rows of a 16-row tile (tensor cores need 16) and the noise query as the
first row of a second tile, and walk slots BN at a time: for each block they load K1, K2 and V once, form both score
tiles, and keep two online softmaxes (running max, row sum, accumulator of width 2d) in fp32. The filled slots are
0..SLOT, SLOT being the slot of the newest token, read on the device, so a CUDA graph replays the step at any length;
slots past it are never read, and neither shapes nor grids depend on it. SLOT must lie in [0, S) (`StaticKVCache`
checks its capacity on the host before a generation; `gda_decode` checks SLOT on the host only when it is a CPU tensor,
since reading a GPU tensor would cost a device sync). The kernels are given the capacity S and hold every read within
it whatever SLOT holds (`_filled`: the filled count is kept within 1..S), and a SLOT outside [0, S) makes every output
NaN, so that a wrong slot never reads past a row's slots (into the next row's, or outside the tensors) nor passes for
an answer. Empty slots (bias -inf) and slots past SLOT
score a finite -1e30, so a block with no valid slot cannot make a NaN, and their V rows load as 0, so what an earlier
call left in the storage never reaches the output.
  Which slots are empty: exactly those whose bias is not > -inf, that is -inf or NaN (a NaN bias empties its slot, where
  SDPA would give a NaN output). Any other bias value is an additive term of the logit, and its slot is read: a mask
  written with a large finite value (`torch.finfo(dtype).min`, the Hugging Face convention) gives that slot a weight
  that underflows to 0, but its K and V rows are loaded, so a NaN or inf left in their storage does reach the output
  (0 * NaN). The promise above holds for masks written with -inf, as `StaticKVCache` writes them.
  Both walk their slots with one helper, `_walk_slots`.
  NSPLIT = 1, `gda_decode_kernel`, grid (B*G,): program (b, h) walks all of 0..SLOT, then runs the epilogue.
  NSPLIT > 1 (flash-decoding), two launches. `gda_decode_split_kernel`, grid (B*G, NSPLIT): program (b, h, c) walks
    only chunk c of the filled slots. The chunk length is computed in the kernel from SLOT, as the even share
    cdiv(SLOT+1, NSPLIT) rounded up to a multiple of BN, so chunks start on block boundaries, never overlap, and
    cover 0..SLOT; at short lengths the last chunks are empty. The program writes its unnormalised state to fp32
    scratch: running max m, row sum l and accumulator acc of the g signal rows and of the noise row. An empty chunk
    (past SLOT, or only empty slots) leaves m = -1e30, l = 0, acc = 0: its p are zeroed, not exp(0). Then
    `gda_decode_combine_kernel`, grid (B*G,): program (b, h) derives the chunk length from SLOT the same way and
    merges the states of its group's chunks that start within 0..SLOT (those past it are written but never read), CB
    chunks per step so that their loads overlap, rescaling each by exp(m_c - m_max): an empty chunk weighs 0 next to
    any filled one. It divides by the merged sums (a row with no valid slot at all gives O = 0 rather than 0/0, as on
    the single-pass path) and runs the same epilogue.
  The epilogue (`_gda_epilogue`, shared) subtracts lam times the noise row from every signal row, normalises over 2d
  and scales, all in fp32, and writes the g rows in the output dtype.

Cost: the slots are read once in total on both paths (4d values per slot: K1, K2, V), so the kernel is bound by the
cache bytes. The single pass runs B*G programs: at batch 1 only G, each walking every slot in turn, which leaves most
SMs idle. The split runs B*G*NSPLIT programs of about (SLOT+1)/NSPLIT slots each. It adds the scratch traffic (per
program (g+1) * (2d+2) fp32 values written, then read once), a second launch, and the combine's walk over the live
chunks, which is serial in the chunks (CB at a time) and so grows with NSPLIT. A program of the split walks about
S/(NSPLIT*BN) blocks and the combine NSPLIT/CB steps; their sum is smallest at NSPLIT = sqrt(CB*S/BN), so the default
(`gda_decode_splits`) is that, and at most one program per SM in total (past that the programs
wait for SMs anyway, and the scratch traffic and the merge only add time). It depends on the shapes only, not on SLOT, and is 1 (the single pass)
once B*G alone fills the SMs. At short lengths in a long cache only the first chunks are live, and the combine reads
no others.

Entry points: `gda_decode` (checks, then the launcher) in eager code and CUDA-graph capture; under `torch.compile` the
`motif_nb::gda_decode` custom op (opaque to Inductor, with a registered fake). Inference only: nothing here is
differentiable. The eager call returns an output without a graph whatever its inputs require (so a loss through it
gets no gradient from it), and the compiled op raises once differentiated (it registers no autograd formula).
Works on triton 3.6 to 3.9 and under the interpreter (TRITON_INTERPRET=1, fp32/fp16): plain pointer arithmetic, every
access masked except a few loads that are in bounds by construction (the scalars SLOT, LAM and SCALE, the (2d,) vector W, and in the combine chunk 0's
noise-row state), no libdevice. No `tl.dot` sets `input_precision`: with fp32 q, k, v on an NVIDIA GPU the products
run in TF32 (Triton's default; fp32 accumulation), so fp32 results there match an fp32 PyTorch computation only to
TF32 accuracy (the generator takes this kernel under 'auto' only for fp16/bf16).
"""
import math, numbers
import torch
import triton
import triton.language as tl

__all__ = ['gda_decode', 'gda_decode_launch', 'gda_decode_splits']

NEG: tl.constexpr = tl.constexpr(-1.0e30)   # finite: a masked score never makes inf - inf = NaN; masked p are set to 0 explicitly


@triton.jit
def _filled(SLOT, S):
    """The filled slots 0..SLOT: their number, kept within 1..S so that no read leaves a row's S slots, and whether SLOT
    lay outside [0, S) (then the epilogue writes NaN: a wrong slot must not pass for an answer)."""
    slot = tl.load(SLOT)
    return tl.minimum(tl.maximum(slot + 1, 1), S).to(tl.int32), (slot < 0) | (slot >= S)


@triton.jit
def _gda_epilogue(o_s, o_n, LAM, W, SCALE, OB, so_j, eps, bad, NQ: tl.constexpr, QB: tl.constexpr, D: tl.constexpr):
    """Write rows 0..NQ-1 of RMSNorm(o_s - lam o_n) * w * out_scale (fp32) at OB + row * so_j in OB's dtype, or NaN if
    `bad` (the slot was out of range). o_s (QB, 2D): the normalised signal rows (rows past NQ are padding); o_n (2D,): the
    normalised noise row."""
    rows = tl.arange(0, QB)
    vc = tl.arange(0, 2 * D)
    lam = tl.load(LAM).to(tl.float32)
    a = o_s - lam * o_n[None, :]
    rstd = 1.0 / tl.sqrt(tl.sum(a * a, 1) / (2 * D) + eps)
    w = tl.load(W + vc).to(tl.float32)
    scale = tl.load(SCALE).to(tl.float32)
    out = tl.where(bad, float('nan'), a * rstd[:, None] * w[None, :] * scale)
    tl.store(OB + rows[:, None] * so_j + vc[None, :], out.to(OB.dtype.element_ty), mask=rows[:, None] < NQ)


@triton.jit
def _walk_slots(Q, K1, K2, V, BIAS, pid, start, end, n_used, sm_scale,
                sq_b, sq_h, sq_j, sk_b, sk_h, sk_s, sv_b, sv_h, sv_s, sb_b,
                G: tl.constexpr, NQ: tl.constexpr, QB: tl.constexpr, D: tl.constexpr, BN: tl.constexpr):
    """The two online softmaxes of program pid = (b, h) over slots [start, end) (end <= n_used), BN at a time:
    (m_s, l_s, acc_s) of the NQ signal rows of a QB-row tile and (m_n, l_n, acc_n) of the noise query in row 0 of
    another, unnormalised, fp32. Invalid slots weigh exactly 0, so a range without a valid slot leaves m = -1e30,
    l = 0, acc = 0."""
    b64 = (pid // G).to(tl.int64)
    h64 = (pid % G).to(tl.int64)
    rows = tl.arange(0, QB)
    dc = tl.arange(0, D)
    vc = tl.arange(0, 2 * D)
    qb = Q + b64 * sq_b + h64 * sq_h
    q_s = tl.load(qb + rows[:, None] * sq_j + dc[None, :], mask=rows[:, None] < NQ, other=0.)
    q_n = tl.load(qb + NQ * sq_j + rows[:, None] * 0 + dc[None, :], mask=rows[:, None] == 0, other=0.)
    kb1 = K1 + b64 * sk_b + h64 * sk_h
    kb2 = K2 + b64 * sk_b + h64 * sk_h
    vb = V + b64 * sv_b + h64 * sv_h
    bb = BIAS + b64 * sb_b
    m_s = tl.full([QB], NEG, tl.float32)
    m_n = tl.full([QB], NEG, tl.float32)
    l_s = tl.zeros([QB], tl.float32)
    l_n = tl.zeros([QB], tl.float32)
    acc_s = tl.zeros([QB, 2 * D], tl.float32)
    acc_n = tl.zeros([QB, 2 * D], tl.float32)
    for n0 in range(start, end, BN):
        kn = n0 + tl.arange(0, BN)
        bias = tl.load(bb + kn, mask=kn < n_used, other=float('-inf')).to(tl.float32)
        ok = bias > float('-inf')
        kn64 = kn[:, None].to(tl.int64)
        k1 = tl.load(kb1 + kn64 * sk_s + dc[None, :], mask=ok[:, None], other=0.)
        k2 = tl.load(kb2 + kn64 * sk_s + dc[None, :], mask=ok[:, None], other=0.)
        v = tl.load(vb + kn64 * sv_s + vc[None, :], mask=ok[:, None], other=0.)
        s_s = tl.where(ok[None, :], tl.dot(q_s, tl.trans(k1)) * sm_scale + bias[None, :], NEG)
        s_n = tl.where(ok[None, :], tl.dot(q_n, tl.trans(k2)) * sm_scale + bias[None, :], NEG)
        mn_s = tl.maximum(m_s, tl.max(s_s, 1))
        mn_n = tl.maximum(m_n, tl.max(s_n, 1))
        p_s = tl.where(ok[None, :], tl.exp(s_s - mn_s[:, None]), 0.)     # 0, not exp(0), while no slot was valid:
        p_n = tl.where(ok[None, :], tl.exp(s_n - mn_n[:, None]), 0.)     # an empty range keeps l = 0
        al_s = tl.exp(m_s - mn_s)
        al_n = tl.exp(m_n - mn_n)
        l_s = l_s * al_s + tl.sum(p_s, 1)
        l_n = l_n * al_n + tl.sum(p_n, 1)
        acc_s = acc_s * al_s[:, None] + tl.dot(p_s.to(v.dtype), v)
        acc_n = acc_n * al_n[:, None] + tl.dot(p_n.to(v.dtype), v)
        m_s = mn_s
        m_n = mn_n
    return m_s, l_s, acc_s, m_n, l_n, acc_n


@triton.jit
def gda_decode_kernel(Q, K1, K2, V, BIAS, SLOT, LAM, W, SCALE, O, eps, sm_scale, S,
                      sq_b, sq_h, sq_j, sk_b, sk_h, sk_s, sv_b, sv_h, sv_s, sb_b, so_b, so_h, so_j,
                      G: tl.constexpr, NQ: tl.constexpr, QB: tl.constexpr, D: tl.constexpr, BN: tl.constexpr):
    """Program (b, h): O[b, h, :NQ] from the NQ signal queries and the noise query of group h over slots 0..SLOT."""
    pid = tl.program_id(0)
    n_used, bad = _filled(SLOT, S)
    m_s, l_s, acc_s, m_n, l_n, acc_n = _walk_slots(Q, K1, K2, V, BIAS, pid, 0, n_used, n_used, sm_scale,
                                                   sq_b, sq_h, sq_j, sk_b, sk_h, sk_s, sv_b, sv_h, sv_s, sb_b, G, NQ, QB, D, BN)
    rows = tl.arange(0, QB)
    o_s = acc_s / tl.where(l_s > 0., l_s, 1.)[:, None]      # l = 0 only without any valid slot (or on padding rows): O = 0
    o_n = tl.sum(tl.where(rows[:, None] == 0, acc_n / tl.where(l_n > 0., l_n, 1.)[:, None], 0.), 0)   # the noise row, (2d,)
    _gda_epilogue(o_s, o_n, LAM, W, SCALE, O + (pid // G).to(tl.int64) * so_b + (pid % G).to(tl.int64) * so_h, so_j, eps, bad,
                  NQ, QB, D)


@triton.jit
def gda_decode_split_kernel(Q, K1, K2, V, BIAS, SLOT, M, L, ACC, sm_scale, S,
                            sq_b, sq_h, sq_j, sk_b, sk_h, sk_s, sv_b, sv_h, sv_s, sb_b,
                            G: tl.constexpr, NQ: tl.constexpr, QB: tl.constexpr, D: tl.constexpr, BN: tl.constexpr,
                            NSPLIT: tl.constexpr):
    """Program (b, h, c): the unnormalised softmax state of group h's NQ signal queries and noise query over chunk c of
    slots 0..SLOT, written to state i = (b*G + h) * NSPLIT + c of the fp32 scratch M, L (.., NQ+1) and ACC
    (.., NQ+1, 2D), contiguous; row j < NQ is signal query j, row NQ the noise query."""
    pid = tl.program_id(0)
    c = tl.program_id(1)
    n_used, _ = _filled(SLOT, S)
    chunk = (((n_used + NSPLIT - 1) // NSPLIT + BN - 1) // BN) * BN      # a multiple of BN; NSPLIT chunks cover n_used
    start = c * chunk
    m_s, l_s, acc_s, m_n, l_n, acc_n = _walk_slots(Q, K1, K2, V, BIAS, pid, start, tl.minimum(start + chunk, n_used), n_used,
                                                   sm_scale, sq_b, sq_h, sq_j, sk_b, sk_h, sk_s, sv_b, sv_h, sv_s, sb_b,
                                                   G, NQ, QB, D, BN)
    rows = tl.arange(0, QB)
    vc = tl.arange(0, 2 * D)
    i = pid.to(tl.int64) * NSPLIT + c
    mb = M + i * (NQ + 1)
    lb = L + i * (NQ + 1)
    ab = ACC + i * ((NQ + 1) * 2 * D)
    sig = rows < NQ
    noi = rows == 0
    tl.store(mb + rows, m_s, mask=sig)
    tl.store(lb + rows, l_s, mask=sig)
    tl.store(ab + rows[:, None] * (2 * D) + vc[None, :], acc_s, mask=sig[:, None])
    tl.store(mb + NQ + rows * 0, m_n, mask=noi)                                   # the noise row: row 0 of its tile
    tl.store(lb + NQ + rows * 0, l_n, mask=noi)
    tl.store(ab + NQ * 2 * D + rows[:, None] * 0 + vc[None, :], acc_n, mask=noi[:, None])


@triton.jit
def gda_decode_combine_kernel(SLOT, M, L, ACC, LAM, W, SCALE, O, eps, S, so_b, so_h, so_j,
                              G: tl.constexpr, NQ: tl.constexpr, QB: tl.constexpr, D: tl.constexpr, BN: tl.constexpr,
                              NSPLIT: tl.constexpr, CB: tl.constexpr):
    """Program (b, h): merge the states of group h of row b (layout: `gda_decode_split_kernel`) over the chunks that
    start before SLOT+1, CB chunks per step, normalise and write O[b, h, :NQ] through the epilogue."""
    pid = tl.program_id(0)
    b64 = (pid // G).to(tl.int64)
    h64 = (pid % G).to(tl.int64)
    rows = tl.arange(0, QB)
    vc = tl.arange(0, 2 * D)
    sig = rows < NQ
    n_used, bad = _filled(SLOT, S)
    chunk = (((n_used + NSPLIT - 1) // NSPLIT + BN - 1) // BN) * BN    # as in the split kernel
    n_live = (n_used + chunk - 1) // chunk                             # the chunks past SLOT are not read
    i0 = pid.to(tl.int64) * NSPLIT
    m_s = tl.load(M + i0 * (NQ + 1) + rows, mask=sig, other=NEG)                # start from chunk 0
    l_s = tl.load(L + i0 * (NQ + 1) + rows, mask=sig, other=0.)
    acc_s = tl.load(ACC + i0 * ((NQ + 1) * 2 * D) + rows[:, None] * (2 * D) + vc[None, :], mask=sig[:, None], other=0.)
    m_n = tl.load(M + i0 * (NQ + 1) + NQ)
    l_n = tl.load(L + i0 * (NQ + 1) + NQ)
    acc_n = tl.load(ACC + i0 * ((NQ + 1) * 2 * D) + NQ * 2 * D + vc)
    for c0 in range(1, n_live, CB):
        for j in tl.static_range(CB):                  # unrolled, so the loads of CB chunks are in flight together
            c = c0 + j
            live = c < n_live
            nq = tl.where(live, NQ, 0)                 # rows to load (a bound: the interpreter makes `sig & live` an int mask)
            i = i0 + c
            mc_s = tl.load(M + i * (NQ + 1) + rows, mask=rows < nq, other=NEG)
            lc_s = tl.load(L + i * (NQ + 1) + rows, mask=rows < nq, other=0.)
            ac_s = tl.load(ACC + i * ((NQ + 1) * 2 * D) + rows[:, None] * (2 * D) + vc[None, :], mask=rows[:, None] < nq,
                           other=0.)
            mc_n = tl.load(M + i * (NQ + 1) + NQ, mask=live, other=NEG)
            lc_n = tl.load(L + i * (NQ + 1) + NQ, mask=live, other=0.)
            ac_n = tl.load(ACC + i * ((NQ + 1) * 2 * D) + NQ * 2 * D + vc, mask=vc < tl.where(live, 2 * D, 0), other=0.)
            mn_s = tl.maximum(m_s, mc_s)
            mn_n = tl.maximum(m_n, mc_n)
            a_s = tl.exp(m_s - mn_s)                   # all finite: an empty state (m = -1e30, l = 0, acc = 0) adds nothing
            b_s = tl.exp(mc_s - mn_s)
            a_n = tl.exp(m_n - mn_n)
            b_n = tl.exp(mc_n - mn_n)
            l_s = l_s * a_s + lc_s * b_s
            l_n = l_n * a_n + lc_n * b_n
            acc_s = acc_s * a_s[:, None] + ac_s * b_s[:, None]
            acc_n = acc_n * a_n + ac_n * b_n
            m_s = mn_s
            m_n = mn_n
    o_s = acc_s / tl.where(l_s > 0., l_s, 1.)[:, None]      # l = 0 only without any valid slot (or on padding rows): O = 0
    o_n = acc_n / tl.where(l_n > 0., l_n, 1.)
    _gda_epilogue(o_s, o_n, LAM, W, SCALE, O + b64 * so_b + h64 * so_h, so_j, eps, bad, NQ, QB, D)


def gda_decode_splits(B:int, G:int, S:int, block_n:int=64, device=None)->int:
    """The default number of slot chunks: sqrt(4*S/BN), which balances a chunk's walk over its slots against the
    combine's walk over the chunks (4 at a time), and at most one program per SM in all; at least 1 (so 1 once B*G
    alone fills the SMs). A function of the shapes and the device only (never of SLOT), so a captured graph keeps it."""
    dev = torch.device('cpu' if device is None else device)
    n_sm = torch.cuda.get_device_properties(dev).multi_processor_count if dev.type == 'cuda' else 8
    return max(1, min(n_sm // (B * G), round(math.sqrt(4 * S / block_n))))


def gda_decode_launch(q, k1, k2, v, bias, slot, lam, w, out_scale, eps:float, block_n:int=64, splits:int|None=None)->torch.Tensor:
    """The launch without checks: `o` (B, G, g, 2d) in q's dtype (shapes as `gda_decode`; k1, k2 (B, G, S, d) views).
    `splits` chunks of slots (None: `gda_decode_splits`); 1 is the single-pass kernel, more the split kernel and the
    combine, with fp32 scratch M, L (B*G, splits, g+1) and ACC (B*G, splits, g+1, 2d). `w` is made contiguous (the
    epilogue reads it with stride 1; a no-op for a module's weight)."""
    w = w.contiguous()
    B, G, g1, d = q.shape
    S = k1.shape[2]
    nsplit = gda_decode_splits(B, G, S, block_n, q.device) if splits is None else int(splits)
    o = torch.empty(B, G, g1 - 1, 2 * d, dtype=q.dtype, device=q.device)
    qb = max(16, 1 << (g1 - 2).bit_length())
    if nsplit == 1:
        gda_decode_kernel[(B * G,)](
            q, k1, k2, v, bias, slot, lam, w, out_scale, o, float(eps), d ** -0.5, S,
            q.stride(0), q.stride(1), q.stride(2), k1.stride(0), k1.stride(1), k1.stride(2), v.stride(0), v.stride(1), v.stride(2),
            bias.stride(0), o.stride(0), o.stride(1), o.stride(2),
            G=G, NQ=g1 - 1, QB=qb, D=d, BN=block_n, num_warps=4)
        return o
    m = torch.empty(B * G, nsplit, g1, dtype=torch.float32, device=q.device)
    l = torch.empty(B * G, nsplit, g1, dtype=torch.float32, device=q.device)
    acc = torch.empty(B * G, nsplit, g1, 2 * d, dtype=torch.float32, device=q.device)
    gda_decode_split_kernel[(B * G, nsplit)](
        q, k1, k2, v, bias, slot, m, l, acc, d ** -0.5, S,
        q.stride(0), q.stride(1), q.stride(2), k1.stride(0), k1.stride(1), k1.stride(2), v.stride(0), v.stride(1), v.stride(2),
        bias.stride(0),
        G=G, NQ=g1 - 1, QB=qb, D=d, BN=block_n, NSPLIT=nsplit, num_warps=4)
    gda_decode_combine_kernel[(B * G,)](
        slot, m, l, acc, lam, w, out_scale, o, float(eps), S, o.stride(0), o.stride(1), o.stride(2),
        G=G, NQ=g1 - 1, QB=qb, D=d, BN=block_n, NSPLIT=nsplit, CB=4, num_warps=4)
    return o


@torch.library.custom_op('motif_nb::gda_decode', mutates_args=())
def _gda_decode_op(q:torch.Tensor, k1:torch.Tensor, k2:torch.Tensor, v:torch.Tensor, bias:torch.Tensor, slot:torch.Tensor,
                   lam:torch.Tensor, w:torch.Tensor, out_scale:torch.Tensor, eps:float, splits:int|None=None)->torch.Tensor:
    return gda_decode_launch(q, k1, k2, v, bias, slot, lam, w, out_scale, eps, splits=splits)

@_gda_decode_op.register_fake
def _(q, k1, k2, v, bias, slot, lam, w, out_scale, eps, splits=None):
    B, G, g1, d = q.shape
    return q.new_empty(B, G, g1 - 1, 2 * d)


def _check(q, k, v, bias, slot, lam, w, out_scale, eps):
    "Raise a ValueError/TypeError naming the argument unless the shapes, dtypes and devices fit together and eps is a finite float >= 0."
    op = 'gda_decode'
    for n, t in (('q', q), ('k', k), ('v', v), ('bias', bias), ('slot', slot), ('lam', lam), ('subln_w', w), ('out_scale', out_scale)):
        if not isinstance(t, torch.Tensor): raise TypeError(f"{op}: {n} must be a torch.Tensor, got {type(t).__name__}")
        if t.device != q.device: raise ValueError(f"{op}: {n} is on {t.device} but q is on {q.device}")
    if q.ndim != 4 or q.shape[2] < 2: raise ValueError(f"{op}: q must be (B, G, g+1, head_dim) with g >= 1, got shape {tuple(q.shape)}")
    B, G, g1, d = q.shape
    if d < 16 or d & (d - 1): raise ValueError(f"{op}: head_dim must be a power of two >= 16, got {d}")
    if k.ndim != 5 or k.shape[0] != 2 or k.shape[1:3] != (B, G) or k.shape[4] != d:
        raise ValueError(f"{op}: k must be (2, B, G, S, head_dim) = (2, {B}, {G}, S, {d}), got shape {tuple(k.shape)}")
    S = k.shape[3]
    if tuple(v.shape) != (B, G, S, 2 * d): raise ValueError(f"{op}: v must be (B, G, S, 2*head_dim) = {(B, G, S, 2 * d)}, got {tuple(v.shape)}")
    if tuple(bias.shape) not in ((B, S), (B, 1, 1, S)):
        raise ValueError(f"{op}: bias must be (B, S) = ({B}, {S}) or (B, 1, 1, S) = ({B}, 1, 1, {S}), got shape {tuple(bias.shape)}")
    if q.dtype not in (torch.float16, torch.bfloat16, torch.float32) or k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"{op}: q, k, v must share one of fp16, bf16, fp32, got {q.dtype}, {k.dtype}, {v.dtype}")
    if slot.numel() != 1 or slot.dtype not in (torch.int32, torch.int64):     # narrower ints would wrap at slot + 1 in the kernels
        raise ValueError(f"{op}: slot must be one int32 or int64, got {slot.dtype} of shape {tuple(slot.shape)}")
    if lam.numel() != 1 or out_scale.numel() != 1: raise ValueError(f"{op}: lam and out_scale must be scalars, got shapes {tuple(lam.shape)}, {tuple(out_scale.shape)}")
    if tuple(w.shape) != (2 * d,): raise ValueError(f"{op}: subln_w must be (2*head_dim,) = ({2 * d},), got {tuple(w.shape)}")
    if not bias.is_floating_point():
        raise TypeError(f"{op}: bias must be a float additive mask (0 on valid slots, -inf on empty ones), got {bias.dtype}; "
                        f"convert a bool mask with torch.zeros(mask.shape).masked_fill(~mask, float('-inf'))")
    if S == 0: raise ValueError(f"{op}: the cache has no slots (S = 0)")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real): raise TypeError(f"{op}: eps must be a float, got {eps!r} ({type(eps).__name__})")
    if not 0 <= eps < math.inf: raise ValueError(f"{op}: eps must be a finite float >= 0, got {eps!r}")
    for n, t in (('q', q), ('k', k), ('v', v), ('bias', bias)):
        if t.stride(-1) != 1: raise ValueError(f"{op}: {n} must be contiguous in its last dim, got strides {t.stride()}")
    if slot.device.type == 'cpu' and not torch.compiler.is_compiling():     # a host read only where it costs no device sync
        s = int(slot.reshape(()))
        if not 0 <= s < S: raise ValueError(f"{op}: slot must lie in [0, S) = [0, {S}), got {s}")


def gda_decode(q:torch.Tensor, # (B, G, g+1, d): per group its g signal queries, then the noise query
               k:torch.Tensor, # (2, B, G, S, d): K1 and K2 of the cache (after RoPE)
               v:torch.Tensor, # (B, G, S, 2d): [V1 || V2] of the cache
               bias:torch.Tensor, # (B, S) or (B, 1, 1, S): 0 on valid slots, -inf on empty ones
               slot:torch.Tensor, # one int in [0, S): the newest token's slot; slots after it are not read
               lam:torch.Tensor, subln_w:torch.Tensor, eps:float, # λ (scalar), the subln weight (2d,) and eps
               out_scale:torch.Tensor, # 1 − λ_init (scalar)
               splits:int|None=None, # chunks of slots run by separate programs (None: from the shapes; 1: a single pass)
              )->torch.Tensor: # (B, G, g, 2d) in q's dtype
    """GDA of one new token per row over a static cache, with the epilogue: Triton programs per (row, group[, slot chunk]).
    `slot` must lie in [0, S). It is checked on the host when it is a CPU tensor; on a GPU the kernels read it on the
    device (a host check would cost a sync and break CUDA-graph replay; `StaticKVCache` checks its capacity on the host),
    never read outside the cache whatever it holds, and write NaN everywhere for a slot out of range. `bias` is a float additive mask (a bool one is refused):
    a slot is empty where it is -inf (or NaN), and only then are its K/V rows not read (the module docstring). Inference only: the output has no graph."""
    _check(q, k, v, bias, slot, lam, subln_w, out_scale, eps)
    if splits is not None and (isinstance(splits, bool) or not isinstance(splits, int) or splits < 1):
        raise ValueError(f"gda_decode: splits must be None or an int >= 1, got {splits!r}")
    bias = bias.reshape(bias.shape[0], bias.shape[-1])
    if torch.compiler.is_compiling():
        return torch.ops.motif_nb.gda_decode(q, k[0], k[1], v, bias, slot, lam, subln_w, out_scale, float(eps), splits=splits)
    return gda_decode_launch(q, k[0], k[1], v, bias, slot, lam, subln_w, out_scale, eps, splits=splits)
