"""Reading the instrument: intervals over documents, the n-gram floor verdict, and decision accuracy.

Every comparison of two mixes is a difference of means over seeds whose uncertainty has two sources: the
seeds (training noise) and the finite reference set (which documents happened to be scored). This module
measures the second with a paired, stratified bootstrap over the scored items (reference documents, or task
examples): every resample draws, within each stratum (domain or task), as many items as it holds, with
replacement, and the same draw is applied to every trial, so differences between mixes are paired.

A metric (:class:`ItemScores`) is, per trial, a value per item as a ratio ``num / den`` summed within strata,
then combined across strata with fixed weights:

* reference bits per byte: ``num`` = a document's nats / ln 2, ``den`` = its bytes, strata = domains, weights =
  the domains' token counts (the token-weighted mean); lower is better;
* a task metric: ``num`` = the example's value, ``den`` = 1, strata = tasks, equal weights; higher is better.

:func:`decision_accuracy` is DataDecide's (Magnusson et al. 2025) for a known answer: the fraction of
(seed of A, seed of B) comparisons that order A and B the known way, with its bootstrap interval.
:func:`floor_verdict` says whether a mix's proxy beats the bigram floor on every domain by more than its seed
spread (and with a bootstrap interval of the margin above 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


def read_items(path: str) -> dict[str, np.ndarray]:
    """A trial's per-item table (``reference_docs.parquet`` or ``task_examples.parquet``) as columns: string
    columns (domain, task) as object arrays, numbers as numpy arrays -- what the functions below take."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    return {c: (np.asarray(t.column(c).to_pylist(), dtype=object)
                if pa.types.is_string(t.schema.field(c).type) or pa.types.is_large_string(t.schema.field(c).type)
                else t.column(c).to_numpy()) for c in t.column_names}

__all__ = ["ItemScores", "bootstrap_counts", "decision_accuracy", "difference", "floor_verdict",
           "reference_scores", "task_scores"]

DEFAULT_BOOT = 1000


@dataclass
class ItemScores:
    """``num`` (items x trials), ``den`` (items,), ``strata`` (items,) ints, ``weights`` (strata,), direction."""

    num: np.ndarray
    den: np.ndarray
    strata: np.ndarray
    weights: np.ndarray
    lower_is_better: bool
    names: list[str]  # stratum names

    def aggregate(self, counts: np.ndarray | None = None) -> np.ndarray:
        """Scores of every trial: (trials,) for the sample itself, (B, trials) for resample ``counts`` (B, items)."""
        c = np.ones((1, len(self.den))) if counts is None else counts
        out = np.zeros((c.shape[0], self.num.shape[1]))
        w = self.weights / self.weights.sum()
        for s in range(len(self.weights)):
            idx = np.flatnonzero(self.strata == s)
            num = c[:, idx] @ self.num[idx]  # (B, trials)
            den = c[:, idx] @ self.den[idx]  # (B,)
            out += w[s] * num / np.maximum(den, 1e-12)[:, None]
        return out[0] if counts is None else out


