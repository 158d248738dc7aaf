#!/usr/bin/env bash
# The GPU benchmarks that write figures/, one after another in one process tree, each with a time limit.
#   bash tools/gpu_benchmarks.sh [NAME ...]
# NAMEs (default: these, in this order): attention polynorm muon model train parallel_muon generate;
# also generate_profile (the static decoding path's kernels per step: figures/generate_profile.*), polynorm_host
# (PolyNorm forward+backward: host vs wall time per call and the CPU profile; printed only) and gda_ab (this checkout's
# kernels/gda.py against the version MOTIF_AB_BASE, a file or git:REV, in one process: figures/gda_ab.*).
# Each runs its own `python -m motif_nb.bench.NAME` command (listed below) and writes figures/NAME_bench.* itself,
# with its provenance; a benchmark stopped by its limit writes nothing, so nothing committed is replaced by a
# partial run.
# Settings (environment):
#   MOTIF_BENCH_BUDGET   seconds for the whole run (default 0: no limit): a benchmark whose limit would end past it
#                        is skipped and said so
#   MOTIF_BENCH_OUT=DIR  packs figures/ and the logs into DIR/gpu_benchmarks.tar.gz at the end
#   MOTIF_WHEELHOUSE=DIR as for tools/gpu_suite.sh
#   MOTIF_AB_BASE=SPEC   gda_ab's base version: a kernels/gda.py file, or git:REV (needed by gda_ab only)
#   MOTIF_AB_ARGS=...    more gda_ab arguments, e.g. "--modes fwd --shapes 2x4096 --rounds 5 --name gda_ab_order" (a
#                        name other than gda_ab keeps the committed figures/gda_ab)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tools/gpu_env.sh
declare -A CMD=(
  [attention]="$PY -m motif_nb.bench.attention --budget-s 200"
  [polynorm]="$PY -m motif_nb.bench.polynorm --budget-s 190"
  [muon]="$PY -m motif_nb.bench.muon"
  [model]="$PY -m motif_nb.bench.model"
  [train]="$PY -m motif_nb.bench.train"
  [parallel_muon]="$PY -m torch.distributed.run --standalone --nproc-per-node 1 -m motif_nb.bench.parallel_muon"
  [generate]="$PY -m motif_nb.bench.generate"
  [generate_profile]="$PY -m motif_nb.bench.generate --profile"
  [polynorm_host]="$PY -m motif_nb.bench.polynorm --host"
  [gda_ab]="$PY -m motif_nb.bench.gda_ab ${MOTIF_AB_BASE:-} ${MOTIF_AB_ARGS:-}"
)
declare -A LIMIT=([attention]=300 [polynorm]=280 [muon]=200 [model]=420 [train]=500 [parallel_muon]=240 [generate]=420 [generate_profile]=240 [polynorm_host]=120 [gda_ab]=300)
names=("$@"); [ ${#names[@]} -gt 0 ] || names=(attention polynorm muon model train parallel_muon generate)
for n in "${names[@]}"; do [ -n "${CMD[$n]:-}" ] || { echo "gpu_benchmarks: unknown benchmark '$n'; use: ${!CMD[*]}"; exit 1; }; done
for n in "${names[@]}"; do [ "$n" != gda_ab ] || [ -n "${MOTIF_AB_BASE:-}" ] || { echo "gpu_benchmarks: gda_ab needs MOTIF_AB_BASE (a kernels/gda.py file, or git:REV where the checkout has its history)"; exit 1; }; done
budget=${MOTIF_BENCH_BUDGET:-0}
[[ "$budget" =~ ^[0-9]+$ ]] || { echo "gpu_benchmarks: MOTIF_BENCH_BUDGET must be a whole number of seconds, got '$budget'"; exit 1; }
logs=$(mktemp -d /tmp/motif-bench.XXXX); t0=$(date +%s); fail=0
for n in "${names[@]}"; do
  left=$(( budget > 0 ? budget - ($(date +%s) - t0) : LIMIT[$n] ))
  if [ "$left" -lt "${LIMIT[$n]}" ]; then echo "== $n: skipped (${left} s left of the budget, its limit is ${LIMIT[$n]} s)" | tee -a "$logs/summary.txt"; continue; fi
  echo "== $n: ${CMD[$n]} (limit ${LIMIT[$n]} s)"; s=$(date +%s)
  timeout -k 10 "${LIMIT[$n]}" ${CMD[$n]} 2>&1 | tee "$logs/$n.log"; rc=${PIPESTATUS[0]}
  echo "== $n rc=$rc $(( $(date +%s) - s )) s" | tee -a "$logs/summary.txt"; [ "$rc" = 0 ] || fail=1
done
if [ -n "${MOTIF_BENCH_OUT:-}" ]; then
  { mkdir -p "$MOTIF_BENCH_OUT" && tar czf "$MOTIF_BENCH_OUT/gpu_benchmarks.tar.gz" figures -C "$logs" .; } \
    || { echo "gpu_benchmarks: packing into $MOTIF_BENCH_OUT failed"; fail=1; }
fi
exit $fail
