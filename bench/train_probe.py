"""Probe: seconds per training step of the MuonClip ablation's GPU-scale model (nbs/05a_muonclip.ipynb) per optimizer and
attention path, to size the GPU run so it fits one device command.  Usage (GPU): PYTHONPATH=$PWD python3 bench/train_probe.py"""
import time, torch
from motif_nb.config import MotifConfig
from motif_nb.model import MotifForCausalLM
from motif_nb.train import Trainer, TrainConfig
from motif_nb.data import default_sampler
over = dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=12, num_noise_heads=4, num_key_value_heads=8, head_dim=64)
for opt, impl in (('adamw', 'auto'), ('muon', 'auto'), ('muonclip', 'auto'), ('muonclip', 'triton'), ('adamw', 'triton')):
    cfg = MotifConfig.from_preset('motif-small', **over, attn_impl=impl)
    torch.manual_seed(0)
    m = MotifForCausalLM(cfg).cuda()
    tc = TrainConfig(lr=0.1, warmup_steps=30, total_steps=300, optimizer=opt, qk_clip_tau=100.0, amp_dtype='bfloat16', log_every=1)
    t0 = time.perf_counter()
    smp = default_sampler(1024, 16, seed=0, vocab_size=cfg.vocab_size, size='default')
    tr = Trainer(m, smp, tc)
    print(opt, impl, 'setup s', round(time.perf_counter() - t0, 2), flush=True)
    log = tr.fit(12)
    s = log.seconds.values
    print(opt, impl, 'first step s', round(s[0], 3), 'per step s (steps 3-12)', round((s[-1] - s[1]) / 10, 4), 'loss', round(log.loss.iloc[-1], 3), flush=True)
b = next(iter(default_sampler(1024, 16, seed=0, vocab_size=cfg.vocab_size, size='default')))
print('docs per batch', sum(len(c) - 1 for c in b['cu_seqlens']) if isinstance(b.get('cu_seqlens'), list) else b.get('cu_seqlens'))
