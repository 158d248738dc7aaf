"""Throughput of motif_nb's CurriculumSampler: packed batches from pre-tokenised memmaps on one CPU core.

Builds (once, cached under $MOTIF_CACHE or ~/.cache/motif_nb) the embedded default corpus's tokenizer and token
cache, then times `benchmark_sampler` and writes figures/data_bench.{csv,png,json} (or under $MOTIF_FIGURES) through
motif_nb.bench.results.save_result. Target: >= 2M tokens/s. Run from the repository root:
`PYTHONPATH=$PWD python3 bench/data.py` (see nbs/07_data.ipynb)."""
import os, time
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
import pandas as pd
from motif_nb.data import benchmark_sampler, default_token_cache
from motif_nb.bench.results import save_result

t0 = time.time()
tc, tok = default_token_cache(size='default')          # the build is not timed
build_s = time.time() - t0
load_before = os.getloadavg()[0]
df = benchmark_sampler(n_batches=int(os.environ.get('DATA_BENCH_BATCHES', 300)), size='default')
fig, ax = plt.subplots(figsize=(6, 2.8))
ax.bar([f"{r.seq_len}x{r.batch_size}\nlookahead {r.lookahead}" for r in df.itertuples()], df.tokens_per_s / 1e6,
       color=['C0' if l == 1 else 'C1' for l in df.lookahead])
ax.axhline(2, color='k', ls='--', lw=1, label='target: 2M tokens/s')
ax.set(ylabel='M tokens/s (one core)', title='CurriculumSampler: packed batches from memmaps', ylim=(0, df.tokens_per_s.max() / 1e6 * 1.35))
ax.legend(loc='upper left')
plt.xticks(fontsize=7)
save_result('data_bench', df, fig, command='python bench/data.py', target_tokens_per_s=2e6, cache=str(tc.path),
            corpus_tokens={d: tc.n_tokens(d) for d in tc.domains}, build_or_load_s=round(build_s, 2),
            seconds=round(time.time() - t0, 1), load_average_1m_before=round(load_before, 2), load_average_1m_after=round(os.getloadavg()[0], 2), cpu_count=os.cpu_count())
pd.set_option('display.width', 250)
print(f"corpus cache {tc.path} ({tc.n_tokens():,} tokens; build/load {build_s:.1f} s)")
print(df.to_string(index=False, float_format=lambda v: f'{v:.4g}'))
