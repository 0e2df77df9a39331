"""Triton RMSNorm and fused residual-add + RMSNorm, forward and backward.

Numerics match :func:`train_small.kernels.reference.rmsnorm_ref` (OpenELM's order): the row is normalised in
fp32, the normalised row is cast back to the input dtype, and only then multiplied by the weight; the output
dtype is ``promote(x.dtype, weight.dtype)``. The backward pass recomputes the normalised row from ``x`` and the
saved per-row ``rstd`` (one fp32 per row) instead of saving it, and treats the cast as identity (as autograd
does). Weight gradients are accumulated in fp32 per program and summed on the host in a fixed order, so the
result is deterministic (no atomics).

Layout follows Liger-Kernel's ``ops/rms_norm.py`` idea (private ``@triton.jit`` kernels, host launchers that
flatten to 2-D, a thin ``autograd.Function``); the code is our own.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["rmsnorm_triton", "add_rmsnorm_triton"]


@triton.jit
def _rmsnorm_fwd_kernel(
    X, R, H, Y, W, RSTD,
    stride_x, stride_r, stride_h, stride_y,
    N, eps,
    HAS_RES: tl.constexpr, BLOCK_N: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    x = tl.load(X + row * stride_x + cols, mask=mask, other=0.0)
    if HAS_RES:
        r = tl.load(R + row * stride_r + cols, mask=mask, other=0.0)
        # The add happens in fp32 and is rounded once to h's dtype, as torch does for x + r.
        x = (x.to(tl.float32) + r.to(tl.float32)).to(H.dtype.element_ty)
        tl.store(H + row * stride_h + cols, x, mask=mask)
    xf = x.to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(xf * xf, axis=0) / N + eps)
    # Cast order of the reference: normalise in fp32, cast to the input dtype, then scale by the weight.
    normed = (xf * rstd).to(x.dtype).to(tl.float32)
    w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(Y + row * stride_y + cols, (normed * w).to(Y.dtype.element_ty), mask=mask)
    tl.store(RSTD + row, rstd)


@triton.jit
def _rmsnorm_bwd_kernel(
    DY, X, W, RSTD, DX, DH, DW_PART,
    stride_dy, stride_x, stride_dx, stride_dh,
    n_rows, N, rows_per_prog,
    HAS_DH: tl.constexpr, BLOCK_N: tl.constexpr,
):
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    dw_acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
    row_start = pid * rows_per_prog
    row_end = tl.minimum(row_start + rows_per_prog, n_rows)
    for row in range(row_start, row_end):
        row64 = tl.cast(row, tl.int64)
        x = tl.load(X + row64 * stride_x + cols, mask=mask, other=0.0)
        rstd = tl.load(RSTD + row64)
        dy = tl.load(DY + row64 * stride_dy + cols, mask=mask, other=0.0).to(tl.float32)
        normed = x.to(tl.float32) * rstd
        dw_acc += dy * normed.to(x.dtype).to(tl.float32)
        dn = dy * w
        # d/dx of x * rsqrt(mean(x^2) + eps): rstd * (dn - n * mean(dn * n)).
        dx = rstd * (dn - normed * (tl.sum(dn * normed, axis=0) / N))
        if HAS_DH:
            dx += tl.load(DH + row64 * stride_dh + cols, mask=mask, other=0.0).to(tl.float32)
        tl.store(DX + row64 * stride_dx + cols, dx.to(DX.dtype.element_ty), mask=mask)
    tl.store(DW_PART + pid * N + cols, dw_acc, mask=mask)


def _settings(n: int) -> tuple[int, int]:
    block = triton.next_power_of_2(n)
    if block > 65536:
        raise ValueError(f"RMSNorm row of {n} elements exceeds the kernel's block limit")
    warps = 4 if block < 2048 else 8 if block < 8192 else 16
    return block, warps


def _max_programs(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count * 4
    return 4  # TRITON_INTERPRET=1 on CPU: few programs keep the interpreter fast.


def _fwd(x2: torch.Tensor, res2: torch.Tensor | None, weight: torch.Tensor, eps: float, out_dtype=None):
    m, n = x2.shape
    h = None
    if res2 is not None:
        h = torch.empty((m, n), dtype=torch.promote_types(x2.dtype, res2.dtype), device=x2.device)
    if out_dtype is None:
        out_dtype = torch.promote_types(h.dtype if h is not None else x2.dtype, weight.dtype)
    y = torch.empty((m, n), dtype=out_dtype, device=x2.device)
    rstd = torch.empty(m, dtype=torch.float32, device=x2.device)
    block, warps = _settings(n)
    _rmsnorm_fwd_kernel[(m,)](
        x2, res2 if res2 is not None else x2, h if h is not None else y, y, weight, rstd,
        x2.stride(0), res2.stride(0) if res2 is not None else 0, h.stride(0) if h is not None else 0, y.stride(0),
        n, eps, HAS_RES=res2 is not None, BLOCK_N=block, num_warps=warps,
    )
    return y, h, rstd


def _bwd(dy2, x2, weight, rstd, dh2=None):
    m, n = x2.shape
    dx = torch.empty_like(x2)
    block, warps = _settings(n)
    progs = max(1, min(m, _max_programs(x2.device)))
    rows_per_prog = triton.cdiv(m, progs)
    progs = triton.cdiv(m, rows_per_prog) if m else 1
    dw_part = torch.zeros((progs, n), dtype=torch.float32, device=x2.device)
    _rmsnorm_bwd_kernel[(progs,)](
        dy2, x2, weight, rstd, dx, dh2 if dh2 is not None else dy2, dw_part,
        dy2.stride(0), x2.stride(0), dx.stride(0), dh2.stride(0) if dh2 is not None else 0,
        m, n, rows_per_prog, HAS_DH=dh2 is not None, BLOCK_N=block, num_warps=warps,
    )
    return dx, dw_part.sum(0).to(weight.dtype)


class _RMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float, out_dtype) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]).contiguous()
        y, _, rstd = _fwd(x2, None, weight.contiguous(), eps, out_dtype)
        ctx.save_for_backward(x2, weight, rstd)
        return y.view(shape)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x2, weight, rstd = ctx.saved_tensors
        dx, dw = _bwd(dy.reshape(x2.shape).contiguous(), x2, weight.contiguous(), rstd)
        return dx.view(dy.shape), dw, None, None


class _AddRMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, res: torch.Tensor, weight: torch.Tensor, eps: float, out_dtype):
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]).contiguous()
        r2 = res.reshape(-1, shape[-1]).contiguous()
        y, h, rstd = _fwd(x2, r2, weight.contiguous(), eps, out_dtype)
        ctx.save_for_backward(h, weight, rstd)
        ctx.set_materialize_grads(False)  # h is often unused (the final norm): skip a zero-filled gradient
        ctx.dtypes = (x.dtype, res.dtype)
        return y.view(shape), h.view(shape)

    @staticmethod
    def backward(ctx, dy: torch.Tensor, dh: torch.Tensor):
        h2, weight, rstd = ctx.saved_tensors
        dh2 = None if dh is None else dh.reshape(h2.shape).contiguous()
        # dx of the norm plus the gradient flowing into h from later layers, written in h's dtype.
        dsum, dw = _bwd(dy.reshape(h2.shape).contiguous(), h2, weight.contiguous(), rstd, dh2)
        dsum = dsum.view(dy.shape)
        return dsum.to(ctx.dtypes[0]), dsum.to(ctx.dtypes[1]), dw, None, None


def rmsnorm_triton(
    x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6, out_dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Fused RMSNorm over the last dimension (forward + backward in Triton); matches ``rmsnorm_ref``.

    ``out_dtype`` defaults to ``promote(x.dtype, weight.dtype)``; under autocast the model passes the autocast
    dtype, which saves writing an fp32 row that the next matmul would cast anyway.
    """
    return _RMSNorm.apply(x, weight, eps, out_dtype)


def add_rmsnorm_triton(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    weight: torch.Tensor,
    eps: float = 1e-6,
    out_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused ``h = x + residual; y = rmsnorm(h)``; returns ``(y, h)``. ``residual=None`` is a plain RMSNorm."""
    if residual is None:
        return _RMSNorm.apply(x, weight, eps, out_dtype), x
    if residual.shape != x.shape:
        raise ValueError(f"residual shape {tuple(residual.shape)} != x shape {tuple(x.shape)}")
    return _AddRMSNorm.apply(x, residual, weight, eps, out_dtype)
