"""Benchmark of PolyNorm (bf16, CUDA): eager, torch.compile, Liger-Kernel 0.8.5 and motif_nb's fused kernels.

Writes figures/polynorm_bench.{csv,png,json} (or under $MOTIF_FIGURES) through motif_nb.bench.results.save_result.
Run from the repository root: `PYTHONPATH=$PWD python3 bench/polynorm.py` (see nbs/01_polynorm.ipynb)."""
import os, time
import matplotlib
matplotlib.use('Agg')
import torch
import pandas as pd
from motif_nb.polynorm import benchmark_polynorm, plot_polynorm_bench, bf16_errors
from motif_nb.bench.results import save_result
from motif_nb.kernels import polynorm as kpn

t0 = time.time()
pd.set_option('display.width', 250)
errs = bf16_errors()
print(errs.to_string(index=False), flush=True)
df = benchmark_polynorm(budget_s=float(os.environ.get('POLYNORM_BUDGET_S', 400)))
fig = plot_polynorm_bench(df)
chosen = {f'{k[0]} {"gated" if k[1] else "plain"} N={k[2]} M<={k[3]} {str(k[4])[6:]}': kpn.cfg_name(c) for k, c in kpn._BEST.items()}
save_result('polynorm_bench', df, fig, bf16_errors=errs.to_dict('records'), autotuned_layouts=chosen,
            seconds=round(time.time() - t0, 1))
cols = ['op', 'shape', 'pass', 'impl', 'ms', 'tbs', 'frac_copy', 'rel_err', 'peak_mb', 'floor_mb', 'cfg']
print(df[df.part == 'main'][cols].to_string(index=False, float_format=lambda v: f'{v:.4g}'))
print(df[df.part == 'sweep'][['shape', 'impl', 'ms', 'frac_copy']].to_string(index=False, float_format=lambda v: f'{v:.4g}'))
for k, v in chosen.items(): print(k, '->', v)
print(f'total {time.time() - t0:.0f} s')
