"""WARC and WET readers: crawl archives (``.warc[.gz]``, ``.warc.wet[.gz]``) -> documents.

Records are streamed with resiliparse's FastWARC (the WARC parser DCLM used for Common Crawl);
bytes come through ``streams.iter_chunks``, which decompresses gzip / zstd and says when a stream
stops before its end (FastWARC's own decompression ends a cut file without a word). FastWARC was
measured against warcio on the shared samples (``bench/extract.py``, row ``warc_parse``): about 3x the
MB/s per core; it ships with resiliparse, our default extractor; and warcio reads the ClueWeb09 file
right but stops at cc_net's WET file as well. Its WARC framing runs strict
(a broken header raises instead of being skipped over in silence) and its HTTP parsing lenient
(ClueWeb09 ends HTTP header lines with a bare LF, which the strict parser reads into the page).

WARC (:class:`WarcReader`): every WARC record is an input record of the read stage.

* a ``response`` with status 2xx and an HTML content type (``text/html``,
  ``application/xhtml+xml``: the HTTP ``Content-Type``, else ``WARC-Identified-Payload-Type``)
  becomes a document whose ``text`` is the decoded HTML and whose ``is_html`` column is true, so
  that the extraction stage (``filters/extract.py``) knows which rows to extract; the charset
  comes from the HTTP header, the page's meta tag, detection, then UTF-8 / windows-1252
  (``curation.readers.http_body``);
* every other record is *dropped* with a reason: ``warc:not_response:<type>`` (warcinfo,
  request, metadata, revisit, resource, ...), ``warc:not_http`` (a response that is not an HTTP
  message, e.g. DNS), ``warc:http_status:<code>``, ``warc:not_html:<mime>``, ``warc:empty_body``;
* bad input is *quarantined*: ``truncated_record`` (fewer bytes than its ``Content-Length``),
  ``truncated_stream`` / ``corrupt_stream`` (the compressed file ends early or is damaged: the
  records before are kept), ``malformed_warc_header`` (FastWARC cannot parse a record header: the
  file ends there), ``malformed_http_header`` (no HTTP status line), ``undecodable_body`` /
  ``bad_content_encoding`` (no charset decodes it, a binary payload, a corrupt gzip body),
  ``doc_too_large`` (payload over ``max_doc_bytes``), ``empty_file``, ``unreadable_file``.

WET (:class:`WetReader`): ``conversion`` records are documents (UTF-8 text, no ``is_html``
column); other records are dropped as ``wet:not_conversion:<type>``, a body that is not UTF-8 is
quarantined as ``invalid_utf8``. A WET file whose record headers end lines with a bare LF cannot
have right ``Content-Length`` values (they count CRLF; cc_net's test file is one): it is read line
by line instead, a record running from one ``WARC/1.x`` line to the next, as cc_net reads WET.

Ids are the ``WARC-Record-ID`` without its angle brackets; a record without one gets
``<source>/<file>/<byte offset>``, and an id seen before in the same file gets ``@<byte offset>``
appended (cc_net's sample repeats one). ``url`` is ``WARC-Target-URI``; ``metadata`` holds the WARC
date, content type, payload digest, HTTP status, charset and the header charset when it differed.
Positions in quarantine records are byte offsets in the decompressed file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pyarrow as pa

from curation.readers.base import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_DOC_BYTES,
    QuarantineBuffer,
    Reader,
)
from curation.readers.http_body import (
    UndecodableBody,
    charset_name,
    decode_chunked,
    decode_content_encoding,
    decode_html,
)
from curation.readers.streams import StreamError, iter_chunks
from curation.schema import DOC_SCHEMA, DROPPED_SCHEMA

logger = logging.getLogger(__name__)

HTML_COLUMN = "is_html"  # true where ``text`` holds HTML that the extraction stage must turn into text
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
DEFAULT_MAX_BATCH_BYTES = 32 << 20  # HTML pages are large: a batch also ends at this many bytes of text
WARC_REASONS = (
    "truncated_record",
    "malformed_warc_header",
    "malformed_http_header",
    "undecodable_body",
    "bad_content_encoding",
)


class _ChunkReader:
    """A read()-able view of ``iter_chunks`` for FastWARC; its errors propagate through the parser."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = bytearray()
        self._error: StreamError | None = None
        self.offset = 0  # bytes handed out

    def read(self, size: int = -1) -> bytes:
        while (size < 0 or len(self._buf) < size) and self._error is None:
            try:
                chunk = next(self._chunks, None)
            except StreamError as exc:
                self._error = exc  # hand out the bytes decoded before the failure first
                break
            if chunk is None:
                break
            self._buf += chunk
        if not self._buf and self._error is not None:
            raise self._error
        n = len(self._buf) if size < 0 else min(size, len(self._buf))
        out = bytes(self._buf[:n])
        del self._buf[:n]
        self.offset += n
        return out

    def tell(self) -> int:
        return self.offset

    def close(self) -> None:
        pass


