"""The offline recipe on the real samples of ../shared/data/corpora (slow; prints the AUCs).

Positives: arXiv (RedPajama), StackExchange (RedPajama/Pile), books (PG-19), Wikipedia
(WikiText-103, the Pile's Wikipedia record). Negatives: raw Common Crawl text: C4,
Dolma CC (CCNet), Pile-CC and pages extracted from WARC files (tags stripped, no
boilerplate removal). Run: ``pytest tests/filters/quality/test_quality_realdata.py -m slow -s``.
"""

from __future__ import annotations

import glob
import gzip
import html.parser
import io
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import zstandard

from filters.quality import QualityScorer, default_model, roc_auc, train_classifier
from filters.quality.data import load_texts

CORPORA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "corpora"


class _Text(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("script", "style", "noscript"):
            self._skip += 1
        elif tag in ("p", "div", "br", "li", "h1", "h2", "h3", "tr", "title"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "noscript") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def warc_pages(path: Path) -> list[str]:
    """Text of every HTML response in a WARC file (naive: tags stripped, whitespace collapsed)."""
    raw = gzip.decompress(path.read_bytes())
    out, pos = [], 0
    while True:
        start = raw.find(b"WARC/1.", pos)
        if start < 0:
            break
        head_end = raw.find(b"\r\n\r\n", start)
        head = raw[start:head_end].decode("latin-1")
        length = int(re.search(r"Content-Length:\s*(\d+)", head, re.I).group(1))
        body = raw[head_end + 4 : head_end + 4 + length]
        pos = head_end + 4 + length
        if "WARC-Type: response" not in head:
            continue
        http_head, _, payload = body.partition(b"\r\n\r\n")
        if b"text/html" not in http_head.lower():
            continue
        m = re.search(rb"charset=([\w-]+)", http_head + payload[:2000], re.I)
        try:
            html_text = payload.decode(m.group(1).decode() if m else "utf-8", errors="replace")
        except LookupError:
            html_text = payload.decode("utf-8", errors="replace")
        p = _Text()
        p.feed(html_text)
        lines = [" ".join(ln.split()) for ln in "".join(p.parts).splitlines()]
        text = "\n".join(ln for ln in lines if ln)
        if len(text.split()) >= 20:
            out.append(text)
    return out


def _pile(name: str) -> list[str]:
    docs = []
    for f in sorted(glob.glob(str(CORPORA / "pile" / "*.jsonl.zst"))):
        with open(f, "rb") as fh:
            raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(fh.read())).read()
        for line in raw.decode().splitlines():
            rec = json.loads(line)
            if rec["meta"]["pile_set_name"] == name:
                docs.append(rec["text"])
    return docs


def real_samples() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    c = str(CORPORA)
    pos = {
        "arxiv": load_texts(
            [f"{c}/redpajama/arxiv_sample.jsonl", f"{c}/redpajama/process_sci_data__arxiv.jsonl"]
        ).texts,
        "stackexchange": load_texts(
            [
                f"{c}/redpajama/process_code_data__stack_exchange.jsonl",
                f"{c}/redpajama/data_mixture__redpajama-pile-stackexchange-refined.jsonl",
            ]
        ).texts,
        "books": load_texts(sorted(glob.glob(f"{c}/text/pg19/*.txt"))).texts,
        "wikipedia": [Path(p).read_text() for p in sorted(glob.glob(f"{c}/text/wikitext-103-raw/*.raw"))]
        + _pile("Wikipedia (en)"),
    }
    neg = {
        "c4": load_texts(sorted(glob.glob(f"{c}/c4/*.json.gz"))).texts,
        "dolma_cc": load_texts(
            sorted(glob.glob(f"{c}/dolma/cc_en_head-*.jsonl.gz")) + [f"{c}/dolma/provided/documents/000.json.gz"]
        ).texts,
        "pile_cc": _pile("Pile-CC"),
        "warc": [
            t
            for f in sorted(glob.glob(f"{c}/warc/*.warc.gz"))
            if "wat" not in f and "wet" not in f
            for t in warc_pages(Path(f))
        ],
    }
    return pos, neg


def _folds(n: int, k: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n) % k


@pytest.mark.slow
def test_offline_recipe_separates_real_reference_text_from_raw_crawl(tmp_path: Path) -> None:
    if not CORPORA.exists():
        pytest.skip("shared data samples not present")
    pos_by, neg_by = real_samples()
    pos = [t for v in pos_by.values() for t in v]
    neg = [t for v in neg_by.values() for t in v]
    print("\npositives", {k: len(v) for k, v in pos_by.items()}, "negatives", {k: len(v) for k, v in neg_by.items()})
    labels = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
    texts = pos + neg

    # (a) the synthetic-only default model, zero-shot on the real samples
    zero = QualityScorer(default_model(str(tmp_path / "cache"))).score_texts(texts).to_numpy()
    auc_zero = roc_auc(labels, zero)

    # (b) 5-fold cross-validation of the recipe on the real docs: train_classifier on 4/5
    # (DCLM defaults: whole documents; and with training documents cut into 100-word examples,
    # since ~100 long documents per class are a handful of weak SGD steps), score the
    # held-out fifth (whole documents), pool the held-out scores
    k = 5
    fp, fn = _folds(len(pos), k, 0), _folds(len(neg), k, 1)
    cv = {"dclm": np.zeros(len(texts), np.float32), "chunk100": np.zeros(len(texts), np.float32)}
    for f in range(k):
        tr_p = [t for t, g in zip(pos, fp) if g != f]
        tr_n = [t for t, g in zip(neg, fn) if g != f]
        test_idx = np.r_[np.flatnonzero(fp == f), len(pos) + np.flatnonzero(fn == f)]
        test_texts = [texts[i] for i in test_idx]
        for name, params in [("dclm", {}), ("chunk100", {"chunk_words": 100})]:
            path = str(tmp_path / f"{name}{f}.bin")
            train_classifier(pa.array(tr_p), pa.array(tr_n), path, holdout_fraction=0.0, **params)
            cv[name][test_idx] = QualityScorer(path).score_texts(test_texts).to_numpy()
    auc_real, auc_chunk = roc_auc(labels, cv["dclm"]), roc_auc(labels, cv["chunk100"])

    print(f"AUC zero-shot, synthetic default model:                 {auc_zero:.3f}")
    print(f"AUC 5-fold CV, train_classifier on real (DCLM defaults): {auc_real:.3f}")
    print(f"AUC 5-fold CV, train_classifier on real, chunk_words=100: {auc_chunk:.3f}")
    names = [(s, n) for s, v in {**pos_by, **neg_by}.items() for n in [len(v)]]
    start = 0
    for name, n in names:
        sl = slice(start, start + n)
        print(
            f"  {name:14s} n={n:3d} mean score: zero-shot {zero[sl].mean():.3f}  "
            f"cv dclm {cv['dclm'][sl].mean():.3f}  cv chunk100 {cv['chunk100'][sl].mean():.3f}"
        )
        start += n
    assert auc_real > 0.75
    assert auc_chunk > 0.9
