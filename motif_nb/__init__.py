"""A literate rebuild of the Motif-2-12.7B training stack: GDA, fused PolyNorm, HyperCloning, Muon/MuonClip, curriculum data

Modules:

- `motif_nb.bench.sft`: How full best-fit-decreasing packing keeps the rows, against padding each batch to its longest conversation and in-order packing, and how fast `SFTSampler` collates batches on one CPU core; and the three-stage SFT experiment (a base from the trainer, three stages, held-out accuracy per family after each) with its plots
- `motif_nb.data`: Corpora (yours, or an embedded offline default), a locally trained byte-level BPE tokenizer, crash-safe pre-tokenised memmaps, a token-keyed mixture schedule, and a packing sampler that resumes exactly
- `motif_nb.sft`: Chat conversations from your files or an embedded, checkable default in three themes; a chat template with an assistant-only loss mask; best-fit-decreasing packing; and stages run by the trainer, each from the previous stage's checkpoint, scored on held-out prompts by program checkers"""

__version__ = "0.0.1"
