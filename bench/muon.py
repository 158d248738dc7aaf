"""Benchmark of Newton-Schulz and the Muon optimizer step (nbs/05_muon.ipynb); writes figures/muon_bench.*

usage (GPU): PYTHONPATH=$PWD python bench/muon.py"""
import os
import pandas as pd
from motif_nb.muon import benchmark_newton_schulz, benchmark_muon_step, plot_muon_bench
from motif_nb.bench.results import save_result

pd.set_option('display.width', 200)
ns = benchmark_newton_schulz()
print(ns.round(4).to_string(), flush=True)
step = benchmark_muon_step()
print(step.round(4).to_string(), flush=True)
df = pd.concat([ns, step], ignore_index=True)
path = save_result('muon_bench', df, fig=plot_muon_bench(df), command=os.environ.get('MOTIF_COMMAND', 'python bench/muon.py'))
print('saved', path)
import motif_nb.kernels.newton_schulz as K
for key, cfg in K._sym_mm_kernel.cache.items(): print("sym_mm autotune", key, cfg)
