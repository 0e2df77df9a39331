"""Small real stages used by the runner tests (importable by Ray workers as tests.stages_for_tests)."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from curation import storage
from curation.passes import Item
from curation.stage import (
    Filter,
    FittedState,
    GlobalContext,
    GlobalStage,
    Mapper,
    ShardContext,
    StageResult,
    split_by_reason,
)


class DropShort(Filter):
    name = "drop_short"

    def __init__(self, min_chars: int = 20) -> None:
        self.min_chars = min_chars

    def decide(self, table: pa.Table) -> pa.Array:
        short = pc.less(pc.utf8_length(table.column("text")), self.min_chars)
        return pc.if_else(short, pa.scalar("too_short"), pa.scalar(None, pa.string()))


class Upper(Mapper):
    name = "upper"

    def transform(self, table: pa.Table):
        i = table.column_names.index("text")
        return table.set_column(i, "text", pc.utf8_upper(table.column("text"))), None


class Boom(Mapper):
    """Raises on any batch holding a document with 'BOOM' (after Upper): exercises row isolation."""

    name = "boom"

    def __init__(self, setup_dir: str | None = None) -> None:
        self.setup_dir = setup_dir

    def setup(self) -> None:
        """Leaves one file per call, so a test can count set-ups per worker process."""
        if self.setup_dir:
            os.makedirs(self.setup_dir, exist_ok=True)
            with open(os.path.join(self.setup_dir, f"{os.getpid()}-{time.time_ns()}"), "w"):
                pass

    def transform(self, table: pa.Table):
        if pc.any(pc.match_substring(table.column("text"), "BOOM")).as_py():
            raise ValueError("boom")
        return table, None


class Slow(Mapper):
    """Sleeps per batch and records its worker pid (for the kill test)."""

    name = "slow"

    def __init__(self, seconds: float, pid_dir: str) -> None:
        self.seconds = seconds
        self.pid_dir = pid_dir

    def transform(self, table: pa.Table):
        os.makedirs(self.pid_dir, exist_ok=True)
        with open(os.path.join(self.pid_dir, str(os.getpid())), "w") as f:
            f.write(str(time.time()))
        time.sleep(self.seconds)
        return table, None


def _hash_shard(path: str) -> list[tuple[str, str]]:
    t = storage.read_parquet(path, columns=["id", "text"])
    return [(hashlib.sha1(x.encode()).hexdigest(), i) for i, x in zip(t["id"].to_pylist(), t["text"].to_pylist())]


@dataclass(frozen=True)
class RemoveList(FittedState):
    remove: str = ""


class ExactTextDedup(GlobalStage):
    """Keeps the smallest id among documents with identical text (a minimal global stage)."""

    name = "exact_text"
    state_type = RemoveList

    def fit(self, ctx: GlobalContext) -> RemoveList:
        items = [Item(s.shard_id, (s.path,), inputs=(s.path,)) for s in ctx.shards]
        pairs = [p for part in ctx.run_pass("hash", _hash_shard, items).results for p in part]
        best: dict[str, str] = {}
        for h, i in pairs:
            if h not in best or i < best[h]:
                best[h] = i
        remove = sorted(i for h, i in pairs if best[h] != i)
        path = storage.join(ctx.workdir, "remove.json")
        storage.write_json_atomic(path, remove)
        return RemoveList(summary={"removed": len(remove)}, remove=path)

    def process(self, table: pa.Table, shard: ShardContext | None = None) -> StageResult:
        remove = pa.array(storage.read_json(self.state.remove), pa.string())
        dup = pc.is_in(table.column("id"), value_set=remove)
        return split_by_reason(table, pc.if_else(dup, pa.scalar("dup"), pa.scalar(None, pa.string())))


def kill_processes_mentioning(text: str) -> None:
    """SIGKILL every process whose command line contains ``text`` (a test's own Ray temp dir):
    `ray stop` would stop every Ray on the machine."""
    import signal

    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
