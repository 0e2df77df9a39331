"""Model configurations for the two proxy families: OpenELM (layer-wise scaling) and MobileLLM (deep and thin).

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

MobileLLM (Liu et al. 2024, https://arxiv.org/abs/2402.14905) is a Llama-style decoder made deep and thin for its
size: SwiGLU, shared input/output embedding, grouped-query attention, no q/k norm, RMSNorm eps 1e-5, and optionally
"immediate block-wise repeat" (each block runs twice in a row; ``layer_repeat=2``, the paper's MobileLLM-LS).
Every layer has the same shape. ``mobilellm-125m`` / ``mobilellm-350m`` are the published models' shapes
(``facebook/MobileLLM-*`` ``config.json``: 576 x 30, 9/3 heads, FFN 1536; 960 x 32, 15/5 heads, FFN 2560); the
proxies ``mobilellm-tiny`` / ``-20m`` / ``-60m`` match the parameter counts of ``cpu-tiny`` / ``proxy-20m`` /
``proxy-60m`` with two to four times their depth.

Both config classes expose the same per-layer fields (``num_query_heads``, ``num_kv_heads``, ``ffn_dims``), plus
``arch``, ``qk_norm`` and ``layer_repeat``, so one decoder (:mod:`train_small.model`) builds either family.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "OpenELMConfig",
    "MobileLLMConfig",
    "ModelConfig",
    "config_from_dict",
    "ARCHS",
    "arch_equivalent",
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

    arch: ClassVar[str] = "openelm"
    qk_norm: ClassVar[bool] = True  # RMSNorm on each query and key head before RoPE
    layer_repeat: ClassVar[int] = 1

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
        out["arch"] = self.arch
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OpenELMConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class MobileLLMConfig:
    """One MobileLLM model: every layer has ``heads`` query heads, ``kv_heads`` key/value heads and FFN ``ffn_dim``.

    ``layer_repeat=2`` is the paper's immediate block-wise weight sharing (MobileLLM-LS): each block runs twice in
    a row, doubling depth and compute at the same parameter count. ``init_std`` is the normal initialisation of
    every linear and embedding weight (``initializer_range`` 0.02 of the published configs).
    """

    arch: ClassVar[str] = "mobilellm"
    qk_norm: ClassVar[bool] = False

    name: str = "custom"
    vocab_size: int = 32000
    model_dim: int = 576
    num_layers: int = 30
    head_dim: int = 64
    heads: int = 9
    kv_heads: int = 3
    ffn_dim: int = 1536
    layer_repeat: int = 1
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_seq_len: int = 2048
    init_std: float = 0.02
    use_kernels: bool = False

    def __post_init__(self) -> None:
        if self.head_dim % 2 != 0:
            raise ValueError(f"head_dim must be even for RoPE, got {self.head_dim}")
        if min(self.model_dim, self.num_layers, self.vocab_size, self.heads, self.kv_heads, self.ffn_dim) <= 0:
            raise ValueError("model_dim, num_layers, vocab_size, heads, kv_heads and ffn_dim must be positive")
        if self.heads % self.kv_heads:
            raise ValueError(f"heads ({self.heads}) must be a multiple of kv_heads ({self.kv_heads})")
        if self.layer_repeat not in (1, 2):
            raise ValueError(f"layer_repeat is 1 (no sharing) or 2 (block-wise repeat), got {self.layer_repeat}")

    @property
    def num_query_heads(self) -> list[int]:
        return [self.heads] * self.num_layers

    @property
    def num_kv_heads(self) -> list[int]:
        return [self.kv_heads] * self.num_layers

    @property
    def ffn_dims(self) -> list[int]:
        return [self.ffn_dim] * self.num_layers

    def layer_shapes(self, i: int) -> dict[str, tuple[int, ...]]:
        """Weight shapes of layer ``i`` (PyTorch ``Linear`` layout), in our module names (no q/k norm)."""
        d, hd, q, kv, f = self.model_dim, self.head_dim, self.heads, self.kv_heads, self.ffn_dim
        return {
            "attn_norm": (d,),
            "qkv_proj": ((q + 2 * kv) * hd, d),
            "out_proj": (d, q * hd),
            "ffn_norm": (d,),
            "proj_1": (2 * f, d),
            "proj_2": (d, f),
        }

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "arch": self.arch}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MobileLLMConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


ModelConfig = OpenELMConfig | MobileLLMConfig
ARCHS: dict[str, type] = {"openelm": OpenELMConfig, "mobilellm": MobileLLMConfig}


def config_from_dict(d: dict[str, Any]) -> ModelConfig:
    """Rebuild a config saved with ``to_dict`` (checkpoints written before ``arch`` existed are OpenELM)."""
    arch = d.get("arch", "openelm")
    if arch not in ARCHS:
        raise ValueError(f"unknown model family {arch!r}; known: {sorted(ARCHS)}")
    return ARCHS[arch].from_dict(d)


def count_parameters(cfg: ModelConfig, include_embedding: bool = True) -> int:
    """Parameter count from the config alone (tied input/output embedding counted once)."""
    total = cfg.model_dim  # final norm
    for i in range(cfg.num_layers):
        total += sum(int(np.prod(s)) for s in cfg.layer_shapes(i).values())
    if include_embedding:
        total += cfg.vocab_size * cfg.model_dim
    return total


def _named(name: str, cls: type = OpenELMConfig, **kw: Any) -> Callable[..., ModelConfig]:
    def build(vocab_size: int | None = None, **overrides: Any) -> ModelConfig:
        args = dict(kw, name=name, **overrides)
        if vocab_size is not None:
            args["vocab_size"] = vocab_size
        return cls(**args)

    build.__name__ = name.replace("-", "_").replace(".", "_")
    return build


# Public OpenELM sizes (apple/corenet gpt_configs; HF apple/OpenELM-* config.json, vocab 32000).
# Proxy ladder: same scaling rules, head_dim 64, 4 GQA groups. Parameter counts at vocab 32000:
# proxy-20m 23.8M, proxy-60m 65.0M, proxy-150m 142.6M (see tests/train_small/test_configs.py).
CONFIGS: dict[str, Callable[..., ModelConfig]] = {
    "cpu-tiny": _named("cpu-tiny", vocab_size=512, model_dim=64, num_layers=2, head_dim=16, ffn_dim_divisor=32,
                       max_seq_len=256),
    # CPU proxy ladder for known-answer calibration (pipelines/calibrate.py): 1.1M / 4.6M parameters at vocab 4096
    "cpu-1m": _named("cpu-1m", vocab_size=4096, model_dim=128, num_layers=4, head_dim=32, ffn_dim_divisor=32,
                     max_seq_len=256),
    "cpu-4m": _named("cpu-4m", vocab_size=4096, model_dim=256, num_layers=6, head_dim=32, ffn_dim_divisor=32,
                     max_seq_len=256),
    "proxy-20m": _named("proxy-20m", model_dim=384, num_layers=8),
    "proxy-60m": _named("proxy-60m", model_dim=640, num_layers=12),
    "proxy-150m": _named("proxy-150m", model_dim=1024, num_layers=12),
    "openelm-270m": _named("openelm-270m", model_dim=1280, num_layers=16),
    "openelm-450m": _named("openelm-450m", model_dim=1536, num_layers=20),
    "openelm-1.1b": _named("openelm-1.1b", model_dim=2048, num_layers=28),
    "openelm-3b": _named("openelm-3b", model_dim=3072, num_layers=36, head_dim=128),
    # MobileLLM: published shapes (facebook/MobileLLM-125M, -350M config.json) and proxies of the OpenELM ladder's
    # sizes at vocab 32000: tiny 0.11M (vocab 512), 20m 23.9M (20 layers), 60m 65.8M (34 layers).
    "mobilellm-tiny": _named("mobilellm-tiny", MobileLLMConfig, vocab_size=512, model_dim=48, num_layers=4,
                             head_dim=16, heads=3, kv_heads=1, ffn_dim=104, max_seq_len=256),
    "mobilellm-20m": _named("mobilellm-20m", MobileLLMConfig, model_dim=256, num_layers=20, heads=4, kv_heads=2,
                            ffn_dim=768),
    "mobilellm-60m": _named("mobilellm-60m", MobileLLMConfig, model_dim=384, num_layers=34, heads=6, kv_heads=2,
                            ffn_dim=1024),
    "mobilellm-125m": _named("mobilellm-125m", MobileLLMConfig, model_dim=576, num_layers=30, heads=9, kv_heads=3,
                             ffn_dim=1536),
    "mobilellm-ls-125m": _named("mobilellm-ls-125m", MobileLLMConfig, model_dim=576, num_layers=30, heads=9,
                                kv_heads=3, ffn_dim=1536, layer_repeat=2),
    "mobilellm-350m": _named("mobilellm-350m", MobileLLMConfig, model_dim=960, num_layers=32, heads=15, kv_heads=5,
                             ffn_dim=2560),
}

# The other family's model of about the same size, for training one recipe with either family
# (``Recipe.for_arch``). Parameter counts at vocab 32000 (tiny: 512) are in train_small/README.md.
_EQUIVALENT: dict[str, dict[str, str]] = {
    "openelm": {"mobilellm-tiny": "cpu-tiny", "mobilellm-20m": "proxy-20m", "mobilellm-60m": "proxy-60m",
                "mobilellm-125m": "proxy-150m", "mobilellm-350m": "openelm-270m"},
    "mobilellm": {"cpu-tiny": "mobilellm-tiny", "proxy-20m": "mobilellm-20m", "proxy-60m": "mobilellm-60m",
                  "proxy-150m": "mobilellm-125m", "openelm-270m": "mobilellm-350m"},
}


def arch_equivalent(model: str, arch: str) -> str:
    """The config of family ``arch`` that stands in for config ``model`` (itself when it is of that family)."""
    key = model.lower().replace("_", "-")
    if arch not in ARCHS:
        raise ValueError(f"unknown model family {arch!r}; known: {sorted(ARCHS)}")
    if key in CONFIGS and CONFIGS[key]().arch == arch:
        return key
    if key not in _EQUIVALENT[arch]:
        raise KeyError(f"no {arch} model stands in for {model!r}; known: {sorted(_EQUIVALENT[arch])}")
    return _EQUIVALENT[arch][key]


def get_config(name: str, vocab_size: int | None = None, **overrides: Any) -> ModelConfig:
    """Build a named config (``cpu-tiny``, ``proxy-20m``, ..., ``openelm-3b``, ``mobilellm-125m``, ...);
    ``vocab_size`` overrides the default."""
    key = name.lower().replace("_", "-")
    if key not in CONFIGS:
        raise KeyError(f"unknown model config {name!r}; known: {sorted(CONFIGS)}")
    return CONFIGS[key](vocab_size=vocab_size, **overrides)
