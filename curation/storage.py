"""Storage: local paths and any fsspec URL (s3://, gs://, hf://, ...): complete-object writes, listings,
request accounting.

Writes: a reader never sees half an object, and a killed writer leaves nothing that is read.

* Local files are written under a temporary name beside the final path (``<name>.tmp-<random>``, which
  nothing reads and the runner removes) and renamed into place (``os.replace`` is atomic).
* Object stores have no rename (a "move" is a copy plus a delete, neither atomic nor cheap), so an object
  is written once, under its final name: a single PUT of the whole object (:func:`write_bytes_atomic`), or,
  for a streamed writer (:func:`atomic_open`), a multipart upload that the store assembles only when the
  writer closes successfully. A writer that fails aborts its upload: the earlier object (if any) stays and
  no partial one appears. Completion markers are written after the outputs they vouch for.

Listings: the driver asks a folder for its listing once (one LIST request per 1,000 objects on S3) and
takes sizes, fingerprints and existence from it (:func:`stat_many`, :func:`list_files`) instead of one HEAD
per file. Listing caches of the fsspec file systems are turned off: other processes (Ray workers) write
under the same prefixes, so a cached listing would be stale.

Inputs: :func:`expand` lists what a path, folder or glob names; names beginning with ``_`` or ``.`` are
bookkeeping (the Hadoop/Spark convention: ``_SUCCESS``, ``_truth/``, ``.cache``), never inputs, unless a file
is named explicitly.

Requests: :data:`COUNTS` counts, per process, the storage operations made through this module (``put`` =
one object written, ``get``, ``list``, ``head``, ``delete``); passes report them (objects written per pass).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import fsspec
import fsspec.config
import fsspec.implementations.local
import pyarrow as pa
import pyarrow.parquet as pq

PARQUET_OPTIONS = {"compression": "zstd", "use_dictionary": ["source"], "write_statistics": True}

WRITE_PART_BYTES = 16 << 20
#: storage operations made by this process through this module
COUNTS: Counter[str] = Counter()

# Other processes write under the prefixes this one lists: never answer from a cached listing.
for _proto in ("s3", "s3a", "gs", "gcs", "abfs", "az", "adl", "oci", "r2"):
    fsspec.config.conf.setdefault(_proto, {}).setdefault("use_listings_cache", False)


def fs_path(path: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The file system of ``path`` and the path in its terms (no globbing: no request is made)."""
    return fsspec.core.url_to_fs(path)


def is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])


def printable(path: str) -> str:
    """``path`` as valid UTF-8: bytes of a file name that is not UTF-8 (surrogate-escaped by the OS layer)
    become ``\\xNN`` escapes, so the name can go into Arrow string columns and ids."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _url(fs: fsspec.AbstractFileSystem, name: str, like: str) -> str:
    """A listed name (protocol stripped) in the form of the path ``like`` it was listed from."""
    if is_local(like):
        return name
    proto = like.split("://", 1)[0]
    return f"{proto}://{name}"


def exists(path: str) -> bool:
    fs, p = fs_path(path)
    COUNTS["head"] += 1
    return fs.exists(p)


def makedirs(path: str) -> None:
    fs, p = fs_path(path)
    fs.makedirs(p, exist_ok=True)


def is_bookkeeping(name: str) -> bool:
    """Names beginning with ``_`` or ``.`` are bookkeeping, never inputs."""
    return name.startswith(("_", "."))


def _hidden_below(rel: str) -> bool:
    return any(is_bookkeeping(part) for part in rel.split("/") if part)


def _glob_root(pattern: str) -> str:
    """The folder part of a glob before its first wildcard."""
    cut = min((i for i, c in enumerate(pattern) if c in "*?["), default=len(pattern))
    return pattern[:cut].rsplit("/", 1)[0] if cut < len(pattern) else pattern


def list_inputs(patterns: list[str] | str) -> dict[str, dict[str, Any]]:
    """{file: listing info} of what ``patterns`` name (paths, folders, globs; local or remote), one listing
    per pattern. Folders are walked recursively; files and folders whose names begin with ``_`` or ``.``
    below the pattern's root are skipped (bookkeeping); a file named explicitly is kept."""
    if isinstance(patterns, str):
        patterns = [patterns]
    out: dict[str, dict[str, Any]] = {}
    for pat in patterns:
        fs, stripped = fs_path(pat)
        wild = any(c in stripped for c in "*?[")
        COUNTS["list"] += 1
        if wild:
            root = _glob_root(stripped).rstrip("/")
            found = fs.glob(stripped, detail=True)
            for name, info in found.items():
                if info.get("type") == "directory":
                    COUNTS["list"] += 1
                    for f, i in fs.find(name, detail=True).items():
                        if not _hidden_below(f[len(root):]):
                            out[_url(fs, f, pat)] = i
                elif not _hidden_below(name[len(root):]):
                    out[_url(fs, name, pat)] = info
            continue
        p = stripped.rstrip("/")
        # one listing: a folder's files, or the file itself
        try:
            found = fs.find(p, detail=True)
        except FileNotFoundError:
            found = {}
        if list(found) == [p] or (not found and fs.isfile(p)):
            out[_url(fs, p, pat)] = found.get(p) or fs.info(p)
            continue
        for f, i in found.items():
            if not _hidden_below(f[len(p):]):
                out[_url(fs, f, pat)] = i
    return dict(sorted(out.items()))


