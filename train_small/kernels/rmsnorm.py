"""Triton RMSNorm and fused residual-add + RMSNorm, forward and backward.

Numerics match :func:`train_small.kernels.reference.rmsnorm_ref` (OpenELM's order): the row is normalised in
fp32, the normalised row is cast back to the input dtype, and only then multiplied by the weight; the output
dtype is ``promote(x.dtype, weight.dtype)``. The backward pass recomputes the normalised row from ``x`` and the
saved per-row ``rstd`` (one fp32 per row) instead of saving it, and treats the cast as identity (as autograd
does). Weight gradients are accumulated in fp32 per program and summed on the host in a fixed order, so the
result is deterministic (no atomics).

Each direction is a ``torch.library.custom_op`` (``train_small::rmsnorm_fwd``, ``add_rmsnorm_fwd``,
``rmsnorm_bwd``) with a fake implementation, and the forward ops have their backward registered with
``register_autograd``: ``torch.compile(fullgraph=True)`` traces a model built on them without graph breaks, and
AOTAutograd's partitioner sees ordinary ops (the kernels themselves stay opaque, launched eagerly). The backward
grid is one full wave of resident programs (:mod:`train_small.kernels._launch`).

Layout follows Liger-Kernel's ``ops/rms_norm.py`` idea (private ``@triton.jit`` kernels, host launchers that
flatten to 2-D, a thin autograd layer); the code is our own.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from train_small.kernels._launch import full_wave_programs

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


def _bwd_warps(block: int) -> int:
    """Warps of the backward: 16 from 2,048 columns on. ptxas (sm_90a, Triton 3.9; ``python bench/kernels.py
    --ptxas``) reports 40 registers at d = 1280 / 2048 and 64 at d = 3072 with 16 warps (3 / 2 programs per SM),
    against 71 and 142 with the forward's 8 warps (3 / 1 programs of 8 warps per SM)."""
    return 4 if block < 1024 else 8 if block < 2048 else 16


def _out_dtype(x_dtype: torch.dtype, weight_dtype: torch.dtype, out_dtype: torch.dtype | None) -> torch.dtype:
    return out_dtype if out_dtype is not None else torch.promote_types(x_dtype, weight_dtype)


def _fwd(x2, res2, weight, eps, out_dtype):
    """Host launcher: ``x2 (M, N)`` (+ ``res2``) -> ``(y, h or None, rstd)``. Rows must be unit-stride: a compiler
    may hand the op other strides than eager did, so anything else is copied first (a no-op in eager)."""
    x2, weight = x2.contiguous(), weight.contiguous()
    res2 = res2.contiguous() if res2 is not None else None
    m, n = x2.shape
    h = None
    if res2 is not None:
        h = torch.empty((m, n), dtype=torch.promote_types(x2.dtype, res2.dtype), device=x2.device)
    y = torch.empty((m, n), dtype=_out_dtype(h.dtype if h is not None else x2.dtype, weight.dtype, out_dtype),
                    device=x2.device)
    rstd = torch.empty(m, dtype=torch.float32, device=x2.device)
    if m == 0:
        return y, h, rstd
    block, warps = _settings(n)
    _rmsnorm_fwd_kernel[(m,)](
        x2, res2 if res2 is not None else x2, h if h is not None else y, y, weight, rstd,
        x2.stride(0), res2.stride(0) if res2 is not None else 0, h.stride(0) if h is not None else 0, y.stride(0),
        n, eps, HAS_RES=res2 is not None, BLOCK_N=block, num_warps=warps,
    )
    return y, h, rstd


def _bwd(dy2, x2, weight, rstd, dh2=None, programs: int | None = None):
    """Host launcher of the backward: ``dx`` (``x2``'s dtype, plus ``dh2`` when given) and ``dw`` (weight dtype).

    ``programs`` overrides the grid (one full wave on the GPU by default; tests run the GPU's grid on CPU)."""
    dy2, x2, weight = dy2.contiguous(), x2.contiguous(), weight.contiguous()
    dh2 = dh2.contiguous() if dh2 is not None else None
    m, n = x2.shape
    dx = torch.empty_like(x2)
    if m == 0:
        return dx, torch.zeros_like(weight)
    block, _ = _settings(n)
    meta = {"HAS_DH": dh2 is not None, "BLOCK_N": block, "num_warps": _bwd_warps(block)}

    def args(progs, rows_per_prog, dw_part):
        return (dy2, x2, weight, rstd, dx, dh2 if dh2 is not None else dy2, dw_part,
                dy2.stride(0), x2.stride(0), dx.stride(0), dh2.stride(0) if dh2 is not None else 0,
                m, n, rows_per_prog)

    if programs is None:
        programs = full_wave_programs(_rmsnorm_bwd_kernel, args(1, m, rstd), meta, x2.device)  # rstd: an fp32 stand-in
    progs = max(1, min(m, programs))
    rows_per_prog = triton.cdiv(m, progs)
    progs = triton.cdiv(m, rows_per_prog)
    dw_part = torch.empty((progs, n), dtype=torch.float32, device=x2.device)  # every program writes its row
    _rmsnorm_bwd_kernel[(progs,)](*args(progs, rows_per_prog, dw_part), **meta)
    return dx, dw_part.sum(0).to(weight.dtype)


