"""JSON lines (plain, gzip or zstd): the loop shared by the Pile / RedPajama / Dolma readers, and the
generic reader with a field mapping.

``JsonLinesReader`` owns everything but the format: the decompressed stream (or one byte
range of a plain file, ``splits.Split``) is split into lines (``streams.iter_line_chunks``:
zero-copy memoryviews when lines are long) handed on in pieces of about 256 KiB, parsed at
once while the piece is still in the CPU cache, with one ``orjson.loads`` per line (the
same work as a raw zstandard + orjson read). Only a piece that holds a bad line is parsed
line by line to find which lines are bad and why. The records of a piece go to the
format's one hook, ``fields(recs, state)``, which maps a list of records to the document
columns (list comprehensions, one ``orjson.dumps`` for all the metadata of the piece, see
``dumps_many``). The base turns the texts and the metadata into Arrow at once; those
conversions are also the checks: a text that is not a string, or metadata orjson could not
encode, makes them fail, and only then does the piece go record by record to find what
to quarantine and why. The pieces' columns are joined once per batch; generated ids
(``<source>/<file>/<line>``) are built then, from the line numbers.

Documents accumulate until the batch holds ``batch_size`` records or ``max_batch_bytes``
bytes of lines. Only a line longer than ``max_doc_bytes`` can hold a text over the limit
(decoding never grows a JSON string), so the texts' sizes are only looked at then.

Measured and not kept (``bench/runner.py``, CPU seconds): ``pyarrow.json.read_json`` as a
whole-piece parser (on one core it used more CPU than ``orjson.loads`` per line plus the
Arrow conversion of the texts, 15 ms against 11 ms for 8 MB of Pile records, and it cannot
reproduce orjson's metadata bytes: key order per record, number formatting); texts encoded
to UTF-8 and joined instead of converted by Arrow (no faster, more page faults); the texts
of a whole batch converted at once (the same CPU under load, more memory).

Blank lines are not records; they still count for line numbers, which are the positions
in generated ids and quarantine records (file-global, also in a byte-range split).
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, NamedTuple

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from curation.readers.base import (
    QuarantineBuffer,
    Reader,
    ReaderOptions,
    constant_strings,
    generated_ids,
    open_binary,
)
from curation.readers.splits import BYTES, Split
from curation.readers.streams import COMPRESSIONS, iter_chunks, iter_line_chunks
from curation.schema import DOC_SCHEMA

logger = logging.getLogger(__name__)

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()  # a field that is absent
_BOM = b"\xef\xbb\xbf"
_LS = pa.large_string()
DEFAULT_MAX_BATCH_BYTES = 64 << 20


@dataclass(frozen=True, kw_only=True)
class JsonLinesOptions(ReaderOptions):
    """``compression``: infer (from the extension and the magic bytes), none, gzip, zstd.
    ``max_batch_bytes``: a batch ends when its lines reach this many bytes."""

    compression: str = "infer"
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, got {self.compression!r}")
        if self.max_batch_bytes <= 0:
            raise ValueError(f"max_batch_bytes must be positive, got {self.max_batch_bytes}")


class Fields(NamedTuple):
    """What a format makes of a list of records (one entry per record, in order)."""

    texts: list  # the text values, as found (the base quarantines what is not a string)
    ids: list[str | None] | None  # own ids (None or "": generated); None: the format has no ids
    urls: list[str | None] | None  # None: no urls
    metas: list  # metadata JSON (``dumps_many``: bytes, None, or UNENCODABLE)


class JsonLinesReader(Reader):
    """The JSON-lines loop. A format implements ``fields`` (and ``file_state`` when it needs per-file
    state, e.g. a subset name from the path)."""

    container = "jsonl"
    Options: type[JsonLinesOptions] = JsonLinesOptions
    options: JsonLinesOptions

    def file_state(self, path: str) -> Any:
        """Per-file state handed to ``fields`` (None unless a format needs some)."""
        return None

    def fields(self, recs: list[dict], state: Any) -> Fields:
        """Map records (dicts, which may be changed in place) to the document columns."""
        raise NotImplementedError

    # -- the loop -----------------------------------------------------------------

    def read(self, path: str, split: Split | None = None) -> Iterator[tuple[pa.Table, pa.Table]]:
        if split is not None and split.kind != BYTES:
            raise ValueError(f"a JSON-lines reader reads byte-range splits, got {split.kind!r}")
        if split is not None and split.first_row is None:
            raise ValueError(f"split {split.key()} has no first_row; count the lines before it (count_records)")
        q = QuarantineBuffer(path, self.source)
        state = self.file_state(path)
        prefix = self.id_prefix(path)
        starts_file = split is None or split.starts_file
        # a line longer than this cannot hold a text under the limit (a JSON escape takes at
        # most 6 bytes per text byte): skip it without buffering it whole
        max_line = 6 * self.max_doc_bytes + (1 << 20)
        # a piece holds at most one carried line and one chunk: 32-bit offsets unless lines may be huge
        text_type = pa.string() if max_line + (16 << 20) < 2**31 else _LS
        acc = _Batch(text_type)
        lineno = 0 if split is None else split.first_row  # physical number of the next line
        seen = 0  # records so far (documents + quarantined)
        bs, max_bytes = self.batch_size, self.options.max_batch_bytes
        chunks = iter_chunks(path, self.options.compression, None if split is None else (split.start, split.stop))
        for item in iter_line_chunks(chunks, max_line):
            if item[0] == "error":
                _, exc, partial = item
                if exc.reason == "empty_file":
                    break
                pos = lineno if exc.reason in ("truncated_stream", "corrupt_stream") else -1
                if pos < 0 and not starts_file:
                    break  # a file-level record belongs to the split that starts the file
                logger.warning("%s: %s (line %d)", path, exc, pos)
                q.add(pos, exc.reason, prefix + str(pos) if pos >= 0 else prefix.rstrip("/"),
                      partial or exc.detail.encode())
                break
            _, lines, big = item
            oversize = {}
            if big:
                nums = [lineno + k for k, x in enumerate(lines) if x is None]
                oversize = dict(zip(nums, big))
            sizes = (len(x) if x is not None else 0 for x in lines) if big else map(len, lines)
            cum = list(accumulate(sizes))
            k = 0
            while k < len(lines):
                room = bs - acc.n - len(q)
                budget = max_bytes - acc.nbytes
                if room <= 0 or budget <= 0:
                    seen += acc.n + len(q)
                    yield acc.table(self.source, prefix), q.take()
                    acc = _Batch(text_type)
                    continue
                base = cum[k - 1] if k else 0
                m = max(1, min(room, bisect_right(cum, base + budget, k, min(len(lines), k + room)) - k))
                self._piece(lines[k : k + m], lineno + k, oversize, q, state, prefix, acc)
                acc.nbytes += cum[k + m - 1] - base
                k += m
            lineno += len(lines)
        if acc.n or len(q):
            seen += acc.n + len(q)
            yield acc.table(self.source, prefix), q.take()
        if seen == 0 and starts_file and (split is None or _rest_is_blank(path, split.stop)):
            q.add(-1, "empty_file", prefix.rstrip("/"), b"")
            yield DOC_SCHEMA.empty_table(), q.take()

    def _piece(
        self, lines: list, start: int, oversize: dict[int, bytes], q: QuarantineBuffer, state: Any, prefix: str,
        acc: _Batch,
    ) -> None:
        """Lines ``start``, ``start + 1``... into ``acc`` (documents) and ``q`` (the rest)."""
        loads = orjson.loads
        mark = len(q)
        try:
            recs = [loads(line) for line in lines]
            rows: Sequence[int] = range(start, start + len(lines))
            raws = lines
        except (orjson.JSONDecodeError, TypeError):  # TypeError: an oversize line (None)
            recs, rows, raws = _parse_lines(lines, start, oversize, q, prefix)
        if set(map(type, recs)) != _ONLY_DICT:
            recs, rows, raws = _objects_only(recs, rows, raws, q, prefix)
        if recs:
            self._documents(recs, rows, raws, q, state, prefix, acc)
        if len(q) > mark + 1:
            q.sort_from(mark)

    def _documents(self, recs: list[dict], rows: Sequence[int], raws: list, q: QuarantineBuffer, state: Any,
                   prefix: str, acc: _Batch) -> None:
        """The format's columns of ``recs``; what is not a document goes to ``q``. The Arrow conversions
        are the checks: a text that is not a string (or null) or metadata that could not be encoded make
        them fail, and the texts' byte lengths are in the offsets."""
        texts, ids, urls, metas = self.fields(recs, state)
        try:
            text = pa.array(texts, acc.text_type)
            # a decoded text is never longer than its line: only a long line needs the lengths
            good = not text.null_count and set(map(type, metas)) <= _META_TYPES and (
                max(map(len, raws)) <= self.max_doc_bytes or _max_length(text) <= self.max_doc_bytes)
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            good = False
        if not good:
            gen = ids if ids is not None else [None] * len(recs)
            keep = self._checked(texts, [i if i else prefix + str(n) for i, n in zip(gen, rows)], metas, rows,
                                 raws, q)
            text = pa.array([texts[k] for k in keep], acc.text_type)
            metas = [metas[k] for k in keep]
            rows = [rows[k] for k in keep]
            ids = None if ids is None else [ids[k] for k in keep]
            urls = None if urls is None else [urls[k] for k in keep]
        acc.add(text, ids, urls, metas, rows)

    def _checked(self, texts: list, ids: list, metas: list, rows: Sequence[int], raws: list,
                 q: QuarantineBuffer) -> list[int]:
        """Indices of the records that are documents; the others go to quarantine with their reason."""
        limit = self.max_doc_bytes
        keep = []
        for k, text in enumerate(texts):
            if type(text) is not str:
                reason = "missing_text" if text is MISSING else "null_text" if text is None else "non_string_text"
            elif len(text) * 4 > limit and len(text.encode("utf-8")) > limit:
                reason = "doc_too_large"
            elif metas[k] is UNENCODABLE:
                logger.warning("line %d: record nested too deeply to encode its metadata", rows[k])
                reason = "malformed_json"
            else:
                keep.append(k)
                continue
            q.add(rows[k], reason, ids[k], raws[k])
        return keep


