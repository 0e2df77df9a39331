"""OpenELM model configurations: the layer-wise scaling rules, the public sizes and a proxy ladder.

OpenELM (Mehta et al. 2024, https://arxiv.org/abs/2404.14619) allocates parameters non-uniformly across
layers ("layer-wise scaling", after DeLighT, https://arxiv.org/abs/2008.00623). For layer ``i`` of ``L``:

* qkv multiplier ``a_i = round(linspace(0.5, 1.0, L)[i], 2)``; query heads
  ``make_divisible(model_dim * a_i, head_dim * num_gqa_groups) / head_dim``; key/value heads
  ``query heads / num_gqa_groups``;
* FFN multiplier ``b_i = round(linspace(0.5, 4.0, L)[i], 2)``; FFN width
  ``make_divisible(model_dim * b_i, ffn_dim_divisor=256)`` (SwiGLU, so ``proj_1`` has twice that width).

The public sizes take their fields from apple/corenet's ``gpt_configs`` (``OpenELM-270M`` ... ``OpenELM-3B``)
and the Hugging Face ``config.json`` files of ``apple/OpenELM-*`` (vocabulary 32,000). The proxy ladder
(``cpu-tiny``, ``proxy-20m``, ``proxy-60m``, ``proxy-150m``) uses the same rules with smaller widths/depths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "OpenELMConfig",
    "make_divisible",
    "layerwise_multipliers",
    "get_config",
    "CONFIGS",
    "count_parameters",
]


def make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """OpenELM's (MobileNet's) ``make_divisible``: round ``v`` to the nearest multiple of ``divisor``.

    The result is at least ``min_value`` (default ``divisor``) and never more than 10% below ``v``
    (one more ``divisor`` is added when rounding down would lose more than that).
    """
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return int(new_v)


def layerwise_multipliers(lo: float, hi: float, num_layers: int) -> list[float]:
    """``round(linspace(lo, hi, L)[i], 2)`` for each layer, as in OpenELM's config ``__post_init__``."""
    return [round(float(v), 2) for v in np.linspace(lo, hi, num=num_layers, dtype=float)]