# ------------------------------------------------------------------------------------------ ops and autograd


@torch.library.custom_op("train_small::rmsnorm_fwd", mutates_args=())
def _rmsnorm_fwd_op(x: torch.Tensor, weight: torch.Tensor, eps: float, out_dtype: torch.dtype | None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """``x (M, N)`` contiguous -> ``(y (M, N), rstd (M,) fp32)``."""
    y, _, rstd = _fwd(x, None, weight, eps, out_dtype)
    return y, rstd


@_rmsnorm_fwd_op.register_fake
def _(x, weight, eps, out_dtype):
    return (x.new_empty(x.shape, dtype=_out_dtype(x.dtype, weight.dtype, out_dtype)),
            x.new_empty(x.shape[:1], dtype=torch.float32))


@torch.library.custom_op("train_small::add_rmsnorm_fwd", mutates_args=())
def _add_rmsnorm_fwd_op(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float,
                        out_dtype: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x, residual (M, N)`` contiguous -> ``(y, h = x + residual, rstd (M,) fp32)``."""
    return _fwd(x, residual, weight, eps, out_dtype)


@_add_rmsnorm_fwd_op.register_fake
def _(x, residual, weight, eps, out_dtype):
    h_dtype = torch.promote_types(x.dtype, residual.dtype)
    return (x.new_empty(x.shape, dtype=_out_dtype(h_dtype, weight.dtype, out_dtype)),
            x.new_empty(x.shape, dtype=h_dtype), x.new_empty(x.shape[:1], dtype=torch.float32))


@torch.library.custom_op("train_small::rmsnorm_bwd", mutates_args=())
def _rmsnorm_bwd_op(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, rstd: torch.Tensor,
                    dh: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of ``rmsnorm(x)`` for ``dy`` (plus ``dh``, a gradient reaching ``x`` directly): ``(dx, dw)``."""
    return _bwd(dy, x, weight, rstd, dh)


@_rmsnorm_bwd_op.register_fake
def _(dy, x, weight, rstd, dh):
    return torch.empty_like(x), torch.empty_like(weight)


def _rmsnorm_setup(ctx, inputs, output):
    x, weight, _eps, _out_dtype = inputs
    ctx.save_for_backward(x, weight, output[1])
    ctx.mark_non_differentiable(output[1])


def _rmsnorm_backward(ctx, dy, _drstd):
    x, weight, rstd = ctx.saved_tensors
    dx, dw = _rmsnorm_bwd_op(dy, x, weight, rstd, None)
    return dx, dw, None, None


_rmsnorm_fwd_op.register_autograd(_rmsnorm_backward, setup_context=_rmsnorm_setup)


def _add_rmsnorm_setup(ctx, inputs, output):
    x, residual, weight, _eps, _out_dtype = inputs
    _y, h, rstd = output
    ctx.save_for_backward(h, weight, rstd)
    ctx.dtypes = (x.dtype, residual.dtype)
    ctx.mark_non_differentiable(rstd)
    ctx.set_materialize_grads(False)  # h is often unused (the final norm): no zero-filled gradient for it


def _add_rmsnorm_backward(ctx, dy, dh, _drstd):
    h, weight, rstd = ctx.saved_tensors
    if dy is None:  # only h was used: the gradient passes straight through the add
        return dh.to(ctx.dtypes[0]), dh.to(ctx.dtypes[1]), None, None, None
    # dx of the norm plus the gradient flowing into h from later layers, written in h's dtype.
    dsum, dw = _rmsnorm_bwd_op(dy, h, weight, rstd, dh)
    return dsum.to(ctx.dtypes[0]), dsum.to(ctx.dtypes[1]), dw, None, None


_add_rmsnorm_fwd_op.register_autograd(_add_rmsnorm_backward, setup_context=_add_rmsnorm_setup)


def rmsnorm_triton(
    x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6, out_dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Fused RMSNorm over the last dimension (forward + backward in Triton); matches ``rmsnorm_ref``.

    ``out_dtype`` defaults to ``promote(x.dtype, weight.dtype)``; under autocast the model passes the autocast
    dtype, which saves writing an fp32 row that the next matmul would cast anyway.
    """
    shape = x.shape
    y, _ = _rmsnorm_fwd_op(x.reshape(-1, shape[-1]).contiguous(), weight.contiguous(), float(eps), out_dtype)
    return y.view(shape)


def add_rmsnorm_triton(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    weight: torch.Tensor,
    eps: float = 1e-6,
    out_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused ``h = x + residual; y = rmsnorm(h)``; returns ``(y, h)``. ``residual=None`` is a plain RMSNorm."""
    if residual is None:
        return rmsnorm_triton(x, weight, eps, out_dtype), x
    if residual.shape != x.shape:
        raise ValueError(f"residual shape {tuple(residual.shape)} != x shape {tuple(x.shape)}")
    shape = x.shape
    y, h, _ = _add_rmsnorm_fwd_op(x.reshape(-1, shape[-1]).contiguous(), residual.reshape(-1, shape[-1]).contiguous(),
                                  weight.contiguous(), float(eps), out_dtype)
    return y.view(shape), h.view(shape)
