"""Block-shape sweep of the GDA Triton kernels on a GPU (nbs/02_attention.ipynb, "Where the time goes").

usage: export PYTHONPATH=$PWD MOTIF_FIGURES=$OUT PYTHONUNBUFFERED=1; python3 bench/gda_tune.py [check] [kinds=dk,dv]
Times every candidate (BM, BN, warps, stages) of each launch (forward noise / signal, the row-wise backward kernel,
fused dK/dV noise / signal, split dV and dK, dQ) at the 12.7B head layout (G=8, g=4, d=128, bf16, causal) for
B=2 x T=4096 and B=1 x T=16384, and at motif-1b's (G=4) for B=8 x T=2048 (the shape of bench/model.py), launching
the jitted kernels directly with the candidate's meta-parameters. Every candidate's outputs are compared with
the first candidate's (and that one's with fp32 SDPA), so a fast but wrong layout shows. Candidates are compiled
first in parallel processes (one per candidate) so that the timing process finds them in Triton's cache.
Then, for the fastest layout of each launch, every program order in CHUNKS (heads per chunk, `_lpt` in kernels/gda.py).
Writes figures/gda_tune.{csv,json} (gda_tune_dk_dv with kinds=dk,dv); the table in kernels/gda.py (`_configs`) and `GDA_CHUNK_TOKENS` are chosen from it."""
import os, sys, time, math
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CANDS = {   # (BM, BN, warps, stages)
    'fwd': [(64, 64, 4, 3), (32, 64, 4, 3), (64, 32, 8, 3), (64, 64, 8, 3), (64, 64, 4, 4), (128, 64, 8, 3),
            (128, 32, 8, 3), (128, 64, 8, 2), (64, 128, 8, 3), (128, 128, 8, 2), (64, 64, 4, 2)],
    'dkdv': [(32, 32, 4, 2), (64, 32, 8, 2), (32, 64, 8, 2), (64, 64, 8, 2), (32, 64, 4, 2), (16, 64, 4, 2),
             (32, 128, 8, 2), (64, 128, 8, 2), (16, 128, 8, 2), (64, 64, 8, 3), (32, 64, 8, 3)],
    # the row-wise backward kernel: (BT positions per tile, RB tiles per program, warps, -)
    'pre': [(2, 16, 2, 1), (2, 32, 2, 1), (2, 8, 2, 1), (4, 8, 2, 1), (4, 16, 2, 1), (4, 8, 4, 1), (8, 2, 4, 1), (8, 4, 4, 1),
            (16, 1, 8, 1), (1, 32, 1, 1), (1, 16, 2, 1)],
    'dq': [(64, 32, 4, 2), (64, 64, 4, 2), (64, 64, 8, 2), (128, 32, 8, 2), (128, 64, 8, 2), (64, 32, 8, 3),
           (32, 64, 4, 2), (128, 64, 8, 3), (64, 64, 4, 3)],
    # the split backward (GDA_BWD='split'): dV of all maps in one kernel, dK1 / dK2 in another
    # (since the transposed dK/dV formulation, key blocks of 128 rows with 8 warps are candidates too)
    'dv': [(64, 64, 8, 3), (64, 64, 4, 3), (64, 64, 8, 2), (64, 128, 8, 2), (128, 64, 8, 2), (32, 64, 4, 3), (128, 128, 8, 2),
           (32, 128, 8, 2), (32, 128, 8, 3), (64, 128, 8, 3)],
    'dk': [(64, 64, 8, 3), (64, 64, 4, 3), (64, 64, 8, 2), (64, 128, 8, 2), (128, 64, 8, 2), (32, 64, 4, 3), (128, 128, 8, 2),
           (32, 128, 8, 2), (32, 128, 8, 3), (64, 128, 8, 3), (32, 128, 4, 3)],
}
CHUNKS = (1, 2, 4, 8, 16, 32, 64, 1 << 20)    # heads per chunk of the program order (`_lpt`); the last: all heads
SHAPES = ((2, 4096, {}), (1, 16384, {}), (8, 2048, {'G': 4}))   # 12.7B head layout x2, then motif-1b's (bench/model.py)
SMOKE = os.environ.get('GDA_TUNE_SMOKE') == '1'      # CPU check of this script under TRITON_INTERPRET=1: tiny, few candidates
DEV = 'cpu' if SMOKE else 'cuda'
CHECK = 'check' in sys.argv[1:]
KINDS = [k for a in sys.argv[1:] if a.startswith('kinds=') for k in a[6:].split(',')]   # e.g. kinds=dk,dv: only those launches
if SMOKE: CANDS, SHAPES = {k: [(16, 16, 4, 1), (16, 32, 4, 1)] for k in CANDS}, ((1, 48, {}),)
ALL = dict(CANDS)                                     # the whole path of the checks uses every kind
if KINDS: CANDS = {k: c for k, c in CANDS.items() if k in KINDS}


