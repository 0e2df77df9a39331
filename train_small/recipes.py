"""Fixed training recipes for the OpenELM proxy: one function per recipe, each returning a frozen :class:`Recipe`.

A recipe fixes everything but the data, so two data mixes trained with one recipe differ only in their data
(DCLM, Li et al. 2024, https://arxiv.org/abs/2406.11794). Defaults:

* token budget 20 tokens per parameter (DCLM's "1x", Chinchilla-optimal; total parameters, tied embedding
  counted once) unless ``total_tokens`` is set;
* AdamW, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on matrices and embeddings and none on norm weights,
  peak LR 5.3e-3 (OpenELM-270M's pre-training config in apple/corenet), linear warmup then cosine decay to 10%
  of the peak (OpenELM/DCLM), gradient clipping at 1.0, z-loss 1e-4 (PaLM), bf16 autocast on GPU.

Variants derive from a base with ``dataclasses.replace`` (``get_recipe("proxy-20m", total_tokens=...)``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Recipe", "RECIPES", "get_recipe", "tiny", "proxy_20m", "proxy_60m", "proxy_150m", "openelm_270m"]


@dataclass(frozen=True)
class Recipe:
    name: str
    model: str  # a name in train_small.configs.CONFIGS
    seq_len: int
    global_batch: int  # sequences per optimizer step
    micro_batch: int  # sequences per forward/backward (global_batch / micro_batch accumulation steps)
    lr: float = 5.3e-3
    tokens_per_param: float = 20.0
    total_tokens: int | None = None  # overrides tokens_per_param when set
    warmup_frac: float = 0.02  # of the total steps (OpenELM: 5k of 350k iterations = 1.4%)
    min_lr_ratio: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    z_loss: float = 1e-4
    seed: int = 0
    use_kernels: bool | None = None  # None: Triton path iff CUDA
    compile: bool = False
    log_every: int = 10
    ckpt_every: int = 500

    def __post_init__(self) -> None:
        if self.global_batch % self.micro_batch:
            raise ValueError(f"global_batch {self.global_batch} is not a multiple of micro_batch {self.micro_batch}")
        if self.seq_len < 1 or self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1 or not 0 <= self.warmup_frac < 1:
            raise ValueError(f"invalid recipe {self}")

    @property
    def grad_accum(self) -> int:
        return self.global_batch // self.micro_batch

    @property
    def tokens_per_step(self) -> int:
        return self.global_batch * self.seq_len

    def token_budget(self, num_params: int) -> int:
        return int(self.total_tokens if self.total_tokens is not None else self.tokens_per_param * num_params)

    def total_steps(self, num_params: int) -> int:
        return max(1, math.ceil(self.token_budget(num_params) / self.tokens_per_step))

    def warmup_steps(self, total_steps: int) -> int:
        return max(1, round(self.warmup_frac * total_steps))

    def lr_at(self, step: int, total_steps: int) -> float:
        """LR for optimizer step ``step`` (0-based): linear warmup to the peak, then cosine to min_lr_ratio * peak."""
        warm = self.warmup_steps(total_steps)
        if step < warm:
            return self.lr * (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))
        floor = self.min_lr_ratio * self.lr
        return floor + 0.5 * (self.lr - floor) * (1 + math.cos(math.pi * progress))

    @property
    def arch(self) -> str:
        """The proxy family of ``model`` (``openelm`` or ``mobilellm``)."""
        from train_small.configs import get_config

        return get_config(self.model).arch

    def for_arch(self, arch: str) -> Recipe:
        """This recipe with the model of family ``arch`` that stands in for ``model`` (about the same parameter
        count; :func:`train_small.configs.arch_equivalent`); everything else, the data included, is unchanged.
        ``get_recipe("proxy-20m").for_arch("mobilellm").model == "mobilellm-20m"``."""
        from train_small.configs import arch_equivalent

        return dataclasses.replace(self, model=arch_equivalent(self.model, arch))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recipe:
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)


def tiny() -> Recipe:
    """CPU smoke recipe: cpu-tiny model, 40 steps of 8 x 64 tokens (fixed budget, not 20x)."""
    return Recipe(name="tiny", model="cpu-tiny", seq_len=64, global_batch=8, micro_batch=4, lr=1e-2,
                  total_tokens=40 * 8 * 64, warmup_frac=0.1, log_every=1, ckpt_every=20)


def proxy_20m() -> Recipe:
    """~24M parameters (vocab 32k), 20x tokens (~0.48B), 64 x 1024-token sequences per step."""
    return Recipe(name="proxy-20m", model="proxy-20m", seq_len=1024, global_batch=64, micro_batch=64)


def proxy_60m() -> Recipe:
    """~65M parameters (vocab 32k), 20x tokens (~1.3B), 128 x 2048 tokens per step."""
    return Recipe(name="proxy-60m", model="proxy-60m", seq_len=2048, global_batch=128, micro_batch=32)


def proxy_150m() -> Recipe:
    """~143M parameters (vocab 32k), 20x tokens (~2.9B), 256 x 2048 tokens per step."""
    return Recipe(name="proxy-150m", model="proxy-150m", seq_len=2048, global_batch=256, micro_batch=32)


def openelm_270m() -> Recipe:
    """OpenELM-270M shape (271.5M parameters), 20x tokens (~5.4B), 512 x 2048 (1M tokens) per step."""
    return Recipe(name="openelm-270m", model="openelm-270m", seq_len=2048, global_batch=512, micro_batch=16)


RECIPES: dict[str, Callable[[], Recipe]] = {
    "tiny": tiny,
    "proxy-20m": proxy_20m,
    "proxy-60m": proxy_60m,
    "proxy-150m": proxy_150m,
    "openelm-270m": openelm_270m,
}


def get_recipe(name: str, **overrides: Any) -> Recipe:
    """A recipe by name, with field overrides (``get_recipe("tiny", seed=1)``)."""
    key = name.lower().replace("_", "-")
    if key not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; known: {sorted(RECIPES)}")
    return dataclasses.replace(RECIPES[key](), **overrides) if overrides else RECIPES[key]()
