"""GDA kernel tuning: forwards to `python -m motif_nb.bench.gda_tune [check] [kinds=dk,dv] [--smoke]` (see nbs/bench/02a_gda_tune.ipynb)."""
from motif_nb.bench.gda_tune import main

if __name__ == '__main__': main()
