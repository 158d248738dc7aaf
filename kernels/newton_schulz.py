"""Symmetric Gram kernels for Newton-Schulz: `OUT = alpha * X @ X^T + beta * C`, upper-triangle tiles only.

Explained, tested and benchmarked in `nbs/05_muon.ipynb` (module `motif_nb.muon`).

In one Newton-Schulz step `A = X X^T; B = b A + c A A; X = a X + B X` both `A` and `B` are symmetric (`A A = A A^T`
because `A` is symmetric). `sym_gram` computes only the tiles on or above the diagonal of such a product and writes
each off-diagonal tile twice (itself and its transpose), so the two Gram products cost half their FLOPs.
Inputs are bf16 (fp16/fp32 under the Triton interpreter), accumulation is fp32, batched over a leading dim.
The grid is one program per upper-triangle tile pair, enumerated row by row of the lower triangle so that
neighbouring programs share an operand panel.
Works on Triton 3.6 (GPU box) and 3.9 (interpreter): no block pointers, every load and store is masked.
"""
import os
import torch
import triton
import triton.language as tl

_INTERPRET = os.environ.get('TRITON_INTERPRET', '0') not in ('', '0', 'false', 'False')

def _configs():
    if _INTERPRET: return [triton.Config({'BLOCK_M': 32, 'BLOCK_K': 32}, num_warps=4, num_stages=1)]
    return [triton.Config({'BLOCK_M': bm, 'BLOCK_K': bk}, num_warps=w, num_stages=s)
            for bm, bk, w, s in [(128, 64, 8, 3), (128, 64, 8, 4), (128, 64, 8, 5), (128, 128, 8, 3), (128, 64, 4, 4), (64, 64, 4, 4)]]

@triton.autotune(configs=_configs(), key=['M', 'K', 'HAS_C'])
@triton.jit
def _sym_gram_kernel(X, C, OUT, M, K,
                     sxb, sxm, sxk, scb, scm, scn, sob, som, son,
                     alpha, beta,
                     HAS_C: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
    pid = tl.program_id(0)
    bidx = tl.program_id(1).to(tl.int64)
    # pid -> (i, j), j <= i, lower-triangle order: pid = i*(i+1)/2 + j. Float sqrt then an exact integer fix-up.
    i = ((tl.sqrt(8.0 * pid.to(tl.float32) + 1.0) - 1.0) * 0.5).to(tl.int32)
    i = tl.where((i + 1) * (i + 2) // 2 <= pid, i + 1, i)
    i = tl.where(i * (i + 1) // 2 > pid, i - 1, i)
    j = pid - i * (i + 1) // 2
    pm, pn = j, i                                    # pm <= pn: an upper-triangle tile
    rm = pm * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pn * BLOCK_M + tl.arange(0, BLOCK_M)
    rk = tl.arange(0, BLOCK_K)
    Xb = X + bidx * sxb
    a_ptr = Xb + rm[:, None] * sxm + rk[None, :] * sxk          # [BM, BK] rows rm of X
    b_ptr = Xb + rn[None, :] * sxm + rk[:, None] * sxk          # [BK, BM] rows rn of X, transposed
    acc = tl.zeros((BLOCK_M, BLOCK_M), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        kmask = (k0 + rk) < K
        a = tl.load(a_ptr, mask=(rm[:, None] < M) & kmask[None, :], other=0.0)
        b = tl.load(b_ptr, mask=(rn[None, :] < M) & kmask[:, None], other=0.0)
        acc = tl.dot(a, b, acc)
        a_ptr += BLOCK_K * sxk
        b_ptr += BLOCK_K * sxk
    acc = acc * alpha
    omask = (rm[:, None] < M) & (rn[None, :] < M)
    if HAS_C:
        c = tl.load(C + bidx * scb + rm[:, None] * scm + rn[None, :] * scn, mask=omask, other=0.0)
        acc += beta * c.to(tl.float32)
    out = acc.to(OUT.dtype.element_ty)
    Ob = OUT + bidx * sob
    tl.store(Ob + rm[:, None] * som + rn[None, :] * son, out, mask=omask)
    if pm != pn:                                     # mirror: tile (pn, pm) is the transpose
        tmask = (rn[:, None] < M) & (rm[None, :] < M)
        tl.store(Ob + rn[:, None] * som + rm[None, :] * son, tl.trans(out), mask=tmask)

def sym_gram(x:torch.Tensor, out:torch.Tensor, alpha:float=1.0, beta:float=0.0, c:torch.Tensor|None=None)->torch.Tensor:
    "`out = alpha * x @ x^T + beta * c` for `x` [B, M, K] and symmetric `c` [B, M, M]; only upper-triangle tiles are computed."
    Bn, M, K = x.shape
    if out.shape != (Bn, M, M): raise ValueError(f"sym_gram: out must have shape {(Bn, M, M)}, got {tuple(out.shape)}")
    has_c = c is not None
    cc = c if has_c else out
    grid = lambda meta: (triton.cdiv(M, meta['BLOCK_M']) * (triton.cdiv(M, meta['BLOCK_M']) + 1) // 2, Bn)
    _sym_gram_kernel[grid](x, cc, out, M, K, *x.stride(), *cc.stride(), *out.stride(),
                           float(alpha), float(beta), HAS_C=has_c)
    return out
