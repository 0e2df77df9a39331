"""The n-gram floor: unigram and bigram models fit on exactly the tokens a proxy trained on, scored like it.

A proxy's bits per byte mean something only against what counting alone achieves on the same data. For a
trial, :func:`fit_floor` reads the windows the trainer consumed (the same ``TokenStream`` order, seed and
positions, epochs included) and counts, over every (input, target) pair the trainer's loss saw:

* a **unigram** model of the targets, add-k smoothed;
* a **bigram** model, interpolated Kneser-Ney (Kneser & Ney 1995; Chen & Goodman 1998, "interpolated KN"):
  ``P(w | v) = max(c(v,w) - D, 0) / c(v) + D * N1+(v .) / c(v) * Pc(w)`` with the continuation unigram
  ``Pc(w) = (max(N1+(. w) - D, 0) + D * types / V) / N1+(. .)``, which is proper over the whole vocabulary
  (a token never seen as a continuation gets ``D * types / V / N1+(. .)``); an unseen context backs off to
  ``Pc``.

``k`` and ``D`` are chosen on a split: every 20th window is held out, the counts of the other windows score it
for each value of a fixed grid, the best value is kept and the model is refit on every window. Both models
then score documents exactly as :func:`train_small.eval.reference.documents_nll` scores them for the proxy:
the same tokenizer, each document on its own from the same start token, every token predicted once, so their
bits per byte compare with the proxy's domain by domain.

Memory: counts are accumulated per chunk of windows with ``np.unique`` and merged, so the peak is the number
of distinct bigrams seen (at most the tokens seen), never the vocabulary squared.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["BigramCounts", "NGramFloor", "fit_floor", "count_windows", "trial_windows"]

K_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
D_GRID = (0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
TUNE_EVERY = 20  # every 20th window chooses k and D


@dataclass
class BigramCounts:
    """Sorted distinct bigram keys ``v * V + w`` and their counts, plus unigram target counts."""

    vocab_size: int
    keys: np.ndarray  # int64, sorted
    counts: np.ndarray  # int64
    unigram: np.ndarray  # int64 (V,), counts of targets

    @property
    def tokens(self) -> int:
        return int(self.unigram.sum())


def _merge(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    keys = np.concatenate([k for k, _ in parts])
    counts = np.concatenate([c for _, c in parts])
    uniq, inv = np.unique(keys, return_inverse=True)
    return uniq, np.bincount(inv, weights=counts, minlength=len(uniq)).astype(np.int64)


def count_windows(windows: Iterable[np.ndarray], vocab_size: int, flush_pairs: int = 1 << 24) -> BigramCounts:
    """Counts over ``(n, T + 1)`` window arrays: pairs ``(w[:, t], w[:, t + 1])`` and targets ``w[:, 1:]``."""
    V = int(vocab_size)
    unigram = np.zeros(V, np.int64)
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    pending: list[np.ndarray] = []
    n_pending = 0
    for w in windows:
        w = np.asarray(w, dtype=np.int64)
        if w.ndim != 2 or w.shape[1] < 2:
            continue
        if w.size and (w.min() < 0 or w.max() >= V):
            raise ValueError(f"token id outside [0, {V}) in the stream")
        unigram += np.bincount(w[:, 1:].ravel(), minlength=V)
        pending.append((w[:, :-1] * V + w[:, 1:]).ravel())
        n_pending += pending[-1].size
        if n_pending >= flush_pairs:
            parts.append(np.unique(np.concatenate(pending), return_counts=True))
            pending, n_pending = [], 0
            if len(parts) >= 8:
                parts = [_merge(parts)]
    if pending:
        parts.append(np.unique(np.concatenate(pending), return_counts=True))
    keys, counts = _merge(parts)
    return BigramCounts(V, keys, counts, unigram)


class NGramFloor:
    """Unigram (add-k) and interpolated Kneser-Ney bigram probabilities from :class:`BigramCounts`."""

    def __init__(self, c: BigramCounts, k: float, discount: float) -> None:
        if not 0 < discount < 1:
            raise ValueError(f"discount must be in (0, 1), got {discount}")
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        V = c.vocab_size
        self.V, self.k, self.D = V, float(k), float(discount)
        self.keys, self.counts = c.keys, c.counts.astype(np.float64)
        n = c.unigram.sum()
        self.p_uni = (c.unigram + self.k) / (n + self.k * V)
        ctx = c.keys // V
        cont = c.keys % V
        self.c_ctx = np.bincount(ctx, weights=self.counts, minlength=V)  # c(v .) over seen pairs
        self.n_follow = np.bincount(ctx, minlength=V).astype(np.float64)  # N1+(v .)
        n_prec = np.bincount(cont, minlength=V).astype(np.float64)  # N1+(. w)
        total, types = n_prec.sum(), float((n_prec > 0).sum())
        if total == 0:
            self.p_cont = np.full(V, 1.0 / V)
        else:
            self.p_cont = (np.maximum(n_prec - self.D, 0) + self.D * types / V) / total

    def logprob_unigram(self, targets: np.ndarray) -> np.ndarray:
        return np.log(self.p_uni[targets])

    def logprob_bigram(self, prev: np.ndarray, targets: np.ndarray) -> np.ndarray:
        prev = np.asarray(prev, np.int64)
        targets = np.asarray(targets, np.int64)
        keys = prev * self.V + targets
        pos = np.searchsorted(self.keys, keys)
        pos_c = np.minimum(pos, max(len(self.keys) - 1, 0))
        found = (pos < len(self.keys)) & (self.keys[pos_c] == keys) if len(self.keys) else np.zeros(len(keys), bool)
        cvw = np.where(found, self.counts[pos_c] if len(self.keys) else 0.0, 0.0)
        cv = self.c_ctx[prev]
        pc = self.p_cont[targets]
        seen = cv > 0
        safe = np.where(seen, cv, 1.0)
        p = np.where(seen, np.maximum(cvw - self.D, 0) / safe + self.D * self.n_follow[prev] / safe * pc, pc)
        return np.log(p)

    def stream_nll(self, tokens: np.ndarray) -> dict[str, float]:
        """Summed NLL of both models over a packed stream (every token after the first predicted once)."""
        return _stream_nll(self, tokens)

    def documents_nll(self, docs: list[list[int]], start_id: int | None) -> dict[str, np.ndarray]:
        """Per-document summed NLL in nats of both models, and predicted-token counts (the proxy's protocol:
        ``[start] + tokens``, every token after the first predicted once)."""
        seqs = [np.asarray(([start_id] if start_id is not None else []) + list(t), np.int64) for t in docs]
        lengths = np.array([max(len(s) - 1, 0) for s in seqs], np.int64)
        prev = np.concatenate([s[:-1] for s in seqs]) if seqs else np.zeros(0, np.int64)
        tgt = np.concatenate([s[1:] for s in seqs]) if seqs else np.zeros(0, np.int64)
        seg = np.repeat(np.arange(len(seqs)), lengths)
        uni = np.bincount(seg, weights=-self.logprob_unigram(tgt), minlength=len(seqs))
        bi = np.bincount(seg, weights=-self.logprob_bigram(prev, tgt), minlength=len(seqs))
        return {"unigram": uni, "bigram": bi, "tokens": lengths}


def _stream_nll(floor: NGramFloor, tokens: np.ndarray) -> dict[str, float]:
    t = np.asarray(tokens, np.int64)
    if len(t) < 2:
        return {"unigram": 0.0, "bigram": 0.0, "tokens": 0}
    return {"unigram": float(-floor.logprob_unigram(t[1:]).sum()),
            "bigram": float(-floor.logprob_bigram(t[:-1], t[1:]).sum()), "tokens": len(t) - 1}


def _pairs(windows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if not windows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    w = np.concatenate([np.asarray(x, np.int64) for x in windows])
    return w[:, :-1].ravel(), w[:, 1:].ravel()


def fit_floor(windows: Iterable[np.ndarray], vocab_size: int) -> tuple[NGramFloor, dict[str, float]]:
    """Choose k and D on every ``TUNE_EVERY``-th window (counts of the others), refit on everything.

    ``windows``: batches ``(n, T + 1)`` in training order (iterated twice: pass a re-iterable, e.g. a list or
    a :func:`trial_windows` factory's output materialised per call). Returns the model and
    ``{"k", "discount", "tokens", "bigram_types", "tune_tokens"}``.
    """
    batches = windows if isinstance(windows, list) else list(windows)
    fit_part, tune_part = [], []
    i = 0
    for b in batches:
        b = np.asarray(b)
        idx = np.arange(i, i + len(b))
        i += len(b)
        tune = idx % TUNE_EVERY == TUNE_EVERY - 1
        if tune.any():
            tune_part.append(b[tune])
        if (~tune).any():
            fit_part.append(b[~tune])
    V = int(vocab_size)
    k, D = 1.0, 0.75
    prev, tgt = _pairs(tune_part)
    if len(tgt) and fit_part:
        c = count_windows(fit_part, V)
        best = min(K_GRID, key=lambda kk: -NGramFloor(c, kk, 0.75).logprob_unigram(tgt).sum())
        k = float(best)
        D = float(min(D_GRID, key=lambda dd: -NGramFloor(c, k, dd).logprob_bigram(prev, tgt).sum()))
    full = count_windows(batches, V)
    return NGramFloor(full, k, D), {"k": k, "discount": D, "tokens": full.tokens, "bigram_types": len(full.keys),
                                    "tune_tokens": int(len(tgt))}  # fmt: skip


def trial_windows(data_dir: str, seed: int, positions: int, batch: int = 256) -> Iterator[np.ndarray]:
    """The windows a training run with ``seed`` read at positions ``0 .. positions - 1`` (epochs included), in
    batches: what :func:`train_small.train.train` fed the model."""
    from train_small.data import open_token_stream

    stream = open_token_stream(data_dir, seed=seed)
    for p in range(0, positions, batch):
        yield np.asarray(stream.batch(p, min(batch, positions - p)))


def bits_per_byte(nll_nats: float, n_bytes: int) -> float:
    return float(nll_nats / math.log(2) / max(n_bytes, 1))
