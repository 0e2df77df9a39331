"""BFF-style Bloom dedup: the filter and its sizing, paragraph/document rules, DCLM's checker data, global mode
(against the sequential reference, independent of shards, partitions and workers; resume; the budget)."""

from __future__ import annotations

import gzip
import json
import logging
import os
import random
import re
import shutil

import numpy as np
import pyarrow as pa
import pytest

from curation.passes import forget
from curation.stage import ShardContext
from curation.storage import read_parquet
from filters.dedup.bloom import (
    REASON_DOC,
    REASON_EMPTY,
    BloomDedupShard,
    BloomFilter,
    bloom_size,
    false_positive_rate,
)
from filters.dedup.bloom_global import BffDecisions, BloomConfig, BloomDedup
from filters.dedup.synthetic import generate_shard

from .conftest import CORPORA, apply_stage, docs, local_ctx, pass_counts, ray_ctx, removal_bytes, write_shards

CHECKER = CORPORA / "dolma" / "provided" / "deduper" / "dclm_bff_checker.jsonl.gz"


# --------------------------------------------------------------------------- a sequential reference of bff old-both


def reference_bff(texts: list[str], n: int = 13, min_n: int = 13, thr: float = 0.8, insert: str = "kept"):
    """Document by document, paragraph by paragraph, with an exact set (bff's loop, no Bloom error).

    ``insert="kept"`` is bff (n-grams of removed paragraphs are not inserted);
    ``insert="all"`` is this package's rule. Returns (output text or None when dropped, reason) per document.
    """
    seen: set[tuple[str, ...]] = set()
    out = []
    for text in texts:
        cuts = [0] + [m.start() for m in re.finditer("\n", text)] + [len(text)]
        kept, total_all, cont_all = [], 0, 0
        for a, b in zip(cuts[:-1], cuts[1:]):
            para = text[a:b]
            toks = re.findall(r"\w+|[^\w\s]", para)
            grams = [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]
            if not grams and len(toks) >= min_n:
                grams = [tuple(toks)]
            contained = sum(g in seen for g in grams)
            total_all += len(grams)
            cont_all += contained
            removed = bool(grams) and contained / len(grams) > thr
            if not removed:
                kept.append(para)
            if not removed or insert == "all":
                seen.update(grams)
        if total_all and cont_all / total_all > thr:
            out.append((None, REASON_DOC))
            continue
        res = "".join(kept)
        out.append((None, REASON_EMPTY) if not res.strip() else (res, None))
    return out


def run_shard_stage(stage: BloomDedupShard, table: pa.Table, batch_rows: int, shard_id: str = "s0"):
    """Apply the per-shard stage in batches; returns {id: (text or None, reason)}."""
    out = {}
    for i in range(0, table.num_rows, batch_rows):
        res = stage.process(table.slice(i, batch_rows), ShardContext(shard_id, "in"))
        assert res.kept.num_rows + res.dropped.num_rows == min(batch_rows, table.num_rows - i)
        for k, t in zip(res.kept.column("id").to_pylist(), res.kept.column("text").to_pylist()):
            out[k] = (t, None)
        for k, r in zip(res.dropped.column("id").to_pylist(), res.dropped.column("reason").to_pylist()):
            out[k] = (None, r)
    return out


def words(prefix: str, n: int) -> str:
    return " ".join(f"{prefix}{i}" for i in range(n))


# --------------------------------------------------------------------------- the filter


def _fp_by_simulation(bits_per_item: float, k: int, n_words: int = 4096) -> float:
    """Monte-Carlo false-positive rate of a 64-bit-blocked filter (independent of the code under test)."""
    rng = np.random.default_rng(1)
    n = int(n_words * 64 / bits_per_item)
    words = [0] * n_words
    for _ in range(n):
        w = int(rng.integers(n_words))
        for b in rng.integers(0, 64, size=k):
            words[w] |= 1 << int(b)
    hits = 0
    trials = 40_000
    for _ in range(trials):
        w = int(rng.integers(n_words))
        m = 0
        for b in rng.integers(0, 64, size=k):
            m |= 1 << int(b)
        hits += (words[w] & m) == m
    return hits / trials


