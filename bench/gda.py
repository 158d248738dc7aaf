"""GDA benchmark: forwards to `python -m motif_nb.bench.attention` (see nbs/bench/02_attention.ipynb)."""
from motif_nb.bench.attention import main

if __name__ == '__main__': main()
