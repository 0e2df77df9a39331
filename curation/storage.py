"""fsspec IO: local paths and any URL (s3://, gs://, hf://, ...), with atomic writes.

An output is written to a temporary name beside its final path and renamed into
place, so a reader never sees a partial file and a killed writer leaves only a
``.tmp-*`` file that the next run ignores and overwrites.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

PARQUET_OPTIONS = {"compression": "zstd", "use_dictionary": ["source"], "write_statistics": True}


def fs_path(path: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, _, paths = fsspec.get_fs_token_paths(path)
    return fs, paths[0]


def is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])


def exists(path: str) -> bool:
    fs, p = fs_path(path)
    return fs.exists(p)


def makedirs(path: str) -> None:
    fs, p = fs_path(path)
    fs.makedirs(p, exist_ok=True)


def expand(patterns: list[str] | str) -> list[str]:
    """Expand globs (local or remote) into a sorted, de-duplicated list of files."""
    if isinstance(patterns, str):
        patterns = [patterns]
    out: set[str] = set()
    for pat in patterns:
        fs, _, paths = fsspec.get_fs_token_paths(pat)
        proto = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
        for p in paths:
            if fs.isdir(p):
                p_list = [f for f in fs.find(p) if not os.path.basename(f).startswith(".")]
            else:
                p_list = [p]
            for f in p_list:
                out.add(f if proto in ("file", "local") else f"{proto}://{f}")
    return sorted(out)


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "wb") -> Iterator[Any]:
    """Open ``path`` for writing under a temporary name; rename into place on success."""
    fs, p = fs_path(path)
    parent = p.rsplit("/", 1)[0] if "/" in p else "."
    fs.makedirs(parent, exist_ok=True)
    tmp = f"{p}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with fs.open(tmp, mode) as f:
            yield f
        if is_local(path):
            os.replace(tmp, p)
        else:
            fs.mv(tmp, p)
    except BaseException:
        with contextlib.suppress(Exception):
            fs.rm(tmp)
        raise


def write_bytes_atomic(path: str, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_json_atomic(path: str, obj: Any) -> None:
    write_bytes_atomic(path, json.dumps(obj, sort_keys=True, indent=1).encode())


def read_json(path: str) -> Any:
    fs, p = fs_path(path)
    with fs.open(p, "rb") as f:
        return json.loads(f.read())


def write_parquet_atomic(path: str, table: pa.Table, **options: Any) -> None:
    """Write one parquet file atomically; byte-identical for identical tables."""
    opts = {**PARQUET_OPTIONS, **options}
    if "source" not in table.column_names:
        opts.pop("use_dictionary", None)
    buf = io.BytesIO()
    pq.write_table(table, buf, **opts)
    write_bytes_atomic(path, buf.getvalue())


def read_parquet(path: str, columns: list[str] | None = None) -> pa.Table:
    fs, p = fs_path(path)
    with fs.open(p, "rb") as f:
        return pq.read_table(f, columns=columns)


def iter_parquet_batches(
    path: str, batch_size: int = 4096, columns: list[str] | None = None
) -> Iterator[pa.RecordBatch]:
    fs, p = fs_path(path)
    with fs.open(p, "rb") as f:
        pf = pq.ParquetFile(f)
        yield from pf.iter_batches(batch_size=batch_size, columns=columns)


def read_bytes(path: str) -> bytes:
    fs, p = fs_path(path)
    with fs.open(p, "rb") as f:
        return f.read()


def fingerprint(path: str) -> str:
    """A cheap identity of a file's current content: size plus modification time (or the
    object store's ETag / checksum). Used to tell that an input changed under the same name."""
    fs, p = fs_path(path)
    info = fs.info(p)
    keys = ("size", "mtime", "ETag", "etag", "LastModified", "md5Hash", "crc32c", "created")
    return json.dumps({k: str(info[k]) for k in keys if k in info}, sort_keys=True)
