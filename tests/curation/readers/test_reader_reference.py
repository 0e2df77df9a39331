"""The JSON-lines readers (streamed, piece-wise, one batched mapping per format) give exactly what an
independent record-by-record reference gives (``_reference.py``): ids, texts, urls, metadata JSON
bytes and quarantine records, on the real samples, the demo pool and files with every kind of bad line."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
import zstandard

from curation.readers import detect_format, get_reader
from curation.readers.jsonl import UNENCODABLE, dumps_many
from curation.schema import DOC_SCHEMA, QUARANTINE_SCHEMA

from ._reference import reference_read

ROOT = Path(__file__).resolve().parents[3]
CORPORA = ROOT / ".." / "shared" / "data" / "corpora"
JSON_FORMATS = ("jsonl", "pile", "redpajama", "dolma")
MAPPING = ("text_field", "id_field", "url_field")


def assert_matches_reference(path: str, fmt: str, **opts) -> int:
    """Read ``path``; assert the documents and quarantine records equal the reference's. Returns docs."""
    reader = get_reader(path, format=fmt, **opts)
    docs, quar = [DOC_SCHEMA.empty_table()], [QUARANTINE_SCHEMA.empty_table()]
    for d, q in reader.read(path):
        assert d.schema == DOC_SCHEMA and q.schema == QUARANTINE_SCHEMA
        assert d.num_rows <= reader.batch_size
        docs.append(d)
        quar.append(q)
    got_docs = pa.concat_tables(docs).to_pylist()
    q = pa.concat_tables(quar)
    got_q = list(zip(*(q.column(c).to_pylist() for c in ("position", "reason", "id", "raw"))))
    subset = reader.file_state(path) if fmt == "redpajama" else None
    want_docs, want_q = reference_read(path, fmt, reader.id_prefix(path), reader.source, reader.max_doc_bytes,
                                       subset=subset, **{k: v for k, v in opts.items() if k in MAPPING})
    assert got_q == want_q, (path, fmt, opts)
    assert len(got_docs) == len(want_docs), (path, fmt, opts)
    for got, want in zip(got_docs, want_docs):
        assert got == want, (path, fmt, opts)
    return len(got_docs)


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
            total += assert_matches_reference(str(path), fmt, **opts)
    assert total > 0


@pytest.fixture(scope="module")
def demo_pool(tmp_path_factory):
    from demopool import generate_pool

    out = tmp_path_factory.mktemp("pool")
    manifest = generate_pool(str(out), n_docs=900, seed=3)
    files = [str(out / f) for fmt in manifest["formats"].values() for f in fmt["files"]]
    return [f for f in files if detect_format(f) in JSON_FORMATS]


def test_demo_pool_matches_reference(demo_pool):
    assert len(demo_pool) >= 9
    for path in demo_pool:
        fmt = detect_format(path)
        for opts in ({}, {"batch_size": 50}):
            assert assert_matches_reference(path, fmt, **opts) > 0
        assert_matches_reference(path, "jsonl")


def _bad_lines() -> list[bytes]:
    """Every kind of odd record the readers handle, between ordinary ones."""
    big_nest: object = "leaf"
    for _ in range(250):  # near orjson's nesting limit: the one-call dump fails, per-object dumps do not
        big_nest = {"n": big_nest}
    too_deep = b'{"text": "too deep", "meta": ' + b'{"d": ' * 300 + b"1" + b"}" * 300 + b"}"
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
        b"\xef\xbb\xbf{broken after a BOM",
        orjson.dumps({"text": "int id", "id": 7, "url": 5}),
        orjson.dumps({"text": "dict id", "id": {"a": 1}, "url": None, "extra": [1, 2.5, None]}),
        orjson.dumps({"text": "empty id", "id": "", "meta": "not json {"}),
        orjson.dumps({"text": "meta string", "meta": orjson.dumps({"url": "http://x", "source": "c4"}).decode()}),
        orjson.dumps({"raw_content": "v2 layout", "doc_id": 12, "meta": {"url": 3}}),
        orjson.dumps({"text": "nested", "metadata": {"url": ["not", "a", "string"]}, "id": "https://a.b/c"}),
        orjson.dumps({"text": "dolma http id", "id": "http://example.org/p"}),
        orjson.dumps({"text": "pile meta none", "meta": None}),
        orjson.dumps({"text": "pile meta list", "meta": [1, 2]}),
        orjson.dumps({"text": "top url", "url": "http://top", "meta": {"url": "http://meta", "source": "c4"}}),
        orjson.dumps({"text": "hf subset", "red_pajama_subset": "book", "meta": {"redpajama_set_name": "x"}}),
        orjson.dumps({"text": "odd subset", "red_pajama_subset": 5, "meta": {"url": {"a": 1}}}),
        orjson.dumps({"text": "deep", "meta": big_nest}),
        too_deep,  # parses, but its metadata cannot be encoded: quarantined, not a crash
        orjson.dumps({"text": "nul \x00 char", "meta": {"k\x00": "v\x00"}}),
        b'{"text": "dup key", "text": "second wins"}',
        orjson.dumps({"text": "x" * 5000}),  # over max_doc_bytes in one of the runs
        orjson.dumps({"text": "é" * 2100}),  # 4200 bytes, 2100 characters
    ]


