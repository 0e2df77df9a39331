"""The WARC / WET readers on hand-built archives: what becomes a document, what is dropped with which
reason, what is quarantined, charset decoding, truncation, and the read stage's accounting in the runner."""

from __future__ import annotations

import gzip
import zlib

import orjson
import pytest

from curation.readers import detect_format, get_reader
from curation.readers.warc import HTML_COLUMN
from tests.curation.readers.warc_helpers import http_response, read_all, reasons, record, write

PAGE = "<html><head><title>T</title></head><body><p>{}</p></body></html>"


def _page(text: str, charset: str = "utf-8") -> bytes:
    return PAGE.format(text).encode(charset)


def _capture(i: int, body: bytes, **kw) -> list[bytes]:
    """A request, a response and a metadata record, as Common Crawl writes one capture."""
    uri = f"http://example.com/{i}"
    return [
        record(f"GET /{i} HTTP/1.1\r\nHost: example.com\r\n\r\n".encode(), "request", uri=uri,
               content_type="application/http; msgtype=request"),
        record(http_response(body, **kw), "response", rid=f"urn:uuid:r-{i}", uri=uri),
        record(b"fetchTimeMs: 12\r\n", "metadata", uri=uri, content_type="application/warc-fields"),
    ]


def test_detection():
    assert detect_format("cc/CC-MAIN-1.warc.gz") == "warc"
    assert detect_format("a/b.warc") == "warc"
    assert detect_format("cc/CC-MAIN-1.warc.wet.gz") == "wet"
    assert detect_format("x.wet") == "wet"
    assert detect_format("x.warc.zst") == "warc"
    with pytest.raises(ValueError, match="WAT file"):
        detect_format("cc/CC-MAIN-1.warc.wat.gz")


def test_html_responses_become_documents_and_the_rest_is_dropped(tmp_path):
    recs = [record(b"software: test\r\n", "warcinfo", content_type="application/warc-fields")]
    for i in range(3):
        recs += _capture(i, _page(f"page number {i}"))
    recs += _capture(3, b"\x89PNG\r\n\x1a\n" + bytes(range(256)), content_type="image/png")
    recs += _capture(4, _page("gone"), status="404 Not Found")
    recs += _capture(5, _page("x"), content_type=None)  # no type anywhere: not known to be HTML
    recs += _capture(6, b"   \n  ")  # HTML response with an empty body
    recs.append(record(b"dns answer", "response", content_type="text/dns"))
    path = write(tmp_path / "a.warc.gz", recs)
    docs, quar, drop = read_all(path)
    assert quar.num_rows == 0
    assert docs.column("id").to_pylist() == ["urn:uuid:r-0", "urn:uuid:r-1", "urn:uuid:r-2"]
    assert docs.column("text").to_pylist() == [PAGE.format(f"page number {i}") for i in range(3)]
    assert docs.column("url").to_pylist() == [f"http://example.com/{i}" for i in range(3)]
    assert docs.column(HTML_COLUMN).to_pylist() == [True] * 3
    assert set(docs.column("source").to_pylist()) == {"warc"}
    meta = orjson.loads(docs.column("metadata")[0].as_py())
    assert meta["content_type"] == "text/html" and meta["http_status"] == 200 and meta["charset"] == "utf-8"
    assert meta["warc_date"] == "2024-05-18T01:58:10Z" and meta["warc_record_id"] == "<urn:uuid:r-0>"
    assert reasons(drop) == {
        "warc:not_response:warcinfo": 1, "warc:not_response:request": 7, "warc:not_response:metadata": 7,
        "warc:not_html:image/png": 1, "warc:http_status:404": 1, "warc:not_html:unknown": 1,
        "warc:empty_body": 1, "warc:not_http": 1,
    }
    # every record is accounted for exactly once
    assert docs.num_rows + drop.num_rows + quar.num_rows == len(recs)
    # read() is read_with_dropped() without the dropped table
    plain = list(get_reader(str(path)).read(str(path)))
    assert sum(d.num_rows for d, _ in plain) == 3


def test_identified_payload_type_when_the_http_header_has_none(tmp_path):
    body = http_response(_page("typed by the crawler"), content_type=None)
    path = write(tmp_path / "b.warc.gz", [record(body, extra="WARC-Identified-Payload-Type: text/html\r\n")])
    docs, quar, drop = read_all(path)
    assert docs.num_rows == 1 and drop.num_rows == 0 and quar.num_rows == 0


