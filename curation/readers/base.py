"""Reader contract: one input file in, bounded Arrow batches of documents out.

``Reader.read(path)`` yields ``(docs, quarantine)`` pairs: ``docs`` is a table in
``DOC_SCHEMA`` of at most ``batch_size`` rows, ``quarantine`` a table in
``QUARANTINE_SCHEMA`` for the records of that stretch of the file that could not
become documents (malformed JSON, invalid UTF-8, missing / null / non-string
text, a document over ``max_doc_bytes``, a truncated compressed stream, a parquet
file with the wrong schema, an empty file). Nothing is silently skipped: every
input record ends up in exactly one of the two tables, so the runner can count
``in == docs + quarantined`` for the read stage.

Subclasses implement only the format; the base class owns batching and limits.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

DEFAULT_BATCH_SIZE = 2048
DEFAULT_MAX_DOC_BYTES = 8 * 1024 * 1024  # 8 MiB of UTF-8 text
RAW_SNIPPET_BYTES = 4096  # quarantine keeps at most this many raw bytes per record


class Reader:
    """Base class. ``source`` names the corpus in the ``source`` column."""

    format: str = "base"
    default_source: str = "unknown"

    def __init__(
        self,
        source: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES,
    ) -> None:
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        self.source = source or self.default_source
        self.batch_size = batch_size
        self.max_doc_bytes = max_doc_bytes

    def read(self, path: str) -> Iterator[tuple[pa.Table, pa.Table]]:
        raise NotImplementedError

    def config(self) -> dict:
        return {k: v for k, v in sorted(vars(self).items()) if not k.startswith("_")} | {"format": self.format}