def bootstrap_counts(strata: np.ndarray, n_boot: int = DEFAULT_BOOT, seed: int = 0) -> np.ndarray:
    """(n_boot, items) resample counts: within each stratum, multinomial draws of its size."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n_boot, len(strata)), np.float64)
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        out[:, idx] = rng.multinomial(len(idx), np.full(len(idx), 1.0 / len(idx)), size=n_boot)
    return out


def reference_scores(per_doc: list[dict[str, np.ndarray]], which: str = "nll") -> ItemScores:
    """Bits per byte over reference documents for several trials (each a ``reference_docs.parquet`` as a dict
    of arrays: domain, nll, tokens, bytes, unigram, bigram). ``which``: ``nll`` (the proxy), ``unigram`` or
    ``bigram`` (its floor). The trials must have scored the same documents (checked)."""
    first = per_doc[0]
    for d in per_doc[1:]:
        if len(d["bytes"]) != len(first["bytes"]) or not np.array_equal(d["bytes"], first["bytes"]) or list(
                d["domain"]) != list(first["domain"]):
            raise ValueError("trials scored different reference documents: intervals need the same documents")
    names = sorted(set(first["domain"]))
    strata = np.array([names.index(x) for x in first["domain"]])
    tokens = np.asarray(first["tokens"], np.float64)
    weights = np.array([tokens[strata == s].sum() for s in range(len(names))])
    num = np.stack([np.asarray(d[which], np.float64) / math.log(2) for d in per_doc], axis=1)
    return ItemScores(num, np.asarray(first["bytes"], np.float64), strata, weights, True, names)


def task_scores(per_example: list[dict[str, np.ndarray]], metric: str, tasks: list[str] | None = None) -> ItemScores:
    """A task metric (``accuracy``, ``prob_correct_centered``, ``gold_logprob_per_byte``, ...) over examples,
    tasks weighted equally (higher is better), or ``gold_bits_per_byte`` (the correct continuation's bits per
    byte, from ``gold_logprob_per_byte``; lower is better). Trials must hold the same examples (checked)."""
    bits = metric == "gold_bits_per_byte"
    metric = "gold_logprob_per_byte" if bits else metric
    first = per_example[0]
    keep = np.ones(len(first["task"]), bool) if tasks is None else np.isin(np.asarray(first["task"]), tasks)
    key = [f"{t}#{i}" for t, i in zip(np.asarray(first["task"])[keep], np.asarray(first["index"])[keep])]
    for d in per_example[1:]:
        k2 = np.ones(len(d["task"]), bool) if tasks is None else np.isin(np.asarray(d["task"]), tasks)
        if [f"{t}#{i}" for t, i in zip(np.asarray(d["task"])[k2], np.asarray(d["index"])[k2])] != key:
            raise ValueError("trials evaluated different task examples: intervals need the same examples")
    names = sorted(set(np.asarray(first["task"])[keep]))
    strata = np.array([names.index(t) for t in np.asarray(first["task"])[keep]])
    num = np.stack([np.asarray(d[metric], np.float64)[keep if tasks is None else np.isin(np.asarray(d["task"]),
                                                                                          tasks)]
                    for d in per_example], axis=1)
    if bits:
        num = -num / math.log(2)
    return ItemScores(num, np.ones(len(strata)), strata, np.ones(len(names)), bits, names)


def _better(a: np.ndarray, b: np.ndarray, lower: bool) -> np.ndarray:
    return a < b if lower else a > b


def decision_accuracy(scores: ItemScores, good: list[int], bad: list[int], n_boot: int = DEFAULT_BOOT,
                      seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Fraction of (good seed, bad seed) pairs where the known-better trials ``good`` beat ``bad`` (trial
    columns), on the sample and its bootstrap interval over items; ties count half."""
    def da(s: np.ndarray) -> np.ndarray:
        g, b = s[..., good][..., :, None], s[..., bad][..., None, :]
        wins = _better(g, b, scores.lower_is_better).astype(np.float64) + 0.5 * (g == b)
        return wins.mean(axis=(-2, -1))

    point = float(da(scores.aggregate()))
    boot = da(scores.aggregate(bootstrap_counts(scores.strata, n_boot, seed)))
    lo, hi = np.quantile(boot, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"decision_accuracy": point, "interval": [float(lo), float(hi)], "pairs": len(good) * len(bad),
            "n_boot": n_boot}


def difference(scores: ItemScores, a: list[int], b: list[int], n_boot: int = DEFAULT_BOOT, seed: int = 0,
               level: float = 0.95) -> dict[str, Any]:
    """Mean over seeds of A minus mean over seeds of B, its bootstrap interval over items, and the seed
    spreads (max - min) of both."""
    s = scores.aggregate()
    boot = scores.aggregate(bootstrap_counts(scores.strata, n_boot, seed))
    d = boot[:, a].mean(1) - boot[:, b].mean(1)
    lo, hi = np.quantile(d, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"difference": float(s[a].mean() - s[b].mean()), "interval": [float(lo), float(hi)],
            "spread_a": float(np.ptp(s[a])), "spread_b": float(np.ptp(s[b]))}


def floor_verdict(per_doc: list[dict[str, np.ndarray]], n_boot: int = DEFAULT_BOOT, seed: int = 0) -> dict[str, Any]:
    """Does a mix's proxy (its trials = seeds) beat the bigram floor fit on its own stream on every reference
    domain, by more than the proxy's seed spread, with the bootstrap interval of the margin above 0?

    Returns ``{"beats_ngram_floor", "domains": {d: {proxy_bpb, bigram_bpb, unigram_bpb, margin, seed_spread,
    interval, beats}}}``; margin = bigram - proxy (positive: the proxy is better)."""
    proxy = reference_scores(per_doc, "nll")
    out: dict[str, Any] = {"domains": {}}
    counts = bootstrap_counts(proxy.strata, n_boot, seed)
    allok = True
    for s, name in enumerate(proxy.names):
        idx = np.flatnonzero(proxy.strata == s)
        sub = {k: [d[k][idx] if k != "domain" else np.asarray(d["domain"])[idx] for d in per_doc]
               for k in ("domain", "nll", "tokens", "bytes", "unigram", "bigram")}
        docs = [{k: sub[k][i] for k in sub} for i in range(len(per_doc))]
        p, bi, un = (reference_scores(docs, w) for w in ("nll", "bigram", "unigram"))
        c = counts[:, idx]
        pv, bv = p.aggregate(), bi.aggregate()
        margin_boot = bi.aggregate(c).mean(1) - p.aggregate(c).mean(1)
        lo, hi = np.quantile(margin_boot, [0.025, 0.975])
        margin = float(bv.mean() - pv.mean())
        spread = float(np.ptp(pv))
        beats = bool(margin > spread and lo > 0)
        allok &= beats
        out["domains"][name] = {"proxy_bpb": float(pv.mean()), "bigram_bpb": float(bv.mean()),
                                "unigram_bpb": float(un.aggregate().mean()), "margin": margin, "seed_spread": spread,
                                "interval": [float(lo), float(hi)], "beats": beats}  # fmt: skip
    out["beats_ngram_floor"] = allok
    return out
