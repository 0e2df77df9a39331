"""Fused LM head + cross-entropy (+ z-loss), chunked over tokens so the full logits never exist.

The eager LM-head loss materialises ``(N, V)`` logits, an fp32 copy of them, and as much again for the softmax
in backward: at 8 x 2048 tokens and a 32k vocabulary that is several GiB for a few MiB of hidden states. Here
the tokens are cut into chunks of ``C`` rows; for each chunk:

1. ``logits = x_c @ W^T`` (cuBLAS, ``C x V'`` in the compute dtype, ``V'`` the vocabulary padded to a multiple
   of 128 so that every row starts aligned and the GEMMs get whole tiles; the padded columns are masked out of
   the softmax and get a zero gradient);
2. a Triton kernel, one program per row, computes the row's log-sum-exp in fp32 with an online max (pass 1),
   then overwrites the logits row *in place* with its gradient ``softmax * (1 + 2 z lse) - onehot(target)``
   (pass 2) and stores the row's loss and ``lse``; rows whose target is ``ignore_index`` get a zero gradient;
3. ``dx_c = g_c @ W`` and ``dW += g_c^T @ x_c``, accumulated in fp32 by the GEMM itself
   (``addmm(..., out_dtype=float32)`` where this torch has it for an fp32 accumulator; otherwise one fp32 product
   per chunk is added: see :func:`_accumulate`).

So the gradients are computed in the forward pass (Liger-Kernel's ``FusedLinearCrossEntropy`` idea; the code is
ours) and the backward only scales them by ``grad_output / n_valid``. Peak memory is ``C x V'`` logits plus
``dx`` (``N x d``) and ``dW`` (``V' x d`` fp32) instead of several ``N x V`` tensors. The chunk size follows
Liger's rule: about as many logits per chunk as there are hidden-state elements in the whole input
(``C = next_pow2(N / ceil(V / d))``).

The work is one ``torch.library.custom_op`` (``train_small::linear_ce``) with a fake implementation and a
registered backward, so ``torch.compile(fullgraph=True)`` traces a model that uses it without graph breaks (the
op stays opaque: its chunk loop runs eagerly). Targets are checked on the device before any logits are read:
a target outside ``[0, V)`` that is not ``ignore_index`` is a ``ValueError`` on CPU and a device-side assertion
with the same message on CUDA (no host synchronisation); the kernel never reads outside the row either way.

Numerics match :func:`reference.linear_cross_entropy_ref`: the matmul runs in ``x``'s dtype (the weight is cast
to it, as autocast would), the softmax and losses in fp32, the gradient is written in the logits' dtype (as the
backward of ``logits.float()`` casts it). On CPU without ``TRITON_INTERPRET=1`` the per-row step is
:func:`reference.ce_rows_ref` (same algorithm, PyTorch ops), which is what ``bench/kernels.py`` measures there.
"""

from __future__ import annotations

import logging
import math
import os

import torch
import triton
import triton.language as tl

from train_small.kernels.reference import ce_rows_ref

__all__ = ["linear_cross_entropy", "default_chunk_tokens", "padded_vocab", "ce_row_settings", "VOCAB_MULTIPLE"]

log = logging.getLogger(__name__)

