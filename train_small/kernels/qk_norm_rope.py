"""Triton fused per-head RMSNorm + RoPE for queries and keys, forward and backward.

One kernel replaces OpenELM's ``q_norm``/``k_norm`` -> ``RotaryEmbedding`` -> transpose chain: it reads the
strided ``(B, T, H, D)`` head slice straight out of the fused QKV projection, normalises each head row in fp32
(cast back to the input dtype before the weight, as in :func:`reference.rmsnorm_ref`), applies rotate-half
RoPE in fp32 with precomputed fp32 ``cos``/``sin`` tables, and writes ``(B, H, T, D)`` contiguous, the layout
``scaled_dot_product_attention`` wants. The backward applies the inverse rotation, then the RMSNorm backward,
recomputing the normalised row from ``x`` and the saved per-row ``rstd``. Weight gradients are reduced per
program in fp32 and summed on the host (deterministic).

Each direction is a ``torch.library.custom_op`` (``train_small::qkv_norm_rope_fwd``/``_bwd`` for the model's
fused QKV split, ``qk_norm_rope_fwd``/``_bwd`` for one head slice) with a fake implementation, the backward
registered with ``register_autograd``: ``torch.compile(fullgraph=True)`` traces through them without graph
breaks. The backward grid is one full wave of resident programs (:mod:`train_small.kernels._launch`).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from train_small.kernels._launch import full_wave_programs

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


def qk_settings(half: int) -> tuple[int, int]:
    """``(BLOCK_M, num_warps)``: head rows per program and warps, for heads of ``2 * half`` elements.

    256 elements of each half-row tile per 4 warps (2 per thread): ptxas (sm_90a, Triton 3.9; ``python
    bench/kernels.py --ptxas``) reports 54 / 63 registers (forward / backward) and no spills at D = 64, so 8
    programs fit on an SM. The previous 4,096-element tiles used 255 / 252 registers at D = 64 and spilled
    1.7 KB / 1.4 KB per thread at D = 128.
    """
    return max(1, min(64, 256 // triton.next_power_of_2(half))), 4


def _forward(x, weight, cos, sin, eps, out_dtype):
    """``x (B, T, H, D)`` strided view -> ``(y (B, H, T, D) contiguous, rstd (B*T*H,) fp32)``.

    ``weight=None``: RoPE only, no norm (``rstd`` is then a one-element zero placeholder)."""
    if x.stride(-1) != 1:  # head rows must be unit-stride (other strides are read as given)
        x = x.contiguous()
    cos, sin = cos.contiguous(), sin.contiguous()
    bsz, seq, heads, dim = x.shape
    half = dim // 2
    n_rows = bsz * seq * heads
    norm = weight is not None
    y = torch.empty((bsz, heads, seq, dim), dtype=out_dtype, device=x.device)
    # RoPE only: a zero placeholder (an op's outputs must be deterministic; the kernel never writes it)
    rstd = (torch.empty if norm else torch.zeros)(n_rows if norm else 1, dtype=torch.float32, device=x.device)
    if n_rows == 0:
        return y, rstd
    block_m, warps = qk_settings(half)
    pdtype = torch.promote_types(x.dtype, weight.dtype) if norm else x.dtype
    _qk_fwd_kernel[(triton.cdiv(n_rows, block_m),)](
        x, weight if norm else x, cos, sin, y, rstd,
        n_rows, seq, heads, x.stride(0), x.stride(1), x.stride(2), half, eps,
        NORM=norm, ROUND_TO_W=norm and pdtype == weight.dtype and weight.dtype != torch.float32,
        BLOCK_M=block_m, BLOCK_H=triton.next_power_of_2(half), num_warps=warps,
    )
    return y, rstd


def _backward(dy, x, weight, cos, sin, rstd, dx, programs: int | None = None):
    """Writes the input gradient into ``dx`` (a ``(B, T, H, D)`` view, any strides); returns the weight gradient
    (None when ``weight`` is None: RoPE only). ``programs`` overrides the grid (one full wave on the GPU by
    default; tests run the GPU's grid on CPU)."""
    if x.stride(-1) != 1:
        x = x.contiguous()
    cos, sin = cos.contiguous(), sin.contiguous()
    bsz, seq, heads, dim = x.shape
    half = dim // 2
    n_rows = bsz * seq * heads
    norm = weight is not None
    if n_rows == 0:
        return torch.zeros_like(weight) if norm else None
    dy = dy.contiguous()
    block_m, warps = qk_settings(half)
    meta = {"NORM": norm, "BLOCK_M": block_m, "BLOCK_H": triton.next_power_of_2(half), "num_warps": warps}

    def args(rows_per_prog, dw_part):
        return (dy, x, weight if norm else x, cos, sin, rstd, dx, dw_part,
                n_rows, seq, heads, x.stride(0), x.stride(1), x.stride(2), dx.stride(0), dx.stride(1), dx.stride(2),
                half, rows_per_prog)

    blocks = triton.cdiv(n_rows, block_m)
    if programs is None:
        programs = full_wave_programs(_qk_bwd_kernel, args(n_rows, rstd), meta, x.device)  # rstd: fp32 stand-in
    rows_per_prog = triton.cdiv(blocks, max(1, min(blocks, programs))) * block_m
    progs = max(1, triton.cdiv(n_rows, rows_per_prog))
    dw_part = torch.zeros((progs, dim) if norm else (1, 1), dtype=torch.float32, device=x.device)
    _qk_bwd_kernel[(progs,)](*args(rows_per_prog, dw_part), **meta)
    return dw_part.sum(0).to(weight.dtype) if norm else None


# ------------------------------------------------------------------------------------------ ops and autograd


@torch.library.custom_op("train_small::qk_norm_rope_fwd", mutates_args=())
def _qk_fwd_op(x: torch.Tensor, weight: torch.Tensor | None, cos: torch.Tensor, sin: torch.Tensor, eps: float,
               out_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``x (B, T, H, D)`` (unit last stride) -> ``(y (B, H, T, D), rstd)``."""
    return _forward(x, weight, cos, sin, eps, out_dtype)


@_qk_fwd_op.register_fake
def _(x, weight, cos, sin, eps, out_dtype):
    b, t, h, d = x.shape
    return x.new_empty((b, h, t, d), dtype=out_dtype), x.new_empty(b * t * h if weight is not None else 1,
                                                                   dtype=torch.float32)


@torch.library.custom_op("train_small::qk_norm_rope_bwd", mutates_args=())
def _qk_bwd_op(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor | None, cos: torch.Tensor,
               sin: torch.Tensor, rstd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dx (B, T, H, D) contiguous, dw)``; ``dw`` is empty when ``weight`` is None."""
    dx = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    dw = _backward(dy, x, weight, cos, sin, rstd, dx)
    return dx, dw if dw is not None else x.new_empty(0)


@_qk_bwd_op.register_fake
def _(dy, x, weight, cos, sin, rstd):
    return torch.empty(x.shape, dtype=x.dtype, device=x.device), (
        torch.empty_like(weight) if weight is not None else x.new_empty(0))


def _qk_setup(ctx, inputs, output):
    x, weight, cos, sin, _eps, _out_dtype = inputs
    ctx.save_for_backward(x, weight, cos, sin, output[1])
    ctx.mark_non_differentiable(output[1])


def _qk_backward(ctx, dy, _drstd):
    x, weight, cos, sin, rstd = ctx.saved_tensors
    dx, dw = _qk_bwd_op(dy, x, weight, cos, sin, rstd)
    return dx, dw if weight is not None else None, None, None, None, None


_qk_fwd_op.register_autograd(_qk_backward, setup_context=_qk_setup)


@torch.library.custom_op("train_small::qkv_norm_rope_fwd", mutates_args=())
def _qkv_fwd_op(qkv: torch.Tensor, wq: torch.Tensor | None, wk: torch.Tensor | None, cos: torch.Tensor,
                sin: torch.Tensor, nq: int, nkv: int, eps: float, out_dtype: torch.dtype
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``qkv (B, T, Hq + 2 Hkv, D)`` -> ``(q, k, v, rstd_q, rstd_k)``, q/k/v ``(B, H, T, D)`` contiguous."""
    q, rq = _forward(qkv[:, :, :nq], wq, cos, sin, eps, out_dtype)
    k, rk = _forward(qkv[:, :, nq : nq + nkv], wk, cos, sin, eps, out_dtype)
    v = torch.empty(k.shape, dtype=out_dtype, device=qkv.device)
    v.copy_(qkv[:, :, nq + nkv :].transpose(1, 2))
    return q, k, v, rq, rk


@_qkv_fwd_op.register_fake
def _(qkv, wq, wk, cos, sin, nq, nkv, eps, out_dtype):
    b, t, _, d = qkv.shape
    norm = wq is not None
    return (qkv.new_empty((b, nq, t, d), dtype=out_dtype), qkv.new_empty((b, nkv, t, d), dtype=out_dtype),
            qkv.new_empty((b, nkv, t, d), dtype=out_dtype),
            qkv.new_empty(b * t * nq if norm else 1, dtype=torch.float32),
            qkv.new_empty(b * t * nkv if norm else 1, dtype=torch.float32))


@torch.library.custom_op("train_small::qkv_norm_rope_bwd", mutates_args=())
def _qkv_bwd_op(dq: torch.Tensor | None, dk: torch.Tensor | None, dv: torch.Tensor | None, qkv: torch.Tensor,
                wq: torch.Tensor | None, wk: torch.Tensor | None, cos: torch.Tensor, sin: torch.Tensor,
                rq: torch.Tensor, rk: torch.Tensor, nq: int, nkv: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(dqkv, dwq, dwk)``: dq, dk (rotated back, through the norms) and dv written straight into one ``dqkv``
    buffer, instead of autograd's zero-filled full-size gradient per slice; a missing gradient (None) is zero.
    ``dwq``/``dwk`` are empty when there is no q/k norm."""
    dqkv = torch.empty_like(qkv)
    dws = []
    for lo, hi, d, w, r in ((0, nq, dq, wq, rq), (nq, nq + nkv, dk, wk, rk)):
        if d is None:
            dqkv[:, :, lo:hi].zero_()
            dws.append(torch.zeros_like(w) if w is not None else None)
        else:
            dws.append(_backward(d, qkv[:, :, lo:hi], w, cos, sin, r, dqkv[:, :, lo:hi]))
    if dv is None:
        dqkv[:, :, nq + nkv :].zero_()
    else:
        dqkv[:, :, nq + nkv :].copy_(dv.transpose(1, 2))
    return dqkv, *(dw if dw is not None else qkv.new_empty(0) for dw in dws)


@_qkv_bwd_op.register_fake
def _(dq, dk, dv, qkv, wq, wk, cos, sin, rq, rk, nq, nkv):
    return (torch.empty_like(qkv), *(torch.empty_like(w) if w is not None else qkv.new_empty(0) for w in (wq, wk)))


def _qkv_setup(ctx, inputs, output):
    qkv, wq, wk, cos, sin, nq, nkv, _eps, _out_dtype = inputs
    ctx.save_for_backward(qkv, wq, wk, cos, sin, output[3], output[4])
    ctx.split = (nq, nkv)
    ctx.mark_non_differentiable(output[3], output[4])
    ctx.set_materialize_grads(False)


def _qkv_backward(ctx, dq, dk, dv, _drq, _drk):
    qkv, wq, wk, cos, sin, rq, rk = ctx.saved_tensors
    dqkv, dwq, dwk = _qkv_bwd_op(dq, dk, dv, qkv, wq, wk, cos, sin, rq, rk, *ctx.split)
    norm = wq is not None
    return dqkv, dwq if norm else None, dwk if norm else None, None, None, None, None, None, None


_qkv_fwd_op.register_autograd(_qkv_backward, setup_context=_qkv_setup)


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
    seq = qkv.shape[1]
    q, k, v, _, _ = _qkv_fwd_op(qkv, q_weight, k_weight, cos[:seq].contiguous(), sin[:seq].contiguous(),
                                num_q_heads, num_kv_heads, float(eps), out_dtype)
    return q, k, v


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
    if x.stride(-1) != 1:
        x = x.contiguous()
    out_dtype = out_dtype or torch.promote_types(x.dtype, weight.dtype)
    seq = x.shape[1]
    y, _ = _qk_fwd_op(x, weight, cos[:seq].contiguous(), sin[:seq].contiguous(), float(eps), out_dtype)
    return y
