"""Fused PolyNorm kernels: a one-pass forward and a closed-form backward, plain and gated (`PolyNorm(gate) * up`).

Explained, tested and shown in `nbs/01_polynorm.ipynb`; timed in `nbs/bench/01_polynorm.ipynb`.

Notation, used throughout this file. A call sees its input as M rows of width N (all leading dims flattened; the last
dim must be contiguous, the row stride is passed to the kernels). For one row x, with p = 1, 2, 3:

    r_p  = (mean(x^(2p)) + eps)^(-1/2)           the reciprocal RMS of x^p ("rstd"), kept in fp32
    y    = w0 r3 x^3 + w1 r2 x^2 + w2 r1 x + b   (gated: y * up), computed as ((w0 r3 x + w1 r2) x + w2 r1) x + b
    g    = dy (gated: dy * up),   S_p = sum_i g_i x_i^p
    dx   = g (3 w0 r3 x^2 + 2 w1 r2 x + w2 r1) - x (c3 x^4 + c2 x^2 + c1),   c_p = (p/N) w_{3-p} r_p^3 S_p
    dw_{3-p} = sum over rows of r_p S_p,   db = sum of g,   gated: d up = dy * PolyNorm(gate)

(w0, w1, w2) weigh n(x^3), n(x^2), n(x): w_{3-p} is the weight of n(x^p), so c3 uses w0 and dw0 = sum r3 S3.
Names: X, UP, Y, DY, DX, DUP, W, B, RSTD are pointers to the tensors of the same name; `stride_*` are row strides in
elements; BLOCK_M (bm) rows by BLOCK_N (bn) columns is the tile one program holds; nw is the number of warps; `progs`
is the number of backward programs per SM (0: one program per row tile).

Forward. Each program owns BLOCK_M whole rows. In the registers layout (N <= `max_block_fwd`, BLOCK_N = the next power
of two >= N) it loads its rows once, sums x^2, x^4, x^6 per row in fp32, writes y and the row's three r_p ([M, 3] fp32,
the only thing saved for the backward). For a width just above a power of two the autotuner is also offered two tiles
per row, BLOCK_N and BLOCK_N2 (powers of two, BLOCK_N + BLOCK_N2 >= N: 4096 + 2048 for 5632 columns), which leave
fewer lanes empty than one tile of the next power of two; the row sums add the two tiles' sums, and the backward does
the same. Narrow rows (BLOCK_N < 2048) are packed several to a program so that each
program moves about 4096 elements. Wider rows than `max_block_fwd` use the looping layout: one row per program, a loop
over column chunks of `chunk` to accumulate the sums, then a second loop that reads the row again and writes y, from
the last chunk back to the first: the chunks the first loop read last are the likeliest to be still in L2. The
looping layout keeps the registers per thread bounded at any width; the registers layout reads the row once. The
backward switches at `max_block` instead (it holds x, dy and, gated, up: about twice the forward's data).

Backward. Per row it needs S_1, S_2, S_3 before it can write dx, so the registers layout loads x, dy (and up) once,
reduces, and writes dx (and d up); the looping layout makes two passes over the chunks, the second from the last
chunk back, as in the forward. The grid is persistent:
about `progs_per_sm` programs per SM (`progs` of the layout when the autotuner chose one), each looping over row tiles
tile = pid, pid + programs, ... and keeping its partial sums of dw0, dw1, dw2, db in registers; each program writes
one [4] row of partials and torch sums them. No atomics, so the result does not depend on scheduling.

Held rows. A registers layout keeps its rows in registers from the sums to the output. In fp32 a row costs a register
per element per thread and stream, and at 32768 columns x and dy together spill at every warp count that fits. With
`hold` (16-bit inputs only) the rows stay in their input dtype and are converted to fp32 twice, for the sums and again
for the output: half the registers for one more conversion per element. Two identical conversions would be merged by
the compiler, which would then keep the fp32 copy live across the sums, so the second goes through the bits and a
run-time all-ones mask that the compiler cannot see through (`_again`, `keep` = -1). The autotuner times these
layouts beside the others (`candidates`); the heuristic `tile_config` does not use them.

Settings. `PolyNormSettings` holds the layout switches (`max_block`, `max_block_fwd`, `chunk`), the persistent grid
(`progs_per_sm`) and `autotune`. With `autotune` on a CUDA device the layout of each (pass, plain/gated, N,
power-of-two bucket of M, dtype, settings) is the fastest of `candidates`, timed once with `triton.testing.do_bench`
and kept in `_BEST` (one entry per shape seen, so it stays small); otherwise, and under the interpreter, it is the
heuristic `tile_config`. Every timed candidate is appended to `TUNE_LOG` (bounded: the last `TUNE_LOG.maxlen`).

Entry points. Eager calls go through a `torch.autograd.Function` that calls the launchers directly; under
`torch.compile` the registered custom ops (`motif_nb::poly_norm`, `motif_nb::mul_poly_norm` and their backward ops)
are used, with the settings passed as a tuple of ints (`PolyNormSettings.as_op_arg`).
First-order gradients only: the backward is the closed form above, computed by a kernel, so it has no graph of its
own. The eager Function refuses a backward run with `create_graph=True` (a RuntimeError naming the op, before any
launch), and the registered backward ops have no autograd formula, so differentiating their result raises too (as
does torch.compile's double backward). Gradient penalties, Hessian-vector products and the like need impl='torch'.

Works on triton 3.6 to 3.9 and under the interpreter (TRITON_INTERPRET=1, fp32/fp16): plain pointer arithmetic, every
row and column access masked (the loads of the three weights and the bias, and each program's store of its [4] row of
partials, are unmasked and in bounds), no libdevice.

Checks. `motif_nb.polynorm` validates its arguments fully. The entries here (`poly_norm_fwd`, `poly_norm_bwd`, hence
`poly_norm`, `mul_poly_norm` and the registered ops) check the shapes the kernels index by, on the host and without a
device sync: up and dy shaped like x, weight [3], bias [1], rstd [M, 3] fp32; and x (and up) fp16, bf16 or fp32 (the
kernels compute in fp32, so an fp64 input would come back fp64 with fp32 accuracy: it is refused by name).
"""
import collections, dataclasses, functools
from collections.abc import Sequence
import torch
import triton
import triton.language as tl


