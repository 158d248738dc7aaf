"""Where a training step of motif-1b and llama-1b spends its GPU time (nbs/03_model.ipynb, issue #5).

usage: export PYTHONPATH=$PWD MOTIF_FIGURES=$OUT PYTHONUNBUFFERED=1; python3 bench/model_profile.py [attn] [profile] [tag=NAME] [cases=A,B]
  attn:    the attention cores of one layer at the benchmark shape (B=8, T=2048, bf16), forward+backward, eager:
           GDA (G=4, g=4, d=128) as 4 SDPA calls (the 'sdpa' path; torch 2.11 runs them on cuDNN's kernels on an H100),
           with only the cuDNN backend enabled, as 2 cuDNN calls of value width 2d (GQA in the
           kernel, or K/V expanded), the fused Triton kernel (split and fused dK/dV backward), the 4-call path and the
           2-call cuDNN path under torch.compile; and the Llama layer's GQA attention (16 heads, 4 KV heads)
           through flash and cuDNN. Errors against fp32 GDA (2 memory-efficient SDPA calls) on the same random inputs.
  profile: builds each model as `benchmark_model` does (per-layer torch.compile, fused AdamW), counts dynamo graphs,
           graph breaks and recompiles, then profiles training steps and prints the kernels by device time per step.
Writes figures/model_profile_attn.csv and model_profile[_NAME].csv (through save_result). The 'kind' column of the
committed figures/model_profile.csv predates the cuDNN rule in `_kind` (it files cuDNN's ..._flash_fprop/bprop kernels
under 'flash fwd' and PolyNorm's `_fwd_kernel`/`_bwd_kernel` under 'other'); its kernel names are exact."""
import os, sys, time, math
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch
import torch.nn.functional as F
import pandas as pd

WHAT = [a for a in sys.argv[1:] if a in ('attn', 'profile')] or ['attn', 'profile']
TAG = next((a[4:] for a in sys.argv[1:] if a.startswith('tag=')), '')     # tag=after: figures/model_profile_after.*
# cases=motif-1b:triton,llama-1b: which models (preset[:attn_impl], attn_impl 'sdpa' unless named) the profile builds
CASES = next((tuple(a[6:].split(',')) for a in sys.argv[1:] if a.startswith('cases=')), ('motif-1b', 'llama-1b'))
pd.set_option('display.width', 250); pd.set_option('display.max_columns', 30); pd.set_option('display.max_colwidth', 90)


def _sd(q, k, v, backend=None, gqa=False):
    from torch.nn.attention import sdpa_kernel, SDPBackend
    if backend is None: return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
    with sdpa_kernel([getattr(SDPBackend, backend)]):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)


