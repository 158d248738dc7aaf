"""Throughput of CurriculumSampler on one CPU core: the same as `python -m motif_nb.bench.data [--n-batches N] [--size S]`
(see nbs/bench/07_data.ipynb); writes figures/data_bench.{csv,png,json}."""
from motif_nb.bench.data import main
main()
