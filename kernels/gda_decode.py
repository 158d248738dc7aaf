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
SLOT, LAM, W, SCALE, O are pointers to the tensors of the same name; `s*_` arguments are strides in elements (the last
dim of every tensor is contiguous); BN is the number of cache slots one iteration loads.

Schedule. One program per (row, group). It loads the g signal queries as the first rows of a 16-row tile (tensor
cores need 16) and the noise query as the first row of a second tile, then walks the filled slots 0..SLOT (SLOT: the
slot of the newest token, read on the device, so a CUDA graph replays the step at any length and slots past it are
never read) BN at a time: for each block it loads K1, K2 and V once, forms both score tiles, and keeps two online
softmaxes (running max, row sum, accumulator of width 2d) in fp32. Empty slots (bias -inf) and slots past SLOT score
a finite -1e30, so a block with no valid slot cannot make a NaN, and their V rows load as 0, so what an earlier call
left in the storage never reaches the output. The epilogue divides by the row sums, subtracts lam times the noise
row from every signal row, normalises over 2d and scales, all in fp32, and writes the g rows in the output dtype.

Cost: each program reads its group's K1, K2 and V once (4d values per slot), so the kernel is bound by the cache
bytes; at batch 1 there are only G programs, which is enough for the short contexts of a benchmark step but leaves
most SMs idle for long ones (a split over slots, as in flash-decoding, would fill them).

