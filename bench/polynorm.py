"""PolyNorm benchmark: forwards to `python -m motif_nb.bench.polynorm` (see nbs/bench/01_polynorm.ipynb)."""
from motif_nb.bench.polynorm import main

if __name__ == '__main__': main()
