"""The document schema every reader produces and every stage consumes.

See DESIGN.md: ``id`` is stable across runs, ``text`` is valid UTF-8, ``metadata``
holds the source's remaining fields as JSON. Stages may append columns
(``lang``, ``lang_score``, ``quality_score``...) but never remove these five.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

DOC_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.large_string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=True),
        pa.field("metadata", pa.string(), nullable=True),
    ]
)
DOC_COLUMNS = tuple(DOC_SCHEMA.names)

# Schema of the records a stage or reader drops (one row per dropped document).
DROPPED_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("nbytes", pa.int64()),
    ]
)

# Schema of quarantine records: input that could not become a valid document.
QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("file", pa.string()),
        pa.field("position", pa.int64()),  # line number, row index or byte offset
        pa.field("reason", pa.string()),
        pa.field("stage", pa.string()),
        pa.field("source", pa.string()),
        pa.field("id", pa.string()),
        pa.field("raw", pa.large_binary()),  # the raw bytes or record (truncated)
    ]
)


def empty_docs(schema: pa.Schema = DOC_SCHEMA) -> pa.Table:
    return schema.empty_table()


def docs_table(
    ids: list[str],
    texts: list[str],
    source: str | list[str],
    urls: list[str | None] | None = None,
    metadata: list[str | None] | None = None,
) -> pa.Table:
    """Build a document table from Python lists (tests, generators, readers)."""
    n = len(ids)
    sources = [source] * n if isinstance(source, str) else source
    return pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "text": pa.array(texts, pa.large_string()),
            "source": pa.array(sources, pa.string()),
            "url": pa.array(urls if urls is not None else [None] * n, pa.string()),
            "metadata": pa.array(metadata if metadata is not None else [None] * n, pa.string()),
        },
        schema=DOC_SCHEMA,
    )


def text_nbytes(table: pa.Table) -> pa.Array:
    """UTF-8 byte length of every document's text (int64)."""
    col = table.column("text")
    # per chunk: combining the chunks first would copy every text
    lengths = pc.binary_length(col)
    return (lengths.combine_chunks() if isinstance(lengths, pa.ChunkedArray) else lengths).cast(pa.int64())


def check_doc_table(table: pa.Table) -> None:
    """Raise ValueError unless ``table`` carries the document columns with their types."""
    for field in DOC_SCHEMA:
        if field.name not in table.column_names:
            raise ValueError(f"document table lacks column {field.name!r}")
        got = table.schema.field(field.name).type
        if got != field.type:
            raise ValueError(f"column {field.name!r} has type {got}, expected {field.type}")
