"""Copy the outputs of the `#| cuda` (and optionally `#| slow`) cells of notebooks run elsewhere into this checkout's.

    python tools/merge_outputs.py SRC_ROOT NOTEBOOK ... [--flags cuda slow]

SRC_ROOT is a folder holding the other run's notebooks at the same relative paths, e.g. `gpu_suite.tar.gz` from
`MOTIF_SUITE_OUT` (tools/gpu_suite.sh) unpacked into it. A cell is matched by its id and must have the same source;
a flagged cell without a match is reported and keeps its outputs. Every other cell keeps the outputs it has here,
so the CPU cells go on showing what CI shows. Run `nbdev-clean` afterwards."""
import argparse, json, os, re, sys, tempfile
from pathlib import Path


def flagged(cell:dict, flags:list)->bool:
    "Whether a code cell carries one of `flags` as a `#| flag` directive."
    src = ''.join(cell['source'])
    return cell['cell_type'] == 'code' and any(re.search(rf'^#\|\s*{re.escape(f)}\b', src, re.M) for f in flags)


def merge(src:Path, dst:Path, flags:list)->tuple:
    "Copy the flagged cells' outputs of notebook `src` into `dst` in place; returns (merged, unmatched) counts."
    s, d = (json.loads(p.read_text()) for p in (src, dst))
    by_id = {c.get('id'): c for c in s['cells']}
    merged = unmatched = 0
    for c in d['cells']:
        if not flagged(c, flags): continue
        o = by_id.get(c.get('id'))
        if o is None or ''.join(o['source']) != ''.join(c['source']):
            unmatched += 1; print(f"{dst}: cell {c.get('id')} has no match with the same source in {src}", file=sys.stderr); continue
        c['outputs'], c['execution_count'] = o.get('outputs', []), o.get('execution_count')
        merged += 1
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f'.{dst.name}.')   # a crash leaves the notebook as it was
    with os.fdopen(fd, 'w') as f: f.write(json.dumps(d, indent=1, ensure_ascii=False) + '\n')
    os.replace(tmp, dst)
    return merged, unmatched


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('src_root', type=Path, help="folder with the other run's notebooks at the same relative paths")
    ap.add_argument('notebooks', nargs='+', type=Path, help='notebooks of this checkout to merge into')
    ap.add_argument('--flags', nargs='+', default=['cuda'], help='cells with any of these directives are merged (default: cuda)')
    a = ap.parse_args()
    bad = 0
    for nb in a.notebooks:
        src = a.src_root / nb
        if not (src.is_file() and nb.is_file()): print(f"merge_outputs: {nb} or {src} does not exist", file=sys.stderr); bad += 1; continue
        m, u = merge(src, nb, a.flags)
        print(f"{nb}: {m} cells merged" + (f", {u} without a match" if u else ''))
        bad += u > 0
    sys.exit(1 if bad else 0)
