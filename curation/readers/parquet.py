"""Parquet reader with a field mapping, and the RefinedWeb reader built on it.

Row group by row group, ``ParquetFile.iter_batches`` gives record batches of at
most ``batch_size`` rows, so memory is bounded by one row group's column chunks
(never the whole file). Everything is vectorised: the text column is cast to
``large_string`` (binary is validated as UTF-8), null texts and texts over
``max_doc_bytes`` are found with compute kernels, generated ids are
``<source>/<file>/<row>`` built by ``binary_join_element_wise``, and the remaining
columns become the ``metadata`` JSON through ``arrow_json.json_encode``.

A file without the text column (or with a text column that is not a string /
binary type) gives one ``wrong_schema`` quarantine record; a file that is not
parquet one ``unreadable_file`` record; a row group that fails to decode one
``unreadable_file`` record per row of it (its row count is in the footer), and
the next row groups are still read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation.readers.arrow_json import json_encode
from curation.readers.base import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_DOC_BYTES,
    RAW_SNIPPET_BYTES,
    QuarantineBuffer,
    Reader,
    open_binary,
)
from curation.schema import DOC_SCHEMA

logger = logging.getLogger(__name__)

_LS = pa.large_string()


def _is_texty(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_string_view(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
    )


class ParquetReader(Reader):
    """Generic parquet with a field mapping; ``metadata_fields=None`` keeps every other column."""

    format = "parquet"
    default_source = "parquet"

    def __init__(
        self,
        source: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES,
        text_field: str = "text",
        id_field: str | None = "id",
        url_field: str | None = "url",
        metadata_fields: list[str] | None = None,
        use_threads: bool = True,
        id_parents: int = 0,
    ) -> None:
        super().__init__(source=source, batch_size=batch_size, max_doc_bytes=max_doc_bytes, id_parents=id_parents)
        if not text_field:
            raise ValueError("text_field must be a column name")
        self.text_field = text_field
        self.id_field = id_field
        self.url_field = url_field
        self.metadata_fields = list(metadata_fields) if metadata_fields is not None else None
        self.use_threads = use_threads

    def read(self, path: str) -> Iterator[tuple[pa.Table, pa.Table]]:
        q = QuarantineBuffer(path, self.source)
        prefix = self.id_prefix(path)
        file_id = prefix.rstrip("/")
        try:
            # a local file goes to Arrow's native reader (no Python file object in the read path)
            f = pa.OSFile(_local(path), "rb") if _local(path) is not None else open_binary(path)
        except Exception as exc:  # noqa: BLE001 - an unreadable shard is quarantined, not raised
            q.add(-1, "unreadable_file", file_id, f"cannot open: {exc}")
            yield DOC_SCHEMA.empty_table(), q.take()
            return
        with f:
            try:
                pf = pq.ParquetFile(f)
                schema = pf.schema_arrow
            except Exception as exc:  # noqa: BLE001
                q.add(-1, "empty_file" if _is_empty(f) else "unreadable_file", file_id, f"not parquet: {exc}")
                yield DOC_SCHEMA.empty_table(), q.take()
                return
            names = schema.names
            if self.text_field not in names or not _is_texty(schema.field(self.text_field).type):
                got = schema.field(self.text_field).type if self.text_field in names else "absent"
                q.add(-1, "wrong_schema", file_id, f"text column {self.text_field!r}: {got}; schema: {schema}")
                yield DOC_SCHEMA.empty_table(), q.take()
                return
            if pf.metadata.num_rows == 0:
                q.add(-1, "empty_file", file_id, b"")
                yield DOC_SCHEMA.empty_table(), q.take()
                return
            id_col = self.id_field if self.id_field in names else None
            url_col = self.url_field if self.url_field in names else None
            taken = {self.text_field, id_col, url_col}
            if self.metadata_fields is None:
                meta_cols = [n for n in names if n not in taken]
            else:
                meta_cols = [n for n in self.metadata_fields if n in names and n not in taken]
            row = 0
            for rg in range(pf.num_row_groups):
                rg_rows = pf.metadata.row_group(rg).num_rows
                rg_start = row
                try:
                    for batch in pf.iter_batches(
                        batch_size=self.batch_size, row_groups=[rg], use_threads=self.use_threads
                    ):
                        docs = self._convert(batch, row, prefix, id_col, url_col, meta_cols, q)
                        row += batch.num_rows
                        yield docs, q.take()
                except Exception as exc:  # noqa: BLE001 - a corrupt row group loses only its rows
                    logger.warning("%s: row group %d unreadable: %s", path, rg, exc)
                    for r in range(row, rg_start + rg_rows):
                        q.add(r, "unreadable_file", prefix + str(r), f"row group {rg}: {exc}")
                    row = rg_start + rg_rows
                    yield DOC_SCHEMA.empty_table(), q.take()

    def _convert(
        self,
        batch: pa.RecordBatch,
        row0: int,
        prefix: str,
        id_col: str | None,
        url_col: str | None,
        meta_cols: list[str],
        q: QuarantineBuffer,
    ) -> pa.Table:
        n = batch.num_rows
        text = batch.column(self.text_field)
        if pa.types.is_dictionary(text.type):
            text = text.dictionary_decode()
        bad_utf8 = None
        if pa.types.is_binary(text.type) or pa.types.is_large_binary(text.type):
            text, bad_utf8 = _binary_to_text(text)
        else:
            text = text.cast(_LS)
        rows = pa.array(np.arange(row0, row0 + n, dtype=np.int64))
        gen_ids = pc.binary_join_element_wise(pa.scalar(prefix), rows.cast(pa.string()), pa.scalar(""))
        if id_col is not None:
            own = batch.column(id_col)
            own = own.cast(pa.string()) if not pa.types.is_string(own.type) else own
            ids = pc.if_else(pc.or_kleene(pc.is_null(own), pc.equal(own, "")), gen_ids, own)
            ids = pc.fill_null(ids, gen_ids)
        else:
            ids = gen_ids
        if url_col is not None:
            url = batch.column(url_col)
            url = url.cast(pa.string()) if pa.types.is_string(url.type) or _is_texty(url.type) else json_encode(
                url
            ).cast(pa.string())
        else:
            url = pa.nulls(n, pa.string())
        if meta_cols:
            meta = json_encode(pa.StructArray.from_arrays([batch.column(c) for c in meta_cols], meta_cols))
            meta = meta.cast(pa.string())
        else:
            meta = pa.nulls(n, pa.string())
        docs = pa.Table.from_arrays(
            [ids, text, pa.array([self.source] * n, pa.string()) if n else pa.array([], pa.string()), url, meta],
            schema=DOC_SCHEMA,
        )
        # quarantine: null text, invalid UTF-8 (binary columns), text over the size limit
        reasons = pc.if_else(pc.is_null(text), pa.scalar("null_text"), pa.scalar(None, pa.string()))
        if bad_utf8 is not None:
            reasons = pc.if_else(bad_utf8, pa.scalar("invalid_utf8"), reasons)
        too_big = pc.greater(pc.binary_length(text), self.max_doc_bytes)
        reasons = pc.if_else(pc.fill_null(too_big, False), pa.scalar("doc_too_large"), reasons)
        if reasons.null_count == n:
            return docs
        bad = pc.is_valid(reasons)
        raw_struct = pa.StructArray.from_arrays(
            [pc.utf8_slice_codeunits(text, 0, RAW_SNIPPET_BYTES), ids, url, meta], ["text", "id", "url", "metadata"]
        ).filter(bad)
        raws = json_encode(raw_struct).to_pylist()
        for i, reason, ident, raw in zip(
            pc.indices_nonzero(bad).to_pylist(), reasons.filter(bad).to_pylist(), ids.filter(bad).to_pylist(), raws
        ):
            q.add(row0 + i, reason, ident, raw)
        return docs.filter(pc.invert(bad))


def _binary_to_text(col: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    """Cast a binary column to large_string; rows that are not UTF-8 become null and are flagged."""
    try:
        return col.cast(pa.large_binary()).cast(_LS), None
    except pa.ArrowInvalid:
        vals = col.to_pylist()
        out, bad = [], []
        for v in vals:
            if v is None:
                out.append(None)
                bad.append(False)
                continue
            try:
                out.append(v.decode("utf-8"))
                bad.append(False)
            except UnicodeDecodeError:
                out.append("")
                bad.append(True)
        return pa.array(out, _LS), pa.array(bad, pa.bool_())


def _local(path: str) -> str | None:
    if "://" not in path:
        return path
    if path.startswith("file://"):
        return path[len("file://"):]
    return None


def _is_empty(f: object) -> bool:
    try:
        f.seek(0)  # type: ignore[attr-defined]
        return not f.read(1)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001
        return False


class RefinedWebReader(ParquetReader):
    """Falcon RefinedWeb parquet: ``content``, ``url``, ``timestamp``, ``dump``, ``segment``, ``image_urls``.

    Penedo et al. 2023, "The RefinedWeb Dataset for Falcon LLM". No document ids in
    the release, so ids are ``refinedweb/<file>/<row>``; ``metadata`` holds
    ``timestamp``, ``dump``, ``segment`` and ``image_urls`` (and any other column).
    """

    format = "refinedweb"
    default_source = "refinedweb"

    def __init__(
        self,
        source: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES,
        use_threads: bool = True,
        id_parents: int = 0,
    ) -> None:
        super().__init__(
            source=source,
            batch_size=batch_size,
            max_doc_bytes=max_doc_bytes,
            id_parents=id_parents,
            text_field="content",
            id_field=None,
            url_field="url",
            metadata_fields=None,
            use_threads=use_threads,
        )

