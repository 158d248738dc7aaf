#!/usr/bin/env bash
# Build a wheelhouse on a connected machine for an air-gapped GPU box:  bash tools/wheelhouse.sh DIR [PYVER]
# DIR then holds motif-nb's dependencies (torch excluded: the box keeps its own CUDA build), the nbdev test
# stack (nbdev, execnb, IPython, ...) and the benchmarks' peers (Liger-Kernel), for CPython PYVER (default 3.12) on
# manylinux x86_64.
# On the box:  MOTIF_WHEELHOUSE=DIR bash tools/gpu_suite.sh      (or: pip install --no-index --find-links DIR -e ".[dev]")
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:?usage: tools/wheelhouse.sh DIR [PYVER]}; pyver=${2:-3.12}
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any)
mkdir -p "$out"
# the nbdev test stack, pinned as pyproject.toml pins it
python3 -m pip download -q -d "$out" --only-binary=:all: --python-version "$pyver" "${plat[@]}" \
  nbdev==3.3.26 execnb==0.3.4 fastcore ipython
# the package's own runtime dependencies except torch/triton (the GPU box's CUDA build stays)
python3 - "$out" "$pyver" <<'PY'
import subprocess, sys, tomllib
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']
deps = [d for d in deps if not d.split(';')[0].strip().lower().startswith(('torch', 'triton'))]
subprocess.run([sys.executable, '-m', 'pip', 'download', '-q', '-d', sys.argv[1], '--only-binary=:all:', '--python-version', sys.argv[2],
                '--platform', 'manylinux_2_28_x86_64', '--platform', 'manylinux_2_17_x86_64', '--platform', 'manylinux2014_x86_64', '--platform', 'any',
                *deps], check=True)
PY
# the benchmarks' optional peers (the `bench` extra: Liger-Kernel), without their dependencies (torch and triton)
python3 - "$out" <<'PY'
import subprocess, sys, tomllib
peers = tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['bench']
subprocess.run([sys.executable, '-m', 'pip', 'download', '-q', '--no-deps', '-d', sys.argv[1], '--only-binary=:all:', *peers], check=True)
PY
ls "$out" | wc -l
