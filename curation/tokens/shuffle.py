"""Global shuffle with bounded memory: scatter windows into K buckets, then shuffle each bucket.

The idea of DCLM's ``tokshuf`` (and of external-memory shuffles generally),
written for this project:

1. *Scatter* (one Ray task per packed shard): every window copy the mix selects
   gets a 64-bit key, a hash of ``(seed, source, shard, window, repetition)``
   (splitmix64, so it is a pure function of the window's identity, never of
   the worker that handles it). ``key % K`` picks its bucket. The task writes
   its windows sorted by bucket into one file, plus the keys, and returns the
   K+1 bucket offsets.
2. *Shuffle* (one Ray task per bucket): read bucket k's slice of every scatter
   file (contiguous ranges, so any fsspec store works), order the windows by
   key (a stable sort, so equal keys keep their (source, shard, window) order),
   and write one Arrow IPC stream file.

Memory per task is one packed shard (scatter) or one bucket (shuffle); K is
chosen so a bucket stays under ``max_shard_bytes``. Nothing passes through
Ray's object store but counts and offsets. Keys are uniform, so the output is a
uniform random interleaving of all windows within each bucket and the buckets
are a random partition: the same as DCLM's two-level shuffle.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pyarrow as pa

from curation import storage

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
KEY_BYTES = 8


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (Steele et al. 2014), vectorised over uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = (np.asarray(x, dtype=np.uint64) + _GOLDEN).astype(np.uint64)
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def window_keys(seed: int, source: int, shard: int, window: np.ndarray, rep: np.ndarray) -> np.ndarray:
    """Shuffle keys of window copies: a hash of (seed, source, shard, window index, repetition)."""
    h = splitmix64(np.uint64(seed & 0xFFFFFFFFFFFFFFFF))
    h = splitmix64(h ^ np.uint64(source))
    h = splitmix64(h ^ np.uint64(shard))
    w = np.asarray(window, dtype=np.uint64)
    r = np.asarray(rep, dtype=np.uint64)
    return splitmix64(splitmix64(h ^ w) ^ r)


def _read_range(path: str, offset: int, nbytes: int) -> bytes:
    if nbytes == 0:
        return b""
    fs, p = storage.fs_path(path)
    with fs.open(p, "rb") as f:
        f.seek(offset)
        data = f.read(nbytes)
    if len(data) != nbytes:
        raise OSError(f"{path}: short read ({len(data)} of {nbytes} bytes at {offset})")
    return data


def scatter_shard(
    packed_path: str,
    out_path: str,
    n_windows: int,
    seq_len: int,
    dtype: str,
    seed: int,
    source: int,
    shard: int,
    full_reps: int,
    extra: np.ndarray,
    num_buckets: int,
    chunk_windows: int = 16384,
) -> dict[str, Any]:
    """Select this shard's window copies, key them, and write them grouped by bucket.

    ``full_reps`` copies of every window plus one more copy of the windows in
    ``extra`` (indices into the shard). Output layout: all selected windows,
    bucket-major, then their uint64 keys in the same order. Returns
    ``{"items", "offsets"}`` (offsets: K+1 window counts).
    """
    dt = np.dtype(dtype)
    window = seq_len + 1
    wbytes = window * dt.itemsize
    data = _read_range(packed_path, 0, n_windows * wbytes)
    windows = np.frombuffer(data, dtype=dt).reshape(n_windows, window)
    extra = np.asarray(extra, dtype=np.int64)
    idx = np.concatenate([np.tile(np.arange(n_windows, dtype=np.int64), full_reps), extra])
    rep = np.concatenate([np.repeat(np.arange(full_reps, dtype=np.int64), n_windows), np.full(extra.size, full_reps)])
    keys = window_keys(seed, source, shard, idx, rep)
    bucket = (keys >> np.uint64(32)) % np.uint64(num_buckets)
    order = np.argsort(bucket, kind="stable")
    counts = np.bincount(bucket.astype(np.int64), minlength=num_buckets)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    with storage.atomic_open(out_path, "wb") as f:
        for c in range(0, order.size, chunk_windows):
            f.write(windows[idx[order[c : c + chunk_windows]]].tobytes())
        f.write(keys[order].tobytes())
    return {"items": int(order.size), "offsets": offsets.tolist()}


def token_schema(seq_len: int, dtype: np.dtype) -> pa.Schema:
    """The stream schema of DESIGN.md: one column ``tokens: fixed_size_list<uint16|uint32>[seq_len + 1]``."""
    value = pa.from_numpy_dtype(np.dtype(dtype))
    return pa.schema(
        [pa.field("tokens", pa.list_(pa.field("item", value, nullable=False), seq_len + 1), nullable=False)]
    )


def windows_batch(windows: np.ndarray, schema: pa.Schema) -> pa.RecordBatch:
    n, width = windows.shape
    values = pa.array(np.ascontiguousarray(windows).reshape(-1), type=schema.field("tokens").type.value_type)
    return pa.RecordBatch.from_arrays([pa.FixedSizeListArray.from_arrays(values, width)], schema=schema)


def write_stream(path: str, windows_iter: Any, seq_len: int, dtype: np.dtype, sha: Any = None) -> int:
    """Write (n, seq_len+1) arrays as record batches of one Arrow IPC stream file (atomic). Returns rows.
    ``sha``: a ``hashlib`` object fed the windows' bytes in the order written (the file's content digest,
    independent of the Arrow framing)."""
    schema = token_schema(seq_len, dtype)
    rows = 0
    with storage.atomic_open(path, "wb") as f:
        with pa.ipc.new_stream(f, schema) as writer:
            for w in windows_iter:
                if len(w):
                    w = np.ascontiguousarray(w)
                    writer.write_batch(windows_batch(w, schema))
                    if sha is not None:
                        sha.update(memoryview(w).cast("B"))
                    rows += len(w)
            if rows == 0:  # one empty batch: HF datasets cannot open a stream without any
                writer.write_batch(windows_batch(np.empty((0, seq_len + 1), dtype=dtype), schema))
    return rows


def shuffle_bucket(
    bucket: int,
    parts: list[tuple[str, int, int, int]],
    out_path: str,
    seq_len: int,
    dtype: str,
    rows_per_batch: int = 16384,
) -> dict[str, Any]:
    """Gather bucket ``bucket`` from scatter files, order by key, write one Arrow stream file.

    ``parts``: (scatter file, items in that file, first, end) window ranges, in
    (source, shard) order. Returns ``{"file", "windows"}``.
    """
    dt = np.dtype(dtype)
    window = seq_len + 1
    wbytes = window * dt.itemsize
    chunks, keys = [], []
    for path, items, lo, hi in parts:
        if hi <= lo:
            continue
        chunks.append(np.frombuffer(_read_range(path, lo * wbytes, (hi - lo) * wbytes), dtype=dt).reshape(-1, window))
        keys.append(np.frombuffer(_read_range(path, items * wbytes + lo * KEY_BYTES, (hi - lo) * KEY_BYTES), np.uint64))
    allw = np.concatenate(chunks) if chunks else np.empty((0, window), dtype=dt)
    allk = np.concatenate(keys) if keys else np.empty(0, dtype=np.uint64)
    order = np.argsort(allk, kind="stable")
    sha = hashlib.sha256()
    rows = write_stream(
        out_path, (allw[order[c : c + rows_per_batch]] for c in range(0, order.size, rows_per_batch)), seq_len, dt,
        sha,
    )
    return {"bucket": bucket, "file": out_path, "windows": rows, "sha256": sha.hexdigest()}
