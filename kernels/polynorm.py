"""Fused PolyNorm kernels: one-pass forward and closed-form backward, plain and gated (`PolyNorm(gate) * up`).

Explained, tested and benchmarked in `nbs/01_polynorm.ipynb`. Formulas (SPEC section 3), per row of length N with
r_p = (mean(x^(2p)) + eps)^(-1/2) and w = (w0, w1, w2) the weights of n(x^3), n(x^2), n(x):

    y    = w0 r3 x^3 + w1 r2 x^2 + w2 r1 x + b                    (gated: y * up)
    dx_i = sum_p w_p (p x_i^(p-1) r_p g_i - (p/N) x_i^(2p-1) r_p^3 S_p),   S_p = sum_i g_i x_i^p
    dw_p = sum_rows r_p S_p,  db = sum g                          (gated: g = dy * up, d up = dy * PolyNorm(gate))

The forward saves the three r_p of each row ([M, 3] fp32) and nothing else.

Two layouts (`tile_config`; on a GPU the fastest of `candidates` is autotuned once per width and row bucket):
* registers (N <= MAX_BLOCK_FWD / MAX_BLOCK): a tile of BLOCK_M rows x BLOCK_N (= next power of two >= N) columns is
  loaded once; narrow rows are packed several to a program so that every program moves a few KiB.
* chunked (wider rows): one row per program, a loop over column chunks of BLOCK_N; the row is read twice
  (statistics, then output), the second time mostly from L2.
The backward runs a grid of about 2 (or 8) programs per SM looping over row tiles, or one program per tile; each
program keeps its partial sums of dw/db in registers and writes one [4] row, summed by torch afterwards (no
atomics, deterministic).
Eager calls go through a torch.autograd.Function; under torch.compile the registered custom ops
(`motif_nb::poly_norm`, `motif_nb::mul_poly_norm` and their backward ops) are used.

Works on triton 3.6 (the GPU box) to 3.9 and under the interpreter (TRITON_INTERPRET=1, fp32/fp16): plain pointer
arithmetic, every access masked, no libdevice.
"""
import math, os
import torch
import triton
import triton.language as tl

__all__ = ['poly_norm', 'mul_poly_norm', 'poly_norm_fwd', 'poly_norm_bwd', 'tile_config', 'candidates', 'cfg_name',
           'MAX_BLOCK', 'MAX_BLOCK_FWD', 'CHUNK', 'PROGS_PER_SM', 'AUTOTUNE', 'TUNE_LOG']


