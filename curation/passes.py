"""One primitive for all distributed work: a *pass* runs a function over items.

DESIGN.md, "Distributed passes and scale". A pass runs ``fn(*item.args)`` for every
:class:`Item` (a shard, a partition, a bucket, a trial) as Ray tasks, at most
``max_in_flight`` at a time (``ray.wait``), or one after another in this process
(``mode="local"``: tests, tiny inputs). Every pass in the project (the runner's shard
phases, each global stage's map/reduce/component rounds, token building, ablation
trials) goes through :meth:`Executor.run`, so resume, retries, progress and the
in-process mode behave the same everywhere. :func:`make_executor` is the one place that
builds an executor from a run's settings.

The pass owns its resume
------------------------
An item declares what defines its output and the executor keeps it complete:

* ``args`` (and the pass's ``shared`` argument, ``config`` and ``version``) are *hashed*:
  everything the function receives is part of the item's hash. A value the hash cannot
  take exactly (an object that is neither plain data, a dataclass, an array, bytes nor
  has a ``fingerprint()``) is refused with a ``TypeError``, never hashed by ``repr``.
  Settings that do not change the output (threads, a device) go in ``runtime``: keyword
  arguments passed to ``fn`` and not hashed.
* ``inputs``: files whose fingerprints (size plus the store's ETag, or the mtime) enter
  the hash, so an input rewritten under the same name recomputes the item.
* ``after``: the upstream passes (:class:`PassResult`) whose outputs the item reads; their
  digests enter the hash, so a recomputed upstream recomputes the item. ``run(after=...)``
  gives them for every item of a pass.
* ``outputs``: the files the item writes (more may be reported at run time with
  :func:`report_outputs`). An item whose marker says complete but whose outputs are gone
  runs again.

Completion markers
------------------
``fn`` writes its outputs itself, each as one complete object
(``curation.storage.write_*_atomic``). When it returns, the worker writes the item's
*marker*, ``<marker_dir>/<item key>.json``, holding the item's hash, the outputs and the
result (JSON; numpy arrays are kept exactly): a marker is written only after its outputs
exist. When the pass ends, the driver gathers the markers into one object per 1,000 items
(``<marker_dir>/_batch-<digest>.jsonl.gz``) and deletes the per-item ones, so a finished
pass keeps ``ceil(items / 1000)`` objects, and a rerun of it reads them with one listing
and ``items / 1000`` GETs (plus one listing per folder of inputs and outputs for their
fingerprints and existence), never a request per item. Every step writes before it
deletes, so a driver killed anywhere leaves a superset that a rerun reads correctly.

A rerun takes an item whose marker has the same hash (and whose outputs exist) as
complete, and its result from the marker; anything else runs again. A driver killed in
the middle of a pass therefore resumes at the item. Results always come back
JSON-round-tripped (tuples as lists, dict keys as strings), whether the item ran now or
earlier, so a resumed pass behaves exactly as an uninterrupted one.
:attr:`PassResult.digest` is a hash of every item's hash.

Retries (one policy)
--------------------
A task whose worker or node dies is retried by Ray up to ``max_retries`` times; an
item that raises ``OSError``/``TimeoutError``/``ConnectionError`` (transient storage
trouble) is retried up to the same count, in either mode. Any other exception is a
property of the item (a bug, bad data): it is not retried; the other items go on,
and the pass then raises :class:`PassFailed` (``on_error="raise"``) or reports it
(``on_error="collect"``). Complete items keep their markers, so a rerun after the
fix redoes only the failed ones.

Resources
---------
Ray starts lazily, on the first item that has to run, once per :class:`Executor`
(a rerun of a finished job never starts it). Every task asks for ``num_cpus`` and
``memory_per_worker`` bytes of Ray's ``memory`` resource, so Ray never packs more
tasks on a node than its memory holds; a budget no node can hold is refused before
anything runs.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import gzip
import hashlib
import json
import logging
import math
import os
import re
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curation import storage

logger = logging.getLogger(__name__)

#: exceptions that mean "try again" (storage hiccups), in both modes
TRANSIENT = (OSError, TimeoutError, ConnectionError)
DEFAULT_MEMORY_PER_WORKER = 2 << 30
#: markers gathered per object when a pass ends
BATCH_ITEMS = 1000
BATCH_PREFIX = "_batch-"
MARKER_VERSION = "passes/2"


# --------------------------------------------------------------------------- items and results


@dataclass(frozen=True)
class Item:
    """One unit of a pass (see the module docstring for what is hashed).

    ``key``: unique in the pass and stable across runs (it names the marker).
    ``args``: what ``fn`` is called with (hashed). ``inputs``: files whose fingerprints are
    hashed. ``params``: further JSON-able settings that define the output (hashed).
    ``weight``: heavier items are submitted first (longest-processing-time order); results
    keep the item order. ``outputs``: files the item writes (gone: it runs again).
    ``after``: upstream :class:`PassResult` objects (or their digests) the item reads.
    ``runtime``: keyword arguments for ``fn`` that do not change its output (not hashed).
    """

    key: str
    args: tuple = ()
    inputs: tuple[str, ...] = ()
    params: Any = None
    weight: float = 0.0
    outputs: tuple[str, ...] = ()
    after: tuple[Any, ...] = ()
    runtime: Any = None


@dataclass
class PassResult:
    name: str
    keys: list[str]
    results: list[Any]  # in item order; None for a failed item
    ran: list[str] = field(default_factory=list)  # computed by this call
    skipped: list[str] = field(default_factory=list)  # complete from an earlier run
    failed: dict[str, str] = field(default_factory=dict)  # key -> error
    digest: str = ""
    seconds: float = 0.0
    #: objects the items run by this call wrote (their outputs, through curation.storage), plus the markers
    objects: int = 0
    #: storage requests the driver made for the pass's bookkeeping (listings, marker reads and writes)
    driver_requests: dict[str, int] = field(default_factory=dict)
    #: storage requests the items run by this call made through curation.storage (their markers included)
    item_requests: dict[str, int] = field(default_factory=dict)
    #: items whose marker was complete but an output was gone (run again)
    outputs_missing: list[str] = field(default_factory=list)
    #: per ran item: task CPU seconds (from its marker)
    cpu_s: dict[str, float] = field(default_factory=dict)
    #: per item: its hash
    hashes: dict[str, str] = field(default_factory=dict)

    def item_digest(self, key: str) -> str:
        """The hash of one item, for a downstream item that reads only that item's outputs (``Item.after``)."""
        return self.hashes[key]

    @property
    def ok(self) -> bool:
        return not self.failed

    def by_key(self) -> dict[str, Any]:
        return dict(zip(self.keys, self.results))

    def summary(self) -> dict[str, Any]:
        return {"pass": self.name, "items": len(self.keys), "ran": len(self.ran), "skipped": len(self.skipped),
                "failed": len(self.failed), "seconds": round(self.seconds, 3), "objects_written": self.objects,
                "driver_requests": dict(sorted(self.driver_requests.items())),
                "item_requests": dict(sorted(self.item_requests.items())),
                "outputs_missing": len(self.outputs_missing)}


