"""Reader contract: one input file in, bounded Arrow batches of documents out.

``Reader.read(path)`` yields ``(docs, quarantine)`` pairs: ``docs`` is a table in
``DOC_SCHEMA`` of at most ``batch_size`` rows, ``quarantine`` a table in
``QUARANTINE_SCHEMA`` for the records of that stretch of the file that could not
become documents (malformed JSON, invalid UTF-8, missing / null / non-string
text, a document over ``max_doc_bytes``, a truncated compressed stream, a parquet
file with the wrong schema, an empty file). Nothing is silently skipped: every
input record ends up in exactly one of the two tables, so the runner can count
``in == docs + quarantined`` for the read stage. A format whose files also hold well-formed
records that are not documents (WARC: requests, metadata, non-HTML responses) reports them
through ``read_with_dropped``, and the read stage counts ``in == docs + dropped + quarantined``.

Subclasses implement only the format; the base class owns batching and limits.

Quarantine reasons (stable strings, see ``REASONS``):

* ``malformed_json``   a line that is not valid JSON, or valid JSON but not an object
* ``invalid_utf8``     a line whose bytes are not UTF-8 (or whose text holds a lone
  surrogate escape, which cannot be stored as UTF-8)
* ``truncated_stream`` a gzip / zstd stream cut short; the records before the cut are
  kept and this record holds the partial last line (possibly empty)
* ``corrupt_stream``   a compressed stream that fails mid-way for another reason (bad
  CRC, corrupt block); the records before the damage are kept
* ``missing_text`` / ``null_text`` / ``non_string_text``  the text field is absent,
  null, or not a string
* ``doc_too_large``    text over ``max_doc_bytes`` UTF-8 bytes (or a line so long that it
  cannot hold a document under the limit: it is skipped without being buffered)
* ``wrong_schema``     a parquet file without a usable text column: one record per file
* ``empty_file``       a file with no records at all: one record per file
* ``unreadable_file``  the file cannot be opened, is not the compression it claims,
  or is not a parquet file; for a parquet row group that fails to decode, one
  record per row of that group
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import IO, Any

import pyarrow as pa

from curation.schema import DROPPED_SCHEMA, QUARANTINE_SCHEMA

DEFAULT_BATCH_SIZE = 2048
DEFAULT_MAX_DOC_BYTES = 8 * 1024 * 1024  # 8 MiB of UTF-8 text
RAW_SNIPPET_BYTES = 4096  # quarantine keeps at most this many raw bytes per record
READ_STAGE = "read"

REASONS = (
    "malformed_json",
    "invalid_utf8",
    "truncated_stream",
    "corrupt_stream",
    "missing_text",
    "null_text",
    "non_string_text",
    "doc_too_large",
    "wrong_schema",
    "empty_file",
    "unreadable_file",
)


class Reader:
    """Base class. ``source`` names the corpus in the ``source`` column."""

    format: str = "base"
    default_source: str = "unknown"

    def __init__(
        self,
        source: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES,
        id_parents: int = 0,
    ) -> None:
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        if max_doc_bytes <= 0:
            raise ValueError("max_doc_bytes must be positive")
        if id_parents < 0:
            raise ValueError("id_parents must be >= 0")
        self.source = source or self.default_source
        self.batch_size = batch_size
        self.max_doc_bytes = max_doc_bytes
        self.id_parents = id_parents

    def read(self, path: str) -> Iterator[tuple[pa.Table, pa.Table]]:
        raise NotImplementedError

    def read_with_dropped(self, path: str) -> Iterator[tuple[pa.Table, pa.Table, pa.Table]]:
        """``(docs, quarantine, dropped)``: ``dropped`` (``DROPPED_SCHEMA``) holds well-formed records
        that are not documents (a WARC file's request and metadata records, its non-HTML responses),
        each with a reason; the runner counts them as dropped by the read stage. Formats without such
        records drop nothing."""
        for docs, quarantine in self.read(path):
            yield docs, quarantine, DROPPED_SCHEMA.empty_table()

    def config(self) -> dict:
        return {k: v for k, v in sorted(vars(self).items()) if not k.startswith("_")} | {"format": self.format}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "format")
        return f"{type(self).__name__}({args})"

    # helpers shared by the formats ------------------------------------------------

    def id_prefix(self, path: str) -> str:
        """Prefix of generated ids: ``<source>/<file basename>/`` (the row index follows).

        ``id_parents=k`` puts the file's ``k`` nearest folder names before the basename
        (``c4/en/c4-train.00000-of-01024.json.gz/7``), for corpora that reuse file names
        in different folders; ids never depend on where the corpus is mounted."""
        bare = path.split("?", 1)[0].split("://", 1)[-1].replace("\\", "/")
        parts = [p for p in bare.split("/") if p]
        name = "/".join(parts[-1 - self.id_parents :]) if parts else path
        return f"{self.source}/{name}/"


def file_basename(path: str) -> str:
    return os.path.basename(path.rstrip("/")) or path


def open_binary(path: str) -> IO[bytes]:
    """Open a local path or any fsspec URL for binary reading (caller closes it)."""
    if "://" not in path:
        return open(path, "rb", buffering=0)
    if path.startswith("file://"):
        return open(path[len("file://"):], "rb", buffering=0)
    import fsspec

    return fsspec.open(path, "rb").open()


class QuarantineBuffer:
    """Collects quarantine records of one file; ``take()`` returns them as a table and clears."""

    __slots__ = ("file", "source", "stage", "_pos", "_reason", "_id", "_raw")

    def __init__(self, file: str, source: str, stage: str = READ_STAGE) -> None:
        self.file = file
        self.source = source
        self.stage = stage
        self._pos: list[int] = []
        self._reason: list[str] = []
        self._id: list[str | None] = []
        self._raw: list[bytes | None] = []

    def __len__(self) -> int:
        return len(self._pos)

    def add(self, position: int, reason: str, id: str | None, raw: Any = None) -> None:
        self._pos.append(position)
        self._reason.append(reason)
        self._id.append(id)
        self._raw.append(snippet(raw))

    def take(self) -> pa.Table:
        n = len(self._pos)
        if n == 0:
            return QUARANTINE_SCHEMA.empty_table()
        table = pa.table(
            {
                "file": pa.array([self.file] * n, pa.string()),
                "position": pa.array(self._pos, pa.int64()),
                "reason": pa.array(self._reason, pa.string()),
                "stage": pa.array([self.stage] * n, pa.string()),
                "source": pa.array([self.source] * n, pa.string()),
                "id": pa.array(self._id, pa.string()),
                "raw": pa.array(self._raw, pa.large_binary()),
            },
            schema=QUARANTINE_SCHEMA,
        )
        self._pos, self._reason, self._id, self._raw = [], [], [], []
        return table


def snippet(raw: Any) -> bytes | None:
    """At most ``RAW_SNIPPET_BYTES`` bytes of a raw record (bytes, str or anything printable)."""
    if raw is None:
        return None
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return bytes(raw[:RAW_SNIPPET_BYTES])
    if not isinstance(raw, str):
        raw = repr(raw)
    return raw[:RAW_SNIPPET_BYTES].encode("utf-8", "backslashreplace")[:RAW_SNIPPET_BYTES]
