"""Triton kernels against their PyTorch references: forward and every gradient, fp32 and bf16, odd shapes.

Without CUDA these run in Triton's interpreter (conftest sets TRITON_INTERPRET=1), on small shapes. Tolerances:
fp32 1e-5 (only the reduction order differs); bf16 3e-2 relative to the tensor's scale, i.e. a few bf16 ulps
(2^-8 = 3.9e-3 relative): besides the reduction order, Triton's interpreter rounds fp32 -> bf16 casts toward
zero (``cast_impl`` in triton/runtime/interpreter.py) where torch and the GPU round to nearest even, which moves
some elements by one ulp. GPU tests (``-m gpu``) repeat the comparison at OpenELM shapes.
"""

from __future__ import annotations

import math

import pytest
import torch

triton = pytest.importorskip("triton")

from train_small.kernels.qk_norm_rope import qk_norm_rope_triton, qkv_norm_rope_triton  # noqa: E402
from train_small.kernels.reference import (  # noqa: E402
    add_rmsnorm_ref,
    apply_rope_ref,
    qk_norm_rope_ref,
    qkv_norm_rope_ref,
    rmsnorm_ref,
    rope_cos_sin,
)
from train_small.kernels.rmsnorm import add_rmsnorm_triton, rmsnorm_triton  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TOL = {torch.float32: 1e-5, torch.bfloat16: 3e-2}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, what: str) -> None:
    assert actual.shape == expected.shape, what
    assert actual.dtype == expected.dtype, (what, actual.dtype, expected.dtype)
    a, e = actual.float(), expected.float()
    scale = max(e.abs().max().item(), 1e-6)
    err = (a - e).abs().max().item()
    assert err <= TOL[dtype] * scale, f"{what}: max abs err {err:.3e} > {TOL[dtype]} x scale {scale:.3e}"


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(3, 5, 123), (2, 64), (1, 1, 257)])
def test_rmsnorm_matches_reference(dtype, shape):
    torch.manual_seed(0)
    x = torch.randn(shape, device=DEVICE, dtype=dtype) * 3
    w = (1 + 0.3 * torch.randn(shape[-1], device=DEVICE)).to(dtype)
    x1, w1, x2, w2 = _leaf(x), _leaf(w), _leaf(x), _leaf(w)
    y1, y2 = rmsnorm_triton(x1, w1, 1e-6), rmsnorm_ref(x2, w2, 1e-6)
    assert_close(y1, y2, dtype, "y")
    g = torch.randn_like(y2)
    y1.backward(g)
    y2.backward(g)
    assert_close(x1.grad, x2.grad, dtype, "dx")
    assert_close(w1.grad, w2.grad, dtype, "dw")


def test_rmsnorm_mixed_dtype_promotes_like_reference():
    """bf16 activations with an fp32 weight (autocast training) give fp32 output, as OpenELM's module does."""
    torch.manual_seed(1)
    x = torch.randn(4, 37, device=DEVICE, dtype=torch.bfloat16)
    w = 1 + 0.1 * torch.randn(37, device=DEVICE)
    y1, y2 = rmsnorm_triton(x, w), rmsnorm_ref(x, w)
    assert y1.dtype == y2.dtype == torch.float32
    assert_close(y1, y2, torch.bfloat16, "y")