VOCAB_MULTIPLE = 128
# triton.jit reads TRITON_INTERPRET when the kernel is decorated (import time): the same decision here.
_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def _ce_rows_kernel(
    LOGITS, stride_l, TARGETS, LOSS, LSE,
    V, V_ROW, ignore_index, z_loss,
    BLOCK_V: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    ptr = LOGITS + row * stride_l
    t = tl.load(TARGETS + row)
    # Out-of-range targets were refused before the launch; never read outside the row regardless.
    valid = (t != ignore_index) & (t >= 0) & (t < V)
    # Pass 1: online max and sum of exponentials over the V real columns, in fp32. Loads are masked by the padded
    # row length (a multiple of 128, so they vectorise); the padding columns are dropped in registers.
    m = -float("inf")
    s = 0.0
    for off in range(0, V_ROW, BLOCK_V):
        cols = off + tl.arange(0, BLOCK_V)
        x = tl.load(ptr + cols, mask=cols < V_ROW, other=-float("inf")).to(tl.float32)
        x = tl.where(cols < V, x, -float("inf"))
        m_new = tl.maximum(m, tl.max(x, axis=0))
        s = s * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new), axis=0)
        m = m_new
    lse = m + tl.log(s)
    t_safe = tl.where(valid, t, 0).to(tl.int64)
    x_t = tl.load(ptr + t_safe).to(tl.float32)  # read before pass 2 overwrites the row
    vf = valid.to(tl.float32)
    tl.store(LOSS + row, (lse - x_t) * vf)
    tl.store(LSE + row, lse * vf)
    # Pass 2: d(ce + z_loss * lse^2) / d(logits) = softmax * (1 + 2 z_loss lse) - onehot, written in place;
    # zero on the padding columns and on ignored rows.
    coef = 1.0 + 2.0 * z_loss * lse
    for off in range(0, V_ROW, BLOCK_V):
        cols = off + tl.arange(0, BLOCK_V)
        mask = cols < V_ROW
        x = tl.load(ptr + cols, mask=mask, other=0.0).to(tl.float32)
        g = tl.exp(x - lse) * coef - tl.where(cols == t_safe, 1.0, 0.0)
        g = tl.where(cols < V, g * vf, 0.0)
        tl.store(ptr + cols, g.to(LOGITS.dtype.element_ty), mask=mask)


