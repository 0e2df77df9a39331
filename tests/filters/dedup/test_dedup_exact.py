"""Exact dedup on text and URL: normalisation, the keep rule, planted copies, determinism, batches."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from curation.io import read_parquet
from curation.stage import GlobalContext, ShardContext
from filters.dedup.exact import ExactDedup, text_key_hashes
from filters.dedup.hashing import normalize_exact, normalize_url
from filters.dedup.synthetic import generate_shard

from .conftest import docs, write_shards


def test_normalisation():
    t = normalize_exact(
        pa.array(["Hello   World\n", "hello world", " HELLO\tWORLD ", "hello worlds"], pa.large_string())
    )
    v = t.to_pylist()
    assert v[0] == v[1] == v[2] != v[3]
    u = normalize_url(
        pa.array(
            [
                "https://www.Example.com/a/",
                "http://example.com/a#frag",
                "example.com/a",
                "",
                None,
                "https://x.org/A?q=1",
            ]
        )
    ).to_pylist()
    assert u[0] == u[1] == u[2] == "example.com/a"
    assert u[3] is None and u[4] is None
    assert u[5] == "x.org/a?q=1"


def test_text_key_hashes_agree_with_the_normalised_string():
    texts = [
        "Hello   World\n",
        "hello world",
        " HELLO\tWORLD ",
        "hello\u00a0world",
        "hello worlds",
        "",
        "   ",
        "ÉCOLE été",
        "e\u0301cole e\u0301te\u0301",
        "world hello",
        "hello world hello world",
    ]
    texts += generate_shard(0, 200, seed=1, exact_frac=0.2, near_frac=0.1).column("text").to_pylist()
    h1, h2 = text_key_hashes(pa.array(texts, pa.large_string()))
    norm = normalize_exact(pa.array(texts, pa.large_string())).to_pylist()
    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            assert (norm[i] == norm[j]) == (h1[i] == h1[j]) == (h2[i] == h2[j]), (texts[i][:40], texts[j][:40])


def _fit(stage, shards, tmp_path, name, workers):
    state = stage.fit(GlobalContext(shards=shards, workdir=str(tmp_path / name), num_workers=workers))
    json.dumps(state)
    stage.load_state(state)
    return state


def _apply(stage, shards, batch_rows):
    removed = {}
    for s in shards:
        t = read_parquet(s.path)
        for i in range(0, max(1, t.num_rows), batch_rows):
            b = t.slice(i, batch_rows)
            res = stage.process(b, ShardContext(s.shard_id, s.input_path))
            assert res.kept.num_rows + res.dropped.num_rows == b.num_rows
            removed.update(zip(res.dropped.column("id").to_pylist(), res.dropped.column("reason").to_pylist()))
    return removed


def test_planted_exact_copies_keep_the_first_in_corpus_order(ray_session, tmp_path):
    tables = [generate_shard(s, 500, seed=2, exact_frac=0.08, near_frac=0.05) for s in range(3)]
    # cross-shard copies: shard 2 repeats some of shard 0 (with other ids)
    extra = tables[0].slice(100, 30)
    extra = extra.set_column(0, pa.field("id", pa.string(), nullable=False), pa.array([f"x{i}" for i in range(30)]))
    tables[2] = pa.concat_tables([tables[2], extra])
    shards = write_shards(tmp_path, tables)
    stage = ExactDedup(docs_per_partition=400, min_partitions=2)
    state = _fit(stage, shards, tmp_path, "w2", 2)
    removed = _apply(stage, shards, batch_rows=128)
    # brute force: group by normalised text, keep the first in (shard id, row) order
    seen, expected, dup_keys = set(), set(), set()
    for t in tables:  # tables are in shard-id order
        for i, key in zip(t.column("id").to_pylist(), normalize_exact(t.column("text")).to_pylist()):
            if key in seen:
                expected.add(i)
                dup_keys.add(key)
            seen.add(key)
    assert set(removed) == expected
    assert set(removed.values()) == {"dedup:exact"}
    assert {f"x{i}" for i in range(30)} <= set(removed)
    s = state["summary"]
    assert s["documents_removed"] == len(expected)
    assert s["removed_by_source"]["synthetic"]["documents"] == len(expected)
    assert s["clusters"] == len(dup_keys)
    assert sum(int(k) * v for k, v in s["cluster_size_hist"].items()) == len(expected) + len(dup_keys)
    assert all(c["kept"] not in removed and all(e in removed for e in c["examples"]) for c in s["largest_clusters"])
    # one worker and a rerun: byte-identical removal lists
    for name, w in (("w1", 1), ("w2b", 2)):
        other = _fit(ExactDedup(docs_per_partition=400, min_partitions=2), shards, tmp_path, name, w)
        for sid, path in state["removal"].items():
            assert open(other["removal"][sid], "rb").read() == open(path, "rb").read()


def test_url_dedup_ignores_missing_urls(ray_session, tmp_path):
    texts = [f"document {c}" for c in "abcdefg"]
    urls = ["https://a.com/x", "http://www.a.com/x/", None, None, "", "https://b.com/y", "https://b.com/y#top"]
    shards = write_shards(tmp_path, [docs(texts[:4], urls=urls[:4]), docs(texts[4:], prefix="e", urls=urls[4:])])
    stage = ExactDedup(key="url")
    _fit(stage, shards, tmp_path, "u", 2)
    assert _apply(stage, shards, 2) == {"d00001": "dedup:url", "e00002": "dedup:url"}


def test_bad_configuration_and_missing_state():
    with pytest.raises(ValueError):
        ExactDedup(key="title")
    with pytest.raises(RuntimeError, match="before fit"):
        ExactDedup().process(docs(["a"]), ShardContext("s", "p"))
