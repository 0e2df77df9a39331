"""Tokenise one curated shard and pack its documents into fixed windows.

Packing (the GPT-2/3 and DCLM/OpenLM convention): every document is encoded and
followed by EOS, the shard's documents are concatenated in row order, and the
stream is cut into windows of ``seq_len + 1`` tokens (the trainer's inputs are
``w[:-1]``, its targets ``w[1:]``). Windows cross document boundaries; no padding.

Remainder: the tokens after a shard's last full window (fewer than
``seq_len + 1``) are the shard's *tail*. The task returns it; with
``remainder="pack"`` (the default) the driver concatenates a source's tails in
shard order and packs them into extra windows, so only the final tail of each
source (< ``seq_len + 1`` tokens) is lost; with ``remainder="drop"`` every tail
is dropped. Either way the dropped tokens are counted in the manifest.

Documents whose text is null or empty are skipped and counted (``null_docs``,
``empty_docs``): they would only add a bare EOS.

Rehydration (``rehydrate``, a table of mix.py): a document packed ``c`` times appears in
passes 0 .. c-1 over the shard, each pass in row order over the documents that still have a
copy to give, so copies of one document sit a shard's worth of tokens apart, in different
windows (the global shuffle then scatters the windows). ``docs`` counts documents once;
``copies``/``copy_tokens`` count the extra copies.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np

from curation import storage
from curation.tokens.mix import CLUSTER_COLUMN, rehydration_copies
from curation.tokens.tokenizer import processor_from_bytes


def encode_batch(sp: Any, texts: list[str], eos_id: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Encode texts with EOS after each; returns (flat tokens, per-document lengths including EOS)."""
    ids = sp.encode(texts, num_threads=1)
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=dtype, count=int(lengths.sum()))
    # np.insert with several indices inserts before each original index: after each document.
    flat = np.insert(flat, np.cumsum(lengths), np.asarray(eos_id, dtype=dtype))
    return flat, lengths + 1


def tokenize_shard(
    path: str,
    model: bytes,
    out_path: str,
    seq_len: int,
    eos_id: int,
    dtype: str,
    text_column: str = "text",
    batch_size: int = 1024,
    rehydrate: Any = None,
) -> dict[str, Any]:
    """Tokenise and pack one parquet shard; write its full windows (raw bytes) to ``out_path``.

    Returns counts plus ``tail`` (the leftover tokens, a numpy array). The output
    holds ``windows * (seq_len + 1)`` tokens in ``dtype``, row-major, in document order.
    ``rehydrate``: a table of :func:`curation.tokens.mix.rehydration_table` (the shard must have
    ``dup_cluster_size``), or None.
    """
    t0 = time.perf_counter()
    sp = processor_from_bytes(model)
    dt = np.dtype(dtype)
    window = seq_len + 1
    carry = np.empty(0, dtype=dt)
    docs = null_docs = empty_docs = doc_tokens = windows = copies = copy_tokens = 0
    by_source: dict[str, list[int]] = {}  # corpus source (the ``source`` column) -> [documents, tokens]
    schema = check_text_column(path, text_column)
    columns = [text_column] + (["source"] if "source" in schema.names and text_column != "source" else [])
    if rehydrate:
        if CLUSTER_COLUMN not in schema.names:
            raise ValueError(f"{path}: no column {CLUSTER_COLUMN!r} to rehydrate by; it is written by exact and "
                             "MinHash dedup (filters/dedup): curate with them, or build without rehydration")
        columns.append(CLUSTER_COLUMN)
    passes = 1
    r = 0
    with storage.atomic_open(out_path, "wb") as f:
        while r < passes:  # pass r packs the documents with more than r copies (all of them in pass 0)
            for batch in storage.iter_parquet_batches(path, batch_size=batch_size, columns=columns):
                texts = batch.column(0).to_pylist()
                keep = [bool(t) for t in texts]
                if rehydrate:
                    n_copies = rehydration_copies(_cluster_sizes(batch.column(len(columns) - 1)), rehydrate)
                    if r == 0:
                        passes = max(passes, int(n_copies.max(initial=1)))
                    keep = [k and c > r for k, c in zip(keep, n_copies.tolist())]
                if r == 0:
                    null_docs += sum(t is None for t in texts)
                    empty_docs += sum(t == "" for t in texts)
                valid = [t for t, k in zip(texts, keep) if k]
                if not valid:
                    continue
                flat, lengths = encode_batch(sp, valid, eos_id, dt)
                doc_tokens += flat.size
                if r == 0:
                    docs += len(valid)
                else:
                    copies += len(valid)
                    copy_tokens += flat.size
                if "source" in columns[1:]:
                    sources = [s for s, k in zip(batch.column(columns.index("source", 1)).to_pylist(), keep) if k]
                    for src, n in zip(sources, lengths.tolist()):
                        acc = by_source.setdefault(str(src), [0, 0])
                        acc[0] += r == 0
                        acc[1] += n
                buf = np.concatenate([carry, flat]) if carry.size else flat
                full = buf.size // window
                if full:
                    f.write(buf[: full * window].tobytes())
                    windows += full
                carry = buf[full * window :].copy()
            r += 1
    return {
        "file": path,
        "docs": docs,
        "null_docs": null_docs,
        "empty_docs": empty_docs,
        "doc_tokens": doc_tokens,
        "copies": copies,
        "copy_tokens": copy_tokens,
        "by_source": {k: {"docs": v[0], "doc_tokens": v[1]} for k, v in sorted(by_source.items())},
        "windows": windows,
        "tail": carry,
        "seconds": time.perf_counter() - t0,
    }


def _cluster_sizes(column: Any) -> np.ndarray:
    """A cluster-size column as int64 (nulls: 1)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return np.asarray(pc.fill_null(column.cast(pa.int64()), 1).to_numpy(zero_copy_only=False), dtype=np.int64)


def check_text_column(path: str, text_column: str) -> Any:
    """The file's Arrow schema; ValueError unless ``path`` is a parquet file with a string column ``text_column``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fs, p = storage.fs_path(path)
    with fs.open(p, "rb") as fh:
        schema = pq.ParquetFile(fh).schema_arrow
    if text_column not in schema.names:
        raise ValueError(f"{path}: no column {text_column!r} (columns: {', '.join(schema.names)})")
    t = schema.field(text_column).type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        raise ValueError(f"{path}: column {text_column!r} has type {t}, expected a string")
    return schema


def pack_tails(tails: list[np.ndarray], seq_len: int, dtype: np.dtype) -> tuple[np.ndarray, int]:
    """Concatenate shard tails in order and cut full windows; returns (windows (n, seq_len+1), leftover tokens)."""
    window = seq_len + 1
    flat = np.concatenate([np.asarray(t, dtype=dtype) for t in tails]) if tails else np.empty(0, dtype=dtype)
    full = flat.size // window
    return flat[: full * window].reshape(full, window), int(flat.size - full * window)
