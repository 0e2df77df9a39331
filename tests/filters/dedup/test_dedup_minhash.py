"""MinHash-LSH: quality against brute-force Jaccard, planted near duplicates, determinism, components."""

from __future__ import annotations

import itertools
import math
import random
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pytest

from curation.io import read_parquet
from curation.stage import GlobalContext, ShardContext
from filters.dedup.common import node_ids
from filters.dedup.components import connected_components
from filters.dedup.hashing import normalize_fuzzy
from filters.dedup.minhash import (
    MinHashDedup,
    _candidate_pairs,
    band_keys,
    measure_s_curve,
    minhash_signatures,
    s_curve,
)
from filters.dedup.synthetic import generate_shard, vocabulary

from .conftest import docs, real_documents, write_shards

NGRAM = 5


def shingle_sets(texts: list[str]) -> list[set[tuple[str, ...]]]:
    """Reference shingles: Python tuples of normalised words (no hashing involved)."""
    out = []
    for t in normalize_fuzzy(pa.array(texts, pa.large_string())).to_pylist():
        w = t.split()
        if not w:
            out.append(set())
        elif len(w) < NGRAM:
            out.append({tuple(w)})
        else:
            out.append({tuple(w[i : i + NGRAM]) for i in range(len(w) - NGRAM + 1)})
    return out


def brute_force_pairs(sets: list[set]) -> dict[tuple[int, int], float]:
    """Exact Jaccard of every pair sharing at least one shingle (all others have Jaccard 0)."""
    postings: dict[tuple, list[int]] = defaultdict(list)
    for i, s in enumerate(sets):
        for sh in s:
            postings[sh].append(i)
    inter: dict[tuple[int, int], int] = defaultdict(int)
    for lst in postings.values():
        if len(lst) > 1:
            for pair in itertools.combinations(lst, 2):
                inter[pair] += 1
    return {(i, j): c / (len(sets[i]) + len(sets[j]) - c) for (i, j), c in inter.items()}


def mutate(text: str, frac: float, rng: random.Random, vocab: list[str]) -> str:
    words = text.split()
    return " ".join(rng.choice(vocab) if rng.random() < frac else w for w in words)


@pytest.fixture(scope="module")
def quality_corpus():
    real = real_documents()
    vocab = vocabulary(5000)
    synth = generate_shard(0, 1000, seed=3, exact_frac=0, near_frac=0, para_frac=0).column("text").to_pylist()
    base = real + synth
    rng = random.Random(11)
    variants = []
    for i in rng.sample(range(len(base)), 450):
        if len(base[i].split()) < 40:
            continue
        for _ in range(3):
            variants.append(mutate(base[i], rng.uniform(0.0, 0.05), rng, vocab))
    texts = base + variants
    return texts, brute_force_pairs(shingle_sets(texts))


def test_quality_against_brute_force_jaccard(quality_corpus):
    """Pairs flagged by LSH + verification vs exact Jaccard: recall on J >= 0.9, precision at the threshold."""
    texts, truth = quality_corpus
    assert len(texts) >= 3000
    stage = MinHashDedup()
    sig = minhash_signatures(
        pa.array(texts, pa.large_string()), NGRAM, stage.num_bands * stage.rows_per_band, stage.seed
    )
    has = (sig != np.uint32(0xFFFFFFFF)).any(axis=1)
    keys = band_keys(sig, stage.num_bands, stage.rows_per_band)
    nodes = np.repeat(np.arange(len(texts), dtype=np.uint64), stage.num_bands)
    keep = np.repeat(has, stage.num_bands)
    u, v = _candidate_pairs(keys.ravel()[keep], nodes[keep])
    est = (sig[u.astype(np.int64)] == sig[v.astype(np.int64)]).mean(axis=1)
    flagged = {(int(a), int(b)) for a, b, e in zip(u, v, est) if e >= stage.verify_at}
    candidates = set(zip(u.astype(int).tolist(), v.astype(int).tolist()))

    high = {p for p, j in truth.items() if j >= 0.9}
    assert len(high) >= 300, "the corpus must hold many near-duplicate pairs"
    recall = len(high & flagged) / len(high)
    cand_recall = len(high & candidates) / len(high)
    precision = sum(truth.get(p, 0.0) >= stage.threshold for p in flagged) / len(flagged)
    near_precision = sum(truth.get(p, 0.0) >= stage.threshold - 0.05 for p in flagged) / len(flagged)
    print(
        f"pairs J>=0.9: {len(high)}, flagged {len(flagged)}, recall {recall:.4f} (candidates {cand_recall:.4f}), "
        f"precision@{stage.threshold} {precision:.4f}, within 0.05 {near_precision:.4f}"
    )
    assert cand_recall >= 0.99
    assert recall >= 0.95
    assert precision >= 0.95
    # the S-curve holds: pairs far below the threshold are almost never flagged
    low = [p for p in flagged if truth.get(p, 0.0) < 0.6]
    assert len(low) <= 0.002 * len(flagged)


