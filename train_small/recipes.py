"""Fixed training recipes for the OpenELM proxy: one function per recipe, each returning a frozen :class:`Recipe`.

A recipe fixes everything but the data, so two data mixes trained with one recipe differ only in their data
(DCLM, Li et al. 2024, https://arxiv.org/abs/2406.11794). Defaults:

* token budget 20 tokens per parameter (DCLM's "1x", Chinchilla-optimal; total parameters, tied embedding
  counted once) unless ``total_tokens`` is set;
* AdamW, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on matrices and embeddings and none on norm weights,
  linear warmup then cosine decay to 10% of the peak (OpenELM/DCLM), gradient clipping at 1.0, z-loss 1e-4
  (PaLM), bf16 autocast on GPU;
* the peak learning rate set for each recipe's batch and width (:func:`scaled_lr`), not OpenELM's 5.3e-3 as is.

Learning rates. OpenELM-270M's peak LR, 5.3e-3 (apple/corenet), goes with its ~4.2M-token batches (2,048
sequences of 2,048) and its width 1,280; our recipes take 4x (openelm-270m) to 64x (proxy-20m) fewer tokens per
step. :func:`scaled_lr` moves the anchor to each recipe's batch B and width d:

    lr = 5.3e-3 * sqrt(B / 4,194,304) * (1280 / d)

the square-root rule for Adam-type optimisers (Malladi et al. 2022, arXiv:2205.10287: the same trajectory
at k times the batch needs sqrt(k) times the LR) and muP's 1/width scaling of Adam's LR for hidden matrices
(Yang et al. 2021, arXiv:2203.03466). The smallest sizes were swept on CPU instead (``python -m
train_small.lr_sweep``; ``train_small/results/lr_sweep.json``, real text, 2 seeds): ``tiny`` keeps 1e-2, inside
the flat optimum the sweep found at its batch (8e-3 to 1.6e-2). The sweep also says where the rule is weakest:
at these tiny widths, doubling d moved the optimum down 4x (the rule says 2x), and 4x the batch did not move it
measurably (the rule says 2x) within 2-seed noise; so at the proxies' sizes the rule errs, if anything, low,
which costs some loss but not stability. A GPU sweep at proxy-20m is the check still to do.

MobileLLM takes a quarter of OpenELM's LR at the same batch and width (``FAMILY_LR_FACTOR``; it has no q/k norm,
which is what lets OpenELM run hot): the published MobileLLM-125M trained at 2e-3 with ~2.1M-token steps
(32 GPUs x 32 x 2,048) at width 576, where the OpenELM rule gives 8.3e-3 (ratio 0.24), and the CPU sweep put
mobilellm-tiny's optimum at 4e-3 against cpu-tiny's 1.6e-2 (ratio 0.25), with 1.6e-2 diverging for MobileLLM
(held-out 4.76 against 3.90). :meth:`Recipe.for_arch` applies the factor.

Variants derive from a base with ``dataclasses.replace`` (``get_recipe("proxy-20m", total_tokens=...)``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Recipe", "RECIPES", "get_recipe", "scaled_lr", "tiny", "cpu_1m", "cpu_4m", "proxy_20m", "proxy_60m",
           "proxy_150m", "openelm_270m"]

OPENELM_LR, OPENELM_BATCH_TOKENS, OPENELM_DIM = 5.3e-3, 2048 * 2048, 1280
FAMILY_LR_FACTOR = {"openelm": 1.0, "mobilellm": 0.25}  # see the module docstring


def _digits(x: float) -> float:
    return float(f"{x:.2g}")


def scaled_lr(batch_tokens: int, model_dim: int, arch: str = "openelm") -> float:
    """OpenELM-270M's peak LR moved to another batch (square-root rule) and width (1/d), times the family's
    factor, to 2 significant digits."""
    lr = OPENELM_LR * math.sqrt(batch_tokens / OPENELM_BATCH_TOKENS) * (OPENELM_DIM / model_dim)
    return _digits(lr * FAMILY_LR_FACTOR[arch])


@dataclass(frozen=True)
class Recipe:
    name: str
    model: str  # a name in train_small.configs.CONFIGS
    seq_len: int
    global_batch: int  # sequences per optimizer step
    micro_batch: int  # sequences per forward/backward (global_batch / micro_batch accumulation steps)
    lr: float = OPENELM_LR  # every named recipe sets its own (see the module docstring)
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
        count; :func:`train_small.configs.arch_equivalent`) and the family's learning rate (``lr`` times the
        ratio of :data:`FAMILY_LR_FACTOR`); everything else, the data included, is unchanged.
        ``get_recipe("proxy-20m").for_arch("mobilellm")``: ``mobilellm-20m`` at 5.5e-4."""
        from train_small.configs import arch_equivalent

        if arch == self.arch:
            return self
        lr = _digits(self.lr * FAMILY_LR_FACTOR[arch] / FAMILY_LR_FACTOR[self.arch])
        return dataclasses.replace(self, model=arch_equivalent(self.model, arch), lr=lr)

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
    """CPU smoke recipe: cpu-tiny model, 40 steps of 8 x 64 tokens (fixed budget, not 20x); LR 1e-2 from the CPU
    sweep (flat optimum 8e-3..1.6e-2 at this batch)."""
    return Recipe(name="tiny", model="cpu-tiny", seq_len=64, global_batch=8, micro_batch=4, lr=1e-2,
                  total_tokens=40 * 8 * 64, warmup_frac=0.1, log_every=1, ckpt_every=20)


