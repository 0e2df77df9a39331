"""Loading, checking and applying a fastText ``.bin`` classifier.

* :func:`check_model_file` validates a model file *before* any shard runs: it must
  exist, start with fastText's magic number, and (for an unquantised model) have
  exactly the size its own header implies, so a truncated copy is caught (fastText
  itself loads a truncated file without complaint and then predicts garbage). When
  a sidecar JSON written by :func:`filters.quality.train_classifier` sits beside
  the model, its recorded sha256 must match the file.
* :func:`load_model` loads through a per-process cache keyed by (path, sha256), so
  several stage instances in one worker share one copy of the weights.
* :func:`predict_label_proba` is the single scoring routine used by training-time
  evaluation, the stage and the benchmark.
* A model on an object store (``s3://bucket/models/hq.bin``, any fsspec URL) is copied once
  per machine into a local cache (:func:`local_copy`; fastText loads local files only), with
  its sidecar, keyed by the URL and the object's fingerprint, so a replaced object is fetched
  again and a worker on another node fetches its own copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import threading
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

FASTTEXT_MAGIC = 793712314  # first int32 of every fastText .bin / .ftz file
_HEADER = struct.Struct("<ii12id")  # magic, version, 12 int args, t (double)

# Per-process model cache: (realpath, sha256) -> fasttext model. One entry per model
# file, shared by every stage instance in this worker process.
_CACHE: dict[tuple[str, str], Any] = {}
_CACHE_LOCK = threading.Lock()


class ModelFileError(ValueError):
    """The fastText model file is missing, unreadable, corrupt or lacks the label."""


def sidecar_path(model_path: str) -> str:
    """Where the training metadata of ``model_path`` lives (``<model>.json``)."""
    return model_path + ".json"


def is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def cache_root() -> str:
    """This machine's cache: ``$CURATION_CACHE_DIR``, else ``$XDG_CACHE_HOME`` or ``~/.cache``, ``/dclm-curation``."""
    return os.environ.get("CURATION_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "dclm-curation")


def cache_dir() -> str:
    """Where remote models are copied (``<cache_root>/models``)."""
    return os.path.join(cache_root(), "models")


def local_copy(model_path: str) -> str:
    """A local path holding ``model_path`` (itself when local): a remote model and its sidecar are copied
    into :func:`cache_dir` once, under a name keyed by the URL and the object's fingerprint (size and ETag),
    each file written under a temporary name and renamed, so concurrent workers never read half a copy."""
    if not is_remote(model_path):
        return model_path.removeprefix("file://")
    if model_path in _COPIES and os.path.exists(_COPIES[model_path]):
        return _COPIES[model_path]
    from curation import storage

    side = sidecar_path(model_path)
    infos = storage.stat_many([model_path, side])
    if infos.get(model_path) is None:
        raise ModelFileError(f"fastText model not found: {model_path}")
    key = hashlib.sha256(f"{model_path}\n{storage.fingerprint_of(infos[model_path])}".encode()).hexdigest()[:20]
    folder = os.path.join(cache_dir(), key)
    local = os.path.join(folder, os.path.basename(model_path.rstrip("/")) or "model.bin")
    wanted = [(model_path, local)] + ([(side, sidecar_path(local))] if infos.get(side) else [])
    for remote, path in wanted:
        if os.path.exists(path):
            continue
        os.makedirs(folder, exist_ok=True)
        try:
            data = storage.read_bytes(remote)
        except OSError as exc:
            raise ModelFileError(f"cannot read {remote}: {exc}") from exc
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        logger.info("copied %s (%.1f MiB) to %s", remote, len(data) / 2**20, path)
    _COPIES[model_path] = local
    return local


# this process's copies: a URL is looked up once per process (its sha256, checked on load, guards the content)
_COPIES: dict[str, str] = {}


def read_sidecar(model_path: str) -> dict[str, Any] | None:
    path = sidecar_path(local_copy(model_path) if is_remote(model_path) else model_path.removeprefix("file://"))
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"unreadable model metadata {path}: {exc}") from exc


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def check_model_file(model_path: str) -> str:
    """Validate ``model_path`` cheaply (no full load); return its sha256.

    Raises :class:`ModelFileError` with a message naming the file and the problem.
    """
    if not model_path:
        raise ModelFileError("no fastText model path given")
    model_path = local_copy(model_path)
    if not os.path.exists(model_path):
        raise ModelFileError(f"fastText model not found: {model_path}")
    if not os.path.isfile(model_path):
        raise ModelFileError(f"fastText model path is not a file: {model_path}")
    size = os.path.getsize(model_path)
    with open(model_path, "rb") as f:
        head = f.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise ModelFileError(f"corrupt fastText model {model_path}: only {size} bytes")
    magic = struct.unpack_from("<i", head)[0]
    if magic != FASTTEXT_MAGIC:
        raise ModelFileError(f"{model_path} is not a fastText model (bad magic number {magic})")
    sha = file_sha256(model_path)
    meta = read_sidecar(model_path)
    if meta is not None and meta.get("model_sha256") and meta["model_sha256"] != sha:
        raise ModelFileError(
            f"{model_path} does not match its metadata {sidecar_path(model_path)} "
            f"(sha256 {sha[:12]}... != recorded {meta['model_sha256'][:12]}...): a partial copy or a replaced model"
        )
    return sha


