"""Exact dedup on text and URL: normalisation, the keep rule, planted copies, determinism, batches,
resume at the item, the memory budget, the typed state."""

from __future__ import annotations

import glob
import json
import os
import shutil

import pyarrow as pa
import pytest

from curation.passes import forget
from curation.runner import run_recipe
from curation.stage import ShardContext
from filters.dedup.common import RemovalLists, partition_count
from filters.dedup.exact import REDUCE_BYTES_PER_DOC, ExactDedup, ExactDedupConfig, text_key_hashes
from filters.dedup.hashing import normalize_exact, normalize_url
from filters.dedup.synthetic import generate_shard

from .conftest import apply_stage, docs, local_ctx, pass_counts, ray_ctx, removal_bytes, write_shards


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


def _fit(stage, shards, workdir, workers=1, memory=2 << 30):
    ctx = local_ctx(shards, workdir, workers, memory)
    state = stage.fit(ctx)
    blob = json.loads(json.dumps(state.to_json()))  # what the runner saves in state.json
    stage.load_state(blob)
    assert stage.state == state
    return state, ctx


def _removed(stage, shards, batch_rows):
    return {k: r for k, (_, r) in apply_stage(stage, shards, batch_rows).items() if r is not None}


def _planted(tmp_path):
    tables = [generate_shard(s, 500, seed=2, exact_frac=0.08, near_frac=0.05) for s in range(3)]
    # cross-shard copies: shard 2 repeats some of shard 0 (with other ids)
    extra = tables[0].slice(100, 30)
    extra = extra.set_column(0, pa.field("id", pa.string(), nullable=False), pa.array([f"x{i}" for i in range(30)]))
    tables[2] = pa.concat_tables([tables[2], extra])
    return tables, write_shards(tmp_path, tables)


def test_planted_exact_copies_keep_the_first_in_corpus_order(tmp_path):
    tables, shards = _planted(tmp_path)
    stage = ExactDedup(docs_per_partition=400, min_partitions=2)
    state, _ = _fit(stage, shards, tmp_path / "w1")
    removed = _removed(stage, shards, batch_rows=128)
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
    s = state.summary
    assert s["documents_removed"] == len(expected)
    assert s["removed_by_source"]["synthetic"]["documents"] == len(expected)
    assert s["clusters"] == len(dup_keys)
    assert sum(int(k) * v for k, v in s["cluster_size_hist"].items()) == len(expected) + len(dup_keys)
    assert s["largest_clusters"] and all(c["kept"] and c["examples"] for c in s["largest_clusters"])
    assert all(c["kept"] not in removed and all(e in removed for e in c["examples"]) for c in s["largest_clusters"])
    # more workers in flight, small map buffers (several chunk files per shard) and a rerun: byte-identical lists
    for name, workers, buffer in (("w3", 3, None), ("chunks", 1, 97), ("again", 1, None)):
        kw = {"map_buffer_docs": buffer, "batch_size": 50} if buffer else {}
        other, ctx = _fit(ExactDedup(docs_per_partition=400, min_partitions=2, **kw), shards, tmp_path / name, workers)
        assert removal_bytes(other) == removal_bytes(state) and other.summary == state.summary
        assert other.summary["partitions"] == 4  # from the corpus size (1,530 documents / 400), not the workers
    assert len(glob.glob(str(tmp_path / "chunks" / "exact" / "map" / "p*" / "s000000-c*.npz"))) > 5


@pytest.mark.integration
def test_ray_and_in_process_give_identical_removal_lists(ray_session, tmp_path):
    _, shards = _planted(tmp_path)
    local, _ = _fit(ExactDedup(docs_per_partition=400, min_partitions=2), shards, tmp_path / "local")
    ctx = ray_ctx(shards, tmp_path / "ray")
    remote = ExactDedup(docs_per_partition=400, min_partitions=2).fit(ctx)
    assert removal_bytes(remote) == removal_bytes(local) and remote.summary == local.summary
    assert all(ran for ran, _ in pass_counts(ctx).values())


def test_resume_at_the_item(tmp_path):
    """Lose some markers and outputs of three passes: a rerun redoes exactly those items, same lists."""
    _, shards = _planted(tmp_path)
    wd = tmp_path / "fit"
    state, ctx = _fit(ExactDedup(docs_per_partition=400, min_partitions=2), shards, wd)
    parts = state.summary["partitions"]
    assert pass_counts(ctx) == {"footers": (3, 0), "map": (3, 0), "reduce": (parts, 0), "gather": (3, 0),
                                "sizes": (3, 0)}
    chunks = sorted(glob.glob(str(wd / "exact" / "map" / "p*" / "s000001-c*.npz")))
    before = {p: open(p, "rb").read() for p in chunks}
    for p in [*chunks, *glob.glob(str(wd / "exact" / "removed" / "s*" / "p00003.npz")),
              str(wd / "exact" / "removal" / "000002.parquet")]:
        os.remove(p)
    for name, key in (("map", "shard001"), ("reduce", "p00003"), ("gather", "shard002")):
        forget(str(wd / "_passes" / name), [key])
    # a stray file in the partition being redone (another shard's copy, as a killed older attempt might leave):
    # the reduce reads the files the maps reported, never a directory listing
    stray = sorted(glob.glob(str(wd / "exact" / "map" / "p00003" / "s000000-c*.npz")))[0]
    shutil.copy(stray, wd / "exact" / "map" / "p00003" / "s000009-c0000.npz")
    again, ctx2 = _fit(ExactDedup(docs_per_partition=400, min_partitions=2), shards, wd)
    assert pass_counts(ctx2) == {"footers": (0, 3), "map": (1, 2), "reduce": (1, parts - 1), "gather": (1, 2),
                                 "sizes": (0, 3)}
    assert {p: open(p, "rb").read() for p in chunks} == before
    clean, _ = _fit(ExactDedup(docs_per_partition=400, min_partitions=2), shards, tmp_path / "clean")
    assert removal_bytes(again) == removal_bytes(clean) and again.summary == clean.summary
    # a third run: nothing left to do
    _, ctx3 = _fit(ExactDedup(docs_per_partition=400, min_partitions=2), shards, wd)
    assert all(ran == 0 for ran, _ in pass_counts(ctx3).values())