def test_add_rmsnorm_model_case_bf16_out_matches_reference():
    """The model's norm under autocast: fp32 residual stream + bf16 branch output, fp32 weight, the output asked
    for in bf16 (one rounding of the fp32 product). Forward and every gradient against the reference: h (fp32) at
    fp32 tolerance, y and the gradients that passed through the bf16 output at bf16 tolerance."""
    torch.manual_seed(1)
    h = torch.randn(4, 9, 37, device=DEVICE)
    r = torch.randn(4, 9, 37, device=DEVICE, dtype=torch.bfloat16)
    w = 1 + 0.1 * torch.randn(37, device=DEVICE)
    gy, gh = torch.randn(4, 9, 37, device=DEVICE, dtype=torch.bfloat16), torch.randn(4, 9, 37, device=DEVICE)
    outs, leaves = [], []
    for fn in (add_rmsnorm_triton, add_rmsnorm_ref):
        p = [_leaf(t) for t in (h, r, w)]
        y, hh = fn(*p, 1e-6, torch.bfloat16)
        ((y.float() * gy.float()).sum() + (hh * gh).sum()).backward()
        outs.append((y, hh))
        leaves.append(p)
    (y1, h1), (y2, h2) = outs
    assert y1.dtype == y2.dtype == torch.bfloat16 and h1.dtype == h2.dtype == torch.float32
    assert_close(h1, h2, torch.float32, "h")
    assert_close(y1, y2, torch.bfloat16, "y bf16 out")
    for name, t1, t2 in zip(("dh (fp32 stream)", "dr (bf16 branch)", "dw"), *leaves):
        assert t1.grad.dtype == t2.grad.dtype, name
        assert_close(t1.grad, t2.grad, torch.bfloat16, name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("res_dtype", ["same", "bf16"])
def test_add_rmsnorm_matches_reference(dtype, res_dtype):
    torch.manual_seed(2)
    shape = (2, 7, 96)
    x = torch.randn(shape, device=DEVICE, dtype=dtype)
    r = torch.randn(shape, device=DEVICE, dtype=dtype if res_dtype == "same" else torch.bfloat16)
    w = (1 + 0.2 * torch.randn(shape[-1], device=DEVICE)).to(dtype)
    tol_dtype = torch.bfloat16 if torch.bfloat16 in (dtype, r.dtype) else torch.float32
    a = [_leaf(t) for t in (x, r, w)]
    b = [_leaf(t) for t in (x, r, w)]
    y1, h1 = add_rmsnorm_triton(*a)
    y2, h2 = add_rmsnorm_ref(*b)
    assert_close(h1, h2, tol_dtype, "h")
    assert_close(y1, y2, tol_dtype, "y")
    gy, gh = torch.randn_like(y2), torch.randn_like(h2)  # h feeds later layers: both outputs carry gradient
    ((y1 * gy).sum() + (h1 * gh).sum()).backward()
    ((y2 * gy).sum() + (h2 * gh).sum()).backward()
    for name, t1, t2 in zip(("dx", "dr", "dw"), a, b):
        assert t1.grad.dtype == t2.grad.dtype
        assert_close(t1.grad, t2.grad, tol_dtype, name)


def test_add_rmsnorm_without_residual_is_rmsnorm():
    x = torch.randn(3, 40, device=DEVICE)
    w = torch.rand(40, device=DEVICE)
    y, h = add_rmsnorm_triton(x, None, w)
    assert h is x
    assert_close(y, rmsnorm_ref(x, w), torch.float32, "y")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("bsz", "seq", "hq", "hkv", "hd"), [(2, 7, 4, 1, 16), (1, 13, 3, 3, 24)])
def test_qk_norm_rope_matches_reference(dtype, bsz, seq, hq, hkv, hd):
    """q and k are strided slices of the fused QKV projection, as in the model; v's gradient stays zero."""
    torch.manual_seed(3)
    cos, sin = rope_cos_sin(seq + 3, hd, device=DEVICE)
    qkv = torch.randn(bsz, seq, hq + 2 * hkv, hd, device=DEVICE, dtype=dtype) * 2
    wq = (1 + 0.2 * torch.randn(hd, device=DEVICE)).to(dtype)
    wk = (1 + 0.2 * torch.randn(hd, device=DEVICE)).to(dtype)
    outs, leaves = [], []
    for fn in (qk_norm_rope_triton, qk_norm_rope_ref):
        p = [_leaf(t) for t in (qkv, wq, wk)]
        q = fn(p[0][:, :, :hq], p[1], cos, sin, 1e-6)
        k = fn(p[0][:, :, hq : hq + hkv], p[2], cos, sin, 1e-6)
        outs.append((q, k))
        leaves.append(p)
    (q1, k1), (q2, k2) = outs
    assert q1.shape == (bsz, hq, seq, hd) and q1.is_contiguous()
    assert_close(q1, q2, dtype, "q")
    assert_close(k1, k2, dtype, "k")
    gq, gk = torch.randn_like(q2), torch.randn_like(k2)
    for q, k in outs:
        ((q.float() * gq.float()).sum() + (k.float() * gk.float()).sum()).backward()
    for name, t1, t2 in zip(("dqkv", "dwq", "dwk"), *leaves):
        assert_close(t1.grad, t2.grad, dtype, name)
    assert leaves[0][0].grad[:, :, hq + hkv :].abs().max() == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("use_v", [True, False])
