"""Fused GPU kernels (Triton) and their plain PyTorch references.

``reference`` imports only torch and is what the CPU path runs. The Triton modules (``rmsnorm``,
``qk_norm_rope``, ``fused_linear_ce``) import ``triton`` and are loaded only when a model is built with
``use_kernels=True``; on a machine without a GPU they run under ``TRITON_INTERPRET=1`` (tests only: slow, for
correctness). Importing them registers their ``torch.library`` custom ops (``torch.ops.train_small.*``: fake
implementations and backward included), which is what lets ``torch.compile(fullgraph=True)`` trace the model.
"""

from train_small.kernels.reference import (
    add_rmsnorm_ref,
    apply_rope_ref,
    qk_norm_rope_ref,
    rmsnorm_ref,
    rope_cos_sin,
)

__all__ = ["add_rmsnorm_ref", "apply_rope_ref", "qk_norm_rope_ref", "rmsnorm_ref", "rope_cos_sin"]
