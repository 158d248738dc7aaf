"""Model benchmark (nbs/bench/03_model.ipynb): same as `python -m motif_nb.bench.model [--flags]`.
No flags: training tokens/s + MFU and decoding tokens/s of motif-1b (sdpa, triton) vs llama-1b -> figures/model_bench.*
--profile attn,model: where the time goes -> figures/model_profile_attn.*, figures/model_profile[_TAG].*; --help for the rest."""
import os, sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from motif_nb.bench.model import main
main()