def _sync():
    import torch
    if not SMOKE: torch.cuda.synchronize(); torch.cuda.empty_cache()


def _state(B, T, seed=0, **kw):
    "Inputs and the buffers of the fused path (12.7B layout unless `kw` says G, g, d)."
    import torch
    from motif_nb.attention import _gda_inputs, _gda_fwd_buffers
    kw = dict(G=2, g=2, d=16, dtype=torch.float32, device='cpu') if SMOKE else kw
    q, k, v, lam, w = (t.detach() for t in _gda_inputs(B, T, seed=seed, **kw))
    lam = lam.reshape(1).float()
    y, a, o2, lse1, lse2, rstd, ml_s, ml_n = _gda_fwd_buffers(q)
    z = torch.zeros(1, dtype=torch.int32, device=DEV)
    dy = torch.randn_like(y)
    st = dict(q=q, k=k, v=v, lam=lam, w=w, y=y, a=a, o2=o2, lse1=lse1, lse2=lse2, rstd=rstd, ml_s=ml_s, ml_n=ml_n, z=z, dy=dy,
              do1=torch.empty(a.shape, dtype=q.dtype, device=DEV), do2=torch.empty(o2.shape, dtype=q.dtype, device=DEV),
              delta1=torch.empty_like(lse1), delta2=torch.empty_like(lse2),
              dq=torch.empty_like(q), dk=torch.empty_like(k), dv=torch.empty_like(v))
    return st


