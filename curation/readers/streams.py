"""Incremental decompression and line splitting with bounded memory.

A file is read in fixed-size compressed chunks and decompressed with
``zlib.decompressobj`` (gzip, multi-member), which says whether the stream reached
its end, or ``zstandard``'s ``stream_reader`` (zstd, multi-frame) with ``ZstdFrames``
following the frame headers to say the same: a stream that stops before its end
marker is *truncated*, and the lines decoded before the cut are still delivered. The output is split into lines
chunk by chunk (so a consumer parses lines while they are still in the CPU
cache); a line longer than ``max_line_bytes`` is never buffered whole (only its
first bytes are kept for the quarantine record).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator
from typing import IO, Any

from curation.readers.base import RAW_SNIPPET_BYTES, open_binary

logger = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
COMPRESSIONS = ("infer", "none", "gzip", "zstd")
# Lines are handed on in pieces of about 256 KiB (PIECE_BYTES), whatever the size of the decompressed
# chunks: they are parsed while the piece is still in the CPU cache (4 MiB pieces made the split +
# parse about twice as slow on the reference machine).
READ_CHUNK = 1 << 20  # bytes per read of a compressed file
PLAIN_CHUNK = 1 << 18  # bytes per read of an uncompressed file
PIECE_BYTES = 1 << 18  # lines are handed on in pieces of at least this many bytes
ZSTD_OUT = 1 << 17  # decompressed bytes per zstd read
GZIP_MAX_OUT = 1 << 18  # cap on decompressed bytes per zlib call (also bounds gzip bombs)


def compression_from_path(path: str) -> str:
    p = path.lower().split("?", 1)[0]
    if p.endswith((".gz", ".gzip")):
        return "gzip"
    if p.endswith((".zst", ".zstd")):
        return "zstd"
    return "none"


class StreamError(Exception):
    """The byte stream failed; ``reason`` is a quarantine reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _salvage(d: Any, data: bytes) -> bytes:
    """Output of ``d`` on ``data`` up to the point where it fails (fed in small steps)."""
    out = []
    for k in range(0, len(data), 512):
        step = d.copy()
        try:
            out.append(d.decompress(data[k : k + 512]))
        except zlib.error:
            for b in range(k, min(k + 512, len(data))):  # byte by byte through the failing step
                try:
                    out.append(step.decompress(data[b : b + 1]))
                except zlib.error:
                    break
            break
    return b"".join(out)


def _gzip_chunks(f: IO[bytes], first: bytes) -> Iterator[bytes]:
    d = zlib.decompressobj(wbits=31)
    in_member = False
    produced = 0
    data = first
    while True:
        if not data:
            data = f.read(READ_CHUNK)
            if not data:
                break
        if not in_member:
            if not data.strip(b"\x00"):  # zero padding after the last member
                data = b""
                continue
            d = zlib.decompressobj(wbits=31)
            in_member = True
        backup = d.copy()  # to recover the output of a call that fails (a bad CRC at the end of a member)
        try:
            out = d.decompress(data, GZIP_MAX_OUT)
        except zlib.error as exc:
            good = _salvage(backup, data)
            if good:
                produced += len(good)
                yield good
            raise StreamError("unreadable_file" if produced == 0 else "corrupt_stream", f"gzip: {exc}") from exc
        if out:
            produced += len(out)
            yield out
        if d.eof:
            in_member = False
            data = d.unused_data
        else:
            data = d.unconsumed_tail
    if in_member:
        raise StreamError("truncated_stream", "gzip stream ended before its end-of-stream marker")


class ZstdFrames:
    """Follows the frame structure of a zstd stream through its compressed bytes (frame and block
    headers only, RFC 8878), to tell whether the stream ended on a frame boundary: zstandard's
    ``stream_reader`` (the fastest way to decompress) returns end-of-data on a cut stream too."""

    __slots__ = ("state", "need", "head", "checksum", "valid", "after_skip")

    def __init__(self) -> None:
        self.state = "magic"  # what the next ``need`` bytes are (``skip``: bytes to pass over)
        self.need = 4
        self.head = b""
        self.checksum = False
        self.valid = True
        self.after_skip = "magic"  # the state that follows a skip

    @property
    def at_frame_end(self) -> bool:
        return self.valid and self.state == "magic" and not self.head

    def feed(self, data: bytes) -> None:
        pos, n = 0, len(data)
        while pos < n and self.valid:
            if self.state == "skip":
                step = min(self.need, n - pos)
                pos += step
                self.need -= step
                if self.need == 0:
                    self.state, self.need = self.after_skip, 4 if self.after_skip == "magic" else 3
                continue
            take = min(self.need - len(self.head), n - pos)
            self.head += data[pos : pos + take]
            pos += take
            if len(self.head) == self.need:
                head, self.head = self.head, b""
                self._header(head)

    def _header(self, head: bytes) -> None:
        if self.state == "magic":
            magic = int.from_bytes(head, "little")
            if magic == 0xFD2FB528:
                self.state, self.need = "descriptor", 1
            elif magic & 0xFFFFFFF0 == 0x184D2A50:  # skippable frame: its size follows
                self.state, self.need = "skippable", 4
            else:
                self.valid = False  # not zstd: the decompressor reports it
        elif self.state == "skippable":
            self._skip(int.from_bytes(head, "little"), "magic")
        elif self.state == "descriptor":
            d = head[0]
            single = (d >> 5) & 1
            self.checksum = bool((d >> 2) & 1)
            fcs = (1 if single else 0, 2, 4, 8)[d >> 6]
            self._skip((0 if single else 1) + (0, 1, 2, 4)[d & 3] + fcs, "block")
        else:  # block header: last flag, type, size
            h = int.from_bytes(head, "little")
            kind, size = (h >> 1) & 3, h >> 3
            if kind == 3:
                self.valid = False
                return
            content = 1 if kind == 1 else size
            if h & 1:  # last block of the frame
                self._skip(content + (4 if self.checksum else 0), "magic")
            else:
                self._skip(content, "block")

    def _skip(self, count: int, then: str) -> None:
        self.after_skip = then
        if count:
            self.state, self.need = "skip", count
        else:
            self.state, self.need = then, 4 if then == "magic" else 3


