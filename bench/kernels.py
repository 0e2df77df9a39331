#!/usr/bin/env python
"""Fused kernels vs eager PyTorch (and torch.compile), forward + backward, at OpenELM shapes.

    python bench/kernels.py            # full: 8 x 2048 tokens; GPU rows at model dims 1280 / 1536 / 2048 / 3072
    python bench/kernels.py --quick    # CPU row at 8 x 256 tokens, one GPU shape per op, fewer repetitions

Questions and targets (issue 13, fixed before measuring):

CPU (always measured):
1. peak memory of the LM-head loss (linear + cross-entropy + z-loss, forward + backward) at vocabulary 32,000 and
   8 x 2,048 tokens (d = 1280, fp32): our chunked loss (``train_small.kernels.fused_linear_ce`` with its PyTorch
   row step) vs the eager loss on full logits. Target: eager / ours >= 4. Peak = the process's high-water RSS
   during the call minus the RSS before it (``/proc/self/clear_refs`` resets the mark), so both sides are
   measured the same way, with inputs allocated beforehand.

GPU (a CUDA device; otherwise the rows are written with ``ours``/``reference`` null and a note):
2. RMSNorm fwd+bwd, Triton vs eager: >= 3; vs ``torch.compile`` of the reference: >= 1.5;
3. q/k RMSNorm + RoPE (the QKV split op) vs the eager reference: >= 1.5 (vs compile: reported);
4. fused residual-add + RMSNorm vs eager / compile: reported, no target;
5. fused LM-head loss at 8 x 2048 tokens, d 1280, V 32000, bf16: peak CUDA memory eager / ours >= 4, and time
   eager / ours >= 0.95 ("at equal speed", within 5%).
GPU times are CUDA-event medians over the same number of timed calls per side (after warm-up), each call being
forward + backward with gradients for every input.

The full run takes about 9 CPU-minutes (row 1: 8 passes at 16,384 tokens; the eager side computes ~4 TFLOP per
forward + backward and holds ~8.6 GiB at its peak, extrapolated from the quick run's 1.07 GiB at 2,048 tokens) plus
about a minute of GPU time; ``--quick`` takes ~40 CPU-seconds.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from _common import Timing, bench_parser, compare, save  # noqa: E402

NO_GPU = "no CUDA GPU: not measured (correctness is tested on CPU under TRITON_INTERPRET=1)"
TOKENS_FULL, TOKENS_QUICK, VOCAB, DIM = 8 * 2048, 8 * 256, 32000, 1280


# ------------------------------------------------------------------------------------------------ CPU memory


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def cpu_peak_bytes(fn) -> float:
    """Peak resident memory added while ``fn()`` runs (Linux: reset the high-water mark, run, read it)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _status_kib("VmRSS")
    fn()
    return float(_status_kib("VmHWM") - base) * 1024


def lm_head_inputs(tokens: int, device: str = "cpu", dtype=torch.float32):
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(tokens, DIM, device=device, generator=g).to(dtype).requires_grad_(True)
    w = (torch.randn(VOCAB, DIM, device=device, generator=g) * DIM**-0.5).requires_grad_(True)
    t = torch.randint(0, VOCAB, (tokens,), device=device, generator=g)
    return x, w, t


def lm_head_step(fn, x, w, t, **kw):
    def step():
        x.grad = w.grad = None
        total = fn(x, w, t, z_loss=1e-4, **kw)[0]
        total.backward()

    return step


