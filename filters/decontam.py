"""Decontamination: drop or flag training documents that share word n-grams with eval tasks.

The GPT-3 recipe (Brown et al. 2020, arXiv:2005.14165, appendix C): a training
document is contaminated when it shares a 13-gram of normalised words with a test
example. Eval items shorter than ``n`` words contribute their whole word sequence
as one shorter n-gram, provided it has at least ``min_ngram`` words (GPT-3 lowered
n per task to the 5th-percentile example length, at least 8), so short questions are
still caught while two-word answers cannot flag half the corpus.

Normalisation (the same for eval items and documents): Unicode NFKC, lower case,
words are the maximal runs of ``\\w`` characters (letters, digits, underscore), so
punctuation and whitespace differences never hide an overlap.

What is indexed per eval example (llm-foundry jsonl formats): multiple choice — the
query, the query followed by the gold choice, and each choice on its own; language
modelling — the context and context + continuation; schema — each context option +
continuation; question answering (gsm8k, triviaqa) — context, context + answer,
chain of thought. The n-gram set is built once per worker in ``setup()``.

Matching is vectorised over a whole Arrow batch: words are split with
``pyarrow.compute``, mapped to ids of the eval vocabulary with ``index_in`` (a word
never seen in any eval item cannot be part of a matching n-gram), and n-grams are
hashed with two independent 64-bit polynomial hashes in numpy and looked up by binary
search in the sorted eval set (a false match needs both hashes to collide).
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.stage import Filter, Mapper

log = logging.getLogger(__name__)

REASON = "decontam:ngram_overlap"
_P1 = np.uint64(0x9E3779B97F4A7C15)
_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_SEP = r"[^\w]+"
# DCLM task labels whose llm-foundry file has another name
_LABEL_TO_STEM = {
    "winograd": "winograd_wsc",
    "jeopardy": "jeopardy_all",
    "hellaswag": "hellaswag__rc_5shot",
    "hellaswag_zeroshot": "hellaswag__rc_5shot",
}


def normalise_words(texts: pa.Array | pa.ChunkedArray | list[str]) -> tuple[pa.Array, np.ndarray]:
    """Split texts into normalised words: (flat word array, parent row index per word)."""
    arr = pa.array(texts, pa.large_string()) if isinstance(texts, list) else texts
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = pc.utf8_lower(pc.utf8_normalize(pc.fill_null(arr, ""), "NFKC"))
    lists = pc.split_pattern_regex(arr, _SEP)
    flat = pc.list_flatten(lists)
    parent = pc.list_parent_indices(lists)
    keep = pc.not_equal(pc.utf8_length(flat), 0)
    return flat.filter(keep), parent.filter(keep).to_numpy(zero_copy_only=False)


def _hashes(ids: np.ndarray, starts: np.ndarray, L: int) -> tuple[np.ndarray, np.ndarray]:
    """Two polynomial hashes of the id windows ``ids[s : s + L]`` for each start ``s``."""
    h1 = np.zeros(len(starts), dtype=np.uint64)
    h2 = np.zeros(len(starts), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(L):
            v = ids[starts + j].astype(np.uint64) + np.uint64(1)
            h1 = h1 * _P1 + v
            h2 = h2 * _P2 + (v ^ np.uint64(0x5BD1E995))
    return h1 ^ np.uint64(L), h2 ^ (np.uint64(L) << np.uint64(32))


def _windows(parent: np.ndarray, valid: np.ndarray, L: int) -> np.ndarray:
    """Start positions of length-L windows inside one row that contain only valid (known) words."""
    n = len(parent)
    if n < L:
        return np.zeros(0, dtype=np.int64)
    starts = np.arange(n - L + 1)
    same_row = parent[starts] == parent[starts + L - 1]
    # all-valid windows through a running count of invalid words
    bad = np.concatenate([[0], np.cumsum(~valid)])
    clean = (bad[starts + L] - bad[starts]) == 0
    return starts[same_row & clean]


def eval_texts(row: dict) -> list[str]:
    """The strings of one llm-foundry eval example that training data must not contain."""
    out: list[str] = []
    s = lambda k: row.get(k) if isinstance(row.get(k), str) else None  # noqa: E731
    gold = row.get("gold")
    if isinstance(row.get("choices"), list) and s("query") is not None:
        ch = [c for c in row["choices"] if isinstance(c, str)]
        out.append(s("query"))
        if isinstance(gold, int) and 0 <= gold < len(row["choices"]) and isinstance(row["choices"][gold], str):
            out.append(f"{s('query')} {row['choices'][gold]}")
        out.extend(ch)
    if isinstance(row.get("context_options"), list) and s("continuation") is not None:
        out.extend(f"{c} {s('continuation')}" for c in row["context_options"] if isinstance(c, str))
    if s("context") is not None:
        out.append(s("context"))
        for k in ("continuation", "answer"):
            if s(k) is not None:
                out.append(f"{s('context')} {s(k)}")
        if s("chain_of_thought"):
            out.append(s("chain_of_thought"))
    return [t for t in out if t]


def task_files(eval_dir: str | os.PathLike, tasks: list[str] | None) -> list[tuple[str, Path]]:
    """(task name, jsonl path) for the configured tasks; every jsonl under ``eval_dir`` when None.

    A task name matches a file stem (``copa``) or a harness label (``winograd`` ->
    ``winograd_wsc.jsonl``; the DCLM labels whose file is named otherwise are listed in
    ``_LABEL_TO_STEM``).
    """
    root = Path(eval_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"eval dir {root} does not exist")
    files = sorted(Path(p) for p in glob.glob(str(root / "**" / "*.jsonl"), recursive=True))
    if tasks is None:
        return [(p.stem, p) for p in files]
    by_stem = {p.stem: p for p in files}
    out = []
    for t in tasks:
        if t in by_stem:
            out.append((t, by_stem[t]))
            continue
        alias = _LABEL_TO_STEM.get(t)
        if alias in by_stem:
            out.append((t, by_stem[alias]))
        else:
            raise FileNotFoundError(f"decontam: no jsonl for task {t!r} under {root}")
    return out


class _NgramIndex:
    """Word n-grams of the eval tasks, built once per worker (``setup``)."""

    eval_dir: str
    n: int
    min_ngram: int
    tasks: list[str] | None

    def _init_common(self, eval_dir: str | os.PathLike, n: int, tasks: list[str] | None, min_ngram: int) -> None:
        if n < 1:
            raise ValueError("n must be >= 1")
        if not 1 <= min_ngram <= n:
            raise ValueError("min_ngram must be in [1, n]")
        self.eval_dir = str(eval_dir)
        self.n = int(n)
        self.min_ngram = int(min_ngram)
        self.tasks = sorted(tasks) if tasks is not None else None
        files = task_files(eval_dir, self.tasks)
        if not files:
            raise ValueError(f"decontam: no eval task files under {eval_dir}")
        # content fingerprint: a changed eval set changes the recipe hash
        h = hashlib.sha256()
        for name, p in files:
            h.update(name.encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
        self.eval_sha256 = h.hexdigest()[:16]
        self._files = files
        self._index: dict[str, Any] | None = None

    def setup(self) -> None:
        if self._index is not None:
            return
        texts: list[str] = []
        owner: list[int] = []
        names = []
        for ti, (name, p) in enumerate(self._files):
            names.append(name)
            with open(p, encoding="utf-8") as f:
                for line in f:
                    try:
                        row = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(row, dict):
                        t = eval_texts(row)
                        texts.extend(t)
                        owner.extend([ti] * len(t))
        self._index = build_ngram_index(texts, owner, self.n, self.min_ngram)
        self._index["names"] = names
        log.info(
            "decontam: %d eval texts from %d task files -> %d distinct n-grams (n=%d, short items >= %d words)",
            len(texts), len(self._files), len(self._index["h1"]), self.n, self.min_ngram,
        )  # fmt: skip

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_index"] = None  # rebuilt by setup() in each worker
        return state

    def match(self, texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
        """Per row: number of eval n-grams it contains, and the first matching task's index (-1: none)."""
        self.setup()
        assert self._index is not None
        counts, first, _ = match_ngram_index(self._index, texts)
        return counts, first


