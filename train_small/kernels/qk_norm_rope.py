"""Triton fused per-head RMSNorm + RoPE for queries and keys, forward and backward.

One kernel replaces OpenELM's ``q_norm``/``k_norm`` -> ``RotaryEmbedding`` -> transpose chain: it reads the
strided ``(B, T, H, D)`` head slice straight out of the fused QKV projection, normalises each head row in fp32
(cast back to the input dtype before the weight, as in :func:`reference.rmsnorm_ref`), applies rotate-half
RoPE in fp32 with precomputed fp32 ``cos``/``sin`` tables, and writes ``(B, H, T, D)`` contiguous, the layout
``scaled_dot_product_attention`` wants. The backward applies the inverse rotation, then the RMSNorm backward,
recomputing the normalised row from ``x`` and the saved per-row ``rstd``. Weight gradients are reduced per
program in fp32 and summed on the host (deterministic).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["qk_norm_rope_triton", "qkv_norm_rope_triton"]


@triton.jit
def _qk_fwd_kernel(
    X, W, COS, SIN, Y, RSTD,
    n_rows, T, H, sxb, sxt, sxh, HALF, eps,
    NORM: tl.constexpr, ROUND_TO_W: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_H: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = rows < n_rows
    rows64 = rows.to(tl.int64)
    b = rows64 // (T * H)
    t = (rows64 // H) % T
    h = rows64 % H
    cols = tl.arange(0, BLOCK_H)
    m2 = rmask[:, None] & (cols < HALF)[None, :]
    xoff = (b * sxb + t * sxt + h * sxh)[:, None] + cols[None, :]
    x1 = tl.load(X + xoff, mask=m2, other=0.0)
    x2 = tl.load(X + xoff + HALF, mask=m2, other=0.0)
    x1f = x1.to(tl.float32)
    x2f = x2.to(tl.float32)
    if NORM:
        rstd = 1.0 / tl.sqrt((tl.sum(x1f * x1f, axis=1) + tl.sum(x2f * x2f, axis=1)) / (2 * HALF) + eps)
        w1 = tl.load(W + cols, mask=cols < HALF, other=0.0)
        w2 = tl.load(W + HALF + cols, mask=cols < HALF, other=0.0)
        # Reference order: fp32 normalise -> cast to x's dtype -> multiply by the weight (in promote(x, w)).
        y1 = (x1f * rstd[:, None]).to(x1.dtype).to(tl.float32) * w1.to(tl.float32)[None, :]
        y2 = (x2f * rstd[:, None]).to(x1.dtype).to(tl.float32) * w2.to(tl.float32)[None, :]
        if ROUND_TO_W:  # promote(x, w) is w's dtype (e.g. both bf16): the product is rounded there.
            y1 = y1.to(w1.dtype).to(tl.float32)
            y2 = y2.to(w1.dtype).to(tl.float32)
        tl.store(RSTD + rows64, rstd, mask=rmask)
    else:  # RoPE only (no q/k norm): rotate the input row itself
        y1 = x1f
        y2 = x2f
    tc = (t * HALF)[:, None] + cols[None, :]
    c = tl.load(COS + tc, mask=m2, other=0.0)
    s = tl.load(SIN + tc, mask=m2, other=0.0)
    yoff = (((b * H + h) * T + t) * (2 * HALF))[:, None] + cols[None, :]
    o1 = y1 * c - y2 * s
    o2 = y2 * c + y1 * s
    if not NORM:  # the reference rounds the rotated row to the input dtype first
        o1 = o1.to(x1.dtype)
        o2 = o2.to(x1.dtype)
    tl.store(Y + yoff, o1.to(Y.dtype.element_ty), mask=m2)
    tl.store(Y + yoff + HALF, o2.to(Y.dtype.element_ty), mask=m2)


@triton.jit
def _qk_bwd_kernel(
    DO, X, W, COS, SIN, RSTD, DX, DW_PART,
    n_rows, T, H, sxb, sxt, sxh, sdb, sdt, sdh, HALF, rows_per_prog,
    NORM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_H: tl.constexpr,
):
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_H)
    cmask = cols < HALF
    if NORM:
        w1 = tl.load(W + cols, mask=cmask, other=0.0).to(tl.float32)
        w2 = tl.load(W + HALF + cols, mask=cmask, other=0.0).to(tl.float32)
    dw1 = tl.zeros((BLOCK_H,), dtype=tl.float32)
    dw2 = tl.zeros((BLOCK_H,), dtype=tl.float32)
    row_start = pid * rows_per_prog
    row_end = tl.minimum(row_start + rows_per_prog, n_rows)
    for start in range(row_start, row_end, BLOCK_M):
        rows = start + tl.arange(0, BLOCK_M)
        rmask = rows < row_end
        rows64 = rows.to(tl.int64)
        b = rows64 // (T * H)
        t = (rows64 // H) % T
        h = rows64 % H
        m2 = rmask[:, None] & cmask[None, :]
        tc = (t * HALF)[:, None] + cols[None, :]
        c = tl.load(COS + tc, mask=m2, other=0.0)
        s = tl.load(SIN + tc, mask=m2, other=0.0)
        ooff = (((b * H + h) * T + t) * (2 * HALF))[:, None] + cols[None, :]
        do1 = tl.load(DO + ooff, mask=m2, other=0.0).to(tl.float32)
        do2 = tl.load(DO + ooff + HALF, mask=m2, other=0.0).to(tl.float32)
        # Inverse (transposed) rotation gives the gradient of the normalised, weighted row.
        dy1 = do1 * c + do2 * s
        dy2 = do2 * c - do1 * s
        dxoff = (b * sdb + t * sdt + h * sdh)[:, None] + cols[None, :]
        if NORM:
            xoff = (b * sxb + t * sxt + h * sxh)[:, None] + cols[None, :]
            x1 = tl.load(X + xoff, mask=m2, other=0.0)
            n1 = x1.to(tl.float32)
            n2 = tl.load(X + xoff + HALF, mask=m2, other=0.0).to(tl.float32)
            rstd = tl.load(RSTD + rows64, mask=rmask, other=0.0)
            n1 = n1 * rstd[:, None]
            n2 = n2 * rstd[:, None]
            dw1 += tl.sum(dy1 * n1.to(x1.dtype).to(tl.float32), axis=0)
            dw2 += tl.sum(dy2 * n2.to(x1.dtype).to(tl.float32), axis=0)
            dn1 = dy1 * w1[None, :]
            dn2 = dy2 * w2[None, :]
            dot = (tl.sum(dn1 * n1, axis=1) + tl.sum(dn2 * n2, axis=1)) / (2 * HALF)
            dy1 = rstd[:, None] * (dn1 - n1 * dot[:, None])
            dy2 = rstd[:, None] * (dn2 - n2 * dot[:, None])
        tl.store(DX + dxoff, dy1.to(DX.dtype.element_ty), mask=m2)
        tl.store(DX + dxoff + HALF, dy2.to(DX.dtype.element_ty), mask=m2)
    if NORM:
        tl.store(DW_PART + pid * (2 * HALF) + cols, dw1, mask=cmask)
        tl.store(DW_PART + pid * (2 * HALF) + HALF + cols, dw2, mask=cmask)


def _block_m(half: int) -> int:
    return max(1, min(64, 4096 // triton.next_power_of_2(half)))


def _forward(x, weight, cos, sin, eps, out_dtype):
    """``x (B, T, H, D)`` strided view -> ``(y (B, H, T, D) contiguous, rstd (B*T*H,) fp32)``.

    ``weight=None``: RoPE only, no norm (``rstd`` is then an empty placeholder)."""
    bsz, seq, heads, dim = x.shape
    half = dim // 2
    n_rows = bsz * seq * heads
    norm = weight is not None
    y = torch.empty((bsz, heads, seq, dim), dtype=out_dtype, device=x.device)
    rstd = torch.empty(n_rows if norm else 1, dtype=torch.float32, device=x.device)
    block_m = _block_m(half)
    pdtype = torch.promote_types(x.dtype, weight.dtype) if norm else x.dtype
    _qk_fwd_kernel[(triton.cdiv(n_rows, block_m),)](
        x, weight if norm else x, cos, sin, y, rstd,
        n_rows, seq, heads, x.stride(0), x.stride(1), x.stride(2), half, eps,
        NORM=norm, ROUND_TO_W=norm and pdtype == weight.dtype and weight.dtype != torch.float32,
        BLOCK_M=block_m, BLOCK_H=triton.next_power_of_2(half), num_warps=4,
    )
    return y, rstd


def _backward(dy, x, weight, cos, sin, rstd, dx):
    """Writes the input gradient into ``dx`` (a ``(B, T, H, D)`` view, any strides); returns the weight gradient
    (None when ``weight`` is None: RoPE only)."""
    bsz, seq, heads, dim = x.shape
    half = dim // 2
    n_rows = bsz * seq * heads
    dy = dy.contiguous()
    block_m = _block_m(half)
    max_progs = torch.cuda.get_device_properties(x.device).multi_processor_count * 4 if x.is_cuda else 4
    blocks = triton.cdiv(n_rows, block_m)
    rows_per_prog = triton.cdiv(blocks, max(1, min(blocks, max_progs))) * block_m
    progs = max(1, triton.cdiv(n_rows, rows_per_prog))
    norm = weight is not None
    dw_part = torch.zeros((progs, dim) if norm else (1, 1), dtype=torch.float32, device=x.device)
    _qk_bwd_kernel[(progs,)](
        dy, x, weight if norm else x, cos, sin, rstd, dx, dw_part,
        n_rows, seq, heads, x.stride(0), x.stride(1), x.stride(2), dx.stride(0), dx.stride(1), dx.stride(2),
        half, rows_per_prog, NORM=norm, BLOCK_M=block_m, BLOCK_H=triton.next_power_of_2(half), num_warps=4,
    )
    return dw_part.sum(0).to(weight.dtype) if norm else None


class _QKNormRope(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, cos, sin, eps, out_dtype):
        if x.stride(-1) != 1:
            x = x.contiguous()
        y, rstd = _forward(x, weight, cos, sin, eps, out_dtype)
        ctx.save_for_backward(x, weight, cos, sin, rstd)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, cos, sin, rstd = ctx.saved_tensors
        dx = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        dw = _backward(dy, x, weight, cos, sin, rstd, dx)
        return dx, dw, None, None, None, None


class _QKVNormRope(torch.autograd.Function):
    """Split a fused QKV projection into q, k (normalised + rotated) and v, all ``(B, H, T, D)`` contiguous.

    The backward writes dq, dk and dv straight into one ``dqkv`` buffer, instead of autograd's zero-filled
    full-size gradient per slice.
    """

    @staticmethod
    def forward(ctx, qkv, wq, wk, cos, sin, nq, nkv, eps, out_dtype):
        q_in, k_in, v_in = qkv[:, :, :nq], qkv[:, :, nq : nq + nkv], qkv[:, :, nq + nkv :]
        q, rq = _forward(q_in, wq, cos, sin, eps, out_dtype)
        k, rk = _forward(k_in, wk, cos, sin, eps, out_dtype)
        v = torch.empty(k.shape, dtype=out_dtype, device=qkv.device)
        v.copy_(v_in.transpose(1, 2))
        ctx.save_for_backward(qkv, wq, wk, cos, sin, rq, rk)
        ctx.split = (nq, nkv)
        ctx.set_materialize_grads(False)
        return q, k, v

    @staticmethod
    def backward(ctx, dq, dk, dv):
        qkv, wq, wk, cos, sin, rq, rk = ctx.saved_tensors
        nq, nkv = ctx.split
        dqkv = torch.empty_like(qkv)
        parts = ((0, nq, dq, wq, rq), (nq, nq + nkv, dk, wk, rk))
        dws = []
        for lo, hi, d, w, r in parts:
            if d is None:
                dqkv[:, :, lo:hi].zero_()
                dws.append(None)
            else:
                dws.append(_backward(d, qkv[:, :, lo:hi], w, cos, sin, r, dqkv[:, :, lo:hi]))
        if dv is None:
            dqkv[:, :, nq + nkv :].zero_()
        else:
            dqkv[:, :, nq + nkv :].copy_(dv.transpose(1, 2))
        return dqkv, dws[0], dws[1], None, None, None, None, None, None


def qkv_norm_rope_triton(
    qkv: torch.Tensor,
    num_q_heads: int,
    num_kv_heads: int,
    q_weight: torch.Tensor | None,
    k_weight: torch.Tensor | None,
    cos: torch.Tensor,
    sin: torch.Tensor,
    eps: float = 1e-6,
    out_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``qkv (B, T, Hq + 2 Hkv, D)`` -> ``q (B, Hq, T, D)``, ``k, v (B, Hkv, T, D)``: q/k RMSNorm + RoPE fused
    (RoPE only when both weights are None: models without q/k norm, e.g. MobileLLM).

    Matches :func:`reference.qkv_norm_rope_ref`. ``out_dtype`` defaults to ``promote(qkv.dtype, q_weight.dtype)``.
    """
    if qkv.dim() != 4 or qkv.shape[2] != num_q_heads + 2 * num_kv_heads:
        raise ValueError(f"qkv shape {tuple(qkv.shape)} does not hold {num_q_heads} + 2 x {num_kv_heads} heads")
    if (q_weight is None) != (k_weight is None):
        raise ValueError("q_weight and k_weight are both given (q/k norm) or both None (RoPE only)")
    _check(qkv, q_weight, cos)
    if qkv.stride(-1) != 1:
        qkv = qkv.contiguous()
    out_dtype = out_dtype or (torch.promote_types(qkv.dtype, q_weight.dtype) if q_weight is not None else qkv.dtype)
    return _QKVNormRope.apply(qkv, q_weight, k_weight, cos.contiguous(), sin.contiguous(), num_q_heads,
                              num_kv_heads, eps, out_dtype)


