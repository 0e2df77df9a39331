"""Parquet: the loop for parquet sources, the generic reader with a column mapping, and RefinedWeb.

Row group by row group, ``ParquetFile.iter_batches`` gives record batches of at most
``batch_size`` rows, so memory is bounded by one row group's column chunks (never the
whole file); a split (``splits.Split`` of kind ``row_groups``) reads a range of row
groups, its first row index taken from the footer. A format is a column mapping
(``ColumnMap``: text, id, url, metadata columns); everything is vectorised: the text
column is cast to ``large_string`` (binary is validated as UTF-8), null texts and texts
over ``max_doc_bytes`` are found with compute kernels (only when the batch has any),
generated ids are ``<source>/<file>/<row>``, and the remaining columns become the
``metadata`` JSON in one pass (``arrow_json.json_encode_object``).

A file without the text column (or with a text column that is not a string / binary
type) gives one ``wrong_schema`` quarantine record; a file that is not parquet one
``unreadable_file`` record; a row group that fails to decode one ``unreadable_file``
record per row of it (its row count is in the footer), and the next row groups are
still read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation.readers.arrow_json import json_encode, json_encode_object
from curation.readers.base import (
    RAW_SNIPPET_BYTES,
    QuarantineBuffer,
    Reader,
    ReaderOptions,
    constant_strings,
    generated_ids,
    local_path,
    open_binary,
)
from curation.readers.splits import ROW_GROUPS, Split
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


class ColumnMap(NamedTuple):
    """Which columns hold the text, the id and the url; ``metadata`` None: every other column."""

    text: str
    id: str | None
    url: str | None
    metadata: tuple[str, ...] | None


@dataclass(frozen=True, kw_only=True)
class ParquetOptions(ReaderOptions):
    """``use_threads``: let Arrow decode the columns of a batch in parallel."""

    use_threads: bool = True


@dataclass(frozen=True, kw_only=True)
class ParquetMappingOptions(ParquetOptions):
    """Column mapping of the generic reader; ``metadata_fields=None`` keeps every other column."""

    text_field: str = "text"
    id_field: str | None = "id"
    url_field: str | None = "url"
    metadata_fields: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.text_field:
            raise ValueError("text_field must be a column name")
        if self.metadata_fields is not None:
            object.__setattr__(self, "metadata_fields", tuple(self.metadata_fields))


class ParquetReader(Reader):
    """Generic parquet with a column mapping (``ParquetMappingOptions``)."""

    format = "parquet"
    default_source = "parquet"
    container = "parquet"
    Options: type[ParquetOptions] = ParquetMappingOptions
    options: ParquetOptions

    def columns(self) -> ColumnMap:
        """The format's column mapping."""
        o = self.options
        assert isinstance(o, ParquetMappingOptions)
        return ColumnMap(o.text_field, o.id_field, o.url_field, o.metadata_fields)

    def read(self, path: str, split: Split | None = None) -> Iterator[tuple[pa.Table, pa.Table]]:
        if split is not None and split.kind != ROW_GROUPS:
            raise ValueError(f"a parquet reader reads row-group splits, got {split.kind!r}")
        q = QuarantineBuffer(path, self.source)
        prefix = self.id_prefix(path)
        file_id = prefix.rstrip("/")
        starts_file = split is None or split.starts_file

        def file_record(reason: str, raw: object) -> Iterator[tuple[pa.Table, pa.Table]]:
            if starts_file:  # one record per file, from the split that starts it
                q.add(-1, reason, file_id, raw)
                yield DOC_SCHEMA.empty_table(), q.take()

        local = local_path(path)
        try:
            # a local file goes to Arrow's native reader (no Python file object in the read path)
            f = pa.OSFile(local, "rb") if local is not None else open_binary(path)
        except Exception as exc:  # noqa: BLE001 - an unreadable shard is quarantined, not raised
            yield from file_record("unreadable_file", f"cannot open: {exc}")
            return
        with f:
            try:
                pf = pq.ParquetFile(f)
                schema = pf.schema_arrow
            except Exception as exc:  # noqa: BLE001
                yield from file_record("empty_file" if _is_empty(f) else "unreadable_file", f"not parquet: {exc}")
                return
            cmap = self.columns()
            names = schema.names
            if cmap.text not in names or not _is_texty(schema.field(cmap.text).type):
                got = schema.field(cmap.text).type if cmap.text in names else "absent"
                yield from file_record("wrong_schema", f"text column {cmap.text!r}: {got}; schema: {schema}")
                return
            meta = pf.metadata
            if meta.num_rows == 0:
                yield from file_record("empty_file", b"")
                return
            id_col = cmap.id if cmap.id in names else None
            url_col = cmap.url if cmap.url in names else None
            taken = {cmap.text, id_col, url_col}
            wanted = names if cmap.metadata is None else cmap.metadata
            meta_cols = [n for n in wanted if n in names and n not in taken]
            read_cols = [c for c in names if c in taken or c in meta_cols]
            if len(read_cols) == len(names):
                read_cols = None  # every column: no projection
            first, stop = 0, meta.num_row_groups
            if split is not None:
                first, stop = split.start, min(split.stop, stop)
            row = sum(meta.row_group(rg).num_rows for rg in range(first))
            if split is not None and split.first_row is not None and split.first_row != row:
                raise ValueError(f"{path}: split {split.key()} says first_row {split.first_row}, the footer {row}")
            for rg in range(first, stop):
                rg_rows = meta.row_group(rg).num_rows
                rg_start = row
                try:
                    for batch in pf.iter_batches(batch_size=self.batch_size, row_groups=[rg], columns=read_cols,
                                                 use_threads=self.options.use_threads):
                        docs = self._convert(batch, row, prefix, cmap.text, id_col, url_col, meta_cols, q)
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
        text_col: str,
        id_col: str | None,
        url_col: str | None,
        meta_cols: list[str],
        q: QuarantineBuffer,
    ) -> pa.Table:
        n = batch.num_rows
        text = batch.column(text_col)
        if pa.types.is_dictionary(text.type):
            text = text.dictionary_decode()
        bad_utf8 = None
        if pa.types.is_binary(text.type) or pa.types.is_large_binary(text.type):
            text, bad_utf8 = _binary_to_text(text)
        elif text.type != _LS:
            text = text.cast(_LS)
        gen_ids = None
        if id_col is not None:
            own = batch.column(id_col)
            own = own.cast(pa.string()) if not pa.types.is_string(own.type) else own
            missing = pc.or_kleene(pc.is_null(own), pc.equal(own, ""))
            if pc.any(missing).as_py():
                gen_ids = generated_ids(prefix, np.arange(row0, row0 + n, dtype=np.int64))
                ids = pc.fill_null(pc.if_else(missing, gen_ids, own), gen_ids)
            else:
                ids = own
        else:
            ids = gen_ids = generated_ids(prefix, np.arange(row0, row0 + n, dtype=np.int64))
        if url_col is not None:
            url = batch.column(url_col)
            url = url.cast(pa.string()) if _is_texty(url.type) else json_encode(url).cast(pa.string())
        else:
            url = pa.nulls(n, pa.string())
        if meta_cols:
            meta = json_encode_object([batch.column(c) for c in meta_cols], meta_cols).cast(pa.string())
        else:
            meta = pa.nulls(n, pa.string())
        docs = pa.Table.from_arrays([ids, text, constant_strings(self.source, n), url, meta], schema=DOC_SCHEMA)
        if n == 0:
            return docs
        # quarantine: null text, invalid UTF-8 (binary columns), text over the size limit
        offsets = np.frombuffer(text.buffers()[1], np.int64, n + 1, text.offset * 8)
        too_big = int(np.diff(offsets).max()) > self.max_doc_bytes
        if not text.null_count and bad_utf8 is None and not too_big:
            return docs
        reasons = pc.if_else(pc.is_null(text), pa.scalar("null_text"), pa.scalar(None, pa.string()))
        if bad_utf8 is not None:
            reasons = pc.if_else(bad_utf8, pa.scalar("invalid_utf8"), reasons)
        big = pc.greater(pc.binary_length(text), self.max_doc_bytes)
        reasons = pc.if_else(pc.fill_null(big, False), pa.scalar("doc_too_large"), reasons)
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


class RefinedWebReader(ParquetReader):
    """Falcon RefinedWeb parquet: ``content``, ``url``, ``timestamp``, ``dump``, ``segment``, ``image_urls``.

    Penedo et al. 2023, "The RefinedWeb Dataset for Falcon LLM". No document ids in
    the release, so ids are ``refinedweb/<file>/<row>``; ``metadata`` holds
    ``timestamp``, ``dump``, ``segment`` and ``image_urls`` (and any other column).
    """

    format = "refinedweb"
    default_source = "refinedweb"
    Options = ParquetOptions

    def columns(self) -> ColumnMap:
        return ColumnMap("content", None, "url", None)


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


def _is_empty(f: object) -> bool:
    try:
        f.seek(0)  # type: ignore[attr-defined]
        return not f.read(1)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001
        return False
