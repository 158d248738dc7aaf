#!/usr/bin/env bash
# The GPU suite: every notebook with --flags "cuda slow" on a GPU box; stores the outputs in the notebooks
# (then nbdev-clean) and writes figures/ with provenance. Works on an air-gapped box:
#   MOTIF_WHEELHOUSE=DIR  wheels from tools/wheelhouse.sh (installed with --no-index), or
#   a python that already has torch/triton: nbdev and friends are installed from the wheelhouse with --target.
# MOTIF_SUITE_FLAGS overrides the flags (e.g. "cuda" to leave the long benchmarks and ablations out).
# MOTIF_SUITE_OUT=DIR additionally packs the updated notebooks and figures into DIR/gpu_suite.tar.gz.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export MOTIF_COMMAND="${MOTIF_COMMAND:-bash tools/gpu_suite.sh $*}" MPLBACKEND=Agg PYTHONHASHSEED=0 MOTIF_SCALE=${MOTIF_SCALE:-gpu} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if ! "$PY" -c 'import nbdev, execnb, IPython' 2>/dev/null; then
  wh=${MOTIF_WHEELHOUSE:-.whl}
  [ -d "$wh" ] || { echo "gpu_suite: nbdev is not installed and no wheelhouse at $wh (see README: air-gapped GPU boxes)"; exit 1; }
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/motif-site "$wh"/*.whl || exit 1
  export PYTHONPATH="/tmp/motif-site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
"$PY" -c 'import torch; assert torch.cuda.is_available(), "the GPU suite needs a CUDA GPU"' || exit 1
"$PY" tools/nbtest.py --flags "${MOTIF_SUITE_FLAGS:-cuda slow}" --n-workers 1 --cell-timeout 0 --save "$@"
rc=$?
"$PY" -c 'from nbdev.clean import nbdev_clean; nbdev_clean()' >/dev/null 2>&1 || true
cat tools/.nbtest-summary
if [ -n "${MOTIF_SUITE_OUT:-}" ]; then
  mkdir -p "$MOTIF_SUITE_OUT" && tar czf "$MOTIF_SUITE_OUT/gpu_suite.tar.gz" nbs/*.ipynb figures tools/.nbtest-summary
fi
exit $rc