def _check(x: torch.Tensor, weight: torch.Tensor | None, cos: torch.Tensor) -> None:
    if x.dim() != 4 or x.shape[-1] % 2 or (weight is not None and x.shape[-1] != weight.shape[-1]):
        raise ValueError(f"expected x (B, T, H, D) with even D matching weight, got {tuple(x.shape)}")
    if cos.shape[0] < x.shape[1] or cos.dtype != torch.float32:
        raise ValueError("cos/sin must be fp32 tables covering the sequence length")


def qk_norm_rope_triton(
    x: torch.Tensor,
    weight: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    eps: float = 1e-6,
    out_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Fused per-head RMSNorm + RoPE: ``x (B, T, H, D)`` (any strides, unit last stride) -> ``(B, H, T, D)``.

    ``cos``/``sin`` are fp32 ``(>= T, D/2)`` tables (:func:`reference.rope_cos_sin`); ``out_dtype`` defaults to
    ``promote(x.dtype, weight.dtype)``. Matches :func:`reference.qk_norm_rope_ref`.
    """
    _check(x, weight, cos)
    out_dtype = out_dtype or torch.promote_types(x.dtype, weight.dtype)
    return _QKNormRope.apply(x, weight, cos.contiguous(), sin.contiguous(), eps, out_dtype)
