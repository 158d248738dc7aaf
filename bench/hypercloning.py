"""The HyperCloning ablation (nbs/bench/04_hypercloning.ipynb): the same as `python -m motif_nb.bench.hypercloning`.
Usage, from the repository root: `python bench/hypercloning.py [--scale cpu|gpu] [--noise-snr-db DB] [--seed N]`."""
import os, sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from motif_nb.bench.hypercloning import main

if __name__ == '__main__': main()
