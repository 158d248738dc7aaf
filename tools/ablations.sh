#!/usr/bin/env bash
# The ablation job: run every notebook with its ablation (`slow`) cells, and its `cuda` cells on a GPU box, at the scale
# the machine allows. CPU: MOTIF_SCALE=cpu (minutes, under the Triton interpreter); GPU: MOTIF_SCALE=gpu (full size).
# Results go to figures/NAME[-cpu].{csv,png,json} with provenance; a CPU run never replaces a GPU run's files.
# Extra arguments go to nbdev-test (e.g. a notebook path, or --save to store the outputs in the notebooks).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/setup.sh || exit 1          # a child process: its set -e holds
export MOTIF_COMMAND="${MOTIF_COMMAND:-bash tools/ablations.sh $*}"    # recorded in figures/*.json
export PATH="$PWD/.venv/bin:$PATH" MPLBACKEND=Agg PYTHONHASHSEED=0
if python -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then
  flags="cuda slow"; export MOTIF_SCALE=${MOTIF_SCALE:-gpu}
else
  flags="slow"; export MOTIF_SCALE=${MOTIF_SCALE:-cpu} TRITON_INTERPRET=1
fi
echo "== main job: nbdev-test --flags \"$flags\" (MOTIF_SCALE=$MOTIF_SCALE)"
python tools/nbtest.py --flags "$flags" --n-workers "${MOTIF_WORKERS:-1}" --cell-timeout 0 "$@"
rc=$?
cat tools/.nbtest-summary
exit $rc
