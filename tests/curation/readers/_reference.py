"""An independent reference of the JSON-lines readers: whole-file decompression, one line at a time,
one record at a time, straight from the documented semantics (readers' docstrings). The readers'
batched, streamed, piece-wise code must give exactly what this gives."""

from __future__ import annotations

import gzip
import io
from typing import Any

import orjson
import zstandard

RAW = 4096
_MISSING = object()
_HTTP = ("http://", "https://")


def decompressed(path: str) -> bytes:
    data = open(path, "rb").read()
    if data.startswith(b"\x1f\x8b"):
        return gzip.decompress(data)
    if data.startswith(b"\x28\xb5\x2f\xfd"):
        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read()
    return data


def _pop(rec: dict, field: str) -> Any:
    parts = field.split(".")
    obj = rec
    for p in parts[:-1]:
        obj = obj.get(p)
        if not isinstance(obj, dict):
            return _MISSING
    return obj.pop(parts[-1], _MISSING)


def _generic(rec: dict, text_field="text", id_field="id", url_field="url", **_: Any):
    text = _pop(rec, text_field)
    ident = _pop(rec, id_field) if id_field else None
    if ident is _MISSING:
        ident = None
    if ident is not None and not isinstance(ident, str):
        ident = orjson.dumps(ident).decode() if isinstance(ident, (dict, list)) else str(ident)
    url = None
    if url_field:
        url = _pop(rec, url_field)
        if url is _MISSING:
            url = None
        elif url is not None and not isinstance(url, str):
            parts = url_field.split(".")
            obj = rec
            for p in parts[:-1]:
                obj = obj[p]
            obj[parts[-1]] = url
            url = None
    return text, ident, url, rec


def _pile(rec: dict, **_: Any):
    text = rec.pop("text", _MISSING)
    meta = rec.pop("meta", None)
    if isinstance(meta, dict):
        out = {**rec, **meta}
    elif meta is None:
        out = rec
    else:
        out = {**rec, "meta": meta}
    return text, None, None, out


def _dolma(rec: dict, **_: Any):
    text = rec.pop("text", _MISSING)
    ident = rec.pop("id", None)
    if ident is not None and not isinstance(ident, str):
        ident = str(ident)
    url = None
    m = rec.get("metadata")
    if isinstance(m, dict) and isinstance(m.get("url"), str):
        url = m["url"]
    if url is None and ident and ident.startswith(_HTTP):
        url = ident
    return text, ident, url, rec


def _redpajama(rec: dict, subset: str | None = None, **_: Any):
    text = rec.pop("text", _MISSING)
    if text is _MISSING and "raw_content" in rec:
        text = rec.pop("raw_content")
    meta = rec.pop("meta", None)
    if isinstance(meta, str):
        try:
            meta = orjson.loads(meta)
        except orjson.JSONDecodeError:
            pass
    sub = rec.pop("red_pajama_subset", None)
    url = rec.pop("url", None)
    ident = rec.pop("id", None)
    if ident is None:
        ident = rec.pop("doc_id", None)
    if isinstance(meta, dict):
        if url is None:
            url = meta.pop("url", None)
        if sub is None:
            sub = meta.get("redpajama_set_name") or meta.get("source")
        out = {**rec, **meta}
    else:
        out = {**rec, "meta": meta} if meta is not None else rec
    if url is not None and not isinstance(url, str):
        out["url"] = url
        url = None
    out["subset"] = sub if isinstance(sub, str) else subset
    if ident is not None and not isinstance(ident, str):
        ident = str(ident)
    return text, ident, url, out


MAPPERS = {"jsonl": _generic, "pile": _pile, "dolma": _dolma, "redpajama": _redpajama}


def reference_read(path: str, fmt: str, prefix: str, source: str, max_doc_bytes: int = 8 << 20,
                   subset: str | None = None, **mapping: Any) -> tuple[list[dict], list[tuple]]:
    """(documents as dicts, quarantine records as (position, reason, id, raw)) of an intact file."""
    data = decompressed(path)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    docs, quar = [], []
    max_line = 6 * max_doc_bytes + (1 << 20)
    for n, line in enumerate(lines):
        gen = prefix + str(n)
        if len(line) > max_line:
            quar.append((n, "doc_too_large", gen, line[:RAW]))
            continue
        try:
            rec = orjson.loads(line[3:] if line.startswith(b"\xef\xbb\xbf") else line)
        except orjson.JSONDecodeError as exc:
            if not line.strip():
                continue
            try:
                line.decode("utf-8")
                reason = "invalid_utf8" if "surrogate" in str(exc) else "malformed_json"
            except UnicodeDecodeError:
                reason = "invalid_utf8"
            quar.append((n, reason, gen, line[:RAW]))
            continue
        if not isinstance(rec, dict):
            quar.append((n, "malformed_json", gen, line[:RAW]))
            continue
        text, ident, url, meta = MAPPERS[fmt](rec, subset=subset, **mapping)
        ident = ident or gen
        if not isinstance(text, str):
            reason = "missing_text" if text is _MISSING else "null_text" if text is None else "non_string_text"
            quar.append((n, reason, ident, line[:RAW]))
            continue
        if len(text.encode()) > max_doc_bytes:
            quar.append((n, "doc_too_large", ident, line[:RAW]))
            continue
        try:
            meta_json = orjson.dumps(meta).decode() if meta else None
        except orjson.JSONEncodeError:
            quar.append((n, "malformed_json", ident, line[:RAW]))
            continue
        docs.append({"id": ident, "text": text, "source": source, "url": url, "metadata": meta_json})
    return docs, quar