def test_charsets_header_meta_detection_and_a_wrong_header(tmp_path):
    russian = "Съешь же ещё этих мягких французских булок, да выпей чаю. " * 5
    japanese = "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。" * 5
    meta_page = f'<html><head><meta charset="euc-jp"></head><body><p>{japanese}</p></body></html>'
    recs = [
        record(http_response(_page(russian, "cp1251"), "text/html; charset=windows-1251"), rid="urn:uuid:header"),
        # the header says UTF-8, the bytes are windows-1251: the header fails, detection decodes it
        record(http_response(_page(russian, "cp1251"), "text/html; charset=utf-8"), rid="urn:uuid:wrong"),
        record(http_response(meta_page.encode("euc-jp"), "text/html"), rid="urn:uuid:meta"),
        # a label nobody knows is skipped, then the bytes decide
        record(http_response(_page(russian), "text/html; charset=x-no-such-charset"), rid="urn:uuid:unknown"),
        # iso-8859-1 is read as windows-1252, as browsers do (the curly quotes are 0x93/0x94)
        record(http_response(_page("\u201cquoted\u201d caf\u00e9", "cp1252"), "text/html; charset=iso-8859-1"),
               rid="urn:uuid:latin"),
    ]
    docs, quar, drop = read_all(write(tmp_path / "c.warc.gz", recs))
    assert quar.num_rows == 0 and drop.num_rows == 0
    by_id = {r["id"]: r for r in docs.to_pylist()}
    assert by_id["urn:uuid:header"]["text"] == PAGE.format(russian)
    assert by_id["urn:uuid:wrong"]["text"] == PAGE.format(russian)
    assert japanese in by_id["urn:uuid:meta"]["text"]
    assert by_id["urn:uuid:unknown"]["text"] == PAGE.format(russian)
    assert by_id["urn:uuid:latin"]["text"] == PAGE.format("\u201cquoted\u201d caf\u00e9")
    metas = {k: orjson.loads(v["metadata"]) for k, v in by_id.items()}
    assert metas["urn:uuid:header"]["charset_source"] == "http" and "declared_charset" not in metas["urn:uuid:header"]
    assert metas["urn:uuid:wrong"]["charset"] == "cp1251"
    assert metas["urn:uuid:wrong"]["declared_charset"] == "utf-8"
    assert metas["urn:uuid:wrong"]["charset_source"] == "meta_or_detected"
    assert metas["urn:uuid:meta"]["charset"] == "euc_jp"


def test_undecodable_and_malformed_bodies_are_quarantined(tmp_path):
    binary = bytes(range(256)) * 8  # NUL bytes and everything else
    recs = [
        record(http_response(_page("first"))),
        record(http_response(binary, "text/html"), rid="urn:uuid:binary"),
        record(b"this is not an HTTP message at all\r\n\r\n<p>x</p>", rid="urn:uuid:nohttp"),
        record(http_response(b"\x1f\x8b\x08\x00garbage-not-really-gzip", "text/html",
                             extra="Content-Encoding: gzip\r\n"), rid="urn:uuid:badgzip"),
        record(http_response(b"10\r\nonly five\r\n", "text/html", extra="Transfer-Encoding: chunked\r\n"),
               rid="urn:uuid:badchunk"),
        record(http_response(_page("last"))),
    ]
    docs, quar, drop = read_all(write(tmp_path / "d.warc.gz", recs))
    assert docs.column("text").to_pylist() == [PAGE.format("first"), PAGE.format("last")]
    got = dict(zip(quar.column("id").to_pylist(), quar.column("reason").to_pylist()))
    assert got == {"urn:uuid:binary": "undecodable_body", "urn:uuid:nohttp": "malformed_http_header",
                   "urn:uuid:badgzip": "bad_content_encoding", "urn:uuid:badchunk": "bad_content_encoding"}
    assert all(r is not None for r in quar.column("raw").to_pylist())
    assert set(quar.column("stage").to_pylist()) == {"read"}


def test_content_and_transfer_encodings_are_undone(tmp_path):
    text = "compressed page " * 20
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (_page(text)[:50], _page(text)[50:])) + b"0\r\n\r\n"
    recs = [
        record(http_response(gzip.compress(_page(text), mtime=0), extra="Content-Encoding: gzip\r\n"), rid="urn:g"),
        record(http_response(zlib.compress(_page(text)), extra="Content-Encoding: deflate\r\n"), rid="urn:d"),
        record(http_response(chunked, extra="Transfer-Encoding: chunked\r\n"), rid="urn:c"),
        # ClueWeb09 keeps "Content-Encoding: gzip" over bodies it already decoded: the header is ignored
        record(http_response(_page(text), extra="Content-Encoding: gzip\r\n"), rid="urn:lie"),
    ]
    docs, quar, drop = read_all(write(tmp_path / "e.warc.gz", recs))
    assert quar.num_rows == 0
    assert docs.column("text").to_pylist() == [PAGE.format(text)] * 4
    metas = [orjson.loads(m) for m in docs.column("metadata").to_pylist()]
    assert [m.get("content_encoding") for m in metas] == ["gzip", "deflate", None, None]