def test_sizing_meets_the_target_rate():
    bits, k = bloom_size(1_000_000, 0.01)
    assert 11.5 < bits / 1_000_000 < 12.5 and k == 6  # vs 9.59 bits, k=7 for a classic filter
    assert false_positive_rate(bits, k, 1_000_000) <= 0.01
    assert false_positive_rate(bits, k, 2_000_000) > 0.04  # overfilling degrades fast
    simulated = _fp_by_simulation(bits / 1_000_000, k)
    assert abs(simulated - 0.01) < 0.003, simulated  # the analytic rate matches a simulation
    assert bloom_size(10, 0.5)[0] == 64  # at least one word
    assert bloom_size(2_000_000, 0.01)[0] >= 2 * bits - 64  # linear in the expected count
    with pytest.raises(ValueError):
        bloom_size(0, 0.01)
    with pytest.raises(ValueError):
        bloom_size(10, 1.0)


def test_filter_has_no_false_negatives_and_the_target_fp_rate():
    rng = np.random.default_rng(0)
    n = 200_000
    f = BloomFilter.for_capacity(n, 0.01, seed=3)
    assert f.nbytes == f.num_bits // 8
    items = rng.integers(0, 2**63, size=n, dtype=np.uint64)
    assert not f.contains(items).any()
    f.add(items)
    assert f.contains(items).all()
    fresh = rng.integers(0, 2**63, size=n, dtype=np.uint64) | np.uint64(1 << 63)
    fp = f.contains(fresh).mean()
    assert 0.006 < fp < 0.014, fp


# --------------------------------------------------------------------------- rules on crafted inputs


def test_paragraph_and_document_rules_on_crafted_docs():
    a1, a2, a3 = words("alpha", 30), words("beta", 30), words("gamma", 30)
    texts = [
        f"{a1}\n{a2}\n{a3}",  # 0: original
        f"{words('delta', 30)}\n{a2}",  # 1: second paragraph is a copy -> cut, document kept
        f"{a1}\n{a2}\n{a3}",  # 2: exact copy -> whole document
        f"{a1}\n{a2}\n{words('eps', 200)}",  # 3: copies of 2 paragraphs but < 80% overall -> cut, kept
        "short line one\nshort line one\nshort line one",  # 4: paragraphs under 13 tokens: never deduplicated
        f"{a3}",  # 5: all of it seen -> dropped
    ]
    table = docs(texts)
    got = run_shard_stage(BloomDedupShard(fp_rate=1e-6), table, batch_rows=6)
    assert got["d00000"] == (texts[0], None)
    assert got["d00001"] == (words("delta", 30), None)  # "\n" + a2 cut out
    assert got["d00002"] == (None, REASON_DOC)
    assert got["d00003"] == ("\n" + words("eps", 200), None)  # bff keeps the newline opening a kept paragraph
    assert got["d00004"] == (texts[4], None)
    assert got["d00005"] == (None, REASON_DOC)


@pytest.mark.parametrize(("novel", "removed"), [(2, False), (1, True)])
def test_threshold_is_strictly_more_than_80_percent(novel, removed):
    """A paragraph with 8 of 10 n-grams seen stays (bff uses '>'), with 9 of 10 it goes."""
    seen_part = " ".join(f"t{i}" for i in range(22 - novel))  # 22 tokens -> 10 13-grams
    para = seen_part + " " + " ".join(f"new{i}" for i in range(novel))
    texts = [seen_part, f"{words('other', 40)}\n{para}"]
    got = run_shard_stage(BloomDedupShard(fp_rate=1e-6), docs(texts), batch_rows=2)
    assert (got["d00001"][0] == words("other", 40)) is removed


def test_results_do_not_depend_on_batch_size_and_match_the_sequential_reference():
    tables = generate_shard(0, 250, seed=9, exact_frac=0.05, near_frac=0.05, para_frac=0.2, mean_words=120)
    texts = tables.column("text").to_pylist()
    ids = tables.column("id").to_pylist()
    whole = run_shard_stage(BloomDedupShard(fp_rate=1e-7), tables, batch_rows=400)
    small = run_shard_stage(BloomDedupShard(fp_rate=1e-7), tables, batch_rows=37)
    assert whole == small
    ref_all = dict(zip(ids, reference_bff(texts, insert="all")))
    assert whole == ref_all
    ref_bff = dict(zip(ids, reference_bff(texts, insert="kept")))
    differ = [k for k in ids if ref_bff[k] != whole[k]]
    assert len(differ) <= 0.01 * len(ids)  # the insert-all simplification rarely matters
    assert sum(r is not None for _, r in whole.values()) > 8 and any(
        t is not None and t != o for (t, _), o in zip(whole.values(), texts)
    )


