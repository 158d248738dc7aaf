"""HyperCloning ablation (04_hypercloning.ipynb) at GPU scale: a small Motif model trained, grown 2x in width
(with and without symmetry-breaking noise, optimizer state carried) and trained on, against the 2x model from random
init on the same batches. Writes figures/hypercloning_ablation.* (the log; the notebook computes the summary from it).
Usage, from the repository root: `PYTHONPATH=$PWD python3 bench/hypercloning.py [scale]` (scale: gpu (default) or cpu)."""
import os, sys, time
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import matplotlib; matplotlib.use('Agg')
import pandas as pd
from motif_nb.hypercloning import hypercloning_ablation, plot_hypercloning_ablation, ABLATION_SCALES
from motif_nb.bench.results import save_result

scale = sys.argv[1] if len(sys.argv) > 1 else os.environ.get('MOTIF_SCALE', 'gpu')
t0 = time.time()
log, summ = hypercloning_ablation(scale, progress=print)
fig = plot_hypercloning_ablation(log, summ, ABLATION_SCALES[scale]['smooth'])
secs = round(time.time() - t0, 1)
save_result('hypercloning_ablation', log, fig, scale=scale, seconds=secs, settings=ABLATION_SCALES[scale])
pd.set_option('display.width', 250); pd.set_option('display.max_columns', 20)
print(summ.round(4).to_string()); print(f'{secs} s')