def test_estimated_jaccard_is_unbiased(quality_corpus):
    texts, truth = quality_corpus
    pairs = [p for p, j in truth.items() if 0.3 <= j <= 0.98][:400]
    sig = minhash_signatures(pa.array(texts, pa.large_string()), NGRAM, 112, 1)
    err = [float((sig[i] == sig[j]).mean()) - truth[(i, j)] for i, j in pairs]
    assert abs(np.mean(err)) < 0.01  # unbiased
    assert np.std(err) < 0.06  # sqrt(J(1-J)/112) <= 0.047


def test_measured_s_curve_follows_theory():
    texts = real_documents()[:150]
    curve = measure_s_curve(texts, NGRAM, 14, 8, None, seed=1, variants=12)
    for lo, n, rate, th in zip(curve["jaccard_bin_low"], curve["pairs"], curve["candidate_rate"], curve["theory"]):
        if n >= 40:
            sd = np.sqrt(max(th * (1 - th), 0.01) / n)
            assert abs(rate - th) < 4 * sd + 0.08, (lo, n, rate, th)
    assert s_curve(0.9, 14, 8) > 0.999 and s_curve(0.5, 14, 8) < 0.06


def _fit(shards, tmp_path, name, workers, **kw):
    stage = MinHashDedup(**kw)
    state = stage.fit(GlobalContext(shards=shards, workdir=str(tmp_path / name), num_workers=workers))
    stage.load_state(state)
    return stage, state


def _removed(stage, shards, batch_rows=None):
    out = {}
    for s in shards:
        t = read_parquet(s.path)
        batches = [t] if batch_rows is None else [t.slice(i, batch_rows) for i in range(0, t.num_rows, batch_rows)]
        for b in batches:
            res = stage.process(b, ShardContext(s.shard_id, s.input_path))
            assert res.kept.num_rows + res.dropped.num_rows == b.num_rows
            for i, r in zip(res.dropped.column("id").to_pylist(), res.dropped.column("reason").to_pylist()):
                out[i] = r
    return out


def _poisson_bound(mean: float, tail: float) -> int:
    """The smallest m with P(Poisson(mean) > m) < tail."""
    m, cdf, term = 0, math.exp(-mean), math.exp(-mean)
    while 1 - cdf >= tail:
        m += 1
        term *= mean / m
        cdf += term
    return m


def test_planted_near_duplicates_removed_and_deterministic(ray_session, tmp_path):
    tables = [generate_shard(s, 600, seed=5, exact_frac=0.04, near_frac=0.08) for s in range(3)]
    shards = write_shards(tmp_path, tables)
    stage, state = _fit(shards, tmp_path, "w2", 2, docs_per_partition=300, min_partitions=3)
    removed = _removed(stage, shards, batch_rows=250)
    assert set(removed.values()) == {"dedup:minhash"}
    import json

    all_docs = pa.concat_tables(tables)
    ids = all_docs.column("id").to_pylist()
    meta = [json.loads(m) if m else {} for m in all_docs.column("metadata").to_pylist()]
    texts = all_docs.column("text").to_pylist()
    sets = shingle_sets(texts)
    index = {i: k for k, i in enumerate(ids)}
    planted = [(k, index[m["dup_of"]]) for k, m in enumerate(meta) if m.get("kind") in ("near", "exact")]
    assert len(planted) > 100
    # the stage's own decision per pair, from the same signatures its map tasks compute
    n_fns = stage.num_bands * stage.rows_per_band
    sig = minhash_signatures(pa.array(texts, pa.large_string()), NGRAM, n_fns, stage.seed)
    keys = band_keys(sig, stage.num_bands, stage.rows_per_band)
    k_fns = sig.shape[1]
    need = math.ceil(stage.verify_at * k_fns - 1e-9)  # equal values a verified pair needs
    rejected, expected_rejected, high = 0, 0.0, 0
    for k, j in planted:
        jac = len(sets[k] & sets[j]) / len(sets[k] | sets[j])
        accepted = bool((keys[k] == keys[j]).any()) and int((sig[k] == sig[j]).sum()) >= need
        if accepted:  # every pair the decision rule accepts is removed (the copy comes after its original)
            assert ids[k] in removed, (ids[k], jac)
        if jac >= 0.9:
            high += 1
            rejected += not accepted
            # P(fewer than `need` of K independent functions agree | Jaccard jac): a binomial tail
            expected_rejected += sum(math.comb(k_fns, i) * jac**i * (1 - jac) ** (k_fns - i) for i in range(need))
    # near copies at J >= 0.9 are removed except for the estimator's own rare misses: the
    # verification threshold sits ~2.5-3 standard deviations below J = 0.9-0.93, so a miss has a
    # probability near 0.1-1% per pair (expected ~0.15 over these pairs). Allow the count whose
    # Poisson tail is below 1e-3, so any hash family that behaves like independent functions passes.
    bound = _poisson_bound(expected_rejected, 1e-3)
    assert high > 100 and rejected <= bound, (rejected, bound, expected_rejected)
    # whatever is removed is a near copy of something kept earlier: its cluster id names a kept document
    summary = state["summary"]
    assert summary["documents_removed"] == len(removed)
    assert summary["largest_clusters"] and summary["largest_clusters"][0]["size"] >= 2
    assert summary["s_curve_measured"]["pairs"]
    for c in summary["largest_clusters"]:
        assert c["kept"] not in removed

    # identical removal lists with one worker and on a rerun
    stage1, state1 = _fit(shards, tmp_path, "w1", 1, docs_per_partition=300, min_partitions=3)
    stage_r, state_r = _fit(shards, tmp_path, "w2r", 2, docs_per_partition=300, min_partitions=3)
    for st in (state1, state_r):
        for sid, path in state["removal"].items():
            assert read_parquet(st["removal"][sid]).equals(read_parquet(path))


