"""Hand-built WARC records for the reader tests: byte-level control, no WARC library involved."""

from __future__ import annotations

import gzip
import zlib
from collections import Counter
from pathlib import Path

import pyarrow as pa

from curation.readers import get_reader
from curation.schema import DOC_SCHEMA, DROPPED_SCHEMA, QUARANTINE_SCHEMA, check_doc_table


def http_response(body: bytes, content_type: str | None = "text/html; charset=utf-8", status: str = "200 OK",
                  extra: str = "") -> bytes:
    head = f"HTTP/1.1 {status}\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    head += extra
    return head.encode() + b"\r\n" + body


def record(block: bytes, kind: str = "response", rid: str | None = None, uri: str = "http://example.com/",
           content_type: str = "application/http; msgtype=response", length: int | None = None,
           extra: str = "") -> bytes:
    """One WARC/1.0 record (``length`` overrides the Content-Length, to make a lie)."""
    rid = rid or f"urn:uuid:00000000-0000-0000-0000-{zlib.crc32(block + kind.encode() + uri.encode()):012d}"
    head = (f"WARC/1.0\r\nWARC-Type: {kind}\r\nWARC-Record-ID: <{rid}>\r\nWARC-Date: 2024-05-18T01:58:10Z\r\n"
            f"WARC-Target-URI: {uri}\r\nContent-Type: {content_type}\r\n{extra}"
            f"Content-Length: {len(block) if length is None else length}\r\n\r\n")
    return head.encode() + block + b"\r\n\r\n"


def write(path: Path, records: list[bytes], gz: bool = True) -> Path:
    """Records into a file: one gzip member per record (as Common Crawl writes them) or plain."""
    if gz:
        path.write_bytes(b"".join(gzip.compress(r, mtime=0) for r in records))
    else:
        path.write_bytes(b"".join(records))
    return path


def read_all(path: Path, **kw) -> tuple[pa.Table, pa.Table, pa.Table]:
    """(docs, quarantine, dropped) of a whole file, checking the batch schemas on the way."""
    reader = get_reader(str(path), **kw)
    docs, quar, drop = [], [], []
    for d, q, x in reader.read_with_dropped(str(path)):
        check_doc_table(d)
        assert d.select(DOC_SCHEMA.names).schema == DOC_SCHEMA
        assert q.schema == QUARANTINE_SCHEMA and x.schema == DROPPED_SCHEMA
        assert d.num_rows <= reader.batch_size
        docs.append(d)
        quar.append(q)
        drop.append(x)
    return (pa.concat_tables(docs), pa.concat_tables(quar), pa.concat_tables(drop))


def reasons(table: pa.Table) -> Counter:
    return Counter(table.column("reason").to_pylist())