class _Batch:
    """Documents, dropped records and quarantine of one stretch of a file."""

    def __init__(self, path: str, source: str) -> None:
        self.path = path
        self.source = source
        self.quarantine = QuarantineBuffer(path, source)
        self._clear()

    def _clear(self) -> None:
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.urls: list[str | None] = []
        self.metas: list[str] = []
        self.nbytes = 0
        self.drop_ids: list[str] = []
        self.drop_reasons: list[str] = []
        self.drop_bytes: list[int] = []

    def add_doc(self, ident: str, text: str, url: str | None, meta: dict[str, Any]) -> None:
        self.ids.append(ident)
        self.texts.append(text)
        self.urls.append(url)
        self.metas.append(orjson.dumps(meta).decode())
        self.nbytes += len(text)

    def drop(self, ident: str, reason: str, nbytes: int) -> None:
        self.drop_ids.append(ident)
        self.drop_reasons.append(reason)
        self.drop_bytes.append(nbytes)

    def size(self) -> int:
        return len(self.ids) + len(self.drop_ids) + len(self.quarantine)

    def take(self, html: bool) -> tuple[pa.Table, pa.Table, pa.Table]:
        n = len(self.ids)
        docs = pa.table(
            {
                "id": pa.array(self.ids, pa.string()),
                "text": pa.array(self.texts, pa.large_string()),
                "source": pa.array([self.source] * n, pa.string()),
                "url": pa.array(self.urls, pa.string()),
                "metadata": pa.array(self.metas, pa.string()),
            },
            schema=DOC_SCHEMA,
        )
        if html:
            docs = docs.append_column(pa.field(HTML_COLUMN, pa.bool_()), pa.array([True] * n, pa.bool_()))
        k = len(self.drop_ids)
        dropped = pa.table(
            {
                "id": pa.array(self.drop_ids, pa.string()),
                "source": pa.array([self.source] * k, pa.string()),
                "reason": pa.array(self.drop_reasons, pa.string()),
                "nbytes": pa.array(self.drop_bytes, pa.int64()),
            },
            schema=DROPPED_SCHEMA,
        )
        out = (docs, self.quarantine.take(), dropped)
        self._clear()
        return out


def _no_fields(headers: Any) -> str:
    return "a WARC header block without WARC-Type or WARC-Record-ID: " + (_header_text(headers) or "(no field)")


def _header_text(headers: Any) -> str:
    return "\r\n".join(f"{k}: {v}" for k, v in headers.to_tuples())