def test_url_dedup_ignores_missing_urls(tmp_path):
    texts = [f"document {c}" for c in "abcdefg"]
    urls = ["https://a.com/x", "http://www.a.com/x/", None, None, "", "https://b.com/y", "https://b.com/y#top"]
    shards = write_shards(tmp_path, [docs(texts[:4], urls=urls[:4]), docs(texts[4:], prefix="e", urls=urls[4:])])
    stage = ExactDedup(key="url")
    _fit(stage, shards, tmp_path / "u")
    assert _removed(stage, shards, 2) == {"d00001": "dedup:url", "e00002": "dedup:url"}


def test_bad_configuration_and_missing_state():
    with pytest.raises(ValueError):
        ExactDedup(key="title")
    with pytest.raises(ValueError, match="docs_per_partition"):
        ExactDedup(docs_per_partition=0)
    with pytest.raises(ValueError, match="not both"):
        ExactDedup(ExactDedupConfig(), key="url")
    assert ExactDedup(ExactDedupConfig(key="url")).config() == ExactDedup(key="url").config()
    assert ExactDedup(key="url").config() != ExactDedup().config()  # the config is the recipe hash's input
    with pytest.raises(RuntimeError, match="before fit"):
        ExactDedup().process(docs(["a"]), ShardContext("s", "p"))


def test_typed_state_round_trips_through_json(tmp_path):
    state = RemovalLists(summary={"documents_removed": 3, "largest_clusters": [{"kept": "a"}]}, plots=("x.png",),
                         reason="dedup:url", removal={"s0": "/a/0.parquet", "s1": "/a/1.parquet"})
    blob = json.loads(json.dumps(state.to_json()))
    assert blob["type"].endswith("RemovalLists")
    assert RemovalLists.from_json(blob) == state
    stage = ExactDedup(key="url")
    stage.load_state(blob)
    assert isinstance(stage.state, RemovalLists) and stage.state == state
    assert stage.state.removal["s1"] == "/a/1.parquet" and stage.state.reason == "dedup:url"


def test_the_budget_refuses_what_cannot_fit_before_anything_runs(tmp_path):
    stage = ExactDedup(docs_per_partition=50_000_000)  # 50M x 128 B = 6 GiB for one reduce
    with pytest.raises(ValueError, match="lower docs_per_partition"):
        stage.check_budget(2 << 30)
    stage.check_budget(8 << 30)  # fits a larger budget
    with pytest.raises(ValueError, match="raise --memory-per-worker"):
        ExactDedup().check_budget(128 << 20)  # nothing left after a task's own cost
    with pytest.raises(ValueError, match="map_buffer_docs"):
        ExactDedup(map_buffer_docs=10**9).check_budget(2 << 30)
    # the fit and the runner refuse before any pass or shard runs
    _, shards = _planted(tmp_path)
    with pytest.raises(ValueError, match="docs_per_partition"):
        stage.fit(local_ctx(shards, tmp_path / "fit"))
    assert not (tmp_path / "fit" / "_passes").exists()
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": f"a{i}", "text": f"text {i % 3}"}) + "\n" for i in range(10)))
    with pytest.raises(ValueError, match="docs_per_partition"):
        run_recipe([stage], [str(src)], str(tmp_path / "run"), executor="local", progress=False)
    assert not (tmp_path / "run" / "data").exists()


def test_partition_counts_follow_the_corpus_and_the_budget():
    per_gib = partition_count(10**8, REDUCE_BYTES_PER_DOC, 2 << 30)
    assert partition_count(10**9, REDUCE_BYTES_PER_DOC, 2 << 30) in range(10 * per_gib - 10, 10 * per_gib + 1)
    assert partition_count(10**8, REDUCE_BYTES_PER_DOC, 4 << 30) < per_gib  # a larger budget, fewer partitions
    assert partition_count(10**8, REDUCE_BYTES_PER_DOC, 2 << 30, records_per_partition=10**6) == 100
    assert partition_count(10, REDUCE_BYTES_PER_DOC, 2 << 30, minimum=4) == 4
