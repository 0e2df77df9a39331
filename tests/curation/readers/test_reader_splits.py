"""Large inputs as splits: the concatenated outputs of all the splits of a file equal the whole-file read
exactly (ids, texts, urls, metadata, quarantine records), whatever the split size, for parquet row-group
ranges and byte ranges of uncompressed JSON lines, bad lines on the edges included."""

from __future__ import annotations

import gzip
import random

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from curation.readers import Split, assign_first_rows, count_records, get_reader, plan_splits
from curation.readers.splits import BYTES, ROW_GROUPS
from curation.schema import DOC_SCHEMA, QUARANTINE_SCHEMA


def _concat(batches) -> tuple[pa.Table, pa.Table]:
    docs = pa.concat_tables([DOC_SCHEMA.empty_table()] + [d for d, _ in batches]).combine_chunks()
    quar = pa.concat_tables([QUARANTINE_SCHEMA.empty_table()] + [q for _, q in batches]).combine_chunks()
    return docs, quar


def read_whole(path: str, fmt: str, **opts) -> tuple[pa.Table, pa.Table]:
    return _concat(list(get_reader(path, format=fmt, **opts).read(path)))


def read_splits(path: str, fmt: str, splits: list[Split], **opts) -> tuple[pa.Table, pa.Table]:
    """Each split with a reader of its own (as separate workers would), outputs concatenated in split order."""
    out = []
    for s in splits:
        out += list(get_reader(path, format=fmt, **opts).read(path, s))
    return _concat(out)


def assert_same(got: tuple[pa.Table, pa.Table], want: tuple[pa.Table, pa.Table], what: str) -> None:
    assert got[1].to_pylist() == want[1].to_pylist(), what
    assert got[0].num_rows == want[0].num_rows, what
    assert got[0].equals(want[0]), what


def byte_ranges(size: int, step: int) -> list[Split]:
    """Unaligned ranges: they cut lines anywhere, and many hold no line start at all."""
    return [Split(BYTES, a, min(a + step, size)) for a in range(0, size, step)] or [Split(BYTES, 0, 0)]


def counted(path: str, splits: list[Split]) -> list[Split]:
    return assign_first_rows(splits, [count_records(path, s) for s in splits])


def _jsonl_lines(n: int, sizes: tuple[int, ...]) -> list[bytes]:
    rng = random.Random(11)
    lines = [b"\xef\xbb\xbf" + orjson.dumps({"text": "after a BOM", "meta": {"pile_set_name": "X"}})]
    for i in range(n):
        if rng.random() < 0.12:
            lines.append(rng.choice([b'{"text": "broken', b"[1, 2]", b'{"text": "bad \xff bytes"}', b"",
                                     b"  \r", orjson.dumps({"text": None, "id": f"q{i}"}), orjson.dumps({"x": 1})]))
        else:
            rec = {"text": f"{i} " + "\u00e9\n\"\\x " * rng.choice(sizes), "meta": {"pile_set_name": "Pile-CC", "i": i}}
            if i % 3 == 0:
                rec["id"] = f"own-{i}"
            if i % 4 == 0:
                rec["url"] = f"https://e.x/{i}"
            lines.append(orjson.dumps(rec))
    return lines


SMALL = (60, (0, 1, 3, 12))  # about 4 KB: every byte can be a range boundary
LARGE = (150, (1, 40, 2000, 60_000))  # about 2 MB: lines across the reader's 256 KiB pieces


@pytest.fixture(params=["trailing_newline", "no_trailing_newline", "blank_tail", "large"])
def jsonl_file(request, tmp_path):
    lines = _jsonl_lines(*(LARGE if request.param == "large" else SMALL))
    raw = b"\n".join(lines)
    if request.param in ("trailing_newline", "large"):
        raw += b"\n"
    elif request.param == "blank_tail":
        raw += b"\n\n  \n"
    path = tmp_path / "pile" / "split-me.jsonl"
    path.parent.mkdir()
    path.write_bytes(raw)
    return str(path)


