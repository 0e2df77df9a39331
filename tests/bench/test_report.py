"""bench/report.py: the README's benchmark table is generated from the result JSON, never typed."""

from __future__ import annotations

import importlib.util
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _report():
    spec = importlib.util.spec_from_file_location("bench_report", os.path.join(ROOT, "bench", "report.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(name, ratio, target, commit="abc1234"):
    return {"name": name, "metric": "s", "ours": 1.0, "reference": ratio, "reference_name": "peer",
            "ratio": ratio, "target": target, "met": None if target is None else ratio >= target, "reps": 3,
            "commit": commit}


def test_full_and_quick_side_by_side_with_their_commits_and_missed_targets_say_so(tmp_path):
    rep = _report()
    res = tmp_path / "results"
    res.mkdir()
    (res / "alpha.json").write_text(json.dumps([_row("fast", 6.0, 5.0), _row("slow", 0.5, 1.0)]))
    (res / "alpha.quick.json").write_text(json.dumps([_row("fast", 9.9, 5.0, "quick01")]))
    (res / "beta.quick.json").write_text(json.dumps([_row("only_quick", 2.0, None)]))
    block = rep.render(rep.load(str(res)))
    lines = {ln.split("|")[2].strip(): [c.strip() for c in ln.split("|")[1:-1]] for ln in block.splitlines()
             if ln.startswith("| `")}
    # script, row, ours, reference, target, then ratio/met/reps/commit for full, then for quick
    assert lines["fast"][5:9] == ["6", "**met**", "3", "`abc1234`"]
    assert lines["fast"][9:13] == ["9.9", "**met**", "3", "`quick01`"]
    assert lines["slow"][6] == "**missed**" and lines["slow"][9:] == ["–"] * 4
    assert lines["only_quick"][2] == "–" and lines["only_quick"][5:9] == ["–"] * 4
    assert lines["only_quick"][9:13] == ["2", "–", "3", "`abc1234`"]


def test_each_commit_cell_names_the_cpu_that_measured_it(tmp_path):
    rep = _report()
    res = tmp_path / "results"
    res.mkdir()
    xeon = {**_row("k", 0.8, 1.0), "machine": "Intel(R) Xeon(R) Processor, 2 cores, 24 GiB, load avg 1.1"}
    epyc = {**_row("k", 1.4, 1.0, "quick01"), "machine": "AMD EPYC, 2 cores, 24 GiB, load avg 1.0"}
    (res / "alpha.json").write_text(json.dumps([xeon]))
    (res / "alpha.quick.json").write_text(json.dumps([epyc]))
    line = next(ln for ln in rep.render(rep.load(str(res))).splitlines() if ln.startswith("| `alpha`"))
    cells = [c.strip() for c in line.split("|")[1:-1]]
    assert cells[8] == "`abc1234` Intel Xeon" and cells[12] == "`quick01` AMD EPYC"
    assert rep.cpu_name(None) == "" and rep.cpu_name("x86_64 CPU, 2 cores") == "x86_64"


def test_check_mode_detects_a_table_that_drifted(tmp_path):
    rep = _report()
    res = tmp_path / "results"
    res.mkdir()
    (res / "alpha.json").write_text(json.dumps([_row("fast", 6.0, 5.0)]))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{rep.BEGIN}\nold table\n{rep.END}\noutro\n")
    assert rep.main(["--readme", str(readme), "--results", str(res), "--check"]) == 1
    assert rep.main(["--readme", str(readme), "--results", str(res)]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("\noutro\n") and "old table" not in text
    assert rep.main(["--readme", str(readme), "--results", str(res), "--check"]) == 0
    # a result that changes makes the README stale again
    (res / "alpha.json").write_text(json.dumps([_row("fast", 4.0, 5.0)]))
    assert rep.main(["--readme", str(readme), "--results", str(res), "--check"]) == 1


def test_the_readme_table_is_what_the_results_say():
    """The committed README's benchmark table equals what bench/report.py renders from bench/results."""
    assert _report().main(["--check"]) == 0, "run: python bench/report.py"