def attn(B=8, T=2048, G=4, g=4, d=128, eps=1e-5, scale=0.8):
    from motif_nb.attention import _gda_inputs, _split, gda_sdpa, gda_triton, rms_norm
    from motif_nb.bench.results import bench_ms, save_result
    from motif_nb.core import rel_err
    q, k, v, lam, w = ins = _gda_inputs(B, T, G, g, d)
    epi = lambda sig, noi: rms_norm(sig - lam.to(sig.dtype) * noi[:, :, None], w, eps) * scale
    def cudnn2(q1, q2, k1, k2, vv, expand=False):
        qs = q1.reshape(B, G * g, T, d)
        if expand:
            ks = k1[:, :, None].expand(B, G, g, T, d).reshape(B, G * g, T, d)
            vs = vv[:, :, None].expand(B, G, g, T, 2 * d).reshape(B, G * g, T, 2 * d)
            sig = _sd(qs, ks, vs, 'CUDNN_ATTENTION')
        else: sig = _sd(qs, k1, vv, 'CUDNN_ATTENTION', gqa=True)
        return epi(sig.view(B, G, g, T, 2 * d), _sd(q2, k2, vv, 'CUDNN_ATTENTION'))
    def sdpa4(q1, q2, k1, k2, vv, backend=None):
        qs = q1.reshape(B, G * g, T, d); v1, v2 = vv[..., :d], vv[..., d:]
        sig = torch.cat([_sd(qs, k1, v1, backend, True), _sd(qs, k1, v2, backend, True)], -1).view(B, G, g, T, 2 * d)
        noi = torch.cat([_sd(q2, k2, v1, backend), _sd(q2, k2, v2, backend)], -1)
        return epi(sig, noi)
    perm = lambda o: o.permute(0, 3, 1, 2, 4)              # (B, G, g, T, 2d) -> the projection layout (B, T, G, g, 2d)
    gda = {
        'gda_sdpa4 (current)': lambda q, k, v: perm(gda_sdpa(*_split(q, k, v), lam, w, eps, scale, calls=4)),
        'gda_sdpa4_cudnn': lambda q, k, v: perm(sdpa4(*_split(q, k, v), backend='CUDNN_ATTENTION')),
        'gda_cudnn2_gqa': lambda q, k, v: perm(cudnn2(*_split(q, k, v))),
        'gda_cudnn2_expand': lambda q, k, v: perm(cudnn2(*_split(q, k, v), expand=True)),
        'gda_triton': lambda q, k, v: gda_triton(q, k, v, lam, w, eps, scale),
        'gda_triton (fused dK/dV)': lambda q, k, v: gda_triton(q, k, v, lam, w, eps, scale),   # GDA_BWD='fused' below
    }
    rows = []
    gy = torch.randn(B, T, G, g, 2 * d, device='cuda', dtype=torch.bfloat16)
    ref_ins = [t.detach().float().requires_grad_() for t in (q, k, v)]
    ro = perm(gda_sdpa(*_split(*ref_ins), lam.detach(), w.detach().float(), eps, scale, calls=2))
    rg = torch.autograd.grad(ro, ref_ins, gy.float())
    fl_gda = B * (G * g + G) * 3 * d * T * T * 3.5     # causal forward FLOPs x 3.5 (the count of benchmark_gda)
    import motif_nb.attention as A
    for name, f in gda.items():
        row = dict(case=name)
        A.GDA_BWD = 'fused' if 'fused' in name else 'split'       # the backward launcher reads the flag at backward time
        try:
            o = f(q, k, v); gs = torch.autograd.grad(o, (q, k, v), gy)
            row.update(err_out=rel_err(o, ro), **{f'err_{n}': rel_err(a, b) for n, a, b in zip(('dq', 'dk', 'dv'), gs, rg)})
            del o, gs
            row['fwd_ms'] = bench_ms(lambda: f(q, k, v).sum())
            row['fwdbwd_ms'] = bench_ms(lambda: torch.autograd.grad(f(q, k, v), (q, k, v), gy))
        except Exception as e:
            row['error'] = f'{type(e).__name__}: {str(e)[:300]}'
        A.GDA_BWD = 'split'
        rows.append(row); print(row, flush=True)
        torch.cuda.empty_cache()
    del ref_ins, ro, rg
    # the Llama layer: 16 query heads, 4 KV heads, d=128 (its benchmark path: mha_sdpa repeats K/V to 16 heads)
    H, KV = 16, 4
    ql = torch.randn(B, H, T, d, device='cuda', dtype=torch.bfloat16, requires_grad=True)
    kl, vl = (torch.randn(B, KV, T, d, device='cuda', dtype=torch.bfloat16, requires_grad=True) for _ in range(2))
    gl = torch.randn(B, H, T, d, device='cuda', dtype=torch.bfloat16)
    rep = lambda t: t.repeat_interleave(H // KV, 1)
    llama = {'llama_flash_repeat (current)': lambda: _sd(ql, rep(kl), rep(vl)),
             'llama_flash_gqa': lambda: _sd(ql, kl, vl, 'FLASH_ATTENTION', gqa=True),
             'llama_cudnn_repeat': lambda: _sd(ql, rep(kl), rep(vl), 'CUDNN_ATTENTION'),
             'llama_cudnn_gqa': lambda: _sd(ql, kl, vl, 'CUDNN_ATTENTION', gqa=True)}
    with torch.no_grad(): lref = F.scaled_dot_product_attention(ql.float(), rep(kl).float(), rep(vl).float(), is_causal=True)
    for name, f in llama.items():
        row = dict(case=name)
        try:
            row['err_out'] = rel_err(f(), lref)
            row['fwd_ms'] = bench_ms(lambda: f().sum())
            row['fwdbwd_ms'] = bench_ms(lambda: torch.autograd.grad(f(), (ql, kl, vl), gl))
        except Exception as e: row['error'] = f'{type(e).__name__}: {str(e)[:300]}'
        rows.append(row); print(row, flush=True)
    # the GDA paths as the model runs them, under torch.compile with the epilogue: the 4 SDPA calls, and 2 cuDNN calls of
    # value width 2d (the kernel names show whether the cuDNN choice survives compilation)
    from torch.profiler import profile, ProfilerActivity
    compiled = {'gda_sdpa4 compiled': lambda q1, q2, k1, k2, vv: gda_sdpa(q1, q2, k1, k2, vv, lam, w, eps, scale, calls=4),
                'gda_cudnn2_gqa compiled': cudnn2}
    for name, fn in compiled.items():
        try:
            cf = torch.compile(fn, dynamic=False)
            run = lambda: torch.autograd.grad(perm(cf(*_split(q, k, v))), (q, k, v), gy)
            run()
            with profile(activities=[ProfilerActivity.CUDA]) as prof: run(); torch.cuda.synchronize()
            names = sorted({e.key[:70] for e in prof.key_averages() if e.device_time_total > 0})
            row = dict(case=name, fwdbwd_ms=bench_ms(run),
                       note='kernels: ' + ' | '.join(n for n in names if any(s in n.lower() for s in ('cudnn', 'sm90', 'flash')))[:400])
        except Exception as e: row = dict(case=name, error=f'{type(e).__name__}: {str(e)[:300]}')
        rows.append(row); print(row, flush=True)
    df = pd.DataFrame(rows)
    if 'fwdbwd_ms' in df: df['gda_tflops_fwdbwd'] = fl_gda / df.fwdbwd_ms / 1e9
    print(df.round(4).to_string(), flush=True)
    save_result('model_profile_attn', df, B=B, T=T, G=G, g=g, d=d, cudnn=torch.backends.cudnn.version())
    return df


def _kind(name):
    n = name.lower()
    if 'cudnn' in n: return 'cudnn attention'          # before 'flash': cuDNN's SDPA kernels are named ..._flash_fprop/bprop
    if 'flash' in n and 'bwd' in n: return 'flash bwd'
    if 'flash' in n: return 'flash fwd'
    if n in ('_fwd_kernel', '_bwd_kernel'): return 'polynorm (triton)'
    if 'gda_' in n: return 'gda triton'
    if any(s in n for s in ('gemm', 'nvjet', 'cutlass', 'xmma', 'sm90_', 'matmul')): return 'matmul'
    if 'adam' in n or 'multi_tensor' in n: return 'optimizer'
    if n.startswith('triton_'): return 'inductor fused'
    if 'elementwise' in n or 'copy' in n or 'fill' in n or 'cat' in n: return 'aten elementwise/copy'
    if 'reduce' in n: return 'aten reduce'
    return 'other'


def _gaps(prof, steps):
    """GPU idle time between consecutive kernels (per step), the largest gaps with the kernels around them, and the
    host calls that wait for the GPU (synchronisations, device-to-host copies), per step."""
    ev = sorted((e.time_range.start, e.time_range.end, e.name) for e in prof.events()
                if e.device_type == torch.autograd.DeviceType.CUDA)
    gaps = sorted(((b[0] - a[1], a[2][:60], b[2][:60]) for a, b in zip(ev, ev[1:]) if b[0] > a[1]), reverse=True)
    big = [g for g in gaps if g[0] > 20]
    waits = {}
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CPU and any(k in e.name for k in ('Synchronize', 'local_scalar_dense', 'cudaMemcpy')):
            waits[e.name] = waits.get(e.name, 0) + 1
    for g in gaps[:12]: print(f"  gap {g[0]:8.0f} us after {g[1]}  before {g[2]}")
    print('  host waits per step:', {k: v / steps for k, v in waits.items()}, flush=True)
    return dict(idle_ms_per_step=sum(g[0] for g in gaps) / 1e3 / steps, idle_over_20us_ms_per_step=sum(g[0] for g in big) / 1e3 / steps,
                gaps_over_20us_per_step=len(big) / steps, top_gaps=[(round(g[0]), g[1], g[2]) for g in gaps[:8]],
                host_waits_per_step={k: v / steps for k, v in waits.items()})


def profile(cases=('motif-1b', 'llama-1b'), batch=8, seq=2048, warmup=3, steps=3):
    from torch.profiler import profile as tprofile, ProfilerActivity
    from torch._dynamo.utils import counters
    from motif_nb.config import MotifConfig
    from motif_nb.model import MotifForCausalLM, train_flops_per_token
    from motif_nb.bench.results import save_result
    if hasattr(torch._dynamo.config, 'recompile_limit'): torch._dynamo.config.recompile_limit = 64
    torch._dynamo.config.cache_size_limit = 64
    rows, summary = [], []
    for case in cases:
        preset, impl = (case.split(':') + ['sdpa'])[:2]
        torch._dynamo.reset(); counters.clear()
        cfg = MotifConfig.from_preset(preset, attn_impl=impl)
        torch.manual_seed(0)
        with torch.device('cuda'): model = MotifForCausalLM(cfg)
        model = model.to(torch.bfloat16).train()
        for layer in model.model.layers: layer.compile()
        model.logits_and_loss = torch.compile(model.logits_and_loss)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
        ids = torch.randint(0, cfg.vocab_size, (batch, seq + 1), device='cuda')
        x, y = ids[:, :-1], ids[:, 1:]
        def step():
            model(x, labels=y).loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        for _ in range(warmup): step()
        torch.cuda.synchronize(); warm = time.perf_counter() - t0
        gb = {str(k)[:120]: v for k, v in counters['graph_break'].items()}
        st = dict(counters['stats'])
        recomp = sum(v for k, v in counters['recompiles'].items()) if 'recompiles' in counters else None
        print(f"{preset}: warm-up {warm:.1f} s, dynamo stats {st}, graph breaks {sum(gb.values())} {gb}, recompiles {recomp}", flush=True)
        ev = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        ev[0].record()
        for _ in range(steps): step()
        ev[1].record(); torch.cuda.synchronize(); ms = ev[0].elapsed_time(ev[1]) / steps
        with tprofile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(steps): step()
            torch.cuda.synchronize()
        gaps = _gaps(prof, steps)
        tot = 0.
        for e in prof.key_averages():
            if e.device_type != torch.autograd.DeviceType.CUDA: continue    # kernels only (host ops' device time is theirs)
            if getattr(e, 'is_user_annotation', False) or e.key.startswith('Optimizer.'): continue   # GPU ranges of annotations
            t = e.device_time_total / 1e3 / steps
            if t <= 0: continue
            tot += t
            rows.append(dict(model=case, kernel=e.key[:160], kind=_kind(e.key), ms_per_step=t, calls_per_step=e.count / steps))
        df = pd.DataFrame([r for r in rows if r['model'] == case]).sort_values('ms_per_step', ascending=False)
        print(f"\n{preset}: step {ms:.1f} ms (events), kernels {tot:.1f} ms/step, {train_flops_per_token(cfg, seq) * batch * seq / ms / 1e9 / 989.4:.3f} MFU")
        print(df.groupby('kind').ms_per_step.sum().sort_values(ascending=False).round(2).to_string())
        print(df.head(30).round(3).to_string(index=False), flush=True)
        summary.append(dict(model=case, step_ms=ms, kernel_ms=tot, warmup_s=warm, graph_breaks=sum(gb.values()),
                            unique_graphs=st.get('unique_graphs'), recompiles=recomp, **gaps))
        del model, opt, prof; torch.cuda.empty_cache()
    print(pd.DataFrame(summary).round(2).to_string(), flush=True)
    df = pd.DataFrame(rows)
    save_result('model_profile' + (f'_{TAG}' if TAG else ''), df, summary=summary, batch=batch, seq=seq)
    return df


if __name__ == '__main__':
    if 'attn' in WHAT: attn()
    if 'profile' in WHAT: profile(CASES)
