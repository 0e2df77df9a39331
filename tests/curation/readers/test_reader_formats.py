"""Format detection, field mappings, RefinedWeb / generic parquet fixtures, id stability, fsspec URLs,
bounded batches and memory, and the vectorised metadata JSON encoder."""

from __future__ import annotations

import datetime as dt
import gzip
import tracemalloc

import fsspec
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from curation.readers import FORMATS, detect_format, get_reader
from curation.readers.arrow_json import json_encode, json_encode_object
from curation.schema import DOC_SCHEMA


def read_all(path: str, **kw):
    reader = get_reader(path, **kw)
    batches = list(reader.read(path))
    docs = pa.concat_tables([DOC_SCHEMA.empty_table()] + [d for d, _ in batches])
    quar = pa.concat_tables([q for _, q in batches])
    return docs, quar, batches, reader


@pytest.mark.parametrize("path,fmt", [
    ("/data/falcon-refinedweb/data/train-00000-of-05379.parquet", "refinedweb"),
    ("hf://datasets/tiiuae/falcon-refinedweb/data/x.parquet", "refinedweb"),
    ("s3://bucket/refinedweb_part_0.parquet", "refinedweb"),
    ("/data/some/table.parquet", "parquet"),
    ("/data/the_pile/train/00.jsonl.zst", "pile"),
    ("gs://b/pile/val.jsonl.zst", "pile"),
    ("/data/compile/out.jsonl", "jsonl"),  # "pile" inside a word is not a hint
    ("/data/dolma/v1_6/documents/cc_en_head-0000.json.gz", "dolma"),
    ("/data/dolma-sample.jsonl.zst", "dolma"),
    ("/data/RedPajama-Data-1T/arxiv/arxiv_023827cd.jsonl", "redpajama"),
    ("/data/redpajama/book/book.jsonl.gz", "redpajama"),
    ("/data/c4/en/c4-train.00000-of-01024.json.gz", "redpajama"),
    ("/data/mine/records.ndjson", "jsonl"),
    ("/data/mine/records.jsonl.zstd", "jsonl"),
])
def test_detect_format(path, fmt):
    assert detect_format(path) == fmt
    assert fmt in FORMATS


def test_detect_format_unknown_raises():
    with pytest.raises(ValueError, match="format"):
        detect_format("/data/notes.txt")
    with pytest.raises(ValueError, match="unknown format"):
        get_reader("/data/x.jsonl", format="arc")  # (Internet Archive ARC: not a format we read)


def test_format_override_and_config():
    r = get_reader("/data/pile/00.jsonl.zst", format="jsonl", source="mine", text_field="body", batch_size=7)
    cfg = r.config()
    assert cfg["format"] == "jsonl" and cfg["source"] == "mine" and cfg["text_field"] == "body"
    assert cfg["batch_size"] == 7
    orjson.dumps(cfg)  # usable in a recipe hash
    assert get_reader("/x/pile/a.jsonl.zst").config() != get_reader("/x/pile/a.jsonl.zst", max_doc_bytes=10).config()
    with pytest.raises(ValueError):
        get_reader("/x/a.jsonl", batch_size=0)


def _refinedweb_table(n: int) -> pa.Table:
    return pa.table({
        "content": [f"page {i} about \"quotes\" and \\backslashes\\\nsecond line" for i in range(n)],
        "url": [f"https://example.com/{i}" for i in range(n)],
        "timestamp": pa.array([dt.datetime(2023, 1, 1) + dt.timedelta(hours=i) for i in range(n)], pa.timestamp("s")),
        "dump": ["CC-MAIN-2023-06"] * n,
        "segment": ["1674764494826.88"] * n,
        "image_urls": [[[f"https://example.com/{i}.jpg", "alt \"text\""]] if i % 3 else [] for i in range(n)],
    })


