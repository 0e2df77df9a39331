"""HTTP payloads to text: undo a ``Content-Encoding``, then decode the charset.

Charset order (the first that decodes the whole payload without an error wins):

0. a byte-order mark (UTF-8 / UTF-16), which outranks every label as in browsers;
1. the ``charset`` of the HTTP ``Content-Type`` header;
2. the page's own ``<meta charset>`` / ``<meta http-equiv="Content-Type">`` tag (in its first 1,024
   bytes), else resiliparse's byte-level detector (uchardet), which reads the whole payload;
3. the stated fallback, UTF-8 then windows-1252 (the web's most common mislabelled pair).

Every label goes through the WHATWG label table (``resiliparse.parse.encoding.map_encoding_to_html5``:
``iso-8859-1`` and ``ascii`` mean windows-1252, ``gb2312`` means GBK, as browsers read them); a label
that table does not know is skipped. When no candidate decodes cleanly, the first one is applied with
replacement characters if they stay under ``MAX_REPLACED`` of the text (a page with a few stray bytes
keeps its text); otherwise the payload is *undecodable*. A payload with NUL bytes in its first 4 KiB
is binary mislabelled as HTML and undecodable too.

resiliparse's ``bytes_to_str`` does a similar chain but does not say which charset it used, which
goes into the document's metadata here (``charset``, and ``declared_charset`` when the header named
another one).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

MAX_REPLACED = 0.001  # at most 0.1% U+FFFD characters in a text decoded with replacement
FALLBACK_CHARSETS = ("utf-8", "windows-1252")
_SNIFF = 4096


class UndecodableBody(ValueError):
    """The payload cannot be turned into text; ``reason`` is a stable quarantine reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class Decoded:
    text: str
    charset: str  # the WHATWG name of the charset that decoded it
    source: str  # "bom", "http", "meta_or_detected" or "fallback"
    replaced: int = 0  # U+FFFD characters introduced by the decode


def _html5(label: str | None) -> str | None:
    if not label:
        return None
    from resiliparse.parse.encoding import map_encoding_to_html5

    return map_encoding_to_html5(label.strip().strip("\"'"), fallback_utf8=False)


def charset_name(label: str | None) -> str | None:
    """The Python codec name of a charset label by the WHATWG table (None when unknown)."""
    return _html5(label)


_HEX = frozenset(b"0123456789abcdefABCDEF")


def decode_chunked(payload: bytes) -> bytes:
    """Undo ``Transfer-Encoding: chunked`` (archives written by wget keep it).

    A payload that does not start with a chunk-size line is returned as it is (the header lies);
    a chunk stream cut short or malformed raises ``UndecodableBody("bad_content_encoding")``.
    resiliparse's ``iterate_http_chunks`` was not used: it returns an empty or partial body
    without an error on such input.
    """
    first = payload.split(b"\r\n", 1)[0].split(b";", 1)[0].strip()
    if not first or not set(first) <= _HEX or len(first) > 16:
        return payload
    out = []
    pos = 0
    while True:
        eol = payload.find(b"\r\n", pos)
        if eol < 0:
            raise UndecodableBody("bad_content_encoding", f"chunked: no chunk-size line at byte {pos}")
        size_text = payload[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError as exc:
            raise UndecodableBody("bad_content_encoding", f"chunked: bad chunk size {size_text[:20]!r}") from exc
        pos = eol + 2
        if size == 0:
            return b"".join(out)
        if pos + size > len(payload):
            raise UndecodableBody("bad_content_encoding", f"chunked: chunk of {size} bytes cut at byte {len(payload)}")
        out.append(payload[pos : pos + size])
        pos += size
        if payload[pos : pos + 2] == b"\r\n":
            pos += 2


def decode_content_encoding(payload: bytes, encoding: str | None) -> tuple[bytes, str | None]:
    """Undo ``Content-Encoding`` (gzip, deflate, br; a list is undone right to left).

    Returns ``(bytes, applied)``: ``applied`` names the encodings undone, ``None`` when nothing was.
    A header that claims an encoding the payload visibly does not have (ClueWeb09 keeps
    ``Content-Encoding: gzip`` over plain bodies; Common Crawl renames the header once it decoded)
    is ignored. Raises ``UndecodableBody`` for a payload that is in the encoding but corrupt, or in
    one this build cannot undo.
    """
    if not encoding:
        return payload, None
    done = []
    for enc in reversed([e.strip().lower() for e in encoding.split(",") if e.strip()]):
        if enc in ("identity", "none", "utf-8", "utf8", "binary"):
            continue
        if enc in ("gzip", "x-gzip"):
            if not payload.startswith(b"\x1f\x8b"):
                continue  # the header lies: the body is not gzip
            try:
                payload = zlib.decompress(payload, wbits=47)
            except zlib.error as exc:
                raise UndecodableBody("bad_content_encoding", f"gzip: {exc}") from exc
        elif enc == "deflate":
            try:
                payload = zlib.decompress(payload)  # zlib-wrapped, as the standard says
            except zlib.error:
                try:
                    payload = zlib.decompress(payload, wbits=-15)  # raw deflate, as many servers send
                except zlib.error:
                    continue  # not deflate at all: keep the body as it is
        elif enc == "br":
            import io

            from fastwarc.stream_io import BrotliReader

            try:
                payload = BrotliReader(io.BytesIO(payload)).read()
            except Exception as exc:  # noqa: BLE001 - the reader's error type is not part of its API
                raise UndecodableBody("bad_content_encoding", f"br: {exc}") from exc
        else:
            raise UndecodableBody("bad_content_encoding", f"unsupported Content-Encoding {enc!r}")
        done.append(enc)
    return payload, (",".join(done) or None)


def decode_html(payload: bytes, http_charset: str | None) -> Decoded:
    """Text of an HTML payload, by the charset order of the module docstring."""
    if payload.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        # a byte-order mark outranks every label (WHATWG "decode"); the codec strips it
        bom = "utf-8-sig" if payload[:1] == b"\xef" else "utf-16"
        try:
            return Decoded(payload.decode(bom), "utf-16" if bom == "utf-16" else "utf-8", "bom")
        except UnicodeDecodeError:
            pass
    head = payload[:_SNIFF]
    if b"\x00" in head and head.count(b"\x00") > len(head) // 100:
        raise UndecodableBody("undecodable_body", "NUL bytes: a binary payload labelled as HTML")
    from resiliparse.parse.encoding import detect_encoding

    def candidates():
        declared = _html5(http_charset)
        if declared:
            yield declared, "http"
        # the meta tag, else uchardet over the whole payload: only computed when the header fails
        sniffed = detect_encoding(payload, max_len=0, from_html_meta=True)
        if sniffed:
            yield sniffed, "meta_or_detected"
        for c in FALLBACK_CHARSETS:
            yield c, "fallback"

    tried: list[tuple[str, str]] = []
    for charset, source in candidates():
        if any(charset == c for c, _ in tried):
            continue
        tried.append((charset, source))
        try:
            return Decoded(payload.decode(charset), charset, source)
        except (UnicodeDecodeError, LookupError):
            continue
    charset, source = tried[0]
    try:
        text = payload.decode(charset, errors="replace")
    except LookupError:
        charset, source = "utf-8", "fallback"
        text = payload.decode(charset, errors="replace")
    replaced = text.count("\ufffd")
    if replaced > MAX_REPLACED * max(len(text), 1):
        raise UndecodableBody(
            "undecodable_body",
            f"no charset of {[c for c, _ in tried]} decodes it; {charset} leaves {replaced} bad characters "
            f"in {len(text)}",
        )
    return Decoded(text, charset, source, replaced)
