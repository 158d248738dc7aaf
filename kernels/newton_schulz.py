"""Symmetric products for Newton-Schulz: `OUT = alpha * X @ Y^T + beta * C + diag * I`, upper-triangle tiles only.

Explained, tested and benchmarked in `nbs/05_muon.ipynb` (module `motif_nb.muon`) and `nbs/bench/05_muon.ipynb`.

Where it is used. Newton-Schulz step k, with Motif's coefficient schedule (a_k, b_k, c_k) (a different triple at
each of the five steps, `motif_nb.muon.MOTIF_NS_COEFFICIENTS`), is `A = X X^T; B = b_k A + c_k A A; X = a_k X + B X`.
Both `A` (`sym_gram(X)`) and `B` (`sym_mm(A, A, beta=b_k, alpha=c_k, c=A)`) are symmetric: `A A = A A^T` because `A`
is symmetric. In the Gram form of the iteration every M x M matrix is a polynomial in `X0 X0^T`, so all of them
commute and every product of two of them is symmetric too; `P_k = a_k I + b_k A + c_k A^2` is one call
(`diag=a_k`). The products with an M x N result (`B X`, `R X0`) are not symmetric and stay in cuBLAS. The caller
guarantees that the result is symmetric; `c` may be `out` itself (each upper tile is read only by the program that
writes it), `x` and `y` may not.

Schedule. The M x M output is cut into T x T tiles of BLOCK_M x BLOCK_M, T = ceil(M / BLOCK_M). Only the
T(T+1)/2 tiles on or above the diagonal are computed: the grid is (T(T+1)/2, B), one program per upper tile and
batch entry. Program `pid` takes the pid-th entry (i, j), j <= i, of the lower triangle in row order,
pid = i(i+1)/2 + j, so i = floor((sqrt(8 pid + 1) - 1) / 2) (a float square root, then an exact integer fix-up) and
j = pid - i(i+1)/2, and computes the upper tile (row block j, column block i). Programs launched together therefore
share i: they all read row panel i of Y and walk the row panels j = 0..i of X, so a wave touches few panels and
they stay in L2. Each program runs a K loop in BLOCK_K steps into an fp32 accumulator, then scales by alpha, adds
`diag` on the diagonal of a diagonal tile and `beta * C`, casts, and stores the tile; an off-diagonal tile is
stored a second time transposed, at (column block i, row block j). A diagonal tile stores its upper half and the
mirror of it (one transpose and a `where`), so the result is exactly symmetric; masking every element by the
triangle instead would defeat vectorised stores.

Tiles are autotuned over (BLOCK_M, BLOCK_K, num_warps, num_stages) per (M, K, HAS_C); under the Triton interpreter
(`TRITON_INTERPRET=1`, the only environment variable read, at import) one small configuration is used. Inputs are
bf16, fp16 or fp32 on a GPU and fp16 or fp32 under the interpreter (which computes bf16 wrongly); `sym_mm` refuses any
other dtype (fp64 among them) by name. x and y share one dtype; accumulation is fp32, batched over a leading dim.
Precision: no `tl.dot` here sets `input_precision`, so Triton's default applies, which on NVIDIA GPUs is TF32 for fp32
operands: fp32 inputs are multiplied with 10-bit mantissas (fp32 accumulation), and an fp32 result matches the
PyTorch fp32 path (`torch.bmm` without TF32) only to TF32 accuracy. For bf16 and fp16 operands the setting makes no
difference. The interpreter ignores the setting and multiplies fp32 in fp32.
Strides are passed, so transposed and sliced views work. Works on Triton 3.6 (GPU) and 3.9 (interpreter): no block
pointers, every load and store is masked.
"""
import os
import torch
import triton
import triton.language as tl


