"""Exact repeated-n-gram statistics for every document of a batch (Gopher repetition,
Rae et al. 2021, Table A1), vectorised with numpy.

Per document and n: the character weight of its most common n-gram (``top_value``) and
of the words covered by repeated n-grams (``dup_value``), in the two published
readings that :class:`filters.heuristics.gopher.GopherVariant` selects.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.heuristics import _arrow as A


def dense(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense ids (ranks of the sorted distinct keys) and the count of every id:
    exact, document-major order."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return inverse.astype(np.int64, copy=False), counts.astype(np.int64, copy=False)


_FIB = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing multiplier (2^64 / golden ratio)


def repeated(idx: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The positions whose key occurs more than once, with dense ids of their keys and
    the count of every id (exact).

    Most n-grams of a page occur once. A key whose hash bucket holds a single key
    occurs once, so one counting pass over hash buckets (``bincount``) removes most
    positions before the exact, sort-based :func:`dense`; collisions only cost time.
    """
    if len(keys) > 4096:
        bits = int(len(keys)).bit_length() + 1  # a table 2-4x the number of keys
        bucket = ((keys.astype(np.uint64) * _FIB) >> np.uint64(64 - bits)).astype(np.int64)
        maybe = np.bincount(bucket, minlength=1 << bits)[bucket] > 1
        idx, keys = idx[maybe], keys[maybe]
    ids, counts = dense(keys)
    rep = counts[ids] > 1
    keep_ids = np.flatnonzero(counts > 1)
    remap = np.full(len(counts), -1, dtype=np.int64)
    remap[keep_ids] = np.arange(len(keep_ids))
    return idx[rep], remap[ids[rep]], counts[keep_ids]


class NGrams:
    """Exact repeated n-grams for every document of a batch, built incrementally.

    Only live positions are held: ``idx`` (ascending flat word positions whose
    n-gram occurs more than once in its document) and ``ids`` (a dense id of the
    n-gram starting there, unique per document and word sequence); ``counts[id]`` is
    its number of occurrences. n-grams that occur once are never held: no statistic
    here needs them (the top n-gram of a page without repeats is handled apart).
    """

    def __init__(self, words: pa.Array | tuple[np.ndarray, np.ndarray], parents: np.ndarray, n_docs: int,
                 start: int = 1) -> None:  # fmt: skip
        """``words``: the strings, or already (an id per word, equal iff the strings are; lengths)."""
        self.parents = parents
        self.n_docs = n_docs
        given = words if isinstance(words, tuple) else None
        self.wlen = (given[1] if given else A.lengths(words)).astype(np.int64)
        self.cum = np.concatenate([[0], np.cumsum(self.wlen)])
        counts = np.bincount(parents, minlength=n_docs)
        self.doc_start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.doc_len = counts.astype(np.int64)
        w = len(parents)
        # one past each word's document end: a window [j, j + n) fits iff j + n <= doc_end[j]
        self.doc_end = (self.doc_start + self.doc_len)[parents] if w else np.zeros(0, np.int64)
        if given:
            codes = given[0].astype(np.int64)
        else:
            codes = A.as_numpy(pc.dictionary_encode(words).indices).astype(np.int64) if w else np.zeros(0, np.int64)
        self.codes = codes
        self.ndict = int(codes.max()) + 1 if w else 1
        if start >= 2 and w and n_docs * self.ndict * self.ndict < 2**62:
            # Straight to bigrams: a bigram can only repeat in a document if both its
            # words occur more than once in the batch (a cheap necessary condition).
            rep = np.bincount(codes, minlength=self.ndict)[codes] > 1
            ok = rep.copy()
            ok[:-1] &= rep[1:]
            ok &= np.arange(w, dtype=np.int64) + 2 <= self.doc_end
            idx = np.nonzero(ok)[0]
            self.n = 2
            keys = (parents[idx] * self.ndict + codes[idx]) * self.ndict + codes[idx + 1]
        else:
            self.n = 1
            idx = np.arange(w, dtype=np.int64)
            keys = parents * self.ndict + codes
        self.idx, self.ids, self.counts = repeated(idx, keys)

    def advance(self) -> None:
        """Extend keys from n-grams to (n+1)-grams.

        An (n+1)-gram can only repeat if the n-gram it starts with repeats, so
        positions whose n-gram occurs once are pruned, as are windows that run past
        the document end. Most of a page's n-grams are unique, so the arrays shrink
        quickly with n.
        """
        n = self.n + 1
        idx, ids = self.idx, self.ids
        keep = idx + n <= self.doc_end[idx]  # (every held n-gram repeats)
        idx = idx[keep]
        self.idx, self.ids, self.counts = repeated(idx, ids[keep] * self.ndict + self.codes[idx + n - 1])
        self.n = n

    def window_chars(self, idx: np.ndarray) -> np.ndarray:
        return self.cum[idx + self.n] - self.cum[idx]

    def first_occurrences(self) -> tuple[np.ndarray, np.ndarray]:
        """(first position of every live n-gram id, its document); documents non-decreasing."""
        first_pos = np.full(len(self.counts), len(self.parents), dtype=np.int64)
        np.minimum.at(first_pos, self.ids, self.idx)
        return first_pos, self.parents[first_pos]