def _cdiv(a:int, b:int)->int:
    "Ceil division on the host (`triton.cdiv` is a constexpr function: about 2 us per call from Python)."
    return -(-a // b)


def _next_pow2(n:int)->int:
    "`triton.next_power_of_2` on the host, without its call overhead."
    return 1 << (n - 1).bit_length() if n > 0 else 0


@triton.jit
def _again(v, keep):
    """A 16-bit tile `v` in fp32 a second time, through its bits: `keep` is a run-time int equal to -1 (every bit set),
    so the AND leaves the value as it is but the compiler cannot prove it, and cannot reuse the first conversion. The
    tile then stays live across a row reduction in its 16-bit form, half the registers of its fp32 copy."""
    bits = v.to(tl.int16, bitcast=True) & keep.to(tl.int16)
    return bits.to(v.dtype, bitcast=True).to(tl.float32)


__all__ = ['PolyNormSettings', 'poly_norm', 'mul_poly_norm', 'poly_norm_fwd', 'poly_norm_bwd', 'tile_config',
           'candidates', 'cfg_name', 'tuned_layouts', 'TUNE_LOG', 'LAST_LAUNCH']


@triton.jit
def _fwd_sums(xr):
    "Row sums of x^2, x^4, x^6 of one registers tile (any dtype), in fp32."
    x = xr.to(tl.float32)
    x2 = x * x
    x4 = x2 * x2
    return tl.sum(x2, 1), tl.sum(x4, 1), tl.sum(x4 * x2, 1)


@triton.jit
def _fwd_out(xr, a3, a2, a1, b, keep, HOLD: tl.constexpr):
    "PolyNorm of one registers tile from its coefficients (a_p = w r_p): ((a3 x + a2) x + a1) x + b, in fp32."
    if HOLD:
        x = _again(xr, keep)
    else:
        x = xr.to(tl.float32)
    return ((a3 * x + a2) * x + a1) * x + b


@triton.jit
def _fwd_kernel(X, UP, Y, W, B, RSTD, M, N, stride_x, stride_up, stride_y, eps, keep,
                GATED: tl.constexpr, CHUNKED: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                HOLD: tl.constexpr, BLOCK_N2: tl.constexpr):
    """Forward: program `pid` writes Y (= PolyNorm(X), times UP when GATED) and RSTD (r1, r2, r3) of rows
    pid*BLOCK_M ... pid*BLOCK_M + BLOCK_M-1; CHUNKED loops over the row in BLOCK_N columns (two passes). HOLD (16-bit
    inputs, registers layout): the row stays in its input dtype across the sums and is converted again for y
    (`_again`, with `keep` = -1). BLOCK_N2 > 0 (registers layout): the row is two tiles, columns 0..BLOCK_N-1 and
    BLOCK_N..BLOCK_N+BLOCK_N2-1."""
    pid = tl.program_id(0)
    w0 = tl.load(W).to(tl.float32)
    w1 = tl.load(W + 1).to(tl.float32)
    w2 = tl.load(W + 2).to(tl.float32)
    b = tl.load(B).to(tl.float32)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = rows < M
    rows64 = rows.to(tl.int64)
    cols = tl.arange(0, BLOCK_N)
    if CHUNKED:
        s2 = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
        s4 = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
        s6 = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
        for off in range(0, N, BLOCK_N):
            c = off + cols
            mask = rmask[:, None] & (c < N)[None, :]
            x = tl.load(X + rows64[:, None] * stride_x + c[None, :], mask=mask, other=0.).to(tl.float32)
            x2 = x * x
            x4 = x2 * x2
            s2 += x2
            s4 += x4
            s6 += x4 * x2
        r1 = tl.rsqrt(tl.sum(s2, 1) / N + eps)
        r2 = tl.rsqrt(tl.sum(s4, 1) / N + eps)
        r3 = tl.rsqrt(tl.sum(s6, 1) / N + eps)
        a3 = (w0 * r3)[:, None]
        a2 = (w1 * r2)[:, None]
        a1 = (w2 * r1)[:, None]
        for i in range(0, tl.cdiv(N, BLOCK_N)):   # last chunk first: the chunks the first loop read last
            off = (tl.cdiv(N, BLOCK_N) - 1 - i) * BLOCK_N
            c = off + cols
            mask = rmask[:, None] & (c < N)[None, :]
            y = _fwd_out(tl.load(X + rows64[:, None] * stride_x + c[None, :], mask=mask, other=0.), a3, a2, a1, b, keep, False)
            if GATED:
                u = tl.load(UP + rows64[:, None] * stride_up + c[None, :], mask=mask, other=0.).to(tl.float32)
                y = y * u
            tl.store(Y + rows64[:, None] * stride_y + c[None, :], y.to(Y.dtype.element_ty), mask=mask)
    else:
        mask = rmask[:, None] & (cols < N)[None, :]
        xr = tl.load(X + rows64[:, None] * stride_x + cols[None, :], mask=mask, other=0.)
        if BLOCK_N2 > 0:
            cols2 = BLOCK_N + tl.arange(0, BLOCK_N2)
            mask2 = rmask[:, None] & (cols2 < N)[None, :]
            xr2 = tl.load(X + rows64[:, None] * stride_x + cols2[None, :], mask=mask2, other=0.)
        if GATED:  # issue the second stream's loads early
            ur = tl.load(UP + rows64[:, None] * stride_up + cols[None, :], mask=mask, other=0.)
            if BLOCK_N2 > 0:
                ur2 = tl.load(UP + rows64[:, None] * stride_up + cols2[None, :], mask=mask2, other=0.)
        s2, s4, s6 = _fwd_sums(xr)
        if BLOCK_N2 > 0:
            t2, t4, t6 = _fwd_sums(xr2)
            s2 += t2; s4 += t4; s6 += t6
        r1 = tl.rsqrt(s2 / N + eps)
        r2 = tl.rsqrt(s4 / N + eps)
        r3 = tl.rsqrt(s6 / N + eps)
        a3 = (w0 * r3)[:, None]
        a2 = (w1 * r2)[:, None]
        a1 = (w2 * r1)[:, None]
        if GATED:
            y = _fwd_out(xr, a3, a2, a1, b, keep, HOLD) * ur.to(tl.float32)
        else:
            y = _fwd_out(xr, a3, a2, a1, b, keep, HOLD)
        tl.store(Y + rows64[:, None] * stride_y + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)
        if BLOCK_N2 > 0:
            if GATED:
                y2 = _fwd_out(xr2, a3, a2, a1, b, keep, HOLD) * ur2.to(tl.float32)
            else:
                y2 = _fwd_out(xr2, a3, a2, a1, b, keep, HOLD)
            tl.store(Y + rows64[:, None] * stride_y + cols2[None, :], y2.to(Y.dtype.element_ty), mask=mask2)
    tl.store(RSTD + rows64 * 3, r1, mask=rmask)
    tl.store(RSTD + rows64 * 3 + 1, r2, mask=rmask)
    tl.store(RSTD + rows64 * 3 + 2, r3, mask=rmask)


@triton.jit
def _bwd_load(X, DY, UP, rows64, cols, mask, stride_x, stride_dy, stride_up, GATED: tl.constexpr):
    "x, dy and (GATED) up of one tile in their input dtype; without GATED the third is dy again (never read as up)."
    x = tl.load(X + rows64[:, None] * stride_x + cols[None, :], mask=mask, other=0.)
    dy = tl.load(DY + rows64[:, None] * stride_dy + cols[None, :], mask=mask, other=0.)
    if GATED:
        up = tl.load(UP + rows64[:, None] * stride_up + cols[None, :], mask=mask, other=0.)
    else:
        up = dy
    return x, dy, up


@triton.jit
def _bwd_sums(xr, dyr, ur, GATED: tl.constexpr):
    "Row sums S_1, S_2, S_3 of g x^p and the row sum of g (g = dy, times up when GATED) of one registers tile, in fp32."
    x = xr.to(tl.float32)
    if GATED:
        g = dyr.to(tl.float32) * ur.to(tl.float32)
    else:
        g = dyr.to(tl.float32)
    gx = g * x
    gx2 = gx * x
    return tl.sum(gx, 1), tl.sum(gx2, 1), tl.sum(gx2 * x, 1), tl.sum(g, 1)


@triton.jit
def _bwd_out(DX, DUP, rows64, cols, mask, stride_dx, stride_dup, xr, dyr, ur, a3, a2, a1, c3, c2, c1,
             w0, w1, w2, r1, r2, r3, b, keep, GATED: tl.constexpr, HOLD: tl.constexpr):
    """dx (and, GATED, d up) of one registers tile from the row's coefficients. HOLD: x, dy (and up) once more from
    their 16-bit registers (`_again`); else the fp32 values of the sums (the compiler keeps one conversion)."""
    if HOLD:
        x = _again(xr, keep)
        dy = _again(dyr, keep)
        if GATED:
            g = dy * _again(ur, keep)
        else:
            g = dy
    else:
        x = xr.to(tl.float32)
        dy = dyr.to(tl.float32)
        if GATED:
            g = dy * ur.to(tl.float32)
        else:
            g = dy
    x2 = x * x
    dx = g * ((a3 * x + a2) * x + a1) - x * ((c3 * x2 + c2) * x2 + c1)
    tl.store(DX + rows64[:, None] * stride_dx + cols[None, :], dx.to(DX.dtype.element_ty), mask=mask)
    if GATED:
        pn = (((w0 * r3)[:, None] * x + (w1 * r2)[:, None]) * x + (w2 * r1)[:, None]) * x + b
        tl.store(DUP + rows64[:, None] * stride_dup + cols[None, :], (dy * pn).to(DUP.dtype.element_ty), mask=mask)


@triton.jit
def _bwd_kernel(DY, X, UP, DX, DUP, W, B, RSTD, DW_PART, M, N, stride_dy, stride_x, stride_up, stride_dx,
                stride_dup, n_tiles, keep,
                GATED: tl.constexpr, CHUNKED: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                HOLD: tl.constexpr, BLOCK_N2: tl.constexpr):
    """Backward: program `pid` of a persistent grid handles row tiles pid, pid + programs, ... (n_tiles of BLOCK_M
    rows): DX (and DUP when GATED) from the saved RSTD, and its partial (dw0, dw1, dw2, db) in DW_PART[pid, :].
    HOLD (16-bit inputs, registers layout): x, dy (and up) stay in their input dtype across the sums and are converted
    again for dx (`_again`, with `keep` = -1). BLOCK_N2 > 0 (registers layout): two tiles per row, as in the forward."""
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    w0 = tl.load(W).to(tl.float32)
    w1 = tl.load(W + 1).to(tl.float32)
    w2 = tl.load(W + 2).to(tl.float32)
    b = tl.load(B).to(tl.float32)
    inv_n = 1.0 / N
    cols = tl.arange(0, BLOCK_N)
    acc3 = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc2 = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc1 = tl.zeros([BLOCK_M], dtype=tl.float32)
    accb = tl.zeros([BLOCK_M], dtype=tl.float32)
    for tile in range(pid, n_tiles, nprog):
        rows = tile * BLOCK_M + tl.arange(0, BLOCK_M)
        rmask = rows < M
        rows64 = rows.to(tl.int64)
        r1 = tl.load(RSTD + rows64 * 3, mask=rmask, other=0.)
        r2 = tl.load(RSTD + rows64 * 3 + 1, mask=rmask, other=0.)
        r3 = tl.load(RSTD + rows64 * 3 + 2, mask=rmask, other=0.)
        if CHUNKED:
            t1 = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
            t2 = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
            t3 = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
            tb = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
            for off in range(0, N, BLOCK_N):
                c = off + cols
                mask = rmask[:, None] & (c < N)[None, :]
                x = tl.load(X + rows64[:, None] * stride_x + c[None, :], mask=mask, other=0.).to(tl.float32)
                g = tl.load(DY + rows64[:, None] * stride_dy + c[None, :], mask=mask, other=0.).to(tl.float32)
                if GATED:
                    u = tl.load(UP + rows64[:, None] * stride_up + c[None, :], mask=mask, other=0.).to(tl.float32)
                    g = g * u
                gx = g * x
                gx2 = gx * x
                t1 += gx
                t2 += gx2
                t3 += gx2 * x
                tb += g
            S1 = tl.sum(t1, 1)
            S2 = tl.sum(t2, 1)
            S3 = tl.sum(t3, 1)
            accb += tl.sum(tb, 1)
        else:
            mask = rmask[:, None] & (cols < N)[None, :]
            xr, dyr, ur = _bwd_load(X, DY, UP, rows64, cols, mask, stride_x, stride_dy, stride_up, GATED)
            if BLOCK_N2 > 0:
                cols2 = BLOCK_N + tl.arange(0, BLOCK_N2)
                mask2 = rmask[:, None] & (cols2 < N)[None, :]
                xr2, dyr2, ur2 = _bwd_load(X, DY, UP, rows64, cols2, mask2, stride_x, stride_dy, stride_up, GATED)
            S1, S2, S3, Sb = _bwd_sums(xr, dyr, ur, GATED)
            if BLOCK_N2 > 0:
                T1, T2, T3, Tb = _bwd_sums(xr2, dyr2, ur2, GATED)
                S1 += T1; S2 += T2; S3 += T3; Sb += Tb
            accb += Sb
        acc1 += r1 * S1
        acc2 += r2 * S2
        acc3 += r3 * S3
        # dx = g * (3 w0 r3 x^2 + 2 w1 r2 x + w2 r1) - x * (c3 x^4 + c2 x^2 + c1),  c_p = (p/N) w_{3-p} r_p^3 S_p
        a3 = (3.0 * w0 * r3)[:, None]
        a2 = (2.0 * w1 * r2)[:, None]
        a1 = (w2 * r1)[:, None]
        c3 = (3.0 * inv_n * w0 * r3 * r3 * r3 * S3)[:, None]
        c2 = (2.0 * inv_n * w1 * r2 * r2 * r2 * S2)[:, None]
        c1 = (inv_n * w2 * r1 * r1 * r1 * S1)[:, None]
        if CHUNKED:
            for i in range(0, tl.cdiv(N, BLOCK_N)):   # last chunk first: the chunks the first loop read last
                off = (tl.cdiv(N, BLOCK_N) - 1 - i) * BLOCK_N
                c = off + cols
                mask = rmask[:, None] & (c < N)[None, :]
                xc, dyc, uc = _bwd_load(X, DY, UP, rows64, c, mask, stride_x, stride_dy, stride_up, GATED)
                _bwd_out(DX, DUP, rows64, c, mask, stride_dx, stride_dup, xc, dyc, uc, a3, a2, a1, c3, c2, c1,
                         w0, w1, w2, r1, r2, r3, b, keep, GATED, False)
        else:
            _bwd_out(DX, DUP, rows64, cols, mask, stride_dx, stride_dup, xr, dyr, ur, a3, a2, a1, c3, c2, c1,
                     w0, w1, w2, r1, r2, r3, b, keep, GATED, HOLD)
            if BLOCK_N2 > 0:
                _bwd_out(DX, DUP, rows64, cols2, mask2, stride_dx, stride_dup, xr2, dyr2, ur2, a3, a2, a1, c3, c2, c1,
                         w0, w1, w2, r1, r2, r3, b, keep, GATED, HOLD)
    tl.store(DW_PART + pid * 4, tl.sum(acc3, 0))
    tl.store(DW_PART + pid * 4 + 1, tl.sum(acc2, 0))
    tl.store(DW_PART + pid * 4 + 2, tl.sum(acc1, 0))
    tl.store(DW_PART + pid * 4 + 3, tl.sum(accb, 0))


def _is_int(v): return isinstance(v, int) and not isinstance(v, bool)

_MAX_NUMEL = 2**20   # Triton's largest block (elements)


@dataclasses.dataclass(frozen=True)
class PolyNormSettings:
    "Launch settings of the PolyNorm kernels; defaults chosen from an autotuning sweep (figures/polynorm_bench.csv, part 'tune')."
    max_block:int=16384     # widest row the backward keeps whole in registers (at 16 warps: 32 fp32 per thread per stream)
    max_block_fwd:int=32768 # the same for the forward, which holds only x (and up)
    chunk:int=8192          # column chunk of the looping layout, a power of two (16 warps at 8192)
    progs_per_sm:int=2      # persistent backward grid: programs per SM (0: one program per row tile)
    autotune:bool=True      # on a CUDA device, time `candidates` once per shape and keep the fastest

    def __post_init__(self):
        for f in ('max_block', 'max_block_fwd', 'chunk'):
            v = getattr(self, f)
            if not _is_int(v): raise TypeError(f"PolyNormSettings.{f} must be an int, got {v!r} ({type(v).__name__})")
            if not 1 <= v <= _MAX_NUMEL: raise ValueError(f"PolyNormSettings.{f} must be an int in [1, {_MAX_NUMEL}], got {v!r}")
        if self.chunk & (self.chunk - 1): raise ValueError(f"PolyNormSettings.chunk must be a power of two, got {self.chunk!r}")
        if not _is_int(self.progs_per_sm):
            raise TypeError(f"PolyNormSettings.progs_per_sm must be an int, got {self.progs_per_sm!r} ({type(self.progs_per_sm).__name__})")
        if self.progs_per_sm < 0: raise ValueError(f"PolyNormSettings.progs_per_sm must be an int >= 0, got {self.progs_per_sm!r}")
        if not isinstance(self.autotune, bool): raise TypeError(f"PolyNormSettings.autotune must be a bool, got {self.autotune!r} ({type(self.autotune).__name__})")

    def as_op_arg(self)->tuple:
        "The settings as a tuple of ints, the form the registered custom ops take (`int[]` in their schema)."
        return (self.max_block, self.max_block_fwd, self.chunk, self.progs_per_sm, int(self.autotune))

    @staticmethod
    def from_op_arg(t:Sequence)->'PolyNormSettings':
        "Inverse of `as_op_arg` (cached: the custom ops call it on every launch)."
        return _from_op_arg(tuple(int(v) for v in t))

@functools.lru_cache(maxsize=64)
def _from_op_arg(t):
    if len(t) != 5: raise ValueError(f"PolyNormSettings: an op argument has 5 ints, got {t!r}")
    return PolyNormSettings(*t[:4], autotune=bool(t[4]))

_DEFAULT = PolyNormSettings()
LAST_LAUNCH = {}   # (kind, gated) -> dict(layout, n_regs, n_spills) of the last GPU launch: at most 4 entries


def tile_config(N, M=None, kind='fwd', gated=False, settings=None):
    """Heuristic launch layout for rows of width `N`: dict(chunked, bm, bn, nw) (+ `progs` per SM for the backward).
    Used under the interpreter and with `autotune=False`; chosen from the autotuning sweep (figures/polynorm_bench.csv,
    part 'tune'; nbs/01_polynorm.ipynb compares the two on the saved run)."""
    s = _DEFAULT if settings is None else settings
    if N > (s.max_block_fwd if kind == 'fwd' else s.max_block):
        cfg = dict(chunked=True, bm=1, bn=s.chunk, nw=max(4, min(16, s.chunk // 512)))
    else:
        bn = _next_pow2(N)
        if bn < 2048:                                     # pack narrow rows: 4096 elements per program
            bm = max(1, 4096 // bn)
            if M is not None: bm = min(bm, _next_pow2(max(M, 1)))
            nw = max(1, min(8, bm * bn // 512))
        else: bm, nw = 1, max(4, min(32 if kind == 'fwd' else 16, bn // 1024))   # ~32 fp32 per thread per stream
        cfg = dict(chunked=False, bm=bm, bn=bn, nw=nw)
    if kind == 'bwd': cfg['progs'] = s.progs_per_sm
    return cfg


def _two_tiles(N:int)->tuple|None:
    """(BLOCK_N, BLOCK_N2) of a registers layout that covers a row of width N with two power-of-two tiles, when that
    holds fewer lanes than one tile of the next power of two (None otherwise): 5632 -> (4096, 2048), 6144 lanes
    against 8192."""
    bn = _next_pow2(N)
    if bn == N: return None
    t1 = bn // 2
    t2 = _next_pow2(N - t1)
    return (t1, t2) if t1 + t2 < bn else None


def candidates(N, kind='fwd', settings=None, dtype=None):
    """Launch layouts the autotuner times for rows of width `N` (one entry: nothing to tune); for 16-bit `dtype` also
    the registers layouts that hold the rows in 16 bits across the sums (`hold`: 8 to 64 elements per thread); for a
    width just above a power of two also the registers layouts of two tiles (`_two_tiles`, `bn2`)."""
    bn = _next_pow2(N)
    if bn < 2048: out = [tile_config(N, settings=settings)]
    else:
        out = [dict(chunked=False, bm=1, bn=bn, nw=nw) for nw in (4, 8, 16, 32) if 4 <= bn // (32 * nw) <= 32]
        if dtype in (torch.float16, torch.bfloat16):
            out += [dict(chunked=False, bm=1, bn=bn, nw=nw, hold=True) for nw in (4, 8, 16, 32) if 8 <= bn // (32 * nw) <= 64]
        if tt := _two_tiles(N):
            lanes = tt[0] + tt[1]
            holds = (False, True) if dtype in (torch.float16, torch.bfloat16) else (False,)
            out += [dict(chunked=False, bm=1, bn=tt[0], bn2=tt[1], nw=nw, **({'hold': True} if h else {}))
                    for h in holds for nw in (4, 8, 16, 32) if (8 if h else 4) <= lanes // (32 * nw) <= (64 if h else 32)]
        out += [dict(chunked=True, bm=1, bn=c, nw=nw) for c, nw in ((2048, 4), (4096, 8), (8192, 16)) if c < N]
    if kind == 'bwd': out = [dict(c, progs=p) for c in out for p in (0, 2, 8)]
    return out


def cfg_name(cfg):
    """Short name of a layout: regs|chunk, BLOCK_N (+BLOCK_N2: two tiles), /w warps, /m rows per program (if > 1), /h
    rows held in 16 bits, /p programs per SM (backward)."""
    name = ('chunk' if cfg['chunked'] else 'regs') + f"{cfg['bn']}" + (f"+{cfg['bn2']}" if cfg.get('bn2') else '')
    name += f"/w{cfg['nw']}" + (f"/m{cfg['bm']}" if cfg['bm'] > 1 else '')
    name += '/h' if cfg.get('hold') else ''
    return name + (f"/p{cfg['progs']}" if 'progs' in cfg else '')


def _rows(t, N):
    "`t` as a [M, N] view whose last dim is contiguous (a copy only when it must)."
    t2 = t.reshape(-1, N)
    return t2 if t2.stride(-1) == 1 else t2.contiguous()


def _note(kind, gated, cfg, k):
    info = {}
    if k is not None and getattr(k, 'n_regs', None) is not None:
        info = dict(n_regs=k.n_regs, n_spills=k.n_spills)
        LAST_LAUNCH[(kind, gated)] = dict(cfg, **info)
    return info


_BEST = {}                                  # (kind, gated, N, next_pow2(M), dtype, settings) -> layout: one per shape seen
TUNE_LOG = collections.deque(maxlen=4096)   # timed candidates: dict(kind, gated, N, M, cfg, ms, n_regs, n_spills | error)


def tuned_layouts()->dict:
    "A copy of the autotuner's choices so far: {(kind, gated, N, next_pow2(M), dtype, settings): layout}."
    return dict(_BEST)


def _choose(kind, gated, M, N, dtype, device, launch, settings):
    "The layout for this call: the heuristic, or on CUDA (with `settings.autotune`) the fastest candidate, timed once per key."
    if not (settings.autotune and device.type == 'cuda'): return tile_config(N, M, kind, gated, settings)
    key = (kind, gated, N, _next_pow2(M), dtype, settings)
    if key not in _BEST:
        cands = candidates(N, kind, settings, dtype)
        if len(cands) == 1: _BEST[key] = dict(cands[0], **({'progs': settings.progs_per_sm} if kind == 'bwd' and 'progs' not in cands[0] else {}))
        else:
            from triton.testing import do_bench
            best = None
            for cfg in cands:
                try:
                    info = launch(cfg)
                    ms = do_bench(lambda: launch(cfg), warmup=5, rep=20, return_mode='median')
                except Exception as e:     # a layout that does not compile or launch here is skipped
                    info, ms = {'error': f'{type(e).__name__}: {e}'[:200]}, float('inf')
                TUNE_LOG.append(dict(kind=kind, gated=gated, N=N, M=M, cfg=cfg_name(cfg), ms=ms, **info))
                if best is None or ms < best[0]: best = (ms, cfg)
            _BEST[key] = best[1]
    return _BEST[key]


def _hold(cfg, *streams)->bool:
    "Whether a launch keeps its rows in 16 bits across the sums: a registers layout with `hold`, every stream 16-bit."
    return bool(cfg.get('hold')) and not cfg['chunked'] and all(t.element_size() == 2 for t in streams)


def _launch_fwd(x2, u2, y, weight, bias, rstd, eps, gated, cfg):
    M, N = x2.shape
    k = _fwd_kernel[(_cdiv(M, cfg['bm']),)](
        X=x2, UP=u2, Y=y, W=weight, B=bias, RSTD=rstd, M=M, N=N,
        stride_x=x2.stride(0), stride_up=u2.stride(0), stride_y=y.stride(0), eps=eps, keep=-1,
        GATED=gated, CHUNKED=cfg['chunked'], BLOCK_M=cfg['bm'], BLOCK_N=cfg['bn'], HOLD=_hold(cfg, x2, u2),
        BLOCK_N2=cfg.get('bn2', 0), num_warps=cfg['nw'])
    return _note('fwd', gated, cfg, k)


_DTYPES = (torch.float16, torch.bfloat16, torch.float32)     # what x and up may be (the kernels compute in fp32)

def _check_shapes(op, x, weight, bias, up=None, dy=None, rstd=None):
    """Raise a ValueError naming the argument unless the shapes are those the kernels index by: up and dy like x, weight
    [3], bias [1], rstd [M, 3] fp32 (and a TypeError unless x and up are fp16, bf16 or fp32). Host-side reads only (no
    device sync)."""
    xn = 'gate' if up is not None else 'x'
    if x.ndim < 1 or x.shape[-1] == 0: raise ValueError(f"{op}: {xn} must have a non-empty last dimension, got shape {tuple(x.shape)}")
    for n, t in ((xn, x), ('up', up)):
        if t is not None and t.dtype not in _DTYPES:
            raise TypeError(f"{op}: {n} is {t.dtype}; the Triton kernels take fp16, bf16 or fp32 (they compute in fp32); "
                            f"impl='torch' computes fp64 in fp64")
    if up is not None and up.shape != x.shape:
        raise ValueError(f"{op}: up must have gate's shape {tuple(x.shape)}, got {tuple(up.shape)}")
    if dy is not None and dy.shape != x.shape: raise ValueError(f"{op}: dy must have {xn}'s shape {tuple(x.shape)}, got {tuple(dy.shape)}")
    if tuple(weight.shape) != (3,): raise ValueError(f"{op}: weight must have shape [3] (the weights of n(x^3), n(x^2), n(x)), got {tuple(weight.shape)}")
    if tuple(bias.shape) != (1,): raise ValueError(f"{op}: bias must have shape [1], got {tuple(bias.shape)}")
    if rstd is not None:
        M = x.numel() // x.shape[-1]
        if tuple(rstd.shape) != (M, 3) or rstd.dtype != torch.float32:
            raise ValueError(f"{op}: rstd must be the forward's fp32 [M, 3] = [{M}, 3], got {rstd.dtype} of shape {tuple(rstd.shape)}")


def poly_norm_fwd(x, weight, bias, eps, up=None, cfg=None, settings=None):
    "Fused forward of PolyNorm (or PolyNorm(x) * up): returns (y shaped like x, rstd [M, 3] fp32)."
    _check_shapes('mul_poly_norm' if up is not None else 'poly_norm', x, weight, bias, up=up)
    s = _DEFAULT if settings is None else settings
    N = x.shape[-1]
    x2 = _rows(x, N)
    M = x2.shape[0]
    u2 = _rows(up, N) if up is not None else x2
    weight, bias = weight.contiguous(), bias.contiguous()
    y = torch.empty((M, N), dtype=x.dtype, device=x.device)
    rstd = torch.empty((M, 3), dtype=torch.float32, device=x.device)
    if M == 0: return y.reshape(x.shape), rstd
    gated = up is not None
    launch = lambda c: _launch_fwd(x2, u2, y, weight, bias, rstd, eps, gated, c)
    cfg = cfg or _choose('fwd', gated, M, N, x.dtype, x.device, launch, s)
    launch(cfg)
    return y.reshape(x.shape), rstd


_SMS = {}

def _num_programs(n_tiles, device, per_sm):
    if device.type != 'cuda': return max(1, min(n_tiles, 4))   # interpreter: few programs, each looping over tiles
    if not per_sm: return n_tiles
    if device not in _SMS: _SMS[device] = torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(n_tiles, per_sm * _SMS[device]))


def _launch_bwd(dy2, x2, u2, dx, dup, weight, bias, rstd, gated, cfg, settings):
    "Run the backward kernel; returns the [programs, 4] partial sums of (dw0, dw1, dw2, db) and the kernel's resources."
    M, N = x2.shape
    n_tiles = _cdiv(M, cfg['bm'])
    nprog = _num_programs(n_tiles, x2.device, cfg.get('progs', settings.progs_per_sm))
    dw_part = torch.empty((nprog, 4), dtype=torch.float32, device=x2.device)   # every program writes its row
    k = _bwd_kernel[(nprog,)](
        DY=dy2, X=x2, UP=u2, DX=dx, DUP=dup, W=weight, B=bias, RSTD=rstd, DW_PART=dw_part, M=M, N=N,
        stride_dy=dy2.stride(0), stride_x=x2.stride(0), stride_up=u2.stride(0), stride_dx=dx.stride(0),
        stride_dup=dup.stride(0), n_tiles=n_tiles, keep=-1,
        GATED=gated, CHUNKED=cfg['chunked'], BLOCK_M=cfg['bm'], BLOCK_N=cfg['bn'], HOLD=_hold(cfg, x2, u2, dy2),
        BLOCK_N2=cfg.get('bn2', 0), num_warps=cfg['nw'])
    return dw_part, _note('bwd', gated, cfg, k)


def poly_norm_bwd(dy, x, weight, bias, rstd, eps, up=None, cfg=None, settings=None):
    "Closed-form backward: (dx, dweight, dbias) or, gated, (dx, dup, dweight, dbias)."
    _check_shapes(('mul_poly_norm' if up is not None else 'poly_norm') + ' backward', x, weight, bias, up=up, dy=dy, rstd=rstd)
    rstd = rstd.contiguous()             # the kernel reads row m's three values at 3m (a no-op for the forward's rstd)
    s = _DEFAULT if settings is None else settings
    N = x.shape[-1]
    x2, dy2 = _rows(x, N), _rows(dy, N)
    M = x2.shape[0]
    u2 = _rows(up, N) if up is not None else x2
    weight, bias = weight.contiguous(), bias.contiguous()
    dx = torch.empty((M, N), dtype=x.dtype, device=x.device)
    dup = torch.empty((M, N), dtype=up.dtype, device=x.device) if up is not None else dx
    gated = up is not None
    if M:
        def launch(c):   # autotuning times the launch plus the reduction of its partials (their number depends on the grid)
            dw_part, info = _launch_bwd(dy2, x2, u2, dx, dup, weight, bias, rstd, gated, c, s)
            dw_part.sum(0)
            return info
        cfg = cfg or _choose('bwd', gated, M, N, x.dtype, x.device, launch, s)
        dw_part, _ = _launch_bwd(dy2, x2, u2, dx, dup, weight, bias, rstd, gated, cfg, s)
    else: dw_part = torch.zeros((1, 4), dtype=torch.float32, device=x.device)
    dw, db = dw_part[:, :3].sum(0).to(weight.dtype), dw_part[:, 3:].sum(0).to(bias.dtype)   # two tensors: outputs must not alias
    if up is None: return dx.reshape(x.shape), dw, db
    return dx.reshape(x.shape), dup.reshape(up.shape), dw, db


# ---- torch.library custom ops: opaque to torch.compile (no graph break), autograd through the closed form ----

@torch.library.custom_op('motif_nb::poly_norm', mutates_args=())
def _poly_norm_op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float,
                  settings: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    return poly_norm_fwd(x, weight, bias, eps, settings=PolyNormSettings.from_op_arg(settings))

@_poly_norm_op.register_fake
def _(x, weight, bias, eps, settings):
    M = x.numel() // x.shape[-1] if x.shape[-1] else 0
    return torch.empty(x.shape, dtype=x.dtype, device=x.device), x.new_empty((M, 3), dtype=torch.float32)

@torch.library.custom_op('motif_nb::poly_norm_backward', mutates_args=())
def _poly_norm_bwd_op(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, rstd: torch.Tensor,
                      eps: float, settings: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return poly_norm_bwd(dy, x, weight, bias, rstd, eps, settings=PolyNormSettings.from_op_arg(settings))

@_poly_norm_bwd_op.register_fake
def _(dy, x, weight, bias, rstd, eps, settings):
    return torch.empty(x.shape, dtype=x.dtype, device=x.device), torch.empty_like(weight), torch.empty_like(bias)

def _pn_setup(ctx, inputs, output):
    x, weight, bias, eps, settings = inputs
    ctx.save_for_backward(x, weight, bias, output[1])
    ctx.eps, ctx.settings = eps, settings

def _pn_backward(ctx, dy, drstd):
    x, weight, bias, rstd = ctx.saved_tensors
    dx, dw, db = torch.ops.motif_nb.poly_norm_backward(dy, x, weight, bias, rstd, ctx.eps, ctx.settings)
    return dx, dw, db, None, None

_poly_norm_op.register_autograd(_pn_backward, setup_context=_pn_setup)


@torch.library.custom_op('motif_nb::mul_poly_norm', mutates_args=())
def _mul_poly_norm_op(gate: torch.Tensor, up: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                      eps: float, settings: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    return poly_norm_fwd(gate, weight, bias, eps, up=up, settings=PolyNormSettings.from_op_arg(settings))

@_mul_poly_norm_op.register_fake
def _(gate, up, weight, bias, eps, settings):
    M = gate.numel() // gate.shape[-1] if gate.shape[-1] else 0
    return torch.empty(gate.shape, dtype=gate.dtype, device=gate.device), gate.new_empty((M, 3), dtype=torch.float32)

@torch.library.custom_op('motif_nb::mul_poly_norm_backward', mutates_args=())
def _mul_poly_norm_bwd_op(dy: torch.Tensor, gate: torch.Tensor, up: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                          rstd: torch.Tensor, eps: float, settings: Sequence[int]
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return poly_norm_bwd(dy, gate, weight, bias, rstd, eps, up=up, settings=PolyNormSettings.from_op_arg(settings))

@_mul_poly_norm_bwd_op.register_fake
def _(dy, gate, up, weight, bias, rstd, eps, settings):
    return (torch.empty(gate.shape, dtype=gate.dtype, device=gate.device), torch.empty(up.shape, dtype=up.dtype, device=up.device),
            torch.empty_like(weight), torch.empty_like(bias))

def _mpn_setup(ctx, inputs, output):
    gate, up, weight, bias, eps, settings = inputs
    ctx.save_for_backward(gate, up, weight, bias, output[1])
    ctx.eps, ctx.settings = eps, settings

def _mpn_backward(ctx, dy, drstd):
    gate, up, weight, bias, rstd = ctx.saved_tensors
    dg, du, dw, db = torch.ops.motif_nb.mul_poly_norm_backward(dy, gate, up, weight, bias, rstd, ctx.eps, ctx.settings)
    return dg, du, dw, db, None, None

_mul_poly_norm_op.register_autograd(_mpn_backward, setup_context=_mpn_setup)


def _first_order_only(op:str):
    """Refuse a backward that autograd runs with `create_graph=True` (grad mode on inside it): the kernels' gradients
    have no graph, so their second-order terms would be missing from whatever is differentiated next, silently."""
    if torch.is_grad_enabled():
        raise RuntimeError(f"{op}: the Triton kernels have first-order gradients only, and this backward runs with "
                           f"create_graph=True (a gradient penalty, a Hessian-vector product); use impl='torch' for those")


class _PolyNormFn(torch.autograd.Function):
    "Eager autograd: the launchers called directly (a custom op's Python dispatch costs about 1 ms of CPU per step)."
    @staticmethod
    def forward(ctx, x, weight, bias, eps, settings):
        y, rstd = poly_norm_fwd(x, weight, bias, eps, settings=settings)
        ctx.save_for_backward(x, weight, bias, rstd)
        ctx.eps, ctx.settings = eps, settings
        return y

    @staticmethod
    def backward(ctx, dy):
        _first_order_only('poly_norm')
        x, weight, bias, rstd = ctx.saved_tensors
        dx, dw, db = poly_norm_bwd(dy, x, weight, bias, rstd, ctx.eps, settings=ctx.settings)
        return dx, dw, db, None, None


class _MulPolyNormFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gate, up, weight, bias, eps, settings):
        y, rstd = poly_norm_fwd(gate, weight, bias, eps, up=up, settings=settings)
        ctx.save_for_backward(gate, up, weight, bias, rstd)
        ctx.eps, ctx.settings = eps, settings
        return y

    @staticmethod
    def backward(ctx, dy):
        _first_order_only('mul_poly_norm')
        gate, up, weight, bias, rstd = ctx.saved_tensors
        dg, du, dw, db = poly_norm_bwd(dy, gate, weight, bias, rstd, ctx.eps, up=up, settings=ctx.settings)
        return dg, du, dw, db, None, None


def poly_norm(x, weight, bias, eps=1e-6, settings=None):
    "PolyNorm through the fused kernels: the `motif_nb::poly_norm` op under torch.compile, a thin autograd.Function in eager."
    s = _DEFAULT if settings is None else settings
    if torch.compiler.is_compiling(): return torch.ops.motif_nb.poly_norm(x, weight, bias, eps, s.as_op_arg())[0]
    return _PolyNormFn.apply(x, weight, bias, eps, s)

def mul_poly_norm(gate, up, weight, bias, eps=1e-6, settings=None):
    "PolyNorm(gate) * up through the fused kernels (custom op under torch.compile, autograd.Function in eager)."
    s = _DEFAULT if settings is None else settings
    if torch.compiler.is_compiling(): return torch.ops.motif_nb.mul_poly_norm(gate, up, weight, bias, eps, s.as_op_arg())[0]
    return _MulPolyNormFn.apply(gate, up, weight, bias, eps, s)
