"""Fused LM head + cross-entropy (+ z-loss), chunked over tokens so the full logits never exist.

The eager LM-head loss materialises ``(N, V)`` logits, an fp32 copy of them, and as much again for the softmax
in backward: at 8 x 2048 tokens and a 32k vocabulary that is several GiB for a few MiB of hidden states. Here
the tokens are cut into chunks of ``C`` rows; for each chunk:

1. ``logits = x_c @ W^T`` (cuBLAS, ``C x V`` in the compute dtype);
2. a Triton kernel, one program per row, computes the row's log-sum-exp in fp32 with an online max (pass 1),
   then overwrites the logits row *in place* with its gradient ``softmax * (1 + 2 z lse) - onehot(target)``
   (pass 2) and stores the row's loss and ``lse``; rows whose target is ``ignore_index`` get a zero gradient;
3. ``dx_c = g_c @ W`` and ``dW += g_c^T @ x_c`` (accumulated in fp32).

So the gradients are computed in the forward pass (Liger-Kernel's ``FusedLinearCrossEntropy`` idea; the code is
ours) and the backward only scales them by ``grad_output / n_valid``. Peak memory is ``C x V`` logits plus
``dx`` (``N x d``) and ``dW`` (``V x d`` fp32) instead of several ``N x V`` tensors. The chunk size follows
Liger's rule: about as many logits per chunk as there are hidden-state elements in the whole input
(``C = next_pow2(N / ceil(V / d))``).

Numerics match :func:`reference.linear_cross_entropy_ref`: the matmul runs in ``x``'s dtype (the weight is cast
to it, as autocast would), the softmax and losses in fp32, the gradient is written in the logits' dtype (as the
backward of ``logits.float()`` casts it). On CPU without ``TRITON_INTERPRET=1`` the per-row step is
:func:`reference.ce_rows_ref` (same algorithm, PyTorch ops), which is what ``bench/kernels.py`` measures there.
"""

from __future__ import annotations

import math
import os

import torch
import triton
import triton.language as tl

from train_small.kernels.reference import ce_rows_ref

__all__ = ["linear_cross_entropy", "default_chunk_tokens"]


@triton.jit
def _ce_rows_kernel(
    LOGITS, stride_l, TARGETS, LOSS, LSE,
    V, ignore_index, z_loss,
    BLOCK_V: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    ptr = LOGITS + row * stride_l
    t = tl.load(TARGETS + row)
    valid = t != ignore_index
    # Pass 1: online max and sum of exponentials, in fp32.
    m = -float("inf")
    s = 0.0
    for off in range(0, V, BLOCK_V):
        cols = off + tl.arange(0, BLOCK_V)
        x = tl.load(ptr + cols, mask=cols < V, other=-float("inf")).to(tl.float32)
        m_new = tl.maximum(m, tl.max(x, axis=0))
        s = s * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new), axis=0)
        m = m_new
    lse = m + tl.log(s)
    t_safe = tl.where(valid, t, 0).to(tl.int64)
    x_t = tl.load(ptr + t_safe).to(tl.float32)  # read before pass 2 overwrites the row
    vf = valid.to(tl.float32)
    tl.store(LOSS + row, (lse - x_t) * vf)
    tl.store(LSE + row, lse * vf)
    # Pass 2: d(ce + z_loss * lse^2) / d(logits) = softmax * (1 + 2 z_loss lse) - onehot, written in place.
    coef = 1.0 + 2.0 * z_loss * lse
    for off in range(0, V, BLOCK_V):
        cols = off + tl.arange(0, BLOCK_V)
        mask = cols < V
        x = tl.load(ptr + cols, mask=mask, other=0.0).to(tl.float32)
        g = tl.exp(x - lse) * coef - tl.where(cols == t_safe, 1.0, 0.0)
        tl.store(ptr + cols, (g * vf).to(LOGITS.dtype.element_ty), mask=mask)


def _ce_rows_triton(logits: torch.Tensor, targets: torch.Tensor, z_loss: float, ignore_index: int):
    """Triton version of :func:`reference.ce_rows_ref`: ``(loss_rows, lse_rows)`` fp32; ``logits`` <- gradient."""
    n, v = logits.shape
    loss = torch.empty(n, dtype=torch.float32, device=logits.device)
    lse = torch.empty(n, dtype=torch.float32, device=logits.device)
    block = min(triton.next_power_of_2(v), 32768 if logits.is_cuda else 1024)
    warps = 4 if block <= 2048 else 8 if block <= 8192 else 16
    _ce_rows_kernel[(n,)](logits, logits.stride(0), targets, loss, lse, v, ignore_index, float(z_loss),
                          BLOCK_V=block, num_warps=warps)
    return loss, lse


