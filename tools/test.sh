#!/usr/bin/env bash
# The test suite (CPU, what CI runs): notebooks clean, package in sync, every notebook's tests, docs smoke test.
# Ends with a line "N passed, M failed" counting notebooks; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }   # a child process: its set -e holds
export PATH="$PWD/.venv/bin:$PATH" TRITON_INTERPRET=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
       MPLBACKEND=Agg PYTHONHASHSEED=0
fail=0
echo "== nbdev-clean"
before=$(git status --porcelain -- nbs)
nbdev-clean || { echo "FAIL: nbdev-clean exited with an error"; fail=1; }
if [ "$(git status --porcelain -- nbs)" != "$before" ]; then
  echo "FAIL: nbdev-clean changed notebooks: run nbdev-clean and commit"; git status --porcelain -- nbs; fail=1
fi
echo "== nbdev-export"
before=$(git status --porcelain -- motif_nb)
nbdev-export || { echo "FAIL: nbdev-export exited with an error"; fail=1; }
if [ "$(git status --porcelain -- motif_nb)" != "$before" ]; then
  echo "FAIL: motif_nb/ is out of sync with nbs/: run nbdev-export and commit"; git status --porcelain -- motif_nb; fail=1
fi
echo "== nbdev-test (cpu, TRITON_INTERPRET=1; cuda and slow cells skipped)"
rm -f tools/.nbtest-summary
python tools/nbtest.py --n-workers "${MOTIF_TEST_WORKERS:-2}" "$@" || fail=1
echo "== nbdev-proc-nbs (docs build smoke test; Quarto itself is not installable here)"
if nbdev-proc-nbs > /tmp/motif-proc-nbs.log 2>&1; then echo "docs preprocessing ok"
else echo "FAIL: nbdev-proc-nbs"; tail -30 /tmp/motif-proc-nbs.log; fail=1; fi
summary=$(cat tools/.nbtest-summary 2>/dev/null || echo "0 passed, 1 failed")
[ $fail = 0 ] || echo "FAILED (see above)"
echo "$summary"
exit $fail
