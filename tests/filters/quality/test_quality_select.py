from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.schema import docs_table
from curation.stage import GlobalContext, PhaseShard
from filters.quality import QualityThreshold, TopFractionSelect
from filters.quality.select import REASON_BELOW, REASON_MISSING, REASON_NOT_TOP, score_keys


@pytest.fixture(scope="module")
def ray_local():
    import ray

    from curation.ray_utils import init_ray

    init_ray(num_workers=2)
    yield
    ray.shutdown()


def _scored(scores: list[float | None], source: str = "s", prefix: str = "d") -> pa.Table:
    t = docs_table([f"{prefix}{i}" for i in range(len(scores))], ["x"] * len(scores), source)
    return t.append_column("quality_score", pa.array(scores, pa.float32()))


def test_threshold_boundaries_and_reasons() -> None:
    table = _scored([0.5, 0.49999, 0.9, None, float("nan"), 0.0, 1.0])
    result = QualityThreshold(0.5).process(table)
    assert result.kept.column("id").to_pylist() == ["d0", "d2", "d6"]  # == threshold is kept
    reasons = dict(zip(result.dropped.column("id").to_pylist(), result.dropped.column("reason").to_pylist()))
    assert reasons == {"d1": REASON_BELOW, "d3": REASON_MISSING, "d4": REASON_MISSING, "d5": REASON_BELOW}
    assert result.kept.num_rows + result.dropped.num_rows == table.num_rows


def test_threshold_needs_the_score_column_and_a_finite_threshold() -> None:
    with pytest.raises(ValueError, match="QualityScorer"):
        QualityThreshold(0.5).process(docs_table(["a"], ["x"], "s"))
    for bad in (float("nan"), float("inf"), "0.5"):
        with pytest.raises(ValueError):
            QualityThreshold(bad)  # type: ignore[arg-type]


def test_score_keys_order_is_descending_score() -> None:
    rng = np.random.default_rng(1)
    vals = np.r_[rng.normal(size=200), 0.0, -0.0, np.inf, -np.inf, 1.0, 1.0].astype(np.float32)
    keys = score_keys(vals)
    order = np.argsort(keys, kind="stable")
    assert np.all(np.diff(vals[order].astype(np.float64)) <= 0)
    assert score_keys(np.array([0.0], np.float32))[0] == score_keys(np.array([-0.0], np.float32))[0]
    nan_key = score_keys(np.array([np.nan], np.float32))[0]
    assert nan_key >= keys.max()  # NaN ranks after everything (never selected first)


def _write_shards(tmp: Path, n_shards: int, per_shard: int, seed: int) -> tuple[list[PhaseShard], pa.Table]:
    rng = np.random.default_rng(seed)
    shards, tables = [], []
    for s in range(n_shards):
        n = per_shard + s * 7  # uneven shards
        scores = np.round(rng.random(n), 1)  # heavy ties: 11 distinct values
        source = ["web", "books", "code"][s % 3]
        t = _scored(scores.tolist(), source=source, prefix=f"s{s}-")
        path = tmp / f"shard{s}.parquet"
        pq.write_table(t, path)
        shards.append(PhaseShard(f"shard{s}", str(path), str(path)))
        tables.append(t)
    return shards, pa.concat_tables(tables)


def _apply(stage: TopFractionSelect, shards: list[PhaseShard]) -> tuple[list[str], int]:
    kept, dropped = [], 0
    for s in shards:
        res = stage.process(pq.read_table(s.path))
        kept += res.kept.column("id").to_pylist()
        assert set(res.dropped.column("reason").to_pylist()) <= {REASON_NOT_TOP}
        dropped += res.dropped.num_rows
    return kept, dropped


@pytest.mark.parametrize("fraction", [0.1, 0.37, 0.0, 1.0])
def test_top_fraction_keeps_the_exact_count_of_the_best(tmp_path: Path, fraction: float) -> None:
    shards, everything = _write_shards(tmp_path, 4, 150, seed=3)
    n = everything.num_rows
    # max_candidates=5 forces the multi-pass radix select through the id-hash digits
    stage = TopFractionSelect(fraction, max_candidates=5)
    state = stage.fit(GlobalContext(shards=shards, workdir=str(tmp_path / "work"), num_workers=2, seed=7))
    json.dumps(state.to_json())  # the runner saves it as JSON
    kept, dropped = _apply(stage, shards)
    expected = math.floor(fraction * n + 0.5)
    assert len(kept) == expected and len(kept) + dropped == n
    assert len(set(kept)) == len(kept)
    scores = dict(zip(everything.column("id").to_pylist(), everything.column("quality_score").to_pylist()))
    if 0 < expected < n:
        kept_scores = [scores[i] for i in kept]
        rest = [v for i, v in scores.items() if i not in set(kept)]
        assert min(kept_scores) >= max(rest)  # the best ones, ties cut at one score
        assert state.summary["threshold"] == pytest.approx(min(kept_scores))
        assert state.summary["passes"] > 3  # the radix path really ran
    summary = state.summary
    assert summary["n_in"] == n and summary["n_kept"] == expected
    assert sum(v["kept"] for v in summary["by_source"].values()) == expected
    assert sum(v["n"] for v in summary["by_source"].values()) == n


