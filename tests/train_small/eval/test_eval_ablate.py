"""pipelines/ablate.py: held-out split, leaderboard statistics, and a tiny end-to-end run (slow)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

from curation.schema import docs_table

ROOT = Path(__file__).resolve().parents[3]
SHARED = ROOT / ".." / "shared" / "data"


def _ablate():
    spec = importlib.util.spec_from_file_location("ablate_under_test", ROOT / "pipelines" / "ablate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["ablate_under_test"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_holdout_split_is_complementary_and_stable():
    ab = _ablate()
    ids = [f"doc-{i}" for i in range(2000)]
    t = docs_table(ids, ["x"] * len(ids), "s")
    train = ab.HoldoutSplit(0.1, seed=3, keep="train")(t)
    held = ab.HoldoutSplit(0.1, seed=3, keep="heldout")(t)
    tr, he = set(train.kept.column("id").to_pylist()), set(held.kept.column("id").to_pylist())
    assert tr | he == set(ids) and not tr & he  # a partition
    assert 150 < len(he) < 250  # ~10% (binomial sd ~13)
    assert set(train.dropped.column("reason").to_pylist()) == {"holdout:reserved"}
    # the decision depends on the id only, not on the batch it arrives in
    sub = ab.HoldoutSplit(0.1, seed=3, keep="heldout")(docs_table(ids[500:700], ["x"] * 200, "s"))
    assert set(sub.kept.column("id").to_pylist()) == he & set(ids[500:700])
    other = ab.HoldoutSplit(0.1, seed=4, keep="heldout")(t)
    assert set(other.kept.column("id").to_pylist()) != he


def _result(mix: str, seed: int, clean: float, core: float) -> dict:
    return {
        "extra": {"mix": mix},
        "seed": seed,
        "heldout": {"domains": {"clean": {"loss": clean, "bits_per_byte": clean / 2}}, "mean_loss": clean},
        "tasks": {"copa": {"accuracy": 0.5 + core / 2, "centered_accuracy": core, "prob_correct": 0.5}},
        "core": core,
    }


def test_leaderboard_ranks_by_clean_loss_and_tests_against_seed_spread(tmp_path):
    ab = _ablate()
    mixes = [ab.DEFAULT_MIXES[n] for n in ("raw", "heuristics", "baseline")]
    results = [
        _result("raw", 0, 5.00, 0.01), _result("raw", 1, 5.10, 0.02), _result("raw", 2, 5.05, 0.00),
        # clearly better: gap 0.45 > spreads (0.10, 0.04)
        _result("baseline", 0, 4.60, 0.05), _result("baseline", 1, 4.62, 0.04), _result("baseline", 2, 4.64, 0.06),
        # better on average by 0.05 but within raw's spread 0.10: not a win
        _result("heuristics", 0, 4.96, 0.0), _result("heuristics", 1, 5.01, 0.0), _result("heuristics", 2, 5.03, 0.0),
    ]  # fmt: skip
    rows = ab.leaderboard(results, mixes)
    assert [r["mix"] for r in rows] == ["baseline", "heuristics", "raw"]
    b = rows[0]
    assert b["heldout/clean/loss"]["mean"] == pytest.approx(4.62)
    assert b["heldout/clean/loss"]["spread"] == pytest.approx(0.04)
    assert b["heldout/clean/loss"]["std"] == pytest.approx(0.02)
    assert b["delta_vs_raw"] == pytest.approx(5.05 - 4.62) and b["beats_raw"] is True
    assert rows[1]["beats_raw"] is False and rows[1]["noise"] == pytest.approx(0.10)
    assert "beats_raw" not in rows[2]
    settings = {"recipe": "tiny", "seeds": 3}
    md = Path(ab.write_leaderboard(str(tmp_path), rows, settings)).read_text()
    assert md.index("| baseline |") < md.index("| heuristics |") < md.index("| raw |")
    assert "| yes |" in md and "| no |" in md
    png = Path(ab.plot_leaderboard(str(tmp_path), rows))
    assert png.stat().st_size > 5000


def test_mix_file_round_trip():
    ab = _ablate()
    m = ab.Mix("web-heavy", ("heuristics",), (("c4", 3.0), ("pile", 1.0)), "more web", ("--c4",))
    again = ab.Mix.from_json(json.loads(json.dumps(m.to_json())))
    assert again == m and again.curation_key.startswith("heuristics~")  # recipe flags get their own run
    assert ab.Mix("h", ("heuristics",)).curation_key == "heuristics"
    assert ab.Mix("r", ()).curation_key == "raw"


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(not (SHARED / "corpora").exists(), reason="shared data absent")
def test_tiny_ablation_end_to_end_and_resume(tmp_path):
    ab = _ablate()
    out = tmp_path / "ab"
    argv = [
        "-o", str(out), "-i", str(SHARED / "corpora" / "c4" / "*.json.gz"),
        "-i", str(SHARED / "corpora" / "redpajama" / "*.jsonl"),
        "--mixes", "raw,heuristics", "--seeds", "2", "--max-steps", "5", "--heldout-fraction", "0.2",
        "--workers", "2", "--no-progress", "--log-level", "WARNING",
    ]  # fmt: skip
    assert ab.main(argv) == 0
    data = json.loads((out / "ablation.json").read_text())
    assert len(data["trials"]) == 4 and {r["extra"]["mix"] for r in data["trials"]} == {"raw", "heuristics"}
    for r in data["trials"]:
        assert math.isfinite(r["heldout"]["domains"]["clean"]["loss"])
    stamp = {p: p.stat().st_mtime_ns for p in out.glob("trials/*/*/result.json")}
    assert len(stamp) == 4
    assert ab.main(argv) == 0  # resumes: no trial is rerun
    assert {p: p.stat().st_mtime_ns for p in out.glob("trials/*/*/result.json")} == stamp
