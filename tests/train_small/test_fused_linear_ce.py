"""Fused chunked LM-head loss (linear + cross-entropy + z-loss) against the eager reference.

Forward (total, ce, z) and both gradients (hidden states, and the tied embedding / LM head weight), in fp32 and
bf16, on odd shapes, with several chunks and ignored targets. Without CUDA the Triton row kernel runs in Triton's
interpreter (conftest sets TRITON_INTERPRET=1). Tolerances, relative to each tensor's largest magnitude:

* fp32: 1e-5 for gradients, 1e-6 for the losses: the same fp32 arithmetic, only the summation order differs
  (per chunk, then across chunks);
* bf16: the losses are reduced in fp32 from the same bf16 logits, so 1e-5; the gradients are written in bf16
  (2^-8 = 3.9e-3 relative step) and pass through one more bf16 matmul, and the scaling by 1 / n_valid happens
  after that rounding here and before it in the reference; Triton's interpreter also rounds fp32 -> bf16 toward
  zero where torch rounds to nearest. Together at most a few bf16 steps: 1.6e-2 (4 steps).
"""

from __future__ import annotations

import pytest
import torch

triton = pytest.importorskip("triton")

from train_small.kernels.fused_linear_ce import (  # noqa: E402
    _ce_rows_triton,
    ce_row_settings,
    default_chunk_tokens,
    linear_cross_entropy,
    padded_vocab,
)
from train_small.kernels.reference import ce_rows_ref, linear_cross_entropy_ref  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
GRAD_TOL = {torch.float32: 1e-5, torch.bfloat16: 1.6e-2}
LOSS_TOL = {torch.float32: 1e-6, torch.bfloat16: 1e-5}


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item() / max(b.float().abs().max().item(), 1e-12)


def _run(fn, x, w, t, **kw):
    xx, ww = x.detach().clone().requires_grad_(True), w.detach().clone().requires_grad_(True)
    total, ce, z = fn(xx, ww, t, **kw)
    (total * 0.7).backward()  # a non-unit upstream gradient
    return total, ce, z, xx.grad, ww.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("n", "d", "v", "chunk"), [(37, 48, 301, 8), (5, 16, 1000, None), (64, 24, 97, 64)])