class _Tee:
    """A file whose reads also feed a ``ZstdFrames`` (and that starts with bytes already read)."""

    def __init__(self, f: IO[bytes], first: bytes, frames: ZstdFrames) -> None:
        self.f, self.first, self.frames = f, first, frames

    def read(self, size: int = -1) -> bytes:
        if self.first:
            data, self.first = self.first, b""
        else:
            data = self.f.read(size)
        self.frames.feed(data)
        return data


def _zstd_chunks(f: IO[bytes], first: bytes) -> Iterator[bytes]:
    """zstd frames one after another, through zstandard's ``stream_reader``; ``ZstdFrames`` tells a
    stream cut inside a frame (truncated) from one that ended on a frame boundary."""
    import zstandard

    frames = ZstdFrames()
    reader = zstandard.ZstdDecompressor().stream_reader(_Tee(f, first, frames), read_size=READ_CHUNK,
                                                         read_across_frames=True)
    produced = 0
    while True:
        try:
            out = reader.read(ZSTD_OUT)
        except zstandard.ZstdError as exc:
            raise StreamError("unreadable_file" if produced == 0 else "corrupt_stream", f"zstd: {exc}") from exc
        if not out:
            break
        produced += len(out)
        yield out
    if not frames.at_frame_end:
        raise StreamError("truncated_stream", "zstd stream ended inside a frame")


def _plain_chunks(f: IO[bytes], first: bytes) -> Iterator[bytes]:
    if first:
        yield first
    while True:
        chunk = f.read(PLAIN_CHUNK)
        if not chunk:
            return
        yield chunk


def _range_chunks(f: IO[bytes], start: int, stop: int) -> Iterator[bytes]:
    """The bytes of the lines that start in ``[start, stop)`` of an uncompressed file: from the first
    line start at or after ``start`` to the newline that ends the line holding byte ``stop - 1``."""
    pos = 0  # absolute position of chunk[0]
    if start > 0:
        f.seek(start - 1)
        pos = start - 1
        while True:  # skip the end of the line that started before the range
            chunk = f.read(PLAIN_CHUNK)
            if not chunk:
                return
            nl = chunk.find(b"\n")
            if nl >= 0:
                pos += nl + 1
                chunk = chunk[nl + 1 :]
                break
            pos += len(chunk)
            if pos >= stop:
                return  # no line starts in the range
        if pos >= stop:
            return
        if not chunk:
            chunk = f.read(PLAIN_CHUNK)
    else:
        chunk = f.read(PLAIN_CHUNK)
    while chunk:
        last = stop - 1 - pos  # index of byte stop - 1 in this chunk (negative: already behind)
        if last < len(chunk):
            nl = chunk.find(b"\n", max(last, 0))
            if nl >= 0:
                yield chunk[: nl + 1]
                return
        yield chunk
        pos += len(chunk)
        chunk = f.read(PLAIN_CHUNK)


