"""The token-stream reader: zero-copy views, seeded order, resumable positions, bad input."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import torch
from token_stream_helpers import write_token_stream

from train_small.data import manifest_sha256, open_token_stream, to_batch


@pytest.fixture
def stream(tmp_path):
    windows = np.arange(37 * 9).reshape(37, 9) % 1000  # window i starts with 9*i: identifiable
    return write_token_stream(tmp_path / "s", windows, vocab_size=1000, n_files=3, batch_rows=5), windows


def test_reads_every_window_once_per_epoch(stream):
    path, windows = stream
    tw = open_token_stream(path, seed=3)
    assert len(tw) == 37 and tw.seq_len == 8 and tw.vocab_size == 1000
    epoch0 = tw.batch(0, 37)
    assert sorted(map(tuple, epoch0.tolist())) == sorted(map(tuple, windows.tolist()))
    assert not np.array_equal(epoch0, windows)  # shuffled
    epoch1 = tw.batch(37, 37)
    assert sorted(map(tuple, epoch1.tolist())) == sorted(map(tuple, windows.tolist()))
    assert not np.array_equal(epoch0, epoch1)  # a fresh order each epoch


def test_positions_resume_and_wrap(stream):
    path, _ = stream
    a, b = open_token_stream(path, seed=5), open_token_stream(path, seed=5)
    long = a.batch(0, 100)  # crosses two epoch boundaries
    parts = np.concatenate([b.batch(p, 10) for p in range(0, 100, 10)])
    assert np.array_equal(long, parts)
    assert np.array_equal(open_token_stream(path, seed=5).batch(33, 7), long[33:40])
    assert not np.array_equal(open_token_stream(path, seed=6).batch(0, 37), long[:37])


def test_views_are_zero_copy(stream):
    path, _ = stream
    tw = open_token_stream(path)
    assert all(not c.flags.owndata and not c.flags.writeable for c in tw.chunks)


def test_to_batch_shifts_targets(stream):
    path, _ = stream
    x, y = to_batch(open_token_stream(path).batch(0, 4), 8, "cpu")
    assert x.shape == y.shape == (4, 8) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    xc, yc = to_batch(open_token_stream(path).batch(0, 4), 5, "cpu")  # cropping to a shorter recipe seq_len
    assert torch.equal(xc, x[:, :5]) and torch.equal(yc, y[:, :5])


def test_bad_input_is_a_clear_error(tmp_path, stream):
    path, _ = stream
    with pytest.raises(FileNotFoundError):
        open_token_stream(tmp_path / "missing")
    m = json.loads((path / "manifest.json").read_text())
    m["files"][0]["windows"] += 1
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="manifest says"):
        open_token_stream(path)
    bad = tmp_path / "bad"
    write_token_stream(bad, np.zeros((4, 9), dtype=np.int64), vocab_size=10)
    m = json.loads((bad / "manifest.json").read_text())
    m["seq_len"] = 16  # windows hold 9 tokens, not 17
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="fixed_size_list"):
        open_token_stream(bad)
    other = tmp_path / "other"
    other.mkdir()
    schema = pa.schema([("tokens", pa.list_(pa.uint16(), 9))])
    with pa.OSFile(str(other / "a.arrow"), "wb") as sink, pa.ipc.new_stream(sink, schema):
        pass
    manifest = {"seq_len": 8, "vocab_size": 10, "eos_id": 0, "dtype": "uint16", "num_windows": 0,
                "files": [{"name": "a.arrow", "windows": 0}]}
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="no windows"):
        open_token_stream(other)
    del manifest["vocab_size"]
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="vocab_size"):
        open_token_stream(other)


def test_manifest_hash_identifies_the_mix(stream, tmp_path):
    path, windows = stream
    h = manifest_sha256(path)
    other = write_token_stream(tmp_path / "o", windows[:30], vocab_size=1000)
    assert h is not None and len(h) == 64 and h != manifest_sha256(other)