def _good_lines(n: int, start: int = 0) -> list[bytes]:
    return [orjson.dumps({"text": f"doc {i} " + "é" * (i % 3), "meta": {"pile_set_name": "Pile-CC", "k": i}})
            for i in range(start, start + n)]


def _write(path: Path, raw: bytes) -> str:
    if path.name.endswith(".gz"):
        raw = gzip.compress(raw, mtime=0)
    elif path.name.endswith(".zst"):
        raw = zstandard.ZstdCompressor().compress(raw)
    path.write_bytes(raw)
    return str(path)


def bad_file_lines() -> list[bytes]:
    lines = _good_lines(30) + _bad_lines() + _good_lines(30, 30)
    for k, bad in enumerate(_bad_lines()):  # each odd record alone inside a clean piece as well
        lines += _good_lines(3, 100 + 4 * k) + [bad]
    return lines


@pytest.mark.parametrize("ext", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_bad_lines_match_reference(tmp_path, ext):
    path = _write(tmp_path / f"bad{ext}", b"\n".join(bad_file_lines()) + b"\n")
    for fmt in JSON_FORMATS:
        for opts in ({}, {"batch_size": 5}, {"max_doc_bytes": 4000}):
            assert assert_matches_reference(path, fmt, **opts) > 0
    _, q = _read(path)
    reasons = q.column("reason").to_pylist()
    assert {"malformed_json", "invalid_utf8", "missing_text", "null_text", "non_string_text"} <= set(reasons)


def _read(path: str, **opts) -> tuple[pa.Table, pa.Table]:
    batches = list(get_reader(path, **opts).read(path))
    return pa.concat_tables([d for d, _ in batches]), pa.concat_tables([q for _, q in batches])


def test_unencodable_metadata_is_quarantined(tmp_path):
    deep = b'{"text": "too deep", "meta": ' + b'{"d": ' * 300 + b"1" + b"}" * 300 + b"}"
    (tmp_path / "pile").mkdir()
    path = _write(tmp_path / "pile" / "deep.jsonl", b"\n".join(_good_lines(3) + [deep] + _good_lines(3, 3)))
    docs, q = _read(path)
    assert docs.num_rows == 6
    assert list(zip(q.column("position").to_pylist(), q.column("reason").to_pylist())) == [(3, "malformed_json")]


def test_bad_lines_generic_field_mappings(tmp_path):
    lines = _good_lines(20) + _bad_lines() + [orjson.dumps({"meta": {"t": "dotted", "u": "http://u"}, "text": 1}),
                                              orjson.dumps({"meta": {"t": "odd url", "u": 7, "k": "kept"}})]
    path = tmp_path / "map.jsonl"
    path.write_bytes(b"\n".join(lines))
    for opts in ({"id_field": None, "url_field": None}, {"text_field": "meta.t", "url_field": "meta.u"},
                 {"id_field": "meta.k"}, {"url_field": "id"}):
        assert_matches_reference(str(path), "jsonl", **opts)


def test_dumps_many_matches_per_object_dumps():
    objs = [{}, None, {"a": 1}, {"s": "x\x00y", "k\x00": [None, {}]}, {"f": 1.5e300, "u": "é☃"}, {"": ""}, None]
    assert dumps_many(objs) == [orjson.dumps(o) if o else None for o in objs]
    assert dumps_many([]) == [] and dumps_many([{"a": 1}]) == [b'{"a":1}']
    deep: object = 1
    for _ in range(254):
        deep = {"d": deep}
    objs = [{"x": 1}, deep]  # fine alone, one level too deep inside the list: falls back
    assert dumps_many(objs) == [orjson.dumps(o) for o in objs]
    deeper = {"d": deep}
    assert dumps_many([{"x": 1}, deeper, None]) == [b'{"x":1}', UNENCODABLE, None]
    assert dumps_many([deeper]) == [UNENCODABLE]
