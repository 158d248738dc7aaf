"""Benchmark of Newton-Schulz and the Muon optimizer step; writes figures/muon_bench.{csv,png,json}.

The job lives in `motif_nb.bench.muon` (nbs/bench/05_muon.ipynb); this file is the same as
`python -m motif_nb.bench.muon [--ns-rep MS] [--step-rep MS] [--no-save]` (GPU)."""
from motif_nb.bench.muon import main

main()
