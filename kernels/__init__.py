"""Hand-written Triton kernels of motif-nb, installed as `motif_nb.kernels`.

Each module here is plain Triton source; the notebook of its component (`nbs/01_polynorm.ipynb`,
`nbs/02_attention.ipynb` for `gda`, `nbs/03a_generate.ipynb` for `gda_decode`, `nbs/05_muon.ipynb`) explains, tests
and benchmarks it. On a machine without a GPU the
kernels run under the Triton interpreter when `TRITON_INTERPRET=1` is set *before* they are imported."""

if __name__ == 'kernels':
    # Imported as a top-level `kernels`: a script run from the repository root (`python -m` and `python script.py` put
    # that folder first on sys.path) finds this folder under the name of Hugging Face's `kernels` package, which
    # transformers imports. Step aside: load the installed `kernels` in this module's place, or fail as if this folder
    # were not there. As `motif_nb.kernels` (its only name) this does nothing.
    import sys as _sys, os as _os, importlib.machinery as _machinery, importlib.util as _util
    _root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
    _spec = _machinery.PathFinder.find_spec('kernels', [p for p in _sys.path if _os.path.abspath(p or _os.curdir) != _root])
    if _spec is None:
        raise ModuleNotFoundError(f"No module named 'kernels' ({_root}/kernels is motif_nb.kernels, not a top-level package)", name='kernels')
    _mod = _util.module_from_spec(_spec)
    _sys.modules['kernels'] = _mod               # the import statement returns what sys.modules holds once this file has run
    _spec.loader.exec_module(_mod)
