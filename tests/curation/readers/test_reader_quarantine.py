"""Every quarantine reason, on crafted files; docs + quarantined == input records throughout."""

from __future__ import annotations

import gzip
import zlib

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from curation.readers import REASONS, get_reader
from curation.readers.base import RAW_SNIPPET_BYTES
from curation.schema import DOC_SCHEMA, QUARANTINE_SCHEMA


def read_all(path, **kw) -> tuple[pa.Table, pa.Table]:
    path = str(path)
    reader = get_reader(path, **kw)
    docs, quar = [DOC_SCHEMA.empty_table()], [QUARANTINE_SCHEMA.empty_table()]
    for d, q in reader.read(path):
        assert d.schema == DOC_SCHEMA and q.schema == QUARANTINE_SCHEMA
        assert d.num_rows <= reader.batch_size
        docs.append(d)
        quar.append(q)
    q = pa.concat_tables(quar)
    assert set(q.column("reason").to_pylist()) <= set(REASONS)
    assert set(q.column("stage").to_pylist()) <= {"read"}
    assert all(r is None or len(r) <= RAW_SNIPPET_BYTES for r in q.column("raw").to_pylist())
    return pa.concat_tables(docs), q


def reasons(q: pa.Table) -> list[str]:
    return q.column("reason").to_pylist()


def doc_lines(n: int, start: int = 0) -> list[bytes]:
    return [orjson.dumps({"text": f"document number {i} " + "word " * (i % 7), "k": i})
            for i in range(start, start + n)]


def test_bad_lines_each_reason_and_positions(tmp_path):
    lines = [
        orjson.dumps({"text": "good zero"}),
        b'{"text": "broken',  # malformed_json
        b'{"text": "bad \xff\xfe bytes"}',  # invalid_utf8
        b'{"text": "lone \\ud800 surrogate"}',  # invalid_utf8 (cannot be UTF-8)
        b"[1, 2, 3]",  # malformed_json: not an object
        orjson.dumps({"body": "no text"}),  # missing_text
        orjson.dumps({"text": None}),  # null_text
        orjson.dumps({"text": 42}),  # non_string_text
        orjson.dumps({"text": ["a", "b"]}),  # non_string_text
        b"",  # blank line: not a record
        b"   \r",  # blank line: not a record
        orjson.dumps({"text": "good ten", "id": 7}),
    ]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    docs, q = read_all(path)
    assert docs.column("text").to_pylist() == ["good zero", "good ten"]
    assert docs.column("id").to_pylist() == ["jsonl/bad.jsonl/0", "7"]  # own id (stringified) when present
    got = list(zip(q.column("position").to_pylist(), reasons(q)))
    assert got == [
        (1, "malformed_json"), (2, "invalid_utf8"), (3, "invalid_utf8"), (4, "malformed_json"),
        (5, "missing_text"), (6, "null_text"), (7, "non_string_text"), (8, "non_string_text"),
    ]
    assert q.column("raw").to_pylist()[0] == lines[1]
    assert q.column("id").to_pylist()[0] == "jsonl/bad.jsonl/1"
    assert docs.num_rows + q.num_rows == len([x for x in lines if x.strip()])


def test_bom_first_line_is_a_record(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + orjson.dumps({"text": "a"}) + b"\n" + orjson.dumps({"text": "b"}))
    docs, q = read_all(path)
    assert docs.column("text").to_pylist() == ["a", "b"] and q.num_rows == 0


@pytest.mark.parametrize("limit", [64, 1000])
def test_doc_too_large_boundary(tmp_path, limit):
    texts = ["x" * limit, "y" * (limit + 1), "é" * (limit // 2), "é" * (limit // 2 + 1), "ok"]  # é = 2 bytes
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps({"text": t}) for t in texts))
    docs, q = read_all(path, max_doc_bytes=limit)
    kept = docs.column("text").to_pylist()
    assert kept == [texts[0], texts[2], "ok"]
    assert list(zip(q.column("position").to_pylist(), reasons(q))) == [(1, "doc_too_large"), (3, "doc_too_large")]


