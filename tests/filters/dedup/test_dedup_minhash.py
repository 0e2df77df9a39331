"""MinHash-LSH: quality against brute-force Jaccard, planted near duplicates, determinism, components
(against union-find, resumed round by round), the memory layout."""

from __future__ import annotations

import glob
import itertools
import json
import logging
import math
import os
import random
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pytest

from curation.passes import forget
from filters.dedup.common import load_arrays, node_ids, partition_of, save_arrays
from filters.dedup.components import connected_components
from filters.dedup.hashing import normalize_fuzzy
from filters.dedup.minhash import (
    MinHashConfig,
    MinHashDedup,
    _candidate_pairs,
    band_keys,
    measure_s_curve,
    minhash_signatures,
    s_curve,
)
from filters.dedup.synthetic import generate_shard, vocabulary

from .conftest import apply_stage, docs, local_ctx, pass_counts, ray_ctx, real_documents, removal_bytes, write_shards

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
    stage = MinHashDedup().cfg
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


def _fit(shards, workdir, workers=1, **kw):
    stage = MinHashDedup(**kw)
    ctx = local_ctx(shards, workdir, workers)
    state = stage.fit(ctx)
    stage.load_state(json.loads(json.dumps(state.to_json())))  # as the runner reloads state.json
    assert stage.state == state
    return stage, state, ctx


def _removed(stage, shards, batch_rows=None):
    return {k: r for k, (_, r) in apply_stage(stage, shards, batch_rows).items() if r is not None}


PLANTED = {"docs_per_partition": 300, "min_partitions": 3}


def _poisson_bound(mean: float, tail: float) -> int:
    """The smallest m with P(Poisson(mean) > m) < tail."""
    m, cdf, term = 0, math.exp(-mean), math.exp(-mean)
    while 1 - cdf >= tail:
        m += 1
        term *= mean / m
        cdf += term
    return m


def _planted(tmp_path):
    tables = [generate_shard(s, 600, seed=5, exact_frac=0.04, near_frac=0.08) for s in range(3)]
    return tables, write_shards(tmp_path, tables)


def test_planted_near_duplicates_removed_and_deterministic(tmp_path):
    tables, shards = _planted(tmp_path)
    stage, state, _ = _fit(shards, tmp_path / "w1", **PLANTED)
    removed = _removed(stage, shards, batch_rows=250)
    assert set(removed.values()) == {"dedup:minhash"}

    all_docs = pa.concat_tables(tables)
    ids = all_docs.column("id").to_pylist()
    meta = [json.loads(m) if m else {} for m in all_docs.column("metadata").to_pylist()]
    texts = all_docs.column("text").to_pylist()
    sets = shingle_sets(texts)
    index = {i: k for k, i in enumerate(ids)}
    planted = [(k, index[m["dup_of"]]) for k, m in enumerate(meta) if m.get("kind") in ("near", "exact")]
    assert len(planted) > 100
    # the stage's own decision per pair, from the same signatures its map tasks compute
    cfg = stage.cfg
    sig = minhash_signatures(pa.array(texts, pa.large_string()), NGRAM, cfg.num_perm, cfg.seed)
    keys = band_keys(sig, cfg.num_bands, cfg.rows_per_band)
    k_fns = sig.shape[1]
    need = math.ceil(cfg.verify_at * k_fns - 1e-9)  # equal values a verified pair needs
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
    # near copies at J >= 0.9 are removed except for the estimator's own rare misses (the verification
    # threshold sits ~2.5-3 standard deviations below J = 0.9-0.93): allow the count whose Poisson tail
    # is below 1e-3, so any hash family that behaves like independent functions passes.
    bound = _poisson_bound(expected_rejected, 1e-3)
    assert high > 100 and rejected <= bound, (rejected, bound, expected_rejected)
    # whatever is removed is a near copy of something kept earlier: its cluster id names a kept document
    summary = state.summary
    assert summary["documents_removed"] == len(removed)
    assert summary["partitions"] == 6  # 1,800 documents / docs_per_partition
    assert summary["components_rounds"] >= 3
    assert summary["largest_clusters"] and summary["largest_clusters"][0]["size"] >= 2
    assert summary["s_curve_measured"]["pairs"] and state.plots and os.path.exists(state.plots[0])
    for c in summary["largest_clusters"]:
        assert c["kept"] not in removed and c["examples"] and all(e in removed for e in c["examples"])

    # identical removal lists with more workers in flight, several map chunks per shard, and on a rerun
    skip = ("config", "s_curve_measured")
    for name, workers, kw in (("w3", 3, {}), ("chunks", 1, {"map_buffer_docs": 40, "batch_size": 64}),
                              ("again", 1, {})):
        _, other, _ = _fit(shards, tmp_path / name, workers, **PLANTED, **kw, measure_curve=False)
        assert removal_bytes(other) == removal_bytes(state)
        assert {k: v for k, v in other.summary.items() if k not in skip} == \
            {k: v for k, v in summary.items() if k not in skip}
    assert len(glob.glob(str(tmp_path / "chunks" / "minhash" / "bands" / "p00000" / "s000000-c*.npz"))) > 3