def build_ngram_index(texts: list[str], owner: list[int], n: int, min_ngram: int) -> dict[str, Any]:
    """The sorted hash pairs of every word n-gram of ``texts`` (and of whole texts of ``min_ngram`` to ``n - 1``
    words), each with the ``owner`` of its text (first owner where several texts share an n-gram)."""
    words, parent = normalise_words(texts)
    vocab = pc.unique(words)
    ids = pc.index_in(words, value_set=vocab).to_numpy(zero_copy_only=False).astype(np.int64)
    row_len = np.bincount(parent, minlength=len(texts))
    owner_arr = np.asarray(owner, dtype=np.int32)
    valid = np.ones(len(ids), dtype=bool)
    h1s, h2s, own = [], [], []
    # full n-grams
    st = _windows(parent, valid, n)
    a, b = _hashes(ids, st, n)
    h1s.append(a)
    h2s.append(b)
    own.append(owner_arr[parent[st]])
    # items shorter than n but at least min_ngram words: the whole item
    row_start = np.concatenate([[0], np.cumsum(row_len)[:-1]])
    for L in range(min_ngram, n):
        rows = np.nonzero(row_len == L)[0]
        if len(rows):
            a, b = _hashes(ids, row_start[rows], L)
            h1s.append(a)
            h2s.append(b)
            own.append(owner_arr[rows])
    h1 = np.concatenate(h1s)
    h2 = np.concatenate(h2s)
    ow = np.concatenate(own)
    order = np.lexsort((h2, h1))
    h1, h2, ow = h1[order], h2[order], ow[order]
    if len(h1):
        first = np.concatenate([[True], (h1[1:] != h1[:-1]) | (h2[1:] != h2[:-1])])
        h1, h2, ow = h1[first], h2[first], ow[first]
    lengths = sorted({n} | {int(L) for L in np.unique(row_len) if min_ngram <= L < n})
    return {"vocab": vocab, "h1": h1, "h2": h2, "owner": ow, "names": [], "lengths": lengths}