def _max_length(arr: pa.Array) -> int:
    """The largest value length of a string / binary array (from its offsets)."""
    if len(arr) == 0:
        return 0
    width = 8 if pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type) else 4
    offsets = np.frombuffer(arr.buffers()[1], np.int64 if width == 8 else np.int32, len(arr) + 1, arr.offset * width)
    return int(np.diff(offsets).max())


def _parse_lines(lines: list, start: int, oversize: dict[int, bytes], q: QuarantineBuffer,
                 prefix: str) -> tuple[list, list[int], list]:
    """Parse line by line: the records with their line numbers and lines; bad lines go to ``q``."""
    loads = orjson.loads
    recs, rows, raws = [], [], []
    for k, line in enumerate(lines):
        n = start + k
        if line is None:
            q.add(n, "doc_too_large", prefix + str(n), oversize.get(n))
            continue
        line = bytes(line)
        try:
            rec = loads(line)
        except orjson.JSONDecodeError as exc:
            if not line.strip():
                continue  # a blank line is not a record
            if not line.startswith(_BOM):
                q.add(n, _bad_line_reason(line, exc), prefix + str(n), line)
                continue
            try:
                rec = loads(line[3:])
            except orjson.JSONDecodeError as exc2:
                q.add(n, _bad_line_reason(line, exc2), prefix + str(n), line)
                continue
        recs.append(rec)
        rows.append(n)
        raws.append(line)
    return recs, rows, raws


