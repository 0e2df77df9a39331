"""Reference domains an ablation can be scored on: English, decontaminated against the pool, apart from the
quality classifier's positives.

A reference domain is real text that no mix trains on and that the same for every mix. Three things can make
that false without anyone noticing, and each is checked here before any trial runs:

* **Another language.** A domain named after an English source can hold other languages (the Spanish
  es.stackoverflow threads once scored as "stackexchange"): every document goes through the language ID
  (``filters.langid``, fastText lid.176) and one whose top language is not English is dropped
  (``not_english``).
* **Overlap with the pool.** A reference document that shares a word 13-gram (NFKC, lower case, ``\\w+``
  words: the GPT-3 decontamination rule, ``filters.decontam``) with any pool document could have been trained
  on: it is dropped (``pool_overlap``). The reference set's n-grams are indexed (small) and the pool is
  streamed past them batch by batch (large), so memory is set by the reference set, never by the pool.
* **Selection aimed at the evaluation.** A quality classifier trained on positives that are a reference
  domain's own files selects for that domain by construction; :func:`check_classifier_overlap` refuses it with
  an error naming the classifier, the file and the domain (files compared by path and by content hash).

:func:`clean_references` writes ``<out>/<domain>.parquet`` with the documents kept and returns them with a
report (documents read, kept, dropped per reason, bytes), which the ablation records in its results.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curation import storage

logger = logging.getLogger("ablate")

__all__ = ["clean_references", "check_classifier_overlap", "reference_files"]


def reference_files(path: str) -> list[str]:
    """The files of a ``NAME=PATH`` reference domain (a file, or the text/jsonl/parquet files of a folder)."""
    from train_small.eval.reference import _files

    return [os.path.realpath(f) for f in _files(path)]


def check_classifier_overlap(model_path: str, reference: dict[str, str]) -> dict[str, Any]:
    """Refuse (ValueError) a quality classifier whose positive training files are a reference domain's files.

    Reads the classifier's metadata (``<model>.json``, written by ``python -m filters.quality train``).
    Returns what was compared; a classifier without metadata cannot be checked (``checked: False``)."""
    from filters.quality.model import file_sha256, sidecar_path

    meta_path = sidecar_path(model_path)
    if not os.path.exists(meta_path):
        logger.warning("quality classifier %s has no metadata (%s): its positives cannot be checked against the "
                       "reference domains", model_path, meta_path)  # fmt: skip
        return {"checked": False, "model": model_path}
    meta = json.loads(Path(meta_path).read_text())
    positives = [f for f in (meta.get("data", {}).get("positives", {}).get("files") or []) if f.get("path")]
    pos_paths = {os.path.realpath(f["path"]): f["path"] for f in positives}
    pos_sha = {f.get("sha256"): f["path"] for f in positives if f.get("sha256")}
    for name, path in reference.items():
        for ref in reference_files(path):
            hit = pos_paths.get(ref)
            if hit is None:
                digest = file_sha256(ref)
                hit = pos_sha.get(digest)
            if hit is not None:
                raise ValueError(
                    f"quality classifier {model_path} was trained on positives {hit}, which is reference domain "
                    f"{name!r}'s file {ref}: a classifier selecting for the very text the mixes are scored on "
                    "biases the ablation. Train it on other positives (filters/quality/README.md) or score on "
                    "another reference domain")  # fmt: skip
    return {"checked": True, "model": model_path, "positives": sorted(pos_paths.values())}


def _pool_texts(pool_dirs: list[str], batch_rows: int = 2048):
    for d in pool_dirs:
        for f in sorted(Path(d).glob("*.parquet")):
            pf = pq.ParquetFile(f)
            for batch in pf.iter_batches(batch_size=batch_rows, columns=["text"]):
                yield batch.column(0)


def clean_references(reference: dict[str, str], pool_dirs: list[str], out_dir: str, *, n: int = 13,
                     english: bool = True) -> tuple[dict[str, str], dict[str, Any]]:
    """Drop non-English and pool-overlapping documents from every reference domain; write the rest.

    ``pool_dirs``: folders of parquet files with a ``text`` column (curation runs' ``data/``). Returns
    ``({domain: cleaned parquet}, report)``; reuses an earlier result for the same references and pool files."""
    from filters.decontam import build_ngram_index, match_ngram_index
    from train_small.eval.reference import load_reference_domains

    fingerprint = {
        "reference": {k: [[f, os.path.getsize(f)] for f in reference_files(v)] for k, v in sorted(reference.items())},
        "pool": sorted([str(p), p.stat().st_size] for d in pool_dirs for p in Path(d).glob("*.parquet")),
        "n": n, "english": english, "version": 1,
    }  # fmt: skip
    report_path = os.path.join(out_dir, "references.json")
    if os.path.exists(report_path):
        old = json.loads(Path(report_path).read_text())
        if old.get("fingerprint") == json.loads(json.dumps(fingerprint)):
            return old["files"], old["report"]
    domains = load_reference_domains(reference)
    names = sorted(domains)
    docs = [(d, t) for d in names for t in domains[d]]
    reason: list[str | None] = [None] * len(docs)
    lang_scores: list[float] = [float("nan")] * len(docs)
    if english:
        from filters.langid import LanguageID

        lid = LanguageID(keep_langs=None)
        langs, scores = lid.predict([t for _, t in docs])
        for i, (lg, sc) in enumerate(zip(langs, scores)):
            lang_scores[i] = float(sc)
            if lg != "en":
                reason[i] = "not_english"
    index = build_ngram_index([t for _, t in docs], list(range(len(docs))), n, n)
    overlapping: set[int] = set()
    pool_docs = 0
    for texts in _pool_texts(pool_dirs):
        pool_docs += len(texts)
        _, _, owners = match_ngram_index(index, texts)
        overlapping.update(int(o) for o in owners)
    for i in overlapping:
        if reason[i] is None:
            reason[i] = "pool_overlap"
    os.makedirs(out_dir, exist_ok=True)
    files: dict[str, str] = {}
    report: dict[str, Any] = {"n": n, "pool_documents": pool_docs, "domains": {}}
    for d in names:
        idx = [i for i, (dd, _) in enumerate(docs) if dd == d]
        kept = [docs[i][1] for i in idx if reason[i] is None]
        counts = {r: sum(1 for i in idx if reason[i] == r) for r in ("not_english", "pool_overlap")}
        report["domains"][d] = {
            "source": reference[d], "documents": len(idx), "kept": len(kept), "dropped": counts,
            "bytes": sum(len(t.encode("utf-8")) for t in kept),
            "lang_score_median": float(np.nanmedian([lang_scores[i] for i in idx])) if english and idx else None,
        }  # fmt: skip
        if not kept:
            raise ValueError(f"reference domain {d}: no document left after the English and pool-overlap checks "
                             f"({counts})")
        path = os.path.join(out_dir, f"{d}.parquet")
        pq.write_table(pa.table({"text": pa.array(kept, pa.large_string())}), path)
        files[d] = path
        if any(counts.values()):
            logger.info("reference %s: %d of %d documents kept (%s)", d, len(kept), len(idx), counts)
    storage.write_json_atomic(report_path, {"fingerprint": fingerprint, "files": files, "report": report})
    return files, report
