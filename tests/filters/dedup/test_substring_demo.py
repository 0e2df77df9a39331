"""Exact-substring dedup in the baseline recipe: the flags reach the stage, and on the demo pool
``pipelines/baseline.py --dedup exact,minhash,bff,substring`` removes the planted repeated passages
(recall >= 0.99) and nothing outside them but text that a near duplicate MinHash left shares with
another copy of its original (a real repeat too, documented by the pool's truth)."""

from __future__ import annotations

import json
import os
import sys

import pytest

from curation.stage import recipe_hash
from demopool.passages import planted_passage_report
from filters.dedup import SubstringDedup
from pipelines.recipes import DEDUP_METHODS, RecipeOptions, baseline_recipe

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "pipelines"))

import baseline  # noqa: E402


def test_flags_reach_the_stage(tmp_path):
    flags = ["-o", str(tmp_path), "--blocks", "dedup", "--dedup", "exact,substring", "--substring-min-len", "40",
             "--substring-unit", "byte", "--substring-keep", "none", "--substring-min-words-after", "10"]
    stages = baseline.build_recipe(baseline.build_parser().parse_args(flags))
    assert [s.name for s in stages] == ["exact_dedup", "url_dedup", "substring_dedup"]
    cfg = stages[-1].cfg
    assert (cfg.min_len, cfg.unit, cfg.keep, cfg.min_words_after) == (40, "byte", "none", 10)
    direct = baseline_recipe(("dedup",), RecipeOptions(dedup=("exact", "substring"), substring_min_len=40,
                                                       substring_unit="byte", substring_keep="none",
                                                       substring_min_words_after=10), str(tmp_path))
    assert recipe_hash(stages) == recipe_hash(direct)
    # not in the default recipe; the default recipe is what it was
    assert "substring" not in DEDUP_METHODS and RecipeOptions().overrides() == {}
    default = baseline_recipe(("dedup",), RecipeOptions(dedup=("substring",)), str(tmp_path))
    assert isinstance(default[0], SubstringDedup) and default[0].cfg.min_len == 50
    with pytest.raises(ValueError, match="keep"):
        RecipeOptions(dedup=("substring",), substring_keep="last")
    helptext = baseline.build_parser().format_help()
    for flag in ("--substring-min-len", "--substring-unit", "--substring-keep", "--substring-min-words-after"):
        assert flag in helptext


def test_demo_pool_planted_passages(tmp_path):
    out, pool = tmp_path / "run", tmp_path / "demo_pool"
    rc = baseline.main(["-o", str(out), "--demo-dir", str(pool), "--blocks", "heuristics,dedup", "--dedup",
                        "exact,minhash,bff,substring", "--no-tokens", "--executor", "local", "--log-level", "WARNING"])
    assert rc == 0
    rep = planted_passage_report(str(out), str(pool))
    assert rep["later_occurrences"] >= 20  # the passages survived heuristics, exact, MinHash and BFF
    assert rep["recall"] >= 0.99, rep
    assert rep["outside_bytes"]["elsewhere"] == 0, rep["outside_bytes"]
    s = rep["summary"]
    assert s["documents_cut"] >= rep["removed"] // 2 and s["documents_removed"] == 0
    assert 0 < s["fraction_bytes_removed"] < 0.02
    stats = json.load(open(out / "stats.json"))
    stage = next(st for st in stats["stages"] if st["name"] == "substring_dedup")
    bytes_in = sum(v["in_bytes"] for v in stage["by_source"].values())
    bytes_kept = sum(v["kept_bytes"] for v in stage["by_source"].values())
    assert bytes_in - bytes_kept == s["bytes_removed"]  # the run's accounting agrees with the stage's summary