def test_a_new_shard_or_a_retried_shard_starts_a_fresh_filter():
    texts = [words("x", 40), words("x", 40)]
    stage = BloomDedupShard(fp_rate=1e-6)
    first = run_shard_stage(stage, docs(texts), batch_rows=1, shard_id="a")
    assert first["d00001"] == (None, REASON_DOC)
    again = run_shard_stage(stage, docs(texts), batch_rows=1, shard_id="a")  # retried task: same first batch
    assert again == first
    other = run_shard_stage(stage, docs(texts[:1], prefix="e"), batch_rows=1, shard_id="b")
    assert other["e00000"] == (texts[0], None)  # per-shard mode: no memory across shards


def test_dclm_bff_checker_file():
    """DCLM/dolma's synthetic BFF checker (doc_01..doc_10, read in file order)."""
    if not CHECKER.exists():
        pytest.skip("../shared/data is absent")
    with gzip.open(CHECKER, "rt") as f:
        rows = [json.loads(line) for line in f]
    texts = [r["text"] for r in rows]
    ids = [r["id"] for r in rows]
    table = pa.table(
        {
            "id": ids,
            "text": pa.array(texts, pa.large_string()),
            "source": ["checker"] * len(ids),
            "url": pa.array([None] * len(ids), pa.string()),
            "metadata": pa.array([None] * len(ids), pa.string()),
        }
    )
    got = run_shard_stage(BloomDedupShard(fp_rate=1e-6), table, batch_rows=3)
    ref = dict(zip(ids, reference_bff(texts, insert="kept")))  # bff's own rule
    assert got == ref
    # readable facts about the file
    assert got["doc_02"] == (None, REASON_DOC)  # a copy of doc_01
    assert got["doc_04"] == (texts[3], None)  # shares 6 of its 8 13-grams with doc_03: 75% <= 80%
    assert got["doc_06"] == (texts[5], None)  # a copy of doc_05, but its paragraphs have 3 tokens: never deduped
    assert got["doc_08"] == (None, REASON_DOC)  # a copy of doc_07


# --------------------------------------------------------------------------- global mode


def _fit_global(shards, workdir, workers=1, **kw):
    stage = BloomDedup(**kw)
    ctx = local_ctx(shards, workdir, workers)
    state = stage.fit(ctx)
    stage.load_state(json.loads(json.dumps(state.to_json())))  # as the runner reloads state.json
    assert stage.state == state
    return state, apply_stage(stage, shards, 150), ctx


def _two_shards(tmp_path):
    a = generate_shard(0, 300, seed=4, exact_frac=0.03, near_frac=0.03, para_frac=0.1, mean_words=100)
    b = generate_shard(1, 300, seed=4, exact_frac=0.03, near_frac=0.03, para_frac=0.1, mean_words=100)
    copies = a.slice(0, 50).set_column(
        0, pa.field("id", pa.string(), nullable=False), pa.array([f"copy-{i}" for i in range(50)], pa.string())
    )
    b = pa.concat_tables([b.slice(0, 250), copies])  # shard 1 ends with copies of shard 0's first docs
    return a, b, write_shards(tmp_path, [a, b])