def test_top_fraction_is_independent_of_candidate_budget_and_workers(tmp_path: Path) -> None:
    shards, _ = _write_shards(tmp_path, 3, 120, seed=4)
    results = []
    for max_candidates, workers in [(1 << 20, 2), (3, 1), (50, 2)]:
        stage = TopFractionSelect(0.25, max_candidates=max_candidates)
        stage.fit(
            GlobalContext(shards=shards, workdir=str(tmp_path / f"w{max_candidates}"), num_workers=workers, seed=1)
        )
        results.append(sorted(_apply(stage, shards)[0]))
    assert results[0] == results[1] == results[2]
    # a different seed breaks the ties differently but keeps the same count
    other = TopFractionSelect(0.25)
    other.fit(GlobalContext(shards=shards, workdir=str(tmp_path / "seed2"), num_workers=2, seed=2))
    assert len(_apply(other, shards)[0]) == len(results[0])


def test_top_fraction_resumes_and_reduces_many_histograms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second fit over the same inputs runs no item (the passes' markers); a fit whose histograms are summed by
    reduce passes (FAN_IN lowered to 2) keeps exactly what the driver-side sum keeps."""
    from curation.passes import ExecConfig, Executor
    from filters.quality import select

    shards, _ = _write_shards(tmp_path, 5, 60, seed=6)
    direct = TopFractionSelect(0.3, max_candidates=4)
    direct.fit(GlobalContext(shards=shards, workdir=str(tmp_path / "direct"), seed=3))
    monkeypatch.setattr(select, "FAN_IN", 2)
    ex = Executor(ExecConfig(mode="local", progress=False))
    ctx = GlobalContext(shards=shards, workdir=str(tmp_path / "reduced"), seed=3, executor=ex, fit_key="f")
    state = TopFractionSelect(0.3, max_candidates=4).fit(ctx)
    first = {p["pass"]: p for p in ex.log}
    assert {"sum-d0-0", "sum-d0-1", "gather", "cut"} <= set(first)  # 5 -> 3 -> 2 files, then the driver
    assert first["sum-d0-0"]["items"] == 3 and first["keys"]["ran"] == 5
    assert state.cut == direct.state.cut and state.summary["n_kept"] == direct.state.summary["n_kept"]
    ex.log.clear()
    again = TopFractionSelect(0.3, max_candidates=4).fit(ctx)
    assert ex.log and all(p["ran"] == 0 and p["skipped"] == p["items"] for p in ex.log)
    assert again == state


def test_top_fraction_candidate_budget_follows_memory() -> None:
    assert TopFractionSelect(0.1).max_candidates(2 << 30) == (2 << 30) // 64
    TopFractionSelect(0.1).check_budget(64 << 20)
    with pytest.raises(ValueError, match="lower max_candidates or raise --memory-per-worker"):
        TopFractionSelect(0.1, max_candidates=10**8).check_budget(2 << 30)
    # the budget settings stay out of the recipe hash: they never change which documents are kept
    assert TopFractionSelect(0.1, max_candidates=5, plot=False).config() == TopFractionSelect(0.1).config()


def test_top_fraction_report_and_state_roundtrip(tmp_path: Path) -> None:
    shards, everything = _write_shards(tmp_path, 3, 100, seed=5)
    stage = TopFractionSelect(0.2)
    state = stage.fit(GlobalContext(shards=shards, workdir=str(tmp_path / "work"), num_workers=2, seed=0))
    assert len(state.plots) == 1 and Path(state.plots[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    by_source = state.summary["by_source"]
    assert set(by_source) == {"web", "books", "code"}
    for v in by_source.values():
        assert v["kept_fraction"] == pytest.approx(v["kept"] / v["n"])
        assert sum(v["hist"]) == v["n"]
    restored = TopFractionSelect(0.2)
    restored.load_state(json.loads(json.dumps(state.to_json())))
    assert restored.state == state and isinstance(restored.state.cut, tuple)
    assert sorted(_apply(restored, shards)[0]) == sorted(_apply(stage, shards)[0])


def test_top_fraction_rejects_bad_settings_and_missing_scores(tmp_path: Path) -> None:
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError):
            TopFractionSelect(bad)
    path = tmp_path / "noscore.parquet"
    pq.write_table(docs_table(["a", "b"], ["x", "y"], "s"), path)
    stage = TopFractionSelect(0.5)
    with pytest.raises(Exception, match="QualityScorer"):
        stage.fit(
            GlobalContext(shards=[PhaseShard("x", str(path), str(path))], workdir=str(tmp_path / "w"), num_workers=1)
        )
    with pytest.raises(RuntimeError, match="before fit"):
        TopFractionSelect(0.5).process(_scored([0.1]))


@pytest.mark.integration
def test_runner_scores_then_keeps_the_top_fraction(ray_local, tmp_path: Path, small_model: str) -> None:
    from curation.runner import run_recipe
    from filters.quality import QualityScorer
    from filters.quality.synthetic import clean_prose, crawl_junk

    inputs = []
    for s in range(3):
        texts = clean_prose(10, seed=s) + crawl_junk(30, seed=s)
        path = tmp_path / f"in{s}.jsonl"
        path.write_text("".join(json.dumps({"id": f"{s}-{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
        inputs.append(str(path))
    out = tmp_path / "run"
    result = run_recipe([QualityScorer(small_model), TopFractionSelect(0.25)], inputs, str(out), num_workers=2,
                        executor="ray")
    assert result.ok
    kept = pa.concat_tables([pq.read_table(p) for p in sorted((out / "data").glob("*.parquet"))])
    assert kept.num_rows == 30  # round(0.25 * 120)
    # the classifier puts the 30 generated prose documents on top
    texts = set(kept.column("text").to_pylist())
    assert texts == {t for s in range(3) for t in clean_prose(10, seed=s)}
    state_files = list((out / "global").glob("*/state.json"))
    assert state_files and json.loads(state_files[0].read_text())["state"]["summary"]["n_kept"] == 30
