"""Run `nbdev-test` over the notebooks and count them: writes "N passed, M failed" to tools/.nbtest-summary.

Extra arguments go to nbdev-test as they are (e.g. `--flags "cuda slow" --save`)."""
import re, subprocess, sys
from pathlib import Path
from nbdev.config import get_config
from nbdev.doclinks import nbglob

cfg = get_config()
# the notebooks nbdev-test will run: the positional path given (a file or folder, else nbs/) and the file filters
args, paths, filt, i = sys.argv[1:], [], {}, 0
while i < len(args):
    a = args[i]
    if a in ('--file-re', '--skip-file-re', '--file-glob', '--skip-file-glob'): filt[a[2:].replace('-', '_')] = args[i+1]; i += 2
    elif a.startswith('--'): i += 1 if a in ('--timing', '--do-print', '--verbose', '--save') else 2
    else: paths.append(Path(a)); i += 1
nbs = sorted({q.resolve() for p in (paths or [cfg.nbs_path])
              for q in ([p] if p.suffix == '.ipynb' else nbglob(p, as_path=True, **filt))
              if not (q.parent/'.notest').exists()})
cmd = [sys.executable, str(Path(__file__).with_name('nbdev_test_cli.py')), '--timing', *sys.argv[1:]]
print('$ nbdev-test --timing', ' '.join(sys.argv[1:]), flush=True)
proc = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
sys.stderr.write(proc.stderr)
failed = set()
if 'Failed On The Following Notebooks' in proc.stderr:
    tail = proc.stderr.split('Failed On The Following Notebooks', 1)[1]
    failed = {m for m in re.findall(r'^\t(\S+\.ipynb)\s*$', tail, re.M)}
    if not failed: failed = {'<unparsed>'}
elif proc.returncode != 0: failed = {'<nbdev-test exited %d>' % proc.returncode}
summary = f'{len(nbs) - len(failed & {p.name for p in nbs})} passed, {len(failed)} failed'
Path('tools/.nbtest-summary').write_text(summary + '\n')
sys.exit(1 if failed else 0)