class _ArchiveReader(Reader):
    """What the WARC and WET readers share: the stream, ids, batches, failure handling."""

    doc_type = "response"  # the WARC-Type of the records that hold documents
    not_doc_reason = "warc:not_response"  # dropped records of another type: "<this>:<their type>"
    html = True  # the documents' text is HTML (adds the ``is_html`` column)

    def _begin(self, rec: Any, state: dict, batch: Any) -> tuple[int, str, int] | None:
        """(position, id, content length) of a record of the document type; None when the record was
        quarantined (no usable WARC header) or dropped (another record type)."""
        from fastwarc.warc import WarcRecordType

        pos = rec.stream_pos
        rid = rec.headers.get("WARC-Record-ID")
        if not rid and not rec.headers.get("WARC-Type"):
            rec.reader.consume()
            batch.quarantine.add(pos, "malformed_warc_header", None, _no_fields(rec.headers))
            return None
        ident = self._ident(rid, pos, state)
        expected = rec.content_length
        if rec.record_type != getattr(WarcRecordType, self.doc_type):
            kind = (rec.headers.get("WARC-Type") or "unknown").lower()
            self._skip(rec, expected, ident, pos, batch, f"{self.not_doc_reason}:{kind}")
            return None
        return pos, ident, expected

    def __init__(
        self,
        source: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES,
        id_parents: int = 0,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    ) -> None:
        super().__init__(source=source, batch_size=batch_size, max_doc_bytes=max_doc_bytes, id_parents=id_parents)
        if max_batch_bytes <= 0:
            raise ValueError("max_batch_bytes must be positive")
        self.max_batch_bytes = max_batch_bytes

    def read(self, path: str) -> Iterator[tuple[pa.Table, pa.Table]]:
        """``(docs, quarantine)`` batches; the records dropped by type or content are left out
        (the runner uses :meth:`read_with_dropped`, which counts them)."""
        for docs, quarantine, _ in self.read_with_dropped(path):
            yield docs, quarantine

    def read_with_dropped(self, path: str) -> Iterator[tuple[pa.Table, pa.Table, pa.Table]]:
        """``(docs, quarantine, dropped)`` batches: every record of the file is in one of the three."""
        from fastwarc.warc import ArchiveIterator

        batch = _Batch(path, self.source)
        state = {"seen": set(), "prefix": self.id_prefix(path), "current": None, "records": 0}
        stream = _ChunkReader(iter_chunks(path))
        try:
            first = stream.read(4096)
            stream = _Replay(first, stream)
            if self._line_based(first):
                logger.warning("%s: record headers end lines with a bare LF; reading it line by line", path)
                records = _lenient_records(stream)
                for rec in records:
                    state["records"] += 1
                    self._lenient_record(rec, state, batch)
                    if len(batch.ids) >= self.batch_size or batch.nbytes >= self.max_batch_bytes:
                        yield batch.take(self.html)
            else:
                for rec in ArchiveIterator(stream, parse_http=False, stream_detect=False):
                    state["records"] += 1
                    state["current"] = (rec.stream_pos, rec.headers.get("WARC-Record-ID"))
                    self._record(rec, state, batch)
                    state["current"] = None
                    if len(batch.ids) >= self.batch_size or batch.nbytes >= self.max_batch_bytes:
                        yield batch.take(self.html)
                    elif batch.size() >= 4 * self.batch_size:  # a long run of dropped records
                        yield batch.take(self.html)
        except StreamError as exc:
            self._fail(batch, state, stream, exc.reason, exc.detail)
        except OSError as exc:  # FastWARC: "Invalid WARC header" and friends
            self._fail(batch, state, stream, "malformed_warc_header", str(exc))
        if state["records"] == 0 and len(batch.quarantine) == 0:
            batch.quarantine.add(0, "empty_file", None, b"no WARC record in the file")
        yield batch.take(self.html)

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _line_based(first: bytes) -> bool:
        line = first.split(b"\n", 1)[0]
        return line.startswith(b"WARC/") and not line.endswith(b"\r")

    def _fail(self, batch: _Batch, state: dict, stream: Any, reason: str, detail: str) -> None:
        cur = state["current"]
        pos, rid = cur if cur is not None else (stream.tell(), None)
        logger.warning("%s: %s at byte %d: %s; the records before it are kept", batch.path, reason, pos, detail)
        batch.quarantine.add(pos, reason, _strip(rid), detail)

    def _ident(self, rid: str | None, pos: int, state: dict) -> str:
        ident = _strip(rid) or f"{state['prefix']}{pos}"
        if ident in state["seen"]:
            ident = f"{ident}@{pos}"
        state["seen"].add(ident)
        return ident

    def _record(self, rec: Any, state: dict, batch: _Batch) -> None:
        raise NotImplementedError

    def _lenient_record(self, rec: _LenientRecord, state: dict, batch: _Batch) -> None:
        raise NotImplementedError(f"{self.format} files are never read line by line")

    def _read_body(self, rec: Any, expected: int, ident: str, pos: int, batch: _Batch) -> bytes | None:
        """The record's payload, or None after quarantining it (truncated, too large)."""
        body = rec.reader.read(self.max_doc_bytes + 1)
        if len(body) > self.max_doc_bytes:
            total = len(body) + rec.reader.consume()
            reason = "truncated_record" if total < expected else "doc_too_large"
            batch.quarantine.add(pos, reason, ident, body)
            return None
        if len(body) < expected:
            batch.quarantine.add(pos, "truncated_record", ident, body)
            return None
        return body

    def _skip(self, rec: Any, expected: int, ident: str, pos: int, batch: _Batch, reason: str) -> None:
        """Drop a record with ``reason`` (after checking that it is whole)."""
        n = rec.reader.consume()
        if n < expected:
            batch.quarantine.add(pos, "truncated_record", ident, f"{n} of {expected} bytes")
        else:
            batch.drop(ident, reason, n)