def _steps(size: int) -> tuple[int, ...]:
    return (1, 7, 64, 999, size) if size < 100_000 else (4096, 50_000, 300_000, size)


def _line_starts(raw: bytes) -> list[int]:
    starts, p = [0] if raw else [], raw.find(b"\n")
    while p >= 0:
        if p + 1 < len(raw):
            starts.append(p + 1)
        p = raw.find(b"\n", p + 1)
    return starts


def test_count_records_counts_line_starts(jsonl_file):
    raw = open(jsonl_file, "rb").read()
    starts = _line_starts(raw)
    assert count_records(jsonl_file) == len(starts)
    for step in _steps(len(raw)) + (len(raw) + 5,):
        for s in byte_ranges(len(raw), step):
            assert count_records(jsonl_file, s) == sum(1 for p in starts if s.start <= p < s.stop), s


@pytest.mark.parametrize("fmt", ["pile", "jsonl", "redpajama"])
def test_jsonl_byte_ranges_equal_the_whole_read(jsonl_file, fmt):
    size = len(open(jsonl_file, "rb").read())
    whole = read_whole(jsonl_file, fmt, batch_size=16)
    assert whole[0].num_rows > 40 and whole[1].num_rows > 3
    for step in _steps(size):
        splits = counted(jsonl_file, byte_ranges(size, step))
        assert_same(read_splits(jsonl_file, fmt, splits, batch_size=16), whole, f"{fmt} step {step}")


def test_jsonl_planned_splits(jsonl_file):
    raw = open(jsonl_file, "rb").read()
    starts = set(_line_starts(raw))
    whole = read_whole(jsonl_file, "pile")
    for max_bytes in (1, 100, 5000, 300_000, 10**9):
        splits = plan_splits(jsonl_file, "pile", max_bytes)
        assert splits[0].start == 0 and splits[-1].stop == len(raw)
        assert all(a.stop == b.start for a, b in zip(splits, splits[1:]))
        assert all(s.start in starts for s in splits), "planned ranges start on line starts"
        assert all(count_records(jsonl_file, s) > 0 for s in splits), "no empty planned ranges"
        if max_bytes == 10**9:
            assert len(splits) == 1
        assert splits[0].first_row == 0 and all(s.first_row is None for s in splits[1:])
        assert_same(read_splits(jsonl_file, "pile", counted(jsonl_file, splits)), whole, f"plan {max_bytes}")


def test_byte_range_needs_first_row(jsonl_file):
    reader = get_reader(jsonl_file)
    with pytest.raises(ValueError, match="first_row"):
        list(reader.read(jsonl_file, Split(BYTES, 10, 20)))
    with pytest.raises(ValueError, match="row-group"):
        list(get_reader("x.parquet").read(jsonl_file, Split(BYTES, 0, 20, 0)))


@pytest.mark.parametrize("content", [b"", b"\n\n  \n\r\n", b"\n" * 5000], ids=["empty", "blank", "newlines"])
def test_empty_file_is_one_record_whatever_the_splits(tmp_path, content):
    path = tmp_path / "blank.jsonl"
    path.write_bytes(content)
    whole = read_whole(str(path), "jsonl")
    assert whole[1].column("reason").to_pylist() == ["empty_file"]
    for step in (1, 3, 1000):
        splits = counted(str(path), byte_ranges(len(content), step))
        assert_same(read_splits(str(path), "jsonl", splits), whole, f"step {step}")


def test_compressed_streams_are_not_split(tmp_path):
    raw = b"\n".join(orjson.dumps({"text": f"t{i}"}) for i in range(100))
    gz = tmp_path / "a.jsonl.gz"
    gz.write_bytes(gzip.compress(raw, mtime=0))
    zst = tmp_path / "b.jsonl.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(raw))
    sniffed = tmp_path / "c.jsonl"  # gzip content without the extension
    sniffed.write_bytes(gzip.compress(raw, mtime=0))
    for p in (gz, zst, sniffed):
        assert plan_splits(str(p), "jsonl", 10) is None
        with pytest.raises(ValueError, match="compressed"):
            count_records(str(p), Split(BYTES, 0, 10))
        with pytest.raises(ValueError, match="compressed"):
            list(get_reader(str(p), format="jsonl").read(str(p), Split(BYTES, 0, 10, 0)))
    assert plan_splits(str(tmp_path / "absent.jsonl"), "jsonl", 10) is None