def test_oversize_line_is_skipped_without_buffering(tmp_path):
    """A line longer than 6 x max_doc_bytes + 1 MiB is quarantined from its first bytes; reading goes on."""
    huge = orjson.dumps({"text": "z" * (1_300_000)})
    lines = doc_lines(3) + [huge] + doc_lines(3, 3)
    path = tmp_path / "huge.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(b"\n".join(lines) + b"\n"))
    docs, q = read_all(path, max_doc_bytes=1000)
    assert docs.num_rows == 6
    assert list(zip(q.column("position").to_pylist(), reasons(q))) == [(3, "doc_too_large")]
    assert q.column("raw").to_pylist()[0] == huge[:RAW_SNIPPET_BYTES]
    assert docs.column("id").to_pylist()[3] == "jsonl/huge.jsonl.zst/4"


def _compress(kind: str, data: bytes) -> bytes:
    if kind == "gzip":
        return gzip.compress(data, mtime=0)
    return zstandard.ZstdCompressor(level=3).compress(data)


@pytest.mark.parametrize("kind,ext", [("gzip", ".jsonl.gz"), ("zstd", ".jsonl.zst")])
@pytest.mark.parametrize("frac", [0.3, 0.55, 0.9])
def test_truncated_stream_keeps_records_before_the_cut(tmp_path, kind, ext, frac):
    lines = doc_lines(40000)  # ~1.7 MB: a dozen zstd blocks of 128 KiB, so a cut leaves whole blocks
    raw = b"\n".join(lines) + b"\n"
    blob = _compress(kind, raw)
    cut = blob[: int(len(blob) * frac)]
    path = tmp_path / f"cut{ext}"
    path.write_bytes(cut)
    docs, q = read_all(path, batch_size=3000)
    # what an independent streaming decoder recovers from the same prefix
    if kind == "gzip":
        prefix = zlib.decompressobj(wbits=31).decompress(cut)
    else:
        prefix = zstandard.ZstdDecompressor().decompressobj().decompress(cut)
    complete = prefix.count(b"\n")
    assert docs.num_rows == complete > 0
    assert docs.column("text").to_pylist() == [orjson.loads(x)["text"] for x in lines[:complete]]
    assert reasons(q) == ["truncated_stream"]
    assert q.column("position").to_pylist() == [complete]
    assert q.column("raw").to_pylist()[0] == prefix[prefix.rfind(b"\n") + 1:][:RAW_SNIPPET_BYTES]
    # count identity: every record that began before the cut is a doc or the quarantined partial line
    assert docs.num_rows + q.num_rows == complete + 1


@pytest.mark.parametrize("kind,ext", [("gzip", ".jsonl.gz"), ("zstd", ".jsonl.zst")])
def test_multi_member_streams_are_read_whole(tmp_path, kind, ext):
    a, b = doc_lines(100), doc_lines(100, 100)
    path = tmp_path / f"multi{ext}"
    path.write_bytes(_compress(kind, b"\n".join(a) + b"\n") + _compress(kind, b"\n".join(b) + b"\n"))
    docs, q = read_all(path)
    assert q.num_rows == 0 and docs.num_rows == 200
    assert docs.column("id").to_pylist()[-1] == f"jsonl/multi{ext}/199"


def test_corrupt_gzip_midstream(tmp_path):
    raw = b"\n".join(doc_lines(4000)) + b"\n"
    blob = bytearray(gzip.compress(raw, mtime=0))
    blob[-6] ^= 0xFF  # damage the CRC / size trailer: every byte decodes, the check fails
    path = tmp_path / "crc.jsonl.gz"
    path.write_bytes(bytes(blob))
    docs, q = read_all(path)
    assert reasons(q) == ["corrupt_stream"]
    assert docs.num_rows == 4000  # the lines were decoded before the trailer was checked


