"""Shared fixtures: small curated runs written with curation.storage, a tokenizer trained on them, one Ray session."""

from __future__ import annotations

import os
import random

import pytest

from curation.schema import docs_table
from curation.storage import write_json_atomic, write_parquet_atomic

WORDS = (
    "the of and to in data model token stream window shuffle mix curated web page text 2024 3.14 "
    "café naïve Ünïcödé 東京 數據 🙂 — « » tab\tsep a b c x y z quick brown fox jumps over lazy dog"
).split(" ")


def make_docs(rng: random.Random, n: int, max_words: int = 300) -> list[str]:
    docs = []
    for _ in range(n):
        k = rng.randint(1, max_words)
        words = [rng.choice(WORDS) for _ in range(k)]
        for i in range(0, k, rng.randint(8, 40)):
            words[i] = words[i] + rng.choice(["\n", "\n\n", ".", ","])
        docs.append(" ".join(words))
    return docs


def write_run(root: str, tag: str, shard_sizes: list[int], seed: int, recipe_hash: str | None = "h") -> list[list[str]]:
    """A curation run dir: data/<shard>.parquet (DOC_SCHEMA + an extra column) and run.json. Returns texts by shard."""
    rng = random.Random(seed)
    shards = []
    for s, n in enumerate(shard_sizes):
        texts = make_docs(rng, n)
        if s == 0 and n > 3:
            texts[2] = ""  # an empty document: skipped and counted
        table = docs_table([f"{tag}/{s}/{i}" for i in range(n)], texts, tag)
        table = table.append_column("quality_score", [[rng.random() for _ in range(n)]])
        write_parquet_atomic(os.path.join(root, "data", f"{s:05d}.parquet"), table)
        shards.append(texts)
    if recipe_hash is not None:
        write_json_atomic(os.path.join(root, "run.json"), {"recipe_hash": f"{recipe_hash}-{tag}", "other": 1})
    return shards


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    a = write_run(str(root / "web"), "web", [120, 90, 150], seed=1)
    b = write_run(str(root / "code"), "code", [60, 70], seed=2)
    return {"web": str(root / "web"), "code": str(root / "code"), "web_texts": a, "code_texts": b}


@pytest.fixture(scope="session")
def tokenizer(corpus, tmp_path_factory):
    from curation.tokens import train_tokenizer

    prefix = str(tmp_path_factory.mktemp("tok") / "spm")
    return train_tokenizer([corpus["web"], corpus["code"]], prefix, vocab_size=600, sample_docs=400, seed=0)


@pytest.fixture(scope="session")
def ray_session():
    import ray

    from curation.ray_utils import init_ray

    init_ray(num_workers=2)
    yield
    ray.shutdown()
