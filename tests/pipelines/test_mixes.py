"""pipelines/mixes.py: a mix's recipe options layer on the ablation's; both mix-file forms mean the same."""

from __future__ import annotations

import json

import pytest

from pipelines.mixes import KNOWN_MIXES, Mix, select_mixes
from pipelines.recipes import RecipeOptions


def test_mix_options_apply_on_top_of_the_ablation_options():
    m = Mix("top30", ("heuristics", "dedup", "quality"), recipe_options={"quality_top_fraction": 0.3})
    base = RecipeOptions(c4=True, quality_top_fraction=0.2)
    assert m.options(base) == RecipeOptions(c4=True, quality_top_fraction=0.3)
    assert Mix("plain", ("heuristics",)).options(base) == base
    assert KNOWN_MIXES["baseline-top30"].options(RecipeOptions()).quality_top_fraction == 0.3


def test_flag_and_dict_forms_are_the_same_mix_and_curation_run():
    flags = Mix.from_json({"name": "m", "blocks": ["heuristics"], "recipe_args": ["--dedup", "exact", "--c4"]})
    opts = Mix.from_json({"name": "m", "blocks": ["heuristics"], "recipe_options": {"c4": True, "dedup": ["exact"]}})
    assert flags == opts and flags.curation_key == opts.curation_key
    assert Mix.from_json(json.loads(json.dumps(opts.to_json()))) == opts
    other = Mix("m", ("heuristics",), recipe_options={"c4": True})
    assert other.curation_key != opts.curation_key and other.curation_key.startswith("heuristics~")
    assert Mix("m", ("heuristics",)).curation_key == "heuristics"


def test_bad_mixes_are_refused_before_any_run(tmp_path):
    with pytest.raises(ValueError, match="unknown recipe option"):
        Mix("m", ("quality",), recipe_options={"top_fraction": 0.3})
    with pytest.raises(ValueError, match="unknown blocks"):
        Mix("m", ("heuristic",))
    with pytest.raises(ValueError, match="unknown mix"):
        select_mixes("raw,nope")
    path = tmp_path / "mixes.json"
    path.write_text(json.dumps([{"name": "raw", "blocks": []}]))
    with pytest.raises(ValueError, match="distinct"):
        select_mixes("raw", str(path))
    path.write_text(json.dumps([{"name": "mine", "blocks": ["heuristics"], "weights": {"c4": 2, "pile": 1}}]))
    got = select_mixes("raw", str(path))
    assert [m.name for m in got] == ["raw", "mine"] and got[1].weights == (("c4", 2.0), ("pile", 1.0))