def test_truncated_gzip_keeps_the_records_before_the_cut(tmp_path):
    recs = []
    for i in range(12):
        recs += _capture(i, _page(f"page {i} " + "words " * 300))
    full = write(tmp_path / "full.warc.gz", recs)
    data = full.read_bytes()
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(data[: int(len(data) * 0.55)])
    docs_full, _, _ = read_all(full)
    docs, quar, drop = read_all(cut)
    assert 0 < docs.num_rows < docs_full.num_rows
    assert docs.column("id").to_pylist() == docs_full.column("id").to_pylist()[: docs.num_rows]
    assert reasons(quar) == {"truncated_stream": 1}
    # every whole gzip member (one record each) before the cut is read: as documents or dropped
    rest = data[: int(len(data) * 0.55)]
    whole_members = 0
    while rest:
        d = zlib.decompressobj(wbits=31)
        d.decompress(rest)
        if not d.eof:
            break
        whole_members += 1
        rest = d.unused_data
    assert docs.num_rows + drop.num_rows == whole_members


def test_truncated_plain_file_quarantines_the_short_record(tmp_path):
    recs = []
    for i in range(5):
        recs += _capture(i, _page(f"page {i} " + "words " * 300))
    plain = b"".join(recs)
    last = plain.rfind(b"WARC/1.0\r\nWARC-Type: response")
    path = tmp_path / "cut.warc"
    path.write_bytes(plain[: last + 900])  # inside the last response's body
    docs, quar, drop = read_all(path)
    assert docs.num_rows == 4
    assert reasons(quar) == {"truncated_record": 1}
    assert quar.column("id").to_pylist() == ["urn:uuid:r-4"]
    assert docs.num_rows + drop.num_rows + quar.num_rows == 14  # 4 whole captures, the last request, the cut


def test_malformed_warc_headers(tmp_path):
    good = [record(http_response(_page(f"p{i}")), rid=f"urn:uuid:g{i}") for i in range(3)]
    first = ["urn:uuid:g0", "urn:uuid:g1", "urn:uuid:g2"]
    # junk between records: the parser cannot find the next header; the file ends there, kept so far
    docs, quar, drop = read_all(write(tmp_path / "between.warc", [*good, b"XYZ\r\n", *good], gz=False))
    assert docs.column("id").to_pylist() == first
    assert reasons(quar) == {"malformed_warc_header": 1} and drop.num_rows == 0
    assert quar.column("position")[0].as_py() >= len(b"".join(good))
    # a header block without a single WARC field: quarantined, and the records after it are read
    docs, quar, _ = read_all(write(tmp_path / "junk.warc", [*good, b"WARC/1.0\r\nthis is junk\r\n\r\n", *good],
                                   gz=False))
    assert docs.num_rows == 6 and docs.column("id").to_pylist()[:3] == first
    assert reasons(quar) == {"malformed_warc_header": 1}
    assert b"without WARC-Type or WARC-Record-ID" in quar.column("raw")[0].as_py()
    # a Content-Length that stops short of the record's end: the rest cannot be parsed
    lie = record(http_response(_page("lie")), rid="urn:uuid:lie", length=30)
    docs, quar, drop = read_all(write(tmp_path / "lie.warc", [*good, lie, *good], gz=False))
    assert docs.column("id").to_pylist() == first
    assert reasons(quar) == {"malformed_warc_header": 1}
    # the lying record itself looks whole (30 bytes of HTTP header, no Content-Type): only what follows fails
    assert reasons(drop) == {"warc:not_html:unknown": 1}


def test_doc_too_large_and_batching(tmp_path):
    recs = [record(http_response(_page("x" * (3000 if i == 2 else 10))), rid=f"urn:uuid:{i}") for i in range(7)]
    path = write(tmp_path / "big.warc.gz", recs)
    docs, quar, _ = read_all(path, max_doc_bytes=1000, batch_size=2)
    assert docs.column("id").to_pylist() == [f"urn:uuid:{i}" for i in (0, 1, 3, 4, 5, 6)]
    assert reasons(quar) == {"doc_too_large": 1}
    again, _, _ = read_all(path, max_doc_bytes=1000)
    assert again.column("text").to_pylist() == docs.column("text").to_pylist()