@pytest.mark.parametrize("norm", [True, False])
def test_qkv_split_norm_rope_matches_reference(dtype, use_v, norm):
    """The model's op: one fused QKV tensor in, q/k normalised (OpenELM; ``norm=False``: MobileLLM, RoPE only)
    + rotated and v out; one dqkv buffer back (including when v, or k, receives no gradient)."""
    torch.manual_seed(7)
    bsz, seq, hq, hkv, hd = 2, 9, 6, 2, 16
    cos, sin = rope_cos_sin(seq, hd, device=DEVICE)
    qkv = torch.randn(bsz, seq, hq + 2 * hkv, hd, device=DEVICE, dtype=dtype)
    wq = 1 + 0.2 * torch.randn(hd, device=DEVICE)
    wk = 1 + 0.2 * torch.randn(hd, device=DEVICE)
    grads = [torch.randn(bsz, h, seq, hd, device=DEVICE) for h in (hq, hkv, hkv)]
    leaves, outs = [], []
    for fn in (qkv_norm_rope_triton, qkv_norm_rope_ref):
        p = [_leaf(t) for t in (qkv, wq, wk)]
        w1, w2 = (p[1], p[2]) if norm else (None, None)
        q, k, v = fn(p[0], hq, hkv, w1, w2, cos, sin, 1e-6, dtype)
        assert q.dtype == k.dtype == v.dtype == dtype
        assert q.shape == (bsz, hq, seq, hd) and k.shape == v.shape == (bsz, hkv, seq, hd)
        loss = (q.float() * grads[0]).sum() + ((v.float() * grads[2]).sum() if use_v else 0)
        if use_v:
            loss = loss + (k.float() * grads[1]).sum()
        loss.backward()
        leaves.append(p)
        outs.append((q, k, v))
    for name, a, b in zip("qkv", *outs):
        assert_close(a, b, dtype, name)
    if not norm:  # RoPE only: q and k are pure rotations of the input rows, so norms are preserved
        q_in = qkv[:, :, :hq].transpose(1, 2).float()
        torch.testing.assert_close(outs[0][0].float().norm(dim=-1), q_in.norm(dim=-1), rtol=2e-2, atol=1e-5)
    for name, t1, t2 in zip(("dqkv", "dwq", "dwk"), *leaves):
        if t2.grad is None:
            assert t1.grad is None or t1.grad.abs().max() == 0, name
        else:
            assert_close(t1.grad, t2.grad, dtype, name)


def test_qk_norm_rope_out_dtype():
    cos, sin = rope_cos_sin(5, 8, device=DEVICE)
    x = torch.randn(1, 5, 2, 8, device=DEVICE, dtype=torch.bfloat16)
    w = torch.ones(8, device=DEVICE)
    y1 = qk_norm_rope_triton(x, w, cos, sin, out_dtype=torch.bfloat16)
    y2 = qk_norm_rope_ref(x, w, cos, sin, out_dtype=torch.bfloat16)
    assert y1.dtype == y2.dtype == torch.bfloat16
    assert_close(y1, y2, torch.bfloat16, "y")
    with pytest.raises(ValueError):
        qk_norm_rope_triton(x, w, cos[:3], sin[:3])


