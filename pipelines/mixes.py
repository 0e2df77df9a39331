"""Data mixes of an ablation: which curation recipe, and how the curated sources are weighted.

A :class:`Mix` names the blocks of the baseline recipe it runs (``pipelines/recipes.py``),
its own recipe options on top of the ablation's (``recipe_options``: fields of
:class:`~pipelines.recipes.RecipeOptions`), and optional per-source token weights.
Mixes with the same blocks and options share one curation run (:attr:`Mix.curation_key`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.recipes import BLOCKS, RecipeOptions, options_from_flags


@dataclass(frozen=True)
class Mix:
    """One data mix: the curation blocks to run, their options, and optional per-source token weights.

    ``recipe_options``: ``{option: value}`` (fields of RecipeOptions, e.g. ``{"quality_top_fraction": 0.3}``),
    or the same as recipe flags (``("--quality-top-fraction", "0.3")``, the older form); kept as sorted pairs.
    """

    name: str
    blocks: tuple[str, ...]  # from pipelines/recipes.py BLOCKS, in order; () = the raw pool
    weights: tuple[tuple[str, float], ...] | str | None = None  # ((source, w), ...), "uniform", or natural
    description: str = ""
    recipe_options: Any = ()

    def __post_init__(self) -> None:
        opts = self.recipe_options
        if isinstance(opts, dict):
            pairs = dict(opts)
        elif opts and all(isinstance(x, str) for x in opts):
            pairs = options_from_flags(list(opts))
        else:
            pairs = dict(opts)
        RecipeOptions().replace(**pairs)  # unknown names and bad values fail here, not in the middle of a run
        norm = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in pairs.items()))
        object.__setattr__(self, "recipe_options", norm)
        unknown = sorted(set(self.blocks) - set(BLOCKS))
        if unknown:
            raise ValueError(f"mix {self.name}: unknown blocks {unknown}; choose from {list(BLOCKS)}")

    def options(self, base: RecipeOptions) -> RecipeOptions:
        """The recipe options of this mix: ``base`` (the ablation's), then the mix's own."""
        return base.replace(**dict(self.recipe_options))

    @property
    def curation_key(self) -> str:
        key = "raw" if not self.blocks else "+".join(self.blocks)
        if self.recipe_options:
            blob = json.dumps(self.to_json()["recipe_options"], sort_keys=True)
            key += "~" + hashlib.sha256(blob.encode()).hexdigest()[:8]
        return key

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "blocks": list(self.blocks),
            "weights": dict(self.weights) if isinstance(self.weights, tuple) else self.weights,
            "description": self.description,
            "recipe_options": {k: list(v) if isinstance(v, tuple) else v for k, v in self.recipe_options},
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Mix:
        w = d.get("weights")
        w = tuple(sorted((str(k), float(v)) for k, v in w.items())) if isinstance(w, dict) else w
        opts = d.get("recipe_options", tuple(str(a) for a in d.get("recipe_args", ())))
        return cls(d["name"], tuple(d.get("blocks", ())), w, d.get("description", ""), opts)


#: mixes run by default (the ablation ladder of the DCLM paper, plus a source re-weighting)
DEFAULT_MIXES: dict[str, Mix] = {
    m.name: m
    for m in [
        Mix("raw", (), description="the pool as read (minus the held-out slice)"),
        Mix("heuristics", ("heuristics",), description="RefinedWeb heuristics only"),
        Mix("heuristics+dedup", ("heuristics", "dedup"), description="heuristics, then exact/MinHash/BFF dedup"),
        Mix("baseline", ("heuristics", "dedup", "quality"), description="the full DCLM-style baseline"),
        Mix(
            "baseline-uniform-sources",
            ("heuristics", "dedup", "quality"),
            weights="uniform",
            description="the baseline's documents, every source weighted equally",
        ),
    ]
}

#: further named mixes (``--mixes`` accepts any of KNOWN_MIXES)
KNOWN_MIXES: dict[str, Mix] = DEFAULT_MIXES | {
    m.name: m
    for m in [
        Mix(
            "baseline-top30",
            ("heuristics", "dedup", "quality"),
            description="the baseline keeping the top 30% by quality (10% of a small pool is very little text)",
            recipe_options={"quality_top_fraction": 0.3},
        ),
    ]
}


def select_mixes(names: str, mix_file: str | None = None) -> list[Mix]:
    """The mixes of a comma list of KNOWN_MIXES names plus those of a JSON mix file; ValueError if
    a name is unknown, repeated, or nothing is selected."""
    mixes = []
    for name in [x for x in names.split(",") if x]:
        if name not in KNOWN_MIXES:
            raise ValueError(f"unknown mix {name!r}; known: {list(KNOWN_MIXES)} (or use --mix-file)")
        mixes.append(KNOWN_MIXES[name])
    if mix_file:
        mixes += [Mix.from_json(d) for d in json.loads(Path(mix_file).read_text())]
    got = [m.name for m in mixes]
    if len(set(got)) != len(got) or not mixes:
        raise ValueError(f"need distinct, non-empty mixes, got {got}")
    return mixes