def _objects_only(recs: list, rows: Sequence[int], raws: list, q: QuarantineBuffer,
                  prefix: str) -> tuple[list, list[int], list]:
    """The records that are JSON objects; the others are quarantined as ``malformed_json``."""
    keep = []
    for k, r in enumerate(recs):
        if type(r) is dict:
            keep.append(k)
        else:
            q.add(rows[k], "malformed_json", prefix + str(rows[k]), raws[k])
    return [recs[k] for k in keep], [rows[k] for k in keep], [raws[k] for k in keep]


def _bad_line_reason(line: bytes, exc: Exception) -> str:
    """``invalid_utf8`` when the bytes (or an escaped lone surrogate) cannot be UTF-8, else ``malformed_json``."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8"
    return "invalid_utf8" if "surrogate" in str(exc) else "malformed_json"


def _rest_is_blank(path: str, pos: int) -> bool:
    """True when the file holds only whitespace from byte ``pos`` on (no record after a split)."""
    with open_binary(path) as f:
        f.seek(pos)
        while True:
            buf = f.read(1 << 16)
            if not buf:
                return True
            if buf.strip():
                return False


_ONLY_DICT = {dict}
_ONLY_STR = {str}
_META_TYPES = {bytes, type(None)}
_STR_OR_NONE = {str, type(None)}
UNENCODABLE: Any = type("Unencodable", (), {"__repr__": lambda self: "UNENCODABLE"})()
_SEP = orjson.Fragment(b"\x00") if hasattr(orjson, "Fragment") else None


def _dumps_one(o: Any) -> Any:
    if not o:
        return None
    try:
        return orjson.dumps(o)
    except orjson.JSONEncodeError:
        return UNENCODABLE


def dumps_many(objs: list) -> list:
    """``orjson.dumps(o) if o else None`` for every dict (or None), as UTF-8 bytes, with one ``orjson.dumps``
    call; ``UNENCODABLE`` for an object orjson cannot encode (nested deeper than 255 levels).

    The objects are serialised as one list with a NUL byte between them (a raw NUL never
    occurs in orjson's output: control characters in strings are escaped), then split.
    Falls back to one call per object on any encoding error (so errors and limits are
    exactly those of the per-object calls)."""
    n = len(objs)
    if n == 0:
        return []
    if _SEP is None or n == 1:
        return [_dumps_one(o) for o in objs]
    inter = [_SEP] * (2 * n - 1)
    inter[::2] = objs
    try:
        out = orjson.dumps(inter)[1:-1].split(b",\x00,")
    except orjson.JSONEncodeError:
        return [_dumps_one(o) for o in objs]
    if len(out) != n:  # cannot happen (no raw NUL in orjson output); stay exact anyway
        return [_dumps_one(o) for o in objs]
    if b"{}" in out or b"null" in out:
        return [p if o else None for p, o in zip(out, objs)]
    return out


class _Batch:
    """Columns of the documents of the batch being built. Texts become Arrow a piece at a time, while
    the strings are still in the CPU cache; ids are generated from the row numbers when the batch is
    built (``generated_ids``), except for the documents with ids of their own."""

    __slots__ = ("text_type", "n", "texts", "ids", "urls", "metas", "rows", "nbytes")

    def __init__(self, text_type: pa.DataType) -> None:
        self.text_type = text_type  # of the pieces' texts (widened to large_string per batch)
        self.n = 0
        self.texts: list[pa.Array] = []
        self.ids: list[str | None] | None = None  # None: no document has an id of its own (yet)
        self.urls: list[str | None] | None = None  # None: no urls (yet)
        self.metas: list[bytes | None] = []
        self.rows: list[Sequence[int]] = []
        self.nbytes = 0

    def add(self, text: pa.Array, ids: list | None, urls: list | None, metas: list, rows: Sequence[int]) -> None:
        n = len(text)
        if n == 0:
            return
        if ids is not None:
            if self.ids is None:
                self.ids = [None] * self.n
            self.ids += ids
        elif self.ids is not None:
            self.ids += [None] * n
        if urls is not None:
            if self.urls is None:
                self.urls = [None] * self.n
            self.urls += urls
        elif self.urls is not None:
            self.urls += [None] * n
        self.texts.append(text)
        self.metas += metas
        self.rows.append(rows)
        self.n += n

    def table(self, source: str, prefix: str) -> pa.Table:
        n = self.n
        ids = None
        if self.ids is not None:
            ids = pa.array(self.ids, pa.string())
            missing = not all(self.ids)
        if ids is None or missing:
            rows = np.concatenate([np.arange(r.start, r.stop) if type(r) is range else np.asarray(r, np.int64)
                                   for r in self.rows]) if n else np.empty(0, np.int64)
            gen = generated_ids(prefix, rows)
            ids = gen if ids is None else pc.if_else(pc.fill_null(pc.not_equal(ids, ""), False), ids, gen)
        return pa.Table.from_arrays(
            [
                ids,
                _concat(self.texts, self.text_type).cast(_LS),
                constant_strings(source, n),
                pa.array(self.urls, pa.string()) if self.urls is not None else pa.nulls(n, pa.string()),
                pa.array(self.metas, pa.binary()).view(pa.string()),  # orjson output: valid UTF-8
            ],
            schema=DOC_SCHEMA,
        )


def _concat(chunks: list[pa.Array], type: pa.DataType) -> pa.Array:
    if len(chunks) == 1:
        return chunks[0]
    return pa.concat_arrays(chunks) if chunks else pa.array([], type)


# -- the generic reader -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class JsonlOptions(JsonLinesOptions):
    """Field mapping of the generic reader: ``text_field`` (default ``text``), ``id_field`` (``id``;
    missing ids are generated), ``url_field`` (``url``); a dotted name (``meta.url``) reaches into a
    nested object. Every other field goes to ``metadata`` as JSON (null when nothing is left)."""

    text_field: str = "text"
    id_field: str | None = "id"
    url_field: str | None = "url"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.text_field:
            raise ValueError("text_field must be a field name")


class JsonlReader(JsonLinesReader):
    """Generic JSON lines with a field mapping (``JsonlOptions``)."""

    format = "jsonl"
    default_source = "jsonl"
    Options = JsonlOptions
    options: JsonlOptions

    def fields(self, recs: list[dict], state: Any) -> Fields:
        o = self.options
        texts = _pop_all(recs, o.text_field)
        ids = None
        if o.id_field:
            ids = _pop_all(recs, o.id_field, None)
            if not set(map(type, ids)) <= _STR_OR_NONE:
                ids = [id_str(i) for i in ids]
        urls = None
        if o.url_field:
            urls = _pop_all(recs, o.url_field, None)
            if not set(map(type, urls)) <= _STR_OR_NONE:
                for k, url in enumerate(urls):
                    if url is not None and type(url) is not str:  # keep odd values where they were
                        _put_path(recs[k], o.url_field, url)
                        urls[k] = None
        return Fields(texts, ids, urls, dumps_many(recs))


def id_str(ident: Any) -> str | None:
    """An id value as stored: strings as they are, objects as JSON, other values via ``str``."""
    if ident is None or type(ident) is str:
        return ident
    return orjson.dumps(ident).decode() if isinstance(ident, (dict, list)) else str(ident)


def _pop_all(recs: list[dict], field: str, missing: Any = MISSING) -> list:
    """Pop ``field`` (``a.b.c`` reaches into nested objects) from every record; ``missing`` when absent."""
    if "." not in field:
        return [r.pop(field, missing) for r in recs]
    parts = field.split(".")
    out = []
    for rec in recs:
        obj = rec
        for p in parts[:-1]:
            obj = obj.get(p)
            if type(obj) is not dict:
                break
        out.append(obj.pop(parts[-1], missing) if type(obj) is dict else missing)
    return out


def _put_path(rec: dict, field: str, value: Any) -> None:
    """Put ``value`` back at ``field`` (dotted: inside the nested object it came from)."""
    parts = field.split(".")
    for p in parts[:-1]:
        rec = rec[p]
    rec[parts[-1]] = value