def cpu_lm_head_memory(args) -> dict:
    from train_small.kernels.fused_linear_ce import default_chunk_tokens, linear_cross_entropy
    from train_small.kernels.reference import linear_cross_entropy_ref

    tokens = TOKENS_QUICK if args.quick else TOKENS_FULL
    reps = args.reps or (1 if args.quick else 3)
    x, w, t = lm_head_inputs(tokens)
    ours = lm_head_step(linear_cross_entropy, x, w, t, impl="torch")
    ref = lm_head_step(linear_cross_entropy_ref, x, w, t)
    ours(), ref()  # warm-up: first-call allocations (thread pools, caches) are not the loss's
    t_ours, t_ref = Timing(clock="bytes"), Timing(clock="bytes")
    for _ in range(reps):  # interleaved, so drift in the process's baseline hits both sides alike
        t_ours.values.append(cpu_peak_bytes(ours))
        t_ref.values.append(cpu_peak_bytes(ref))
    return compare(
        "lm_head_loss_peak_memory_cpu", "peak RSS added, bytes (fwd+bwd)", t_ours, t_ref,
        "eager: full fp32 logits + CE + z-loss", target=4.0,
        input=f"{tokens} tokens (8 x {tokens // 8}), d {DIM}, vocab {VOCAB}, fp32, CPU",
        kind="time", chunk_tokens=default_chunk_tokens(tokens, VOCAB, DIM),
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------ GPU


def cuda_times(fn, reps: int, warmup: int = 5) -> Timing:
    """Milliseconds per call, one CUDA-event pair per call, ``reps`` calls after ``warmup``."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    out = Timing(clock="cuda ms")
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        out.values.append(a.elapsed_time(b))
    return out


def _fwd_bwd(fn, make):
    inputs = make()

    def step():
        for t in inputs:
            t.grad = None
        out = fn(*inputs)
        outs = out if isinstance(out, tuple) else (out,)
        torch.autograd.backward(list(outs), [torch.ones_like(o) for o in outs])

    return step


def _gpu_cases(quick: bool):
    from train_small.kernels.qk_norm_rope import qkv_norm_rope_triton
    from train_small.kernels.reference import add_rmsnorm_ref, qkv_norm_rope_ref, rmsnorm_ref, rope_cos_sin
    from train_small.kernels.rmsnorm import add_rmsnorm_triton, rmsnorm_triton

    tokens, bf16 = 8 * 2048, torch.bfloat16
    for d in [2048] if quick else [1280, 1536, 2048, 3072]:
        def make(d=d):
            return (torch.randn(tokens, d, device="cuda", dtype=bf16, requires_grad=True),
                    torch.ones(d, device="cuda", dtype=bf16, requires_grad=True))

        yield "rmsnorm", f"d={d}", f"({tokens}, {d}) bf16, weight bf16", make, rmsnorm_triton, rmsnorm_ref

        def make_add(d=d):  # the model's case: fp32 residual stream, bf16 branch output, fp32 weight
            return (torch.randn(tokens, d, device="cuda", requires_grad=True),
                    torch.randn(tokens, d, device="cuda", dtype=bf16, requires_grad=True),
                    torch.ones(d, device="cuda", requires_grad=True))

        yield ("add_rmsnorm", f"d={d}", f"({tokens}, {d}) fp32 stream + bf16 branch, fp32 weight", make_add,
               add_rmsnorm_triton, add_rmsnorm_ref)
    for hq, hkv, hd in [(20, 5, 64)] if quick else [(12, 3, 64), (20, 5, 64), (32, 8, 64), (24, 6, 128)]:
        cos, sin = rope_cos_sin(2048, hd, device="cuda")

        def make_qk(hq=hq, hkv=hkv, hd=hd):
            return (torch.randn(8, 2048, hq + 2 * hkv, hd, device="cuda", dtype=bf16, requires_grad=True),
                    torch.ones(hd, device="cuda", requires_grad=True),
                    torch.ones(hd, device="cuda", requires_grad=True))

        def fused(qkv, wq, wk, hq=hq, hkv=hkv, cos=cos, sin=sin):
            return qkv_norm_rope_triton(qkv, hq, hkv, wq, wk, cos, sin, 1e-6, torch.bfloat16)

        def ref(qkv, wq, wk, hq=hq, hkv=hkv, cos=cos, sin=sin):
            return qkv_norm_rope_ref(qkv, hq, hkv, wq, wk, cos, sin, 1e-6, torch.bfloat16)

        yield ("qkv_norm_rope", f"Hq={hq} Hkv={hkv} D={hd}", f"qkv (8, 2048, {hq + 2 * hkv}, {hd}) bf16 -> q, k, v",
               make_qk, fused, ref)


TARGETS = {("rmsnorm", "eager"): 3.0, ("rmsnorm", "torch.compile"): 1.5, ("qkv_norm_rope", "eager"): 1.5}


def gpu_rows(args) -> list[dict]:
    reps = args.reps or (30 if args.quick else 100)
    rows = []
    for op, shape, desc, make, fused, ref in _gpu_cases(args.quick):
        compiled = torch.compile(ref, dynamic=False)
        t_ours = cuda_times(_fwd_bwd(fused, make), reps)
        for ref_name, fn in (("eager", ref), ("torch.compile", compiled)):
            rows.append(compare(f"{op} {shape} fwd+bwd vs {ref_name}", "ms per fwd+bwd", t_ours,
                                cuda_times(_fwd_bwd(fn, make), reps), ref_name, TARGETS.get((op, ref_name)),
                                desc, kind="time"))
        torch.cuda.empty_cache()
    rows += gpu_lm_head(reps)
    return rows


def gpu_lm_head(reps: int) -> list[dict]:
    from train_small.kernels.fused_linear_ce import linear_cross_entropy
    from train_small.kernels.reference import linear_cross_entropy_ref

    x, w, t = lm_head_inputs(TOKENS_FULL, "cuda", torch.bfloat16)
    desc = f"{TOKENS_FULL} tokens (8 x 2048), d {DIM}, vocab {VOCAB}, bf16 hidden, fp32 weight"
    steps = {"ours": lm_head_step(linear_cross_entropy, x, w, t),
             "eager": lm_head_step(linear_cross_entropy_ref, x, w, t)}
    mem = {}
    for name, step in steps.items():
        step()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        mem[name] = float(torch.cuda.max_memory_allocated() - base)
    times = {name: cuda_times(step, reps) for name, step in steps.items()}
    return [
        compare("lm_head_loss_peak_memory_gpu", "peak CUDA bytes added (fwd+bwd)", mem["ours"], mem["eager"],
                "eager: full logits + CE + z-loss", target=4.0, input=desc, kind="time"),
        compare("lm_head_loss_time_gpu", "ms per fwd+bwd", times["ours"], times["eager"],
                "eager: full logits + CE + z-loss", target=0.95, input=desc, kind="time"),
    ]


def unmeasured_gpu_rows() -> list[dict]:
    names = [("rmsnorm d=2048 fwd+bwd vs eager", 3.0), ("rmsnorm d=2048 fwd+bwd vs torch.compile", 1.5),
             ("qkv_norm_rope Hq=20 Hkv=5 D=64 fwd+bwd vs eager", 1.5), ("lm_head_loss_peak_memory_gpu", 4.0),
             ("lm_head_loss_time_gpu", 0.95)]
    return [{"name": n, "metric": "ratio", "ours": None, "reference": None, "reference_name": None, "ratio": None,
             "target": tgt, "met": None, "input": "OpenELM shapes, 8 x 2048 tokens", "note": NO_GPU}
            for n, tgt in names]


def main() -> int:
    args = bench_parser(__doc__.split("\n\n")[0]).parse_args()
    rows = [cpu_lm_head_memory(args)]
    if torch.cuda.is_available():
        rows += gpu_rows(args)
    else:
        print(NO_GPU)
        rows += unmeasured_gpu_rows()
    save(rows, "kernels", args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