def _launch(st, kind, signal, cfg, chunk=None):
    """One launch of `kind` ('fwd', 'pre', 'dkdv', 'dq', 'dv', 'dk') for the signal or noise heads with block shape `cfg`;
    `chunk`: heads per chunk of the program order (None: the launcher's `GDA_CHUNK_TOKENS`)."""
    from motif_nb.attention import _gda_kernels, triton_cdiv, LOG2E, _chunk
    K = _gda_kernels()
    q = st['q']; B, T, G, g1, D = q.shape; g = g1 - 1
    heads = {'fwd': B * G * (g if signal else 1), 'dkdv': B * G, 'dv': B * G, 'dk': 2 * B * G, 'dq': B * G * (g + 1)}.get(kind, 1)   # programs per block
    launch = {'dkdv': 'dv', 'fwd': 'fwd_signal' if signal else 'fwd_noise'}.get(kind, kind)
    ch = None if kind == 'pre' else _chunk(launch, heads, T) if chunk is None else min(chunk, heads)
    bm, bn, nw, ns = cfg
    meta = dict(BM=bm, BN=bn, num_warps=nw, num_stages=ns, D=D, VARLEN=False, SIGNAL=signal)
    qk, sm = LOG2E / math.sqrt(D), 1 / math.sqrt(D)
    if kind == 'fwd':
        ml = st['ml_s'] if signal else st['ml_n']
        K.gda_fwd_kernel.fn[(triton_cdiv(T, bm) * heads,)](
            q, st['k'], st['v'], st['w'], st['lam'], st['y'], st['a'], st['o2'], st['lse1'], st['lse2'], st['rstd'], ml, st['z'],
            T, G, g, ml.shape[1], qk, 1e-5, 0.8, ch, **meta)
    bw = tuple(st[n] for n in ('q', 'k', 'v', 'do1', 'do2', 'lse1', 'lse2', 'delta1', 'delta2'))
    if kind == 'dkdv':
        K.gda_bwd_dkdv_kernel.fn[(triton_cdiv(T, bn) * heads,)](*bw, st['dk'], st['dv'], st['z'], st['z'], T, G, g, qk, sm, ch, **meta)
    if kind == 'pre':
        import torch
        nc = triton_cdiv(T, bm * bn)
        dwp = torch.empty(B * G * nc, 2 * D, device=DEV); dlp = torch.empty(B * G * nc, device=DEV)
        K.gda_bwd_pre_kernel[(B * G * nc,)](st['dy'], st['a'], st['o2'], st['rstd'], st['w'], st['lam'], st['do1'], st['do2'],
                                            st['delta1'], st['delta2'], dwp, dlp, T, G, g, nc, 0.8, D=D,
                                            GP=1 << (g - 1).bit_length(), BT=bm, RB=bn, num_warps=nw)
    if kind == 'dq':
        meta.pop('SIGNAL')      # one launch: the signal heads, then the noise heads
        K.gda_bwd_dq_kernel.fn[(triton_cdiv(T, bm) * heads,)](*bw, st['dq'], st['z'], T, G, g, B * G * g, qk, sm, ch, **meta)
    if kind == 'dv':
        meta.pop('SIGNAL')
        K.gda_bwd_dv_kernel.fn[(triton_cdiv(T, bn) * heads,)](q, st['k'], st['do1'], st['do2'], st['lse1'], st['lse2'], st['dv'],
                                                           st['z'], st['z'], T, G, g, qk, ch, **meta)
    if kind == 'dk':
        meta.pop('SIGNAL')      # one launch: dK1 of the signal maps and dK2 of the noise map
        K.gda_bwd_dk_kernel.fn[(triton_cdiv(T, bn) * heads,)](*bw, st['dk'], st['z'], st['z'], T, G, g, qk, sm, ch, **meta)


def _first(st, **cfgs):
    "Whole fused forward and backward, each kernel with `cfgs[kind]` or its first candidate (the baseline of the checks)."
    c = {kind: cfgs.get(kind, ALL[kind][0]) for kind in ALL}
    for s in (False, True): _launch(st, 'fwd', s, c['fwd'])
    _launch(st, 'pre', True, c['pre'])
    for s in (False, True): _launch(st, 'dkdv', s, c['dkdv'])
    _launch(st, 'dq', True, c['dq'])
    if 'dv' in cfgs or 'dk' in cfgs:     # the split backward overwrites dV and dK
        _launch(st, 'dv', True, c['dv'])
        _launch(st, 'dk', True, c['dk'])


def _reference(st):
    "fp32 SDPA on the upcast inputs: output and the q, k, v gradients for the cotangent `dy`."
    import torch
    from motif_nb.attention import gda_sdpa, _split
    ins = [st[n].float().requires_grad_() for n in ('q', 'k', 'v')]
    ref = gda_sdpa(*_split(*ins), st['lam'], st['w'].float(), 1e-5, 0.8, calls=2).permute(0, 3, 1, 2, 4)
    return (ref.detach(), *torch.autograd.grad(ref, ins, st['dy'].float()))


def _errors(st, ref):
    from motif_nb.core import rel_err
    return {n: rel_err(st[n], r) for n, r in zip(('y', 'dq', 'dk', 'dv'), ref)}


CHECK_SHAPES = ((2, 300, 64), (2, 256, 64), (1, 333, 128), (1, 600, 128))   # (B, T, d): partial blocks, both head dims
if SMOKE: CHECK_SHAPES = ((1, 21, 16),)