def iter_chunks(path: str, compression: str = "infer", byte_range: tuple[int, int] | None = None) -> Iterator[bytes]:
    """Decompressed bytes of ``path`` in chunks. Raises ``StreamError`` (with a quarantine reason).

    ``compression="infer"`` takes it from the extension; a file without a
    compression extension whose first bytes are a gzip / zstd magic number is
    decompressed anyway. A file that claims a compression it does not have is
    ``unreadable_file``; an empty file raises ``StreamError("empty_file")``.
    ``byte_range=(start, stop)`` gives only the lines that start in that range of an
    uncompressed file (ValueError for a compressed one: it has no byte ranges).
    """
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
    try:
        f = open_binary(path)
    except Exception as exc:  # noqa: BLE001 - any open failure is an unreadable shard
        raise StreamError("unreadable_file", f"cannot open: {exc}") from exc
    with f:
        if byte_range is not None:
            start, stop = byte_range
            head = f.read(4)
            comp = compression_from_path(path) if compression == "infer" else compression
            if comp != "none" or (compression == "infer" and head.startswith((GZIP_MAGIC, ZSTD_MAGIC))):
                raise ValueError(f"{path}: a compressed stream has no byte ranges; read it whole")
            if start == 0 and not head:
                raise StreamError("empty_file", "file has no bytes")
            f.seek(0)
            yield from _range_chunks(f, start, stop)
            return
        try:
            first = f.read(PLAIN_CHUNK)
        except Exception as exc:  # noqa: BLE001
            raise StreamError("unreadable_file", f"cannot read: {exc}") from exc
        if not first:
            raise StreamError("empty_file", "file has no bytes")
        comp = compression_from_path(path) if compression == "infer" else compression
        if comp == "none" and compression == "infer":
            if first.startswith(GZIP_MAGIC):
                comp = "gzip"
            elif first.startswith(ZSTD_MAGIC):
                comp = "zstd"
            if comp != "none":
                logger.info("%s has no compression extension but starts with a %s header", path, comp)
        if comp == "gzip":
            if not first.startswith(GZIP_MAGIC):
                raise StreamError("unreadable_file", "not a gzip stream (bad magic number)")
            yield from _gzip_chunks(f, first)
        elif comp == "zstd":
            if not first.startswith(ZSTD_MAGIC):
                raise StreamError("unreadable_file", "not a zstd stream (bad magic number)")
            yield from _zstd_chunks(f, first)
        else:
            yield from _plain_chunks(f, first)


def iter_line_chunks(chunks: Iterator[bytes], max_line_bytes: int, min_piece: int = PIECE_BYTES) -> Iterator[tuple]:
    """Lines of a chunk stream, in pieces of at least ``min_piece`` bytes (whatever the size of the
    chunks). Yields ``("lines", lines, big)``: complete lines (``bytes``, or ``memoryview``s of the
    chunks when lines are long), with ``None`` for a line over ``max_line_bytes`` and ``big`` the
    first bytes of those lines in order; ends with ``("error", exc, partial)`` when the stream fails."""
    carry: list[bytes] = []
    carry_len = 0
    skipping: bytes | None = None  # first bytes of an oversize line being skipped
    long_lines = True  # mean line length of the previous chunk >= 512 bytes
    out: list[bytes | None] = []
    big: list[bytes] = []
    size = 0  # bytes of the chunks behind ``out``
    try:
        for chunk in chunks:
            size += len(chunk)
            pos = 0
            if skipping is not None or carry:
                nl = chunk.find(b"\n")
                if nl < 0:
                    if skipping is None:
                        carry.append(chunk)
                        carry_len += len(chunk)
                        if carry_len > max_line_bytes:
                            skipping = b"".join(carry)[:RAW_SNIPPET_BYTES]
                            carry, carry_len = [], 0
                    continue
                if skipping is not None:
                    out.append(None)
                    big.append(skipping)
                    skipping = None
                else:
                    carry.append(chunk[:nl])
                    if carry_len + nl > max_line_bytes:
                        out.append(None)
                        big.append(b"".join(carry)[:RAW_SNIPPET_BYTES])
                    else:
                        out.append(b"".join(carry))
                    carry, carry_len = [], 0
                pos = nl + 1
            n0 = len(out)
            if long_lines:
                # long lines: zero-copy views of the chunk (the parse reads them while they are hot)
                mv = memoryview(chunk)
                find = chunk.find
                while True:
                    nl = find(b"\n", pos)
                    if nl < 0:
                        break
                    if nl - pos > max_line_bytes:
                        out.append(None)
                        big.append(chunk[pos : pos + RAW_SNIPPET_BYTES])
                    else:
                        out.append(mv[pos:nl])
                    pos = nl + 1
                tail = chunk[pos:]
            else:  # short lines: one C-level split is cheaper than a Python loop
                parts = (chunk[pos:] if pos else chunk).split(b"\n")
                tail = parts.pop()
                if len(chunk) > max_line_bytes and any(len(p) > max_line_bytes for p in parts):
                    for p in parts:
                        if len(p) > max_line_bytes:
                            out.append(None)
                            big.append(p[:RAW_SNIPPET_BYTES])
                        else:
                            out.append(p)
                else:
                    out.extend(parts)
            long_lines = (len(out) - n0) * 512 <= len(chunk)
            if tail:
                if len(tail) > max_line_bytes:
                    skipping = tail[:RAW_SNIPPET_BYTES]
                else:
                    carry.append(tail)
                    carry_len = len(tail)
            if out and size >= min_piece:
                yield ("lines", out, big)
                out, big, size = [], [], 0
    except StreamError as exc:
        if out:
            yield ("lines", out, big)
        partial = skipping if skipping is not None else b"".join(carry)[:RAW_SNIPPET_BYTES]
        yield ("error", exc, partial)
        return
    if skipping is not None:
        out.append(None)
        big.append(skipping)
    elif carry:
        out.append(b"".join(carry))
    if out:
        yield ("lines", out, big)