def test_global_mode_matches_reference_and_is_worker_independent(tmp_path, caplog):
    a, b, shards = _two_shards(tmp_path)
    with caplog.at_level(logging.INFO, logger="filters.dedup.bloom_global"):
        state, got, _ = _fit_global(shards, tmp_path / "g1", 1, fp_rate=1e-6, batch_size=256)
    assert any("MiB" in r.getMessage() and "expected n-grams" in r.getMessage() for r in caplog.records)
    texts = a.column("text").to_pylist() + b.column("text").to_pylist()
    ids = a.column("id").to_pylist() + b.column("id").to_pylist()
    assert got == dict(zip(ids, reference_bff(texts, insert="all")))
    assert all(got[f"copy-{i}"][1] is not None for i in range(50))  # cross-shard copies go in global mode
    summary = state.summary
    assert summary["documents_removed"] == sum(r is not None for _, r in got.values())
    assert summary["filter"]["bytes"] > 0 and summary["paragraphs_removed_from_kept_documents"] > 0
    assert summary["filter"]["partitions"] == 4 and summary["ngrams_seen"] > 0
    # more workers in flight, small map buffers (several chunk files), and a rerun: identical decisions
    for name, workers, kw in (("g3", 3, {}), ("chunks", 1, {"map_buffer_ngrams": 2000, "batch_size": 40})):
        other, got_other, _ = _fit_global(shards, tmp_path / name, workers, fp_rate=1e-6, **kw)
        assert got_other == got and removal_bytes(other) == removal_bytes(state)
    assert len(os.listdir(tmp_path / "chunks" / "bff" / "ngrams" / "p00000")) > 4
    # per-shard mode keeps cross-shard copies (order dependence, documented)
    per_shard = run_shard_stage(BloomDedupShard(fp_rate=1e-6), read_parquet(shards[1].path), 100, shards[1].shard_id)
    assert per_shard == dict(zip(b.column("id").to_pylist(), reference_bff(b.column("text").to_pylist(), insert="all")))
    assert sum(per_shard[f"copy-{i}"][1] is not None for i in range(50)) < 10  # only copies among the copies


@pytest.mark.integration
def test_ray_and_in_process_give_identical_decisions(ray_session, tmp_path):
    _, _, shards = _two_shards(tmp_path)
    local, got, _ = _fit_global(shards, tmp_path / "local", fp_rate=1e-6, batch_size=256)
    ctx = ray_ctx(shards, tmp_path / "ray")
    remote = BloomDedup(fp_rate=1e-6, batch_size=256).fit(ctx)
    assert removal_bytes(remote) == removal_bytes(local) and remote.summary == local.summary
    assert pass_counts(ctx)["filter"] == (4, 0)


