"""Evaluation fidelity: the context/continuation boundary with a real SentencePiece model, Jeopardy's
categories, partial CORE, continuations longer than the window, and one evaluation precision."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from eval_tiny_models import ALPHA, CharTok, TableLM, TinyCausal, alphabet_table, train_curation_tokenizer

from train_small.eval.harness import (
    Request,
    SentencePieceTokenizer,
    boundary_mode,
    encode_continuation,
    evaluate,
    evaluate_task,
    score_requests,
)
from train_small.eval.tasks import CORE_TASKS, LM, MC, TaskSpec, builtin_spec

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


@pytest.fixture(scope="module")
def sp(tmp_path_factory) -> SentencePieceTokenizer:
    """Our curation tokenizer (SentencePiece BPE, dummy prefix, whitespace kept), trained on a little text."""
    return SentencePieceTokenizer(train_curation_tokenizer(tmp_path_factory.mktemp("sp")))


def test_sentencepiece_boundary_is_written_once(sp):
    assert boundary_mode(sp) == "marker"  # the model adds its own word-start marker
    assert boundary_mode(CharTok()) == "none"
    ctx = "The queen stayed in the tower and"
    for choice in ("read the letters.", "the guards let him in."):
        raw_spaced = sp.encode(" " + choice)
        assert raw_spaced != sp.encode(choice)  # the old way: a raw leading space adds a second "▁"
        a, b = encode_continuation(sp, choice), encode_continuation(sp, " " + choice)
        assert a == b
        pieces = [sp.sp.id_to_piece(i) for i in a]
        assert pieces[0].startswith("▁") and not (pieces[0] == "▁" and pieces[1].startswith("▁"))
        assert sp.decode(sp.encode(ctx) + a) == f"{ctx} {choice}"  # exactly one space at the boundary


def test_choices_with_and_without_a_leading_space_score_the_same(sp, tmp_path):
    """HellaSwag writes some choices with a leading space: two choices equal up to that space must get the same
    score (softmax over the two: exactly 0.5 each) with a real model and the real tokenizer."""
    from train_small.configs import get_config
    from train_small.model import build_model

    torch.manual_seed(0)
    model = build_model(get_config("cpu-tiny", vocab_size=sp.vocab_size)).eval()
    rows = [{"query": "The king rode out", "choices": ["at dawn.", " at dawn."], "gold": 0},
            {"query": "A knight of the realm", "choices": [" came to the gate.", "came to the gate."], "gold": 1}]
    (tmp_path / "hs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = TaskSpec("hs", str(tmp_path / "hs.jsonl"), MC)
    res = evaluate_task(model, sp, spec, spec.path, return_per_example=True)
    assert [p["prob_correct"] for p in res["per_example"]] == [pytest.approx(0.5, abs=1e-9)] * 2


@pytest.mark.skipif(not (SHARED / "eval" / "olmes_validation").exists(), reason="shared eval data absent")
def test_real_hellaswag_choices_get_no_spurious_marker(sp):
    from train_small.eval.harness import build_prompt, load_examples

    spec = builtin_spec("hellaswag_zeroshot", SHARED / "eval")
    ex, _ = load_examples(SHARED / "eval" / spec.path, MC)
    spaced = [e for e in ex if any(c.startswith(" ") for c in e["choices"])]
    assert len(spaced) > 400  # about half the questions mix spaced and unspaced choices
    lone = sp.sp.piece_to_id("▁")
    for e in spaced[:100]:
        pr = build_prompt(spec, [e], 0, prefix_space=boundary_mode(sp) == "space")
        for cont in pr.continuations:
            toks = sp.encode(cont)
            assert not (toks[0] == lone and sp.sp.id_to_piece(toks[1]).startswith("▁")), cont


def test_jeopardy_shots_from_the_same_category_and_categories_weigh_equally(tmp_path):
    """Category A: 6 questions the alphabet model answers; category B: 2 it cannot. DCLM averages category
    accuracies: (1 + 0) / 2 = 0.5, not 6 / 8 pooled. Every shot comes from its question's category."""
    rows = [{"context": ALPHA[i : i + 3], "continuation": ALPHA[i + 3 : i + 5], "category": "a"} for i in range(6)]
    rows[2:2] = [{"context": "zq", "continuation": "kk", "category": "b"}, {"context": "xq", "continuation": "mm",
                                                                           "category": "b"}]  # fmt: skip
    (tmp_path / "j.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = TaskSpec("jeopardy", str(tmp_path / "j.jsonl"), LM, num_fewshot=1, continuation_delimiter="",
                    has_categories=True)  # fmt: skip
    res = evaluate_task(TableLM(alphabet_table()), CharTok(), spec, spec.path, return_per_example=True)
    assert res["subcategories"]["a"]["accuracy"] == 1.0 and res["subcategories"]["b"]["accuracy"] == 0.0
    assert res["accuracy"] == 0.5 and res["n"] == 8
    for p in res["per_example"]:
        assert p["shots"] and all(rows[j]["category"] == rows[p["index"]]["category"] for j in p["shots"])
    assert builtin_spec("jeopardy").has_categories and not builtin_spec("copa").has_categories