def check():
    "Every candidate of every kernel, in the whole fused path, against fp32 SDPA at small shapes of both head dims."
    import torch, pandas as pd
    rows = []
    for B, T, d in CHECK_SHAPES:
        st = _state(B, T, G=2, d=d)
        ref = _reference(st)
        for kind in CANDS:
            for cfg in CANDS[kind]:
                try:
                    _first(st, **{kind: cfg}); _sync()
                    rows.append(dict(B=B, T=T, d=d, kernel=kind, BM=cfg[0], BN=cfg[1], warps=cfg[2], stages=cfg[3], **_errors(st, ref)))
                except Exception as e:
                    rows.append(dict(B=B, T=T, d=d, kernel=kind, BM=cfg[0], BN=cfg[1], warps=cfg[2], stages=cfg[3], error=f'{type(e).__name__}: {str(e)[:160]}'))
    df = pd.DataFrame(rows)
    errs = ['y', 'dq', 'dk', 'dv']
    first = df.groupby(['B', 'T', 'd'])[errs].transform('min')           # the best any layout reached at that shape
    df['worst_over_best'] = (df[errs] / first).max(axis=1)
    return df


def _compile(job):
    "Compile one (kind, candidate) for both head kinds by running it on a small problem."
    kind, i = job
    import torch
    t = time.time()
    try:
        for B, T, d in ((1, 256, 128),) + (CHECK_SHAPES[:3] if CHECK else ()):   # T % 16 and d are specialisations
            st = _state(B, T, G=2, d=d)
            for s in (False, True): _launch(st, kind, s, CANDS[kind][i])
        _sync()
        return f"{kind} {CANDS[kind][i]} compiled in {time.time() - t:.0f} s"
    except Exception as e: return f"{kind} {CANDS[kind][i]} FAILED to compile: {type(e).__name__}: {str(e)[:200]}"