def test_duplicate_and_missing_record_ids(tmp_path):
    body = http_response(_page("same id"))
    recs = [record(body, rid="urn:uuid:dup"), record(body, rid="urn:uuid:dup")]
    no_id = b"WARC/1.0\r\nWARC-Type: response\r\nContent-Type: application/http; msgtype=response\r\n" \
            b"Content-Length: %d\r\n\r\n%s\r\n\r\n" % (len(body), body)
    path = write(tmp_path / "ids.warc", [*recs, no_id], gz=False)
    docs, _, _ = read_all(path)
    ids = docs.column("id").to_pylist()
    assert ids[0] == "urn:uuid:dup" and ids[1] == f"urn:uuid:dup@{len(recs[0])}"
    assert ids[2] == f"warc/ids.warc/{len(b''.join(recs))}"  # no WARC-Record-ID: source/file/byte offset
    assert len(set(ids)) == 3


def test_wet_conversion_records(tmp_path):
    text = "Plain text of a page.\nSecond line, with ünïcödé."
    recs = [
        record(b"isPartOf: CC\r\n", "warcinfo", content_type="application/warc-fields"),
        record(text.encode(), "conversion", rid="urn:uuid:w1", content_type="text/plain",
               extra="WARC-Identified-Content-Language: eng,deu\r\nWARC-Refers-To: <urn:uuid:orig>\r\n"),
        record("latin-1 bytes: caf\u00e9".encode("latin-1"), "conversion", rid="urn:uuid:bad",
               content_type="text/plain"),
        record(b"", "conversion", rid="urn:uuid:empty", content_type="text/plain"),
    ]
    path = write(tmp_path / "x.warc.wet.gz", recs)
    docs, quar, drop = read_all(path)
    assert docs.column("id").to_pylist() == ["urn:uuid:w1"] and docs.column("text").to_pylist() == [text]
    assert HTML_COLUMN not in docs.column_names and set(docs.column("source").to_pylist()) == {"wet"}
    meta = orjson.loads(docs.column("metadata")[0].as_py())
    assert meta["content_language"] == "eng,deu" and meta["refers_to"] == "<urn:uuid:orig>"
    assert reasons(quar) == {"invalid_utf8": 1}
    assert reasons(drop) == {"wet:not_conversion:warcinfo": 1, "wet:empty_body": 1}


def test_empty_and_unreadable_files(tmp_path):
    empty = tmp_path / "e.warc.gz"
    empty.write_bytes(b"")
    _, quar, _ = read_all(empty)
    assert reasons(quar) == {"empty_file": 1}
    notgz = tmp_path / "n.warc.gz"
    notgz.write_bytes(b"WARC/1.0\r\n this is not gzip")
    _, quar, _ = read_all(notgz)
    assert reasons(quar) == {"unreadable_file": 1}


def test_runner_read_stage_counts_dropped_records(tmp_path):
    """The runner's read stage: in == kept + dropped + quarantined per source, the dropped records in
    dropped/ with stage "read" (run in-process: run_shard is the Ray task's body)."""
    import pyarrow.parquet as pq

    from curation.runner import InputSpec, RunConfig, Runner
    from curation.shard import run_shard
    from curation.stats import check_invariant

    recs = []
    for i in range(4):
        recs += _capture(i, _page(f"page {i}"))
    recs += _capture(9, b"%PDF-1.4 ...", content_type="application/pdf")
    recs.append(record(http_response(bytes(range(256)) * 4, "text/html"), rid="urn:uuid:binary"))
    path = write(tmp_path / "run.warc.gz", recs)
    runner = Runner([], [InputSpec(str(path))], RunConfig(output_dir=str(tmp_path / "out"), report=False))
    task = runner._task(runner.inputs[0], runner.phases[0])
    blob = run_shard(task, runner.phases[0].stages)
    (read,) = [s for s in blob["stages"] if s["name"] == "read"]
    assert check_invariant(read) == []
    counts = read["by_source"]["warc"]
    assert counts["in"] == len(recs)
    assert counts["kept"] == 4
    assert counts["dropped"]["warc:not_response:request"][0] == 5
    assert counts["dropped"]["warc:not_html:application/pdf"][0] == 1
    assert counts["quarantined"] == {"undecodable_body": [1, counts["quarantined"]["undecodable_body"][1]]}
    dropped = pq.read_table(task.dropped_path)
    assert set(dropped.column("stage").to_pylist()) == {"read"} and dropped.num_rows == len(recs) - 5
    out = pq.read_table(task.output_path)
    assert out.num_rows == 4 and HTML_COLUMN in out.column_names