def test_refinedweb_fixture(tmp_path):
    path = str(tmp_path / "refinedweb-00000.parquet")
    table = _refinedweb_table(1000)
    pq.write_table(table, path, row_group_size=300)
    docs, quar, batches, _ = read_all(path, batch_size=128)
    assert quar.num_rows == 0
    assert all(d.num_rows <= 128 for d, _ in batches)
    assert docs.column("text").to_pylist() == table.column("content").to_pylist()
    assert docs.column("url").to_pylist() == table.column("url").to_pylist()
    assert docs.column("id").to_pylist() == [f"refinedweb/refinedweb-00000.parquet/{i}" for i in range(1000)]
    assert set(docs.column("source").to_pylist()) == {"refinedweb"}
    for i, m in enumerate(docs.column("metadata").to_pylist()):
        meta = orjson.loads(m)
        assert set(meta) == {"timestamp", "dump", "segment", "image_urls"}
        assert meta["image_urls"] == table.column("image_urls")[i].as_py()
        assert meta["dump"] == "CC-MAIN-2023-06"
        want = (dt.datetime(2023, 1, 1) + dt.timedelta(hours=i)).strftime("%Y-%m-%d %H:%M:%S")
        assert meta["timestamp"][:19] == want


def test_generic_parquet_mapping(tmp_path):
    path = str(tmp_path / "mine.parquet")
    pq.write_table(pa.table({"body": ["a", "b"], "doc": [10, 11], "link": ["u1", None], "score": [0.5, None]}), path)
    docs, quar, _, _ = read_all(path, source="mine", text_field="body", id_field="doc", url_field="link")
    assert quar.num_rows == 0
    assert docs.to_pylist() == [
        {"id": "10", "text": "a", "source": "mine", "url": "u1", "metadata": '{"score":0.5}'},
        {"id": "11", "text": "b", "source": "mine", "url": None, "metadata": '{"score":null}'},
    ]


def test_generic_jsonl_mapping_dotted_fields(tmp_path):
    path = tmp_path / "nested.jsonl.gz"
    recs = [{"doc": {"body": f"text {i}", "uid": f"u{i}"}, "links": {"url": f"https://x/{i}"}, "x": i}
            for i in range(5)]
    path.write_bytes(gzip.compress(b"\n".join(orjson.dumps(r) for r in recs), mtime=0))
    docs, quar, _, _ = read_all(str(path), source="nested", text_field="doc.body", id_field="doc.uid",
                                url_field="links.url")
    assert quar.num_rows == 0
    assert docs.column("id").to_pylist() == [f"u{i}" for i in range(5)]
    assert docs.column("url").to_pylist() == [f"https://x/{i}" for i in range(5)]
    assert orjson.loads(docs.column("metadata")[2].as_py()) == {"doc": {}, "links": {}, "x": 2}


def test_redpajama_meta_as_string_and_v2_layout(tmp_path):
    path = tmp_path / "redpajama-sample.jsonl"
    lines = [
        orjson.dumps({"text": "hf copy", "meta": orjson.dumps({"url": "https://a", "language": "en"}).decode(),
                      "red_pajama_subset": "wikipedia"}),
        orjson.dumps({"raw_content": "v2 layout", "url": "https://b", "doc_id": "rp2/0001"}),
    ]
    path.write_bytes(b"\n".join(lines))
    docs, quar, _, _ = read_all(str(path))
    assert quar.num_rows == 0
    rows = docs.to_pylist()
    assert rows[0]["text"] == "hf copy" and rows[0]["url"] == "https://a"
    assert orjson.loads(rows[0]["metadata"]) == {"language": "en", "subset": "wikipedia"}
    assert rows[1]["text"] == "v2 layout" and rows[1]["id"] == "rp2/0001" and rows[1]["url"] == "https://b"


def test_ids_stable_across_reads_and_batch_sizes(tmp_path):
    path = tmp_path / "pile" / "07.jsonl.zst"
    path.parent.mkdir()
    raw = b"\n".join(orjson.dumps({"text": f"t{i}", "meta": {"pile_set_name": "Pile-CC"}}) for i in range(3000))
    path.write_bytes(zstandard.ZstdCompressor().compress(raw))
    a = read_all(str(path))[0]
    b = read_all(str(path))[0]
    c = read_all(str(path), batch_size=17)[0]
    assert a.equals(b) and a.equals(c)
    ids = a.column("id").to_pylist()
    assert len(set(ids)) == 3000 and ids[5] == "pile/07.jsonl.zst/5"