def first_window_value(g: NGrams, k: int, has_repeat: np.ndarray) -> np.ndarray:
    """datatrove, no repeated k-gram: ``Counter.most_common(1)`` is the first k-gram
    (count 1), weighed as ``len(" ".join(ngram))``."""
    value = np.zeros(g.n_docs, dtype=np.float64)
    docs = np.nonzero(~has_repeat & (g.doc_len >= k))[0]
    if len(docs):
        starts = g.doc_start[docs]
        value[docs] = g.cum[starts + k] - g.cum[starts] + (k - 1)
    return value


def top_value(g: NGrams, k: int, tie: str) -> np.ndarray:
    """Characters of the most common k-gram times its count, per document.

    ``tie="longest"`` (DCLM): the longest n-gram (in word characters) among the most
    common, 0 when none repeats. ``tie="first"`` (datatrove, ``Counter.most_common(1)``):
    the first inserted, with the spaces between its words; the first k-gram when none
    repeats.
    """
    value = np.zeros(g.n_docs, dtype=np.float64)
    if len(g.idx) == 0:
        return first_window_value(g, k, np.zeros(g.n_docs, dtype=bool)) if tie == "first" else value
    first_pos, udoc = g.first_occurrences()
    counts = g.counts
    starts = np.nonzero(np.r_[True, udoc[1:] != udoc[:-1]])[0]  # segment per document
    docs = udoc[starts]
    maxc = np.maximum.reduceat(counts, starts)
    tied = counts == np.repeat(maxc, np.diff(np.r_[starts, len(udoc)]))
    if tie == "first":
        big = np.iinfo(np.int64).max
        pos = np.minimum.reduceat(np.where(tied, first_pos, big), starts)  # earliest among the ties
        rep = maxc > 1
        value[docs[rep]] = (g.window_chars(pos[rep]) + (k - 1)) * maxc[rep]
        has_repeat = np.zeros(g.n_docs, dtype=bool)
        has_repeat[docs[rep]] = True
        return value + first_window_value(g, k, has_repeat)
    chars = g.window_chars(first_pos).astype(np.float64)
    longest = np.maximum.reduceat(np.where(tied, chars, 0.0), starts)
    value[docs] = np.where(maxc > 1, longest * maxc, 0.0)
    return value


def dup_value(g: NGrams, k: int, scan: str, denom: np.ndarray, frac: float) -> np.ndarray:
    """Characters of the words covered by repeated k-grams, per document.

    ``scan="covered"`` (DCLM): every word inside any repeated k-gram. ``scan="greedy"``
    (datatrove): a left-to-right scan that, at a k-gram seen before, adds its characters
    and skips its k words. The greedy value is at most the covered one, so it is computed
    exactly (in Python) only for documents whose covered value passes ``frac * denom``.
    """
    value = np.zeros(g.n_docs, dtype=np.float64)
    if len(g.idx) == 0:
        return value
    repeated = g.counts[g.ids] > 1
    rep = g.idx[repeated]  # ascending start positions of repeated n-grams
    # characters of the union of the windows [j, j + k): clip each window at the next start
    ends = rep + k
    if len(rep) > 1:
        ends[:-1] = np.minimum(ends[:-1], rep[1:])
    covered = np.bincount(g.parents[rep], weights=(g.cum[ends] - g.cum[rep]).astype(np.float64),
                          minlength=g.n_docs)  # fmt: skip
    if scan == "covered":
        return covered
    with np.errstate(invalid="ignore", divide="ignore"):
        need = np.nonzero(covered / denom > frac)[0]
    if len(need) == 0:
        return value
    rep_ids = g.ids[repeated]
    lo = np.searchsorted(rep, g.doc_start[need])
    hi = np.searchsorted(rep, g.doc_start[need] + g.doc_len[need])
    for d, a, b in zip(need.tolist(), lo.tolist(), hi.tolist()):
        # n-grams occurring once never match, so only the repeated ones (a few) are
        # visited, skipping those inside a match
        pos = rep[a:b]
        chars = (g.cum[pos + k] - g.cum[pos]).tolist()
        seen: set[int] = set()
        total, nxt = 0, -1
        for j, key, c in zip(pos.tolist(), rep_ids[a:b].tolist(), chars):
            if j < nxt:
                continue
            if key in seen:
                total += c
                nxt = j + k
            else:
                seen.add(key)
        value[d] = total
    return value
