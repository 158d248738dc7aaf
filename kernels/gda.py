r"""Grouped Differential Attention (GDA) in Triton: a fused forward with the subln epilogue, and its backward.

Explained and tested in `nbs/02_attention.ipynb` (`motif_nb.attention.gda_triton` is the entry point); benchmarked in
`nbs/bench/02_attention.ipynb` and tuned in `nbs/bench/02a_gda_tune.ipynb` (`python -m motif_nb.bench.gda_tune`).

Math (Motif-2-12.7B, arXiv 2511.07464; Differential Transformer, arXiv 2410.05258). A layer has G groups; each group has
g signal query heads, one noise query head, keys K1 (signal) and K2 (noise) and values V = [V1 || V2] of width 2D.
Per signal head h of a group, with causal (and per-document) masking:
    O_s = softmax(Q_h K1^T / sqrt(D)) V,   O_n = softmax(Q_n K2^T / sqrt(D)) V   (O_n once per group),
    A = O_s - lambda O_n,   Y = A * rstd * w * out_scale,   rstd = (mean(A^2) + eps)^(-1/2) over the 2D columns,
with out_scale = 1 - lambda_init and w the subln weight. Backward, with u = dY * w * out_scale:
    dA = rstd (u - A rstd^2 mean(u A)),  dw = sum dY A rstd out_scale,  dO_s = dA,  dO_n = -lambda sum_h dA_h,
    dlambda = -sum dA O_n,
then the flash-attention backward of each map: dV = P^T dO, dS = P (dO V^T - Delta), dQ = dS K / sqrt(D),
dK = dS^T Q / sqrt(D), with Delta = rowsum(dO * O) and P recomputed from the saved lse.

Layouts (the projection outputs after RoPE, read in place; every stride is a kernel argument, and the tensor
descriptors below need the last dimension contiguous, a 16-byte aligned start and 16-byte multiples for the other
strides; `tma_layout` copies an input that lacks them):
    q (B, T, G, g+1, D): signal queries h < g, the noise query at h = g    strides sq_b, sq_t, sq_g, sq_h; dq the same
    k (B, T, G, 2, D):   K1 at h = 0, K2 at h = 1                          strides sk_b, sk_t, sk_g, sk_h; dk the same
    v (B, T, G, 2D):     [V1 || V2]                                        strides sv_b, sv_t, sv_g;       dv the same
    y, a, dy (B, T, G, g, 2D): output, A and dY                            strides sy_b, sy_t, sy_g, sy_h
    o2 (B, T, G, 2D): O_n                                                  strides so_b, so_t, so_g
    do (B, T, G, g+1, 2D): dO of the g signal maps, then the noise map's   strides sd_b, sd_t, sd_g, sd_h
    lse1, rstd, delta1 (B, G, g, T) fp32: per signal row                   strides sl_b, sl_g, sl_h (T contiguous)
    lse2, delta2 (B, G, T) fp32: per noise row                             strides sn_b, sn_g
y, a, o2 are in the input dtype (bf16 in training); every sum and elementwise product is fp32, and the matrix
products (`tl.dot`) accumulate in fp32.
Precision of fp32 inputs: no `tl.dot` sets `input_precision`, so Triton's default applies, which on NVIDIA GPUs is TF32:
with fp32 q, k, v every `tl.dot` multiplies its operands with 10-bit mantissas (accumulating in fp32), so fp32 results
on this path match the PyTorch fp32 paths only to TF32 accuracy. `GDA`'s 'auto' therefore takes the kernels only for
bf16/fp16, for which the setting makes no difference. The interpreter ignores the setting and multiplies fp32 in fp32.

Abbreviations: BM query rows and BN key rows of a tile; BT positions per tile and RB tiles per program of the row-wise
backward kernel; GP = g rounded up to a power of two (tile width over the g signal heads); CH heads per chunk of the
program order; lse = log-sum-exp of a softmax row (base 2: log2(e) is folded into qk_scale, so lse is in log2 units);
Delta = rowsum(dO * O); D = head_dim.

Schedule. Grids are 1-D; `_lpt` maps a program to its (block, head): heads go in chunks of CH, and within a chunk every
head's heaviest causal block runs first. Small chunks keep what the chunk's programs share (K/V, or Q/dO) in L2;
longest-first keeps long programs away from the end of the launch; CH = max(1, tokens // T) with a token budget per
launch (`GDASettings.chunk_tokens`).
  CH is a run-time argument of every kernel (`do_not_specialize`), not a value Triton may compile in. CH is 1 whenever
  a launch spans a single head or group, or the chunk's token budget holds fewer than two heads of length T; a build
  with CH = 1 and T = 1 (one block per head, so the whole program order folds to constants) breaks the backward on
  Triton 3.6 for sm_90a (ptxas crashes building the dV kernel, or a backward launch reads out of bounds, depending on
  D and g). With CH passed at run time the same shapes run; it costs a few integer operations per program.
  forward, two launches of `gda_fwd_kernel`: one program = one head x BM queries, online softmax over BN-key tiles
    with the accumulator [BM, 2D], running max and sum in registers (the tiles entirely before the block run without
    a mask). First the G noise heads (write O_n, lse2), then the G*g signal heads, whose epilogue reads O_n of its rows
    and writes Y, lse1, rstd (and A only when Y cannot give it back, below). The running maxima are the max logits
    (one scalar store per program). The epilogue stays in the signal program: moved into a row-wise launch of its
    own (signal programs writing O_s as noise programs write O_n, the row-wise kernel reading O_s and O_n back) the
    forward is slower at both benchmark lengths on an H200 (`python -m motif_nb.bench.gda_ab`, one process).
  backward: `gda_bwd_pre_kernel` (row-wise, memory-bound: one program = one group x RB*BT positions as [BT, GP, 2D]
    tiles; writes dO of both maps, Delta of both, partial sums of dw and dlambda), then either
    'split' (default): `gda_bwd_dv_kernel` (one program = one group x BN keys: dV over the g signal maps against K1 and
    the noise map against K2, one accumulator) and `gda_bwd_dk_kernel` (dK1 from the g signal maps or dK2 from the
    noise map, two programs per group and key block, one launch), or
    'fused': `gda_bwd_dkdv_kernel` twice (noise map, then the signal maps adding into dV), both accumulators;
    then `gda_bwd_dq_kernel` (one program = one head x BM queries, signal and noise heads in one launch).
  The key-block kernels compute the transposed map P^T = exp2(K Q^T - lse) directly, so that no register tile is
  transposed; dV and dK loop over maps x query blocks in one loop, so the software pipeline runs across the maps.
Memory traffic: the forward reads q, k, v once per head program (K/V of a group from L2 for its g+1 heads) and writes
y, o2 and the fp32 statistics; the backward reads them once more, writes dO of both maps (input dtype), and dq, dk, dv.
A is not written: Y = A rstd w out_scale is already in memory, so the backward divides it back, A = Y / (rstd w
out_scale), which costs A one rounding to the output dtype, as a stored A would (the forward's signal launch saves one
[BM, 2D] store per program; the row-wise backward reads Y where it would read A, the same bytes). Division needs every
|w out_scale| in a band where Y neither overflows nor underflows the output dtype (`a_band`: 2^-100 to 2^100 for bf16
and fp32, narrower for fp16); a weight outside it (a zeroed channel, say) makes the forward store A and the backward
read it, a choice both kernels make from the same fp32 test on w (`_keep_a`), on the device, with no host sync. The
buffer for A is allocated either way, since the host does not read w.

Tunable (`GDASettings`): the backward schedule ('split' or 'fused'); the row-wise kernel's (BT, RB, warps); the token
budget of each launch's program order; optionally a pinned (BM, BN, warps, stages) per kernel instead of autotuning
over `CONFIGS` (the fastest candidates of an H200 sweep, figures/gda_tune*).

Tiles. Every tile of Q and dO, and the K/V tiles of the forward and dQ loops, is read through a tensor descriptor (no
make_block_ptr, which is gone in triton 3.9).
On Hopper a descriptor load is one TMA copy into shared memory: no per-element address arithmetic or masks in
registers, and a smaller shared-memory footprint than pointer loads, which makes room for deeper pipelines (the forward
runs three stages at BM=128). Rows past T read as 0; rows of the tile between the masked bound and T are real keys or
queries, which the masks below hide.
  The descriptors are made on the host (`_desc`): one per tensor, over all of it, indexed (b, t, group[, head]) with a
  tile of one batch row, BM or BN positions and the whole last dimension ([1, BM, 1, 1, D] for Q), whose sizes each
  autotune config sets before its launch (`_desc_blocks`, the configs' pre-hook). They are kernel arguments: a program
  uses them as they are. A descriptor made on the device (`tl.make_tensor_descriptor`) is written to global scratch
  memory and fenced before its first use, once per program and descriptor: a fixed cost per program, which shows
  where programs are short (short T). A batch row is a dimension of its own, so a tile never reads or writes the next
  row's positions (a descriptor store writes only the rows before T). The head is an index too, so a program picks
  its map at run time by coordinates alone: the backward's dO of all g+1 maps of a group lies in one (B, T, G, g+1, 2D)
  buffer (`bwd_buffers`: do1 and do2 are its slices), whose head j is map j, as head j of Q is; the dV and dK loops
  over maps x query blocks step the head index.
  The forward's [BM, 2D] epilogue tiles go through descriptors too: the signal programs read O_n and write Y and A, the
  noise programs write O_n, each as one TMA copy. A pointer epilogue holds a 64-bit address and a mask per 16-byte
  vector in registers, which the forward at BM=128 does not have (it spills): through descriptors the signal launch
  spills less (the tuner records `n_spills`) and runs faster. The small per-row reads and writes (lse, rstd, Delta,
  document starts, flags), the key-block kernels' one K/V tile per program and the backward's stores stay pointer
  accesses with masks (the interpreter does not catch out-of-bounds accesses).
Masks: causal, in bounds, and with VARLEN the key must not precede the query's document start. Runs on triton 3.6 to
3.9 and under the interpreter (TRITON_INTERPRET=1, fp32/fp16).

What the passes take (`gda_fwd`/`gda_bwd` check it on the host, naming the tensor, before any launch; `_check_inputs`):
  - q, k, v of one dtype, fp16, bf16 or fp32 (fp64 does not compile: the accumulators are fp32);
  - head_dim D a power of two from 16 to 128 (`MAX_HEAD_DIM`). Compiled for sm_90a (`motif_nb.bench.resources.compile_only`,
    on a CPU), every kernel has a candidate of `CONFIGS` within the 227 KiB of shared memory per block at D = 128; at
    D = 256 one forward candidate fits, and no candidate of the default ('split') backward's dV and dK kernels does
    (263 to 590 KB with Triton 3.9), so that backward could only fail on the GPU. (The fused backward's two smaller candidates would
    fit at 256, but no D = 256 launch has been run or tuned, so the passes refuse it.);
  - an empty input (B, T or G = 0): the forward returns empty outputs and the backward zero gradients, with no launch.
Gradients are first-order only: the backward kernels' outputs have no graph, so `GDAFunction` refuses a backward run
with create_graph=True (RuntimeError), and the `motif_nb::gda_bwd` op has no autograd formula (differentiating its
result raises, as torch.compile's double backward does). out_scale is a constant of the passes (a float, or a 0-d
tensor read once): `gda` refuses a tensor out_scale that requires grad while grad mode is on, whose gradient would be
dropped.

Non-finite values (forward): a NaN/inf reaches exactly the queries that can see it, never one across the mask.
  Keys and queries need nothing: a masked logit is replaced (`where`, not added to), so a NaN/inf in K or Q stays in the
  rows that see it (where an infinite logit acts by its sign: -inf drops the key, +inf gives NaN). Values do: a masked
  p is 0 and 0 * NaN = NaN inside tl.dot(p, v), so a NaN in V_j would reach every query of every tile that loads row j
  (the earlier queries of its diagonal tile, and with VARLEN the queries of the next document, whose rows also have
  p = exp2(NEG - NEG) = 1 before their first visible key). Zeroing the rows that no query
  of the tile sees is not enough: within a diagonal or document-boundary tile a key is visible to some rows and not to
  others. So `gda_nonfinite_kernel` first flags the value rows holding a NaN/inf (one pass over v, plus a single "any"
  flag), and every program whose launch saw a flag runs its masked tiles through the guarded instantiation of
  `_fwd_inner` (GUARD): flagged rows load as 0, a masked p is exactly 0, and a visible flagged p is NaN, which the row sum
  and the dot carry to that query's output only. The unmasked tiles (every key visible to every query of the tile) run
  the plain loop in both cases, and without a flag the masked tiles do too: the guard is a separate instantiation chosen
  per program by one scalar load, so finite inputs run only the plain loops and give the bits of an unguarded kernel;
  their cost is the pre-pass (one read of v) and that load. With VARLEN every tile is masked, so with a flag the guarded
  loop runs on every tile of the launch.
Backward: no such promise. p = 0 times a NaN of V (dP = dO V^T) or K (dQ = dS K) or Q (dK = dS^T Q) leaks in the masked
  tiles of the dQ and dK/dV kernels as in the forward; guarding it would not help, since the weight gradient of every
  linear layer, dW = sum_t x_t^T dy_t, already contains 0 * NaN for the token whose activation x_t is NaN."""
