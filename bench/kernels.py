#!/usr/bin/env python
"""Fused Triton kernels vs eager PyTorch vs torch.compile (fwd + bwd) at OpenELM shapes. Needs a CUDA GPU.

    python bench/kernels.py            # full: 8 x 2048 tokens, model dims 1280 / 1536 / 2048 / 3072
    python bench/kernels.py --quick    # one dim per op, fewer repetitions

Questions and targets (issue 7, on an H100):
1. RMSNorm forward + backward, our Triton kernel vs the eager reference: ratio >= 3;
2. the same vs ``torch.compile`` of the reference: ratio >= 1.5;
3. reported alongside: fused residual-add + RMSNorm and the QKV split with q/k RMSNorm + RoPE (the model's ops)
   against the same two baselines.
Times are medians of ``triton.testing.do_bench`` over forward + backward (gradients w.r.t. every input).
Without CUDA the script prints a message and writes a JSON that records that nothing was measured.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from _common import commit, machine  # noqa: E402

TARGETS = {"eager": 3.0, "torch.compile": 1.5}




def _cases(quick: bool):
    from train_small.kernels.qk_norm_rope import qkv_norm_rope_triton
    from train_small.kernels.reference import add_rmsnorm_ref, qkv_norm_rope_ref, rmsnorm_ref, rope_cos_sin
    from train_small.kernels.rmsnorm import add_rmsnorm_triton, rmsnorm_triton

    tokens = 8 * 2048
    dims = [2048] if quick else [1280, 1536, 2048, 3072]
    bf16 = torch.bfloat16
    for d in dims:
        def make(d=d):
            x = torch.randn(tokens, d, device="cuda", dtype=bf16, requires_grad=True)
            w = torch.ones(d, device="cuda", dtype=bf16, requires_grad=True)
            return (x, w)

        yield f"rmsnorm d={d} bf16", f"({tokens}, {d}) bf16, weight bf16", make, rmsnorm_triton, rmsnorm_ref

        def make_add(d=d):  # the model's case: fp32 residual stream, bf16 branch output, fp32 weight
            h = torch.randn(tokens, d, device="cuda", requires_grad=True)
            r = torch.randn(tokens, d, device="cuda", dtype=bf16, requires_grad=True)
            w = torch.ones(d, device="cuda", requires_grad=True)
            return (h, r, w)

        yield (f"add_rmsnorm d={d}", f"({tokens}, {d}) fp32 stream + bf16 branch, fp32 weight", make_add,
               add_rmsnorm_triton, add_rmsnorm_ref)
    heads = [(20, 5, 64)] if quick else [(12, 3, 64), (20, 5, 64), (32, 8, 64), (24, 6, 128)]
    for hq, hkv, hd in heads:
        cos, sin = rope_cos_sin(2048, hd, device="cuda")

        def make_qk(hq=hq, hkv=hkv, hd=hd):
            qkv = torch.randn(8, 2048, hq + 2 * hkv, hd, device="cuda", dtype=bf16, requires_grad=True)
            wq = torch.ones(hd, device="cuda", requires_grad=True)
            wk = torch.ones(hd, device="cuda", requires_grad=True)
            return (qkv, wq, wk)

        def fused(qkv, wq, wk, hq=hq, hkv=hkv, cos=cos, sin=sin):
            return qkv_norm_rope_triton(qkv, hq, hkv, wq, wk, cos, sin, 1e-6, torch.bfloat16)

        def ref(qkv, wq, wk, hq=hq, hkv=hkv, cos=cos, sin=sin):
            return qkv_norm_rope_ref(qkv, hq, hkv, wq, wk, cos, sin, 1e-6, torch.bfloat16)

        yield (f"qkv_norm_rope Hq={hq} Hkv={hkv} D={hd}", f"qkv (8, 2048, {hq + 2 * hkv}, {hd}) bf16 -> q, k, v",
               make_qk, fused, ref)


def _time_fwd_bwd(fn, inputs, rep: int) -> float:
    from triton.testing import do_bench

    def step():
        out = fn(*inputs)
        outs = out if isinstance(out, tuple) else (out,)
        torch.autograd.backward([o for o in outs], [torch.ones_like(o) for o in outs])

    return do_bench(step, rep=rep, grad_to_none=list(inputs), return_mode="median")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one shape per op, shorter timing")
    ap.add_argument("--out", default="bench/results/kernels.json", help="JSON output path")
    args = ap.parse_args()
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    command = "python bench/kernels.py" + (" --quick" if args.quick else "")
    if not torch.cuda.is_available():
        msg = "no CUDA GPU: the Triton kernels were not timed (correctness is tested on CPU under TRITON_INTERPRET=1)"
        print(msg)
        result = [{"name": "rmsnorm_fwd_bwd_vs_" + ref, "metric": "time ratio (reference / ours), fwd+bwd",
                   "ours": None, "reference": None, "reference_name": ref, "ratio": None, "target": tgt,
                   "input": "OpenELM shapes, 8 x 2048 tokens", "machine": machine(), "command": command,
                   "commit": commit(), "note": msg} for ref, tgt in TARGETS.items()]
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
        return 0
    rep = 50 if args.quick else 200
    results = []
    print(f"{'case':32s} {'ours ms':>9s} {'eager ms':>9s} {'compile ms':>10s} {'x eager':>8s} {'x compile':>9s}")
    for name, desc, make, fused, ref in _cases(args.quick):
        compiled = torch.compile(ref, dynamic=False)
        t = {"ours": _time_fwd_bwd(fused, make(), rep), "eager": _time_fwd_bwd(ref, make(), rep),
             "torch.compile": _time_fwd_bwd(compiled, make(), rep)}
        print(f"{name:32s} {t['ours']:9.3f} {t['eager']:9.3f} {t['torch.compile']:10.3f} "
              f"{t['eager'] / t['ours']:8.2f} {t['torch.compile'] / t['ours']:9.2f}")
        for ref_name, target in TARGETS.items():
            results.append({
                "name": f"{name} fwd+bwd vs {ref_name}", "metric": "time ratio (reference ms / ours ms), fwd+bwd",
                "ours": t["ours"], "reference": t[ref_name], "reference_name": ref_name,
                "ratio": t[ref_name] / t["ours"], "target": target if name.startswith("rmsnorm") else None,
                "input": desc, "machine": machine(), "command": command, "commit": commit(),
            })
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
