"""Storage: what counts as an input (bookkeeping names skipped), file names that are not UTF-8, listings
instead of per-file requests, writes that leave nothing behind when they fail."""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest

from curation import storage
from curation.runner import InputSpec, run_recipe


def _touch(path, text: str = '{"text": "a document long enough"}\n') -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def test_names_beginning_with_underscore_or_dot_are_not_inputs(tmp_path):
    for rel in ("a/x.jsonl", "a/b/y.jsonl", "_truth/t.jsonl", ".cache/c.jsonl", "_SUCCESS", ".hidden.jsonl",
                "a/_tmp.jsonl", "a/.part.jsonl", "a/_b/z.jsonl"):
        _touch(tmp_path / "pool" / rel)
    root = str(tmp_path / "pool")
    assert storage.expand(root) == [f"{root}/a/b/y.jsonl", f"{root}/a/x.jsonl"]
    assert storage.expand(f"{root}/*/*.jsonl") == [f"{root}/a/x.jsonl"]
    assert storage.expand(f"{root}/**/*.jsonl") == [f"{root}/a/b/y.jsonl", f"{root}/a/x.jsonl"]
    # a bookkeeping file named explicitly is what the user asked for
    assert storage.expand(f"{root}/_truth/t.jsonl") == [f"{root}/_truth/t.jsonl"]
    assert storage.expand(f"{root}/missing") == []
    # the root itself may begin with "_": only names below it count
    assert storage.expand(f"{root}/_truth") == [f"{root}/_truth/t.jsonl"]


def test_a_file_name_that_is_not_utf8_is_read_with_escaped_ids(tmp_path):
    """On POSIX a name is bytes; os hands back a surrogate-escaped str. The shard id, the generated document
    ids and the quarantine's file column take the bytes as \\xNN escapes; the run neither crashes nor loses
    the file."""
    folder = tmp_path / "in"
    folder.mkdir()
    raw = os.fsencode(str(folder)) + b"/caf\xe9-\xff.jsonl"
    with open(raw, "wb") as f:
        f.write(b'{"text": "first document of a file with an odd name"}\n{"text": broken\n'
                b'{"text": "second document of that file"}\n')
    _touch(folder / "plain.jsonl")
    inputs = storage.expand(str(folder))
    assert len(inputs) == 2 and any("\udce9" in p for p in inputs)
    odd = next(p for p in inputs if "\udce9" in p)
    assert InputSpec(odd).file_id.startswith("caf_xe9-_xff.jsonl-")
    out = tmp_path / "run"
    res = run_recipe([], [InputSpec(p, "jsonl", "web") for p in inputs], str(out), progress=False, report=False)
    assert res.ok and res.stats["totals"]["read"]["in"] == 4 and res.stats["totals"]["read"]["kept"] == 3
    ids = sorted(i for f in (out / "data").iterdir() for i in pq.read_table(f).column("id").to_pylist())
    assert ids == ["web/caf\\xe9-\\xff.jsonl/0", "web/caf\\xe9-\\xff.jsonl/2", "web/plain.jsonl/0"]
    (q,) = list((out / "quarantine" / "p0").iterdir())
    assert pq.read_table(q).column("file").to_pylist() == [storage.printable(odd)]
    assert "\\xe9" in json.loads((out / "run.json").read_text())["inputs"][0]["path"]


def test_stat_many_lists_each_folder_once(tmp_path):
    for d in ("a", "b"):
        for i in range(30):
            _touch(tmp_path / d / f"{i}.json", "{}")
    paths = [str(tmp_path / d / f"{i}.json") for d in ("a", "b") for i in range(30)] + [str(tmp_path / "a/none")]
    before = storage.COUNTS["list"]
    infos = storage.stat_many(paths)
    assert storage.COUNTS["list"] - before == 2
    assert infos[str(tmp_path / "a/none")] is None and all(infos[p]["size"] == 2 for p in paths[:-1])
    assert storage.fingerprint_of(infos[paths[0]]) == storage.fingerprint(paths[0])


def test_a_failed_write_leaves_nothing_and_an_earlier_file_intact(tmp_path):
    path = str(tmp_path / "d" / "x.bin")
    storage.write_bytes_atomic(path, b"old")
    with pytest.raises(RuntimeError):
        with storage.atomic_open(path) as f:
            f.write(b"half of the new")
            raise RuntimeError("killed writer")
    assert open(path, "rb").read() == b"old" and os.listdir(tmp_path / "d") == ["x.bin"]