Entry points: `gda_decode` (checks, then the launcher) in eager code and CUDA-graph capture; under `torch.compile` the
`motif_nb::gda_decode` custom op (opaque to Inductor, with a registered fake). Works on triton 3.6 to 3.9 and under the
interpreter (TRITON_INTERPRET=1, fp32/fp16): plain pointer arithmetic, every access masked, no libdevice.
"""
import torch
import triton
import triton.language as tl

__all__ = ['gda_decode', 'gda_decode_launch']

NEG: tl.constexpr = tl.constexpr(-1.0e30)   # finite: a block of empty slots gives exp(0) weights that a later rescale zeroes


@triton.jit
def gda_decode_kernel(Q, K1, K2, V, BIAS, SLOT, LAM, W, SCALE, O, eps, sm_scale,
                      sq_b, sq_h, sq_j, sk_b, sk_h, sk_s, sv_b, sv_h, sv_s, sb_b, so_b, so_h, so_j,
                      G: tl.constexpr, NQ: tl.constexpr, QB: tl.constexpr, D: tl.constexpr, BN: tl.constexpr):
    """Program (b, h): O[b, h, :NQ] from the NQ signal queries and the noise query of group h over slots 0..SLOT."""
    pid = tl.program_id(0)
    b = pid // G
    h = pid % G
    b64 = b.to(tl.int64)
    h64 = h.to(tl.int64)
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
    n_used = tl.load(SLOT).to(tl.int32) + 1
    m_s = tl.full([QB], NEG, tl.float32)
    m_n = tl.full([QB], NEG, tl.float32)
    l_s = tl.zeros([QB], tl.float32)
    l_n = tl.zeros([QB], tl.float32)
    acc_s = tl.zeros([QB, 2 * D], tl.float32)
    acc_n = tl.zeros([QB, 2 * D], tl.float32)
    for n0 in range(0, n_used, BN):
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
        p_s = tl.exp(s_s - mn_s[:, None])
        p_n = tl.exp(s_n - mn_n[:, None])
        al_s = tl.exp(m_s - mn_s)
        al_n = tl.exp(m_n - mn_n)
        l_s = l_s * al_s + tl.sum(p_s, 1)
        l_n = l_n * al_n + tl.sum(p_n, 1)
        acc_s = acc_s * al_s[:, None] + tl.dot(p_s.to(v.dtype), v)
        acc_n = acc_n * al_n[:, None] + tl.dot(p_n.to(v.dtype), v)
        m_s = mn_s
        m_n = mn_n
    o_s = acc_s / l_s[:, None]
    o_n = tl.sum(tl.where(rows[:, None] == 0, acc_n / l_n[:, None], 0.), 0)        # the noise row, (2d,)
    lam = tl.load(LAM).to(tl.float32)
    a = o_s - lam * o_n[None, :]
    rstd = 1.0 / tl.sqrt(tl.sum(a * a, 1) / (2 * D) + eps)
    w = tl.load(W + vc).to(tl.float32)
    scale = tl.load(SCALE).to(tl.float32)
    out = a * rstd[:, None] * w[None, :] * scale
    tl.store(O + b64 * so_b + h64 * so_h + rows[:, None] * so_j + vc[None, :], out.to(O.dtype.element_ty),
             mask=rows[:, None] < NQ)


def gda_decode_launch(q, k1, k2, v, bias, slot, lam, w, out_scale, eps:float, block_n:int=64)->torch.Tensor:
    "The launch without checks: `o` (B, G, g, 2d) in q's dtype (shapes as `gda_decode`; k1, k2 (B, G, S, d) views)."
    B, G, g1, d = q.shape
    o = torch.empty(B, G, g1 - 1, 2 * d, dtype=q.dtype, device=q.device)
    gda_decode_kernel[(B * G,)](
        q, k1, k2, v, bias, slot, lam, w, out_scale, o, float(eps), d ** -0.5,
        q.stride(0), q.stride(1), q.stride(2), k1.stride(0), k1.stride(1), k1.stride(2), v.stride(0), v.stride(1), v.stride(2),
        bias.stride(0), o.stride(0), o.stride(1), o.stride(2),
        G=G, NQ=g1 - 1, QB=max(16, 1 << (g1 - 2).bit_length()), D=d, BN=block_n, num_warps=4)
    return o


@torch.library.custom_op('motif_nb::gda_decode', mutates_args=())
def _gda_decode_op(q:torch.Tensor, k1:torch.Tensor, k2:torch.Tensor, v:torch.Tensor, bias:torch.Tensor, slot:torch.Tensor,
                   lam:torch.Tensor, w:torch.Tensor, out_scale:torch.Tensor, eps:float)->torch.Tensor:
    return gda_decode_launch(q, k1, k2, v, bias, slot, lam, w, out_scale, eps)

@_gda_decode_op.register_fake
def _(q, k1, k2, v, bias, slot, lam, w, out_scale, eps):
    B, G, g1, d = q.shape
    return q.new_empty(B, G, g1 - 1, 2 * d)


def _check(q, k, v, bias, slot, lam, w, out_scale):
    "Raise a ValueError/TypeError naming the tensor unless the shapes, dtypes and devices fit together."
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
    if bias.shape[-1] != S or bias.numel() != B * S: raise ValueError(f"{op}: bias must hold (B, S) = ({B}, {S}) values, got shape {tuple(bias.shape)}")
    if q.dtype not in (torch.float16, torch.bfloat16, torch.float32) or k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"{op}: q, k, v must share one of fp16, bf16, fp32, got {q.dtype}, {k.dtype}, {v.dtype}")
    if slot.numel() != 1 or slot.is_floating_point(): raise ValueError(f"{op}: slot must be one integer, got {slot.dtype} of shape {tuple(slot.shape)}")
    if lam.numel() != 1 or out_scale.numel() != 1: raise ValueError(f"{op}: lam and out_scale must be scalars, got shapes {tuple(lam.shape)}, {tuple(out_scale.shape)}")
    if tuple(w.shape) != (2 * d,): raise ValueError(f"{op}: subln_w must be (2*head_dim,) = ({2 * d},), got {tuple(w.shape)}")
    for n, t in (('q', q), ('k', k), ('v', v), ('bias', bias)):
        if t.stride(-1) != 1: raise ValueError(f"{op}: {n} must be contiguous in its last dim, got strides {t.stride()}")


def gda_decode(q:torch.Tensor, # (B, G, g+1, d): per group its g signal queries, then the noise query
               k:torch.Tensor, # (2, B, G, S, d): K1 and K2 of the cache (after RoPE)
               v:torch.Tensor, # (B, G, S, 2d): [V1 || V2] of the cache
               bias:torch.Tensor, # (B, S) or (B, 1, 1, S): 0 on valid slots, -inf on empty ones
               slot:torch.Tensor, # one int: the newest token's slot; slots after it are not read
               lam:torch.Tensor, subln_w:torch.Tensor, eps:float, # λ (scalar), the subln weight (2d,) and eps
               out_scale:torch.Tensor, # 1 − λ_init (scalar)
              )->torch.Tensor: # (B, G, g, 2d) in q's dtype
    "GDA of one new token per row over a static cache, with the epilogue: one Triton program per (row, group)."
    _check(q, k, v, bias, slot, lam, subln_w, out_scale)
    bias = bias.reshape(bias.shape[0], bias.shape[-1])
    if torch.compiler.is_compiling(): return torch.ops.motif_nb.gda_decode(q, k[0], k[1], v, bias, slot, lam, subln_w, out_scale, float(eps))
    return gda_decode_launch(q, k[0], k[1], v, bias, slot, lam, subln_w, out_scale, eps)