@pytest.mark.integration
def test_ray_and_in_process_give_identical_removal_lists(ray_session, tmp_path):
    _, shards = _planted(tmp_path)
    _, local, _ = _fit(shards, tmp_path / "local", **PLANTED)
    ctx = ray_ctx(shards, tmp_path / "ray")
    remote = MinHashDedup(**PLANTED).fit(ctx)
    assert removal_bytes(remote) == removal_bytes(local)
    assert remote.summary == local.summary
    assert pass_counts(ctx)["cc_r002"][0] == 6  # the component rounds ran as Ray tasks too


@pytest.mark.slow
def test_partition_count_changes_layout_not_result(tmp_path):
    tables = [generate_shard(s, 600, seed=5, exact_frac=0.04, near_frac=0.08) for s in range(3)]
    shards = write_shards(tmp_path, tables)
    stage_a, _, _ = _fit(shards, tmp_path / "a", docs_per_partition=300, min_partitions=3)
    stage_b, _, _ = _fit(shards, tmp_path / "b", docs_per_partition=10_000, min_partitions=1)
    assert _removed(stage_a, shards) == _removed(stage_b, shards)


def test_no_duplicates_no_removal(tmp_path):
    def word(i: int, k: int) -> str:  # digits normalise to 0, so spell numbers with letters
        return "".join("abcdefghij"[int(c)] for c in f"{i}x{k}".replace("x", "9"))

    texts = [" ".join(word(i, k) for k in range(30)) for i in range(200)]
    texts += ["", "   ", "short"]  # no shingles / one shingle: never crash
    shards = write_shards(tmp_path, [docs(texts)])
    stage, state, _ = _fit(shards, tmp_path / "w")
    assert state.summary["documents_removed"] == 0
    assert state.summary["documents_without_signature"] == 2
    assert _removed(stage, shards) == {}


def test_layout_follows_the_corpus_and_the_budget_and_refuses_what_cannot_fit():
    st = MinHashDedup()
    p1, buf = st.layout(10**7, 2 << 30)
    assert st.layout(10**8, 2 << 30)[0] in range(10 * p1 - 10, 10 * p1 + 1)  # grows with the corpus
    assert st.layout(10**7, 4 << 30)[0] < p1 and st.layout(10**7, 4 << 30)[1] > buf  # and with the budget
    assert st.layout(10, 2 << 30)[0] == 4  # min_partitions
    assert MinHashDedup(docs_per_partition=1000).layout(10**6, 2 << 30)[0] == 1000
    with pytest.raises(ValueError, match="lower docs_per_partition"):
        MinHashDedup(docs_per_partition=10**7).check_budget(2 << 30)  # 10M x 14 bands x 128 B
    MinHashDedup(docs_per_partition=10**5).check_budget(2 << 30)
    with pytest.raises(ValueError, match="map_buffer_docs"):
        MinHashDedup(map_buffer_docs=10**8).check_budget(2 << 30)
    with pytest.raises(ValueError, match="memory-per-worker"):
        MinHashDedup().check_budget(300 << 20)
    with pytest.raises(ValueError, match="not both"):
        MinHashDedup(MinHashConfig(), threshold=0.9)
    with pytest.raises(ValueError, match="threshold"):
        MinHashConfig(threshold=1.5)
    assert MinHashDedup(MinHashConfig(threshold=0.9)).config() == MinHashDedup(threshold=0.9).config()


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


