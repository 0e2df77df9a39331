"""Reference domains (Paloma-style): NAME=PATH parsing, file formats, per-document scoring, bits per byte."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from eval_tiny_models import ALPHA, CharTok, TableLM, TinyCausal, alphabet_table

from train_small.eval.reference import (
    documents_nll,
    load_reference_domains,
    parse_reference_specs,
    reference_loss,
)
from train_small.eval.score import flat_metrics

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "corpora"


def unbatched_doc_nll(model, toks: list[int], seq_len: int, start: int) -> tuple[float, int]:
    """One document alone: [start] + toks in windows of seq_len + 1 tokens starting every seq_len."""
    seq = [start] + toks
    total, n = 0.0, 0
    for s in range(0, len(seq) - 1, seq_len):
        w = seq[s : s + seq_len + 1]
        with torch.no_grad():
            lp = torch.log_softmax(model(torch.tensor([w[:-1]]))[0].double(), -1)
        total -= sum(float(lp[i, t]) for i, t in enumerate(w[1:]))
        n += len(w) - 1
    return total, n


def test_parse_specs_and_clear_errors(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    assert parse_reference_specs([f"wiki={tmp_path / 'a.txt'}"]) == {"wiki": str(tmp_path / "a.txt")}
    assert parse_reference_specs(None) == {}
    with pytest.raises(ValueError, match="NAME=PATH"):
        parse_reference_specs([str(tmp_path / "a.txt")])
    with pytest.raises(ValueError, match="twice"):
        parse_reference_specs([f"w={tmp_path / 'a.txt'}", f"w={tmp_path / 'a.txt'}"])
    with pytest.raises(ValueError, match="without '/'"):
        parse_reference_specs([f"a/b={tmp_path / 'a.txt'}"])
    with pytest.raises(FileNotFoundError, match="books"):
        parse_reference_specs([f"books={tmp_path / 'absent'}"])


def test_formats_text_folder_jsonl_parquet(tmp_path):
    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "b1.txt").write_text("first book")
    (tmp_path / "books" / "b2.txt").write_text("second book")
    (tmp_path / "books" / "metadata.csv").write_text("id,title\n1,x\n")  # not a document: skipped
    (tmp_path / "essay.txt").write_text("one essay")
    with gzip.open(tmp_path / "arxiv.jsonl.gz", "wt") as f:
        f.write(json.dumps({"text": "paper one"}) + "\n" + json.dumps({"text": "paper two"}) + "\n")
    pq.write_table(pa.table({"text": ["q1", "q2", "q3"], "id": [1, 2, 3]}), tmp_path / "se.parquet")
    got = load_reference_domains([f"books={tmp_path / 'books'}", f"essay={tmp_path / 'essay.txt'}",
                                  f"arxiv={tmp_path / 'arxiv.jsonl.gz'}", f"se={tmp_path / 'se.parquet'}"])
    assert got == {"arxiv": ["paper one", "paper two"], "books": ["first book", "second book"],
                   "essay": ["one essay"], "se": ["q1", "q2", "q3"]}
    assert load_reference_domains({"se": str(tmp_path / "se.parquet")}, max_docs=2) == {"se": ["q1", "q2"]}
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "LICENSE").write_text("not text")
    with pytest.raises(ValueError, match="no text"):
        load_reference_domains([f"e={tmp_path / 'empty'}"])


def test_documents_are_scored_alone_every_token_once():
    model = TinyCausal()
    rng = np.random.default_rng(0)
    docs = [rng.integers(1, 30, size=n).tolist() for n in (5, 40, 17, 1)]  # 40 > seq_len: 3 windows
    nll, count = documents_nll(model, docs, seq_len=16, start_id=0, batch_tokens=40)
    for d, toks in enumerate(docs):
        ref, n = unbatched_doc_nll(model, toks, 16, 0)
        assert count[d] == n == len(toks)  # the start token predicts the first; nothing else is predicted
        assert nll[d] == pytest.approx(ref, rel=1e-5)
    # batched with other documents or alone: the same numbers (no packing across documents)
    alone, _ = documents_nll(model, docs[1:2], seq_len=16, start_id=0)
    assert alone[0] == pytest.approx(nll[1], rel=1e-6)


def test_reference_loss_bits_per_byte_and_means():
    tok, model = CharTok(), TableLM(alphabet_table())
    domains = {"alpha": [ALPHA, ALPHA[3:] * 2], "noise": ["qzxj kvw", "mmbq zz"]}
    res = reference_loss(model, tok, domains, seq_len=8)
    a, n = res["domains"]["alpha"], res["domains"]["noise"]
    assert a["loss"] < 0.5 * n["loss"] and res["method"].startswith("per document")
    for name, r in res["domains"].items():
        n_bytes = sum(len(x.encode()) for x in domains[name])
        assert r["bytes"] == n_bytes and r["docs"] == 2
        assert r["tokens"] == sum(len(tok.encode(x)) for x in domains[name])
        assert r["bits_per_byte"] == pytest.approx(r["loss"] * r["tokens"] / math.log(2) / n_bytes)
    assert res["mean_bits_per_byte"] == pytest.approx((a["bits_per_byte"] + n["bits_per_byte"]) / 2)
    capped = reference_loss(model, tok, {"alpha": [ALPHA] * 5}, seq_len=8, max_tokens_per_domain=60)
    assert capped["domains"]["alpha"]["docs"] == 2  # whole documents: 26 + 26 <= 60 < 78
    flat = flat_metrics({"reference": res})
    assert flat["reference/alpha/bits_per_byte"] == a["bits_per_byte"] and "reference/mean_bits_per_byte" in flat


@pytest.mark.skipif(not SHARED.exists(), reason="shared data absent")
def test_real_reference_domains_load():
    specs = [f"wiki={SHARED / 'text' / 'wikitext-103-raw'}", f"books={SHARED / 'text' / 'pg19'}",
             f"arxiv={SHARED / 'redpajama' / 'arxiv_sample.jsonl'}",
             f"stackexchange={SHARED / 'redpajama' / 'process_code_data__stack_exchange.jsonl'}",
             f"owt={SHARED / 'text' / 'openwebtext'}"]
    got = load_reference_domains(specs)
    assert set(got) == {"wiki", "books", "arxiv", "stackexchange", "owt"}
    assert len(got["books"]) == 3  # pg19/*.txt; metadata.csv skipped
    assert len(got["arxiv"]) == 20 and all(len(d) > 100 for docs in got.values() for d in docs)