def main():
    t0 = time.time()
    jobs = [(kind, i) for kind in CANDS for i in range(len(CANDS[kind]))]
    if not SMOKE:
        with ProcessPoolExecutor(min(16, os.cpu_count() or 4), mp_context=get_context('spawn')) as ex:
            for r in ex.map(_compile, jobs): print(r, flush=True)
    print(f"parallel compile done at {time.time() - t0:.0f} s", flush=True)
    if CHECK:
        import pandas as pd
        from motif_nb.bench.results import save_result
        df = check()
        pd.set_option('display.width', 250)
        print(df.round(5).to_string(), flush=True)
        save_result('gda_tune_check', df, note='every candidate layout of each GDA kernel in the whole fused path (others at their '
                    'first candidate), bf16, vs fp32 SDPA; worst_over_best: the largest ratio of its errors to the best at that shape',
                    seconds=round(time.time() - t0, 1))
        return
    import torch, pandas as pd
    from triton.testing import do_bench
    if SMOKE: do_bench = lambda f, **kw: (f(), 1.0 + 0.5 * (f is run))[1]
    from motif_nb.core import rel_err
    from motif_nb.bench.results import save_result
    rows = []
    outs = {('fwd', False): ('o2', 'lse2'), ('fwd', True): ('y', 'a'), ('dkdv', False): ('dk', 'dv'), ('dkdv', True): ('dk', 'dv'),
            ('pre', True): ('do1', 'do2', 'delta1', 'delta2'), ('dq', True): ('dq',), ('dv', True): ('dv',), ('dk', True): ('dk',)}
    for B, T, kw in SHAPES:
        st = _state(B, T, **kw)
        _first(st); _sync()
        base_err = _errors(st, _reference(st))            # the baseline against fp32 SDPA
        print(f"B={B} T={T} baseline vs fp32 SDPA: " + ', '.join(f'{n} {e:.1e}' for n, e in base_err.items()), flush=True)
        _sync()
        base = {n: st[n].clone() for n in ('y', 'a', 'o2', 'lse2', 'do1', 'do2', 'delta1', 'delta2', 'dk', 'dv', 'dq')}
        flops_head = 3 * st['q'].shape[-1] * T * T * B     # causal QK^T (2 d T^2/2) + PV (2 2d T^2/2) per head, forward
        for (kind, signal), names in outs.items():
            if kind not in CANDS: continue
            G, g = st['q'].shape[2], st['q'].shape[3] - 1
            label = 'all' if kind in ('dv', 'dk', 'dq', 'pre') else 'signal' if signal else 'noise'   # which maps one launch covers
            heads = G * {'all': g + 1, 'signal': g, 'noise': 1}[label]
            mult = {'fwd': 1.0, 'dkdv': 2.0, 'dq': 4 / 3, 'dv': 1.0, 'dk': 4 / 3, 'pre': float('nan')}[kind]   # pre: memory-bound
            for cfg in CANDS[kind]:
                _first(st)                            # every buffer back to the baseline state (dkdv adds into dv)
                try:
                    if kind == 'dkdv':      # both launches (the signal one adds into the noise one's dV); the other one's time subtracted
                        other = lambda: _launch(st, 'dkdv', not signal, ALL['dkdv'][0])
                        def run():
                            _launch(st, 'dkdv', False, cfg if not signal else ALL['dkdv'][0])
                            _launch(st, 'dkdv', True, cfg if signal else ALL['dkdv'][0])
                    else: run = lambda: _launch(st, kind, signal, cfg)
                    run(); _sync()
                    err = max(rel_err(st[n], base[n]) for n in names)
                    ms = do_bench(run, warmup=10, rep=60, return_mode='median')
                    if kind == 'dkdv': ms -= do_bench(other, warmup=10, rep=60, return_mode='median')
                    rows.append(dict(B=B, T=T, G=G, kernel=kind, heads=label, BM=cfg[0], BN=cfg[1], warps=cfg[2],
                                     stages=cfg[3], ms=ms, tflops=flops_head * heads * mult / ms / 1e9, err_vs_first=err))
                except Exception as e:
                    rows.append(dict(B=B, T=T, G=G, kernel=kind, heads=label, BM=cfg[0], BN=cfg[1], warps=cfg[2],
                                     stages=cfg[3], error=f'{type(e).__name__}: {str(e)[:160]}'))
                print(rows[-1], flush=True)
            if kind in ('pre', 'dkdv'): continue
            ok = [r for r in rows if r['T'] == T and r['kernel'] == kind and r['heads'] == label and 'ms' in r and r['err_vs_first'] < 2e-2]
            best = min(ok, key=lambda r: r['ms'])
            cfg = (best['BM'], best['BN'], best['warps'], best['stages'])
            for ch in CHUNKS:                         # program order of the fastest layout: heads per chunk
                _first(st)
                run = lambda: _launch(st, kind, signal, cfg, chunk=ch)
                run(); _sync()
                err = max(rel_err(st[n], base[n]) for n in names)
                ms = do_bench(run, warmup=10, rep=60, return_mode='median')
                rows.append(dict(B=B, T=T, G=G, kernel=kind, heads=label, BM=cfg[0], BN=cfg[1], warps=cfg[2], stages=cfg[3],
                                 chunk=ch, ms=ms, tflops=flops_head * heads * mult / ms / 1e9, err_vs_first=err))
                print(rows[-1], flush=True)
        del st, base; _sync()
    df = pd.DataFrame(rows)
    best = (df[df.chunk.isna()].dropna(subset=['ms']).query('err_vs_first < 2e-2').sort_values('ms')
            .groupby(['B', 'T', 'G', 'kernel', 'heads']).head(3))
    print(best.to_string(), flush=True)
    print(df[df.chunk.notna()].pivot_table(index=['T', 'kernel', 'heads'], columns='chunk', values='ms').round(3).to_string(), flush=True)
    save_result('_'.join(['gda_tune'] + KINDS), df, note='per-launch block-shape sweep of the GDA kernels, 12.7B head layout, bf16, causal; '
                'TFLOP/s: forward 3dT^2 per head (causal), dK/dV 2x and dQ 4/3x that; rows with a chunk: the fastest '
                'layout with that many heads per chunk of the program order (1 << 20: all heads); others: the launcher default', seconds=round(time.time() - t0, 1))
    print(f"done in {time.time() - t0:.0f} s")


if __name__ == '__main__':
    main()
