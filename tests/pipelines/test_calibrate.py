"""pipelines/calibrate.py end to end on generated text: clean and degraded mixes through the runner, one
tokenizer, trials with their n-gram floor, decision accuracy rows with intervals; a rerun trains nothing."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curation.schema import docs_table
from demopool import clean_prose

pytestmark = pytest.mark.integration


def _write(path: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    texts = [clean_prose(rng, rng.randint(150, 400)) for _ in range(n)]
    pq.write_table(docs_table([f"{path.stem}/{i}" for i in range(n)], texts, path.stem), path)
    return path


def test_calibration_end_to_end_and_resume(tmp_path: Path) -> None:
    from pipelines.calibrate import main

    clean = _write(tmp_path / "clean.parquet", 160, 1)
    ref = _write(tmp_path / "ref.parquet", 30, 2)
    out = tmp_path / "cal"
    argv = ["-o", str(out), "-i", f"{clean}@parquet", "--heldout-ref", f"prose={ref}", "--eval-dir", "none",
            "--degrade", "foreign:0.25", "--proxies", "cpu-1m", "--budgets", "6k", "--seeds", "2",
            "--vocab-size", "400", "--bootstrap", "100", "--executor", "local", "--workers", "1", "--no-progress",
            "--log-level", "WARNING"]  # fmt: skip
    assert main(argv) == 0
    data = json.loads((out / "sensitivity.json").read_text())
    rows = data["rows"]
    assert [(r["proxy"], r["tokens"], r["degradation"], r["fraction"], r["metric"]) for r in rows] == [
        ("cpu-1m", 6000, "foreign", 0.25, "reference_bpb")]
    r = rows[0]
    assert 0.0 <= r["interval"][0] <= r["decision_accuracy"] <= r["interval"][1] <= 1.0 and r["pairs"] == 4
    assert r["epochs"] <= 1.0  # no mix is repeated
    # foreign text in a quarter of the documents makes the proxy worse at English prose
    assert r["difference_degraded_minus_clean"] > 0 and r["decision_accuracy"] == 1.0
    floor = data["floor"][0]
    assert set(floor["domains"]) == {"prose"} and floor["beats_ngram_floor"] in (True, False)
    achieved = data["settings"]["achieved"]["foreign-25"]["degraded_fraction"]
    assert 0.15 < achieved < 0.35
    assert '"/' not in (out / "sensitivity.json").read_text()  # committed results hold no absolute paths
    assert (out / "sensitivity.png").stat().st_size > 5000
    assert "Decision accuracy" in (out / "sensitivity.md").read_text()
    results = sorted(out.glob("trials/*/result.json"))
    assert len(results) == 4
    res = json.loads(results[0].read_text())
    assert res["ngram_floor"]["domains"]["reference/prose"]["bigram_bpb"] > 0 and res["epochs"] <= 1.0
    stamps = {p: p.stat().st_mtime_ns for p in results}
    assert main(argv) == 0  # resumes: nothing retrained
    assert {p: p.stat().st_mtime_ns for p in results} == stamps
    # --analyse-only reads the finished trials of the grid and trains nothing: the same rows
    again = json.loads((out / "sensitivity.json").read_text())["rows"]
    assert main(argv + ["--analyse-only"]) == 0
    only = json.loads((out / "sensitivity.json").read_text())
    assert only["rows"] == again and only["settings"]["trials_not_run"] == []
    assert {p: p.stat().st_mtime_ns for p in results} == stamps
    # a grid wider than what ran: analysed as far as it goes, the rest listed
    assert main(argv + ["--analyse-only", "--seeds", "3"]) == 0
    assert len(json.loads((out / "sensitivity.json").read_text())["settings"]["trials_not_run"]) == 2


def test_a_budget_larger_than_a_mix_is_refused(tmp_path: Path) -> None:
    from pipelines.calibrate import main

    clean = _write(tmp_path / "clean.parquet", 20, 3)
    ref = _write(tmp_path / "ref.parquet", 5, 4)
    argv = ["-o", str(tmp_path / "cal"), "-i", f"{clean}@parquet", "--heldout-ref", f"prose={ref}", "--eval-dir",
            "none", "--degrade", "shuffle:0.25", "--proxies", "cpu-1m", "--budgets", "10m", "--vocab-size", "400",
            "--executor", "local", "--workers", "1", "--no-progress", "--log-level", "WARNING"]  # fmt: skip
    with pytest.raises(SystemExit, match="no mix is repeated"):
        main(argv)


def test_gpu_preset_runs_in_process_from_a_prepared_folder(tmp_path: Path) -> None:
    """What bench/gpu.sh runs on the accelerator (no Ray, no ../shared): a folder prepared on a CPU machine is
    degraded, tokenised and trained in this process. Here with a CPU proxy and a tiny budget."""
    from curation.tokens import train_tokenizer
    from filters.degrade import parse_degrade
    from pipelines.calibrate import GPU_PREPARED, build_parser, run_gpu_preset
    from train_small.recipes import get_recipe

    out = tmp_path / "gpu_cal"
    (out / "pool").mkdir(parents=True)
    _write(out / "pool" / "prose.parquet", 120, 5)
    (out / "ref").mkdir()
    _write(out / "ref" / "prose.parquet", 20, 6)
    train_tokenizer([str(out / "pool")], str(out / "sp"), vocab_size=400)
    (out / GPU_PREPARED).write_text(json.dumps({"pool": ["pool/prose.parquet"], "reference": {"prose":
                                                "ref/prose.parquet"}, "tokenizer": "sp.model"}))  # fmt: skip
    args = build_parser().parse_args(["-o", str(out), "--eval-dir", "none", "--bootstrap", "50"])
    args.eval_dir, args.proxies, args.budgets, args.seeds = None, "cpu-1m", [4000], 2
    specs = [parse_degrade("shuffle:0.25")]
    assert run_gpu_preset(args, specs, [get_recipe("cpu-1m")]) == 0
    data = json.loads((out / "sensitivity_gpu.json").read_text())
    assert data["settings"]["preset"] == "gpu" and len(data["rows"]) == 1
    assert data["rows"][0]["degradation"] == "shuffle" and data["rows"][0]["pairs"] == 4
    # the degraded mix really is degraded: a quarter of its documents carry the mark
    marks = pq.read_table(next((out / "mixes" / "shuffle-25" / "data").glob("*.parquet"))).column("degraded")
    assert 0.1 < 1 - marks.null_count / len(marks) < 0.4


def test_reliable_needs_the_interval_above_chance_not_only_the_point() -> None:
    """A decision accuracy of 1.0 from a few seed pairs whose order flips when the documents are resampled is not
    called reliable; 0.9 with an interval above chance is; 0.85 is not, whatever its interval."""
    from pipelines.calibrate import reliable

    assert not reliable({"decision_accuracy": 1.0, "interval": [0.0, 1.0]})
    assert reliable({"decision_accuracy": 0.9, "interval": [0.5, 1.0]})
    assert reliable({"decision_accuracy": 1.0, "interval": [1.0, 1.0]})
    assert not reliable({"decision_accuracy": 0.85, "interval": [0.8, 0.9]})
