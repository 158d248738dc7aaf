"""GPU benchmark of Grouped Differential Attention (nbs/02_attention.ipynb, `benchmark_gda`).

usage: export PYTHONPATH=$PWD MOTIF_FIGURES=$OUT PYTHONUNBUFFERED=1 MOTIF_COMMAND="python bench/gda.py"; python3 bench/gda.py
Writes figures/gda_bench.{csv,png,json} (or under $MOTIF_FIGURES). The Triton autotune candidates are first compiled
in parallel, one process per config, so that the timed process finds them in Triton's cache; a parallel process
checks the module in bf16 on the GPU (head_dim 64, packed documents) against an fp64 reference."""
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _warm(i):
    "Compile config i of every GDA kernel (same specialisation as the benchmark: T and blocks multiples of 16)."
    os.environ['MOTIF_GDA_ONLY_CONFIG'] = str(i)
    import torch
    from motif_nb.attention import gda_triton, _gda_inputs
    t = time.time()
    q, k, v, lam, w = _gda_inputs(1, 256)
    y = gda_triton(q, k, v, lam, w, 1e-5, 0.8)
    torch.autograd.grad(y, (q, k, v, lam, w), torch.randn_like(y))
    torch.cuda.synchronize()
    return f"config {i} compiled in {time.time() - t:.0f} s"


def _module_checks(_):
    "bf16 GDA module (impl='triton') vs an fp64 reference: head_dim 64 and 128, unpadded T=300 and packed documents."
    os.environ['MOTIF_GDA_ONLY_CONFIG'] = '0'
    import copy, torch
    from motif_nb.attention import GDA, grads_of
    from motif_nb.config import MotifConfig
    from motif_nb.core import rel_err
    out = []
    for d, kw in ((64, {}), (128, {'cu_seqlens': torch.tensor([0, 100, 101, 357, 600], dtype=torch.int32, device='cuda')})):
        torch.manual_seed(0)
        c = MotifConfig.from_preset('motif-small', num_attention_heads=10, num_noise_heads=2, num_key_value_heads=4, head_dim=d)
        m = GDA(c, 2).cuda()
        with torch.no_grad():
            for n in ('lambda_q1', 'lambda_k1', 'lambda_q2', 'lambda_k2'): getattr(m, n).normal_(0, 0.3)
        x = torch.randn(1 if kw else 2, 600 if kw else 300, 128, device='cuda')
        ref = grads_of(copy.deepcopy(m).double(), x.double(), 'reference', **kw)
        got = grads_of(copy.deepcopy(m).bfloat16(), x.bfloat16(), 'triton', **kw)
        m.impl = 'triton'; _, ml = copy.deepcopy(m).bfloat16()(x.bfloat16(), return_max_logits=True, **kw)
        m.impl = 'reference'; _, mr = m.double()(x.double(), return_max_logits=True, **kw)
        errs = {n: rel_err(got[n], ref[n]) for n in ref}
        out.append(f"module check d={d} {'packed' if kw else 'B=2 T=300'}: " + ', '.join(f'{n} {e:.1e}' for n, e in errs.items())
                   + f"; max logits max abs diff {float((ml - mr).abs().max()):.1e}")
    return '\n'.join(out)


if __name__ == '__main__':
    t0 = time.time()
    with ProcessPoolExecutor(5, mp_context=get_context('spawn')) as ex:
        futs = [ex.submit(_warm, i) for i in range(4)] + [ex.submit(_module_checks, 0)]
        for f in futs:
            try: print(f.result(), flush=True)
            except Exception as e: print(f"FAILED: {type(e).__name__}: {e}", flush=True)
    print(f"parallel warm-up and checks done at {time.time() - t0:.0f} s", flush=True)
    import torch
    from motif_nb.attention import benchmark_gda, plot_gda_bench
    from motif_nb.bench.results import save_result
    budget = float(os.environ.get('GDA_BENCH_BUDGET_S', 300))
    df = benchmark_gda(time_budget_s=budget)
    print(df.drop(columns=[c for c in ('error',) if c in df]).to_string())
    save_result('gda_bench', df, fig=plot_gda_bench(df), autotuned=df.attrs.get('configs'),
                note='12.7B GDA head layout, bf16, causal; do_bench medians; TFLOP/s on minimal GDA FLOPs')
    print(f"done in {time.time() - t0:.0f} s")