def expand(patterns: list[str] | str) -> list[str]:
    """Expand paths, folders and globs (local or remote) into a sorted, de-duplicated list of files (see
    :func:`list_inputs`: bookkeeping names are skipped)."""
    return list(list_inputs(patterns))


def list_dir(folder: str, recursive: bool = False) -> dict[str, dict[str, Any]]:
    """{file: info} of the files in ``folder`` (with ``recursive``, below it): one listing (paginated by
    the store); {} when the folder does not exist. Keys have the form of ``folder``'s paths."""
    fs, p = fs_path(folder)
    COUNTS["list"] += 1
    try:
        if recursive:
            found = fs.find(p, detail=True)
        else:
            found = {i["name"]: i for i in fs.ls(p, detail=True)}
    except (FileNotFoundError, NotADirectoryError):
        return {}
    base = folder.rstrip("/")
    root = p.rstrip("/")
    out = {}
    for name, info in found.items():
        if info.get("type", "file") != "file":
            continue
        rel = name[len(root):] if name.startswith(root) else "/" + name.rsplit("/", 1)[-1]
        out[base + rel] = info
    return out


def stat_many(paths: Iterable[str]) -> dict[str, dict[str, Any] | None]:
    """{path: listing info or None (missing)} for many files: one listing per distinct parent folder,
    never one request per file."""
    by_parent: dict[str, list[str]] = {}
    for path in paths:
        parent = path.rstrip("/").rsplit("/", 1)[0] if "/" in path.rstrip("/") else "."
        by_parent.setdefault(parent, []).append(path)
    out: dict[str, dict[str, Any] | None] = {}
    for parent, members in by_parent.items():
        listing = list_dir(parent)
        if is_local(parent):
            # local listings name files by absolute path: look them up the same way
            absolute = {os.path.abspath(k): v for k, v in listing.items()}
            for m in members:
                out[m] = absolute.get(os.path.abspath(m.removeprefix("file://")))
        else:
            for m in members:
                out[m] = listing.get(m.rstrip("/"))
    return out


def fingerprint_of(info: dict[str, Any]) -> str:
    """A cheap identity of a file's content from its listing or ``info``: size plus the store's content tag
    (ETag, md5, crc32c) where there is one, else the modification time. The same for a listing and a HEAD
    (S3's listings and HEADs give LastModified at different precisions: it is not used where an ETag is)."""
    tag = {}
    for k in ("ETag", "etag", "md5Hash", "crc32c"):
        if info.get(k):
            tag[k.lower()] = str(info[k]).strip('"')
            break
    if not tag:
        for k in ("mtime", "LastModified", "last_modified", "created"):
            if info.get(k) is not None:
                tag["mtime"] = str(info[k])
                break
    size = info.get("size", info.get("Size"))
    return json.dumps({"size": None if size is None else int(size), **tag}, sort_keys=True)