def test_corrupt_zstd_midstream(tmp_path):
    lines = doc_lines(40000)
    blob = bytearray(zstandard.ZstdCompressor(level=3).compress(b"\n".join(lines) + b"\n"))
    mid = len(blob) // 2
    blob[mid : mid + 64] = bytes(64)  # wipe a stretch inside a compressed block
    path = tmp_path / "damaged.jsonl.zst"
    path.write_bytes(bytes(blob))
    docs, q = read_all(path)
    assert reasons(q) == ["corrupt_stream"]
    # the documents before the damaged block are intact and in order (zstd blocks are checked as they
    # decode; the lines of the failing call are lost, the loss is reported by the corrupt_stream record)
    texts = docs.column("text").to_pylist()
    assert 1000 < len(texts) < len(lines)
    assert texts == [orjson.loads(x)["text"] for x in lines[: len(texts)]]
    assert q.column("position").to_pylist() == [len(texts)]


@pytest.mark.parametrize("name,content", [
    ("notgz.jsonl.gz", b'{"text": "plain text, not gzip"}\n'),
    ("notzst.jsonl.zst", b'{"text": "plain text, not zstd"}\n'),
    ("notparquet.parquet", b"PAR1 this is not a parquet file at all"),
])
def test_not_the_claimed_format_is_unreadable(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    docs, q = read_all(path)
    assert docs.num_rows == 0
    assert reasons(q) == ["unreadable_file"]
    assert q.column("position").to_pylist() == [-1]


def test_missing_file_is_unreadable_not_raised(tmp_path):
    for name in ("absent.jsonl", "absent.parquet"):
        docs, q = read_all(tmp_path / name)
        assert docs.num_rows == 0 and reasons(q) == ["unreadable_file"]


def test_gzip_content_without_extension_is_sniffed(tmp_path):
    path = tmp_path / "sniffed.jsonl"
    path.write_bytes(gzip.compress(b"\n".join(doc_lines(10)), mtime=0))
    docs, q = read_all(path)
    assert docs.num_rows == 10 and q.num_rows == 0


@pytest.mark.parametrize("name,content", [
    ("empty.jsonl", b""),
    ("blank.jsonl", b"\n\n  \n"),
    ("empty.jsonl.gz", b""),
    ("emptymember.jsonl.gz", gzip.compress(b"", mtime=0)),
    ("empty.jsonl.zst", zstandard.ZstdCompressor().compress(b"")),
    ("empty.parquet", b""),
])
def test_empty_files(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    docs, q = read_all(path)
    assert docs.num_rows == 0 and reasons(q) == ["empty_file"]


def test_parquet_zero_rows_is_empty(tmp_path):
    path = tmp_path / "zero.parquet"
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), path)
    docs, q = read_all(path)
    assert docs.num_rows == 0 and reasons(q) == ["empty_file"]


def test_parquet_wrong_schema_one_record(tmp_path):
    no_text = tmp_path / "notext.parquet"
    pq.write_table(pa.table({"body": ["a", "b", "c"]}), no_text)
    int_text = tmp_path / "inttext.parquet"
    pq.write_table(pa.table({"text": [1, 2, 3]}), int_text)
    for path in (no_text, int_text):
        docs, q = read_all(path)
        assert docs.num_rows == 0 and reasons(q) == ["wrong_schema"]
    _, q = read_all(tmp_path / "notext.parquet", format="refinedweb")  # refinedweb needs `content`
    assert reasons(q) == ["wrong_schema"]


def test_parquet_row_level_reasons(tmp_path):
    texts = ["fine", None, "x" * 200, "also fine", None]
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"text": texts, "id": ["a", "b", "c", None, "e"], "lang": ["en"] * 5}), path)
    docs, q = read_all(path, max_doc_bytes=100)
    assert docs.column("text").to_pylist() == ["fine", "also fine"]
    assert docs.column("id").to_pylist() == ["a", "parquet/rows.parquet/3"]  # generated where the id is null
    assert list(zip(q.column("position").to_pylist(), reasons(q), q.column("id").to_pylist())) == [
        (1, "null_text", "b"), (2, "doc_too_large", "c"), (4, "null_text", "e")]
    raw = orjson.loads(q.column("raw").to_pylist()[1])
    assert raw["id"] == "c" and raw["text"] == "x" * 200


