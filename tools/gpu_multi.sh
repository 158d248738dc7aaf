#!/usr/bin/env bash
# Multi-GPU runs on the GPUs of one host: for K = 1, 2, 4, 8 (up to the GPU count, or the Ks named), the Parallel
# Muon benchmark (figures/parallel_muon_bench[-{K}gpu].*) and the training scaling benchmark
# (figures/train_scaling[-{K}gpu].*), then a run resumed across world sizes (figures/resume_world_sizes.*).
#   bash tools/gpu_multi.sh [K ...]
# The resume check trains `gpu-1b` for 40 steps on K GPUs (K the largest) without a stop, and the same run to step 20
# on K GPUs, continued on one GPU to step 30 and on K GPUs to step 40; it compares the two runs' losses from step 21.
# Settings (environment):
#   MOTIF_MULTI_PARTS    which parts run (default "muon scaling resume"): a host lent for a few minutes at a time can
#                        take them in separate calls, e.g. MOTIF_MULTI_PARTS=scaling bash tools/gpu_multi.sh 1 2
#   MOTIF_MULTI_OUT=DIR  packs figures/ and the logs into DIR/gpu_multi.tar.gz at the end
#   MOTIF_MULTI_RUNS=DIR the resume check's run directories (default runs/resume_check; replaced on each call)
#   MOTIF_WHEELHOUSE=DIR as for tools/gpu_suite.sh
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tools/gpu_env.sh
n=$("$PY" -c 'import torch; print(torch.cuda.device_count())')
if [ $# -gt 0 ]; then ks=("$@"); else ks=(); for k in 1 2 4 8; do [ "$k" -le "$n" ] && ks+=("$k"); done; fi
for k in "${ks[@]}"; do
  [[ "$k" =~ ^[1-9][0-9]*$ ]] && [ "$k" -le "$n" ] || { echo "gpu_multi: K must be a whole number from 1 to the $n GPUs here, got '$k'"; exit 1; }
done
parts=" ${MOTIF_MULTI_PARTS:-muon scaling resume} "
for p in $parts; do [[ " muon scaling resume " == *" $p "* ]] || { echo "gpu_multi: MOTIF_MULTI_PARTS takes muon, scaling and resume, got '$p'"; exit 1; }; done
logs=$(mktemp -d /tmp/motif-multi.XXXX); fail=0; big=$(printf '%s\n' "${ks[@]}" | sort -n | tail -1)
if [[ "$parts" == *" resume "* ]] && (( 8 % big )); then   # gpu-1b's batch of 8 rows is split over the processes
  echo "gpu_multi: the resume check trains gpu-1b (batch 8) on K=$big processes, which must divide 8; name Ks that do, or leave resume out (MOTIF_MULTI_PARTS)"; exit 1
fi
run() {  # NAME K ARGS...: `python -m torch.distributed.run` with K processes (K=0: plain python), its log and its status
  local name=$1 k=$2; shift 2; local cmd=("$PY")
  [ "$k" = 0 ] || cmd+=(-m torch.distributed.run --standalone --nproc-per-node "$k")
  cmd+=("$@"); echo "== $name: ${cmd[*]}"; local s=$(date +%s)
  MOTIF_COMMAND="bash tools/gpu_multi.sh: ${cmd[*]}" "${cmd[@]}" 2>&1 | tee "$logs/$name.log"; local rc=${PIPESTATUS[0]}
  echo "== $name rc=$rc $(( $(date +%s) - s )) s" | tee -a "$logs/summary.txt"; [ "$rc" = 0 ] || fail=1
}
for k in "${ks[@]}"; do
  [[ "$parts" != *" muon "* ]] || run "parallel_muon-$k" "$k" -m motif_nb.bench.parallel_muon
  [[ "$parts" != *" scaling "* ]] || run "scaling-$k" "$k" -m motif_nb.bench.scaling
done
if [[ "$parts" == *" resume "* ]]; then
  R=${MOTIF_MULTI_RUNS:-runs/resume_check}; rm -rf "$R"; mkdir -p "$R"
  common=(-m motif_nb.train --preset gpu-1b --set total_steps=40 --set log_every=1 --save-every 10)
  run resume-reference "$big" "${common[@]}" --steps 40 --out "$R/reference"
  run resume-to-20 "$big" "${common[@]}" --steps 20 --out "$R/resumed"
  run resume-on-1 1 "${common[@]}" --steps 30 --out "$R/resumed"
  run resume-on-k "$big" "${common[@]}" --steps 40 --out "$R/resumed"
  run resume-compare 0 -m motif_nb.bench.scaling --reference "$R/reference" --resumed "$R/resumed" --from-step 21
fi
if [ -n "${MOTIF_MULTI_OUT:-}" ]; then
  { mkdir -p "$MOTIF_MULTI_OUT" && tar czf "$MOTIF_MULTI_OUT/gpu_multi.tar.gz" figures -C "$logs" .; } \
    || { echo "gpu_multi: packing into $MOTIF_MULTI_OUT failed"; fail=1; }
fi
cat "$logs/summary.txt"
exit $fail