def _lookup(idx: dict[str, Any], h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
    """Owner of each hash pair, -1 where absent (binary search on the sorted set)."""
    H1, H2 = idx["h1"], idx["h2"]
    out = np.full(len(h1), -1, dtype=np.int64)
    if len(H1) == 0:
        return out
    pos = np.searchsorted(H1, h1)
    active = np.ones(len(h1), dtype=bool)
    while True:  # more than one pass only where two indexed n-grams share h1 (astronomically rare)
        inb = pos < len(H1)
        p = np.where(inb, pos, 0)
        same = inb & active & (H1[p] == h1)
        if not same.any():
            return out
        hit = same & (H2[p] == h2)
        out[hit] = idx["owner"][p[hit]]
        active = same & ~hit
        pos = pos + 1


def match_ngram_index(idx: dict[str, Any], texts: pa.Array | pa.ChunkedArray | list[str]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of ``texts``: the number of indexed n-grams it contains and the first owner matched (-1: none);
    and every distinct owner matched by any row."""
    n_rows = len(texts)
    words, parent = normalise_words(texts)
    ids_arr = pc.index_in(words, value_set=idx["vocab"])
    valid = ids_arr.is_valid().to_numpy(zero_copy_only=False)
    ids = pc.fill_null(ids_arr, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    counts = np.zeros(n_rows, dtype=np.int64)
    first_owner = np.full(n_rows, -1, dtype=np.int64)
    owners: list[np.ndarray] = []
    for L in idx["lengths"]:
        st = _windows(parent, valid, L)
        if len(st) == 0:
            continue
        a, b = _hashes(ids, st, L)
        own = _lookup(idx, a, b)
        hit = own >= 0
        if hit.any():
            rows = parent[st[hit]]
            np.add.at(counts, rows, 1)
            unset = first_owner[rows] < 0
            first_owner[rows[unset]] = own[hit][unset]
            owners.append(own[hit])
    return counts, first_owner, np.unique(np.concatenate(owners)) if owners else np.zeros(0, np.int64)


class DecontamFilter(_NgramIndex, Filter):
    """Drops documents sharing an n-gram with the eval tasks (reason ``decontam:ngram_overlap``)."""

    name = "decontam"
    version = "1"

    def __init__(
        self, eval_dir: str | os.PathLike, n: int = 13, tasks: list[str] | None = None, min_ngram: int = 8
    ) -> None:
        self._init_common(eval_dir, n, tasks, min_ngram)

    def decide(self, table: pa.Table) -> pa.Array:
        counts, _ = self.match(table.column("text"))
        return pa.array(np.where(counts > 0, REASON, None).tolist(), pa.string())


class DecontamFlag(_NgramIndex, Mapper):
    """Keeps every document and adds ``decontam_ngrams`` (int64) and ``decontam_task`` (string or null)."""

    name = "decontam_flag"
    version = "1"

    def __init__(
        self, eval_dir: str | os.PathLike, n: int = 13, tasks: list[str] | None = None, min_ngram: int = 8
    ) -> None:
        self._init_common(eval_dir, n, tasks, min_ngram)

    def transform(self, table: pa.Table) -> tuple[pa.Table, pa.Array | None]:
        counts, first = self.match(table.column("text"))
        names = self._index["names"]  # type: ignore[index]
        task = pa.array([names[i] if i >= 0 else None for i in first.tolist()], pa.string())
        for col in ("decontam_ngrams", "decontam_task"):
            if col in table.column_names:
                table = table.drop_columns([col])
        table = table.append_column("decontam_ngrams", pa.array(counts, pa.int64()))
        table = table.append_column("decontam_task", task)
        return table, None


def Decontaminate(  # noqa: N802 - a factory named like the stage it returns
    eval_dir: str | os.PathLike,
    n: int = 13,
    mode: str = "drop",
    tasks: list[str] | None = None,
    min_ngram: int = 8,
) -> DecontamFilter | DecontamFlag:
    """The decontamination stage: ``mode="drop"`` a :class:`~curation.stage.Filter`,
    ``mode="flag"`` a :class:`~curation.stage.Mapper` that adds columns.

    ``tasks``: task names (jsonl stems such as ``copa``, or harness labels such as
    ``winograd``); None indexes every jsonl under ``eval_dir``.
    """
    if mode == "drop":
        return DecontamFilter(eval_dir, n=n, tasks=tasks, min_ngram=min_ngram)
    if mode == "flag":
        return DecontamFlag(eval_dir, n=n, tasks=tasks, min_ngram=min_ngram)
    raise ValueError(f"mode must be 'drop' or 'flag', got {mode!r}")


# --------------------------------------------------------------------------------------- held-out split


def _unit_hash(ids: list[str], seed: int) -> np.ndarray:
    """A stable uniform number in [0, 1) per id (blake2b of seed and id)."""
    out = np.empty(len(ids), dtype=np.float64)
    salt = str(seed).encode()
    for i, x in enumerate(ids):
        h = hashlib.blake2b(x.encode(), digest_size=8, salt=salt[:16]).digest()
        out[i] = int.from_bytes(h, "little") / 2.0**64
    return out


class HoldoutSplit(Filter):
    """Reserve a fixed fraction of documents (by a hash of their id) for held-out evaluation.

    Decontamination by construction: put ``HoldoutSplit(keep="train")`` first in every
    training recipe and ``HoldoutSplit(keep="heldout")`` alone in the recipe that
    extracts the held-out text (``pipelines/ablate.py``), and no mix trains on it. The
    decision depends on (seed, id) only, never on batches or workers.

    ``keep="train"`` drops the reserved documents (reason ``holdout:reserved``);
    ``keep="heldout"`` keeps only them (reason ``holdout:train_split`` for the rest).
    """

    name = "holdout"
    version = "1"

    def __init__(self, fraction: float = 0.05, seed: int = 0, keep: str = "train") -> None:
        if not 0.0 < fraction < 1.0:
            raise ValueError("fraction must be in (0, 1)")
        if keep not in ("train", "heldout"):
            raise ValueError("keep must be 'train' or 'heldout'")
        self.fraction, self.seed, self.keep = float(fraction), int(seed), keep

    def decide(self, table: pa.Table) -> pa.Array:
        held = _unit_hash(table.column("id").to_pylist(), self.seed) < self.fraction
        if self.keep == "train":
            return pa.array(np.where(held, "holdout:reserved", None).tolist(), pa.string())
        return pa.array(np.where(held, None, "holdout:train_split").tolist(), pa.string())
