"""Rehydration: documents packed as many times as their duplicate cluster's size gives (FineWeb-2's table or a
given one), copies in later passes over the shard (never side by side), off by default, recorded in the manifest."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
import sentencepiece as spm

from curation.schema import docs_table
from curation.storage import write_parquet_atomic
from curation.tokens import TokenStream, build_token_stream
from curation.tokens.mix import FINEWEB2_REHYDRATION, rehydration_copies, rehydration_table

from .conftest import make_docs

SEQ = 63


def test_fineweb2_table():
    sizes = np.array([1, 2, 3, 4, 5, 99, 100, 999, 1000, 50_000, 0])
    assert rehydration_copies(sizes, FINEWEB2_REHYDRATION).tolist() == [1, 2, 3, 3, 5, 5, 8, 8, 1, 1, 1]
    assert rehydration_table("fineweb2") == rehydration_table(True) == FINEWEB2_REHYDRATION
    assert rehydration_table("1:1, 3:2") == ((1, 1), (3, 2)) == rehydration_table({3: 2, 1: 1})
    assert rehydration_table(None) is None
    for bad in ("2:2", "1:1,1:2", "1:0", "1-1", "x"):
        with pytest.raises(ValueError, match="rehydration table"):
            rehydration_table(bad)


@pytest.fixture(scope="module")
def run_with_sizes(tmp_path_factory):
    """A curated run whose documents carry dup_cluster_size (1, 2, 3, 5 or 200), two shards."""
    root = tmp_path_factory.mktemp("rehydrate")
    rng = random.Random(4)
    shards = []
    for s, n in enumerate((40, 30)):
        texts = make_docs(rng, n, max_words=120)
        sizes = [rng.choice([1, 1, 1, 2, 3, 5, 200]) for _ in range(n)]
        sizes[1] = None  # an unknown size counts as 1
        table = docs_table([f"r/{s}/{i}" for i in range(n)], texts, "web")
        table = table.append_column("dup_cluster_size", pa.array(sizes, pa.int64()))
        write_parquet_atomic(str(root / "run" / "data" / f"{s:05d}.parquet"), table)
        shards.append((texts, [1 if x is None else x for x in sizes]))
    return str(root / "run"), shards


def _stream(out: str) -> list[int]:
    ts = TokenStream(out)
    return np.concatenate(ts.chunks).reshape(-1).tolist()


def test_copies_follow_the_table_in_later_passes(run_with_sizes, tokenizer, tmp_path):
    run, shards = run_with_sizes
    sp = spm.SentencePieceProcessor(model_file=tokenizer)
    plain = build_token_stream([run], str(tmp_path / "plain"), tokenizer, seq_len=SEQ, shuffle=False,
                               remainder="drop")
    assert plain["rehydrate"] is None and plain["mix"]["sources"][0]["rehydrated_copies"] == 0
    m = build_token_stream([run], str(tmp_path / "hyd"), tokenizer, seq_len=SEQ, shuffle=False, remainder="drop",
                           rehydrate="fineweb2")
    eos = m["eos_id"]
    got = TokenStream(str(tmp_path / "hyd")).chunks
    expected_copies = 0
    for rows, (texts, sizes) in zip(got, shards):
        copies = rehydration_copies(np.array(sizes), FINEWEB2_REHYDRATION).tolist()
        expected_copies += sum(c - 1 for c in copies if c) - sum(c - 1 for t, c in zip(texts, copies) if not t)
        stream: list[int] = []
        for r in range(max(copies)):  # pass r: the documents with more than r copies, in row order
            for t, c in zip(texts, copies):
                if t and c > r:
                    stream += sp.encode(t) + [eos]
        full = len(stream) // (SEQ + 1)
        assert rows.reshape(-1).tolist() == stream[: full * (SEQ + 1)]
    src = m["mix"]["sources"][0]
    assert src["rehydrated_copies"] == expected_copies == m["rehydrate"]["copies"] > 0
    assert m["rehydrate"]["table"] == [list(x) for x in FINEWEB2_REHYDRATION]
    assert src["docs"] == plain["mix"]["sources"][0]["docs"]  # documents are counted once
    assert src["doc_tokens"] == plain["mix"]["sources"][0]["doc_tokens"] + src["rehydrated_tokens"]
    assert m["num_windows"] > plain["num_windows"]


def test_off_by_default_and_column_required(corpus, tokenizer, tmp_path):
    with pytest.raises(RuntimeError, match="dup_cluster_size"):
        build_token_stream([corpus["code"]], str(tmp_path / "x"), tokenizer, seq_len=SEQ, rehydrate="1:1,2:2",
                           on_error="raise")


def test_cli_flag(run_with_sizes, tokenizer, tmp_path):
    run, _ = run_with_sizes
    out = str(tmp_path / "cli")
    helptext = subprocess.run([sys.executable, "-m", "curation.tokens", "build", "--help"], capture_output=True,
                              text=True, check=True).stdout
    assert "--rehydrate" in helptext and "FineWeb-2" in helptext
    subprocess.run([sys.executable, "-m", "curation.tokens", "build", "--runs", run, "--out", out, "--tokenizer",
                    tokenizer, "--seq-len", str(SEQ), "--executor", "local", "--rehydrate", "1:1,3:2"],
                   check=True, capture_output=True, cwd=os.getcwd())
    m = json.load(open(os.path.join(out, "manifest.json")))
    assert m["rehydrate"]["table"] == [[1, 1], [3, 2]] and m["rehydrate"]["copies"] > 0