def padded_vocab(vocab: int) -> int:
    """The vocabulary rounded up to a multiple of :data:`VOCAB_MULTIPLE` (the logits' row length)."""
    return -(-vocab // VOCAB_MULTIPLE) * VOCAB_MULTIPLE


def ce_row_settings(v_row: int, on_gpu: bool = True) -> tuple[int, int]:
    """``(BLOCK_V, num_warps)`` of the row kernel for rows of ``v_row`` logits.

    8,192 columns per block with 16 warps: ptxas (sm_90a, Triton 3.9; ``python bench/kernels.py --ptxas``)
    reports 50 registers (bf16 logits) / 54 (fp32) and no spills on rows padded to a multiple of 128, so two
    CTAs (32 warps) fit on an SM. A 32,768 block with 16 warps takes 128 registers (one CTA per SM), and on
    unpadded rows (arbitrary V) it spilled 468 / 448 bytes per thread. The row is read twice either way; the
    second read comes from L2. Under the interpreter (CPU) the block is 1,024.
    """
    block = min(triton.next_power_of_2(v_row), 8192 if on_gpu else 1024)
    warps = 4 if block <= 1024 else 8 if block <= 4096 else 16
    return block, warps


def _ce_rows_triton(logits: torch.Tensor, targets: torch.Tensor, z_loss: float, ignore_index: int,
                    vocab: int | None = None, block: int | None = None, warps: int | None = None):
    """Triton version of :func:`reference.ce_rows_ref`: ``(loss_rows, lse_rows)`` fp32; ``logits`` <- gradient.

    ``logits (C, V')``: the first ``vocab`` columns are the vocabulary (default: all), the rest padding.
    ``block``/``warps`` override :func:`ce_row_settings` (tests run the GPU's settings in the interpreter).
    """
    n, v_row = logits.shape
    vocab = v_row if vocab is None else vocab
    loss = torch.empty(n, dtype=torch.float32, device=logits.device)
    lse = torch.empty(n, dtype=torch.float32, device=logits.device)
    auto_block, auto_warps = ce_row_settings(v_row, logits.is_cuda)
    _ce_rows_kernel[(n,)](logits, logits.stride(0), targets, loss, lse, vocab, v_row, ignore_index, float(z_loss),
                          BLOCK_V=block or auto_block, num_warps=warps or auto_warps)
    return loss, lse


def default_chunk_tokens(n_tokens: int, vocab: int, dim: int) -> int:
    """Tokens per chunk: about ``n_tokens * dim`` logits per chunk (Liger-Kernel's rule), a power of two."""
    per_chunk = math.ceil(n_tokens / max(1, math.ceil(vocab / dim)))
    return max(1, triton.next_power_of_2(per_chunk))


def check_targets(targets: torch.Tensor, vocab: int, ignore_index: int) -> None:
    """Refuse targets outside ``[0, vocab)`` that are not ``ignore_index``: a ``ValueError`` naming the count and
    an example on CPU; on CUDA a device-side assertion with the same cause (checked on the GPU, no sync)."""
    bad = (targets != ignore_index) & ((targets < 0) | (targets >= vocab))
    msg = f"linear_cross_entropy: targets outside [0, {vocab}) that are not ignore_index={ignore_index}"
    if targets.is_cuda:
        torch._assert_async(~bad.any(), msg)
        return
    n_bad = int(bad.sum())
    if n_bad:
        example = int(targets[bad][0])
        raise ValueError(f"{msg}: {n_bad} of {targets.numel()}, e.g. {example}")


# Per device type: how dW += g^T x is accumulated in fp32 (decided once by a probe; see _accumulate).
_ACCUMULATE_MODE: dict[str, str] = {}


def _accumulate_mode(device: torch.device, dtype: torch.dtype) -> str:
    """``"addmm_out_dtype"`` when ``torch.addmm(acc_fp32, a, b, out_dtype=float32, out=acc_fp32)`` works on this
    device for ``dtype`` inputs and gives the right sum (torch >= 2.8 on CUDA; some versions require the
    accumulator in the input dtype and refuse), else ``"mm_out_dtype"`` (one fp32 product per chunk, added),
    else ``"cast"`` (the product in ``dtype``, cast to fp32, added)."""
    key = f"{device.type}:{dtype}"
    if key in _ACCUMULATE_MODE:
        return _ACCUMULATE_MODE[key]
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(16, 8, device=device, generator=g).to(dtype)
    b = torch.randn(8, 32, device=device, generator=g).to(dtype)
    want = torch.ones(16, 32, device=device) + a.float() @ b.float()
    mode = "cast"
    for candidate in ("addmm_out_dtype", "mm_out_dtype"):
        try:
            acc = torch.ones(16, 32, device=device)
            _accumulate(acc, a, b, candidate)
            if torch.allclose(acc, want, rtol=1e-2, atol=1e-2):
                mode = candidate
                break
        except (RuntimeError, TypeError, NotImplementedError):
            continue
    log.info("fused LM-head loss: dW accumulated with %s on %s (%s inputs)", mode, device.type, dtype)
    _ACCUMULATE_MODE[key] = mode
    return mode


def _accumulate(acc: torch.Tensor, a: torch.Tensor, b: torch.Tensor, mode: str) -> None:
    """``acc (fp32) += a @ b``."""
    if a.dtype == torch.float32:
        acc.addmm_(a, b)
    elif mode == "addmm_out_dtype":  # cuBLAS reads and writes the fp32 accumulator: no temporary
        torch.addmm(acc, a, b, out_dtype=torch.float32, out=acc)
    elif mode == "mm_out_dtype":
        acc += torch.mm(a, b, out_dtype=torch.float32)
    else:
        acc += (a @ b).float()


def _padded_weight(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The weight in the matmul dtype with zero rows up to :func:`padded_vocab` (a view of ``weight`` when it
    already is both)."""
    v, d = weight.shape
    vp = padded_vocab(v)
    if vp == v and weight.dtype == dtype:
        return weight
    w = torch.empty((vp, d), dtype=dtype, device=weight.device)
    w[:v].copy_(weight)
    w[v:].zero_()
    return w


@torch.library.custom_op("train_small::linear_ce", mutates_args=())
def _linear_ce(
    x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, z_loss: float, ignore_index: int, chunk: int,
    use_triton: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x (N, d)``, ``weight (V, d)``, ``targets (N,)`` -> ``(total_sum, ce_sum, z_sum, dx, dw)``: the sums over
    valid rows of ``ce + z_loss * lse^2``, ``ce`` and ``lse^2`` (fp32 scalars), and their gradient with respect to
    ``x`` (``x``'s dtype) and ``weight`` (fp32)."""
    n, d = x.shape
    v = weight.shape[0]
    check_targets(targets, v, ignore_index)
    dx = torch.empty_like(x)
    dw = torch.zeros((padded_vocab(v), d), dtype=torch.float32, device=x.device)
    total_sum = torch.zeros((), dtype=torch.float32, device=x.device)
    ce_sum = torch.zeros((), dtype=torch.float32, device=x.device)
    z_sum = torch.zeros((), dtype=torch.float32, device=x.device)
    if n == 0:
        return total_sum, ce_sum, z_sum, dx, dw[:v]
    mode = _accumulate_mode(x.device, x.dtype) if x.dtype != torch.float32 else "fp32"
    with torch.autocast(x.device.type, enabled=False):
        w = _padded_weight(weight, x.dtype)  # (V', d): the matmul dtype (autocast's choice), padded
        for s in range(0, n, chunk):
            xc, tc = x[s : s + chunk], targets[s : s + chunk]
            logits = xc @ w.t()  # (C, V'): the only logits that exist at a time
            if use_triton:
                loss_rows, lse_rows = _ce_rows_triton(logits, tc, z_loss, ignore_index, vocab=v)
            else:
                loss_rows, lse_rows = ce_rows_ref(logits, tc, z_loss, ignore_index, vocab=v)
            # logits now hold d(loss_rows + z_loss lse_rows^2) / d logits (0 on padding columns, ignored rows)
            ce_sum += loss_rows.sum()
            z_sum += lse_rows.square().sum()
            torch.mm(logits, w, out=dx[s : s + chunk])
            _accumulate(dw, logits.t(), xc, mode)
    total_sum = ce_sum + z_loss * z_sum
    return total_sum, ce_sum, z_sum, dx, dw[:v]


@_linear_ce.register_fake
def _linear_ce_fake(x, weight, targets, z_loss, ignore_index, chunk, use_triton):
    scalar = x.new_empty((), dtype=torch.float32)
    return (scalar, scalar.clone(), scalar.clone(), torch.empty_like(x),
            x.new_empty(weight.shape, dtype=torch.float32))


def _linear_ce_setup(ctx, inputs, output):
    weight = inputs[1]
    _total, ce_sum, z_sum, dx, dw = output
    ctx.save_for_backward(dx, dw)
    ctx.weight_dtype = weight.dtype
    ctx.mark_non_differentiable(ce_sum, z_sum, dx, dw)
    ctx.set_materialize_grads(False)


def _linear_ce_backward(ctx, g_total, _g_ce, _g_z, _g_dx, _g_dw):
    dx, dw = ctx.saved_tensors
    if g_total is None:
        return None, None, None, None, None, None, None
    gx = (dx.float() * g_total).to(dx.dtype) if ctx.needs_input_grad[0] else None
    gw = (dw * g_total).to(ctx.weight_dtype) if ctx.needs_input_grad[1] else None
    return gx, gw, None, None, None, None, None


_linear_ce.register_autograd(_linear_ce_backward, setup_context=_linear_ce_setup)


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
    (``ignore_index`` rows excluded from both means; any other id outside ``[0, V)`` is an error). Returns
    ``(total, ce, z)`` like :func:`model.lm_loss`; only ``total`` carries gradients (to ``x`` and ``weight``).
    ``chunk_tokens`` rows of logits exist at a time (default :func:`default_chunk_tokens`). ``impl``:
    ``"triton"`` (the row kernel; default on CUDA or under ``TRITON_INTERPRET=1``) or ``"torch"`` (the PyTorch
    row step; default otherwise).
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
    use_triton = (x.is_cuda or _INTERPRET) if impl is None else impl == "triton"
    total_sum, ce_sum, z_sum, _, _ = _linear_ce(x2, weight, t.contiguous(), float(z_loss), int(ignore_index),
                                                int(chunk), use_triton)
    n_valid = (t != ignore_index).sum().clamp_min(1).to(torch.float32)
    return total_sum / n_valid, ce_sum / n_valid, z_sum / n_valid