def _copa_like(tmp_path: Path, label: str) -> TaskSpec:
    rows = [{"query": ALPHA[i : i + 3], "choices": [ALPHA[i + 3], "q"], "gold": 0} for i in range(5)]
    (tmp_path / f"{label}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return TaskSpec(label, str(tmp_path / f"{label}.jsonl"), MC, random_baseline=50.0, continuation_delimiter="")


def test_partial_task_sets_are_never_core(tmp_path):
    model, tok = TableLM(alphabet_table()), CharTok()
    res = evaluate(model, tok, tmp_path, [_copa_like(tmp_path, "copa"), _copa_like(tmp_path, "not_core")])
    assert res["core"] is None and not res["core_is_full_dclm_core"]
    assert res["core_partial"] == pytest.approx(res["tasks"]["copa"]["centered_accuracy"])
    assert res["core_partial_tasks"] == 1 and res["core_missing"] == [t for t in CORE_TASKS if t != "copa"]
    assert res["centered_mean"] == pytest.approx(np.mean([r["centered_accuracy"] for r in res["tasks"].values()]))
    # all 22 labels, but in other files and at 0 shots: not DCLM's CORE, and the result says why, per task
    # (aggregate() with DCLM's own definitions is tested in test_eval_start_token.py)
    full = evaluate(model, tok, tmp_path, [_copa_like(tmp_path, t) for t in CORE_TASKS])
    assert full["core_missing"] == [] and not full["core_is_full_dclm_core"] and full["core"] is None
    assert set(full["core_departures"]) == set(CORE_TASKS)
    assert all(any(d.startswith("file:") for d in v) for v in full["core_departures"].values())
    assert any(d.startswith("shots: 0") for d in full["core_departures"]["arc_easy"])
    assert full["core_partial"] == pytest.approx(1.0) and full["core_partial_tasks"] == 22


def test_long_continuations_are_skipped_and_counted_never_cut(tmp_path):
    model = TinyCausal()
    model.max_seq_len = 16
    rows = [{"context": "ab", "continuation": "cd"},  # fits
            {"context": ALPHA * 2, "continuation": "ef"},  # context cut from the left: counted
            {"context": "gh", "continuation": ALPHA[:20]}]  # 20 tokens > 16: skipped, counted
    (tmp_path / "lm.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = TaskSpec("lm", str(tmp_path / "lm.jsonl"), LM, continuation_delimiter="")
    res = evaluate_task(model, CharTok(), spec, spec.path, return_per_example=True)
    assert res["n"] == 2 and res["n_total"] == 3 and [p["index"] for p in res["per_example"]] == [0, 1]
    assert res["n_skipped_long"] == 1 and res["n_context_truncated"] == 1 and res["max_seq_len"] == 16
    with pytest.raises(ValueError, match="does not fit"):
        score_requests(model, [Request([0, 1], list(range(2, 19)))])
    (tmp_path / "long.jsonl").write_text(json.dumps(rows[2]) + "\n")
    out = evaluate(model, CharTok(), tmp_path, [spec, TaskSpec("long", str(tmp_path / "long.jsonl"), LM)])
    assert "long" not in out["tasks"] and "long" in out["skipped_tasks"]
    assert out["window"] == {"n_skipped_long": 1, "n_context_truncated": 1, "n_examples": 2}


def test_precision_is_one_setting_fp32_by_default(tmp_path):
    from train_small.eval.__main__ import add_eval_args

    model, tok = TinyCausal(), CharTok()
    spec = _copa_like(tmp_path, "copa")
    a = evaluate(model, tok, tmp_path, [spec])
    assert a["settings"]["precision"] == "fp32" and a["tasks"]["copa"]["precision"] == "fp32"
    b = evaluate(model, tok, tmp_path, [spec], precision="bf16")  # autocast is CUDA-only: same on CPU
    assert b["tasks"]["copa"]["prob_correct"] == a["tasks"]["copa"]["prob_correct"]
    with pytest.raises(ValueError, match="precision"):
        evaluate(model, tok, tmp_path, [spec], precision="fp16")
    import argparse
    import inspect

    from train_small.eval.score import score

    p = argparse.ArgumentParser()
    add_eval_args(p)
    assert p.parse_args([]).precision == "fp32" == inspect.signature(score).parameters["precision"].default