@pytest.mark.parametrize("impl", ["triton", "torch"])
def test_matches_eager_reference(dtype, n, d, v, chunk, impl):
    torch.manual_seed(n + v)
    x = torch.randn(n, d, device=DEVICE).to(dtype)  # hidden states: bf16 under autocast
    w = torch.randn(v, d, device=DEVICE) * d**-0.5  # fp32 master weight, as in training
    t = torch.randint(0, v, (n,), device=DEVICE)
    t[:: max(2, n // 3)] = -100  # some ignored targets (padding)
    ours = _run(linear_cross_entropy, x, w, t, z_loss=1e-2, chunk_tokens=chunk, impl=impl)
    ref = _run(linear_cross_entropy_ref, x, w, t, z_loss=1e-2)
    for name, a, b in zip(("total", "ce", "z"), ours[:3], ref[:3]):
        assert a.dtype == b.dtype == torch.float32
        assert abs(a.item() - b.item()) <= LOSS_TOL[dtype] * abs(b.item()), (name, a.item(), b.item())
    for name, a, b in zip(("dx", "dw"), ours[3:], ref[3:]):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert _rel_err(a, b) <= GRAD_TOL[dtype], (name, _rel_err(a, b))


def test_row_kernel_matches_row_reference():
    """The Triton row step alone: per-row loss and lse, and the in-place gradient, against ce_rows_ref."""
    torch.manual_seed(0)
    logits = torch.randn(9, 1500, device=DEVICE) * 4  # V > the interpreter's block: several passes per row
    t = torch.randint(0, 1500, (9,), device=DEVICE)
    t[4] = -100
    a, b = logits.clone(), logits.clone()
    la, za = _ce_rows_triton(a, t, 1e-3, -100)
    lb, zb = ce_rows_ref(b, t, 1e-3, -100)
    torch.testing.assert_close(la, lb, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(za, zb, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert la[4] == 0 and za[4] == 0 and torch.all(a[4] == 0)
    # each valid row's gradient sums to 2 z lse (softmax sums to 1 and the one-hot removes 1)
    torch.testing.assert_close(a[0].sum(), 2e-3 * za[0], rtol=1e-3, atol=1e-5)


def test_row_kernel_at_gpu_launch_settings_on_padded_rows():
    """The GPU's settings (8,192-column blocks, 16 warps) on rows padded to a multiple of 128, with V > 32,768 so
    each pass takes several blocks: equal to the row reference, padding columns get a zero gradient and never
    enter the softmax (changing them changes nothing)."""
    torch.manual_seed(5)
    v = 40_001
    vp = padded_vocab(v)
    assert vp == 40_064 and vp % 128 == 0
    block, warps = ce_row_settings(vp, on_gpu=True)
    assert (block, warps) == (8192, 16) and vp > 4 * block
    logits = torch.randn(5, vp, device=DEVICE) * 3
    logits[:, v:] = 50.0  # would dominate the softmax if the padding leaked in
    t = torch.tensor([0, v - 1, -100, 7, 12_345], device=DEVICE)
    a, b = logits.clone(), logits.clone()
    la, za = _ce_rows_triton(a, t, 1e-3, -100, vocab=v, block=block, warps=warps)
    lb, zb = ce_rows_ref(b, t, 1e-3, -100, vocab=v)
    torch.testing.assert_close(la, lb, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(za, zb, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert torch.all(a[:, v:] == 0) and torch.all(a[2] == 0)
    want = torch.logsumexp(logits[:, :v].double(), dim=-1)
    torch.testing.assert_close(za[[0, 1, 3, 4]].double(), want[[0, 1, 3, 4]], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("impl", ["triton", "torch"])
def test_out_of_range_targets_are_refused(impl):
    """A target outside [0, V) that is not ignore_index is an error that names the cause, never a silent read
    outside the row (nor a silently ignored row)."""
    if DEVICE == "cuda":
        pytest.skip("on CUDA the check is a device-side assertion (test_gpu_out_of_range_target_asserts_on_device)")
    x, w = torch.randn(6, 8, device=DEVICE), torch.randn(10, 8, device=DEVICE)
    for bad in (10, -1, 1000):
        t = torch.tensor([1, 2, bad, -100, 3, 4], device=DEVICE)
        with pytest.raises(ValueError, match=r"outside \[0, 10\).*1 of 6, e.g. " + str(bad)):
            linear_cross_entropy(x, w, t, impl=impl)
    ok = linear_cross_entropy(x, w, torch.tensor([1, 2, 9, -100, 0, 4], device=DEVICE), impl=impl)[1]
    assert torch.isfinite(ok)


def test_equals_model_loss_without_z_and_ignores_nothing():
    """With no ignored targets and z_loss 0, total == ce == F.cross_entropy of the full logits."""
    torch.manual_seed(1)
    x, w = torch.randn(30, 16, device=DEVICE), torch.randn(50, 16, device=DEVICE)
    t = torch.randint(0, 50, (30,), device=DEVICE)
    total, ce, _ = linear_cross_entropy(x, w, t, chunk_tokens=7)
    want = torch.nn.functional.cross_entropy(x @ w.t(), t)
    assert total.item() == pytest.approx(want.item(), rel=1e-6) and ce.item() == pytest.approx(want.item(), rel=1e-6)


def test_never_materialises_the_full_logits():
    """Every tensor created in forward + backward is smaller than the (N, V) logits; eager creates several."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class LargestOutput(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.largest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for o in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(o, torch.Tensor):
                    self.largest = max(self.largest, o.numel())
            return out

    n, d, v = 256, 32, 2000
    x = torch.randn(n, d, requires_grad=True)
    w = torch.randn(v, d, requires_grad=True)
    t = torch.randint(0, v, (n,))
    chunk = default_chunk_tokens(n, v, d)
    assert chunk < n
    seen = {}
    for name, fn, kw in (("fused", linear_cross_entropy, {"impl": "torch"}), ("eager", linear_cross_entropy_ref, {})):
        with LargestOutput() as mode:
            fn(x, w, t, z_loss=1e-4, **kw)[0].backward()
        seen[name] = mode.largest
    assert seen["eager"] >= n * v
    assert seen["fused"] <= max(chunk * v, v * d, n * d) < n * v


def test_bad_shapes_are_clear_errors():
    x, w = torch.randn(4, 8), torch.randn(10, 6)
    with pytest.raises(ValueError, match="hidden size"):
        linear_cross_entropy(x, w, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="targets"):
        linear_cross_entropy(x, torch.randn(10, 8), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="impl"):
        linear_cross_entropy(x, torch.randn(10, 8), torch.zeros(4, dtype=torch.long), impl="cuda")


def test_model_kernel_path_uses_fused_loss():
    """cpu-tiny with use_kernels: model(idx, targets, z_loss) is the fused loss; equal (fp32) to the reference
    path's lm_loss on full logits, with the same gradients."""
    from train_small.configs import get_config
    from train_small.model import build_model

    torch.manual_seed(3)
    ref = build_model(get_config("cpu-tiny")).to(DEVICE)
    fused = build_model(get_config("cpu-tiny", use_kernels=True)).to(DEVICE)
    fused.load_state_dict(ref.state_dict())
    idx = torch.randint(0, 512, (2, 13), device=DEVICE)
    tgt = torch.randint(0, 512, (2, 13), device=DEVICE)
    outs = []
    for m in (ref, fused):
        total, ce, z = m(idx, tgt, z_loss=1e-4)
        total.backward()
        outs.append((total.item(), ce.item(), z.item()))
    for a, b in zip(*outs):
        assert a == pytest.approx(b, rel=1e-5)
    for (name, p1), p2 in zip(ref.named_parameters(), fused.parameters()):
        torch.testing.assert_close(p2.grad, p1.grad, rtol=1e-4, atol=1e-6, msg=name)


gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@gpu
def test_gpu_openelm_head_shape_and_memory():
    """OpenELM-270M's head (d 1280, V 32000) at 8 x 2048 tokens in bf16: matches eager; uses >= 4x less memory."""
    torch.manual_seed(0)
    n, d, v = 8 * 2048, 1280, 32000
    x = torch.randn(n, d, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(v, d, device="cuda") * d**-0.5
    t = torch.randint(0, v, (n,), device="cuda")
    peaks, outs = {}, {}
    for name, fn in (("fused", linear_cross_entropy), ("eager", linear_cross_entropy_ref)):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        outs[name] = _run(fn, x, w, t, z_loss=1e-4)
        torch.cuda.synchronize()
        peaks[name] = torch.cuda.max_memory_allocated() - base
    assert abs(outs["fused"][1].item() - outs["eager"][1].item()) <= 1e-4 * outs["eager"][1].item()
    for i in (3, 4):
        assert _rel_err(outs["fused"][i], outs["eager"][i]) <= GRAD_TOL[torch.bfloat16]
    assert peaks["eager"] >= 4 * peaks["fused"], peaks


@pytest.mark.gpu
@gpu
def test_gpu_vocabulary_above_one_block():
    """V = 50,257 (GPT-2's, not a multiple of 128: padded to 50,304) spans several 8,192-column blocks per row,
    over several chunks, in bf16 with ignored targets: loss and both gradients match the eager loss."""
    torch.manual_seed(1)
    n, d, v = 4096, 768, 50257
    x = torch.randn(n, d, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(v, d, device="cuda") * d**-0.5
    t = torch.randint(0, v, (n,), device="cuda")
    t[::7] = -100
    t[1] = v - 1
    ours = _run(linear_cross_entropy, x, w, t, z_loss=1e-4)
    ref = _run(linear_cross_entropy_ref, x, w, t, z_loss=1e-4)
    assert default_chunk_tokens(n, v, d) < n  # several chunks
    for name, a, b in zip(("total", "ce", "z"), ours[:3], ref[:3]):
        assert abs(a.item() - b.item()) <= LOSS_TOL[torch.bfloat16] * abs(b.item()), (name, a.item(), b.item())
    for name, a, b in zip(("dx", "dw"), ours[3:], ref[3:]):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert _rel_err(a, b) <= GRAD_TOL[torch.bfloat16], (name, _rel_err(a, b))


@pytest.mark.gpu
@gpu
def test_gpu_out_of_range_target_asserts_on_device(tmp_path):
    """On CUDA a bad target stops the process with a device-side assertion naming the cause (no host sync in the
    loss); it runs in a child process because a device-side assertion ends the CUDA context."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import torch\n"
        "from train_small.kernels.fused_linear_ce import linear_cross_entropy\n"
        "x = torch.randn(6, 8, device='cuda'); w = torch.randn(10, 8, device='cuda')\n"
        "t = torch.tensor([1, 2, 10, -100, 3, 4], device='cuda')\n"
        "linear_cross_entropy(x, w, t)[0].item()\n"
    )
    root = str(Path(__file__).resolve().parents[2])
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=root)
    assert res.returncode != 0
    assert "outside [0, 10)" in res.stderr or "device-side assert" in res.stderr, res.stderr[-2000:]