def test_parquet_binary_text_invalid_utf8(tmp_path):
    path = tmp_path / "bin.parquet"
    pq.write_table(pa.table({"text": pa.array([b"ok", b"\xff\xfe", "é".encode()], pa.binary())}), path)
    docs, q = read_all(path)
    assert docs.column("text").to_pylist() == ["ok", "é"]
    assert list(zip(q.column("position").to_pylist(), reasons(q))) == [(1, "invalid_utf8")]


def test_parquet_corrupt_row_group_loses_only_its_rows(tmp_path):
    n, group = 3000, 1000
    path = tmp_path / "groups.parquet"
    texts = [f"row {i} " + "lorem " * (i % 13) for i in range(n)]
    pq.write_table(pa.table({"text": texts}), path, row_group_size=group, compression="zstd")
    meta = pq.ParquetFile(path).metadata
    col = meta.row_group(1).column(0)
    start = col.dictionary_page_offset or col.data_page_offset
    blob = bytearray(path.read_bytes())
    for k in range(start + 40, start + col.total_compressed_size - 8, 7):
        blob[k] ^= 0x5A
    path.write_bytes(bytes(blob))
    docs, q = read_all(path)
    assert docs.column("text").to_pylist() == texts[:group] + texts[2 * group:]
    assert set(reasons(q)) == {"unreadable_file"}
    assert q.column("position").to_pylist() == list(range(group, 2 * group))
    assert docs.num_rows + q.num_rows == n


def test_zstd_frame_tracker_tells_cut_streams():
    """``ZstdFrames`` ends on a frame boundary exactly at the end of every frame (content sizes,
    checksums, raw / RLE / compressed blocks, skippable frames), never inside one, whatever the reads."""
    import os
    import random

    from curation.readers.streams import ZstdFrames

    rng = random.Random(1)
    frames = [
        zstandard.ZstdCompressor(write_checksum=True).compress(b"".join(doc_lines(50))),
        zstandard.ZstdCompressor(write_content_size=False).compress(b"a" * 300_000),  # RLE blocks
        zstandard.ZstdCompressor(level=1).compress(os.urandom(200_000)),  # raw blocks
        zstandard.ZstdCompressor().compress(b""),
        (0x184D2A53).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"skip!",  # skippable frame
    ]
    ends, pos = set(), 0
    for fr in frames:
        pos += len(fr)
        ends.add(pos)
    blob = b"".join(frames)
    step = max(1, len(blob) // 3000)
    for cut in list(range(0, len(blob), step)) + sorted(ends) + [e - 1 for e in ends]:
        t = ZstdFrames()
        k = 0
        while k < cut:  # fed in reads of random sizes
            n = rng.choice([1, 3, 7, 4096, 1 << 17])
            t.feed(blob[k : min(cut, k + n)])
            k += n
        assert t.at_frame_end == (cut == 0 or cut in ends), cut


def test_zstd_frames_of_every_kind_read_whole(tmp_path):
    """Frames with and without content size and checksum, and a skippable frame between them."""
    a, b = doc_lines(300), doc_lines(300, 300)
    skippable = (0x184D2A5F).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"xyz"
    blob = (zstandard.ZstdCompressor(write_checksum=True).compress(b"\n".join(a) + b"\n") + skippable
            + zstandard.ZstdCompressor(write_content_size=False).compress(b"\n".join(b) + b"\n"))
    path = tmp_path / "kinds.jsonl.zst"
    path.write_bytes(blob)
    docs, q = read_all(path)
    assert q.num_rows == 0 and docs.num_rows == 600
    path.write_bytes(blob[:-1])  # the last frame cut by one byte
    docs, q = read_all(path)
    assert reasons(q) == ["truncated_stream"]
