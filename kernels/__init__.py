"""Hand-written Triton kernels of motif-nb, installed as `motif_nb.kernels`.

Each module here is plain Triton source; the notebook of its component (`nbs/01_polynorm.ipynb`,
`nbs/02_attention.ipynb` for `gda`, `nbs/03a_generate.ipynb` for `gda_decode`, `nbs/05_muon.ipynb`) explains, tests
and benchmarks it. On a machine without a GPU the
kernels run under the Triton interpreter when `TRITON_INTERPRET=1` is set *before* they are imported."""
