"""Reader contract: one input file (or one split of it) in, bounded Arrow batches of documents out.

``Reader.read(path, split=None)`` yields ``(docs, quarantine)`` pairs: ``docs`` is a
table in ``DOC_SCHEMA`` of at most ``batch_size`` rows, ``quarantine`` a table in
``QUARANTINE_SCHEMA`` for the records of that stretch of the file that could not
become documents (malformed JSON, invalid UTF-8, missing / null / non-string
text, a document over ``max_doc_bytes``, a truncated compressed stream, a parquet
file with the wrong schema, an empty file). Nothing is silently skipped: every
input record ends up in exactly one of the two tables, so the runner can count
``in == docs + quarantined`` for the read stage. A format whose files also hold well-formed
records that are not documents (WARC: requests, metadata, non-HTML responses) reports them
through ``read_with_dropped``, and the read stage counts ``in == docs + dropped + quarantined``.

A container family (JSON lines in ``jsonl.py``, parquet in ``parquet.py``) owns the
loop: opening, decompression, splits, batching, limits and quarantine. A format
(Pile, RedPajama, Dolma, RefinedWeb, the generic field mappings) only maps a batch
of raw records to the document columns. Options are one frozen dataclass per reader
(``Reader.Options``), so a recipe hash can take ``config()`` as it is.

``split`` (``curation.readers.splits.Split``) reads one work item of a large file:
a range of parquet row groups, or the JSON lines that start in a byte range. Ids and
quarantine positions are file-global, so the concatenated splits equal the whole read.
File-level records (``empty_file``, ``wrong_schema``, ``unreadable_file`` at
position -1) come from the split that starts the file only.

Quarantine reasons (stable strings, see ``REASONS``):

* ``malformed_json``   a line that is not valid JSON, or valid JSON but not an object, or an
  object nested deeper than the metadata encoder allows (255 levels)
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

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.schema import DROPPED_SCHEMA, QUARANTINE_SCHEMA
from curation.storage import printable

if TYPE_CHECKING:
    from curation.readers.splits import Split

DEFAULT_BATCH_SIZE = 2048
DEFAULT_MAX_DOC_BYTES = 8 * 1024 * 1024  # 8 MiB of UTF-8 text
RAW_SNIPPET_BYTES = 4096  # quarantine keeps at most this many raw bytes per record
READ_STAGE = "read"

_NO_QUARANTINE = QUARANTINE_SCHEMA.empty_table()  # tables are immutable: one empty table serves every batch

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


@dataclass(frozen=True, kw_only=True)
class ReaderOptions:
    """What every reader takes. ``source`` names the corpus in the ``source`` column (None: the
    format's own name); ``id_parents`` puts that many folder names before the file name in
    generated ids (see ``Reader.id_prefix``)."""

    source: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES
    id_parents: int = 0

    def __post_init__(self) -> None:
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if self.max_doc_bytes <= 0:
            raise ValueError(f"max_doc_bytes must be positive, got {self.max_doc_bytes}")
        if self.id_parents < 0:
            raise ValueError(f"id_parents must be >= 0, got {self.id_parents}")


class Reader:
    """Base class: options, ids and the ``read`` contract. ``Options`` is the reader's options dataclass.

    ``Reader(batch_size=512)`` or ``Reader(options)`` (then keywords replace single fields)."""

    format: str = "base"
    default_source: str = "unknown"
    Options: type[ReaderOptions] = ReaderOptions

    def __init__(self, options: ReaderOptions | None = None, /, **kw: Any) -> None:
        if options is None:
            names = {f.name for f in dataclasses.fields(self.Options)}
            unknown = sorted(set(kw) - names)
            if unknown:
                raise TypeError(
                    f"{type(self).__name__} has no option {', '.join(map(repr, unknown))}; "
                    f"its options are {', '.join(sorted(names))}"
                )
            options = self.Options(**kw)
        elif kw:
            options = dataclasses.replace(options, **kw)
        if type(options) is not self.Options:  # a wider options type would carry fields this reader ignores
            raise TypeError(f"{type(self).__name__} takes {self.Options.__name__}, got {type(options).__name__}")
        self.options = options

    @property
    def source(self) -> str:
        return self.options.source or self.default_source

    @property
    def batch_size(self) -> int:
        return self.options.batch_size

    @property
    def max_doc_bytes(self) -> int:
        return self.options.max_doc_bytes

    @property
    def id_parents(self) -> int:
        return self.options.id_parents

    def read(self, path: str, split: Split | None = None) -> Iterator[tuple[pa.Table, pa.Table]]:
        raise NotImplementedError

    def read_with_dropped(self, path: str, split: Split | None = None) -> Iterator[tuple[pa.Table, pa.Table, pa.Table]]:
        """``(docs, quarantine, dropped)``: ``dropped`` (``DROPPED_SCHEMA``) holds well-formed records
        that are not documents (a WARC file's request and metadata records, its non-HTML responses),
        each with a reason; the runner counts them as dropped by the read stage. Formats without such
        records drop nothing."""
        batches = self.read(path) if split is None else self.read(path, split)
        for docs, quarantine in batches:
            yield docs, quarantine, DROPPED_SCHEMA.empty_table()

    def config(self) -> dict:
        """The options (and any other public attribute) as a JSON-able dict, for recipe hashes."""
        cfg = dataclasses.asdict(self.options) | {"source": self.source}
        cfg |= {k: v for k, v in vars(self).items() if not k.startswith("_") and k != "options"}
        return dict(sorted(cfg.items())) | {"format": self.format}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "format")
        return f"{type(self).__name__}({args})"

    def id_prefix(self, path: str) -> str:
        """Prefix of generated ids: ``<source>/<file basename>/`` (the row index follows).

        ``id_parents=k`` puts the file's ``k`` nearest folder names before the basename
        (``c4/en/c4-train.00000-of-01024.json.gz/7``), for corpora that reuse file names
        in different folders; ids never depend on where the corpus is mounted. A file name that is not
        valid UTF-8 gives ``\\xNN`` escapes of its bytes (:func:`curation.storage.printable`)."""
        bare = path.split("?", 1)[0].split("://", 1)[-1].replace("\\", "/")
        parts = [printable(p) for p in bare.split("/") if p]
        name = "/".join(parts[-1 - self.id_parents :]) if parts else path
        return f"{self.source}/{name}/"


def generated_ids(prefix: str, rows: np.ndarray) -> pa.Array:
    """``prefix + str(row)`` for every row number (string): the ids of records without their own."""
    digits = pa.array(rows, pa.int64()).cast(pa.string())
    return pc.binary_join_element_wise(pa.scalar(prefix), digits, pa.scalar(""))


def constant_strings(value: str, n: int) -> pa.Array:
    """A string array of ``n`` copies of ``value``, built from buffers."""
    raw = value.encode()
    offsets = np.arange(0, (n + 1) * len(raw), len(raw), dtype=np.int32) if raw else np.zeros(n + 1, np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(raw * n))


def file_basename(path: str) -> str:
    return os.path.basename(path.rstrip("/")) or path


def local_path(path: str) -> str | None:
    """The local file system path of ``path`` (plain or ``file://``), or None for other URLs."""
    if "://" not in path:
        return path
    if path.startswith("file://"):
        return path[len("file://") :]
    return None


def open_binary(path: str) -> IO[bytes]:
    """Open a local path or any fsspec URL for binary reading (caller closes it)."""
    local = local_path(path)
    if local is not None:
        return open(local, "rb", buffering=0)
    import fsspec

    return fsspec.open(path, "rb").open()


class QuarantineBuffer:
    """Collects quarantine records of one file; ``take()`` returns them as a table and clears."""

    __slots__ = ("file", "source", "stage", "_pos", "_reason", "_id", "_raw")

    def __init__(self, file: str, source: str, stage: str = READ_STAGE) -> None:
        self.file = printable(file)
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

    def sort_from(self, start: int) -> None:
        """Put the records added since the buffer held ``start`` records in position order (a piece
        of a file is checked in passes; its records must come out in file order all the same)."""
        if len(self._pos) - start > 1:
            order = sorted(range(start, len(self._pos)), key=self._pos.__getitem__)
            for col in (self._pos, self._reason, self._id, self._raw):
                col[start:] = [col[i] for i in order]

    def take(self) -> pa.Table:
        n = len(self._pos)
        if n == 0:
            return _NO_QUARANTINE
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
