"""Does the data ranking depend on the proxy? Rank agreement between proxy families' leaderboards.

Every mix is trained with each proxy family (``Recipe.for_arch``) and several seeds. For one seed, each family
orders the mixes by a metric; Kendall's tau-b between two families' orders is 1 when they agree on every pair
of mixes, -1 when they disagree on every pair, and about 0 when the orders are unrelated. Over seeds we report
its mean and spread (min, max, standard deviation), plus the tau between the families' seed-averaged scores.

tau-b (Kendall 1945) corrects for ties: ``(n_c - n_d) / sqrt((n_0 - n_x)(n_0 - n_y))`` with ``n_0 = n(n-1)/2``
pairs, ``n_c`` / ``n_d`` concordant / discordant pairs and ``n_x`` / ``n_y`` pairs tied in one ranking only or
in both. It is written here (a few lines over at most a few dozen mixes) rather than taken from scipy, which
is not a dependency of this package; the tests check it against ``scipy.stats.kendalltau`` where installed.
The direction of the metric does not change tau (both families' scores flip together); it only orders the
``rankings`` reported beside it.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

__all__ = ["kendall_tau", "rank_agreement", "rank_agreement_from_results"]


def kendall_tau(x: list[float] | np.ndarray, y: list[float] | np.ndarray) -> float:
    """Kendall's tau-b between two score vectors over the same items; NaN when one vector is constant."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"kendall_tau needs two 1-D vectors of one length, got {a.shape} and {b.shape}")
    if len(a) < 2:
        raise ValueError("kendall_tau needs at least two items")
    i, j = np.triu_indices(len(a), k=1)
    da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    n0 = len(i)
    ties_a, ties_b = int(np.sum(da == 0)), int(np.sum(db == 0))
    denom = math.sqrt((n0 - ties_a) * (n0 - ties_b))
    return float(np.sum(da * db) / denom) if denom > 0 else float("nan")


def _summary(taus: dict[Any, float]) -> dict[str, Any]:
    vals = np.array([t for t in taus.values() if not math.isnan(t)], dtype=float)
    if len(vals) == 0:
        return {"per_seed": taus, "n_seeds": 0, "tau_mean": float("nan"), "tau_min": float("nan"),
                "tau_max": float("nan"), "tau_std": float("nan")}  # fmt: skip
    return {
        "per_seed": taus,
        "n_seeds": len(vals),
        "tau_mean": float(vals.mean()),
        "tau_min": float(vals.min()),
        "tau_max": float(vals.max()),
        "tau_std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
    }


def rank_agreement(
    results_by_arch: dict[str, dict[str, dict[Any, float]]], higher_is_better: bool = False
) -> dict[str, Any]:
    """Kendall tau between proxy families' rankings of the mixes, per seed, and its spread over seeds.

    ``results_by_arch``: ``{arch: {mix: {seed: score}}}`` (e.g. held-out loss, lower is better). Mixes scored
    by every family are compared (others are listed under ``mixes_missing``); per seed, the seeds every family
    ran for every compared mix. Returns, for each pair of families ``"A~B"`` under ``pairs``: ``per_seed``
    ``{seed: tau}``, ``tau_mean``, ``tau_min``, ``tau_max``, ``tau_std``, ``n_seeds`` and ``tau_of_means``
    (tau between the seed-averaged scores); with exactly two families the same keys also at the top level.
    ``rankings``: per family, the mixes best first by seed-averaged score.
    """
    archs = sorted(results_by_arch)
    if len(archs) < 2:
        raise ValueError(f"rank agreement needs at least two proxy families, got {archs}")
    mix_sets = [set(results_by_arch[a]) for a in archs]
    mixes = sorted(set.intersection(*mix_sets))
    missing = sorted(set.union(*mix_sets) - set(mixes))
    if len(mixes) < 2:
        raise ValueError(f"rank agreement needs at least two mixes scored by every family, got {mixes}")
    seeds = sorted(set.intersection(*(set(results_by_arch[a][m]) for a in archs for m in mixes)), key=str)
    means = {a: np.array([np.mean(list(results_by_arch[a][m].values())) for m in mixes]) for a in archs}
    sign = -1.0 if higher_is_better else 1.0
    out: dict[str, Any] = {
        "archs": archs,
        "mixes": mixes,
        "mixes_missing": missing,
        "seeds": seeds,
        "higher_is_better": higher_is_better,
        "rankings": {a: [mixes[k] for k in np.argsort(sign * means[a], kind="stable")] for a in archs},
        "pairs": {},
    }
    for a, b in itertools.combinations(archs, 2):
        per_seed = {
            s: kendall_tau([results_by_arch[a][m][s] for m in mixes], [results_by_arch[b][m][s] for m in mixes])
            for s in seeds
        }
        pair = _summary(per_seed)
        pair["tau_of_means"] = kendall_tau(means[a], means[b])
        out["pairs"][f"{a}~{b}"] = pair
    if len(archs) == 2:
        out.update(next(iter(out["pairs"].values())))
    return out


def rank_agreement_from_results(
    results: list[dict[str, Any]], metric: str, higher_is_better: bool | None = None
) -> dict[str, Any]:
    """:func:`rank_agreement` over ``score`` results (``result.json`` dicts with ``arch``, ``seed`` and
    ``extra["mix"]``), on one key of :func:`train_small.eval.score.flat_metrics` (``"heldout/clean/loss"``,
    ``"core"``...). ``higher_is_better`` defaults to False for losses and bits per byte, True otherwise."""
    from train_small.eval.score import flat_metrics

    if higher_is_better is None:
        higher_is_better = not any(k in metric for k in ("loss", "bits_per_byte", "perplexity"))
    table: dict[str, dict[str, dict[Any, float]]] = {}
    for r in results:
        flat = flat_metrics(r)
        if metric not in flat:
            continue
        mix = (r.get("extra") or {}).get("mix")
        if mix is None:
            raise ValueError("a result without extra['mix']: pass extra={'mix': name} to score()")
        table.setdefault(r.get("arch", "openelm"), {}).setdefault(mix, {})[r["seed"]] = flat[metric]
    out = rank_agreement(table, higher_is_better=higher_is_better)
    out["metric"] = metric
    return out
