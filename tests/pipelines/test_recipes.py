"""pipelines/recipes.py: the stage lists every entry point shares; baseline.py's command line maps onto them."""

from __future__ import annotations

import json
import os
import sys

import pyarrow as pa
import pytest

from curation.stage import recipe_hash

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "pipelines"))

import baseline  # noqa: E402

from pipelines.recipes import (  # noqa: E402
    BLOCKS,
    RecipeOptions,
    baseline_recipe,
    dedup_stages,
    heuristics_stages,
    options_from_flags,
)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    from filters.quality.synthetic import clean_prose, crawl_junk
    from filters.quality.train import train_classifier

    path = str(tmp_path_factory.mktemp("model") / "q.bin")
    train_classifier(pa.array(clean_prose(60, seed=1)), pa.array(crawl_junk(60, seed=1)), path, seed=1)
    return path


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("eval")
    row = {"query": "which planet is the largest in the solar system", "choices": ["jupiter", "mars"], "gold": 0}
    (d / "astro.jsonl").write_text(json.dumps(row) + "\n")
    return str(d)


def _names(stages: list) -> list[str]:
    return [s.name for s in stages]


def test_baseline_command_line_builds_the_shared_recipe(model, eval_dir, tmp_path):
    flags = ["-o", str(tmp_path), "--blocks", "heuristics,dedup,quality", "--c4", "--decontam", eval_dir,
             "--dedup", "bff,exact", "--quality-model", model, "--quality-threshold", "0.4"]  # fmt: skip
    from_cli = baseline.build_recipe(baseline.build_parser().parse_args(flags))
    options = RecipeOptions(c4=True, decontam=eval_dir, dedup=("bff", "exact"), quality_model=model,
                            quality_threshold=0.4)  # fmt: skip
    direct = baseline_recipe(BLOCKS, options, str(tmp_path))
    assert recipe_hash(from_cli) == recipe_hash(direct)
    heur = _names(heuristics_stages(c4=True))
    assert len(heur) > len(_names(heuristics_stages()))  # the C4 block is there
    # blocks in recipe order: heuristics, decontamination, dedup in the order given, score, selection
    assert _names(direct) == [*heur, "decontam", "bff_dedup", "exact_dedup", "url_dedup", "quality_score",
                              "quality_threshold"]  # fmt: skip
    assert direct[-1].min_score == 0.4


def test_defaults_are_dclm_baseline(model, tmp_path):
    stages = baseline_recipe(BLOCKS, RecipeOptions(quality_model=model), str(tmp_path))
    assert _names(stages) == [*_names(heuristics_stages()), "exact_dedup", "url_dedup", "minhash_dedup",
                              "bff_dedup", "quality_score", "quality_top_fraction"]  # fmt: skip
    assert stages[-1].fraction == 0.1
    assert baseline_recipe((), RecipeOptions(), str(tmp_path)) == []  # the raw pool: reading only
    cli = baseline.build_recipe(baseline.build_parser().parse_args(["-o", str(tmp_path), "--quality-model", model]))
    assert recipe_hash(cli) == recipe_hash(stages)


def test_options_are_checked_and_flags_map_to_options():
    with pytest.raises(ValueError, match="unknown blocks"):
        baseline_recipe(("heuristics", "dedupe"), RecipeOptions(), "x")
    with pytest.raises(ValueError, match="unknown dedup"):
        RecipeOptions(dedup=("exact", "simhash"))
    with pytest.raises(ValueError, match="unknown dedup"):
        dedup_stages(["simhash"])
    with pytest.raises(ValueError, match="the options are"):
        RecipeOptions().replace(top_fraction=0.3)
    assert RecipeOptions(dedup="exact,bff").dedup == ("exact", "bff")
    flags = ["--quality-top-fraction", "0.3", "--c4", "--dedup", "minhash"]
    overrides = options_from_flags(flags)
    assert overrides == {"quality_top_fraction": 0.3, "c4": True, "dedup": ["minhash"]}
    assert RecipeOptions().replace(**overrides) == RecipeOptions(quality_top_fraction=0.3, c4=True, dedup=("minhash",))
    assert RecipeOptions().overrides() == {}
    with pytest.raises(ValueError, match="unknown recipe flag"):
        options_from_flags(["--quality-top", "0.3", "--bogus"])


def test_language_id_options_reach_the_stage(tmp_path):
    from pipelines.recipes import RecipeOptions, baseline_recipe

    def lid(stages):
        (st,) = [s for s in stages if s.name == "langid"]
        return st

    default = lid(baseline_recipe(("heuristics",), RecipeOptions(), str(tmp_path)))
    assert default.backend == "fasttext" and default.model_path is None
    py = lid(baseline_recipe(("heuristics",), RecipeOptions(langid_backend="py3langid"), str(tmp_path)))
    assert py.backend == "py3langid"
    model = tmp_path / "lid.176.bin"
    model.write_bytes(b"")  # the stage checks that the file exists; it loads it only in setup()
    own = lid(baseline_recipe(("heuristics",), RecipeOptions(langid_model=str(model)), str(tmp_path)))
    assert str(own.model_path) == str(model)