def _edge_files(tmp_path, num_partitions, seed):
    """A random graph with a long scrambled path (many rounds), as edge files per partition."""
    rng = np.random.default_rng(seed)
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
    files = []
    for q in range(num_partitions):
        sel = part == q
        path = str(tmp_path / "edges" / f"q{q:05d}" / "from00000.npz")
        save_arrays(path, src=src[sel], dst=dst[sel])
        files.append([path])
    return edges, set(src.tolist()), files


def _labels(res):
    got = {}
    for files in res.removed_files:
        for f in files:
            a = load_arrays(f)
            got.update(zip(a["node"].tolist(), a["label"].tolist()))
    return got


@pytest.mark.parametrize("num_partitions", [1, 3, 7])
def test_components_match_union_find(tmp_path, num_partitions):
    edges, graph_nodes, files = _edge_files(tmp_path, num_partitions, num_partitions)
    ctx = local_ctx([], tmp_path / "fit")
    res = connected_components(ctx, files, str(tmp_path / "cc"), str(tmp_path), 3, upstream="edges")
    ref = _union_find(edges, graph_nodes)
    assert _labels(res) == {n: r for n, r in ref.items() if n != r}
    assert len(res.rounds) > 3  # the path needed several propagation rounds
    assert sum(c["clusters"] for c in res.cluster_stats) == len(set(ref.values()))
    assert res.removed == len(_labels(res)) and res.nodes == len(graph_nodes)
    # every round but the last two is cleaned up once the next one is complete
    assert sorted(os.listdir(tmp_path / "cc" / "labels")) == [f"r{len(res.rounds) - 1:03d}"]
    with pytest.raises(RuntimeError, match="no convergence"):
        connected_components(local_ctx([], tmp_path / "fit2"), files, str(tmp_path / "cc2"), str(tmp_path / "o2"),
                             3, upstream="edges", max_rounds=2)


def test_components_resume_round_by_round(tmp_path, caplog):
    edges, graph_nodes, files = _edge_files(tmp_path, 4, 1)
    ref = _union_find(edges, graph_nodes)
    cc, out = str(tmp_path / "cc"), str(tmp_path)
    first = connected_components(local_ctx([], tmp_path / "fit"), files, cc, out, 3, upstream="edges")
    n = len(first.rounds)
    assert n > 3
    # a rerun replays every round from its markers, (changed, sent) counts included, and runs nothing
    ctx = local_ctx([], tmp_path / "fit")
    again = connected_components(ctx, files, cc, out, 3, upstream="edges")
    assert again.rounds == first.rounds and _labels(again) == _labels(first)
    assert all(ran == 0 for ran, _ in pass_counts(ctx).values())
    # markers of an already cleaned-up round lost (round 1's inputs are gone): start over from round 0
    forget(str(tmp_path / "fit" / "_passes" / "cc_r001"), [f"q{q:05d}" for q in (0, 2)])
    ctx = local_ctx([], tmp_path / "fit")
    with caplog.at_level(logging.WARNING, logger="filters.dedup.components"):
        redo = connected_components(ctx, files, cc, out, 3, upstream="edges")
    assert any("starting the components again" in r.getMessage() for r in caplog.records)
    assert redo.rounds == first.rounds and _labels(redo) == {k: r for k, r in ref.items() if k != r}
    assert pass_counts(ctx)["cc_r000"] == (4, 0)
    # another upstream digest (new edges) makes every round run again
    ctx = local_ctx([], tmp_path / "fit")
    connected_components(ctx, files, cc, out, 3, upstream="other edges")
    assert all(pass_counts(ctx)[f"cc_r{k:03d}"] == (4, 0) for k in range(n))


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