def test_id_parents_separates_reused_file_names(tmp_path):
    paths = []
    for sub in ("en", "en.noblocklist"):
        (tmp_path / "c4" / sub).mkdir(parents=True)
        p = tmp_path / "c4" / sub / "c4-train.00000-of-01024.json.gz"
        p.write_bytes(gzip.compress(b'{"text": "a"}\n{"text": "b"}\n', mtime=0))
        paths.append(str(p))
    plain = [read_all(p)[0].column("id").to_pylist() for p in paths]
    assert plain[0] == plain[1] == ["redpajama/c4-train.00000-of-01024.json.gz/0",
                                    "redpajama/c4-train.00000-of-01024.json.gz/1"]
    deep = [read_all(p, id_parents=1)[0].column("id").to_pylist() for p in paths]
    assert deep[0] == ["redpajama/en/c4-train.00000-of-01024.json.gz/0",
                       "redpajama/en/c4-train.00000-of-01024.json.gz/1"]
    assert deep[1][0] == "redpajama/en.noblocklist/c4-train.00000-of-01024.json.gz/0"
    s3 = "s3://bucket/x.parquet"
    assert get_reader(s3, id_parents=3).id_prefix(s3) == "parquet/bucket/x.parquet/"


def test_batches_bounded_by_rows_and_bytes(tmp_path):
    path = tmp_path / "many.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps({"text": "w" * 1000, "i": i}) for i in range(5000)))
    _, _, batches, _ = read_all(str(path), batch_size=300)
    sizes = [d.num_rows for d, _ in batches]
    assert max(sizes) == 300 and sum(sizes) == 5000
    _, _, batches, _ = read_all(str(path), batch_size=100_000, max_batch_bytes=200_000)
    sizes = [d.num_rows for d, _ in batches]
    assert sum(sizes) == 5000 and len(sizes) >= 20 and max(sizes) <= 201


def test_streaming_memory_is_bounded(tmp_path):
    """An 80 MB (decompressed, ratio ~700) zstd file read in batches holds a few MB of Python objects."""
    path = tmp_path / "big.jsonl.zst"
    cctx = zstandard.ZstdCompressor(level=1)
    with open(path, "wb") as f, cctx.stream_writer(f) as w:
        for i in range(40_000):
            w.write(orjson.dumps({"text": f"{i} " + "abcdefgh " * 220}) + b"\n")
    reader = get_reader(str(path), batch_size=256)
    small = tmp_path / "small.jsonl.zst"
    small.write_bytes(zstandard.ZstdCompressor().compress(b'{"text": "warm up lazy imports"}\n'))
    list(reader.read(str(small)))
    tracemalloc.start()
    n = 0
    for d, _ in reader.read(str(path)):
        n += d.num_rows
        del d
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert n == 40_000
    assert peak < 25e6, f"peak Python memory {peak / 1e6:.1f} MB for an 80 MB file"


def test_fsspec_url(tmp_path):
    fs = fsspec.filesystem("memory")
    with fs.open("/bucket/pile/remote.jsonl.zst", "wb") as f:
        f.write(zstandard.ZstdCompressor().compress(b'{"text": "remote", "meta": {"pile_set_name": "X"}}\n'))
    pq.write_table(_refinedweb_table(3), str(tmp_path / "t.parquet"))
    with fs.open("/bucket/refinedweb/r.parquet", "wb") as f:
        f.write((tmp_path / "t.parquet").read_bytes())
    docs, quar, _, _ = read_all("memory://bucket/pile/remote.jsonl.zst")
    assert docs.column("text").to_pylist() == ["remote"] and quar.num_rows == 0
    assert docs.column("id").to_pylist() == ["pile/remote.jsonl.zst/0"]
    docs, quar, _, _ = read_all("memory://bucket/refinedweb/r.parquet")
    assert docs.num_rows == 3 and quar.num_rows == 0
    local, _, _, _ = read_all(str(tmp_path / "t.parquet"), format="refinedweb")
    assert docs.column("text").equals(local.column("text"))


