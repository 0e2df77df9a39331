"""TokenStream: zero-copy views, seeded order, resume, rank sharding; the files open in HF datasets and pyarrow."""

from __future__ import annotations

import itertools
import json
import os
import shutil

import numpy as np
import pyarrow as pa
import pytest

from curation.tokens import TokenStream, build_token_stream

SEQ = 31


@pytest.fixture(scope="module")
def stream(corpus, tokenizer, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("stream"))
    build_token_stream([corpus["web"], corpus["code"]], out, tokenizer, seq_len=SEQ, seed=4, num_shards=3)
    return out


def _all_rows(ts: TokenStream) -> np.ndarray:
    return np.concatenate(ts.chunks)


def test_views_are_zero_copy_into_the_mapped_files(stream):
    ts = TokenStream(stream)
    assert len(ts.chunks) == 3 and ts.num_windows == sum(len(c) for c in ts.chunks)
    for c in ts.chunks:
        assert c.shape[1] == SEQ + 1 and c.dtype == np.uint16
        assert not c.flags.owndata and not c.flags.writeable  # a view of the read-only mapping
    b = ts.batch(1, 5)  # seed=None: consecutive windows of one file -> a view
    assert np.shares_memory(b, ts.chunks[0]) and np.array_equal(b, ts.chunks[0][1:6])
    assert np.shares_memory(ts.window(2), ts.chunks[0])
    # a batch across a file boundary is gathered (a copy) but holds the same windows
    n0 = len(ts.chunks[0])
    across = ts.batch(n0 - 2, 4)
    assert not np.shares_memory(across, ts.chunks[0])
    assert np.array_equal(across, np.concatenate([ts.chunks[0][-2:], ts.chunks[1][:2]]))


def test_seeded_order_matches_the_documented_rule_and_changes_each_epoch(stream):
    ts = TokenStream(stream, seed=7)
    rows, n = _all_rows(TokenStream(stream)), ts.num_windows
    perm0 = np.random.default_rng([7, 0]).permutation(n)
    perm1 = np.random.default_rng([7, 1]).permutation(n)
    assert np.array_equal(ts.batch(0, n), rows[perm0])
    straddle = ts.batch(n - 3, 6)  # the end of epoch 0 then the start of epoch 1
    assert np.array_equal(straddle, np.concatenate([rows[perm0[-3:]], rows[perm1[:3]]]))
    assert not np.array_equal(perm0, perm1)
    assert np.array_equal(TokenStream(stream, seed=7).batch(5, 9), ts.batch(5, 9))  # deterministic


def test_resume_at_a_position_continues_the_same_sequence(stream):
    ts = TokenStream(stream, seed=1)
    bs = 6
    steps = 2 * ts.num_windows // bs + 3  # more than two epochs
    full = list(itertools.islice(ts.iter_batches(bs, loop=True), steps))
    k = steps // 2 + 1
    resumed = list(itertools.islice(TokenStream(stream, seed=1).iter_batches(bs, start=k * bs, loop=True), steps - k))
    assert all(np.array_equal(a, b) for a, b in zip(full[k:], resumed)) and len(resumed) == steps - k
    # one epoch without loop: whole batches only, every window of the epoch once
    epoch = list(ts.iter_batches(bs))
    assert len(epoch) == ts.num_windows // bs
    assert len({r.tobytes() for b in epoch for r in b}) <= ts.num_windows


@pytest.mark.parametrize("seed", [None, 5])
def test_ranks_are_disjoint_equal_and_cover_the_epoch(stream, seed):
    world = 3
    ranks = [TokenStream(stream, seed=seed, rank=r, world_size=world) for r in range(world)]
    n = ranks[0].num_windows
    ids = [r.global_ids(0, len(r)) for r in ranks]
    assert all(len(x) == n // world for x in ids)
    flat = np.concatenate(ids)
    assert len(np.unique(flat)) == len(flat) == (n // world) * world  # disjoint, same size on every rank
    whole = TokenStream(stream, seed=seed).global_ids(0, (n // world) * world)
    assert np.array_equal(flat, whole)  # rank r reads block r of the epoch's order
    rows = _all_rows(ranks[0])
    assert np.array_equal(ranks[1].batch(0, 4), rows[ids[1][:4]])


def test_hf_datasets_and_pyarrow_open_the_files(stream):
    datasets = pytest.importorskip("datasets")
    ts = TokenStream(stream)
    for f, chunk in zip(ts.manifest["files"], ts.chunks):
        path = os.path.join(stream, f["name"])
        ds = datasets.Dataset.from_file(path)
        assert ds.num_rows == f["windows"] and ds.column_names == ["tokens"]
        assert np.array_equal(np.asarray(ds.with_format("numpy")["tokens"]), chunk)
        table = pa.ipc.open_stream(pa.memory_map(path)).read_all()
        assert table.schema.field("tokens").type.list_size == SEQ + 1
        assert np.array_equal(table.column("tokens").combine_chunks().flatten().to_numpy().reshape(-1, SEQ + 1), chunk)
        with pytest.raises(pa.ArrowInvalid):
            pa.ipc.open_file(path)  # streaming format, not the IPC file format


def test_inconsistent_streams_are_refused(stream, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(stream, bad)
    m = json.loads((bad / "manifest.json").read_text())
    m["files"][0]["windows"] += 1
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="the manifest says"):
        TokenStream(str(bad))
    with pytest.raises(ValueError, match="rank"):
        TokenStream(stream, rank=2, world_size=2)


def test_an_empty_bucket_file_still_opens(tmp_path):
    datasets = pytest.importorskip("datasets")
    from curation.tokens.shuffle import write_stream

    path = str(tmp_path / "tokens-00000-of-00001.arrow")
    assert write_stream(path, iter([]), SEQ, np.dtype(np.uint32)) == 0
    ds = datasets.Dataset.from_file(path)
    assert ds.num_rows == 0 and ds.features["tokens"].length == SEQ + 1
    assert pa.ipc.open_stream(pa.memory_map(path)).read_all().num_rows == 0
