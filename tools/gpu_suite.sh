#!/usr/bin/env bash
# The GPU suite: notebooks with --flags "cuda slow" on a GPU box; stores the outputs in the notebooks (then
# nbdev-clean) and writes figures/ with provenance.
#   bash tools/gpu_suite.sh [NOTEBOOK ...]        (default: every notebook under nbs/)
# Settings (environment):
#   MOTIF_SUITE_FLAGS    nbdev-test flags (default "cuda slow"; "cuda" leaves the long benchmarks and ablations out)
#   MOTIF_SUITE_JOBS     notebooks run at a time (default 1); each gets cores/JOBS CPU threads, so CPU-heavy test
#                        cells do not oversubscribe the machine. Keep 1 for the benchmark ("slow") cells: timings
#                        taken beside other notebooks are not results.
#   MOTIF_SUITE_TIMEOUT  seconds one notebook may run (default 0: no limit); a notebook past it counts as failed
#   MOTIF_SUITE_BUDGET   seconds for the whole run (default 0: no limit); notebooks not finished by then are stopped
#                        and counted as failed, and the packing below still happens
#   MOTIF_SUITE_OUT=DIR  packs the notebooks, figures, per-notebook logs and the summary into DIR/gpu_suite.tar.gz
#   MOTIF_WHEELHOUSE=DIR wheels from tools/wheelhouse.sh, installed with --no-index --target when nbdev is missing
# Each notebook's line "NAME rc=RC SECONDS s" is printed as it ends; tools/.nbtest-summary gets "N passed, M failed".
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export MOTIF_COMMAND="${MOTIF_COMMAND:-bash tools/gpu_suite.sh $*}" MOTIF_SCALE=${MOTIF_SCALE:-gpu}
source tools/gpu_env.sh

flags=${MOTIF_SUITE_FLAGS:-cuda slow}; jobs=${MOTIF_SUITE_JOBS:-1}; per=${MOTIF_SUITE_TIMEOUT:-0}; budget=${MOTIF_SUITE_BUDGET:-0}
for v in "$jobs" "$per" "$budget"; do [[ "$v" =~ ^[0-9]+$ ]] || { echo "gpu_suite: MOTIF_SUITE_JOBS/TIMEOUT/BUDGET must be whole numbers, got '$v'"; exit 1; }; done
[ "$jobs" -ge 1 ] || { echo "gpu_suite: MOTIF_SUITE_JOBS must be at least 1"; exit 1; }
if [ $# -gt 0 ]; then nbs=("$@")
else mapfile -t nbs < <(find nbs -name '*.ipynb' -not -path '*/.*' -not -name '_*' | sort); fi
for nb in "${nbs[@]}"; do [ -f "$nb" ] || { echo "gpu_suite: no notebook $nb"; exit 1; }; done
logs=$(mktemp -d /tmp/motif-suite.XXXX); summary="$logs/summary.txt"; : > "$summary"
export OMP_NUM_THREADS=$(( $(nproc) / jobs > 0 ? $(nproc) / jobs : 1 )) FLAGS="$flags" PER="$per" LOGS="$logs" PY SUMMARY="$summary"
echo "gpu_suite: ${#nbs[@]} notebooks, flags '$flags', $jobs at a time ($OMP_NUM_THREADS threads each)"
run_one='nb=$1; name=$(echo "$nb" | tr / _); s=$(date +%s)
  if [ "$PER" -gt 0 ]; then to=(timeout -k 10 "$PER"); else to=(); fi
  "${to[@]}" "$PY" tools/nbdev_test_cli.py "$nb" --flags "$FLAGS" --n-workers 1 --timing --cell-timeout 0 --save > "$LOGS/$name.log" 2>&1
  line="$nb rc=$? $(( $(date +%s) - s )) s"; echo "$line"; echo "$line" >> "$SUMMARY"'
if [ "$budget" -gt 0 ]; then outer=(timeout -k 10 "$budget"); else outer=(); fi
printf '%s\n' "${nbs[@]}" | "${outer[@]}" xargs -P "$jobs" -I{} bash -c "$run_one" _ {}
"$PY" -c 'from nbdev.clean import nbdev_clean; nbdev_clean()' >/dev/null 2>&1 || true
passed=$(grep -c ' rc=0 ' "$summary"); failed=$(( ${#nbs[@]} - passed ))
for nb in "${nbs[@]}"; do grep -q "^$nb rc=" "$summary" || echo "$nb rc=stopped (budget)" >> "$summary"; done
echo "$passed passed, $failed failed" | tee tools/.nbtest-summary
grep -v ' rc=0 ' "$summary" | sed 's/^/  not passed: /'
packed=0
if [ -n "${MOTIF_SUITE_OUT:-}" ]; then
  { mkdir -p "$MOTIF_SUITE_OUT" && cp "$summary" "$MOTIF_SUITE_OUT/gpu_suite_summary.txt" \
    && tar czf "$MOTIF_SUITE_OUT/gpu_suite.tar.gz" nbs figures tools/.nbtest-summary -C "$logs" .; } \
    || { echo "gpu_suite: packing into $MOTIF_SUITE_OUT failed"; packed=1; }
fi
[ "$failed" = 0 ] && [ "$packed" = 0 ]
