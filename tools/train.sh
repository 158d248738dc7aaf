#!/usr/bin/env bash
# The main job: set up .venv (tools/setup.sh), then train a Motif model through the trainer's command line.
#   bash tools/train.sh                                   # cpu-small on a CPU, gpu-1b on a GPU, into runs/<preset>
#   bash tools/train.sh --preset cpu-tiny --out runs/t    # any `python -m motif_nb.train` flags (see --help)
# Rerunning the same command resumes from the newest complete checkpoint in --out.
# Several processes: .venv/bin/torchrun --standalone --nproc-per-node K -m motif_nb.train --preset ... --out ...
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/setup.sh || exit 1          # a child process: its set -e holds
export PATH="$PWD/.venv/bin:$PATH" MPLBACKEND=Agg
args=("$@") preset="" has_out=0 prev=""
for a in "$@"; do          # --preset NAME or --preset=NAME (the last one counts, as for argparse); --out DIR or --out=DIR
  case "$a" in --preset=*) preset=${a#--preset=} ;; --out|--out=*) has_out=1 ;; esac
  [ "$prev" = --preset ] && preset=$a
  prev=$a
done
if [ -z "$preset" ]; then
  if python -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then preset=gpu-1b; else preset=cpu-small; fi
  args=(--preset "$preset" "${args[@]}")
fi
[ $has_out = 1 ] || args+=(--out "runs/$preset")
exec python -m motif_nb.train "${args[@]}"