def fingerprint(path: str) -> str:
    """:func:`fingerprint_of` one file (one request; prefer :func:`stat_many` for many files)."""
    fs, p = fs_path(path)
    COUNTS["head"] += 1
    return fingerprint_of(fs.info(p))


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "wb") -> Iterator[Any]:
    """Open ``path`` for writing; the object appears whole on success and not at all on failure.

    Local: a temporary name renamed into place. Object stores: the final name, as one PUT or a multipart
    upload completed on close; on an exception the upload is aborted (see the module docstring)."""
    fs, p = fs_path(path)
    COUNTS["put"] += 1
    if is_local(path):
        parent = os.path.dirname(p) or "."
        os.makedirs(parent, exist_ok=True)
        tmp = f"{p}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            with open(tmp, mode) as f:
                yield f
            os.replace(tmp, p)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise
        return
    # a streamed object is uploaded in parts of this size (S3's minimum part is 5 MiB; 10,000 parts of 16 MiB
    # hold 156 GiB), so a writer buffers at most this much, not the file system's 50 MiB default
    f = fs.open(p, mode, block_size=WRITE_PART_BYTES)
    try:
        yield f
    except BaseException:
        discard = getattr(f, "discard", None)
        if callable(discard) and hasattr(f, "buffer"):
            discard()  # aborts a multipart upload; nothing is committed
            f.closed = True
        else:  # a file system without uploads to abort: close and remove what it wrote
            with contextlib.suppress(Exception):
                f.close()
            with contextlib.suppress(Exception):
                fs.rm(p)
        raise
    f.close()


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write one whole object: a rename into place locally, a single PUT on an object store."""
    if is_local(path):
        with atomic_open(path, "wb") as f:
            f.write(data)
        return
    fs, p = fs_path(path)
    COUNTS["put"] += 1
    fs.pipe_file(p, bytes(data))


def write_json_atomic(path: str, obj: Any) -> None:
    write_bytes_atomic(path, json.dumps(obj, sort_keys=True, indent=1).encode())


def read_json(path: str) -> Any:
    return json.loads(read_bytes(path))


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
    COUNTS["get"] += 1
    with fs.open(p, "rb") as f:
        return pq.read_table(f, columns=columns)


def iter_parquet_batches(
    path: str, batch_size: int = 4096, columns: list[str] | None = None
) -> Iterator[pa.RecordBatch]:
    fs, p = fs_path(path)
    COUNTS["get"] += 1
    with fs.open(p, "rb") as f:
        pf = pq.ParquetFile(f)
        yield from pf.iter_batches(batch_size=batch_size, columns=columns)


def read_bytes(path: str) -> bytes:
    fs, p = fs_path(path)
    COUNTS["get"] += 1
    if is_local(path):
        with open(p, "rb") as f:
            return f.read()
    if hasattr(fs, "max_concurrency"):  # s3fs: one GET, without the HEAD it makes to split large reads
        return fs.cat_file(p, max_concurrency=1)
    return fs.cat_file(p)


def read_range(path: str, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of a file: one ranged GET on an object store."""
    fs, p = fs_path(path)
    COUNTS["get"] += 1
    if is_local(path):
        with open(p, "rb") as f:
            f.seek(start)
            return f.read(end - start)
    return fs.cat_file(p, start=start, end=end)


def remove(paths: Iterable[str]) -> None:
    """Delete files (missing ones are fine): one bulk request per 1,000 objects on S3."""
    groups: dict[int, tuple[fsspec.AbstractFileSystem, list[str]]] = {}
    for path in paths:
        fs, p = fs_path(path)
        groups.setdefault(id(fs), (fs, []))[1].append(p)
    for fs, ps in groups.values():
        COUNTS["delete"] += max(1, (len(ps) + 999) // 1000)
        if isinstance(fs, fsspec.implementations.local.LocalFileSystem):
            for p in ps:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(p)
            continue
        with contextlib.suppress(FileNotFoundError):
            fs.rm(ps)


def rm_tree(path: str) -> None:
    """Delete a folder and everything below it (nothing when it does not exist)."""
    fs, p = fs_path(path)
    COUNTS["list"] += 1
    if fs.exists(p):
        COUNTS["delete"] += 1
        fs.rm(p, recursive=True)
