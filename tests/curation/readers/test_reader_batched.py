"""The batched JSON-lines path (columns built a piece at a time) gives byte-identical output to the
record-by-record reference path (``reader._batched = False``): ids, texts, urls, metadata JSON, batch
boundaries and quarantine records, on the real samples, the demo pool and files with bad lines."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
import zstandard

from curation.readers import detect_format, get_reader
from curation.readers.jsonl import JsonlReader, dumps_many

ROOT = Path(__file__).resolve().parents[3]
CORPORA = ROOT / ".." / "shared" / "data" / "corpora"
JSON_FORMATS = ("jsonl", "pile", "redpajama", "dolma")


def _read(reader, path: str) -> list[tuple[pa.Table, pa.Table]]:
    return list(reader.read(path))


def assert_same_as_reference(path: str, fmt: str, **opts) -> int:
    """Read ``path`` both ways; assert equal tables batch by batch (and equal metadata bytes). Returns docs."""
    fast = get_reader(path, format=fmt, **opts)
    ref = get_reader(path, format=fmt, **opts)
    ref._batched = False
    got, want = _read(fast, path), _read(ref, path)
    assert len(got) == len(want), (path, fmt, opts)
    for (d1, q1), (d2, q2) in zip(got, want):
        assert d1.schema == d2.schema and q1.schema == q2.schema
        for col in d1.column_names:
            assert d1.column(col).to_pylist() == d2.column(col).to_pylist(), (path, fmt, opts, col)
        assert q1.equals(q2), (path, fmt, opts)
    return sum(d.num_rows for d, _ in got)


def _samples() -> list[Path]:
    if not CORPORA.exists():
        return []
    return sorted(p for p in CORPORA.rglob("*") if p.is_file() and ".json" in p.name)


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_real_samples_match_reference(fmt):
    paths = _samples()
    if not paths:
        pytest.skip("real samples absent")
    total = 0
    for path in paths:
        for opts in ({}, {"batch_size": 7}, {"max_doc_bytes": 3000}):
            total += assert_same_as_reference(str(path), fmt, **opts)
    assert total > 0


@pytest.fixture(scope="module")
def demo_pool(tmp_path_factory):
    from curation.demo import generate_pool

    out = tmp_path_factory.mktemp("pool")
    manifest = generate_pool(str(out), n_docs=900, seed=3)
    files = [str(out / f) for fmt in manifest["formats"].values() for f in fmt["files"]]
    return [f for f in files if detect_format(f) in JSON_FORMATS]


def test_demo_pool_matches_reference(demo_pool):
    assert len(demo_pool) >= 9
    for path in demo_pool:
        fmt = detect_format(path)
        for opts in ({}, {"batch_size": 50}):
            assert assert_same_as_reference(path, fmt, **opts) > 0
        assert_same_as_reference(path, "jsonl")


def test_clean_pieces_take_the_batched_path(demo_pool, monkeypatch):
    """Guard against a parity test that passes because nothing is batched: clean files never go record by record."""

    def boom(*args, **kwargs):
        raise AssertionError("record-by-record path used on clean input")

    monkeypatch.setattr(JsonlReader, "_parse_records", boom)
    monkeypatch.setattr(JsonlReader, "_extract_each", boom)
    for path in demo_pool:
        assert sum(d.num_rows for d, _ in get_reader(path).read(path)) > 0


def _bad_lines() -> list[bytes]:
    """Every kind of odd record the readers handle, between ordinary ones."""
    big_nest: object = "leaf"
    for _ in range(250):  # near orjson's nesting limit: the one-call dump fails, per-object dumps do not
        big_nest = {"n": big_nest}
    return [
        b'{"text": "broken',
        b'{"text": "bad \xff\xfe bytes"}',
        b'{"text": "lone \\ud800 surrogate"}',
        b"[1, 2, 3]",
        b'"just a string"',
        orjson.dumps({"body": "no text"}),
        orjson.dumps({"text": None, "id": "has-id"}),
        orjson.dumps({"text": 42}),
        b"",
        b"   \r",
        b"\xef\xbb\xbf" + orjson.dumps({"text": "after a BOM"}),
        orjson.dumps({"text": "int id", "id": 7, "url": 5}),
        orjson.dumps({"text": "dict id", "id": {"a": 1}, "url": None, "extra": [1, 2.5, None]}),
        orjson.dumps({"text": "empty id", "id": "", "meta": "not json {"}),
        orjson.dumps({"text": "meta string", "meta": orjson.dumps({"url": "http://x", "source": "c4"}).decode()}),
        orjson.dumps({"raw_content": "v2 layout", "doc_id": 12, "meta": {"url": 3}}),
        orjson.dumps({"text": "nested", "metadata": {"url": ["not", "a", "string"]}, "id": "https://a.b/c"}),
        orjson.dumps({"text": "dolma http id", "id": "http://example.org/p"}),
        orjson.dumps({"text": "pile meta none", "meta": None}),
        orjson.dumps({"text": "pile meta list", "meta": [1, 2]}),
        orjson.dumps({"text": "deep", "meta": big_nest}),
        orjson.dumps({"text": "nul \x00 char", "meta": {"k\x00": "v\x00"}}),
        b'{"text": "dup key", "text": "second wins"}',
        orjson.dumps({"text": "x" * 5000}),  # over max_doc_bytes in one of the runs
    ]


def _good_lines(n: int, start: int = 0) -> list[bytes]:
    return [orjson.dumps({"text": f"doc {i} " + "é" * (i % 3), "meta": {"pile_set_name": "Pile-CC", "k": i}})
            for i in range(start, start + n)]


@pytest.mark.parametrize("ext", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_bad_lines_match_reference(tmp_path, ext):
    lines = _good_lines(30) + _bad_lines() + _good_lines(30, 30)
    for k, bad in enumerate(_bad_lines()):  # each odd record alone inside a clean piece as well
        lines += _good_lines(3, 100 + 4 * k) + [bad]
    raw = b"\n".join(lines) + b"\n"
    path = tmp_path / f"bad{ext}"
    if ext.endswith(".gz"):
        raw = gzip.compress(raw, mtime=0)
    elif ext.endswith(".zst"):
        raw = zstandard.ZstdCompressor().compress(raw)
    path.write_bytes(raw)
    for fmt in JSON_FORMATS:
        for opts in ({}, {"batch_size": 5}, {"max_doc_bytes": 4000}):
            assert assert_same_as_reference(str(path), fmt, **opts) > 0


def test_bad_lines_generic_field_mappings(tmp_path):
    lines = _good_lines(20) + _bad_lines() + [orjson.dumps({"meta": {"t": "dotted", "u": "http://u"}, "text": 1})]
    path = tmp_path / "map.jsonl"
    path.write_bytes(b"\n".join(lines))
    for opts in ({"id_field": None, "url_field": None}, {"text_field": "meta.t", "url_field": "meta.u"},
                 {"id_field": "meta.k"}, {"url_field": "id"}):
        assert_same_as_reference(str(path), "jsonl", **opts)


def test_dumps_many_matches_per_object_dumps():
    objs = [{}, None, {"a": 1}, {"s": "x\x00y", "k\x00": [None, {}]}, {"f": 1.5e300, "u": "é☃"}, {"": ""}, None]
    assert dumps_many(objs) == [orjson.dumps(o) if o else None for o in objs]
    assert dumps_many([]) == [] and dumps_many([{"a": 1}]) == [b'{"a":1}']
    deep: object = 1
    for _ in range(254):
        deep = {"d": deep}
    objs = [{"x": 1}, deep]  # fine alone, one level too deep inside the list: falls back
    assert dumps_many(objs) == [orjson.dumps(o) for o in objs]