@triton.jit
def _fwd_kernel(X, UP, Y, W, B, RSTD, M, N, sx, su, sy, eps,
                GATED: tl.constexpr, CHUNKED: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
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
            x = tl.load(X + rows64[:, None] * sx + c[None, :], mask=mask, other=0.).to(tl.float32)
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
        for off in range(0, N, BLOCK_N):
            c = off + cols
            mask = rmask[:, None] & (c < N)[None, :]
            x = tl.load(X + rows64[:, None] * sx + c[None, :], mask=mask, other=0.).to(tl.float32)
            y = ((a3 * x + a2) * x + a1) * x + b
            if GATED:
                u = tl.load(UP + rows64[:, None] * su + c[None, :], mask=mask, other=0.).to(tl.float32)
                y = y * u
            tl.store(Y + rows64[:, None] * sy + c[None, :], y.to(Y.dtype.element_ty), mask=mask)
    else:
        mask = rmask[:, None] & (cols < N)[None, :]
        x = tl.load(X + rows64[:, None] * sx + cols[None, :], mask=mask, other=0.).to(tl.float32)
        if GATED:  # issue the second stream's loads early
            u = tl.load(UP + rows64[:, None] * su + cols[None, :], mask=mask, other=0.).to(tl.float32)
        x2 = x * x
        x4 = x2 * x2
        r1 = tl.rsqrt(tl.sum(x2, 1) / N + eps)
        r2 = tl.rsqrt(tl.sum(x4, 1) / N + eps)
        r3 = tl.rsqrt(tl.sum(x4 * x2, 1) / N + eps)
        y = (((w0 * r3)[:, None] * x + (w1 * r2)[:, None]) * x + (w2 * r1)[:, None]) * x + b
        if GATED:
            y = y * u
        tl.store(Y + rows64[:, None] * sy + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)
    tl.store(RSTD + rows64 * 3, r1, mask=rmask)
    tl.store(RSTD + rows64 * 3 + 1, r2, mask=rmask)
    tl.store(RSTD + rows64 * 3 + 2, r3, mask=rmask)


@triton.jit
def _bwd_kernel(DY, X, UP, DX, DUP, W, B, RSTD, DWP, M, N, sdy, sx, su, sdx, sdu, n_tiles,
                GATED: tl.constexpr, CHUNKED: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
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
                x = tl.load(X + rows64[:, None] * sx + c[None, :], mask=mask, other=0.).to(tl.float32)
                g = tl.load(DY + rows64[:, None] * sdy + c[None, :], mask=mask, other=0.).to(tl.float32)
                if GATED:
                    u = tl.load(UP + rows64[:, None] * su + c[None, :], mask=mask, other=0.).to(tl.float32)
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
            x = tl.load(X + rows64[:, None] * sx + cols[None, :], mask=mask, other=0.).to(tl.float32)
            dy = tl.load(DY + rows64[:, None] * sdy + cols[None, :], mask=mask, other=0.).to(tl.float32)
            if GATED:
                u = tl.load(UP + rows64[:, None] * su + cols[None, :], mask=mask, other=0.).to(tl.float32)
                g = dy * u
            else:
                g = dy
            gx = g * x
            gx2 = gx * x
            S1 = tl.sum(gx, 1)
            S2 = tl.sum(gx2, 1)
            S3 = tl.sum(gx2 * x, 1)
            accb += tl.sum(g, 1)
        acc1 += r1 * S1
        acc2 += r2 * S2
        acc3 += r3 * S3
        # dx = g * (3 w0 r3 x^2 + 2 w1 r2 x + w2 r1) - x * (c3 x^4 + c2 x^2 + c1),  c_p = (p/N) w_p r_p^3 S_p
        a3 = (3.0 * w0 * r3)[:, None]
        a2 = (2.0 * w1 * r2)[:, None]
        a1 = (w2 * r1)[:, None]
        c3 = (3.0 * inv_n * w0 * r3 * r3 * r3 * S3)[:, None]
        c2 = (2.0 * inv_n * w1 * r2 * r2 * r2 * S2)[:, None]
        c1 = (inv_n * w2 * r1 * r1 * r1 * S1)[:, None]
        if CHUNKED:
            for off in range(0, N, BLOCK_N):
                c = off + cols
                mask = rmask[:, None] & (c < N)[None, :]
                x = tl.load(X + rows64[:, None] * sx + c[None, :], mask=mask, other=0.).to(tl.float32)
                dy = tl.load(DY + rows64[:, None] * sdy + c[None, :], mask=mask, other=0.).to(tl.float32)
                if GATED:
                    u = tl.load(UP + rows64[:, None] * su + c[None, :], mask=mask, other=0.).to(tl.float32)
                    g = dy * u
                else:
                    g = dy
                x2 = x * x
                dx = g * ((a3 * x + a2) * x + a1) - x * ((c3 * x2 + c2) * x2 + c1)
                tl.store(DX + rows64[:, None] * sdx + c[None, :], dx.to(DX.dtype.element_ty), mask=mask)
                if GATED:
                    pn = (((w0 * r3)[:, None] * x + (w1 * r2)[:, None]) * x + (w2 * r1)[:, None]) * x + b
                    tl.store(DUP + rows64[:, None] * sdu + c[None, :], (dy * pn).to(DUP.dtype.element_ty), mask=mask)
        else:
            x2 = x * x
            dx = g * ((a3 * x + a2) * x + a1) - x * ((c3 * x2 + c2) * x2 + c1)
            tl.store(DX + rows64[:, None] * sdx + cols[None, :], dx.to(DX.dtype.element_ty), mask=mask)
            if GATED:
                pn = (((w0 * r3)[:, None] * x + (w1 * r2)[:, None]) * x + (w2 * r1)[:, None]) * x + b
                tl.store(DUP + rows64[:, None] * sdu + cols[None, :], (dy * pn).to(DUP.dtype.element_ty), mask=mask)
    tl.store(DWP + pid * 4, tl.sum(acc3, 0))
    tl.store(DWP + pid * 4 + 1, tl.sum(acc2, 0))
    tl.store(DWP + pid * 4 + 2, tl.sum(acc1, 0))
    tl.store(DWP + pid * 4 + 3, tl.sum(accb, 0))


MAX_BLOCK = 16384       # widest row the backward keeps whole in registers (at 16 warps: 32 fp32 per thread per stream)
MAX_BLOCK_FWD = 32768   # the same for the forward, which holds only x (and up)
CHUNK = 8192            # column chunk of the looping layout (16 warps)
PROGS_PER_SM = 2        # persistent backward grid: programs per SM (0: one program per row tile)
LAST_LAUNCH = {}        # (kind, gated) -> dict(cfg, n_regs, n_spills) of the last launch on a GPU (for the benchmark notes)


def tile_config(N, M=None, kind='fwd', gated=False):
    """Launch layout for rows of width `N`: dict(chunked, bm, bn, nw) (+ `progs` per SM for the backward).
    The defaults follow the H100 autotuning table of nbs/01_polynorm.ipynb (figures/polynorm_bench.csv, part 'tune')."""
    if N > (MAX_BLOCK_FWD if kind == 'fwd' else MAX_BLOCK):
        cfg = dict(chunked=True, bm=1, bn=CHUNK, nw=max(4, min(16, CHUNK // 512)))
    else:
        bn = triton.next_power_of_2(N)
        if bn < 2048:                                     # pack narrow rows: 4096 elements per program
            bm = max(1, 4096 // bn)
            if M is not None: bm = min(bm, triton.next_power_of_2(max(M, 1)))
            nw = max(1, min(8, bm * bn // 512))
        else: bm, nw = 1, max(4, min(32 if kind == 'fwd' else 16, bn // 1024))   # ~32 fp32 per thread per stream
        cfg = dict(chunked=False, bm=bm, bn=bn, nw=nw)
    if kind == 'bwd': cfg['progs'] = PROGS_PER_SM
    return cfg


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


def candidates(N, kind='fwd'):
    "Launch layouts the autotuner times for rows of width `N` (one entry: nothing to tune)."
    bn = triton.next_power_of_2(N)
    if bn < 2048: out = [tile_config(N)]
    else:
        out = [dict(chunked=False, bm=1, bn=bn, nw=nw) for nw in (4, 8, 16, 32) if 4 <= bn // (32 * nw) <= 32]
        out += [dict(chunked=True, bm=1, bn=c, nw=nw) for c, nw in ((2048, 4), (4096, 8), (8192, 16)) if c < N]
    if kind == 'bwd': out = [dict(c, progs=p) for c in out for p in (0, 2, 8)]
    return out


AUTOTUNE = os.environ.get('MOTIF_POLYNORM_AUTOTUNE', '1') not in ('0', 'false', 'False')
_BEST = {}      # (kind, gated, N, next_pow2(M), dtype) -> chosen layout
TUNE_LOG = []   # every timed candidate: dict(kind, gated, N, M, cfg, ms, n_regs, n_spills)


def cfg_name(cfg):
    name = ('chunk' if cfg['chunked'] else 'regs') + f"{cfg['bn']}/w{cfg['nw']}" + (f"/m{cfg['bm']}" if cfg['bm'] > 1 else '')
    return name + (f"/p{cfg['progs']}" if 'progs' in cfg else '')


def _choose(kind, gated, M, N, dtype, device, launch):
    "The layout for this call: the heuristic, or on CUDA (with AUTOTUNE) the fastest candidate, timed once per key."
    if not (AUTOTUNE and device.type == 'cuda'): return tile_config(N, M, kind, gated)
    key = (kind, gated, N, triton.next_power_of_2(M), dtype)
    if key not in _BEST:
        cands = candidates(N, kind)
        if len(cands) == 1: _BEST[key] = dict(cands[0], **({'progs': PROGS_PER_SM} if kind == 'bwd' and 'progs' not in cands[0] else {}))
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


def _launch_fwd(x2, u2, y, weight, bias, rstd, eps, gated, cfg):
    M, N = x2.shape
    k = _fwd_kernel[(triton.cdiv(M, cfg['bm']),)](x2, u2, y, weight, bias, rstd, M, N, x2.stride(0), u2.stride(0),
                                                  y.stride(0), eps, GATED=gated, CHUNKED=cfg['chunked'],
                                                  BLOCK_M=cfg['bm'], BLOCK_N=cfg['bn'], num_warps=cfg['nw'])
    return _note('fwd', gated, cfg, k)


def poly_norm_fwd(x, weight, bias, eps, up=None, cfg=None):
    "Fused forward of PolyNorm (or PolyNorm(x) * up): returns (y shaped like x, rstd [M, 3] fp32)."
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
    cfg = cfg or _choose('fwd', gated, M, N, x.dtype, x.device, launch)
    launch(cfg)
    return y.reshape(x.shape), rstd


def _num_programs(n_tiles, device, per_sm):
    if device.type != 'cuda': return max(1, min(n_tiles, 4))   # interpreter: few programs, each looping over tiles
    if not per_sm: return n_tiles
    if device not in _SMS: _SMS[device] = torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(n_tiles, per_sm * _SMS[device]))

_SMS = {}


def _launch_bwd(dy2, x2, u2, dx, dup, weight, bias, rstd, gated, cfg):
    "Run the backward kernel; returns the [programs, 4] partial sums of (dw0, dw1, dw2, db) and the kernel's resources."
    M, N = x2.shape
    n_tiles = triton.cdiv(M, cfg['bm'])
    nprog = _num_programs(n_tiles, x2.device, cfg.get('progs', PROGS_PER_SM))
    dwp = torch.empty((nprog, 4), dtype=torch.float32, device=x2.device)   # every program writes its row
    k = _bwd_kernel[(nprog,)](dy2, x2, u2, dx, dup, weight, bias, rstd, dwp, M, N,
                              dy2.stride(0), x2.stride(0), u2.stride(0), dx.stride(0), dup.stride(0), n_tiles,
                              GATED=gated, CHUNKED=cfg['chunked'], BLOCK_M=cfg['bm'], BLOCK_N=cfg['bn'],
                              num_warps=cfg['nw'])
    return dwp, _note('bwd', gated, cfg, k)


def poly_norm_bwd(dy, x, weight, bias, rstd, eps, up=None, cfg=None):
    "Closed-form backward: (dx, dweight, dbias) or, gated, (dx, dup, dweight, dbias)."
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
            dwp, info = _launch_bwd(dy2, x2, u2, dx, dup, weight, bias, rstd, gated, c)
            dwp.sum(0)
            return info
        cfg = cfg or _choose('bwd', gated, M, N, x.dtype, x.device, launch)
        dwp, _ = _launch_bwd(dy2, x2, u2, dx, dup, weight, bias, rstd, gated, cfg)
    else: dwp = torch.zeros((1, 4), dtype=torch.float32, device=x.device)
    dw, db = dwp[:, :3].sum(0).to(weight.dtype), dwp[:, 3:].sum(0).to(bias.dtype)   # two tensors: outputs must not alias
    if up is None: return dx.reshape(x.shape), dw, db
    return dx.reshape(x.shape), dup.reshape(up.shape), dw, db


# ---- torch.library custom ops: opaque to torch.compile (no graph break), autograd through the closed form ----

@torch.library.custom_op('motif_nb::poly_norm', mutates_args=())
def _poly_norm_op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    return poly_norm_fwd(x, weight, bias, eps)

@_poly_norm_op.register_fake
def _(x, weight, bias, eps):
    M = x.numel() // x.shape[-1] if x.shape[-1] else 0
    return torch.empty(x.shape, dtype=x.dtype, device=x.device), x.new_empty((M, 3), dtype=torch.float32)

@torch.library.custom_op('motif_nb::poly_norm_backward', mutates_args=())
def _poly_norm_bwd_op(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, rstd: torch.Tensor,
                      eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return poly_norm_bwd(dy, x, weight, bias, rstd, eps)

@_poly_norm_bwd_op.register_fake
def _(dy, x, weight, bias, rstd, eps):
    return torch.empty(x.shape, dtype=x.dtype, device=x.device), torch.empty_like(weight), torch.empty_like(bias)

def _pn_setup(ctx, inputs, output):
    x, weight, bias, eps = inputs
    ctx.save_for_backward(x, weight, bias, output[1])
    ctx.eps = eps

def _pn_backward(ctx, dy, drstd):
    x, weight, bias, rstd = ctx.saved_tensors
    dx, dw, db = torch.ops.motif_nb.poly_norm_backward(dy, x, weight, bias, rstd, ctx.eps)
    return dx, dw, db, None

_poly_norm_op.register_autograd(_pn_backward, setup_context=_pn_setup)


@torch.library.custom_op('motif_nb::mul_poly_norm', mutates_args=())
def _mul_poly_norm_op(gate: torch.Tensor, up: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                      eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    return poly_norm_fwd(gate, weight, bias, eps, up=up)

@_mul_poly_norm_op.register_fake
def _(gate, up, weight, bias, eps):
    M = gate.numel() // gate.shape[-1] if gate.shape[-1] else 0
    return torch.empty(gate.shape, dtype=gate.dtype, device=gate.device), gate.new_empty((M, 3), dtype=torch.float32)

@torch.library.custom_op('motif_nb::mul_poly_norm_backward', mutates_args=())
def _mul_poly_norm_bwd_op(dy: torch.Tensor, gate: torch.Tensor, up: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                          rstd: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return poly_norm_bwd(dy, gate, weight, bias, rstd, eps, up=up)

@_mul_poly_norm_bwd_op.register_fake
def _(dy, gate, up, weight, bias, rstd, eps):
    return (torch.empty(gate.shape, dtype=gate.dtype, device=gate.device), torch.empty(up.shape, dtype=up.dtype, device=up.device),
            torch.empty_like(weight), torch.empty_like(bias))

def _mpn_setup(ctx, inputs, output):
    gate, up, weight, bias, eps = inputs
    ctx.save_for_backward(gate, up, weight, bias, output[1])
    ctx.eps = eps

def _mpn_backward(ctx, dy, drstd):
    gate, up, weight, bias, rstd = ctx.saved_tensors
    dg, du, dw, db = torch.ops.motif_nb.mul_poly_norm_backward(dy, gate, up, weight, bias, rstd, ctx.eps)
    return dg, du, dw, db, None

_mul_poly_norm_op.register_autograd(_mpn_backward, setup_context=_mpn_setup)


class _PolyNormFn(torch.autograd.Function):
    "Eager autograd: the launchers called directly (the custom-op dispatch costs ~1 ms of CPU per step, see the notebook)."
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        y, rstd = poly_norm_fwd(x, weight, bias, eps)
        ctx.save_for_backward(x, weight, bias, rstd)
        ctx.eps = eps
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, bias, rstd = ctx.saved_tensors
        dx, dw, db = poly_norm_bwd(dy, x, weight, bias, rstd, ctx.eps)
        return dx, dw, db, None


class _MulPolyNormFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gate, up, weight, bias, eps):
        y, rstd = poly_norm_fwd(gate, weight, bias, eps, up=up)
        ctx.save_for_backward(gate, up, weight, bias, rstd)
        ctx.eps = eps
        return y

    @staticmethod
    def backward(ctx, dy):
        gate, up, weight, bias, rstd = ctx.saved_tensors
        dg, du, dw, db = poly_norm_bwd(dy, gate, weight, bias, rstd, ctx.eps, up=up)
        return dg, du, dw, db, None


def poly_norm(x, weight, bias, eps=1e-6):
    "PolyNorm through the fused kernels: the `motif_nb::poly_norm` op under torch.compile, a thin autograd.Function in eager."
    if torch.compiler.is_compiling(): return torch.ops.motif_nb.poly_norm(x, weight, bias, eps)[0]
    return _PolyNormFn.apply(x, weight, bias, eps)

def mul_poly_norm(gate, up, weight, bias, eps=1e-6):
    "PolyNorm(gate) * up through the fused kernels (custom op under torch.compile, autograd.Function in eager)."
    if torch.compiler.is_compiling(): return torch.ops.motif_nb.mul_poly_norm(gate, up, weight, bias, eps)[0]
    return _MulPolyNormFn.apply(gate, up, weight, bias, eps)