class PassFailed(RuntimeError):
    def __init__(self, result: PassResult) -> None:
        self.result = result
        first = next(iter(result.failed.items()))
        super().__init__(
            f"pass {result.name}: {len(result.failed)} of {len(result.keys)} items failed "
            f"(first: {first[0]}: {first[1]}); complete items are kept, rerun to retry the others"
        )


# --------------------------------------------------------------------------- JSON with exact numpy arrays


def encode(obj: Any) -> Any:
    """A JSON-able copy of ``obj``; numpy arrays become ``{"__ndarray__": ...}`` (exact bytes)."""
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        return {"__ndarray__": base64.b64encode(arr.tobytes()).decode("ascii"), "dtype": arr.dtype.str,
                "shape": list(arr.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {str(k): encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [encode(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return {"__float__": repr(obj)}
    return obj


def decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            data = base64.b64decode(obj["__ndarray__"])
            return np.frombuffer(data, dtype=np.dtype(obj["dtype"])).reshape(obj["shape"]).copy()
        if "__float__" in obj and len(obj) == 1:
            return float(obj["__float__"])
        return {k: decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- exact hashing


def _qualname(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def canonical(obj: Any, where: str = "value") -> Any:
    """A JSON-able value that identifies ``obj`` exactly, for hashing.

    Plain data as it is; bytes and numpy arrays by their sha256; dataclasses by class and
    fields; objects with a ``fingerprint()`` method (stages) by it; functions and classes by
    their qualified names. Anything else is a ``TypeError`` naming ``where`` it was found: a
    value that cannot be hashed exactly is never hashed by its ``repr``.
    """
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, (bytes, bytearray, memoryview)):
        raw = bytes(obj)
        return {"__bytes__": hashlib.sha256(raw).hexdigest(), "n": len(raw)}
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        if arr.dtype.hasobject:
            return {"__list__": canonical(arr.tolist(), where), "shape": list(arr.shape)}
        return {"__ndarray__": hashlib.sha256(arr.tobytes()).hexdigest(), "dtype": arr.dtype.str,
                "shape": list(arr.shape)}
    if isinstance(obj, np.generic):
        return canonical(obj.item(), where)
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                raise TypeError(f"{where}: a dict key of type {type(k).__name__} cannot be hashed exactly")
            out[str(k)] = canonical(v, f"{where}[{k!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        return [canonical(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, (set, frozenset)):
        items = [canonical(v, where) for v in obj]
        return {"__set__": sorted(items, key=lambda x: json.dumps(x, sort_keys=True))}
    if isinstance(obj, enum.Enum):
        return {"__enum__": _qualname(obj), "value": canonical(obj.value, where)}
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"__class__": _qualname(obj),
                **{f.name: canonical(getattr(obj, f.name), f"{where}.{f.name}") for f in dataclasses.fields(obj)}}
    fp = getattr(obj, "fingerprint", None)
    if callable(fp) and not isinstance(obj, type):
        return {"__class__": _qualname(obj), "fingerprint": canonical(fp(), f"{where}.fingerprint()")}
    if isinstance(obj, type) or callable(obj) and hasattr(obj, "__qualname__"):
        return {"__callable__": f"{obj.__module__}.{obj.__qualname__}"}
    if hasattr(obj, "to_string") and type(obj).__module__.startswith("pyarrow"):
        return {"__arrow__": _qualname(obj), "value": obj.to_string()}
    raise TypeError(
        f"{where}: a {_qualname(obj)} cannot be hashed exactly; make it a dataclass or plain data, give it a "
        "fingerprint() method, or pass it as Item.runtime if it does not change the output"
    )


def digest(obj: Any, n: int = 16) -> str:
    """A short sha256 of :func:`canonical` ``(obj)`` (TypeError for what cannot be hashed exactly)."""
    blob = json.dumps(canonical(obj), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


def upstream_digest(up: Any) -> str:
    """The digest of an upstream pass: a :class:`PassResult` or a digest string."""
    if isinstance(up, PassResult):
        return up.digest
    if isinstance(up, str):
        return up
    raise TypeError(f"Item.after takes PassResult objects or digest strings, not {type(up).__name__}")


# --------------------------------------------------------------------------- the worker side

_SAFE = re.compile(r"[^A-Za-z0-9_.=+-]")
_REPORTED: list[str] = []


def marker_path(marker_dir: str, key: str) -> str:
    safe = _SAFE.sub("_", key)
    if safe != key or len(safe) > 120 or safe.startswith(("_", ".")):
        safe = safe.lstrip("_.")[:100] + "-" + hashlib.sha1(key.encode()).hexdigest()[:10]
    return storage.join(marker_dir, f"{safe}.json")


def report_outputs(*paths: str) -> None:
    """Called inside a pass item: files it wrote beyond ``Item.outputs`` (found at run time, e.g. chunk
    files). They are recorded in the item's marker; a rerun finds the item incomplete when one is gone."""
    _REPORTED.extend(paths)


def release_memory() -> None:
    """Hand the memory freed by the last item back to the operating system.

    A worker process runs many items one after another; Arrow's allocator (mimalloc or
    jemalloc) and glibc's malloc keep freed pages for reuse, so without this the
    process holds the high-water mark of every item it has run, not of the largest
    one. Costs a few milliseconds per item.
    """
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc() -> Any:
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        return None


_LIBC = _load_libc()


def _execute(fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any], marker: str, meta: dict[str, Any]) -> str:
    """Run one item, then write its marker (the item's outputs are already in place); returns the marker."""
    c0, w0 = time.process_time(), time.perf_counter()
    before = Counter(storage.COUNTS)
    del _REPORTED[:]
    try:
        result = encode(fn(*args, **kwargs))
    finally:
        release_memory()
    requests = dict(Counter(storage.COUNTS) - before)
    outputs = list(dict.fromkeys([*meta.get("outputs", []), *_REPORTED]))
    del _REPORTED[:]
    blob = dict(meta, outputs=outputs, result=result, cpu_s=round(time.process_time() - c0, 4),
                wall_s=round(time.perf_counter() - w0, 4), finished=time.time(), host=socket.gethostname(),
                pid=os.getpid(), objects=requests.get("put", 0), requests=requests)
    text = json.dumps(blob, sort_keys=True, indent=1)
    storage.write_bytes_atomic(marker, text.encode())
    return text


def _execute_retrying(fn: Callable[..., Any], marker: str, meta: dict[str, Any], retries: int,
                      kwargs: dict[str, Any] | None, *args: Any) -> str:
    """``_execute`` with the transient-error retries (the arguments come last, so that Ray resolves
    object refs among them)."""
    for attempt in range(retries + 1):
        try:
            return _execute(fn, args, kwargs or {}, marker, meta)
        except TRANSIENT as exc:
            if attempt == retries:
                raise
            logger.warning("pass %s item %s: %r; retrying (%d/%d)", meta["pass"], meta["item"], exc, attempt + 1,
                           retries)
            time.sleep(min(2.0**attempt * 0.1, 5.0))
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- markers on the driver side


@dataclass
class Markers:
    """What a marker folder holds: every entry by item key (several when a rerun left older ones), and
    the objects it was read from."""

    entries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    per_item: list[str] = field(default_factory=list)  # per-item marker files
    batches: list[str] = field(default_factory=list)  # gathered marker objects

    def add(self, blob: Any, first: bool = False) -> None:
        if isinstance(blob, dict) and isinstance(blob.get("item"), str):
            lst = self.entries.setdefault(blob["item"], [])
            if first:
                lst.insert(0, blob)
            else:
                lst.append(blob)

    def find(self, key: str, expected_hash: str) -> dict[str, Any] | None:
        for blob in self.entries.get(key, ()):
            if blob.get("hash") == expected_hash:
                return blob
        return None


def _read_blob(path: str) -> Any:
    try:
        return json.loads(storage.read_bytes(path))
    except (FileNotFoundError, OSError, ValueError):
        return None


def _read_batch(path: str) -> list[dict[str, Any]]:
    try:
        raw = gzip.decompress(storage.read_bytes(path))
    except (FileNotFoundError, OSError, ValueError, EOFError):
        return []
    out = []
    for line in raw.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def load_markers(marker_dir: str) -> Markers:
    """One listing of ``marker_dir``, then its gathered batches and any per-item markers (a pass that was
    interrupted before it gathered them). Per-item markers come first: they are the newest."""
    m = Markers()
    for path in sorted(storage.list_dir(marker_dir)):
        name = path.rsplit("/", 1)[-1]
        if ".tmp-" in name:
            continue
        if name.startswith(BATCH_PREFIX) and name.endswith(".jsonl.gz"):
            m.batches.append(path)
        elif name.endswith(".json"):
            m.per_item.append(path)
    for path in m.batches:
        for blob in _read_batch(path):
            m.add(blob)
    for path in m.per_item:
        m.add(_read_blob(path), first=True)
    return m


def gather_markers(marker_dir: str, markers: Markers, current: dict[str, dict[str, Any]],
                   written: Iterable[str]) -> None:
    """Replace the per-item markers and old batches of ``marker_dir`` by batches of at most
    :data:`BATCH_ITEMS` entries: ``current`` (key -> the entry a rerun must find) first, then the entries of
    other keys the folder held (items of another run sharing the folder). Writes, then deletes."""
    keep: dict[str, dict[str, Any]] = {}
    for key, lst in markers.entries.items():
        if key not in current and lst:
            keep[key] = lst[0]
    keep.update(current)
    names: list[str] = []
    keys = sorted(keep)
    for i in range(0, len(keys), BATCH_ITEMS):
        lines = b"".join(json.dumps(keep[k], sort_keys=True, separators=(",", ":")).encode() + b"\n"
                         for k in keys[i : i + BATCH_ITEMS])
        blob = gzip.compress(lines, compresslevel=6, mtime=0)
        name = storage.join(marker_dir, f"{BATCH_PREFIX}{hashlib.sha256(blob).hexdigest()[:16]}.jsonl.gz")
        if name not in markers.batches:
            storage.write_bytes_atomic(name, blob)
        names.append(name)
    stale = [b for b in markers.batches if b not in names]
    storage.remove([*markers.per_item, *written, *stale])


def forget(marker_dir: str, keys: Iterable[str]) -> None:
    """Drop the markers of ``keys`` from ``marker_dir`` (their items run again next time); other items keep
    theirs. For tools and tests that simulate a lost marker."""
    drop = set(keys)
    m = load_markers(marker_dir)
    keep = {k: lst[0] for k, lst in m.entries.items() if k not in drop and lst}
    gather_markers(marker_dir, Markers(batches=m.batches, per_item=m.per_item), keep, ())


def read_marker(path: str, expected_hash: str) -> tuple[bool, Any]:
    """(complete, result) of one item from its marker: the per-item file, else the folder's gathered
    batches (one listing and the batch reads; prefer :meth:`Executor.completed` for many items)."""
    blob = _read_blob(path)
    if isinstance(blob, dict) and blob.get("hash") == expected_hash:
        return True, decode(blob.get("result"))
    folder = path.rsplit("/", 1)[0]
    markers = Markers()
    for b in storage.list_dir(folder):
        if b.rsplit("/", 1)[-1].startswith(BATCH_PREFIX):
            for entry in _read_batch(b):
                markers.add(entry)
    for lst in markers.entries.values():
        for entry in lst:
            if entry.get("hash") == expected_hash and marker_path(folder, entry["item"]) == path:
                return True, decode(entry.get("result"))
    return False, None


# --------------------------------------------------------------------------- the executor


@dataclass
class ExecConfig:
    """How passes run. ``mode``: ``ray`` (embedded local cluster, or ``address``) or ``local`` (in-process)."""

    mode: str = "ray"
    num_workers: int | None = None  # tasks in flight (and CPUs of an embedded cluster); None: all cores
    address: str | None = None
    max_retries: int = 3
    memory_per_worker: int = DEFAULT_MEMORY_PER_WORKER
    progress: bool = True
    dashboard: bool = False
    resume: bool = True  # False: every item runs again, whatever its marker says

    def __post_init__(self) -> None:
        if self.mode not in ("ray", "local"):
            raise ValueError(f"mode must be 'ray' or 'local', got {self.mode!r}")
        if self.num_workers is not None and self.num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {self.num_workers}")
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.memory_per_worker < 64 << 20:
            raise ValueError(f"memory_per_worker={self.memory_per_worker} is under 64 MiB; raise --memory-per-worker")


# Under this much input (compressed bytes) a job is cheaper in this process than on a new Ray: Ray's start
# takes ~4 s here, and n workers pay it back only after ~4 n / (n - 1) s of work; 16 MiB of input is ~45 MB of
# text, ~5 s of the heaviest recipe (heuristics with language ID, ~9 MB/s per core) and ~1-2 s of a dedup
# recipe (measured: exact/MinHash on 12 MB of parquet, 4 s in-process against 7.8 s on a fresh 2-CPU Ray)
DEFAULT_LOCAL_BELOW_BYTES = 16 << 20


def make_executor(mode: Executor | str | None = "auto", *, input_bytes: int = 0, num_workers: int | None = None,
                  address: str | None = None, local_below_bytes: int = DEFAULT_LOCAL_BELOW_BYTES,
                  **options: Any) -> Executor:
    """The one builder of executors from a run's settings.

    ``mode``: an :class:`Executor` (returned as it is: a job shares one), ``"ray"``, ``"local"``, or
    ``"auto"``/None: in-process when ``input_bytes`` is under ``local_below_bytes`` and no cluster address
    is given (``address`` or ``$RAY_ADDRESS``), where Ray's start-up would cost more than the work, else
    Ray. ``options``: further :class:`ExecConfig` fields (``max_retries``, ``memory_per_worker``,
    ``progress``, ``dashboard``, ``resume``).
    """
    if isinstance(mode, Executor):
        return mode
    mode = mode or "auto"
    if mode not in ("auto", "ray", "local"):
        raise ValueError(f"executor must be an Executor, 'auto', 'ray' or 'local', got {mode!r}")
    if mode == "auto":
        small = input_bytes < local_below_bytes and not (address or os.environ.get("RAY_ADDRESS"))
        mode = "local" if small else "ray"
        if small:
            logger.info("input of %.1f MiB is under %.0f MiB: running in this process (--executor ray forces Ray)",
                        input_bytes / 2**20, local_below_bytes / 2**20)
    return Executor(ExecConfig(mode=mode, num_workers=num_workers, address=address, **options))


class Executor:
    """Runs passes. One per job: Ray (when used) starts once, on the first item that has to run."""

    def __init__(self, config: ExecConfig | None = None) -> None:
        self.cfg = config or ExecConfig()
        self._remote: Any = None
        self._ray_checked = False
        self.ray_start_s: float | None = None  # seconds Ray took to start or join (None: not started)
        self.log: list[dict[str, Any]] = []  # one summary per pass run by this executor

    # Ray ---------------------------------------------------------------------------------
    @property
    def uses_ray(self) -> bool:
        return self.cfg.mode == "ray"

    def ensure_ray(self) -> None:
        """Start (or join) Ray if this executor uses it; check the memory budget against the nodes."""
        if not self.uses_ray or self._ray_checked:
            return
        import ray

        from curation.ray_utils import init_ray

        t0 = time.perf_counter()
        init_ray(self.cfg.address, self.cfg.num_workers, dashboard=self.cfg.dashboard)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        mem = max((n.get("Resources", {}).get("memory", 0) for n in nodes), default=0)
        if mem and self.cfg.memory_per_worker > mem:
            raise ValueError(
                f"--memory-per-worker={self.cfg.memory_per_worker / 2**30:.2f} GiB does not fit on any Ray node "
                f"(largest node offers {mem / 2**30:.2f} GiB to tasks); lower --memory-per-worker"
            )
        self._remote = ray.remote(_execute_retrying)
        self._ray_checked = True
        self.ray_start_s = time.perf_counter() - t0
        logger.info("Ray ready in %.1fs", self.ray_start_s)

    def max_in_flight(self) -> int:
        if self.cfg.num_workers:
            return self.cfg.num_workers
        if self.uses_ray:
            import ray

            return max(1, int(ray.cluster_resources().get("CPU", 1)))
        return 1

    def put(self, obj: Any) -> Any:
        """Share a large argument with every item of a pass: a Ray object ref, or the object itself locally."""
        if not self.uses_ray:
            return obj
        self.ensure_ray()
        import ray

        return ray.put(obj)

    # hashing -----------------------------------------------------------------------------
    def item_hash(self, name: str, fn: Callable[..., Any], version: str, config: Any, item: Item,
                  fingerprints: dict[str, dict[str, Any] | None] | None = None, shared: str | None = None,
                  after: Sequence[Any] = (), _config: Any = None) -> str:
        """The hash that defines ``item``'s output (see the module docstring). ``fingerprints``: listing
        infos of its inputs (default: listed now); ``shared``: the digest of the pass's shared argument;
        ``after``: pass-level upstream passes."""
        if fingerprints is None:
            fingerprints = storage.stat_many(item.inputs)
        fps = [storage.fingerprint_of(fingerprints[p]) if fingerprints.get(p) else "missing" for p in item.inputs]
        where = f"pass {name} item {item.key}"
        return digest({
            "marker": MARKER_VERSION, "pass": name, "fn": f"{fn.__module__}.{fn.__qualname__}", "version": version,
            "config": canonical(config, f"{where} config") if _config is None else _config, "key": item.key,
            "params": canonical(item.params, f"{where} params"), "args": canonical(item.args, f"{where} args"),
            "shared": shared, "inputs": list(item.inputs), "fingerprints": fps,
            "after": sorted({upstream_digest(u) for u in (*after, *item.after)}),
        })  # fmt: skip

    def hashes(self, name: str, fn: Callable[..., Any], items: Sequence[Item], *, config: Any = None,
               version: str = "1", shared: Any = None, after: Sequence[Any] = (),
               listing: dict[str, dict[str, Any] | None] | None = None) -> list[str]:
        """Every item's hash, with one listing per folder of inputs (``listing``: infos the caller has
        listed already; inputs missing from it are listed)."""
        wanted = {p for it in items for p in it.inputs}
        known = {p: listing[p] for p in wanted if listing and p in listing}
        infos = {**known, **storage.stat_many(wanted - set(known))}
        sd = None if shared is None else digest(canonical(shared, f"pass {name} shared argument"))
        cc = canonical(config, f"pass {name} config")  # once per pass, not per item
        return [self.item_hash(name, fn, version, config, it, infos, sd, after, _config=cc) for it in items]

    def completed(self, name: str, fn: Callable[..., Any], items: Sequence[Item], *, marker_dir: str,
                  config: Any = None, version: str = "1", shared: Any = None,
                  after: Sequence[Any] = ()) -> list[bool]:
        """Which items a :meth:`run` with these arguments would take as complete (reads only)."""
        hashes = self.hashes(name, fn, items, config=config, version=version, shared=shared, after=after)
        markers = load_markers(marker_dir)
        done = [markers.find(it.key, h) for it, h in zip(items, hashes)]
        outs = {p for it, b in zip(items, done) if b for p in (*it.outputs, *b.get("outputs", []))}
        infos = storage.stat_many(outs) if outs else {}
        return [b is not None and all(infos.get(p) for p in (*it.outputs, *b.get("outputs", [])))
                for it, b in zip(items, done)]

    # passes ------------------------------------------------------------------------------
    def run(
        self,
        name: str,
        fn: Callable[..., Any],
        items: Sequence[Item],
        *,
        marker_dir: str,
        config: Any = None,
        version: str = "1",
        on_error: str = "raise",
        num_cpus: float = 1,
        num_gpus: float = 0,
        memory: int | None = None,
        resume: bool | None = None,
        on_result: Callable[[Item, Any], None] | None = None,
        progress: str | None = None,
        count: Callable[[Any], int] | None = None,
        shared: Any = None,
        after: Sequence[Any] = (),
        listing: dict[str, dict[str, Any] | None] | None = None,
    ) -> PassResult:
        """Run ``fn`` over ``items``; see the module docstring.

        ``fn`` must be a module-level function (Ray ships it by reference). ``shared``, when
        given, is appended to every item's arguments (and hashed once); it is shipped once
        (``ray.put``), and only if some item has to run. ``after``: upstream passes every item
        reads (their digests are hashed). ``on_result`` sees each item's result as it arrives
        (skipped items first, in item order). ``listing``: listing infos of input files the caller
        has already (:func:`curation.storage.stat_many`). ``progress`` names the progress bar (default:
        the pass name); ``count`` maps a result to the documents it stands for, shown as a rate.
        ``num_cpus``/``num_gpus``/``memory``: what each Ray task asks for (``memory`` defaults to
        ``memory_per_worker``; in-process they are ignored).
        """
        if on_error not in ("raise", "collect"):
            raise ValueError(f"on_error must be 'raise' or 'collect', got {on_error!r}")
        keys = [it.key for it in items]
        if len(set(keys)) != len(keys):
            seen: set[str] = set()
            dup = sorted({k for k in keys if k in seen or seen.add(k)})[:5]
            raise ValueError(f"pass {name}: item keys must be unique; repeated: {dup}")
        t0 = time.perf_counter()
        counts0 = Counter(storage.COUNTS)
        hashes = self.hashes(name, fn, items, config=config, version=version, shared=shared, after=after,
                             listing=listing)
        res = PassResult(name, keys, [None] * len(items), digest=digest(hashes), hashes=dict(zip(keys, hashes)))
        resume = self.cfg.resume if resume is None else resume
        markers = load_markers(marker_dir)
        found = [markers.find(it.key, h) if resume else None for it, h in zip(items, hashes)]
        # a complete item whose outputs are gone runs again: one listing per output folder
        outs = {p for it, b in zip(items, found) if b for p in (*it.outputs, *b.get("outputs", []))}
        infos = storage.stat_many(outs) if outs else {}
        current: dict[str, dict[str, Any]] = {}
        todo: list[int] = []
        for i, (it, blob) in enumerate(zip(items, found)):
            if blob is not None and not all(infos.get(p) for p in (*it.outputs, *blob.get("outputs", []))):
                res.outputs_missing.append(it.key)
                blob = None
            if blob is None:
                todo.append(i)
                continue
            current[it.key] = blob
            value = decode(blob.get("result"))
            res.results[i] = value
            res.skipped.append(it.key)
            if on_result is not None:
                on_result(it, value)
        if res.outputs_missing:
            logger.warning("pass %s: %d complete items lost an output and run again (first: %s)", name,
                           len(res.outputs_missing), res.outputs_missing[0])
        item_requests: Counter[str] = Counter()  # made in this process (local mode), not the driver's
        all_items: Counter[str] = Counter()
        written: list[str] = []
        if todo:
            from curation.progress import Progress

            bar = Progress(len(todo), progress or name, enabled=self.cfg.progress)
            metas = {i: {"pass": name, "item": keys[i], "hash": hashes[i], "outputs": list(items[i].outputs),
                         "marker": MARKER_VERSION} for i in todo}
            tail = () if shared is None else (self.put(shared),)
            order = sorted(todo, key=lambda i: (-items[i].weight, keys[i]))

            def finish(i: int, text: str | None = None, error: str | None = None) -> None:
                if error is not None:
                    res.failed[keys[i]] = error
                    logger.error("pass %s: item %s failed: %s", name, keys[i], error)
                    bar.update(0, failed=True)
                    return
                blob = json.loads(text)
                value = decode(blob["result"])
                current[keys[i]] = blob
                written.append(marker_path(marker_dir, keys[i]))
                res.objects += int(blob.get("objects", 0)) + 1
                res.cpu_s[keys[i]] = float(blob.get("cpu_s", 0.0))
                all_items.update(blob.get("requests", {}))
                all_items["put"] += 1  # its marker
                if not self.uses_ray:
                    item_requests.update(blob.get("requests", {}))
                    item_requests["put"] += 1  # its marker
                res.results[i] = value
                res.ran.append(keys[i])
                if on_result is not None:
                    on_result(items[i], value)
                bar.update(count(value) if count is not None else 0)

            try:
                if self.uses_ray:
                    self._run_ray(fn, items, order, metas, marker_dir, num_cpus, num_gpus, memory, finish, tail)
                else:
                    for i in order:
                        try:
                            text = _execute_retrying(fn, marker_path(marker_dir, keys[i]), metas[i],
                                                     self.cfg.max_retries, items[i].runtime, *items[i].args, *tail)
                        except Exception as exc:  # noqa: BLE001 - recorded per item; the pass goes on
                            finish(i, error=f"{type(exc).__name__}: {exc}")
                            continue
                        finish(i, text)
            finally:
                bar.close()
        if written or markers.per_item or res.outputs_missing or len(markers.batches) > max(
                1, math.ceil(len(current) / BATCH_ITEMS)):
            before = Counter(storage.COUNTS)
            gather_markers(marker_dir, markers, current, written)
            res.objects += (Counter(storage.COUNTS) - before).get("put", 0)
        res.seconds = time.perf_counter() - t0
        driver = Counter(storage.COUNTS) - counts0 - item_requests
        res.driver_requests = {k: v for k, v in driver.items() if v}
        res.item_requests = dict(all_items)
        self.log.append(res.summary())
        if todo or res.failed:
            logger.info("pass %s: %d items, %d run, %d complete from before, %d failed, %.1fs", name, len(items),
                        len(res.ran), len(res.skipped), len(res.failed), res.seconds)
        if res.failed and on_error == "raise":
            raise PassFailed(res)
        return res

    def _run_ray(self, fn, items, order, metas, marker_dir, num_cpus, num_gpus, memory, finish, tail) -> None:  # noqa: ANN001
        import ray

        self.ensure_ray()
        opts = {"num_cpus": num_cpus, "max_retries": self.cfg.max_retries, "retry_exceptions": False}
        if num_gpus:
            opts["num_gpus"] = num_gpus
        mem = self.cfg.memory_per_worker if memory is None else memory
        if mem:
            opts["memory"] = int(mem)
        remote = self._remote.options(**opts)
        cap = self.max_in_flight()
        pending: dict[Any, int] = {}
        queue = list(order)
        while queue or pending:
            while queue and len(pending) < cap:
                i = queue.pop(0)
                ref = remote.remote(fn, marker_path(marker_dir, items[i].key), metas[i], self.cfg.max_retries,
                                    items[i].runtime, *items[i].args, *tail)
                pending[ref] = i
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i = pending.pop(ref)
                try:
                    text = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - recorded per item; the pass goes on
                    cause = getattr(exc, "cause", None) or exc
                    finish(i, error=f"{type(cause).__name__}: {cause}")
                    continue
                finish(i, text)
