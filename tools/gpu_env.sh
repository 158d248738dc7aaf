# Sourced by the GPU scripts: nbdev and friends from a wheelhouse when the box lacks them (air-gapped boxes keep their
# own CUDA torch and Triton; the wheels go in with --no-index --target), the repo on PYTHONPATH, and a CUDA check.
#   MOTIF_WHEELHOUSE=DIR  wheels from tools/wheelhouse.sh (default .whl)
PY=${PYTHON:-python3}
if ! "$PY" -c 'import nbdev, execnb, IPython' 2>/dev/null; then
  wh=${MOTIF_WHEELHOUSE:-.whl}
  [ -d "$wh" ] || { echo "nbdev is not installed and no wheelhouse at $wh (see README: air-gapped GPU boxes)"; exit 1; }
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/motif-site "$wh"/*.whl || exit 1
  export PYTHONPATH="/tmp/motif-site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" MPLBACKEND=Agg PYTHONHASHSEED=0 PYTHONUNBUFFERED=1
"$PY" -c 'import torch; assert torch.cuda.is_available(), "this script needs a CUDA GPU"' || exit 1