def default_chunk_tokens(n_tokens: int, vocab: int, dim: int) -> int:
    """Tokens per chunk: about ``n_tokens * dim`` logits per chunk (Liger-Kernel's rule), a power of two."""
    per_chunk = math.ceil(n_tokens / max(1, math.ceil(vocab / dim)))
    return max(1, triton.next_power_of_2(per_chunk))


def _use_triton(device: torch.device) -> bool:
    return device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, targets, z_loss, ignore_index, chunk, use_triton):
        n, d = x.shape
        w = weight if weight.dtype == x.dtype else weight.to(x.dtype)  # the matmul dtype (autocast's choice)
        dx = torch.empty_like(x)
        dw = torch.zeros(weight.shape, dtype=torch.float32, device=x.device)
        loss_sum = torch.zeros((), dtype=torch.float32, device=x.device)
        z_sum = torch.zeros((), dtype=torch.float32, device=x.device)
        rows = _ce_rows_triton if use_triton else ce_rows_ref
        with torch.autocast(x.device.type, enabled=False):
            for s in range(0, n, chunk):
                xc, tc = x[s : s + chunk], targets[s : s + chunk]
                logits = xc @ w.t()  # (C, V): the only logits that exist at a time
                loss_rows, lse_rows = rows(logits, tc, z_loss, ignore_index)  # logits <- d loss_rows / d logits
                loss_sum += loss_rows.sum()
                z_sum += lse_rows.square().sum()
                torch.mm(logits, w, out=dx[s : s + chunk])
                dw += (logits.t() @ xc).float()
        n_valid = (targets != ignore_index).sum().clamp_min(1).to(torch.float32)
        ce, z = loss_sum / n_valid, z_sum / n_valid
        ctx.save_for_backward(dx, dw, n_valid)
        ctx.weight_dtype = weight.dtype
        total = ce + z_loss * z
        ctx.mark_non_differentiable(ce, z)
        return total, ce, z

    @staticmethod
    def backward(ctx, g_total, _g_ce, _g_z):
        dx, dw, n_valid = ctx.saved_tensors
        scale = g_total / n_valid
        gx = (dx.float() * scale).to(dx.dtype) if ctx.needs_input_grad[0] else None
        gw = (dw * scale).to(ctx.weight_dtype) if ctx.needs_input_grad[1] else None
        return gx, gw, None, None, None, None, None


def linear_cross_entropy(
    x: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    z_loss: float = 0.0,
    ignore_index: int = -100,
    chunk_tokens: int | None = None,
    impl: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean cross-entropy of ``x @ weight^T`` against ``targets`` plus ``z_loss * mean(lse^2)``, without logits.

    ``x (..., d)`` hidden states, ``weight (V, d)`` the LM head (the tied embedding), ``targets (...)`` token ids
    (``ignore_index`` rows excluded from both means). Returns ``(total, ce, z)`` like :func:`model.lm_loss`;
    only ``total`` carries gradients (to ``x`` and ``weight``). ``chunk_tokens`` rows of logits exist at a time
    (default :func:`default_chunk_tokens`). ``impl``: ``"triton"`` (the row kernel; default on CUDA or under
    ``TRITON_INTERPRET=1``) or ``"torch"`` (the PyTorch row step; default otherwise).
    """
    if impl not in (None, "triton", "torch"):
        raise ValueError(f"impl must be 'triton' or 'torch', got {impl!r}")
    d = x.shape[-1]
    if weight.dim() != 2 or weight.shape[1] != d:
        raise ValueError(f"weight {tuple(weight.shape)} does not match hidden size {d}")
    x2 = x.reshape(-1, d)
    if not x2.is_contiguous():
        x2 = x2.contiguous()
    t = targets.reshape(-1)
    if t.numel() != x2.shape[0]:
        raise ValueError(f"{t.numel()} targets for {x2.shape[0]} hidden states")
    chunk = chunk_tokens or default_chunk_tokens(x2.shape[0], weight.shape[0], d)
    use_triton = _use_triton(x.device) if impl is None else impl == "triton"
    return _LinearCrossEntropy.apply(x2, weight, t.contiguous(), float(z_loss), int(ignore_index), int(chunk),
                                     use_triton)