@pytest.mark.slow
def test_partition_count_changes_layout_not_result(ray_session, tmp_path):
    tables = [generate_shard(s, 600, seed=5, exact_frac=0.04, near_frac=0.08) for s in range(3)]
    shards = write_shards(tmp_path, tables)
    stage_a, _ = _fit(shards, tmp_path, "a", 2, docs_per_partition=300, min_partitions=3)
    stage_b, _ = _fit(shards, tmp_path, "b", 2, docs_per_partition=10_000, min_partitions=1)
    assert _removed(stage_a, shards) == _removed(stage_b, shards)


def test_no_duplicates_no_removal(ray_session, tmp_path):
    def word(i: int, k: int) -> str:  # digits normalise to 0, so spell numbers with letters
        return "".join("abcdefghij"[int(c)] for c in f"{i}x{k}".replace("x", "9"))

    texts = [" ".join(word(i, k) for k in range(30)) for i in range(200)]
    texts += ["", "   ", "short"]  # no shingles / one shingle: never crash
    shards = write_shards(tmp_path, [docs(texts)])
    stage, state = _fit(shards, tmp_path, "w", 2)
    assert state["summary"]["documents_removed"] == 0
    assert state["summary"]["documents_without_signature"] == 2
    assert _removed(stage, shards) == {}


def _union_find(edges, nodes):
    parent = {n: n for n in nodes}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {n: find(n) for n in nodes}


@pytest.mark.parametrize("num_partitions", [1, 3, 7])
def test_components_match_union_find(tmp_path, num_partitions):
    from filters.dedup.common import partition_of, save_arrays

    rng = np.random.default_rng(num_partitions)
    nodes = np.concatenate([node_ids(s, 0, 300) for s in range(3)])
    edges = set()
    chain = rng.permutation(nodes)[:40]  # a long path, in scrambled id order: many rounds
    edges |= {(int(a), int(b)) for a, b in zip(chain[:-1], chain[1:])}
    for _ in range(300):
        a, b = rng.choice(nodes, 2, replace=False)
        edges.add((int(a), int(b)))
    u = np.array([e[0] for e in edges], np.uint64)
    v = np.array([e[1] for e in edges], np.uint64)
    src, dst = np.concatenate([u, v]), np.concatenate([v, u])
    part = partition_of(src, num_partitions)
    for q in range(num_partitions):
        sel = part == q
        save_arrays(str(tmp_path / "edges" / f"q{q:05d}" / "from00000.npz"), src=src[sel], dst=dst[sel])
    res = connected_components(str(tmp_path / "edges"), str(tmp_path / "cc"), str(tmp_path), num_partitions, 2)
    from filters.dedup.common import list_files, load_arrays

    got = {}
    for f in list_files(str(tmp_path / "removed")):
        for g in list_files(f):
            a = load_arrays(g)
            got.update(zip(a["node"].tolist(), a["label"].tolist()))
    graph_nodes = set(src.tolist())
    ref = _union_find(edges, graph_nodes)
    expected = {n: r for n, r in ref.items() if n != r}
    assert got == expected
    assert res["rounds"] > 3  # the path needed several propagation rounds
    sizes = sum(c["clusters"] for c in res["cluster_stats"])
    assert sizes == len(set(ref.values()))
    with pytest.raises(RuntimeError, match="no convergence"):
        connected_components(
            str(tmp_path / "edges"), str(tmp_path / "cc2"), str(tmp_path / "o2"), num_partitions, 2, max_rounds=2
        )


def test_candidate_pairs_small_and_large_buckets():
    # bucket A: 5 members -> all 10 pairs; bucket B: 40 members -> star from the minimum + chain (connected)
    key = np.array([7] * 5 + [9] * 40 + [11], dtype=np.uint64)  # a singleton bucket gives nothing
    node = np.array(list(range(100, 105)) + list(range(240, 200, -1)) + [5], dtype=np.uint64)
    u, v = _candidate_pairs(key, node)
    pairs = set(zip(u.tolist(), v.tolist()))
    assert {(a, b) for a in range(100, 105) for b in range(a + 1, 105)} <= pairs
    big = {(a, b) for a, b in pairs if a >= 201}
    assert all(a < b for a, b in pairs)
    assert {(201, b) for b in range(202, 241)} <= big  # star from the bucket minimum
    assert len(big) < 2 * 40  # linear, not quadratic, in the bucket size
    assert not any(5 in p for p in pairs)