def cpu_1m() -> Recipe:
    """CPU calibration proxy: cpu-1m (1.1M parameters at vocab 4096), 128-token windows, 8 sequences (1,024
    tokens) per step, LR 1e-2; the budget is set per experiment (``total_tokens``; default 2M).

    Measured on 1M tokens of real English text (held-out bits per byte after training, one seed): 1,024 tokens
    per step beat 4,096 (the same tokens in 4x more steps) by ~0.3 nats of training loss, and 1e-2 beat 3e-3 by
    ~0.2 at 1,024 tokens per step (5.04 against 5.25 after 800 steps)."""
    return Recipe(name="cpu-1m", model="cpu-1m", seq_len=128, global_batch=8, micro_batch=8, lr=1e-2,
                  total_tokens=2_000_000, warmup_frac=0.05, log_every=50, ckpt_every=1000)


def cpu_4m() -> Recipe:
    """CPU calibration proxy: cpu-4m (4.6M parameters at vocab 4096, twice cpu-1m's width), LR 3e-3 (the CPU
    sweep found the optimum falling ~4x per doubling of the width at these sizes), as :func:`cpu_1m`
    otherwise."""
    return Recipe(name="cpu-4m", model="cpu-4m", seq_len=128, global_batch=8, micro_batch=8, lr=3e-3,
                  total_tokens=2_000_000, warmup_frac=0.05, log_every=50, ckpt_every=1000)


def proxy_20m() -> Recipe:
    """~24M parameters (vocab 32k), 20x tokens (~0.48B), 64 x 1024-token sequences per step, LR 2.2e-3."""
    return Recipe(name="proxy-20m", model="proxy-20m", seq_len=1024, global_batch=64, micro_batch=64,
                  lr=scaled_lr(64 * 1024, 384))


def proxy_60m() -> Recipe:
    """~65M parameters (vocab 32k), 20x tokens (~1.3B), 128 x 2048 tokens per step, LR 2.7e-3."""
    return Recipe(name="proxy-60m", model="proxy-60m", seq_len=2048, global_batch=128, micro_batch=32,
                  lr=scaled_lr(128 * 2048, 640))


def proxy_150m() -> Recipe:
    """~143M parameters (vocab 32k), 20x tokens (~2.9B), 256 x 2048 tokens per step, LR 2.3e-3."""
    return Recipe(name="proxy-150m", model="proxy-150m", seq_len=2048, global_batch=256, micro_batch=32,
                  lr=scaled_lr(256 * 2048, 1024))


def openelm_270m() -> Recipe:
    """OpenELM-270M shape (271.5M parameters), 20x tokens (~5.4B), 512 x 2048 (1M tokens) per step, LR 2.7e-3."""
    return Recipe(name="openelm-270m", model="openelm-270m", seq_len=2048, global_batch=512, micro_batch=16,
                  lr=scaled_lr(512 * 2048, 1280))


RECIPES: dict[str, Callable[[], Recipe]] = {
    "tiny": tiny,
    "cpu-1m": cpu_1m,
    "cpu-4m": cpu_4m,
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