class WarcReader(_ArchiveReader):
    """WARC files: HTML responses become documents (``is_html``), the other records are dropped."""

    format = "warc"
    default_source = "warc"
    doc_type = "response"
    html = True

    def _record(self, rec: Any, state: dict, batch: _Batch) -> None:
        begun = self._begin(rec, state, batch)
        if begun is None:
            return
        pos, ident, expected = begun
        if not rec.is_http:
            self._skip(rec, expected, ident, pos, batch, "warc:not_http")
            return
        rec.parse_http(quirks_mode=True)
        http = rec.http_headers
        status = http.status_code
        expected = rec.content_length  # now the payload after the HTTP header
        if status is None:
            rec.reader.consume()
            batch.quarantine.add(pos, "malformed_http_header", ident, http.status_line or _header_text(http))
            return
        if not 200 <= status < 300:
            self._skip(rec, expected, ident, pos, batch, f"warc:http_status:{status}")
            return
        mime = (rec.http_content_type or rec.headers.get("WARC-Identified-Payload-Type") or "").strip().lower()
        if mime not in HTML_TYPES:
            self._skip(rec, expected, ident, pos, batch, f"warc:not_html:{mime.split(';')[0] or 'unknown'}")
            return
        body = self._read_body(rec, expected, ident, pos, batch)
        if body is None:
            return
        try:
            if "chunked" in (http.get("Transfer-Encoding") or "").lower():
                body = decode_chunked(body)
            body, encoding = decode_content_encoding(body, http.get("Content-Encoding"))
            decoded = decode_html(body, rec.http_charset)
        except UndecodableBody as exc:
            batch.quarantine.add(pos, exc.reason, ident, body)
            return
        if not decoded.text.strip():
            batch.drop(ident, "warc:empty_body", len(body))
            return
        meta: dict[str, Any] = {
            "warc_record_id": rec.headers.get("WARC-Record-ID"),
            "warc_date": rec.headers.get("WARC-Date"),
            "content_type": mime,
            "http_status": status,
            "charset": decoded.charset,
            "charset_source": decoded.source,
            "payload_digest": rec.headers.get("WARC-Payload-Digest"),
        }
        if rec.http_charset and decoded.charset != charset_name(rec.http_charset):
            meta["declared_charset"] = rec.http_charset
        if decoded.replaced:
            meta["replaced_chars"] = decoded.replaced
        if encoding:
            meta["content_encoding"] = encoding
        if rec.headers.get("WARC-Truncated"):
            meta["warc_truncated"] = rec.headers.get("WARC-Truncated")
        batch.add_doc(ident, decoded.text, _strip(rec.headers.get("WARC-Target-URI")), meta)


