"""Held-out loss: parity with a per-window reference, bits per byte, file formats, domain ordering."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from eval_tiny_models import ALPHA, CharTok, TableLM, TinyCausal, alphabet_table

from train_small.eval.heldout import heldout_loss, load_texts, stream_nll


def reference_nll(model, tokens: list[int], seq_len: int) -> tuple[float, int]:
    total, n = 0.0, 0
    for s in range(0, len(tokens) - 1, seq_len):
        w = tokens[s : s + seq_len + 1]
        if len(w) < 2:
            continue
        with torch.no_grad():
            lp = torch.log_softmax(model(torch.tensor([w[:-1]]))[0].double(), -1)
        for i, t in enumerate(w[1:]):
            total -= float(lp[i, t])
            n += 1
    return total, n


def test_stream_nll_matches_reference_windows():
    model = TinyCausal()
    rng = np.random.default_rng(1)
    toks = rng.integers(1, 30, size=203)  # 203 tokens, seq_len 16: 12 full windows + a short tail
    got, n = stream_nll(model, toks, seq_len=16, batch_size=5)
    ref, rn = reference_nll(model, toks.tolist(), 16)
    assert n == rn == 202  # every token but the first is predicted exactly once
    assert got == pytest.approx(ref, rel=1e-5)


def test_domains_bits_per_byte_and_ordering():
    tok = CharTok()
    model = TableLM(alphabet_table())
    texts = {
        "alphabet": [ALPHA * 3, ALPHA[5:] + ALPHA],
        "scrambled": ["qwzkx jfpv mlbr" * 4, "zyxwvutsrq" * 5],
    }
    res = heldout_loss(model, tok, texts, seq_len=32)
    a, s = res["domains"]["alphabet"], res["domains"]["scrambled"]
    assert a["loss"] < 0.5 * s["loss"]  # the model predicts the alphabet, not noise
    for d, docs in texts.items():
        r = res["domains"][d]
        n_bytes = sum(len(x.encode()) for x in docs)
        assert r["bytes"] == n_bytes and r["docs"] == 2
        assert r["bits_per_byte"] == pytest.approx(r["loss"] * r["tokens"] / math.log(2) / n_bytes)
    assert res["mean_loss"] == pytest.approx((a["loss"] + s["loss"]) / 2)


def test_token_cap_keeps_whole_documents():
    tok = CharTok()
    model = TableLM(alphabet_table())
    docs = [ALPHA] * 10  # 27 tokens each with EOS
    res = heldout_loss(model, tok, {"d": docs}, seq_len=16, max_tokens_per_domain=100)
    assert res["domains"]["d"]["docs"] == 3  # 3 * 27 = 81 <= 100 < 108
    assert res["domains"]["d"]["bytes"] == 3 * 26


def test_load_texts_formats(tmp_path):
    pq.write_table(pa.table({"text": ["p1", "p2", "p3"], "source": ["web", "wiki", "web"]}), tmp_path / "pool.parquet")
    with gzip.open(tmp_path / "books.jsonl.gz", "wt") as f:
        f.write(json.dumps({"text": "b1"}) + "\n" + "not json\n" + json.dumps({"text": "b2"}) + "\n")
    (tmp_path / "essay.txt").write_text("one whole document")
    got = load_texts(str(tmp_path))
    assert got == {"books": ["b1", "b2"], "essay": ["one whole document"], "web": ["p1", "p3"], "wiki": ["p2"]}
    named = load_texts({"clean": [str(tmp_path / "pool.parquet"), str(tmp_path / "essay.txt")]})
    assert named == {"clean": ["p1", "p2", "p3", "one whole document"]}
    with pytest.raises(FileNotFoundError):
        load_texts(str(tmp_path / "absent.jsonl"))
