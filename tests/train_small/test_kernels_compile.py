"""The kernels under torch.compile: every op passes ``torch.library.opcheck`` (schema, fake implementation,
autograd registration, AOT dispatch) and a model built on them compiles with ``fullgraph=True`` (no graph break)
and gives the eager kernel path's loss and gradients.

Without CUDA the ops run in Triton's interpreter and the compile uses AOTAutograd with inductor's decompositions
and min-cut partitioner but eager kernels (``aot_eager_decomp_partition``; the inductor backend itself is a slow
test on CPU); on CUDA the backend is inductor.
"""

from __future__ import annotations

import pytest
import torch

triton = pytest.importorskip("triton")

import train_small.kernels.fused_linear_ce  # noqa: E402, F401  (registers train_small::linear_ce)
import train_small.kernels.qk_norm_rope  # noqa: E402, F401
import train_small.kernels.rmsnorm  # noqa: E402, F401
from train_small.configs import get_config  # noqa: E402
from train_small.kernels.reference import rope_cos_sin  # noqa: E402
from train_small.model import build_model  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
BACKEND = "inductor" if DEVICE == "cuda" else "aot_eager_decomp_partition"
ops = torch.ops.train_small


def _samples():
    g = torch.Generator(device=DEVICE).manual_seed(0)

    def r(*shape, dtype=torch.float32, grad=True):
        return torch.randn(*shape, device=DEVICE, generator=g).to(dtype).requires_grad_(grad)

    cos, sin = rope_cos_sin(5, 8, device=DEVICE)
    qkv = r(2, 5, 3 + 2 * 1, 8)
    targets = torch.tensor([1, 0, 6, -100, 2, 3], device=DEVICE)
    return {
        "rmsnorm_fwd": (ops.rmsnorm_fwd, (r(6, 24), r(24), 1e-6, None)),
        "rmsnorm_fwd_bf16_out": (ops.rmsnorm_fwd, (r(6, 24, dtype=torch.bfloat16), r(24), 1e-6, torch.bfloat16)),
        "add_rmsnorm_fwd": (ops.add_rmsnorm_fwd, (r(6, 24), r(6, 24, dtype=torch.bfloat16), r(24), 1e-6,
                                                  torch.bfloat16)),
        "rmsnorm_bwd": (ops.rmsnorm_bwd, (r(6, 24, grad=False), r(6, 24, grad=False), r(24, grad=False),
                                          torch.rand(6, device=DEVICE), r(6, 24, grad=False))),
        "qk_norm_rope_fwd": (ops.qk_norm_rope_fwd, (qkv[:, :, :3].detach().requires_grad_(True), r(8), cos, sin,
                                                    1e-6, torch.float32)),
        "qkv_norm_rope_fwd": (ops.qkv_norm_rope_fwd, (qkv, r(8), r(8), cos, sin, 3, 1, 1e-6, torch.float32)),
        "qkv_rope_only_fwd": (ops.qkv_norm_rope_fwd, (qkv, None, None, cos, sin, 3, 1, 1e-6, torch.float32)),
        "linear_ce": (ops.linear_ce, (r(6, 16), r(7, 16), targets, 1e-2, -100, 4, True)),
    }


SAMPLES = sorted(_samples())


@pytest.mark.parametrize("name", SAMPLES)
def test_op_passes_opcheck(name):
    op, args = _samples()[name]
    torch.library.opcheck(op, args)


def _step(model, idx, tgt):
    total, ce, z = model(idx, tgt, z_loss=1e-4)
    total.backward()
    return total.detach(), ce.detach(), z.detach()


def _compile_matches_eager(name: str, backend: str):
    torch.manual_seed(0)
    eager = build_model(get_config(name, use_kernels=True)).to(DEVICE)
    compiled_model = build_model(get_config(name, use_kernels=True)).to(DEVICE)
    compiled_model.load_state_dict(eager.state_dict())
    idx = torch.randint(0, 512, (2, 11), device=DEVICE)
    tgt = torch.randint(0, 512, (2, 11), device=DEVICE)
    tgt[0, 3] = -100
    want = _step(eager, idx, tgt)
    torch._dynamo.reset()
    got = _step(torch.compile(compiled_model, fullgraph=True, backend=backend), idx, tgt)  # fullgraph: no break
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for (pname, p1), p2 in zip(eager.named_parameters(), compiled_model.parameters()):
        torch.testing.assert_close(p2.grad, p1.grad, rtol=1e-4, atol=1e-6, msg=pname)


def test_model_on_kernels_compiles_fullgraph_and_matches_eager():
    """cpu-tiny on the kernel path (fused add+RMSNorm, q/k norm+RoPE, chunked LM-head loss with an ignored
    target): one compiled training step equals the eager one, loss and every parameter gradient."""
    _compile_matches_eager("cpu-tiny", BACKEND)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "backend"), [("mobilellm-tiny", BACKEND), ("cpu-tiny", "inductor")])
def test_model_on_kernels_compiles_slow_cases(name, backend):
    """MobileLLM (RoPE only, shared blocks) under the same backend, and inductor itself on CPU (~40 s)."""
    _compile_matches_eager(name, backend)