import math, os
from dataclasses import dataclass, field
import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor


def _cdiv(a:int, b:int)->int:
    "Ceil division on the host (`triton.cdiv` is a constexpr function: about 2 us per call from Python)."
    return -(-a // b)


__all__ = ['LOG2E', 'CONFIGS', 'CHUNK_TOKENS', 'configs', 'GDASettings', 'fwd_buffers', 'bwd_buffers', 'nonfinite_rows',
           'tma_layout', 'a_band', 'launch_fwd', 'launch_bwd_pre', 'launch_bwd_dv', 'launch_bwd_dk', 'launch_bwd_dkdv', 'launch_bwd_dq',
           'gda_fwd', 'gda_bwd', 'GDAFunction', 'gda', 'MAX_HEAD_DIM']

_INTERPRET = os.environ.get('TRITON_INTERPRET', '0') not in ('', '0', 'false', 'False')
LOG2E = 1.4426950408889634
NEG: tl.constexpr = tl.constexpr(-1.0e30)   # finite: fully masked rows stay NaN-free

# Autotune candidates (BM, BN, warps, stages) per kernel: the three fastest of an H200 sweep (figures/gda_tune.csv, summed
# over its three shapes), fastest first. In that sweep every layout's outputs agree with the baseline layout's within 1.5e-3
# (err_vs_first); `python -m motif_nb.bench.gda_tune check` runs each against fp32 SDPA (figures/gda_tune_check.csv).
CONFIGS = {'fwd': [(128, 64, 8, 3), (128, 128, 8, 2), (128, 64, 8, 2)],
           'dkdv': [(32, 64, 4, 2), (16, 64, 4, 2), (64, 128, 8, 2)],
           'dq': [(128, 64, 8, 2), (64, 64, 4, 3), (64, 32, 4, 2)],
           'dv': [(64, 128, 8, 3), (64, 128, 8, 2), (128, 128, 8, 2)],
           'dk': [(64, 128, 8, 2), (64, 64, 4, 3), (32, 128, 8, 3)]}


def _desc(t, axis:str):
    """A host-made tensor descriptor over all of `t` (B, T, ...) read in tiles of one batch row, BM or BN (`axis`)
    positions and all of the last dimension; `_desc_blocks` sets the tile when the block sizes are known."""
    e = t.element_size()
    st = [s if s * e % 16 == 0 or n > 1 else 16 // e for s, n in zip(t.stride(), t.shape)]   # size-1 dims: any aligned stride
    d = TensorDescriptor(t, list(t.shape), st[:-1] + [1], [1] * t.dim())
    d.axis = axis
    return d


def _desc_blocks(nargs:dict):
    "Pre-launch hook: the tile of every host-made descriptor argument, [1, BM or BN, 1, ..., last dim]."
    for v in nargs.values():
        if isinstance(v, TensorDescriptor): v.block_shape = [1, nargs[v.axis]] + [1] * (len(v.shape) - 3) + [v.shape[-1]]


def configs(kind:str, only:int|None=None)->list:
    "Autotune candidates of kernel `kind` as `triton.Config`s (`only`: just candidate `only`); one small one under the interpreter."
    if _INTERPRET: return [triton.Config({'BM': 16, 'BN': 16}, num_warps=4, num_stages=1, pre_hook=_desc_blocks)]
    table = CONFIGS[kind] if only is None else [CONFIGS[kind][min(only, len(CONFIGS[kind]) - 1)]]
    return [triton.Config({'BM': bm, 'BN': bn}, num_warps=w, num_stages=s, pre_hook=_desc_blocks) for bm, bn, w, s in table]


# ---------------------------------------------------------------------------------------------------------------------
# Triton: helpers and kernels

@triton.jit
def _keep_a(ws, a_lo, a_hi):
    """Whether the forward must store A: some |w * out_scale| (ws, fp32) lies outside [a_lo, a_hi] or is NaN, so that
    Y = A rstd ws cannot be divided back into A in the output dtype. The forward and the backward evaluate it on the same
    fp32 values, so they always agree."""
    return tl.sum(tl.where((tl.abs(ws) >= a_lo) & (tl.abs(ws) <= a_hi), 0, 1), 0) > 0


@triton.jit
def _fwd_inner(acc, l, m, q, kd, vd, b, grp, kh, fb, lo, hi, T, ts, dst, qk_scale, sf_t,
               D: tl.constexpr, BN: tl.constexpr, MASK: tl.constexpr, VARLEN: tl.constexpr, GUARD: tl.constexpr):
    """Online softmax of one query tile over keys lo..hi (BN at a time): accumulator, row sums and row maxima. K and V
    tiles come through the tensor descriptors kd, vd (rows past T read as 0; rows hi..T are real keys, which the
    mask hides). MASK: the causal (and document) mask. GUARD (masked tiles of a v with a non-finite row): the value
    rows flagged in `fb` (stride sf_t) are zeroed, a masked probability is exactly 0 and a visible flagged one NaN."""
    for n0 in range(lo, hi, BN):
        kn = n0 + tl.arange(0, BN)
        kok = kn < hi
        k = kd.load([b, n0, grp, kh, 0]).reshape([BN, D])
        v = vd.load([b, n0, grp, 0]).reshape([BN, 2 * D])
        if GUARD:
            # p = 0 times a NaN/inf value is NaN in the dot: flagged rows (anywhere in the tile, also past hi) are
            # zeroed, and p below carries the NaN to exactly the rows that see the key (a key can be visible to some
            # rows of the tile, not to others)
            vbad = tl.load(fb + kn * sf_t, mask=kn < T, other=0) != 0
            v = tl.where(vbad[:, None], 0., v)
        s = tl.dot(q, tl.trans(k)) * qk_scale
        if MASK:
            mk = (kn[None, :] <= ts[:, None]) & kok[None, :]
            if VARLEN:
                mk = mk & (kn[None, :] >= dst[:, None])
            s = tl.where(mk, s, NEG)
        mn = tl.maximum(m, tl.max(s, 1))
        p = tl.exp2(s - mn[:, None])
        if GUARD:
            # masked: exactly 0 (a row with no visible key yet has mn = NEG, where exp2(NEG - NEG) = 1)
            p = tl.where(mk, tl.where(vbad[None, :], float('nan'), p), 0.)
        al = tl.exp2(m - mn)
        l = l * al + tl.sum(p, 1)
        acc = acc * al[:, None] + tl.dot(p.to(v.dtype), v)
        m = mn
    return acc, l, m


@triton.jit
def gda_nonfinite_kernel(V, FLAGS, ANY, sv_b, sv_t, sv_g, N, T, G, D: tl.constexpr, R: tl.constexpr):
    "Flags (B, T, G) of the value rows of V (B, T, G, 2D) that hold a NaN or inf, R rows per program; ANY = 1 if one does."
    r = tl.program_id(0) * R + tl.arange(0, R)
    ok = r < N
    b = (r // (T * G)).to(tl.int64); t = (r // G) % T; grp = r % G
    vc = tl.arange(0, 2 * D)
    v = tl.load(V + (b * sv_b + t.to(tl.int64) * sv_t + grp * sv_g)[:, None] + vc[None, :], mask=ok[:, None], other=0.)
    bad = tl.max(tl.where(tl.abs(v) < float('inf'), 0, 1), 1)     # abs(NaN) < inf is False too
    tl.store(FLAGS + r, bad.to(tl.uint8), mask=ok)
    tl.atomic_max(ANY, tl.max(bad, 0))


@triton.jit
def _lpt(T, BLK: tl.constexpr, LAST_FIRST: tl.constexpr, CH):
    """Program of a 1-D grid -> (block, head). Heads go in chunks of CH; within a chunk, every head's block with the most
    causal work (the last query block, or the first key block) first, then the next block. CH = 1 is head-major (one
    head's blocks, then the next head's); CH = all heads is longest-first over the whole launch."""
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
def _head_block(T, G, g, CH, BM: tl.constexpr, SIGNAL: tl.constexpr):
    "A per-head program: query block, head, batch x group, head in group, K head (0: K1, 1: K2), batch, group, positions, mask."
    pid_m, pid_h = _lpt(T, BM, True, CH)
    if SIGNAL:
        bg = pid_h // g; j = pid_h % g; kh = 0
    else:
        bg = pid_h; j = g; kh = 1
    ts = pid_m * BM + tl.arange(0, BM)
    return pid_m, pid_h, bg, j, kh, bg // G, bg % G, ts, ts < T


@triton.autotune(configs=configs('fwd'), key=['T', 'D', 'VARLEN', 'SIGNAL'])
@triton.jit(do_not_specialize=['CH'])
def gda_fwd_kernel(Q, K, V, W, LAM, Y, A, O2, LSE1, LSE2, RSTD, ML, DOC_START, VBAD, VBAD_ANY,
                   sl_b, sl_g, sl_h, sn_b, sn_g, sml, sf_b, sf_t,
                   T, G, g, qk_scale, eps, out_scale, a_lo, a_hi, CH,
                   D: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, VARLEN: tl.constexpr, SIGNAL: tl.constexpr):
    """One head x BM positions. SIGNAL=False: the noise heads (write O_n, lse2). SIGNAL=True: signal heads + epilogue.
    Q, K, V, Y, A, O2 are host-made tensor descriptors over the whole tensors (`_desc`), indexed (b, t, group[, head])."""
    pid_m, pid_h, bg, j, kh, b, grp, ts, ok = _head_block(T, G, g, CH, BM, SIGNAL)
    t0 = pid_m * BM
    vc = tl.arange(0, 2 * D)
    b64 = b.to(tl.int64)
    q = Q.load([b, t0, grp, j, 0]).reshape([BM, D])
    fb = VBAD + b64 * sf_b + grp             # flags (B, T, G) of the value rows with a NaN/inf
    guard = tl.load(VBAD_ANY) != 0           # v has one: the masked tiles take the guarded loop
    hi = tl.minimum(t0 + BM, T)
    m = tl.full([BM], NEG, tl.float32)
    l = tl.zeros([BM], tl.float32)
    acc = tl.zeros([BM, 2 * D], tl.float32)
    if VARLEN:
        lo = tl.load(DOC_START + t0)
        dst = tl.load(DOC_START + ts, mask=ok, other=0)
        if guard:
            acc, l, m = _fwd_inner(acc, l, m, q, K, V, b, grp, kh, fb, lo, hi, T, ts, dst, qk_scale, sf_t, D, BN, True, True, True)
        else:
            acc, l, m = _fwd_inner(acc, l, m, q, K, V, b, grp, kh, fb, lo, hi, T, ts, dst, qk_scale, sf_t, D, BN, True, True, False)
    else:
        n_full = (t0 // BN) * BN          # key tiles entirely before the block: no mask
        acc, l, m = _fwd_inner(acc, l, m, q, K, V, b, grp, kh, fb, 0, n_full, T, ts, ts, qk_scale, sf_t, D, BN, False, False, False)
        if guard:
            acc, l, m = _fwd_inner(acc, l, m, q, K, V, b, grp, kh, fb, n_full, hi, T, ts, ts, qk_scale, sf_t, D, BN, True, False, True)
        else:
            acc, l, m = _fwd_inner(acc, l, m, q, K, V, b, grp, kh, fb, n_full, hi, T, ts, ts, qk_scale, sf_t, D, BN, True, False, False)
    l = tl.where(l > 0, l, 1.)
    o = acc / l[:, None]
    lse = m + tl.log2(l)
    # max logits for free: the running maxima are the row maxima of the visible scaled logits
    tl.store(ML + pid_h.to(tl.int64) * sml + pid_m, tl.max(tl.where(ok, m, NEG), 0))
    if SIGNAL:
        on = O2.load([b, t0, grp, 0]).reshape([BM, 2 * D]).to(tl.float32)
        lam = tl.load(LAM)
        a = o - lam * on
        rstd = 1.0 / tl.sqrt(tl.sum(a * a, 1) / (2 * D) + eps)
        ws = tl.load(W + vc).to(tl.float32) * out_scale
        y = a * rstd[:, None] * ws[None, :]
        Y.store([b, t0, grp, j, 0], y.to(Y.dtype).reshape([1, BM, 1, 1, 2 * D]))
        if _keep_a(ws, a_lo, a_hi):      # else the backward divides Y back into A: one [BM, 2D] store fewer
            A.store([b, t0, grp, j, 0], a.to(A.dtype).reshape([1, BM, 1, 1, 2 * D]))
        soff = b64 * sl_b + grp * sl_g + j * sl_h + ts
        tl.store(LSE1 + soff, lse, mask=ok)
        tl.store(RSTD + soff, rstd, mask=ok)
    else:
        O2.store([b, t0, grp, 0], o.to(O2.dtype).reshape([1, BM, 1, 2 * D]))
        tl.store(LSE2 + b64 * sn_b + grp * sn_g + ts, lse, mask=ok)


@triton.jit
def gda_bwd_pre_kernel(DY, Y, A, O2, RSTD, W, LAM, DO, DELTA1, DELTA2, DW_PART, DLAM_PART,
                       sy_b, sy_t, sy_g, sy_h, so_b, so_t, so_g, sd_b, sd_t, sd_g, sd_h, sl_b, sl_g, sl_h, sn_b, sn_g, sdw,
                       T, G, g, n_chunks, out_scale, a_lo, a_hi,
                       D: tl.constexpr, GP: tl.constexpr, BT: tl.constexpr, RB: tl.constexpr):
    """Row-wise part of the backward: subln backward, dO of both maps, Delta = rowsum(dO*O), partial dw and dlambda.
    DO (strides sd_*) holds the g+1 maps' dO of a group side by side: signal head j at j, the noise map at g.
    One program = one group x RB*BT positions, BT at a time as [BT, GP, 2D] tiles: the g signal heads of a position are
    one contiguous g*2D run, read in one load (memory-bound: the bytes in flight set the speed). A is read where the
    forward stored it (`_keep_a`), else recovered as Y * (1 / rstd) * (1 / (w out_scale)): two multiplies per element,
    the reciprocals once per row and once per program. The test is on the device and the same for every program (w is
    one vector), so every program takes the same branch; each branch loads from its own kernel argument."""
    pid = tl.program_id(0)
    bg = pid // n_chunks; chunk = pid % n_chunks
    b = bg // G; grp = bg % G
    b64 = b.to(tl.int64)
    jj = tl.arange(0, GP); vc = tl.arange(0, 2 * D)
    w = tl.load(W + vc).to(tl.float32) * out_scale
    keep_a = _keep_a(w, a_lo, a_hi)
    iw = 1.0 / tl.where(keep_a, 1.0, w)     # used only when A is recovered, so every w is in the band then
    lam = tl.load(LAM)
    dw = tl.zeros([2 * D], tl.float32)
    dlam = tl.zeros([BT], tl.float32)
    for r in range(RB):
        tn = (chunk * RB + r) * BT + tl.arange(0, BT)
        ok = tn < T
        okj = ok[:, None] & (jj[None, :] < g)
        t64 = tn.to(tl.int64)
        o2off = (b64 * so_b + t64 * so_t + grp * so_g)[:, None] + vc[None, :]
        yoff = ((b64 * sy_b + t64 * sy_t + grp * sy_g)[:, None] + jj[None, :] * sy_h)[:, :, None] + vc[None, None, :]
        drow = b64 * sd_b + t64 * sd_t + grp * sd_g
        doff = (drow[:, None] + jj[None, :] * sd_h)[:, :, None] + vc[None, None, :]
        soff = b64 * sl_b + grp * sl_g + jj[None, :] * sl_h + tn[:, None]         # rstd / Delta1 rows
        o2 = tl.load(O2 + o2off, mask=ok[:, None], other=0.).to(tl.float32)
        dy = tl.load(DY + yoff, mask=okj[:, :, None], other=0.).to(tl.float32)
        rstd = tl.load(RSTD + soff, mask=okj, other=1.)       # 1, not 0: a masked row's 1 / rstd stays finite
        if keep_a:
            a = tl.load(A + yoff, mask=okj[:, :, None], other=0.).to(tl.float32)
        else:
            a = tl.load(Y + yoff, mask=okj[:, :, None], other=0.).to(tl.float32) * ((1.0 / rstd)[:, :, None] * iw[None, None, :])
        u = dy * w[None, None, :]
        c = rstd * rstd * tl.sum(u * a, 2) / (2 * D)
        da = rstd[:, :, None] * (u - a * c[:, :, None])
        dw += tl.sum(tl.sum(dy * a * rstd[:, :, None], 1), 0)
        tl.store(DO + doff, da.to(DO.dtype.element_ty), mask=okj[:, :, None])
        tl.store(DELTA1 + soff, tl.sum(da * (a + lam * o2[:, None, :]), 2), mask=okj)
        s2 = tl.sum(tl.sum(da, 1) * o2, 1)                                      # sum_c dsum * O_n, dsum = sum_j dA_j
        tl.store(DO + (drow + g * sd_h)[:, None] + vc[None, :], (-lam * tl.sum(da, 1)).to(DO.dtype.element_ty), mask=ok[:, None])
        tl.store(DELTA2 + b64 * sn_b + grp * sn_g + tn, -lam * s2, mask=ok)
        dlam -= s2
    tl.store(DW_PART + pid * sdw + vc, dw * out_scale)
    tl.store(DLAM_PART + pid, tl.sum(dlam, 0))


@triton.jit
def _bwd_cols(k, Q, DO, b, grp, j, LSE, DOC_START, m0, T, kn, kok, qk_scale,
              D: tl.constexpr, BM: tl.constexpr, MASK: tl.constexpr, VARLEN: tl.constexpr):
    """Query block m0 of map j of group (b, grp) against a key tile, keys on rows: positions, in-bounds mask, Q^T, dO
    and the (masked) transposed probabilities P^T (BN x BM). Map j's queries are head j of Q and its dO head j of DO
    (j = g: the noise map). Computing P^T = exp2(K Q^T - lse) directly keeps every later product in the layout the
    tensor cores read (a transposed register tile would go through shared memory)."""
    ts = m0 + tl.arange(0, BM)
    ok = ts < T
    qT = tl.trans(Q.load([b, m0, grp, j, 0]).reshape([BM, D]))
    do = DO.load([b, m0, grp, j, 0]).reshape([BM, 2 * D])
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
def _dkdv_inner(dv, dk, k, v, Q, DO, b, grp, j, LSE, DELTA, DOC_START, m_lo, m_hi, T, kn, kok, qk_scale,
                D: tl.constexpr, BM: tl.constexpr, MASK: tl.constexpr, VARLEN: tl.constexpr):
    "Map j's queries m_lo..m_hi (BM at a time) against one K/V tile: accumulate dV and dK."
    for m0 in range(m_lo, m_hi, BM):
        ts, ok, qT, do, pT = _bwd_cols(k, Q, DO, b, grp, j, LSE, DOC_START, m0, T, kn, kok, qk_scale, D, BM, MASK, VARLEN)
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
def _map_rows(j, b64, grp, g, LSE1, LSE2, DELTA1, DELTA2, sl_b, sl_g, sl_h, sn_b, sn_g):
    "Map j of group (b, grp): j < g is signal head j, j = g the noise map. Its lse and Delta rows."
    if j < g:
        row = b64 * sl_b + grp * sl_g + j * sl_h
        LS = LSE1 + row; DE = DELTA1 + row
    else:
        row = b64 * sn_b + grp * sn_g
        LS = LSE2 + row; DE = DELTA2 + row
    return LS, DE


@triton.autotune(configs=configs('dkdv'), key=['T', 'D', 'VARLEN', 'SIGNAL'], restore_value=['DV'])
@triton.jit(do_not_specialize=['CH'])
def gda_bwd_dkdv_kernel(Q, K, V, DO, LSE1, LSE2, DELTA1, DELTA2, DK, DV, DOC_START, DOC_END,
                        sk_b, sk_t, sk_g, sk_h, sv_b, sv_t, sv_g, sl_b, sl_g, sl_h, sn_b, sn_g,
                        T, G, g, qk_scale, sm_scale, CH,
                        D: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, VARLEN: tl.constexpr, SIGNAL: tl.constexpr):
    "One group x BN keys. SIGNAL=False: noise map -> dK2, dV. SIGNAL=True: the g signal maps -> dK1, dV += ."
    pid_n, bg = _lpt(T, BN, False, CH)
    b = bg // G; grp = bg % G
    b64 = b.to(tl.int64)
    n0, kn, kok, diag_end, hi = _key_block(pid_n, T, DOC_END, BM, BN, VARLEN)
    dc = tl.arange(0, D); vc = tl.arange(0, 2 * D)
    if SIGNAL:
        kh = 0; j0 = 0; j1 = g
    else:
        kh = 1; j0 = g; j1 = g + 1
    kn64 = kn[:, None].to(tl.int64)
    koff = b64 * sk_b + kn64 * sk_t + grp * sk_g + kh * sk_h + dc[None, :]
    voff = b64 * sv_b + kn64 * sv_t + grp * sv_g + vc[None, :]
    k = tl.load(K + koff, mask=kok[:, None], other=0.)
    v = tl.load(V + voff, mask=kok[:, None], other=0.)
    dv = tl.zeros([BN, 2 * D], tl.float32)
    dk = tl.zeros([BN, D], tl.float32)
    for j in range(j0, j1):
        LS, DE = _map_rows(j, b64, grp, g, LSE1, LSE2, DELTA1, DELTA2, sl_b, sl_g, sl_h, sn_b, sn_g)
        dv, dk = _dkdv_inner(dv, dk, k, v, Q, DO, b, grp, j, LS, DE, DOC_START, n0, diag_end, T, kn, kok, qk_scale,
                             D, BM, True, VARLEN)
        if not VARLEN:
            dv, dk = _dkdv_inner(dv, dk, k, v, Q, DO, b, grp, j, LS, DE, DOC_START, diag_end, hi, T, kn, kok, qk_scale,
                                 D, BM, False, False)
    if SIGNAL:
        dv += tl.load(DV + voff, mask=kok[:, None], other=0.).to(tl.float32)   # the noise map's share
    tl.store(DK + koff, (dk * sm_scale).to(DK.dtype.element_ty), mask=kok[:, None])
    tl.store(DV + voff, dv.to(DV.dtype.element_ty), mask=kok[:, None])


@triton.jit
def _dq_inner(dq, q, do, lse, de, K, V, b, grp, kh, lo, hi, ts, dst, ok, qk_scale,
              D: tl.constexpr, BN: tl.constexpr, MASK: tl.constexpr, VARLEN: tl.constexpr):
    "dQ of one query tile over keys lo..hi (BN at a time), K (head kh of the group) and V tiles through descriptors."
    for n0 in range(lo, hi, BN):
        kn = n0 + tl.arange(0, BN)
        kok = kn < hi
        k = K.load([b, n0, grp, kh, 0]).reshape([BN, D])
        v = V.load([b, n0, grp, 0]).reshape([BN, 2 * D])
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


@triton.autotune(configs=configs('dq'), key=['T', 'D', 'VARLEN'])
@triton.jit(do_not_specialize=['CH'])
def gda_bwd_dq_kernel(Q, K, V, DO, LSE1, LSE2, DELTA1, DELTA2, DQ, DOC_START,
                      sq_b, sq_t, sq_g, sq_h, sl_b, sl_g, sl_h, sn_b, sn_g,
                      T, G, g, n_signal, qk_scale, sm_scale, CH,
                      D: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, VARLEN: tl.constexpr):
    """dQ of one head x BM positions. Heads below n_signal = B*G*g are the signal heads, the others the noise heads: one
    launch for both."""
    pid_m, pid_h = _lpt(T, BM, True, CH)
    t0 = pid_m * BM
    ts = t0 + tl.arange(0, BM)
    ok = ts < T
    dc = tl.arange(0, D)
    noise = (pid_h >= n_signal).to(tl.int32)
    bg = tl.where(noise == 1, pid_h - n_signal, pid_h // g)
    j = tl.where(noise == 1, g, pid_h % g)
    b = bg // G; grp = bg % G
    b64 = b.to(tl.int64); t64 = ts[:, None].to(tl.int64)
    LS, DE = _map_rows(j, b64, grp, g, LSE1, LSE2, DELTA1, DELTA2, sl_b, sl_g, sl_h, sn_b, sn_g)
    qoff = b64 * sq_b + t64 * sq_t + grp * sq_g + j * sq_h + dc[None, :]
    q = Q.load([b, t0, grp, j, 0]).reshape([BM, D])
    do = DO.load([b, t0, grp, j, 0]).reshape([BM, 2 * D])
    lse = tl.load(LS + ts, mask=ok, other=float('inf'))
    de = tl.load(DE + ts, mask=ok, other=0.)
    hi = tl.minimum(t0 + BM, T)
    dq = tl.zeros([BM, D], tl.float32)
    if VARLEN:
        lo = tl.load(DOC_START + t0)
        dst = tl.load(DOC_START + ts, mask=ok, other=0)
        dq = _dq_inner(dq, q, do, lse, de, K, V, b, grp, noise, lo, hi, ts, dst, ok, qk_scale, D, BN, True, True)
    else:
        n_full = (t0 // BN) * BN
        dq = _dq_inner(dq, q, do, lse, de, K, V, b, grp, noise, 0, n_full, ts, ts, ok, qk_scale, D, BN, False, False)
        dq = _dq_inner(dq, q, do, lse, de, K, V, b, grp, noise, n_full, hi, ts, ts, ok, qk_scale, D, BN, True, False)
    tl.store(DQ + qoff, (dq * sm_scale).to(DQ.dtype.element_ty), mask=ok[:, None])


# The split backward: dV in one kernel (all g+1 maps of a group), dK in another (K1 from the g signal maps, K2 from the
# noise map). One more recomputation of Q K^T than the fused dK/dV kernel, but one accumulator per kernel.

@triton.jit
def _maps_block(it, nm, m_lo, BM: tl.constexpr):
    "Step `it` of a loop over maps x query blocks (nm blocks per map from m_lo): the map's offset j and the block's start."
    j = it // nm
    return j, m_lo + (it - j * nm) * BM


@triton.jit
def _dv_maps(dv, k, Q, DO, b, grp, j0, LSE, DOC_START, n_maps, m_lo, m_hi, T, kn, kok, qk_scale, sl_h,
             D: tl.constexpr, BM: tl.constexpr, MASK: tl.constexpr, VARLEN: tl.constexpr):
    """dV += P^T dO over the n_maps consecutive maps j0, j0+1, ... of one key kind (lse rows sl_h apart from LSE, map
    j0's), queries m_lo..m_hi of each, against one key tile. One loop over maps x blocks: the software pipeline runs
    across maps."""
    nm = tl.cdiv(m_hi - m_lo, BM)
    for it in range(n_maps * nm):
        j, m0 = _maps_block(it, nm, m_lo, BM)
        ts, ok, qT, do, pT = _bwd_cols(k, Q, DO, b, grp, j0 + j, LSE + j * sl_h, DOC_START, m0, T, kn, kok,
                                       qk_scale, D, BM, MASK, VARLEN)
        dv += tl.dot(pT.to(do.dtype), do)
    return dv


@triton.jit
def _dk_maps(dk, k, v, Q, DO, b, grp, j0, LSE, DELTA, DOC_START, n_maps, m_lo, m_hi, T, kn, kok, qk_scale, sl_h,
             D: tl.constexpr, BM: tl.constexpr, MASK: tl.constexpr, VARLEN: tl.constexpr):
    "dK += dS^T Q (dS^T = P^T * (V dO^T - Delta)), the same loop as `_dv_maps`."
    nm = tl.cdiv(m_hi - m_lo, BM)
    for it in range(n_maps * nm):
        j, m0 = _maps_block(it, nm, m_lo, BM)
        ts, ok, qT, do, pT = _bwd_cols(k, Q, DO, b, grp, j0 + j, LSE + j * sl_h, DOC_START, m0, T, kn, kok,
                                       qk_scale, D, BM, MASK, VARLEN)
        de = tl.load(DELTA + j * sl_h + ts, mask=ok, other=0.)
        dsT = pT * (tl.dot(v, tl.trans(do)) - de[None, :])
        dk += tl.dot(dsT.to(qT.dtype), tl.trans(qT))
    return dk


@triton.autotune(configs=configs('dv'), key=['T', 'D', 'VARLEN'])
@triton.jit(do_not_specialize=['CH'])
def gda_bwd_dv_kernel(Q, K, DO, LSE1, LSE2, DV, DOC_START, DOC_END,
                      sk_b, sk_t, sk_g, sk_h, sv_b, sv_t, sv_g, sl_b, sl_g, sl_h, sn_b, sn_g,
                      T, G, g, qk_scale, CH,
                      D: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, VARLEN: tl.constexpr):
    "dV of one group x BN keys: the g signal maps (keys K1) and the noise map (keys K2) into one accumulator."
    pid_n, bg = _lpt(T, BN, False, CH)
    b = bg // G; grp = bg % G
    b64 = b.to(tl.int64)
    n0, kn, kok, diag_end, hi = _key_block(pid_n, T, DOC_END, BM, BN, VARLEN)
    dc = tl.arange(0, D); vc = tl.arange(0, 2 * D)
    kn64 = kn[:, None].to(tl.int64)
    kbase = K + b64 * sk_b + kn64 * sk_t + grp * sk_g + dc[None, :]
    dv = tl.zeros([BN, 2 * D], tl.float32)
    for noise in tl.static_range(2):      # the g signal maps against K1, then the noise map against K2
        LS, _ = _map_rows(noise * g, b64, grp, g, LSE1, LSE2, LSE1, LSE2, sl_b, sl_g, sl_h, sn_b, sn_g)  # no Delta for dV
        n_maps = g - noise * (g - 1)
        k = tl.load(kbase + noise * sk_h, mask=kok[:, None], other=0.)
        dv = _dv_maps(dv, k, Q, DO, b, grp, noise * g, LS, DOC_START, n_maps, n0, diag_end, T, kn, kok, qk_scale, sl_h,
                      D, BM, True, VARLEN)
        if not VARLEN:
            dv = _dv_maps(dv, k, Q, DO, b, grp, noise * g, LS, DOC_START, n_maps, diag_end, hi, T, kn, kok, qk_scale, sl_h,
                          D, BM, False, False)
    tl.store(DV + b64 * sv_b + kn64 * sv_t + grp * sv_g + vc[None, :], dv.to(DV.dtype.element_ty), mask=kok[:, None])


@triton.autotune(configs=configs('dk'), key=['T', 'D', 'VARLEN'])
@triton.jit(do_not_specialize=['CH'])
def gda_bwd_dk_kernel(Q, K, V, DO, LSE1, LSE2, DELTA1, DELTA2, DK, DOC_START, DOC_END,
                      sk_b, sk_t, sk_g, sk_h, sv_b, sv_t, sv_g, sl_b, sl_g, sl_h, sn_b, sn_g,
                      T, G, g, qk_scale, sm_scale, CH,
                      D: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, VARLEN: tl.constexpr):
    """dK of one group x BN keys: the two programs of a group are dK1 (the g signal maps) and dK2 (the noise map), in one
    launch; per key block, so the last blocks' short programs fill the tail."""
    pid_n, h = _lpt(T, BN, False, CH)
    bg = h // 2; noise = h % 2
    b = bg // G; grp = bg % G
    b64 = b.to(tl.int64)
    n0, kn, kok, diag_end, hi = _key_block(pid_n, T, DOC_END, BM, BN, VARLEN)
    dc = tl.arange(0, D); vc = tl.arange(0, 2 * D)
    j0 = noise * g; j1 = g + noise
    kn64 = kn[:, None].to(tl.int64)
    koff = b64 * sk_b + kn64 * sk_t + grp * sk_g + noise * sk_h + dc[None, :]
    k = tl.load(K + koff, mask=kok[:, None], other=0.)
    v = tl.load(V + b64 * sv_b + kn64 * sv_t + grp * sv_g + vc[None, :], mask=kok[:, None], other=0.)
    dk = tl.zeros([BN, D], tl.float32)
    LS, DE = _map_rows(j0, b64, grp, g, LSE1, LSE2, DELTA1, DELTA2, sl_b, sl_g, sl_h, sn_b, sn_g)   # the program's first map
    dk = _dk_maps(dk, k, v, Q, DO, b, grp, j0, LS, DE, DOC_START, j1 - j0, n0, diag_end, T, kn, kok, qk_scale, sl_h,
                  D, BM, True, VARLEN)
    if not VARLEN:
        dk = _dk_maps(dk, k, v, Q, DO, b, grp, j0, LS, DE, DOC_START, j1 - j0, diag_end, hi, T, kn, kok, qk_scale, sl_h,
                      D, BM, False, False)
    tl.store(DK + koff, (dk * sm_scale).to(DK.dtype.element_ty), mask=kok[:, None])


# ---------------------------------------------------------------------------------------------------------------------
# Settings

# Token budgets per launch. The backward's: within 3% of the sweep's fastest program order at every shape of
# figures/gda_tune.csv. The sweep timed each of the forward's orders once, and most lie within a few percent of each
# other, so the forward's budget was chosen by timing whole forwards in one process, in alternation
# (figures/gda_ab_fwd_order, 7 rounds): 16384 tokens (1 head per chunk at T=16384, 4 at 4096, 8 at 2048) ran 0.4% to 1.1%
# faster by the medians than the sweep's 65536 at all three shapes, with bit-identical outputs.
CHUNK_TOKENS = dict(fwd_noise=16384, fwd_signal=16384, dv=16384, dk=32768, dq=32768)
_POW2 = lambda x: x > 0 and not x & (x - 1)
_INT = lambda x: type(x) is int


@dataclass(frozen=True)
class GDASettings:
    """Tunable settings of the GDA kernels, with the defaults of the H200 sweep (figures/gda_tune). A frozen value:
    modules hold one each, so two models in one process can use different settings."""
    bwd:str = 'split'              # backward schedule: 'split' (a dV kernel and a dK kernel) or 'fused' (one dK/dV kernel)
    pre_block:tuple = (1, 32, 1)   # row-wise backward kernel: BT positions per tile, RB tiles per program, warps
    chunk_tokens:dict = field(default_factory=lambda: dict(CHUNK_TOKENS))  # per launch: heads per chunk = max(1, tokens // T)
    blocks:dict = field(default_factory=dict)   # kernel -> pinned (BM, BN, warps, stages); kernels not named are autotuned

    def __post_init__(self):
        def bad(name, msg): raise ValueError(f"GDASettings.{name}: {msg}")
        if self.bwd not in ('split', 'fused'): bad('bwd', f"must be 'split' or 'fused', got {self.bwd!r}")
        pb = self.pre_block
        if not (isinstance(pb, tuple) and len(pb) == 3 and all(_INT(x) and x > 0 for x in pb) and _POW2(pb[0]) and _POW2(pb[2])):
            bad('pre_block', f"must be (positions per tile, tiles per program, warps), positive ints with the first and last "
                f"powers of two, got {pb!r}")
        if not isinstance(self.chunk_tokens, dict): bad('chunk_tokens', f"must be a dict, got {type(self.chunk_tokens).__name__}")
        for k, t in self.chunk_tokens.items():
            if k not in CHUNK_TOKENS: bad('chunk_tokens', f"unknown launch {k!r}; the launches are {list(CHUNK_TOKENS)}")
            if not _INT(t) or t < 1: bad(f'chunk_tokens[{k!r}]', f"must be a positive int, got {t!r}")
        object.__setattr__(self, 'chunk_tokens', {**CHUNK_TOKENS, **self.chunk_tokens})   # unnamed launches: the defaults
        if not isinstance(self.blocks, dict): bad('blocks', f"must be a dict, got {type(self.blocks).__name__}")
        for k, c in self.blocks.items():
            if k not in CONFIGS: bad('blocks', f"unknown kernel {k!r}; the kernels are {list(CONFIGS)}")
            if not (isinstance(c, tuple) and len(c) == 4 and all(_INT(x) and x > 0 for x in c) and _POW2(c[2])
                    and all(_POW2(x) and x >= 16 for x in c[:2])):
                bad(f'blocks[{k!r}]', f"must be (BM, BN, warps, stages) with BM, BN powers of two >= 16 and warps a power "
                    f"of two, got {c!r}")

    def heads_per_chunk(self, launch:str, heads:int, T:int)->int:
        "CH of launch `launch` (a key of `chunk_tokens`) over `heads` heads of length `T`."
        return max(1, min(self.chunk_tokens[launch] // max(T, 1), heads))

    def to_op(self)->tuple:
        "(bwd, knobs): the settings as a str and a list of ints, the form a torch.library op takes."
        knobs = [*self.pre_block, *(self.chunk_tokens[k] for k in CHUNK_TOKENS)]
        return self.bwd, knobs + [x for k in CONFIGS for x in self.blocks.get(k, (0, 0, 0, 0))]

    @classmethod
    def from_op(cls, bwd:str, knobs:list)->'GDASettings':
        "The inverse of `to_op`."
        knobs = [int(x) for x in knobs]
        blocks = {k: tuple(knobs[8 + 4 * i: 12 + 4 * i]) for i, k in enumerate(CONFIGS) if knobs[8 + 4 * i]}
        return cls(bwd, tuple(knobs[:3]), dict(zip(CHUNK_TOKENS, knobs[3:8])), blocks)

    def __hash__(self): return hash((self.bwd, tuple(self.to_op()[1])))


# ---------------------------------------------------------------------------------------------------------------------
# Launchers: buffers, grids, strides; each takes the settings. `gda_fwd`/`gda_bwd` run a whole pass, the tuner single launches.

def _tma_ok(t)->bool:
    """Whether the kernels' tensor descriptors can read `t`: contiguous last dimension, 16-byte aligned start and strides
    (dimensions of size 1 aside: `_desc` gives them an aligned stride, which index 0 never uses), and no stride 0 on a
    dimension of size > 1 (an expanded tensor, whose elements overlap: its gradient, allocated with its strides, would
    alias too, and two programs would write the same bytes). Runs at every launch: plain loops, no generators."""
    e, st, n = t.element_size(), t.stride(), t.shape
    if st[-1] != 1 or t.storage_offset() * e % 16: return False
    for i in range(len(st) - 1):
        if n[i] > 1 and (st[i] == 0 or st[i] * e % 16): return False
    return True


def tma_layout(q, k, v)->tuple:
    """q, k, v as the kernels read them: each one as it is when its layout suits the tensor descriptors (`_tma_ok`), else
    a contiguous copy (so an expanded input, with stride 0 on a dimension of size > 1, is copied)."""
    # a clone: contiguous() returns unchanged a tensor that is contiguous but misaligned, or odd-strided on a size-1 dimension
    return tuple(t if _tma_ok(t) else t.clone(memory_format=torch.contiguous_format) for t in (q, k, v))


def _in_strides(q, k, v)->dict:
    "Stride arguments of q, k, v (and of dq, dk, dv, allocated like them)."
    for n, t in (('q', q), ('k', k), ('v', v)):
        if not _tma_ok(t):
            raise ValueError(f"gda: {n} (shape {tuple(t.shape)}, strides {t.stride()}, offset {t.storage_offset()}) must be "
                             f"contiguous in its last dimension with 16-byte aligned start and strides, and no stride 0 on a "
                             f"dimension of size > 1; `tma_layout(q, k, v)` makes such copies")
    sq, sk, sv = q.stride(), k.stride(), v.stride()
    return dict(sq_b=sq[0], sq_t=sq[1], sq_g=sq[2], sq_h=sq[3], sk_b=sk[0], sk_t=sk[1], sk_g=sk[2], sk_h=sk[3],
                sv_b=sv[0], sv_t=sv[1], sv_g=sv[2])


def _out_strides(y, o2, s1, s2)->dict:
    "Stride arguments of the signal-row (y, a, dy, do1), noise-row (o2, do2) and statistics (lse, rstd, Delta) buffers."
    return dict(sy_b=y.stride(0), sy_t=y.stride(1), sy_g=y.stride(2), sy_h=y.stride(3),
                so_b=o2.stride(0), so_t=o2.stride(1), so_g=o2.stride(2),
                sl_b=s1.stride(0), sl_g=s1.stride(1), sl_h=s1.stride(2), sn_b=s2.stride(0), sn_g=s2.stride(1))


def _check_w(w, D:int):
    "The subln weight as the kernels read it (`tl.load(W + column)`): 2D elements with stride 1, else a ValueError."
    if w.ndim != 1 or w.shape[0] != 2 * D or w.stride(0) != 1:
        raise ValueError(f"gda: w (the subln weight) must be a contiguous ({2 * D},) vector, got shape {tuple(w.shape)} and "
                         f"strides {w.stride()}; `gda_fwd`/`gda_bwd` pass w.contiguous()")


def a_band(dtype, D:int)->tuple:
    """The band [lo, hi] of |w * out_scale| within which the forward does not store A and the backward recovers it as
    A = Y / (rstd w out_scale), for outputs of `dtype` and head_dim D. Y's rounding then costs A no more than storing A
    would: |A rstd| <= sqrt(2D), so |Y| <= sqrt(2D) hi stays finite, and below lo Y's subnormals would lose digits of A.
    bf16 and fp32 have fp32's exponent range (a band of 2^-100 to 2^100); fp16 has a narrow one."""
    if dtype == torch.float16: return 2.0 ** -8, 2.0 ** 15 / math.sqrt(2 * D)
    return 2.0 ** -100, 2.0 ** 100


def _launch(kernel, block, axis:str, programs:int, /, **args):
    """Launch autotuned `kernel` with keyword `args` on a 1-D grid of cdiv(T, block size along `axis`) x `programs`;
    `block` (BM, BN, warps, stages) pins the shape (no autotuning; the host-made descriptors get their tiles as a config's
    pre-hook would give them). Returns what Triton's launch returns (on a GPU the
    compiled kernel, whose `n_regs`, `n_spills` and `metadata.shared` the tuner records)."""
    T = args['T']
    if block is None: return kernel[lambda m: (_cdiv(T, m[axis]) * programs,)](**args)
    bm, bn, nw, ns = block
    _desc_blocks({**args, 'BM': bm, 'BN': bn})
    return kernel.fn[(_cdiv(T, bm if axis == 'BM' else bn) * programs,)](**args, BM=bm, BN=bn, num_warps=nw, num_stages=ns)


_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
MAX_HEAD_DIM = 128                # the largest D whose forward and backward tiles fit sm_90's shared memory (module docstring)


def _check_inputs(op:str, q, k, v):
    "Raise a TypeError/ValueError naming the tensor unless q, k, v share a dtype the kernels take and D is a head dim they fit."
    for n, t in (('q', q), ('k', k), ('v', v)):
        if t.dtype not in _DTYPES or t.dtype != q.dtype:
            raise TypeError(f"{op}: q, k, v must share one of fp16, bf16, fp32, got {q.dtype}, {k.dtype}, {v.dtype} ({n})")
    D = q.shape[-1]
    if D < 16 or D > MAX_HEAD_DIM or D & (D - 1):
        raise ValueError(f"{op}: head_dim must be a power of two from 16 to {MAX_HEAD_DIM} (larger heads' backward tiles do "
                         f"not fit the GPU's shared memory), got {D}")


def fwd_buffers(q):
    """Outputs of the forward for q (B, T, G, g+1, D): y, a, o2 (input dtype); lse1, lse2, rstd, max logits ml_s, ml_n
    (fp32). a is written only for a w outside `a_band`."""
    B, T, G, g1, D = q.shape; g = g1 - 1
    dev, f32 = q.device, torch.float32
    nm = _cdiv(T, 16)                # max-logit slots per head: enough for the smallest BM of any config
    return (q.new_empty(B, T, G, g, 2 * D),                        # y
            q.new_empty(B, T, G, g, 2 * D),                        # a = O_s - lambda O_n: written only for a w outside a_band
            q.new_empty(B, T, G, 2 * D),                           # o2 = O_n
            torch.empty(B, G, g, T, dtype=f32, device=dev), torch.empty(B, G, T, dtype=f32, device=dev),  # lse1, lse2
            torch.empty(B, G, g, T, dtype=f32, device=dev),        # rstd of subln
            torch.full((B * G * g, nm), float('-inf'), dtype=f32, device=dev), torch.full((B * G, nm), float('-inf'), dtype=f32, device=dev))


def nonfinite_rows(v)->tuple:
    """Flags (B, T, G) uint8 of the value rows of v (B, T, G, 2D) that hold a NaN or inf, and a 1-element int32 that is 1
    when any does (what the forward's masked tiles read): one pass over v."""
    B, T, G, D2 = v.shape
    flags = torch.empty(B, T, G, dtype=torch.uint8, device=v.device)
    anyb = torch.zeros(1, dtype=torch.int32, device=v.device)
    if v.stride(-1) != 1: raise ValueError(f"gda: v must be contiguous in its last dimension, got strides {v.stride()}")
    N, R = B * T * G, 16
    if N: gda_nonfinite_kernel[(_cdiv(N, R),)](v, flags, anyb, v.stride(0), v.stride(1), v.stride(2), N, T, G, D=D2 // 2, R=R)
    return flags, anyb


def launch_fwd(q, k, v, lam, w, out:tuple, doc_start, eps:float, out_scale:float, varlen:bool, signal:bool, settings:GDASettings,
               vbad=None):
    """One forward launch into `out` (`fwd_buffers`): the B*G noise heads (`signal=False`), or the B*G*g signal heads and
    the epilogue. `vbad`: what `nonfinite_rows(v)` returns (computed here when None)."""
    B, T, G, g1, D = q.shape; g = g1 - 1
    y, a, o2, lse1, lse2, rstd, ml_s, ml_n = out
    for n, t in (('y', y), ('a', a), ('o2', o2)):     # written (and o2 read) through tensor descriptors, y and a alike
        if not _tma_ok(t) or (n == 'a' and t.stride() != y.stride()):
            raise ValueError(f"gda: the output {n} (strides {t.stride()}, offset {t.storage_offset()}) must be laid out as "
                             f"`fwd_buffers` makes it (contiguous last dimension, 16-byte aligned start and strides, a like y)")
    _check_w(w, D)
    heads, ml = (B * G * g, ml_s) if signal else (B * G, ml_n)
    a_lo, a_hi = a_band(y.dtype, D)
    flags, anyb = nonfinite_rows(v) if vbad is None else vbad
    _in_strides(q, k, v)                              # the layout checks (the descriptors take the strides themselves)
    if not q.numel(): return None                     # a descriptor needs every dimension > 0; there is nothing to compute
    return _launch(gda_fwd_kernel, settings.blocks.get('fwd'), 'BM', heads,
            Q=_desc(q, 'BM'), K=_desc(k, 'BN'), V=_desc(v, 'BN'), Y=_desc(y, 'BM'), A=_desc(a, 'BM'), O2=_desc(o2, 'BM'),
            W=w, LAM=lam, LSE1=lse1, LSE2=lse2, RSTD=rstd, ML=ml, DOC_START=doc_start, VBAD=flags, VBAD_ANY=anyb,
            sl_b=lse1.stride(0), sl_g=lse1.stride(1), sl_h=lse1.stride(2), sn_b=lse2.stride(0), sn_g=lse2.stride(1),
            sml=ml.stride(0), sf_b=flags.stride(0), sf_t=flags.stride(1), T=T, G=G, g=g, qk_scale=LOG2E / math.sqrt(D), eps=eps,
            out_scale=out_scale, a_lo=a_lo, a_hi=a_hi, CH=settings.heads_per_chunk('fwd_signal' if signal else 'fwd_noise', heads, T),
            D=D, VARLEN=varlen, SIGNAL=signal)


def gda_fwd(q, k, v, lam, w, doc_start, eps:float, out_scale:float, varlen:bool, settings:GDASettings)->tuple:
    """The forward: flags of the non-finite value rows, the noise heads, then the signal heads with the epilogue; returns
    `fwd_buffers`' tuple, filled. Inputs whose layout the descriptors cannot read are copied first (`tma_layout`), and
    w is made contiguous (the kernels read it with stride 1; a no-op for a module's weight)."""
    _check_inputs('gda', q, k, v)
    q, k, v = tma_layout(q, k, v)
    w = w.contiguous()
    out, vbad = fwd_buffers(q), nonfinite_rows(v)
    for signal in (False, True):          # noise first: the epilogue reads O_n
        launch_fwd(q, k, v, lam, w, out, doc_start, eps, out_scale, varlen, signal, settings, vbad)
    return out


def bwd_buffers(q, k, v, a, o2, lse1, lse2)->tuple:
    """Buffers of the backward: do1, do2 (the signal maps' and the noise map's dO, the slices [:, :, :, :g] and
    [:, :, :, g] of one (B, T, G, g+1, 2D) buffer, which the tile kernels read through one descriptor), delta1, delta2
    (fp32), and dq, dk, dv with q, k, v's strides."""
    like = lambda t: torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=t.device)
    B, T, G, g, D2 = a.shape
    do = a.new_empty(B, T, G, g + 1, D2)
    return (do[:, :, :, :g], do[:, :, :, g], like(lse1), like(lse2), like(q), like(k), like(v))


def _do_maps(do1, do2):
    "The (B, T, G, g+1, 2D) buffer of which do1 and do2 are the slices `bwd_buffers` makes (checked: else a ValueError)."
    B, T, G, g, D2 = do1.shape
    sb, st, sg, sh, sc = do1.stride()
    if not do1.numel(): return do1             # nothing to read or write
    full = do1.as_strided((B, T, G, g + 1, D2), do1.stride())
    if not (tuple(do2.shape) == (B, T, G, D2) and do2.dtype == do1.dtype and do2.device == do1.device and sc == 1
            and sh == D2 and do2.stride() == (sb, st, sg, 1) and do2.data_ptr() == do1.data_ptr() + g * D2 * do1.element_size()
            and _tma_ok(full)):
        raise ValueError(f"gda: do1 {tuple(do1.shape)} (strides {do1.stride()}) and do2 {tuple(do2.shape)} (strides "
                         f"{do2.stride()}) must be the slices [:, :, :, :g] and [:, :, :, g] of one (B, T, G, g+1, 2D) buffer "
                         f"with a contiguous last dimension and 16-byte aligned strides, as `bwd_buffers` makes them")
    return full


def launch_bwd_pre(dy, y, a, o2, rstd, w, lam, do1, do2, delta1, delta2, out_scale:float, settings:GDASettings)->tuple:
    """The row-wise backward kernel; returns the partial sums (dw_part, dlam_part), one row per program. y and a are the
    forward's (a is read only where the forward stored it, see `a_band`); do1, do2 as `bwd_buffers` makes them."""
    B, T, G, g, D2 = a.shape; D = D2 // 2
    for n, t in (('dy', dy), ('y', y)):    # one set of strides for y, a, dy (and o2; rstd, Delta): size-1 dimensions aside
        if t.shape != a.shape or any(x != z and m > 1 for x, z, m in zip(t.stride(), a.stride(), a.shape)):
            raise ValueError(f"gda: {n} {tuple(t.shape)} must have a's shape {tuple(a.shape)} and strides {a.stride()}, got {t.stride()}")
    if y.dtype != a.dtype: raise TypeError(f"gda: y ({y.dtype}) and a ({a.dtype}) must have one dtype")
    _check_w(w, D)
    do = _do_maps(do1, do2)
    a_lo, a_hi = a_band(y.dtype, D)
    BT, RB, warps = settings.pre_block
    nc = _cdiv(T, BT * RB)
    dw_part = torch.empty(B * G * nc, 2 * D, dtype=torch.float32, device=a.device)
    dlam_part = torch.empty(B * G * nc, dtype=torch.float32, device=a.device)
    gda_bwd_pre_kernel[(B * G * nc,)](
        DY=dy, Y=y, A=a, O2=o2, RSTD=rstd, W=w, LAM=lam, DO=do, DELTA1=delta1, DELTA2=delta2, DW_PART=dw_part,
        DLAM_PART=dlam_part, **_out_strides(a, o2, rstd, delta2), sd_b=do.stride(0), sd_t=do.stride(1), sd_g=do.stride(2),
        sd_h=do.stride(3), sdw=dw_part.stride(0),
        T=T, G=G, g=g, n_chunks=nc, out_scale=out_scale, a_lo=a_lo, a_hi=a_hi, D=D, GP=1 << (g - 1).bit_length(), BT=BT, RB=RB, num_warps=warps)
    return dw_part, dlam_part


def _bwd_args(q, k, v, do1, do2, lse1, lse2, delta1, delta2, kv:str)->dict:
    """The arguments of a key- or query-block backward kernel: Q and dO (both maps, `_do_maps`) as host-made descriptors,
    the statistics, and K, V as pointers with their strides (`kv='ptr'`: the key-block kernels, which load their K/V
    tile once) or as descriptors with q's strides (`kv='desc'`: the dQ kernel, which stores dq like q)."""
    B, T, G, g1, D = q.shape
    st = _in_strides(q, k, v)
    args = dict(Q=_desc(q, 'BM'), DO=_desc(_do_maps(do1, do2), 'BM'), LSE1=lse1, LSE2=lse2, DELTA1=delta1, DELTA2=delta2,
                sl_b=lse1.stride(0), sl_g=lse1.stride(1), sl_h=lse1.stride(2), sn_b=lse2.stride(0), sn_g=lse2.stride(1),
                T=T, G=G, g=g1 - 1, qk_scale=LOG2E / math.sqrt(D), D=D)
    if kv == 'desc': return dict(args, K=_desc(k, 'BN'), V=_desc(v, 'BN'), **{n: x for n, x in st.items() if n[:3] == 'sq_'})
    return dict(args, K=k, V=v, **{n: x for n, x in st.items() if n[:3] in ('sk_', 'sv_')})


def launch_bwd_dv(q, k, v, do1, do2, lse1, lse2, dv, doc_start, doc_end, varlen:bool, settings:GDASettings):
    "dV of all g+1 maps (split backward): one program per group and key block."
    B, T, G = q.shape[:3]; groups = B * G
    if not q.numel(): return None             # a descriptor needs every dimension > 0; there is nothing to compute
    args = _bwd_args(q, k, v, do1, do2, lse1, lse2, lse1, lse2, 'ptr')
    for n in ('V', 'DELTA1', 'DELTA2'): del args[n]
    return _launch(gda_bwd_dv_kernel, settings.blocks.get('dv'), 'BN', groups, **args, DV=dv, DOC_START=doc_start,
            DOC_END=doc_end, CH=settings.heads_per_chunk('dv', groups, T), VARLEN=varlen)


def launch_bwd_dk(q, k, v, do1, do2, lse1, lse2, delta1, delta2, dk, doc_start, doc_end, varlen:bool, settings:GDASettings):
    "dK1 and dK2 (split backward): two programs per group and key block, one launch."
    B, T, G, g1, D = q.shape; programs = 2 * B * G
    if not q.numel(): return None
    return _launch(gda_bwd_dk_kernel, settings.blocks.get('dk'), 'BN', programs,
            **_bwd_args(q, k, v, do1, do2, lse1, lse2, delta1, delta2, 'ptr'), DK=dk, DOC_START=doc_start, DOC_END=doc_end,
            sm_scale=1 / math.sqrt(D), CH=settings.heads_per_chunk('dk', programs, T), VARLEN=varlen)


def launch_bwd_dkdv(q, k, v, do1, do2, lse1, lse2, delta1, delta2, dk, dv, doc_start, doc_end, varlen:bool, signal:bool,
                    settings:GDASettings):
    "dK and dV of one map kind (fused backward): the noise map (writes dV), or the signal maps (add into dV)."
    B, T, G, g1, D = q.shape; groups = B * G
    if not q.numel(): return None
    return _launch(gda_bwd_dkdv_kernel, settings.blocks.get('dkdv'), 'BN', groups,
            **_bwd_args(q, k, v, do1, do2, lse1, lse2, delta1, delta2, 'ptr'), DK=dk, DV=dv, DOC_START=doc_start,
            DOC_END=doc_end, sm_scale=1 / math.sqrt(D), CH=settings.heads_per_chunk('dv', groups, T), VARLEN=varlen, SIGNAL=signal)


def launch_bwd_dq(q, k, v, do1, do2, lse1, lse2, delta1, delta2, dq, doc_start, varlen:bool, settings:GDASettings):
    "dQ of every head: one program per head and query block, the signal heads then the noise heads, one launch."
    B, T, G, g1, D = q.shape; maps = B * G * g1
    if not q.numel(): return None
    return _launch(gda_bwd_dq_kernel, settings.blocks.get('dq'), 'BM', maps,
            **_bwd_args(q, k, v, do1, do2, lse1, lse2, delta1, delta2, 'desc'), DQ=dq, DOC_START=doc_start,
            n_signal=B * G * (g1 - 1), sm_scale=1 / math.sqrt(D), CH=settings.heads_per_chunk('dq', maps, T), VARLEN=varlen)


def gda_bwd(dy, q, k, v, lam, w, y, a, o2, lse1, lse2, rstd, doc_start, doc_end, out_scale:float, varlen:bool,
            settings:GDASettings)->tuple:
    """The backward: row-wise kernel, dV and dK (`settings.bwd`), dQ; returns dq, dk, dv, dlam, dw. q, k, v go through
    `tma_layout` as in the forward, and w is made contiguous; the gradient of a copied input is returned laid out like
    `empty_like` of the input. An empty input (B, T or G = 0) has zero gradients and launches nothing (the cotangent of
    an empty output may have any strides: `contiguous()` leaves an empty expanded tensor as it is)."""
    _check_inputs('gda', q, k, v)
    if not q.numel():
        z = torch.zeros_like
        return z(q), z(k), z(v), lam.new_zeros(1), w.new_zeros(w.shape)
    dy = dy.contiguous()
    w = w.contiguous()
    given = (q, k, v)
    q, k, v = tma_layout(q, k, v)
    do1, do2, delta1, delta2, dq, dk, dv = bwd_buffers(q, k, v, a, o2, lse1, lse2)
    dw_part, dlam_part = launch_bwd_pre(dy, y, a, o2, rstd, w, lam, do1, do2, delta1, delta2, out_scale, settings)
    maps = (q, k, v, do1, do2, lse1, lse2, delta1, delta2)
    if settings.bwd == 'split':
        launch_bwd_dv(q, k, v, do1, do2, lse1, lse2, dv, doc_start, doc_end, varlen, settings)
        launch_bwd_dk(*maps, dk, doc_start, doc_end, varlen, settings)
    else:
        for signal in (False, True):      # noise first: the signal launch adds its dV share
            launch_bwd_dkdv(*maps, dk, dv, doc_start, doc_end, varlen, signal, settings)
    launch_bwd_dq(*maps, dq, doc_start, varlen, settings)
    dq, dk, dv = (d if t is r else torch.empty_like(t).copy_(d) for t, r, d in zip(given, (q, k, v), (dq, dk, dv)))
    return dq, dk, dv, dlam_part.sum().reshape(1).to(lam.dtype), dw_part.sum(0).to(w.dtype)


# ---------------------------------------------------------------------------------------------------------------------
# Autograd: a thin Function in eager mode; torch.library custom ops (opaque to torch.compile) with a registered backward

class GDAFunction(torch.autograd.Function):
    "Eager autograd over the launchers (no custom-op dispatch on the hot path); returns y, ml_s, ml_n."
    @staticmethod
    def forward(ctx, q, k, v, lam, w, doc_start, doc_end, eps, out_scale, varlen, settings):
        y, a, o2, lse1, lse2, rstd, ml_s, ml_n = gda_fwd(q, k, v, lam, w, doc_start, eps, out_scale, varlen, settings)
        ctx.save_for_backward(q, k, v, lam, w, y, a, o2, lse1, lse2, rstd, doc_start, doc_end)
        ctx.out_scale, ctx.varlen, ctx.settings = out_scale, varlen, settings
        ctx.mark_non_differentiable(ml_s, ml_n)
        return y, ml_s, ml_n

    @staticmethod
    def backward(ctx, dy, dml_s, dml_n):
        if torch.is_grad_enabled():     # create_graph=True: the kernels' gradients have no graph (module docstring)
            raise RuntimeError("gda: the Triton kernels have first-order gradients only, and this backward runs with "
                               "create_graph=True (a gradient penalty, a Hessian-vector product); use gda_sdpa or gda_reference")
        grads = gda_bwd(dy, *ctx.saved_tensors, ctx.out_scale, ctx.varlen, ctx.settings)
        return (*grads, None, None, None, None, None, None)


@torch.library.custom_op('motif_nb::gda_fwd', mutates_args=())
def _gda_fwd_op(q:torch.Tensor, k:torch.Tensor, v:torch.Tensor, lam:torch.Tensor, w:torch.Tensor, doc_start:torch.Tensor,
                doc_end:torch.Tensor, eps:float, out_scale:torch.Tensor, varlen:bool, bwd:str, knobs:list[int]
                )->tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    # out_scale: a 0-d CPU tensor (a graph input: layers of every depth share one compiled graph), read without a device sync.
    # Output 1 (a) holds A only for a w outside `a_band`; else it is not written and only the backward op receives it.
    return gda_fwd(q, k, v, lam, w, doc_start, eps, float(out_scale), varlen, GDASettings.from_op(bwd, knobs))

@_gda_fwd_op.register_fake
def _(q, k, v, lam, w, doc_start, doc_end, eps, out_scale, varlen, bwd, knobs): return fwd_buffers(q)

@torch.library.custom_op('motif_nb::gda_bwd', mutates_args=())
def _gda_bwd_op(dy:torch.Tensor, q:torch.Tensor, k:torch.Tensor, v:torch.Tensor, lam:torch.Tensor, w:torch.Tensor,
                y:torch.Tensor, a:torch.Tensor, o2:torch.Tensor, lse1:torch.Tensor, lse2:torch.Tensor, rstd:torch.Tensor, doc_start:torch.Tensor,
                doc_end:torch.Tensor, out_scale:torch.Tensor, varlen:bool, bwd:str, knobs:list[int]
                )->tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return gda_bwd(dy, q, k, v, lam, w, y, a, o2, lse1, lse2, rstd, doc_start, doc_end, float(out_scale), varlen,
                   GDASettings.from_op(bwd, knobs))

@_gda_bwd_op.register_fake
def _(dy, q, k, v, lam, w, *rest): return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v), torch.empty_like(lam), torch.empty_like(w)

def _gda_setup(ctx, inputs, output):
    q, k, v, lam, w, doc_start, doc_end, eps, out_scale, varlen, bwd, knobs = inputs
    ctx.save_for_backward(q, k, v, lam, w, *output[0:6], doc_start, doc_end)
    ctx.out_scale, ctx.varlen, ctx.bwd, ctx.knobs = out_scale, varlen, bwd, knobs

def _gda_op_backward(ctx, dy, *_):
    grads = torch.ops.motif_nb.gda_bwd(dy, *ctx.saved_tensors, ctx.out_scale, ctx.varlen, ctx.bwd, ctx.knobs)
    return (*grads, None, None, None, None, None, None, None)

_gda_fwd_op.register_autograd(_gda_op_backward, setup_context=_gda_setup)


def gda(q, k, v, lam, w, doc_start, doc_end, eps:float, out_scale, varlen:bool, settings:GDASettings|None=None)->tuple:
    """Fused GDA on the projection layouts (contiguous in the last dimension); returns y and the per-program max logits
    ml_s, ml_n (scaled by log2(e)). Under torch.compile the `motif_nb::gda_fwd` op, in eager the `GDAFunction`."""
    settings = GDASettings() if settings is None else settings
    if isinstance(out_scale, torch.Tensor) and out_scale.requires_grad and torch.is_grad_enabled():
        raise TypeError("gda: out_scale requires grad, but the Triton passes take it as a constant (its gradient would be "
                        "dropped); pass out_scale.detach(), or use gda_sdpa or gda_reference, which differentiate it")
    if torch.compiler.is_compiling():
        scale = out_scale if isinstance(out_scale, torch.Tensor) else torch.tensor(out_scale, dtype=torch.float64)
        o = torch.ops.motif_nb.gda_fwd(q, k, v, lam, w, doc_start, doc_end, float(eps), scale.detach().cpu(), varlen,
                                       *settings.to_op())
        return o[0], o[6], o[7]
    return GDAFunction.apply(q, k, v, lam, w, doc_start, doc_end, float(eps), float(out_scale), varlen, settings)
