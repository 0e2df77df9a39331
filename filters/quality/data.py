"""Reading training text for the quality classifier.

A *text source* is any of:

* a path (local or fsspec URL) to a ``.jsonl`` / ``.json`` file (optionally ``.gz``,
  ``.zst``, ``.bz2``, ``.xz``), a ``.parquet`` file, or a ``.txt`` file (the whole
  file is one document);
* a directory, read recursively (bare ``.json`` files in it are taken for metadata
  and ignored): our run outputs work as they are — the root of a run (it holds
  ``run.json``) means its final ``data/`` parquet files; parquet files without the
  text column (dropped-row records) are skipped and listed;
* a list of such paths;
* an in-memory ``pyarrow.Table`` with a text column, or a ``pyarrow.Array`` /
  ``ChunkedArray`` of strings.

Every file is hashed (sha256 of its bytes) so that the training metadata says
exactly which data produced a model.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import fsspec
import fsspec.compression
import pyarrow as pa
import pyarrow.parquet as pq

from curation import storage

logger = logging.getLogger(__name__)

TextSource = str | os.PathLike | Sequence[str | os.PathLike] | pa.Table | pa.Array | pa.ChunkedArray

_JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
_COMPRESSIONS = ("", ".gz", ".zst", ".zstd", ".bz2", ".xz")
_KNOWN = tuple(s + c for s in (*_JSON_SUFFIXES, ".txt") for c in _COMPRESSIONS) + (".parquet",)


@dataclass
class LoadedTexts:
    """Texts read from a source plus what the metadata needs to describe them."""

    texts: list[str] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)  # {path, sha256, docs}
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n


def _is_data_file(path: str) -> bool:
    name = os.path.basename(path)
    return not name.startswith(".") and ".tmp-" not in name and name.endswith(_KNOWN)


def _list_files(spec: str) -> list[str]:
    fs, p = storage.fs_path(spec)
    if fs.isdir(p):
        if fs.exists(p.rstrip("/") + "/run.json") and fs.isdir(p.rstrip("/") + "/data"):
            # the root of one of our runs: only its final documents (not phases/, dropped/, stats/)
            spec = storage.join(spec, "data")
        # bare .json files inside a directory are metadata (stats, manifests), not documents
        files = [f for f in storage.expand(spec) if _is_data_file(f) and not f.endswith(".json")]
        if not files:
            raise ValueError(f"no jsonl/parquet/txt files under {spec}")
        return files
    if not fs.exists(p):
        raise FileNotFoundError(f"training data not found: {spec}")
    return [spec]


def _read_file(path: str, text_field: str, out: LoadedTexts) -> None:
    fs, p = storage.fs_path(path)
    with fs.open(p, "rb") as f:
        raw = f.read()
    sha = hashlib.sha256(raw).hexdigest()
    before = len(out.texts)
    name = path.lower()
    if name.endswith(".parquet"):
        pf = pq.ParquetFile(pa.BufferReader(raw))
        if text_field not in pf.schema_arrow.names:
            logger.info("skipping %s: no %r column", path, text_field)
            out.skip("parquet_without_text_column")
            return
        col = pf.read(columns=[text_field]).column(text_field)
        values = col.to_pylist()
        n_bad = sum(1 for v in values if not isinstance(v, str))
        if n_bad:
            out.skip("missing_or_non_string_text", n_bad)
        out.texts.extend(v for v in values if isinstance(v, str))
    else:
        comp = fsspec.utils.infer_compression(path)
        if comp:
            with fsspec.compression.compr[comp](io.BytesIO(raw), mode="rb") as f:
                raw_text = f.read()
        else:
            raw_text = raw
        text = raw_text.decode("utf-8", errors="replace")
        stem = name
        for c in _COMPRESSIONS[1:]:
            if stem.endswith(c):
                stem = stem[: -len(c)]
        if stem.endswith(".txt"):
            out.texts.append(text)
        else:
            for line in text.splitlines():
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    out.skip("malformed_json")
                    continue
                value = rec.get(text_field) if isinstance(rec, dict) else None
                if not isinstance(value, str):
                    out.skip("missing_or_non_string_text")
                    continue
                out.texts.append(value)
    out.files.append({"path": path, "sha256": sha, "docs": len(out.texts) - before})


def _read_file_safe(path: str, text_field: str, out: LoadedTexts) -> None:
    try:
        _read_file(path, text_field, out)
    except (OSError, EOFError, ValueError, pa.ArrowException) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        # a truncated archive or a broken parquet file: recorded and skipped, never silent
        logger.warning("skipping unreadable training file %s: %s", path, exc)
        out.skip("unreadable_file")
        out.files.append({"path": path, "sha256": None, "docs": 0, "error": str(exc)[:200]})


def load_texts(source: TextSource, text_field: str = "text") -> LoadedTexts:
    """Read every document of ``source`` (see the module docstring) in a stable order."""
    out = LoadedTexts()
    if isinstance(source, pa.Table):
        if text_field not in source.column_names:
            raise ValueError(f"table has no {text_field!r} column")
        source = source.column(text_field)
    if isinstance(source, (pa.Array, pa.ChunkedArray)):
        values = source.to_pylist()
        out.texts = [v for v in values if isinstance(v, str)]
        if len(out.texts) != len(values):
            out.skip("missing_or_non_string_text", len(values) - len(out.texts))
        digest = hashlib.sha256("\x00".join(out.texts).encode()).hexdigest()
        out.files.append({"path": "<in-memory>", "sha256": digest, "docs": len(out.texts)})
        return out
    specs = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    if not specs:
        raise ValueError("empty list of training data paths")
    for spec in specs:
        for path in _list_files(os.fspath(spec)):
            _read_file_safe(path, text_field, out)
    return out
