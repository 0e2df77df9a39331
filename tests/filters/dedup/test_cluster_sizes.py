"""Rehydration metadata: exact and MinHash dedup record ``dup_cluster_size`` on every kept document, the number of
input documents it stands for, summed across stages (exact text -> URL -> MinHash), equal to the brute-force
cluster sizes and conserved through a run (the kept sizes add up to the documents in)."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq

from curation.runner import run_recipe
from curation.stage import PhaseShard, ShardContext
from filters.dedup import ExactDedup, MinHashDedup
from filters.dedup.common import CLUSTER_COLUMN
from filters.dedup.synthetic import vocabulary

from .conftest import apply_stage, docs, local_ctx, write_shards

VOCAB = vocabulary(5000)  # letters only: MinHash's normalisation folds digits


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(n))


def _near(rng: random.Random, text: str) -> str:
    words = text.split()
    i = rng.randrange(len(words))
    words[i] = "edited"
    return " ".join(words)


def planted(seed: int = 0, n: int = 240) -> tuple[list[str], list[str | None], list[int]]:
    """Texts, URLs and the ground-truth cluster of each document (by exact copy, same URL or one-word edit).

    Copies are made of documents that are not themselves URL duplicates: the URL stage removes those before
    MinHash runs, so a copy of one would be a cluster of its own (the stages are not transitive)."""
    rng = random.Random(seed)
    texts, urls, root = [], [], []
    copyable: list[int] = []
    for i in range(n):
        r = rng.random()
        if i > 10 and r < 0.25:  # an exact copy (case and spacing changed) of an earlier document
            j = rng.choice(copyable)
            texts.append("  " + texts[j].upper())
            urls.append(None)
            root.append(root[j])
        elif i > 10 and r < 0.4:  # a near copy (one word of 200)
            j = rng.choice(copyable)
            texts.append(_near(rng, texts[j]))
            urls.append(None)
            root.append(root[j])
        elif i > 10 and r < 0.45:  # another text at an earlier document's URL
            j = next(k for k in range(i - 1, -1, -1) if urls[k])
            texts.append(_words(rng, 200))
            urls.append(urls[j].replace("https://", "http://www."))
            root.append(root[j])
            continue
        else:
            texts.append(_words(rng, 200))
            urls.append(f"https://site{i}.org/page")
            root.append(i)
        copyable.append(i)
    return texts, urls, root


def _tables(texts, urls, n_shards=3):
    per = -(-len(texts) // n_shards)
    return [docs(texts[i : i + per], prefix=f"s{i:04d}-", urls=urls[i : i + per]) for i in range(0, len(texts), per)]


def test_exact_then_minhash_sizes_equal_the_clusters(tmp_path):
    texts, urls, root = planted()
    shards = write_shards(tmp_path, _tables(texts, urls))
    ids = [i for s in shards for i in pq.read_table(s.path).column("id").to_pylist()]
    current = shards
    stages = [ExactDedup(key="text"), ExactDedup(key="url"), MinHashDedup(threshold=0.8)]
    kept: dict[str, tuple[str, int]] = {}
    for k, stage in enumerate(stages):
        stage.load_state(stage.fit(local_ctx(current, tmp_path / f"fit{k}")))
        tables = [stage.process(pq.read_table(s.path), ShardContext(s.shard_id, s.input_path)).kept for s in current]
        folder = tmp_path / f"after{k}"
        folder.mkdir()
        nxt = []
        for s, t in zip(current, tables):  # the kept rows, new column included, are the next stage's input
            pq.write_table(t, folder / f"{s.shard_id}.parquet")
            nxt.append(PhaseShard(s.shard_id, str(folder / f"{s.shard_id}.parquet"), s.input_path))
        current = nxt
        if k == len(stages) - 1:
            for t in tables:
                kept.update(zip(t.column("id").to_pylist(), zip(t.column("text").to_pylist(),
                                                                 t.column(CLUSTER_COLUMN).to_pylist())))
    expected: dict[int, int] = {}
    for r in root:
        expected[r] = expected.get(r, 0) + 1
    first_of: dict[int, str] = {}
    for i, r in zip(ids, root):
        first_of.setdefault(r, i)
    # every cluster keeps its first document in corpus order, which carries the cluster's size
    assert {i: size for i, (_, size) in kept.items()} == {first_of[r]: n for r, n in expected.items()}
    assert sum(size for _, size in kept.values()) == len(texts)
    assert max(size for _, size in kept.values()) >= 3


def test_sizes_through_the_runner(tmp_path):
    texts, urls, root = planted(seed=1, n=300)
    rows = [{"id": f"d{i:04d}", "text": t, "url": u} for i, (t, u) in enumerate(zip(texts, urls))]
    inp = tmp_path / "in"
    inp.mkdir()
    for k in range(3):
        with open(inp / f"part{k}.jsonl", "w") as f:
            for r in rows[k * 100 : (k + 1) * 100]:
                f.write(json.dumps(r) + "\n")
    res = run_recipe([ExactDedup(), ExactDedup(key="url"), MinHashDedup()], [str(inp / "*.jsonl")],
                     str(tmp_path / "run"), executor="local", progress=False)
    assert res.ok
    out = pa.concat_tables(pq.read_table(p) for p in sorted((tmp_path / "run" / "data").glob("*.parquet")))
    sizes = dict(zip(out.column("id").to_pylist(), out.column(CLUSTER_COLUMN).to_pylist()))
    assert sum(sizes.values()) == len(texts)  # every input document is stood for exactly once
    expected: dict[int, int] = {}
    for r in root:
        expected[r] = expected.get(r, 0) + 1
    assert sorted(sizes.values()) == sorted(expected.values())
    assert out.schema.field(CLUSTER_COLUMN).type == pa.int64()


def test_column_on_every_batch_and_absent_lists(tmp_path):
    texts = ["alpha beta gamma delta"] * 3 + ["other text here"]
    shards = write_shards(tmp_path, [docs(texts)])
    stage = ExactDedup()
    stage.load_state(stage.fit(local_ctx(shards, tmp_path / "fit")))
    got = apply_stage(stage, shards, batch_rows=1)
    assert {k: r for k, (_, r) in got.items()} == {"d00000": None, "d00001": "dedup:exact", "d00002": "dedup:exact",
                                                  "d00003": None}
    t = pq.read_table(shards[0].path)
    res = stage.process(t.slice(0, 0), ShardContext(shards[0].shard_id, "in"))
    assert CLUSTER_COLUMN in res.kept.column_names  # an empty batch has the column too
    res = stage.process(t, ShardContext(shards[0].shard_id, "in"))
    assert res.kept.column(CLUSTER_COLUMN).to_pylist() == [3, 1]
    res = stage.process(t, ShardContext("unknown", "in"))  # no lists for this shard: nothing dropped, sizes 1
    assert res.kept.column(CLUSTER_COLUMN).to_pylist() == [1, 1, 1, 1]
