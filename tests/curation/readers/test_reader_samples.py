"""Each reader on the real samples in ../shared/data/corpora (skipped when absent)."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
import zstandard

from curation.readers import detect_format, get_reader
from curation.schema import DOC_SCHEMA, QUARANTINE_SCHEMA, check_doc_table

ROOT = Path(__file__).resolve().parents[3]
CORPORA = ROOT / ".." / "shared" / "data" / "corpora"


def _need(*rel: str) -> list[Path]:
    paths = [CORPORA / r for r in rel]
    if not all(p.exists() for p in paths):
        pytest.skip(f"real samples absent: {rel}")
    return paths


def _records(path: Path) -> list[dict]:
    """Independent reference read: whole-file decompression + json per non-blank line."""
    data = path.read_bytes()
    if path.name.endswith(".zst"):
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read()
    elif path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return [orjson.loads(line) for line in data.split(b"\n") if line.strip()]


def _read_all(path: Path, **kw) -> tuple[pa.Table, pa.Table]:
    reader = get_reader(str(path), **kw)
    docs, quar = [], []
    for d, q in reader.read(str(path)):
        assert d.schema == DOC_SCHEMA
        assert q.schema == QUARANTINE_SCHEMA
        check_doc_table(d)
        assert d.num_rows <= reader.batch_size
        docs.append(d)
        quar.append(q)
    return pa.concat_tables(docs), pa.concat_tables(quar)


@pytest.mark.parametrize("name", ["00.jsonl.zst", "val.jsonl.zst", "test.jsonl.zst"])
def test_pile_samples(name):
    (path,) = _need(f"pile/{name}")
    assert detect_format(str(path)) == "pile"
    docs, quar = _read_all(path)
    ref = _records(path)
    assert quar.num_rows == 0
    assert docs.column("text").to_pylist() == [r["text"] for r in ref]
    metas = [orjson.loads(m) for m in docs.column("metadata").to_pylist()]
    assert [m["pile_set_name"] for m in metas] == [r["meta"]["pile_set_name"] for r in ref]
    assert set(docs.column("source").to_pylist()) == {"pile"}
    assert docs.column("id").to_pylist() == [f"pile/{name}/{i}" for i in range(len(ref))]


def test_redpajama_samples():
    paths = sorted((CORPORA / "redpajama").glob("*.jsonl")) if (CORPORA / "redpajama").exists() else []
    if not paths:
        pytest.skip("real samples absent: redpajama")
    for path in paths:
        docs, quar = _read_all(path, format="redpajama")
        ref = _records(path)
        assert quar.num_rows == 0, path.name
        assert docs.column("text").to_pylist() == [r["text"] for r in ref], path.name
        ids = docs.column("id").to_pylist()
        assert len(set(ids)) == len(ids)
        for row, rec in zip(docs.to_pylist(), ref):
            meta = orjson.loads(row["metadata"])
            if isinstance(rec.get("meta"), dict) and "url" in rec["meta"]:
                assert row["url"] == rec["meta"]["url"]
                assert "url" not in meta
                for k, v in rec["meta"].items():
                    if k != "url":
                        assert meta[k] == v
    # the subset comes from the record or the file name
    docs, _ = _read_all(CORPORA / "redpajama" / "arxiv_sample.jsonl")
    assert {orjson.loads(m)["subset"] for m in docs.column("metadata").to_pylist()} == {"arxiv"}
    docs, _ = _read_all(CORPORA / "redpajama" / "data_mixture__redpajama-c4-refined.jsonl")
    assert {orjson.loads(m)["subset"] for m in docs.column("metadata").to_pylist()} == {"c4"}


@pytest.mark.parametrize("rel", ["dolma/cc_en_head-0091.jsonl.gz", "dolma/cc_en_head-0174.jsonl.gz",
                                 "dolma/provided/documents/000.json.gz"])
def test_dolma_samples(rel):
    (path,) = _need(rel)
    assert detect_format(str(path)) == "dolma"
    docs, quar = _read_all(path)
    ref = _records(path)
    assert quar.num_rows == 0
    assert docs.column("id").to_pylist() == [r["id"] for r in ref]  # the documents' own ids
    assert docs.column("text").to_pylist() == [r["text"] for r in ref]
    for row, rec in zip(docs.to_pylist(), ref):
        meta = orjson.loads(row["metadata"])
        assert meta == {k: v for k, v in rec.items() if k not in ("id", "text")}
        assert row["url"] == rec["metadata"].get("url", rec["id"])


@pytest.mark.parametrize("name", ["c4-sample.01.json.gz", "c4-sample.02.json.gz", "c4-sample.03.json.gz",
                                  "c4-train.00000-of-01024.json.gz"])
def test_c4_samples_generic_and_redpajama(name):
    (path,) = _need(f"c4/{name}")
    assert detect_format(str(path)) == "redpajama"  # "c4" is a RedPajama subset name
    ref = _records(path)
    rp, q1 = _read_all(path)
    gen, q2 = _read_all(path, format="jsonl", source="c4")
    assert q1.num_rows == q2.num_rows == 0
    assert rp.column("text").to_pylist() == gen.column("text").to_pylist() == [r["text"] for r in ref]
    assert rp.column("url").to_pylist() == gen.column("url").to_pylist() == [r.get("url") for r in ref]
    assert set(gen.column("source").to_pylist()) == {"c4"}
    assert all(orjson.loads(m)["subset"] == "c4" for m in rp.column("metadata").to_pylist())
    for m, r in zip(gen.column("metadata").to_pylist(), ref):
        assert orjson.loads(m) == {k: v for k, v in r.items() if k not in ("text", "url")}


def test_blns_edge_records():
    """lm_dataformat's naughty strings: awkward unicode survives byte-exact; a list text is quarantined."""
    (path,) = _need("edge/lm_dataformat_blns.jsonl.zst")
    docs, quar = _read_all(path, format="pile")
    ref = _records(path)
    good = [r["text"] for r in ref if isinstance(r["text"], str)]
    assert docs.column("text").to_pylist() == good
    assert quar.column("reason").to_pylist() == ["non_string_text"]
    assert docs.num_rows + quar.num_rows == len(ref)
