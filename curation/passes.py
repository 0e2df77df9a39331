"""One primitive for all distributed work: a *pass* runs a function over items.

DESIGN.md, "Distributed passes and scale". A pass runs ``fn(*item.args)`` for every
:class:`Item` (a shard, a partition, a bucket, a trial) as Ray tasks, at most
``max_in_flight`` at a time (``ray.wait``), or one after another in this process
(``mode="local"``: tests, tiny inputs). Every pass in the project (the runner's shard
phases, each global stage's map/reduce/component rounds, token building, ablation
trials) goes through :meth:`Executor.run`, so resume, retries, progress and the
in-process mode behave the same everywhere.

Completion and resume
---------------------
``fn`` writes its outputs itself, each atomically (``curation.storage.write_*_atomic``).
When it returns, the worker writes the item's *marker*,
``<marker_dir>/<item key>.json``, holding a hash of what defines the item's output:

    (pass name, fn's module and name, version, config, item key, item params,
     fingerprints of the item's input files)

and the item's result (JSON; numpy arrays are kept exactly). A rerun reads the
marker: the same hash means the item is complete, its result is taken from the
marker and nothing runs. Anything else (no marker, another hash) runs it again. A
driver killed in the middle of a pass therefore resumes at the item. Results always
come back JSON-round-tripped (tuples as lists, dict keys as strings), whether the
item ran now or earlier, so a resumed pass behaves exactly as an uninterrupted one.

Passes chain: :attr:`PassResult.digest` is a hash of every item's hash; a pass that
reads another pass's outputs puts that digest in its ``config``, so a recomputed
upstream invalidates it.

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
import hashlib
import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curation import storage

logger = logging.getLogger(__name__)

#: exceptions that mean "try again" (storage hiccups), in both modes
TRANSIENT = (OSError, TimeoutError, ConnectionError)
DEFAULT_MEMORY_PER_WORKER = 2 << 30


# --------------------------------------------------------------------------- items and results


@dataclass(frozen=True)
class Item:
    """One unit of a pass.

    ``key``: unique in the pass and stable across runs (it names the marker file).
    ``args``: what ``fn`` is called with (not hashed: describe the output with
    ``params`` and ``inputs``). ``inputs``: files whose fingerprints (size and mtime,
    or the object store's ETag) are part of the completion hash. ``params``: JSON-able
    settings of this item beyond the pass ``config``. ``weight``: heavier items are
    submitted first (longest-processing-time order); results keep the item order.
    """

    key: str
    args: tuple = ()
    inputs: tuple[str, ...] = ()
    params: Any = None
    weight: float = 0.0


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

    @property
    def ok(self) -> bool:
        return not self.failed

    def by_key(self) -> dict[str, Any]:
        return dict(zip(self.keys, self.results))

    def summary(self) -> dict[str, Any]:
        return {"pass": self.name, "items": len(self.keys), "ran": len(self.ran), "skipped": len(self.skipped),
                "failed": len(self.failed), "seconds": round(self.seconds, 3)}


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


def digest(obj: Any, n: int = 16) -> str:
    blob = json.dumps(encode(obj), sort_keys=True, separators=(",", ":"), default=repr).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


# --------------------------------------------------------------------------- the worker side

_SAFE = re.compile(r"[^A-Za-z0-9_.=+-]")


def marker_path(marker_dir: str, key: str) -> str:
    safe = _SAFE.sub("_", key)
    if safe != key or len(safe) > 120:
        safe = safe[:100] + "-" + hashlib.sha1(key.encode()).hexdigest()[:10]
    return storage.join(marker_dir, f"{safe}.json")


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


def _execute(fn: Callable[..., Any], args: tuple, marker: str, meta: dict[str, Any]) -> Any:
    """Run one item, then write its marker (the item's outputs are already in place)."""
    c0, w0 = time.process_time(), time.perf_counter()
    try:
        result = encode(fn(*args))
    finally:
        release_memory()
    blob = dict(meta, result=result, cpu_s=round(time.process_time() - c0, 4),
                wall_s=round(time.perf_counter() - w0, 4), host=socket.gethostname(), pid=os.getpid())
    text = json.dumps(blob, sort_keys=True, indent=1)
    storage.write_bytes_atomic(marker, text.encode())
    return decode(json.loads(text)["result"])  # exactly what a resumed pass reads back


def _execute_retrying(fn: Callable[..., Any], marker: str, meta: dict[str, Any], retries: int, *args: Any) -> Any:
    """``_execute`` with the transient-error retries (the arguments come last, so that Ray resolves
    object refs among them)."""
    for attempt in range(retries + 1):
        try:
            return _execute(fn, args, marker, meta)
        except TRANSIENT as exc:
            if attempt == retries:
                raise
            logger.warning("pass %s item %s: %r; retrying (%d/%d)", meta["pass"], meta["item"], exc, attempt + 1,
                           retries)
            time.sleep(min(2.0**attempt * 0.1, 5.0))
    raise AssertionError("unreachable")


def read_marker(path: str, expected_hash: str) -> tuple[bool, Any]:
    """(complete, result) of an item from its marker file."""
    try:
        blob = storage.read_json(path)
    except (FileNotFoundError, OSError, ValueError):
        return False, None
    if not isinstance(blob, dict) or blob.get("hash") != expected_hash:
        return False, None
    return True, decode(blob.get("result"))


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

    # passes ------------------------------------------------------------------------------
    def item_hash(self, name: str, fn: Callable[..., Any], version: str, config: Any, item: Item) -> str:
        fps = []
        for p in item.inputs:
            try:
                fps.append(storage.fingerprint(p))
            except (FileNotFoundError, OSError):
                fps.append("missing")
        return digest({"pass": name, "fn": f"{fn.__module__}.{fn.__qualname__}", "version": version,
                       "config": config, "key": item.key, "params": item.params, "inputs": list(item.inputs),
                       "fingerprints": fps})  # fmt: skip

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
    ) -> PassResult:
        """Run ``fn`` over ``items``; see the module docstring.

        ``fn`` must be a module-level function (Ray ships it by reference). ``shared``, when
        given, is appended to every item's arguments; it is shipped once (``ray.put``), and
        only if some item has to run. ``on_result``
        sees each item's result as it arrives (skipped items first, in item order).
        ``progress`` names the progress bar (default: the pass name); ``count`` maps a
        result to the documents it stands for, shown as a rate. ``num_cpus``/``num_gpus``/``memory``:
        what each Ray task asks for (``memory`` defaults to ``memory_per_worker``; in-process they are ignored).
        """
        if on_error not in ("raise", "collect"):
            raise ValueError(f"on_error must be 'raise' or 'collect', got {on_error!r}")
        keys = [it.key for it in items]
        if len(set(keys)) != len(keys):
            dup = sorted({k for k in keys if keys.count(k) > 1})[:5]
            raise ValueError(f"pass {name}: item keys must be unique; repeated: {dup}")
        t0 = time.perf_counter()
        hashes = [self.item_hash(name, fn, version, config, it) for it in items]
        res = PassResult(name, keys, [None] * len(items), digest=digest(hashes))
        resume = self.cfg.resume if resume is None else resume
        todo: list[int] = []
        for i, (it, h) in enumerate(zip(items, hashes)):
            done, value = read_marker(marker_path(marker_dir, it.key), h) if resume else (False, None)
            if done:
                res.results[i] = value
                res.skipped.append(it.key)
                if on_result is not None:
                    on_result(it, value)
            else:
                todo.append(i)
        if todo:
            from curation.progress import Progress

            bar = Progress(len(todo), progress or name, enabled=self.cfg.progress)
            metas = {i: {"pass": name, "item": items[i].key, "hash": hashes[i]} for i in todo}
            tail = () if shared is None else (self.put(shared),)
            order = sorted(todo, key=lambda i: (-items[i].weight, keys[i]))

            def finish(i: int, value: Any = None, error: str | None = None) -> None:
                if error is not None:
                    res.failed[keys[i]] = error
                    logger.error("pass %s: item %s failed: %s", name, keys[i], error)
                    bar.update(0, failed=True)
                    return
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
                            value = _execute_retrying(fn, marker_path(marker_dir, keys[i]), metas[i],
                                                      self.cfg.max_retries, *items[i].args, *tail)
                        except Exception as exc:  # noqa: BLE001 - recorded per item; the pass goes on
                            finish(i, error=f"{type(exc).__name__}: {exc}")
                            continue
                        finish(i, value)
            finally:
                bar.close()
        res.seconds = time.perf_counter() - t0
        summary = res.summary()
        self.log.append(summary)
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
                                    *items[i].args, *tail)
                pending[ref] = i
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i = pending.pop(ref)
                try:
                    value = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - recorded per item; the pass goes on
                    cause = getattr(exc, "cause", None) or exc
                    finish(i, error=f"{type(cause).__name__}: {cause}")
                    continue
                finish(i, value)
