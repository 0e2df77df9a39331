"""Module-level functions run as pass items by tests/curation/test_passes.py (Ray workers import them
as tests.pass_fns; functions defined in a test module are not importable by workers)."""

from __future__ import annotations

import json
import os
import time

import numpy as np

from curation import storage


def square_to_file(x: int, out: str) -> dict:
    storage.write_json_atomic(out, {"x": x, "y": x * x})
    with open(out + ".calls", "a") as f:
        f.write("1\n")
    return {"y": x * x, "arr": np.arange(x, dtype=np.uint64), "t": (x, "a")}


def fails_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"bad item {x}")
    return x


def flaky(counter: str, failures: int) -> str:
    n = int(open(counter).read()) if os.path.exists(counter) else 0
    with open(counter, "w") as f:
        f.write(str(n + 1))
    if n < failures:
        raise OSError("transient storage trouble")
    return "ok"


def timed_sleep(log: str, i: int) -> int:
    t0 = time.time()
    time.sleep(0.3)
    with open(log, "a") as f:
        f.write(json.dumps([i, t0, time.time()]) + "\n")
    return i


def churn_arrow(n_arrays: int) -> int:
    """Allocate ``n_arrays`` 1.6 MB Arrow arrays (as a batch loop does) and drop them all."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays = [pc.add(pa.array(np.arange(200_000, dtype=np.int64)), 1) for _ in range(n_arrays)]
    return len(arrays)


def fails_while_flagged(x: int, flags: str) -> int:
    """Fails while the file ``<flags>.<x>`` exists (a bug in the item's data, fixed by removing it)."""
    if os.path.exists(f"{flags}.{x}"):
        raise ValueError(f"bad item {x}")
    return x


def with_runtime(x: int, out: str, threads: int = 1) -> dict:
    """Writes ``out``; ``threads`` changes how it runs, not what it writes (an Item.runtime argument)."""
    storage.write_json_atomic(out, {"x": x})
    with open(out + ".calls", "a") as f:
        f.write(f"{threads}\n")
    return {"x": x, "threads": threads}