def test_json_encode_matches_python():
    rows = [
        {"s": 'q"uo\\te\n\t\x01\x1f é 😀', "i": -3, "f": 1.25, "b": True, "l": [[1, None], [], None],
         "st": {"a": "x", "n": None}, "ts": dt.datetime(2020, 5, 17, 1, 2, 3), "d": dt.date(2021, 2, 3)},
        {"s": None, "i": None, "f": float("inf"), "b": None, "l": None, "st": None, "ts": None, "d": None},
        {"s": "", "i": 2**40, "f": -0.0, "b": False, "l": [[7]], "st": {"a": None, "n": 5}, "ts": None, "d": None},
    ]
    table = pa.Table.from_pylist(rows)
    arr = pa.StructArray.from_arrays([c.combine_chunks() for c in table.columns], table.column_names)
    for sl in (arr, arr.slice(1), arr.slice(1, 1)):
        enc = json_encode(sl).to_pylist()
        for got, want in zip(enc, sl.to_pylist()):
            parsed = orjson.loads(got)
            want = dict(want)
            want["f"] = None if want["f"] == float("inf") else want["f"]
            assert parsed["ts"] == (None if want["ts"] is None else str(pa.scalar(want["ts"], pa.timestamp("us"))
                                                                        .cast(pa.large_string())))
            assert parsed["d"] == (None if want["d"] is None else want["d"].isoformat())
            for k in ("s", "i", "f", "b", "l", "st"):
                assert parsed[k] == want[k], k
    dict_arr = pa.array(["a", "b", "a", None]).dictionary_encode()
    assert json_encode(dict_arr).to_pylist() == ['"a"', '"b"', '"a"', "null"]