def _check_size(model: Any, model_path: str) -> None:
    """An unquantised .bin ends with its two dense matrices: check the file holds them all."""
    if model.f.isQuant():
        return  # .ftz layout is not size-checked; the magic number and load must do
    rows_in, dim = memoryview(model.f.getInputMatrix()).shape
    rows_out, dim_out = memoryview(model.f.getOutputMatrix()).shape
    # ... quant flag (1) | m, n (int64 x2) | input floats | qout flag (1) | m, n | output floats
    tail = 1 + 16 + rows_in * dim * 4 + 1 + 16 + rows_out * dim_out * 4
    size = os.path.getsize(model_path)
    ok = size > tail
    if ok:
        with open(model_path, "rb") as f:
            f.seek(size - tail)
            quant, m, n = struct.unpack("<?qq", f.read(17))
            f.seek(size - tail + 1 + 16 + rows_in * dim * 4)
            qout, m2, n2 = struct.unpack("<?qq", f.read(17))
        ok = (not quant, m, n, not qout, m2, n2) == (True, rows_in, dim, True, rows_out, dim_out)
    if not ok:
        raise ModelFileError(f"corrupt or truncated fastText model {model_path} ({size} bytes)")


def load_model(model_path: str, sha256: str | None = None) -> Any:
    """Load ``model_path`` once per process (cache keyed by realpath and sha256)."""
    import fasttext  # optional at import time: only workers that score need it

    model_path = local_copy(model_path)
    sha = sha256 or check_model_file(model_path)
    key = (os.path.realpath(model_path), sha)
    with _CACHE_LOCK:
        model = _CACHE.get(key)
        if model is not None:
            return model
        rss_before = rss_bytes()
        try:
            model = fasttext.load_model(model_path)
        except (ValueError, MemoryError, RuntimeError) as exc:
            raise ModelFileError(f"fastText could not load {model_path}: {exc}") from exc
        _check_size(model, model_path)
        _CACHE[key] = model
        logger.info(
            "loaded fastText model %s (sha256 %s..., %.1f MiB file): process RSS %.1f MiB (+%.1f MiB)",
            model_path,
            sha[:12],
            os.path.getsize(model_path) / 2**20,
            rss_bytes() / 2**20,
            (rss_bytes() - rss_before) / 2**20,
        )
        return model


def clear_cache() -> None:
    """Forget every loaded model of this process (tests, long-lived drivers)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def cached_models() -> list[tuple[str, str]]:
    """(path, sha256) of the models this process holds."""
    with _CACHE_LOCK:
        return list(_CACHE)


def rss_bytes() -> int:
    """Resident set size of this process in bytes (Linux /proc; ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def predict_label_proba(model: Any, texts: list[str], label: str) -> np.ndarray:
    """P(``label``) for each preprocessed text (float32, clipped to [0, 1]).

    One batched ``predict`` call over the list (fastText's ``multilinePredict``),
    asking for every label (k=-1) so that any number of classes works. fastText
    reports ``exp(log(p + 1e-5))``, so raw values can exceed 1 by 1e-5: clipped.
    """
    n = len(texts)
    out = np.zeros(n, dtype=np.float32)
    if n == 0:
        return out
    all_labels, all_probs = model.predict(texts, k=-1)
    for i, (labs, probs) in enumerate(zip(all_labels, all_probs)):
        # labels come sorted by probability; a binary model has two entries
        if labs[0] == label:
            out[i] = probs[0]
        elif len(labs) > 1 and labs[1] == label:
            out[i] = probs[1]
        else:
            for lab, pr in zip(labs, probs):
                if lab == label:
                    out[i] = pr
                    break
    np.clip(out, 0.0, 1.0, out=out)
    return out