def _parquet(path: str, n: int = 3000, group: int = 250) -> pa.Table:
    rng = random.Random(3)
    texts = [None if i % 97 == 5 else f"row {i} " + "lorem ipsum " * rng.randint(0, 40) for i in range(n)]
    table = pa.table({
        "text": texts,
        "id": [None if i % 5 == 0 else ("" if i % 7 == 0 else f"id-{i}") for i in range(n)],
        "url": [f"https://x/{i}" for i in range(n)],
        "score": [i / 7 for i in range(n)],
        "tags": [[f"t{i % 3}", "q\"uote"] if i % 2 else [] for i in range(n)],
    })
    pq.write_table(table, path, row_group_size=group)
    return table


def test_parquet_row_group_splits_equal_the_whole_read(tmp_path):
    path = str(tmp_path / "big.parquet")
    _parquet(path)
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups == 12
    whole = read_whole(path, "parquet", batch_size=100, max_doc_bytes=400)
    assert {"null_text", "doc_too_large"} <= set(whole[1].column("reason").to_pylist())
    group_bytes = meta.row_group(0).total_byte_size
    for max_bytes in (1, group_bytes, 3 * group_bytes + 1, 10**9):
        splits = plan_splits(path, "parquet", max_bytes)
        assert [s.kind for s in splits] == [ROW_GROUPS] * len(splits)
        assert splits[0].start == 0 and splits[-1].stop == 12
        assert all(a.stop == b.start for a, b in zip(splits, splits[1:]))
        assert [s.first_row for s in splits] == [250 * s.start for s in splits]
        assert sum(count_records(path, s) for s in splits) == 3000 == count_records(path)
        if max_bytes == 1:
            assert len(splits) == 12
        if max_bytes == 10**9:
            assert len(splits) == 1
        got = read_splits(path, "parquet", splits, batch_size=100, max_doc_bytes=400)
        assert_same(got, whole, f"max_bytes {max_bytes}")
    with pytest.raises(ValueError, match="first_row"):
        list(get_reader(path).read(path, Split(ROW_GROUPS, 2, 3, 7)))


def test_parquet_corrupt_row_group_inside_a_split(tmp_path):
    path = tmp_path / "groups.parquet"
    texts = [f"row {i} " + "lorem " * (i % 13) for i in range(3000)]
    pq.write_table(pa.table({"text": texts}), path, row_group_size=1000, compression="zstd")
    col = pq.ParquetFile(path).metadata.row_group(1).column(0)
    start = col.dictionary_page_offset or col.data_page_offset
    blob = bytearray(path.read_bytes())
    for k in range(start + 40, start + col.total_compressed_size - 8, 7):
        blob[k] ^= 0x5A
    path.write_bytes(bytes(blob))
    whole = read_whole(str(path), "parquet")
    assert whole[1].column("position").to_pylist() == list(range(1000, 2000))
    splits = plan_splits(str(path), "parquet", 1)
    assert len(splits) == 3
    assert_same(read_splits(str(path), "parquet", splits), whole, "corrupt group")


def test_parquet_file_level_records_once(tmp_path):
    path = tmp_path / "notext.parquet"
    pq.write_table(pa.table({"body": [f"b{i}" for i in range(100)]}), path, row_group_size=10)
    splits = plan_splits(str(path), "parquet", 1)
    assert len(splits) == 10
    got = read_splits(str(path), "parquet", splits)
    assert got[1].column("reason").to_pylist() == ["wrong_schema"]
    assert_same(got, read_whole(str(path), "parquet"), "wrong schema")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not parquet")
    assert plan_splits(str(bad), "parquet", 1) is None
