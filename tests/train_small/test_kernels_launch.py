"""The kernels at the GPU's own launch settings, and the grid arithmetic behind them.

On CPU the kernels run in Triton's interpreter (conftest sets TRITON_INTERPRET=1), where the default grids are
small to keep it fast; here the backward kernels run with the grid an H100 gets (132 SMs x 4 = 528 programs,
each reducing its own slice of the weight gradient) on shapes that give every program its rows, and the results
must match the references at fp32 tolerance. On CUDA the same tests run with the real automatic settings.
"""

from __future__ import annotations

import pytest
import torch

triton = pytest.importorskip("triton")

from train_small.kernels import _launch  # noqa: E402
from train_small.kernels.qk_norm_rope import _backward as qk_backward  # noqa: E402
from train_small.kernels.qk_norm_rope import qk_settings  # noqa: E402
from train_small.kernels.reference import qk_norm_rope_ref, rmsnorm_ref, rope_cos_sin  # noqa: E402
from train_small.kernels.rmsnorm import _bwd as rmsnorm_bwd  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
H100_PROGRAMS = 132 * 4


def _grid(programs: int) -> int | None:
    """The requested grid on CPU; on CUDA None (the automatic one-wave grid, which is what runs there)."""
    return None if DEVICE == "cuda" else programs


def test_rmsnorm_backward_at_h100_grid():
    """OpenELM-270M's width (1,280: BLOCK_N 2,048, 16 warps) with 528 programs of one row each."""
    torch.manual_seed(0)
    m, n = H100_PROGRAMS, 1280
    x = torch.randn(m, n, device=DEVICE) * 2
    w = 1 + 0.2 * torch.randn(n, device=DEVICE)
    dy, dh = torch.randn(m, n, device=DEVICE), torch.randn(m, n, device=DEVICE)
    rstd = torch.rsqrt(x.pow(2).mean(-1) + 1e-6)  # the forward's saved statistic (its kernel is tested elsewhere)
    dx, dw = rmsnorm_bwd(dy, x, w, rstd, dh, programs=_grid(H100_PROGRAMS))
    xr, wr = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    rmsnorm_ref(xr, wr, 1e-6).backward(dy)
    torch.testing.assert_close(dx, xr.grad + dh, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dw, wr.grad, rtol=1e-5, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("hd", [64, 128])
def test_qk_backward_at_h100_grid(hd):
    """q/k norm + RoPE backward with 528 programs, each looping over its head-row tiles (the model's strided q
    slice of a fused QKV tensor), against the reference's gradients."""
    torch.manual_seed(1)
    block_m, _ = qk_settings(hd // 2)
    heads, bsz = 12, 1
    seq = H100_PROGRAMS * block_m // heads  # exactly one tile per program
    assert seq * heads == H100_PROGRAMS * block_m
    cos, sin = rope_cos_sin(seq, hd, device=DEVICE)
    qkv = torch.randn(bsz, seq, heads + 2 * 4, hd, device=DEVICE)
    w = 1 + 0.2 * torch.randn(hd, device=DEVICE)
    x = qkv[:, :, :heads]
    xf = x.float()
    rstd = torch.rsqrt(xf.pow(2).mean(-1) + 1e-6).reshape(-1)  # (B*T*H,): the forward's saved statistic
    g = torch.randn(bsz, heads, seq, hd, device=DEVICE)
    dqkv = torch.zeros_like(qkv)
    dw = qk_backward(g, x, w, cos, sin, rstd, dqkv[:, :, :heads], programs=_grid(H100_PROGRAMS))
    xr, wr = qkv.clone().requires_grad_(True), w.clone().requires_grad_(True)
    qk_norm_rope_ref(xr[:, :, :heads], wr, cos, sin, 1e-6).backward(g)
    torch.testing.assert_close(dqkv, xr.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dw, wr.grad, rtol=1e-5, atol=1e-4)


def test_resident_ctas_is_the_tightest_sm_limit():
    """H100 per-SM limits (65,536 registers, 64 warps, 228 KiB shared, 32 CTAs): the count the one-wave grid uses,
    with registers rounded up to the allocation unit (8 per thread)."""
    assert _launch.resident_ctas(50, 16, 0) == 2  # 56 regs x 512 threads = 28,672 -> 2 (registers)
    assert _launch.resident_ctas(128, 16, 0) == 1  # the old cross-entropy setting: one CTA per SM
    assert _launch.resident_ctas(32, 4, 0) == 16  # warps: 64 / 4
    assert _launch.resident_ctas(16, 1, 0) == 32  # the CTA slots
    assert _launch.resident_ctas(40, 4, 100 * 1024) == 2  # shared memory
    assert _launch.resident_ctas(255, 32, 0) == 1  # never 0


def test_full_wave_programs_off_gpu_is_small():
    assert _launch.full_wave_programs(None, (), {}, torch.device("cpu")) == _launch.CPU_PROGRAMS