def test_rope_reference_is_a_relative_rotation():
    """Independent check of the reference: rotate-half RoPE equals complex multiplication of (x_j, x_{j+D/2})
    by exp(i * pos * theta^(-2j/D)), so it preserves norms and q.k depends only on the position offset."""
    torch.manual_seed(4)
    d, seq = 16, 12
    cos, sin = rope_cos_sin(seq, d, theta=10000.0)
    x = torch.randn(1, 1, seq, d, dtype=torch.float64).float()
    got = apply_rope_ref(x, cos, sin)
    z = torch.complex(x[..., : d // 2].double(), x[..., d // 2 :].double())
    freq = torch.tensor([10000.0 ** (-2 * j / d) for j in range(d // 2)], dtype=torch.float64)
    ang = torch.arange(seq, dtype=torch.float64)[:, None] * freq[None]
    rot = z * torch.polar(torch.ones_like(ang), ang)
    want = torch.cat((rot.real, rot.imag), dim=-1).float()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    q, k = torch.randn(d), torch.randn(d)
    qs = apply_rope_ref(q.expand(1, 1, seq, d), cos, sin)[0, 0]
    ks = apply_rope_ref(k.expand(1, 1, seq, d), cos, sin)[0, 0]
    assert math.isclose(float(qs[7] @ ks[4]), float(qs[5] @ ks[2]), rel_tol=1e-4)
    torch.testing.assert_close(qs.norm(dim=-1), q.norm().expand(seq), rtol=1e-5, atol=1e-5)


def test_rmsnorm_reference_cast_order():
    """The reference rounds the normalised row to bf16 *before* the weight multiply (OpenELM's order)."""
    torch.manual_seed(5)
    x = torch.randn(64, 256, dtype=torch.bfloat16)
    w = (1 + torch.randn(256)).to(torch.bfloat16)
    xf = x.float()
    n = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)
    assert torch.equal(rmsnorm_ref(x, w), n.to(torch.bfloat16) * w)
    assert not torch.equal(rmsnorm_ref(x, w), (n * w.float()).to(torch.bfloat16))


@pytest.mark.parametrize("name", ["cpu-tiny", "mobilellm-tiny"])
def test_model_kernel_path_matches_reference_path(name):
    """The whole tiny model of each family: logits and every parameter gradient, kernels vs references (fp32)."""
    from train_small.configs import get_config
    from train_small.model import build_model, lm_loss

    torch.manual_seed(6)
    ref = build_model(get_config(name)).to(DEVICE)
    fused = build_model(get_config(name, use_kernels=True)).to(DEVICE)
    fused.load_state_dict(ref.state_dict())
    idx = torch.randint(0, 512, (2, 19), device=DEVICE)
    out = []
    for m in (ref, fused):
        logits = m(idx)
        lm_loss(logits, idx, 1e-4)[0].backward()
        out.append(logits)
    assert_close(out[1], out[0], torch.float32, "logits")
    for (name, p1), p2 in zip(ref.named_parameters(), fused.parameters()):
        torch.testing.assert_close(p2.grad, p1.grad, rtol=1e-4, atol=1e-6, msg=name)


gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("dim", [1280, 2048, 3072])
def test_gpu_rmsnorm_openelm_shapes(dim):
    torch.manual_seed(0)
    x = torch.randn(8, 2048, dim, device="cuda", dtype=torch.bfloat16)
    r = torch.randn_like(x)
    w = 1 + 0.1 * torch.randn(dim, device="cuda")
    a = [_leaf(t) for t in (x, r, w)]
    b = [_leaf(t) for t in (x, r, w)]
    (y1, h1), (y2, h2) = add_rmsnorm_triton(*a), add_rmsnorm_ref(*b)
    assert_close(y1, y2, torch.bfloat16, "y")
    assert_close(h1, h2, torch.bfloat16, "h")
    g, gh = torch.randn_like(y2), torch.randn_like(h2)
    ((y1 * g).sum() + (h1 * gh).sum()).backward()
    ((y2 * g).sum() + (h2 * gh).sum()).backward()
    for name, t1, t2 in zip(("dx", "dr", "dw"), a, b):
        assert_close(t1.grad, t2.grad, torch.bfloat16, name)


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize(("hq", "hkv", "hd"), [(20, 5, 64), (24, 6, 128)])
def test_gpu_qk_norm_rope_openelm_shapes(hq, hkv, hd):
    torch.manual_seed(0)
    cos, sin = rope_cos_sin(2048, hd, device="cuda")
    qkv = torch.randn(4, 2048, hq + 2 * hkv, hd, device="cuda", dtype=torch.bfloat16)
    w = 1 + 0.1 * torch.randn(hd, device="cuda")
    a, b = [_leaf(t) for t in (qkv, w)], [_leaf(t) for t in (qkv, w)]
    y1 = qk_norm_rope_triton(a[0][:, :, :hq], a[1], cos, sin, out_dtype=torch.bfloat16)
    y2 = qk_norm_rope_ref(b[0][:, :, :hq], b[1], cos, sin, out_dtype=torch.bfloat16)
    assert_close(y1, y2, torch.bfloat16, "q")
    g = torch.randn_like(y2)
    (y1.float() * g.float()).sum().backward()
    (y2.float() * g.float()).sum().backward()
    assert_close(a[0].grad, b[0].grad, torch.bfloat16, "dqkv")
    assert_close(a[1].grad, b[1].grad, torch.bfloat16, "dw")


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize(("hq", "hkv", "hd", "norm"), [(20, 5, 64, True), (24, 6, 128, True), (15, 5, 64, False)])
def test_gpu_qkv_norm_rope_model_op(hq, hkv, hd, norm):
    """The op the model runs: one fused QKV tensor (bf16, as the projection emits it under autocast) in, q/k
    normalised (OpenELM, GQA) or only rotated (MobileLLM-350M's 15/5 heads) and v out; the shared dqkv backward
    (q, k and v gradients written into one buffer) and both weight gradients against the reference."""
    torch.manual_seed(0)
    seq = 2048
    cos, sin = rope_cos_sin(seq, hd, device="cuda")
    qkv = torch.randn(4, seq, hq + 2 * hkv, hd, device="cuda", dtype=torch.bfloat16)
    wq = 1 + 0.1 * torch.randn(hd, device="cuda")
    wk = 1 + 0.1 * torch.randn(hd, device="cuda")
    grads = [torch.randn(4, h, seq, hd, device="cuda", dtype=torch.bfloat16) for h in (hq, hkv, hkv)]
    leaves, outs = [], []
    for fn in (qkv_norm_rope_triton, qkv_norm_rope_ref):
        p = [_leaf(t) for t in (qkv, wq, wk)]
        q, k, v = fn(p[0], hq, hkv, p[1] if norm else None, p[2] if norm else None, cos, sin, 1e-6, torch.bfloat16)
        torch.autograd.backward([q, k, v], grads)
        leaves.append(p)
        outs.append((q, k, v))
    for name, a, b in zip("qkv", *outs):
        assert_close(a, b, torch.bfloat16, name)
    assert_close(leaves[0][0].grad, leaves[1][0].grad, torch.bfloat16, "dqkv")
    if norm:
        for name, i in (("dwq", 1), ("dwk", 2)):
            assert_close(leaves[0][i].grad, leaves[1][i].grad, torch.bfloat16, name)


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("dim", [1280, 3072])
def test_gpu_add_rmsnorm_model_case(dim):
    """The model's norm at OpenELM widths: fp32 residual stream + bf16 branch, fp32 weight, bf16 output."""
    torch.manual_seed(0)
    h = torch.randn(8, 2048, dim, device="cuda")
    r = torch.randn(8, 2048, dim, device="cuda", dtype=torch.bfloat16)
    w = 1 + 0.1 * torch.randn(dim, device="cuda")
    gy = torch.randn(8, 2048, dim, device="cuda", dtype=torch.bfloat16)
    gh = torch.randn(8, 2048, dim, device="cuda")
    outs, leaves = [], []
    for fn in (add_rmsnorm_triton, add_rmsnorm_ref):
        p = [_leaf(t) for t in (h, r, w)]
        y, hh = fn(*p, 1e-6, torch.bfloat16)
        torch.autograd.backward([y, hh], [gy, gh])
        outs.append((y, hh))
        leaves.append(p)
    assert_close(outs[0][1], outs[1][1], torch.float32, "h")
    assert_close(outs[0][0], outs[1][0], torch.bfloat16, "y")
    for name, t1, t2 in zip(("dh", "dr", "dw"), *leaves):
        assert t1.grad.dtype == t2.grad.dtype, name
        assert_close(t1.grad, t2.grad, torch.bfloat16, name)


def _grad_report(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.float().flatten() for n, p in model.named_parameters()}


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("name", ["proxy-20m", "mobilellm-20m"])
def test_gpu_model_parity_under_autocast(name):
    """One training step of each family under bf16 autocast, kernel path vs reference path (same weights, same
    batch), attention forced to the flash backend (a fallback would raise): the losses agree to 2e-3 relative,
    and every parameter's gradient to 5e-2 in norm and 0.99 in cosine (bf16 rounding through 8-20 layers; the
    q/k-norm weights, sums of many bf16 products, move most: bench/train.py --parity)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from train_small.configs import get_config
    from train_small.model import build_model

    torch.manual_seed(0)
    ref = build_model(get_config(name)).cuda()
    fused = build_model(get_config(name, use_kernels=True)).cuda()
    fused.load_state_dict(ref.state_dict())
    idx = torch.randint(0, 32000, (4, 513), device="cuda")
    losses = []
    for m in (ref, fused):
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION), torch.autocast("cuda", dtype=torch.bfloat16):
            total, ce, _ = m(idx[:, :-1], idx[:, 1:], z_loss=1e-4)
            total.backward()
        losses.append(ce.item())
    assert abs(losses[1] - losses[0]) <= 2e-3 * losses[0], losses
    g_ref, g_fused = _grad_report(ref), _grad_report(fused)
    for pname, a in g_ref.items():
        b = g_fused[pname]
        assert abs(b.norm().item() - a.norm().item()) <= 5e-2 * a.norm().item(), pname
        assert torch.nn.functional.cosine_similarity(a, b, dim=0).item() >= 0.99, pname
