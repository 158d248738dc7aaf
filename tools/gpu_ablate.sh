#!/usr/bin/env bash
# GPU-scale ablations in pieces, for boxes lent for a few minutes at a time. Runs
# `python -m motif_nb.ablate NAME --scale gpu` for each NAME until a time budget is spent, then packs what the next
# box needs to go on: the finished runs (result.json, metrics.jsonl, eval.jsonl; no checkpoints), the tokenizer and
# token caches, and figures/. Unpack the archive in the repository of the next box (or carry runs/ and .cache/ there)
# and call again with the same NAMEs: finished runs are skipped, an interrupted run starts again, and an ablation
# writes figures/ablation_NAME.* once all its runs have finished.
#   bash tools/gpu_ablate.sh NAME [NAME ...]       (NAMEs: attention mlp optimizer curriculum hypercloning, or all)
# Settings (environment):
#   MOTIF_ABLATE_BUDGET  seconds for the whole call (default 0: no limit); the ablation running then is stopped
#   MOTIF_ABLATE_OUT=DIR packs runs/, .cache/ and figures/ into DIR/gpu_ablate.tar.gz at the end
#   MOTIF_ABLATE_SEEDS=N seeds per variant (`--seeds N`; default: each ablation's three). A stored figures/ablation_NAME.json
#                        with more seeds is not replaced by one with fewer: the committed attention result has 5
#                        (MOTIF_ABLATE_SEEDS=5 bash tools/gpu_ablate.sh attention)
#   MOTIF_WHEELHOUSE=DIR as for tools/gpu_suite.sh
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export MOTIF_COMMAND="${MOTIF_COMMAND:-${MOTIF_ABLATE_SEEDS:+MOTIF_ABLATE_SEEDS=$MOTIF_ABLATE_SEEDS }bash tools/gpu_ablate.sh $*}" MOTIF_SCALE=gpu
export MOTIF_RUNS="$PWD/runs/ablations" MOTIF_CACHE="$PWD/.cache/motif_nb"     # inside the repository: packed and carried
source tools/gpu_env.sh
[ $# -gt 0 ] || { echo "gpu_ablate: name at least one ablation (or all)"; exit 1; }
budget=${MOTIF_ABLATE_BUDGET:-0}; seeds=()
[ -z "${MOTIF_ABLATE_SEEDS:-}" ] || seeds=(--seeds "$MOTIF_ABLATE_SEEDS")
[[ "$budget" =~ ^[0-9]+$ ]] || { echo "gpu_ablate: MOTIF_ABLATE_BUDGET must be a whole number of seconds, got '$budget'"; exit 1; }
t0=$(date +%s); rc=0
for n in "$@"; do
  left=$(( budget > 0 ? budget - ($(date +%s) - t0) : 0 ))
  if [ "$budget" -gt 0 ] && [ "$left" -lt 30 ]; then echo "== $n: skipped (${left} s left of the budget)"; rc=1; continue; fi
  if [ "$budget" -gt 0 ]; then to=(timeout -k 10 "$left"); else to=(); fi
  echo "== $n: python -m motif_nb.ablate $n --scale gpu ${seeds[*]}"; s=$(date +%s)
  "${to[@]}" "$PY" -m motif_nb.ablate "$n" --scale gpu "${seeds[@]}"; r=$?
  echo "== $n rc=$r $(( $(date +%s) - s )) s"; [ "$r" = 0 ] || rc=1
done
if [ -n "${MOTIF_ABLATE_OUT:-}" ]; then
  { mkdir -p "$MOTIF_ABLATE_OUT" runs .cache && tar czf "$MOTIF_ABLATE_OUT/gpu_ablate.tar.gz" --exclude='step_*' runs .cache figures; } \
    || { echo "gpu_ablate: packing into $MOTIF_ABLATE_OUT failed"; rc=1; }
fi
echo "finished runs: $(find runs/ablations -name result.json 2>/dev/null | wc -l)"
exit $rc