class WetReader(_ArchiveReader):
    """WET files (Common Crawl's text conversions): ``conversion`` records become documents."""

    format = "wet"
    default_source = "wet"
    doc_type = "conversion"
    not_doc_reason = "wet:not_conversion"
    html = False

    def _record(self, rec: Any, state: dict, batch: _Batch) -> None:
        begun = self._begin(rec, state, batch)
        if begun is None:
            return
        pos, ident, expected = begun
        body = self._read_body(rec, expected, ident, pos, batch)
        if body is not None:
            self._text_doc(ident, body, pos, rec.headers.get, batch)

    def _lenient_record(self, rec: _LenientRecord, state: dict, batch: _Batch) -> None:
        rid = rec.headers.get("WARC-Record-ID")
        if not rid and not rec.headers.get("WARC-Type"):
            batch.quarantine.add(rec.pos, "malformed_warc_header", None, rec.raw_header)
            return
        ident = self._ident(rid, rec.pos, state)
        kind = (rec.headers.get("WARC-Type") or "unknown").lower()
        if kind != "conversion":
            batch.drop(ident, f"wet:not_conversion:{kind}", len(rec.body))
        elif len(rec.body) > self.max_doc_bytes:
            batch.quarantine.add(rec.pos, "doc_too_large", ident, rec.body)
        else:
            self._text_doc(ident, rec.body, rec.pos, rec.headers.get, batch)

    def _text_doc(self, ident: str, body: bytes, pos: int, header: Any, batch: _Batch) -> None:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            batch.quarantine.add(pos, "invalid_utf8", ident, body)
            return
        text = text.strip("\r\n")
        if not text.strip():
            batch.drop(ident, "wet:empty_body", len(body))
            return
        meta: dict[str, Any] = {
            "warc_record_id": header("WARC-Record-ID"),
            "warc_date": header("WARC-Date"),
            "content_type": header("Content-Type"),
            "refers_to": header("WARC-Refers-To"),
            "block_digest": header("WARC-Block-Digest"),
        }
        if header("WARC-Identified-Content-Language"):
            meta["content_language"] = header("WARC-Identified-Content-Language")
        batch.add_doc(ident, text, _strip(header("WARC-Target-URI")), meta)


# -- the line-based path for WET files with bare-LF headers ------------------------------------


class _Replay:
    """A stream whose first bytes were already read (to sniff the format)."""

    def __init__(self, first: bytes, rest: _ChunkReader) -> None:
        self._first = first
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if self._first:
            if 0 <= size < len(self._first):
                out, self._first = self._first[:size], self._first[size:]
                return out
            out, self._first = self._first, b""
            more = self._rest.read(-1 if size < 0 else size - len(out))
            return out + more
        return self._rest.read(size)

    def tell(self) -> int:
        return self._rest.tell() - len(self._first)

    def close(self) -> None:
        pass


class _LenientRecord:
    __slots__ = ("pos", "headers", "raw_header", "body")

    def __init__(self, pos: int, headers: dict[str, str], raw_header: bytes, body: bytes) -> None:
        self.pos, self.headers, self.raw_header, self.body = pos, headers, raw_header, body


def _lenient_records(stream: Any) -> Iterator[_LenientRecord]:
    """Records of a WET file read by lines: a ``WARC/1.x`` line at the start of the file or after a
    blank line opens a record, its header runs to the first blank line, its body to the next record
    (trailing blank lines removed). ``Content-Length`` is not trusted. The file is read whole: this
    path is for small hand-made files (a real crawl's WET files have CRLF headers)."""
    data = stream.read(-1)
    lines = data.split(b"\n")
    pos = 0
    starts: list[tuple[int, int]] = []  # (line index, byte offset) of record starts
    prev_blank = True
    for i, line in enumerate(lines):
        if prev_blank and line.rstrip(b"\r") in (b"WARC/1.0", b"WARC/1.1", b"WARC/0.18"):
            starts.append((i, pos))
        prev_blank = not line.rstrip(b"\r")
        pos += len(line) + 1
    for k, (i, offset) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else len(lines)
        block = [ln.rstrip(b"\r") for ln in lines[i + 1 : end]]
        try:
            blank = block.index(b"")
        except ValueError:
            blank = len(block)
        headers: dict[str, str] = {}
        for ln in block[:blank]:
            key, sep, value = ln.decode("utf-8", "replace").partition(":")
            if sep:
                headers.setdefault(key.strip(), value.strip())
        body = block[blank + 1 :]
        while body and not body[-1]:
            body.pop()
        yield _LenientRecord(offset, headers, b"\n".join(block[:blank]), b"\n".join(body))


def _strip(rid: str | None) -> str | None:
    if not rid:
        return None
    rid = rid.strip()
    return rid[1:-1] if rid.startswith("<") and rid.endswith(">") else rid


__all__ = ["HTML_COLUMN", "HTML_TYPES", "WARC_REASONS", "WarcReader", "WetReader"]
