#!/usr/bin/env bash
# Idempotent set-up of .venv for motif-nb, run (as a child process, so that set -e stops it at the first failed step)
# by tools/test.sh, tools/train.sh and tools/ablations.sh; the stamp is written only after every step succeeded.
#
# torch is installed *before* the package, so that pip never resolves it on its own:
#  - a torch that the chosen python already has (a GPU user's own build) is kept: the venv sees it
#    through --system-site-packages and nothing replaces it;
#  - with an NVIDIA driver present, the default PyPI build (CUDA) is installed;
#  - otherwise the CPU build torch==2.13.0 (set MOTIF_TORCH_INDEX to a CPU wheel index where your
#    PyPI default is a CUDA build), and the setup fails if any CUDA package slipped in.
# MOTIF_WHEELHOUSE=DIR installs everything from a local wheelhouse with --no-index (air-gapped boxes;
# build one with tools/wheelhouse.sh on a connected machine).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
VENV=${MOTIF_VENV:-.venv}
PIP_SRC=()
[ -n "${MOTIF_WHEELHOUSE:-}" ] && PIP_SRC=(--no-index --find-links "$MOTIF_WHEELHOUSE")

if [ ! -x "$VENV/bin/python" ]; then
  if "$PY" -c 'import torch' 2>/dev/null; then
    echo "setup: keeping the torch of $PY ($("$PY" -c 'import torch; print(torch.__version__)'))"
    "$PY" -m venv --system-site-packages "$VENV"
  else
    "$PY" -m venv "$VENV"
  fi
fi
VPY="$VENV/bin/python"
stamp="$VENV/.motif-setup"
want="$(cat pyproject.toml tools/setup.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi

has_gpu=0
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && has_gpu=1
if ! "$VPY" -c 'import torch' 2>/dev/null; then
  if [ $has_gpu = 1 ]; then
    "$VPY" -m pip install -q "${PIP_SRC[@]}" "torch>=2.11"
  else
    "$VPY" -m pip install -q "${PIP_SRC[@]}" ${MOTIF_TORCH_INDEX:+--index-url "$MOTIF_TORCH_INDEX"} "torch==2.13.0"
    "$VPY" -m pip install -q "${PIP_SRC[@]}" "triton==3.9.0"    # CPU torch has no triton; the interpreter runs the kernels
  fi
fi
"$VPY" -m pip install -q "${PIP_SRC[@]}" -e ".[dev]"
if [ $has_gpu = 0 ] && "$VPY" -m pip list 2>/dev/null | grep -qiE '^nvidia-'; then
  echo "setup: CUDA packages were installed on a machine without a GPU:" >&2
  "$VPY" -m pip list 2>/dev/null | grep -iE '^nvidia-' >&2
  exit 1
fi
echo "$want" > "$stamp"