@dataclass
class OpenELMConfig:
    """One OpenELM model. The per-layer lists are derived from the scaling rules when left empty.

    ``use_kernels`` picks the fused Triton path (GPU) over the plain PyTorch reference path (CPU).
    """

    name: str = "custom"
    vocab_size: int = 32000
    model_dim: int = 1280
    num_layers: int = 16
    head_dim: int = 64
    num_gqa_groups: int = 4
    qkv_multipliers: tuple[float, float] = (0.5, 1.0)
    ffn_multipliers: tuple[float, float] = (0.5, 4.0)
    ffn_dim_divisor: int = 256
    norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    max_seq_len: int = 2048
    use_kernels: bool = False
    # Derived per-layer fields (filled by __post_init__ when empty; given explicitly they are checked).
    num_query_heads: list[int] = field(default_factory=list)
    num_kv_heads: list[int] = field(default_factory=list)
    ffn_dims: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.qkv_multipliers = tuple(float(x) for x in self.qkv_multipliers)  # type: ignore[assignment]
        self.ffn_multipliers = tuple(float(x) for x in self.ffn_multipliers)  # type: ignore[assignment]
        if self.head_dim % 2 != 0:
            raise ValueError(f"head_dim must be even for RoPE, got {self.head_dim}")
        if self.model_dim <= 0 or self.num_layers <= 0 or self.vocab_size <= 0:
            raise ValueError("model_dim, num_layers and vocab_size must be positive")
        qkv = layerwise_multipliers(*self.qkv_multipliers, self.num_layers)
        ffn = layerwise_multipliers(*self.ffn_multipliers, self.num_layers)
        q_dims = [make_divisible(self.model_dim * m, self.head_dim * self.num_gqa_groups) for m in qkv]
        heads = [d // self.head_dim for d in q_dims]
        derived = (
            heads,
            [h // self.num_gqa_groups for h in heads],
            [make_divisible(self.model_dim * m, self.ffn_dim_divisor) for m in ffn],
        )
        for name, value in zip(("num_query_heads", "num_kv_heads", "ffn_dims"), derived):
            given = list(getattr(self, name))
            if given and given != value:
                raise ValueError(f"{name}={given} disagrees with the layer-wise scaling rules ({value})")
            setattr(self, name, value)
        for i in range(self.num_layers):
            assert self.num_query_heads[i] % self.num_kv_heads[i] == 0, (i, self.num_query_heads, self.num_kv_heads)
            assert self.num_kv_heads[i] >= 1

    # Shapes ----------------------------------------------------------------------------------------------
    def layer_shapes(self, i: int) -> dict[str, tuple[int, ...]]:
        """Weight shapes of layer ``i`` (PyTorch ``Linear`` layout: ``(out_features, in_features)``)."""
        d, hd = self.model_dim, self.head_dim
        q, kv, f = self.num_query_heads[i], self.num_kv_heads[i], self.ffn_dims[i]
        return {
            "attn_norm": (d,),
            "qkv_proj": ((q + 2 * kv) * hd, d),
            "q_norm": (hd,),
            "k_norm": (hd,),
            "out_proj": (d, q * hd),
            "ffn_norm": (d,),
            "proj_1": (2 * f, d),
            "proj_2": (d, f),
        }

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["qkv_multipliers"] = list(self.qkv_multipliers)
        out["ffn_multipliers"] = list(self.ffn_multipliers)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OpenELMConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def count_parameters(cfg: OpenELMConfig, include_embedding: bool = True) -> int:
    """Parameter count from the config alone (tied input/output embedding counted once)."""
    total = cfg.model_dim  # final norm
    for i in range(cfg.num_layers):
        total += sum(int(np.prod(s)) for s in cfg.layer_shapes(i).values())
    if include_embedding:
        total += cfg.vocab_size * cfg.model_dim
    return total


def _named(name: str, **kw: Any) -> Callable[..., OpenELMConfig]:
    def build(vocab_size: int | None = None, **overrides: Any) -> OpenELMConfig:
        args = dict(kw, name=name, **overrides)
        if vocab_size is not None:
            args["vocab_size"] = vocab_size
        return OpenELMConfig(**args)

    build.__name__ = name.replace("-", "_").replace(".", "_")
    return build


# Public OpenELM sizes (apple/corenet gpt_configs; HF apple/OpenELM-* config.json, vocab 32000).
# Proxy ladder: same scaling rules, head_dim 64, 4 GQA groups. Parameter counts at vocab 32000:
# proxy-20m 23.8M, proxy-60m 65.0M, proxy-150m 142.6M (see tests/train_small/test_configs.py).
CONFIGS: dict[str, Callable[..., OpenELMConfig]] = {
    "cpu-tiny": _named("cpu-tiny", vocab_size=512, model_dim=64, num_layers=2, head_dim=16, ffn_dim_divisor=32,
                       max_seq_len=256),
    "proxy-20m": _named("proxy-20m", model_dim=384, num_layers=8),
    "proxy-60m": _named("proxy-60m", model_dim=640, num_layers=12),
    "proxy-150m": _named("proxy-150m", model_dim=1024, num_layers=12),
    "openelm-270m": _named("openelm-270m", model_dim=1280, num_layers=16),
    "openelm-450m": _named("openelm-450m", model_dim=1536, num_layers=20),
    "openelm-1.1b": _named("openelm-1.1b", model_dim=2048, num_layers=28),
    "openelm-3b": _named("openelm-3b", model_dim=3072, num_layers=36, head_dim=128),
}


def get_config(name: str, vocab_size: int | None = None, **overrides: Any) -> OpenELMConfig:
    """Build a named config (``cpu-tiny``, ``proxy-20m``, ..., ``openelm-3b``); ``vocab_size`` overrides the default."""
    key = name.lower().replace("_", "-")
    if key not in CONFIGS:
        raise KeyError(f"unknown model config {name!r}; known: {sorted(CONFIGS)}")
    return CONFIGS[key](vocab_size=vocab_size, **overrides)