@pytest.mark.parametrize("ext", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_lines_of_every_length_across_piece_boundaries(tmp_path, ext):
    """Short and long lines (memoryview and split paths, lines spanning 256 KiB pieces) parse exactly."""
    rng = __import__("random").Random(5)
    texts = []
    for i in range(600):
        size = rng.choice([5, 80, 700, 5_000, 60_000, 300_000]) if i % 50 else 10
        texts.append(f"{i}:" + "".join(rng.choice("abcdé \\\"\n") for _ in range(min(size, 200))) * (size // 200 + 1))
    raw = b"\n".join(orjson.dumps({"text": t, "n": i}) for i, t in enumerate(texts)) + b"\n"
    path = tmp_path / f"mixed{ext}"
    if ext.endswith(".gz"):
        raw = gzip.compress(raw, mtime=0)
    elif ext.endswith(".zst"):
        raw = zstandard.ZstdCompressor().compress(raw)
    path.write_bytes(raw)
    docs, quar, _, _ = read_all(str(path), batch_size=64)
    assert quar.num_rows == 0
    assert docs.column("text").to_pylist() == texts
    assert [orjson.loads(m)["n"] for m in docs.column("metadata").to_pylist()] == list(range(600))


def test_inspect_cli(tmp_path, capsys):
    from curation.readers.__main__ import main

    path = tmp_path / "pile" / "x.jsonl.zst"
    path.parent.mkdir()
    path.write_bytes(zstandard.ZstdCompressor().compress(b'{"text": "hello"}\n{"text": null}\n{"bad\n'))
    assert main([str(tmp_path / "pile"), "--show", "1", "--show-quarantine", "5"]) == 0
    out = capsys.readouterr().out
    assert "format=pile docs=1 quarantined: malformed_json=1, null_text=1" in out
    assert '"text": "hello"' in out and '"reason": "null_text"' in out


def _random_value(rng, kind: str, depth: int = 0):
    if rng.random() < 0.1:
        return None
    if kind == "str":
        chars = ["a", "é", '"', "\\", "\n", "\x01", "\x1f", "😀", " ", "/"]
        return "".join(rng.choice(chars) for _ in range(rng.randint(0, 6)))
    if kind == "list_str":
        return [_random_value(rng, "str") for _ in range(rng.choice([0, 0, 1, 2, 3]))]
    if kind == "list_list_str":
        return [_random_value(rng, "list_str") for _ in range(rng.choice([0, 1, 2]))]
    if kind == "struct":
        return {"s": _random_value(rng, "str"), "l": _random_value(rng, "list_str"), "i": rng.randint(-5, 5)}
    raise ValueError(kind)


def _no_nulls(v, kind: str):
    if kind == "list_str":
        return [x if x is not None else "n" for x in v or []]
    return [_no_nulls(x, "list_str") for x in v or []]


@pytest.mark.parametrize("kind,typ", [
    ("str", pa.string()),
    ("list_str", pa.list_(pa.string())),
    ("list_list_str", pa.list_(pa.list_(pa.string()))),
    ("list_list_str", pa.large_list(pa.list_(pa.large_string()))),
    ("struct", pa.struct([("s", pa.string()), ("l", pa.list_(pa.string())), ("i", pa.int64())])),
])
def test_json_encode_random_nested_values(kind, typ):
    """Escapes, empty and null lists, null leaves, sliced arrays: every encoding parses back to the value."""
    import random

    rng = random.Random(7)
    values = [_random_value(rng, kind) for _ in range(400)]
    plain = {"str": "x\"y", "list_str": ["a", "b\\"], "list_list_str": [["a"], ["b", "c"]],
             "struct": {"s": "t", "l": ["u"], "i": 1}}[kind]
    for k in range(0, 400, 50):  # runs without nulls or empty lists, to reach the fused paths too
        values[k : k + 10] = [plain] * 10
    arrays = [pa.array(values, typ)]
    if kind.startswith("list"):  # no nulls at any level, empty lists left in: the fused string-list path
        arrays.append(pa.array([_no_nulls(v, kind) for v in values], typ))
    for sl in [a.slice(*r) for a in arrays for r in ((0,), (3, 100), (50, 10), (399,))]:
        enc = json_encode(sl)
        assert enc.null_count == 0 and len(enc) == len(sl)
        assert [orjson.loads(e) for e in enc.to_pylist()] == sl.to_pylist()
    for arr in arrays:  # and inside an object, beside other fields
        obj = json_encode_object([arr, pa.array(range(400))], ["v", "n"])
        assert [orjson.loads(e) for e in obj.to_pylist()] == [{"v": v, "n": i} for i, v in enumerate(arr.to_pylist())]


@pytest.mark.parametrize("rows", [[], [0], list(range(95, 105)), list(range(1000, 3048)), [7, 3, 123456789012, 5],
                                  list(range(10**12 - 3, 10**12 + 3))])
def test_generated_ids_and_constant_strings(rows):
    import numpy as np

    from curation.readers.base import constant_strings, generated_ids

    got = generated_ids("src/dir/f.jsonl/", np.array(rows, np.int64))
    assert got.type == pa.string() and got.to_pylist() == [f"src/dir/f.jsonl/{r}" for r in rows]
    got.validate(full=True)
    for value in ("pile", "", "é"):
        arr = constant_strings(value, len(rows))
        arr.validate(full=True)
        assert arr.to_pylist() == [value] * len(rows)


def test_reader_options_dataclasses():
    """One options dataclass per reader: unknown options name the valid ones, values are checked,
    an options object can be reused with overrides, and config() is JSON for every format."""
    import dataclasses

    from curation.readers import READERS, JsonlOptions, JsonlReader, PileReader

    with pytest.raises(TypeError, match="no option 'text_field'.*batch_size"):
        PileReader(text_field="body")  # the Pile's fields are fixed
    with pytest.raises(ValueError, match="compression"):
        PileReader(compression="brotli")
    with pytest.raises(ValueError, match="max_doc_bytes"):
        JsonlReader(max_doc_bytes=0)
    opts = JsonlOptions(text_field="body", batch_size=9)
    r = JsonlReader(opts, source="mine")
    assert (r.options.text_field, r.batch_size, r.source) == ("body", 9, "mine") and opts.source is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.batch_size = 3
    with pytest.raises(TypeError, match="takes JsonLinesOptions, got JsonlOptions"):
        PileReader(opts)
    for fmt, cls in READERS.items():
        cfg = cls(source="s").config()
        assert cfg["format"] == fmt and cfg["source"] == "s"
        assert orjson.loads(orjson.dumps(cfg)) == {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}
    assert get_reader("x.parquet", metadata_fields=["a"]).config()["metadata_fields"] == ("a",)