def _cdiv(a:int, b:int)->int:
    "Ceil division on the host (`triton.cdiv` is a constexpr function: about 2 us per call from Python)."
    return -(-a // b)


_INTERPRET = os.environ.get('TRITON_INTERPRET', '0') not in ('', '0', 'false', 'False')

def _configs():
    if _INTERPRET: return [triton.Config({'BLOCK_M': 32, 'BLOCK_K': 32}, num_warps=4, num_stages=1)]
    return [triton.Config({'BLOCK_M': bm, 'BLOCK_K': bk}, num_warps=w, num_stages=s)
            for bm, bk, w, s in [(128, 64, 8, 3), (128, 64, 8, 4), (128, 64, 8, 5), (128, 128, 8, 3), (128, 64, 4, 4), (64, 64, 4, 4)]]

@triton.autotune(configs=_configs(), key=['M', 'K', 'HAS_C'])
@triton.jit
def _sym_mm_kernel(X, Y, C, OUT,                  # X, Y [B, M, K]; C, OUT [B, M, M]
                   M, K,
                   sxb, sxm, sxk, syb, sym, syk,     # strides: s{tensor}{dim}, e.g. sxm = X.stride(1) (b: batch)
                   scb, scm, scn, sob, som, son,     # C and OUT: batch, row, column
                   alpha, beta, diag,                # OUT = alpha X Y^T + beta C + diag I
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
    a_ptr = X + bidx * sxb + rm[:, None] * sxm + rk[None, :] * sxk     # [BM, BK] rows rm of X
    b_ptr = Y + bidx * syb + rn[None, :] * sym + rk[:, None] * syk     # [BK, BM] rows rn of Y, transposed
    acc = tl.zeros((BLOCK_M, BLOCK_M), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        kmask = (k0 + rk) < K
        a = tl.load(a_ptr, mask=(rm[:, None] < M) & kmask[None, :], other=0.0)
        b = tl.load(b_ptr, mask=(rn[None, :] < M) & kmask[:, None], other=0.0)
        acc = tl.dot(a, b, acc)
        a_ptr += BLOCK_K * sxk
        b_ptr += BLOCK_K * syk
    acc = acc * alpha
    if pm == pn:                                     # a diagonal tile: + diag * I
        acc += tl.where(rm[:, None] == rn[None, :], diag, 0.0)
    omask = (rm[:, None] < M) & (rn[None, :] < M)
    if HAS_C:
        c = tl.load(C + bidx * scb + rm[:, None] * scm + rn[None, :] * scn, mask=omask, other=0.0)
        acc += beta * c.to(tl.float32)
    out = acc.to(OUT.dtype.element_ty)
    Ob = OUT + bidx * sob
    # Off the diagonal: the tile and its transpose. On it: the upper half as computed and the lower half as its
    # mirror, so the result is exactly symmetric. One transpose serves both; the masks stay vectorisable.
    t = tl.trans(out)
    if pm == pn: out = tl.where(rm[:, None] <= rn[None, :], out, t)
    tl.store(Ob + rm[:, None] * som + rn[None, :] * son, out, mask=omask)
    if pm != pn:
        tmask = (rn[:, None] < M) & (rm[None, :] < M)
        tl.store(Ob + rn[:, None] * som + rm[None, :] * son, t, mask=tmask)

_DTYPES = (torch.float16, torch.float32) if _INTERPRET else (torch.float16, torch.bfloat16, torch.float32)

def _span(t:torch.Tensor)->tuple:
    "The byte range [lo, hi) that `t`'s elements lie in (empty for an empty tensor)."
    if t.numel() == 0: return 0, 0
    lo = t.data_ptr()
    return lo, lo + (1 + sum((n - 1) * s for n, s in zip(t.shape, t.stride()))) * t.element_size()

def _overlap(a:torch.Tensor, b:torch.Tensor)->bool:
    "Whether the byte ranges of `a` and `b` intersect (conservative: interleaved views count as overlapping)."
    (a0, a1), (b0, b1) = _span(a), _span(b)
    return a0 < a1 and b0 < b1 and a0 < b1 and b0 < a1

def sym_mm(x:torch.Tensor, y:torch.Tensor, out:torch.Tensor, alpha:float=1.0, beta:float=0.0,
           c:torch.Tensor|None=None, diag:float=0.0)->torch.Tensor:
    """`out = alpha * x @ y^T + beta * c + diag * I` for `x`, `y` [B, M, K], symmetric `c` [B, M, M], when the result is
    known to be symmetric. Dtypes: fp16, bf16 or fp32 on a GPU (fp32 multiplies in TF32 there, see the module
    docstring), fp16 or fp32 under the interpreter; x and y share one. `out` must not overlap x or y, nor itself (an
    expanded `out` is refused); `c` may be `out` itself but must not overlap it otherwise. An empty `out` (B = 0 or M = 0)
    is returned as it is."""
    if x.ndim != 3 or y.shape != x.shape:
        raise ValueError(f"sym_mm: x and y must both be [B, M, K] of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    Bn, M, K = x.shape
    if out.shape != (Bn, M, M): raise ValueError(f"sym_mm: out must have shape {(Bn, M, M)}, got {tuple(out.shape)}")
    if c is not None and c.shape != out.shape: raise ValueError(f"sym_mm: c must have shape {(Bn, M, M)}, got {tuple(c.shape)}")
    names = ', '.join(str(d)[6:] for d in _DTYPES)
    where = 'under the Triton interpreter' if _INTERPRET else 'on a GPU'
    for n, t in (('x', x), ('y', y), ('out', out), ('c', c)):
        if t is not None and t.dtype not in _DTYPES:
            raise TypeError(f"sym_mm: {n} is {t.dtype}; the Triton kernel takes {names} {where}")
    if y.dtype != x.dtype: raise TypeError(f"sym_mm: x and y must have one dtype, got {x.dtype} and {y.dtype}")
    if out.numel() == 0: return out                  # nothing to write (B = 0 or M = 0)
    if any(st == 0 and n > 1 for st, n in zip(out.stride(), out.shape)):
        raise ValueError(f"sym_mm: out (shape {tuple(out.shape)}, strides {out.stride()}) has stride 0 on a dimension of size > 1 "
                         f"(an expanded tensor): several of its elements are one memory location, which every entry would overwrite")
    if _overlap(out, x) or _overlap(out, y):
        raise ValueError("sym_mm: out must not be x or y, nor overlap them (tiles are read after others are written)")
    if c is not None and c is not out and (c.data_ptr() != out.data_ptr() or c.stride() != out.stride()) and _overlap(c, out):
        raise ValueError("sym_mm: c must be out itself or not overlap it (a tile of c is read only by the program that writes "
                         "the same tile of out)")
    has_c = c is not None
    cc = c if has_c else out
    grid = lambda meta: (_cdiv(M, meta['BLOCK_M']) * (_cdiv(M, meta['BLOCK_M']) + 1) // 2, Bn)
    _sym_mm_kernel[grid](x, y, cc, out, M, K, *x.stride(), *y.stride(), *cc.stride(), *out.stride(),
                         float(alpha), float(beta), float(diag), HAS_C=has_c)
    return out

def sym_gram(x:torch.Tensor, out:torch.Tensor, alpha:float=1.0, beta:float=0.0, c:torch.Tensor|None=None)->torch.Tensor:
    "`out = alpha * x @ x^T + beta * c` for `x` [B, M, K] and symmetric `c` [B, M, M]; only upper-triangle tiles are computed."
    return sym_mm(x, x, out, alpha, beta, c)
