#!/usr/bin/env python
"""Fused kernels vs eager PyTorch (and torch.compile), forward + backward, at OpenELM shapes.

    python bench/kernels.py            # full: 8 x 2048 tokens; GPU rows at model dims 1280 / 1536 / 2048 / 3072
    python bench/kernels.py --quick    # CPU row at 8 x 256 tokens, one GPU shape per op, fewer repetitions
    python bench/kernels.py --ptxas    # no GPU needed: registers and spills of every kernel setting, from ptxas
                                       # for sm_90a (writes bench/results/gpu/ptxas_sm90.json)

Questions and targets (issue 13, fixed before measuring):

CPU (always measured, unless ``--no-cpu``):
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
   eager / ours >= 0.95 ("at equal speed", within 5%);
6. (issue 22, reported, no target) the cross-entropy row kernel at its settings (8,192-column blocks, 16 warps)
   vs the previous ones (32,768, 16 warps), and on a vocabulary padded to a multiple of 128 vs unpadded;
7. the registers and spills of every kernel variant the run compiled, read from the GPU's own Triton.
GPU times are CUDA-event medians over the same number of timed calls per side (after warm-up), each call being
forward + backward with gradients for every input. The JSON is rewritten after every row, so a run stopped by a
time limit keeps what it measured.

The full run takes about 9 CPU-minutes (row 1: 8 passes at 16,384 tokens; the eager side computes ~4 TFLOP per
forward + backward and holds ~8.6 GiB at its peak, extrapolated from the quick run's 1.07 GiB at 2,048 tokens) plus
about a minute of GPU time; ``--quick`` takes ~40 CPU-seconds.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import json  # noqa: E402

import torch  # noqa: E402
from _common import RESULTS, Timing, bench_parser, commit, compare, machine, save  # noqa: E402

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


def gpu_rows(args):
    """Yields the GPU rows one at a time (each is written as soon as it is measured)."""
    reps = args.reps or (30 if args.quick else 100)
    for op, shape, desc, make, fused, ref in _gpu_cases(args.quick):
        compiled = torch.compile(ref, dynamic=False)
        t_ours = cuda_times(_fwd_bwd(fused, make), reps)
        for ref_name, fn in (("eager", ref), ("torch.compile", compiled)):
            yield compare(f"{op} {shape} fwd+bwd vs {ref_name}", "ms per fwd+bwd", t_ours,
                          cuda_times(_fwd_bwd(fn, make), reps), ref_name, TARGETS.get((op, ref_name)),
                          desc, kind="time")
        torch.cuda.empty_cache()
    yield from gpu_lm_head(reps)
    yield from gpu_ce_rows(reps)


def gpu_lm_head(reps: int):
    from train_small.kernels.fused_linear_ce import _ACCUMULATE_MODE, linear_cross_entropy
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
    yield compare("lm_head_loss_peak_memory_gpu", "peak CUDA bytes added (fwd+bwd)", mem["ours"], mem["eager"],
                  "eager: full logits + CE + z-loss", target=4.0, input=desc, kind="time")
    times = {name: cuda_times(step, reps) for name, step in steps.items()}
    yield compare("lm_head_loss_time_gpu", "ms per fwd+bwd", times["ours"], times["eager"],
                  "eager: full logits + CE + z-loss", target=0.95, input=desc, kind="time",
                  dw_accumulation=dict(_ACCUMULATE_MODE))


def gpu_ce_rows(reps: int):
    """The row kernel alone on one chunk of logits (4,096 rows, bf16): its settings vs the previous ones, and a
    vocabulary padded to a multiple of 128 vs the same vocabulary unpadded (same settings)."""
    from train_small.kernels.fused_linear_ce import _ce_rows_triton, ce_row_settings, padded_vocab

    rows, g = 4096, torch.Generator(device="cuda").manual_seed(0)

    def timed(v, v_row, block, warps):
        logits = torch.randn(rows, v_row, device="cuda", generator=g).to(torch.bfloat16)
        tgt = torch.randint(0, v, (rows,), device="cuda", generator=g)
        # Each call overwrites the logits with their gradient; the next call reads those: the same work.
        return cuda_times(lambda: _ce_rows_triton(logits, tgt, 1e-4, -100, vocab=v, block=block, warps=warps),
                          reps)

    block, warps = ce_row_settings(VOCAB)
    yield compare(f"ce_rows block {block} x {warps} warps vs 32768 x 16", "ms per chunk", timed(VOCAB, VOCAB, block,
                  warps), timed(VOCAB, VOCAB, 32768, 16), "BLOCK_V 32768, 16 warps (before issue 22)", None,
                  f"{rows} rows x V {VOCAB}, bf16", kind="time")  # fmt: skip
    v = 50257
    yield compare(f"ce_rows V {v} padded to {padded_vocab(v)} vs unpadded", "ms per chunk",
                  timed(v, padded_vocab(v), *ce_row_settings(padded_vocab(v))),
                  timed(v, v, *ce_row_settings(v)), "unpadded rows (stride 50257)", None,
                  f"{rows} rows, bf16", kind="time")  # fmt: skip


def _jit_kernels() -> dict:
    from train_small.kernels.fused_linear_ce import _ce_rows_kernel
    from train_small.kernels.qk_norm_rope import _qk_bwd_kernel, _qk_fwd_kernel
    from train_small.kernels.rmsnorm import _rmsnorm_bwd_kernel, _rmsnorm_fwd_kernel

    return {"ce_rows": _ce_rows_kernel, "rmsnorm_fwd": _rmsnorm_fwd_kernel, "rmsnorm_bwd": _rmsnorm_bwd_kernel,
            "qk_fwd": _qk_fwd_kernel, "qk_bwd": _qk_bwd_kernel}


def compiled_kernel_resources() -> dict:
    """Registers, spills, shared memory and warps of every variant this process compiled (Triton's JIT cache;
    the attribute names are Triton internals, so a version that lacks them gives a note instead)."""
    out = []
    try:
        for name, fn in _jit_kernels().items():
            for cache in fn.device_caches.values():
                for k in cache[0].values():
                    consts = getattr(getattr(k, "src", None), "constants", {}) or {}
                    out.append({"kernel": name, "num_warps": k.metadata.num_warps, "shared": k.metadata.shared,
                                "n_regs": getattr(k, "n_regs", None), "n_spills": getattr(k, "n_spills", None),
                                "constexprs": {str(a): v for a, v in consts.items() if isinstance(v, (int, bool))}})
        note = None
    except Exception as e:  # noqa: BLE001
        note = f"could not read the JIT cache: {type(e).__name__}: {e}"
    return {"name": "compiled_kernel_resources", "metric": "registers / spills per compiled kernel variant",
            "ours": None, "reference": None, "reference_name": None, "ratio": None, "target": None, "met": None,
            "input": "every Triton kernel variant compiled by this run", "kernels": out, "note": note}


def unmeasured_gpu_rows() -> list[dict]:
    names = [("rmsnorm d=2048 fwd+bwd vs eager", 3.0), ("rmsnorm d=2048 fwd+bwd vs torch.compile", 1.5),
             ("qkv_norm_rope Hq=20 Hkv=5 D=64 fwd+bwd vs eager", 1.5), ("lm_head_loss_peak_memory_gpu", 4.0),
             ("lm_head_loss_time_gpu", 0.95)]
    return [{"name": n, "metric": "ratio", "ours": None, "reference": None, "reference_name": None, "ratio": None,
             "target": tgt, "met": None, "input": "OpenELM shapes, 8 x 2048 tokens", "note": NO_GPU}
            for n, tgt in names]


# ------------------------------------------------------------------------------------------------ ptxas (no GPU)


def _ptxas_path() -> str:
    try:
        from triton.backends.nvidia.compiler import get_ptxas

        return get_ptxas(90).path
    except (ImportError, AttributeError):
        from triton import knobs

        return knobs.nvidia.ptxas.path


def ptxas_rows() -> list[dict]:
    """Compile each kernel setting ahead of time for sm_90a (no GPU needed) and read ptxas's register and spill
    report. Cases: the cross-entropy row kernel (bf16 / fp32 logits, rows padded to a multiple of 128 or not, the
    block/warps candidates), the RMSNorm forward/backward and the q/k norm+RoPE kernels at OpenELM widths."""
    import re
    import subprocess
    import tempfile

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from train_small.kernels.fused_linear_ce import ce_row_settings
    from train_small.kernels.qk_norm_rope import qk_settings
    from train_small.kernels.rmsnorm import _bwd_warps, _settings

    kernels = _jit_kernels()
    ptxas = _ptxas_path()

    def report(kernel, sig, constexprs, div16, warps):
        src = ASTSource(kernels[kernel], sig, constexprs=constexprs, attrs={(i,): [["tt.divisibility", 16]]
                                                                            for i in div16})
        k = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": warps})
        with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
            f.write(k.asm["ptx"])
        res = subprocess.run([ptxas, "-v", "--gpu-name=sm_90a", f.name, "-o", os.devnull], capture_output=True,
                             text=True)
        os.unlink(f.name)
        regs = re.search(r"Used (\d+) registers", res.stderr)
        spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", res.stderr)
        if not regs or not spill:
            raise RuntimeError(f"unexpected ptxas output: {res.stderr[-500:]}")
        return int(regs.group(1)), int(spill.group(1)), int(spill.group(2))

    rows = []

    def add(kernel, setting, chosen, sig, constexprs, div16, warps):
        try:
            regs, st, ld = report(kernel, sig, constexprs, div16, warps)
            row = {"registers": regs, "spill_stores": st, "spill_loads": ld}
        except Exception as e:  # noqa: BLE001
            row = {"error": f"{type(e).__name__}: {e}"[:300]}
        rows.append({"name": f"ptxas {kernel} {setting}, {warps} warps", "kernel": kernel, "setting": setting,
                     "num_warps": warps, "chosen": chosen, "arch": "sm_90a", "triton": triton.__version__,
                     "ptxas": os.path.basename(ptxas), **row})
        print(f"{rows[-1]['name']:80s} {'(chosen)' if chosen else '':9s} {row}")

    ce = ["LOGITS", "stride_l", "TARGETS", "LOSS", "LSE", "V", "V_ROW", "ignore_index", "z_loss", "BLOCK_V"]
    chosen = ce_row_settings(VOCAB)
    for dt in ("bf16", "fp32"):
        for padded in (True, False):
            for block, warps in ((32768, 16), (32768, 32), (16384, 16), (16384, 32), (8192, 8), (8192, 16),
                                 (4096, 8)):
                sig = dict(zip(ce, [f"*{dt}", "i32", "*i64", "*fp32", "*fp32", "i32", "i32", "i32", "fp32",
                                    "constexpr"]))
                add("ce_rows", f"{dt} logits, rows {'padded to 128' if padded else 'unpadded'}, BLOCK_V {block}",
                    padded and (block, warps) == chosen, sig, {"BLOCK_V": block}, [0, 2, 3, 4] + ([1, 6] if padded
                                                                                             else []), warps)
    fwd = ["X", "R", "H", "Y", "W", "RSTD", "stride_x", "stride_r", "stride_h", "stride_y", "N", "eps", "HAS_RES",
           "BLOCK_N"]
    bwd = ["DY", "X", "W", "RSTD", "DX", "DH", "DW_PART", "stride_dy", "stride_x", "stride_dx", "stride_dh", "n_rows",
           "N", "rows_per_prog", "HAS_DH", "BLOCK_N"]
    for d in (1280, 2048, 3072):
        block, fwd_warps = _settings(d)
        # the model's case: fp32 residual stream + bf16 branch -> fp32 h, bf16 out, fp32 weight
        add("rmsnorm_fwd", f"d {d}, fp32 stream + bf16 branch -> bf16", True,
            dict(zip(fwd, ["*fp32", "*bf16", "*fp32", "*bf16", "*fp32", "*fp32"] + ["i32"] * 5 + ["fp32"]
                     + ["constexpr"] * 2)), {"HAS_RES": True, "BLOCK_N": block}, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            fwd_warps)
        for warps in (4, 8, 16):
            add("rmsnorm_bwd", f"d {d}, bf16 dy, fp32 x/dh", warps == _bwd_warps(block),
                dict(zip(bwd, ["*bf16", "*fp32", "*fp32", "*fp32", "*fp32", "*fp32", "*fp32"] + ["i32"] * 7
                         + ["constexpr"] * 2)), {"HAS_DH": True, "BLOCK_N": block}, list(range(12)), warps)
    qf = ["X", "W", "COS", "SIN", "Y", "RSTD", "n_rows", "T", "H", "sxb", "sxt", "sxh", "HALF", "eps", "NORM",
          "ROUND_TO_W", "BLOCK_M", "BLOCK_H"]
    qb = ["DO", "X", "W", "COS", "SIN", "RSTD", "DX", "DW_PART", "n_rows", "T", "H", "sxb", "sxt", "sxh", "sdb", "sdt",
          "sdh", "HALF", "rows_per_prog", "NORM", "BLOCK_M", "BLOCK_H"]
    for hd in (64, 128):
        half = hd // 2
        chosen = qk_settings(half)
        for block_m, warps in ((64, 4), (32, 4), (16, 4), (8, 4), (4, 4), (64, 8), (32, 8), (16, 8)):
            pick = (block_m, warps) == chosen
            add("qk_fwd", f"D {hd}, bf16 in/out, fp32 weight, BLOCK_M {block_m}", pick,
                dict(zip(qf, ["*bf16", "*fp32", "*fp32", "*fp32", "*bf16", "*fp32"] + ["i32"] * 7 + ["fp32"]
                         + ["constexpr"] * 4)),
                {"NORM": True, "ROUND_TO_W": False, "BLOCK_M": block_m, "BLOCK_H": half}, list(range(6)), warps)
            add("qk_bwd", f"D {hd}, bf16 dy/x, fp32 weight, BLOCK_M {block_m}", pick,
                dict(zip(qb, ["*bf16", "*bf16", "*fp32", "*fp32", "*fp32", "*fp32", "*bf16", "*fp32"] + ["i32"] * 11
                         + ["constexpr"] * 3)), {"NORM": True, "BLOCK_M": block_m, "BLOCK_H": half}, list(range(8)),
                warps)
    return rows


def _write(rows: list[dict], path: str, args) -> None:
    """Rewrite the JSON with the rows so far (stamped like ``_common.save``), atomically."""
    stamp = {"commit": commit(), "machine": machine(), "quick": bool(args.quick),
             "command": "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump([{**stamp, **r} for r in rows], f, indent=1, default=float)
        f.write("\n")
    os.replace(path + ".tmp", path)


def main() -> int:
    ap = bench_parser(__doc__.split("\n\n")[0])
    ap.add_argument("--ptxas", action="store_true",
                    help="no GPU needed: compile every kernel setting for sm_90a and write ptxas's registers and "
                         "spills to bench/results/gpu/ptxas_sm90.json (or --out)")
    ap.add_argument("--no-cpu", action="store_true", help="skip the CPU memory row (bench/gpu.sh on the device)")
    args = ap.parse_args()
    if args.ptxas:
        rows = ptxas_rows()
        out = args.out or os.path.join(RESULTS, "gpu", "ptxas_sm90.json")
        _write(rows, out, args)
        print(f"wrote {out}")
        return 0 if all("error" not in r for r in rows) else 1
    out = args.out or os.path.join(RESULTS, f"kernels{'.quick' if args.quick else ''}.json")
    rows: list[dict] = []
    if not args.no_cpu:
        rows.append(cpu_lm_head_memory(args))
        _write(rows, out, args)
    if torch.cuda.is_available():
        for row in gpu_rows(args):
            rows.append(row)
            _write(rows, out, args)
        rows.append(compiled_kernel_resources())
    else:
        print(NO_GPU)
        rows += unmeasured_gpu_rows()
    save(rows, "kernels", args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