def _split(table: pa.Table, n: int) -> list[pa.Table]:
    cuts = [table.num_rows * i // n for i in range(n + 1)]
    return [table.slice(a, b - a) for a, b in zip(cuts[:-1], cuts[1:])]


def test_decisions_do_not_depend_on_shards_partitions_or_chunks(tmp_path):
    """1, 3 or 7 shards of the same documents, 1, 4 or 18 filter partitions, other map buffers: the same decisions,
    equal to the sequential reference without Bloom errors, and identical to each other with many (fp 0.2)."""
    table = generate_shard(0, 400, seed=12, exact_frac=0.05, near_frac=0.05, para_frac=0.25, mean_words=90)
    ref = dict(zip(table.column("id").to_pylist(), reference_bff(table.column("text").to_pylist(), insert="all")))
    layouts = [(1, {"min_partitions": 1}), (3, {"ngrams_per_partition": 20_000}),
               (7, {"ngrams_per_partition": 4000, "map_buffer_ngrams": 3000, "batch_size": 17})]
    exact, lossy = [], []
    for n, kw in layouts:
        shards = write_shards(tmp_path / f"in{n}", _split(table, n))
        state, got, _ = _fit_global(shards, tmp_path / f"exact{n}", fp_rate=1e-7, **kw)
        exact.append((state.summary["filter"]["partitions"], got))
        state, got, _ = _fit_global(shards, tmp_path / f"lossy{n}", fp_rate=0.2, filter_blocks=32,
                                    chunk_paragraphs=40, **kw)
        lossy.append((state.summary, got))
    assert [p for p, _ in exact][0] == 1 and len({p for p, _ in exact}) == 3  # three partition counts
    assert all(got == ref for _, got in exact)
    assert sum(r is not None for _, r in ref.values()) > 15
    # at a 20% false-positive rate the Bloom errors change decisions, the same way for every layout
    assert lossy[0][1] != ref
    assert all(got == lossy[0][1] for _, got in lossy)
    drop = ("filter", "config")
    assert all({k: v for k, v in s.items() if k not in drop} == {k: v for k, v in lossy[0][0].items() if k not in drop}
               for s, _ in lossy)
    assert len({s["filter"]["partitions"] for s, _ in lossy}) == 3
    assert len({(s["filter"]["fill_ratio"], s["filter"]["bits"]) for s, _ in lossy}) == 1


def _dotted_docs(n_docs: int, seed: int) -> list[str]:
    """Texts of one-byte tokens ("a.b.c"): ~5x more n-grams than the text-size estimate expects."""
    rng = random.Random(seed)
    paras: list[str] = []
    texts = []
    for _ in range(n_docs):
        doc = []
        for _ in range(rng.randint(2, 5)):
            if paras and rng.random() < 0.25:
                doc.append(rng.choice(paras))
            else:
                doc.append(".".join(rng.choice("abcdefghijklmnop") for _ in range(rng.randint(10, 60))))
                paras.append(doc[-1])
        texts.append("\n".join(doc))
    return texts


def test_a_partition_over_its_budget_is_cut_into_several_filter_items(tmp_path):
    texts = _dotted_docs(300, 3)
    shards = write_shards(tmp_path / "in", _split(docs(texts), 2))
    ref = dict(zip(docs(texts).column("id").to_pylist(), reference_bff(texts, insert="all")))
    one, got_one, _ = _fit_global(shards, tmp_path / "one", fp_rate=1e-7, min_partitions=1)
    cut, got_cut, ctx = _fit_global(shards, tmp_path / "cut", fp_rate=1e-7, min_partitions=1,
                                    ngrams_per_partition=7000)
    f = cut.summary["filter"]
    assert f["filter_items"] > f["partitions"] >= 2 and one.summary["filter"]["filter_items"] == 1
    assert pass_counts(ctx)["filter"][0] == f["filter_items"]
    assert got_cut == got_one == ref and sum(r is not None for _, r in ref.values()) > 5


def test_resume_at_the_item(tmp_path):
    _, _, shards = _two_shards(tmp_path)
    wd = tmp_path / "fit"
    state, got, ctx = _fit_global(shards, wd, fp_rate=1e-6)
    assert pass_counts(ctx) == {"footers": (2, 0), "map": (2, 0), "filter": (4, 0), "decide": (2, 0), "gather": (2, 0)}
    shutil.rmtree(wd / "bff" / "seen" / "f00001")
    forget(str(wd / "_passes" / "filter"), ["f00001"])
    os.remove(wd / "bff" / "decide" / "s000001.npz")
    forget(str(wd / "_passes" / "decide"), ["shard001"])
    again, got_again, ctx2 = _fit_global(shards, wd, fp_rate=1e-6)
    assert pass_counts(ctx2) == {"footers": (0, 2), "map": (0, 2), "filter": (1, 3), "decide": (1, 1),
                                 "gather": (0, 2)}
    clean, _, _ = _fit_global(shards, tmp_path / "clean", fp_rate=1e-6)
    assert got_again == got and removal_bytes(again) == removal_bytes(clean) and again.summary == clean.summary


def test_typed_state_round_trips_through_json():
    state = BffDecisions(summary={"documents_removed": 2, "filter": {"bits": 64}}, decisions={"s0": "/d/0.parquet"})
    blob = json.loads(json.dumps(state.to_json()))
    assert BffDecisions.from_json(blob) == state
    stage = BloomDedup()
    stage.load_state(blob)
    assert isinstance(stage.state, BffDecisions) and stage.state.decisions == {"s0": "/d/0.parquet"}


def test_global_mode_refuses_what_cannot_fit_the_budget(tmp_path):
    with pytest.raises(ValueError, match="lower ngrams_per_partition"):
        BloomDedup(ngrams_per_partition=10**10).check_budget(2 << 30)  # 15 GB of filter in one task
    BloomDedup(ngrams_per_partition=10**8).check_budget(2 << 30)
    with pytest.raises(ValueError, match="chunk_paragraphs"):
        BloomDedup(chunk_paragraphs=1 << 24).check_budget(2 << 30)
    with pytest.raises(ValueError, match="filter partitions"):
        BloomDedup(expected_ngrams=10**15).check_budget(2 << 30)
    with pytest.raises(ValueError, match="memory-per-worker"):
        BloomDedup().check_budget(256 << 20)
    with pytest.raises(ValueError, match="filter_blocks"):
        BloomConfig(filter_blocks=100)
    _, _, shards = _two_shards(tmp_path)
    with pytest.raises(ValueError, match="ngrams_per_partition"):
        BloomDedup(ngrams_per_partition=10**10).fit(local_ctx(shards, tmp_path / "fit"))
    assert not (tmp_path / "fit" / "_passes").exists()
