"""Plain PyTorch references for the fused kernels. The CPU path of the model runs these.

The numerics follow OpenELM's modules (apple/corenet ``RMSNorm`` and ``RotaryEmbedding``):

* RMSNorm normalises in fp32, casts the result back to the input dtype, and only then multiplies by the
  weight (so the output dtype is ``promote(x.dtype, weight.dtype)``);
* RoPE is the "rotate half" form with ``inv_freq = theta ** (-arange(0, D, 2) / D)``, computed in fp32 and
  cast back to the input dtype.
"""

from __future__ import annotations

import torch

__all__ = [
    "rmsnorm_ref", "add_rmsnorm_ref", "rope_cos_sin", "apply_rope_ref", "qk_norm_rope_ref", "qkv_norm_rope_ref",
    "linear_cross_entropy_ref", "ce_rows_ref",
]


def rmsnorm_ref(
    x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6, out_dtype: torch.dtype | None = None
) -> torch.Tensor:
    """``(x_fp32 * rsqrt(mean(x_fp32^2) + eps)).to(x.dtype) * weight`` over the last dimension.

    ``out_dtype`` (e.g. the autocast dtype, which the next matmul would cast to anyway) casts the result.
    """
    xf = x.float()
    normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    y = normed.to(x.dtype) * weight
    return y if out_dtype is None else y.to(out_dtype)


def add_rmsnorm_ref(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    weight: torch.Tensor,
    eps: float = 1e-6,
    out_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Residual add then RMSNorm: returns ``(rmsnorm(h), h)`` with ``h = x + residual`` (``x`` if None)."""
    h = x if residual is None else x + residual
    return rmsnorm_ref(h, weight, eps, out_dtype), h


def rope_cos_sin(seq_len: int, head_dim: int, theta: float = 10000.0, device: torch.device | str | None = None):
    """fp32 tables ``(seq_len, head_dim // 2)`` of cos and sin of ``position * inv_freq``."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim))
    pos = torch.arange(seq_len, dtype=torch.float32, device=device)
    angles = torch.outer(pos, inv_freq)  # (T, D/2)
    return angles.cos(), angles.sin()


def apply_rope_ref(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE on ``x (B, H, T, D)`` in fp32; ``cos``/``sin`` are ``(T, D/2)``. Returns fp32."""
    xf = x.float()
    x1, x2 = xf.chunk(2, dim=-1)
    c, s = cos[None, None], sin[None, None]
    return torch.cat((x1 * c - x2 * s, x2 * c + x1 * s), dim=-1)


def qk_norm_rope_ref(
    x: torch.Tensor,
    weight: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    eps: float = 1e-6,
    out_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Per-head RMSNorm then RoPE: ``x (B, T, H, D)`` -> ``(B, H, T, D)`` contiguous in ``out_dtype``.

    ``out_dtype`` defaults to ``promote(x.dtype, weight.dtype)``, the dtype OpenELM's modules produce.
    """
    normed = rmsnorm_ref(x, weight, eps)  # (B, T, H, D)
    pdtype = normed.dtype
    rotated = apply_rope_ref(normed.transpose(1, 2), cos[: x.shape[1]], sin[: x.shape[1]])  # (B, H, T, D) fp32
    return rotated.to(pdtype).to(out_dtype or pdtype).contiguous()


def rope_only_ref(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, out_dtype: torch.dtype | None = None
) -> torch.Tensor:
    """RoPE without a norm (MobileLLM/Llama): ``x (B, T, H, D)`` -> ``(B, H, T, D)`` contiguous, rotated in fp32."""
    rotated = apply_rope_ref(x.transpose(1, 2), cos[: x.shape[1]], sin[: x.shape[1]])
    return rotated.to(x.dtype).to(out_dtype or x.dtype).contiguous()


def qkv_norm_rope_ref(
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
    """Split ``qkv (B, T, Hq + 2 Hkv, D)`` into ``q (B, Hq, T, D)`` and ``k, v (B, Hkv, T, D)``; q and k get
    per-head RMSNorm + RoPE (:func:`qk_norm_rope_ref`), or RoPE only when the weights are None (no q/k norm);
    all three come out in the same dtype."""
    nq, nkv = num_q_heads, num_kv_heads
    if q_weight is None or k_weight is None:
        q = rope_only_ref(qkv[:, :, :nq], cos, sin, out_dtype)
        k = rope_only_ref(qkv[:, :, nq : nq + nkv], cos, sin, out_dtype)
        return q, k, qkv[:, :, nq + nkv :].transpose(1, 2).to(q.dtype)
    q = qk_norm_rope_ref(qkv[:, :, :nq], q_weight, cos, sin, eps, out_dtype)
    k = qk_norm_rope_ref(qkv[:, :, nq : nq + nkv], k_weight, cos, sin, eps, out_dtype)
    v = qkv[:, :, nq + nkv :].transpose(1, 2).to(q.dtype)
    return q, k, v


def linear_cross_entropy_ref(
    x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, z_loss: float = 0.0, ignore_index: int = -100
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The eager LM-head loss: full logits ``x @ weight^T`` in ``x``'s dtype, then CE + z-loss in fp32.

    Returns ``(total, ce, z)``: ``ce`` the mean cross-entropy and ``z`` the mean squared log-sum-exp over the
    rows whose target is not ``ignore_index``, ``total = ce + z_loss * z`` (:func:`train_small.model.lm_loss`).
    """
    logits = x.reshape(-1, x.shape[-1]) @ weight.to(x.dtype).t()  # (N, V)
    flat = logits.float()
    tgt = targets.reshape(-1)
    valid = tgt != ignore_index
    lse = torch.logsumexp(flat, dim=-1)
    picked = flat.gather(1, torch.where(valid, tgt, 0)[:, None]).squeeze(1)
    n = valid.sum().clamp_min(1)
    ce = ((lse - picked) * valid).sum() / n
    z = (lse.square() * valid).sum() / n
    return ce + z_loss * z, ce, z


def ce_rows_ref(
    logits: torch.Tensor, targets: torch.Tensor, z_loss: float, ignore_index: int, vocab: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One chunk of the fused LM-head loss in PyTorch: per-row loss and log-sum-exp (fp32, 0 on ignored rows);
    overwrites ``logits (C, V')`` with ``d(ce_row + z_loss * lse_row^2) / d logits`` (0 on ignored rows).

    The first ``vocab`` columns (default: all) are the vocabulary; the rest are padding, left out of the softmax
    and given a zero gradient. Targets are expected in ``[0, vocab)`` or ``ignore_index`` (others are treated as
    ignored here; the callers refuse them first). The per-row step of :mod:`train_small.kernels.fused_linear_ce`
    on CPU, and the reference for its kernel.
    """
    vocab = logits.shape[1] if vocab is None else vocab
    lf = logits[:, :vocab].float()
    valid = (targets != ignore_index) & (targets >= 0) & (targets < vocab)
    tgt = torch.where(valid, targets, 0)
    lse = torch.logsumexp(lf, dim=-1)  # (C,)
    loss = (lse - lf.gather(1, tgt[:, None]).squeeze(1)) * valid
    grad = torch.exp(lf - lse[:, None]).mul_((1.0 + 2.0 * z_loss * lse)[:, None])
    grad[torch.arange(len(tgt), device=grad.device), tgt] -= 1.0
    grad.mul_(valid[:, None])
    logits[:, :vocab].copy_(grad)
    logits[:, vocab:].zero_()
    return loss, lse * valid
