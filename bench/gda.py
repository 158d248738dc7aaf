"""GPU benchmark of Grouped Differential Attention (nbs/02_attention.ipynb, `benchmark_gda`).

usage: export PYTHONPATH=$PWD MOTIF_FIGURES=$OUT PYTHONUNBUFFERED=1 MOTIF_COMMAND="python bench/gda.py"; python3 bench/gda.py
Writes figures/gda_bench.{csv,png,json} (or under $MOTIF_FIGURES). The Triton autotune candidates are first compiled
in parallel, one process per config, so that the timed process finds them in Triton's cache."""
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


if __name__ == '__main__':
    t0 = time.time()
    with ProcessPoolExecutor(3, mp_context=get_context('spawn')) as ex:
        for m in ex.map(_warm, range(3)): print(m, flush=True)
    print(f"parallel warm-up done at {time.time() - t0:.0f} s", flush=True)
    import torch
    from motif_nb.attention import benchmark_gda, plot_gda_bench
    from motif_nb.results import save_result
    budget = float(os.environ.get('GDA_BENCH_BUDGET_S', 330))
    df = benchmark_gda(time_budget_s=budget)
    print(df.to_string())
    save_result('gda_bench', df, fig=plot_gda_bench(df), autotuned=df.attrs.get('configs'),
                note='12.7B GDA head layout, bf16, causal; do_bench medians; TFLOP/s on minimal GDA FLOPs')
    print(f"done in {time.time() - t0:.0f} s")
