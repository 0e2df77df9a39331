"""Shared fixtures of the dedup tests: fit contexts (in-process or Ray), shard writers, real documents."""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pytest

from curation.passes import ExecConfig, Executor
from curation.schema import DOC_SCHEMA
from curation.stage import GlobalContext, PhaseShard, ShardContext
from curation.storage import read_parquet, write_parquet_atomic

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
CORPORA = DATA / "corpora"


@pytest.fixture(scope="module")
def ray_session():
    import ray

    from curation.ray_utils import init_ray

    init_ray(num_workers=2)
    yield
    ray.shutdown()


def local_ctx(shards: list[PhaseShard], workdir: Path, workers: int = 1, memory: int = 2 << 30) -> GlobalContext:
    """A fit context whose passes run in this process."""
    ex = Executor(ExecConfig(mode="local", num_workers=workers, progress=False, memory_per_worker=memory))
    return GlobalContext(shards=shards, workdir=str(workdir), num_workers=workers, executor=ex,
                         memory_per_worker=memory)


def ray_ctx(shards: list[PhaseShard], workdir: Path, workers: int = 2) -> GlobalContext:
    """A fit context whose passes run as Ray tasks (the module's ``ray_session`` must be up).

    Tasks ask Ray for 256 MiB each so that the shared test machine schedules them; the layout
    (partition counts) uses the same 2 GiB budget as :func:`local_ctx`.
    """
    ex = Executor(ExecConfig(mode="ray", num_workers=workers, progress=False, memory_per_worker=256 << 20))
    return GlobalContext(shards=shards, workdir=str(workdir), num_workers=workers, executor=ex,
                         memory_per_worker=2 << 30)


def pass_counts(ctx: GlobalContext) -> dict[str, tuple[int, int]]:
    """(items run, items complete from before) per pass of the fits run with ``ctx``'s executor."""
    return {p["pass"]: (p["ran"], p["skipped"]) for p in ctx.executor.log}


def removal_bytes(state) -> dict[str, bytes]:  # noqa: ANN001 - RemovalLists or BffDecisions
    paths = getattr(state, "removal", None) or state.decisions
    return {sid: open(p, "rb").read() for sid, p in sorted(paths.items())}


def apply_stage(stage, shards: list[PhaseShard], batch_rows: int | None = None) -> dict:  # noqa: ANN001
    """``process`` every shard (in batches): {id: (text or None, reason or None)}."""
    out = {}
    for s in shards:
        t = read_parquet(s.path)
        step = batch_rows or max(1, t.num_rows)
        for i in range(0, t.num_rows, step):
            b = t.slice(i, step)
            res = stage.process(b, ShardContext(s.shard_id, s.input_path))
            assert res.kept.num_rows + res.dropped.num_rows == b.num_rows
            out.update({k: (v, None) for k, v in zip(res.kept.column("id").to_pylist(),
                                                     res.kept.column("text").to_pylist())})
            out.update({k: (None, r) for k, r in zip(res.dropped.column("id").to_pylist(),
                                                     res.dropped.column("reason").to_pylist())})
    return out


def write_shards(folder: Path, tables: list[pa.Table], prefix: str = "shard") -> list[PhaseShard]:
    shards = []
    for i, t in enumerate(tables):
        path = folder / f"{prefix}{i:03d}.parquet"
        write_parquet_atomic(str(path), t.cast(DOC_SCHEMA) if t.schema != DOC_SCHEMA else t)
        shards.append(PhaseShard(f"{prefix}{i:03d}", str(path), f"input/{prefix}{i:03d}.jsonl"))
    return shards


def docs(texts: list[str], prefix: str = "d", source: str = "test", urls: list[str | None] | None = None) -> pa.Table:
    n = len(texts)
    return pa.table(
        {
            "id": [f"{prefix}{i:05d}" for i in range(n)],
            "text": pa.array(texts, pa.large_string()),
            "source": [source] * n,
            "url": urls if urls is not None else [None] * n,
            "metadata": [None] * n,
        },
        schema=DOC_SCHEMA,
    )


def _jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def real_documents(chunk_words: int = 150) -> list[str]:
    """Real texts from ../shared/data: jsonl corpora, web text files, and Shakespeare cut into chunks."""
    if not CORPORA.is_dir():
        pytest.skip("../shared/data is absent")
    return list(_real_documents(chunk_words))


@functools.lru_cache(maxsize=2)
def _real_documents(chunk_words: int) -> tuple[str, ...]:
    texts: list[str] = []
    for pattern in ["c4/*.json.gz", "redpajama/*.jsonl", "dedup/*.jsonl", "dolma/cc_en_head-*.jsonl.gz"]:
        for p in sorted(CORPORA.glob(pattern)):
            texts += [r["text"] for r in _jsonl(p) if isinstance(r.get("text"), str)]
    for p in sorted((CORPORA / "text").glob("*/*.txt")) + sorted((CORPORA / "text" / "wikitext-103-raw").glob("*")):
        if p.is_file():
            texts.append(p.read_text(encoding="utf-8", errors="replace"))
    shakespeare = CORPORA / "text" / "tinyshakespeare_input.txt"
    if shakespeare.exists():
        words = shakespeare.read_text(encoding="utf-8").split()
        texts += [" ".join(words[i : i + chunk_words]) for i in range(0, len(words) - chunk_words, chunk_words)]
    return tuple(t for t in texts if t.strip())
