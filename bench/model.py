"""GPU benchmark of the Motif model (03_model.ipynb): training tokens/s + MFU and decoding tokens/s of motif-1b
(sdpa, triton) vs llama-1b, bf16, torch.compile.  Usage: python bench/model.py   (writes figures/model_bench.*)"""
import os, sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch
import matplotlib; matplotlib.use('Agg')
import matplotlib.pyplot as plt
from motif_nb.model import benchmark_model, PEAK_BF16_TFLOPS
from motif_nb.bench.results import save_result, matmul_tflops

if hasattr(torch._dynamo.config, 'recompile_limit'): torch._dynamo.config.recompile_limit = 64
torch._dynamo.config.cache_size_limit = 64
mm = matmul_tflops()
print(f'bf16 matmul ceiling: {mm:.0f} TFLOP/s', flush=True)
df = benchmark_model(matmul_ceiling=mm)
tr, de = df[(df.kind == 'train') & df.tokens_per_s.notna()], df[(df.kind == 'decode') & df.tokens_per_s.notna()]
fig, ax = plt.subplots(1, 3, figsize=(14, 3.6))
lab = tr.model + ' / ' + tr.attn_impl
ax[0].barh(lab, tr.tokens_per_s / 1e3); ax[0].set_xlabel('training k tokens/s')
ax[1].barh(lab, tr.mfu * 100); ax[1].axvline(40, ls='--', c='k'); ax[1].set_xlabel('MFU % (dashed: 40% target)')
for m, g in de.groupby('model'): ax[2].bar([f'{m}\nB={int(b)}' for b in g.batch], g.tokens_per_s)
ax[2].set_ylabel('decode tokens/s'); ax[2].set_yscale('log'); fig.tight_layout()
save_result('model_bench', df, fig=fig, matmul_tflops=mm, peak_tflops=PEAK_BF16_TFLOPS)
import pandas as pd; pd.set_option('display.width', 250); pd.set_option('display.max_columns', 30)
print(df.round(3).to_string())
