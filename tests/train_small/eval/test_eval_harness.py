"""Few-shot harness: prompts, scoring against a reference, forced-answer tasks, metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from train_small.eval.harness import (
    Request,
    build_prompt,
    centered_accuracy,
    choice_metrics,
    evaluate,
    evaluate_task,
    fewshot_indices,
    load_examples,
    score_requests,
)
from train_small.eval.tasks import LM, MC, SCHEMA, TaskSpec, read_meta, resolve_tasks

EVAL_DIR = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "eval"

from eval_tiny_models import ALPHA, CharTok, TableLM, TinyCausal, V, alphabet_table  # noqa: E402


def reference_logprob(model: torch.nn.Module, ctx: list[int], cont: list[int]) -> tuple[float, bool]:
    """Unbatched, unpadded, one token at a time: sum_i log p(cont_i | ctx + cont_<i)."""
    total, greedy = 0.0, True
    for i, tok in enumerate(cont):
        seq = torch.tensor([ctx + cont[:i]])
        with torch.no_grad():
            logits = model(seq)[0, -1].double()
        total += float(torch.log_softmax(logits, -1)[tok])
        greedy &= int(logits.argmax()) == tok
    return total, greedy


# ----------------------------------------------------------------------------- scoring


def test_batched_scores_match_unbatched_reference():
    rng = np.random.default_rng(0)
    model = TinyCausal()
    reqs = []
    for _ in range(23):  # odd count, mixed lengths -> several batches with padding
        c = rng.integers(1, V, size=int(rng.integers(1, 40))).tolist()
        k = rng.integers(1, V, size=int(rng.integers(1, 9))).tolist()
        reqs.append(Request(c, k))
    got = score_requests(model, reqs, batch_tokens=100, max_batch=5)
    for r, s in zip(reqs, got):
        ref, greedy = reference_logprob(model, r.context, r.continuation)
        assert s.n_tokens == len(r.continuation)
        assert s.logprob == pytest.approx(ref, abs=1e-4)
        assert s.greedy == greedy


def test_left_truncation_keeps_continuation_and_recent_context():
    model = TinyCausal()
    model.max_seq_len = 16
    ctx = list(range(1, 31)) * 1  # 30 tokens, longer than the window
    cont = [3, 4, 5]
    (s,) = score_requests(model, [Request(ctx, cont)])
    # window = max_seq_len + 1 tokens of ctx + cont, keeping the end of the context
    keep = (ctx + cont)[-(16 + 1) :]
    ref, _ = reference_logprob(model, keep[: -len(cont)], cont)
    assert s.logprob == pytest.approx(ref, abs=1e-4)


def test_forced_answers_all_formats(tmp_path):
    """A model that knows 'the next letter' must get every gold right, and every anti-gold wrong."""
    model = TableLM(alphabet_table())
    tok = CharTok()
    mc = [
        {"query": "abcd", "choices": ["efgh", "xqzb"], "gold": 0},
        {"query": "mnop", "choices": ["zzz", "qrs", "abc"], "gold": 1},
        {"query": "uvw", "choices": ["kk", "hh", "xyz"], "gold": 2},
    ]
    lm = [{"context": "ghij", "continuation": "klm"}, {"context": "rst", "continuation": "uvwxy"}]
    schema = [
        {"context_options": ["xw", "ab"], "continuation": "cde", "gold": 1},
        {"context_options": ["mn", "qa"], "continuation": "opq", "gold": 0},
    ]
    write = lambda name, rows: (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))  # noqa: E731
    write("mc.jsonl", mc)
    write("lm.jsonl", lm)
    write("schema.jsonl", schema)
    # anti-gold versions: the gold index points at a wrong option
    write("mc_anti.jsonl", [dict(r, gold=(r["gold"] + 1) % len(r["choices"])) for r in mc])
    write("lm_anti.jsonl", [{"context": r["context"], "continuation": "zzz"} for r in lm])
    specs = [
        TaskSpec("mc", str(tmp_path / "mc.jsonl"), MC, num_fewshot=0, random_baseline=40.0, continuation_delimiter=""),
        TaskSpec("mc_anti", str(tmp_path / "mc_anti.jsonl"), MC, continuation_delimiter=""),
        TaskSpec("lm", str(tmp_path / "lm.jsonl"), LM, continuation_delimiter=""),
        TaskSpec("lm_anti", str(tmp_path / "lm_anti.jsonl"), LM, continuation_delimiter=""),
        TaskSpec("schema", str(tmp_path / "schema.jsonl"), SCHEMA, random_baseline=50.0, continuation_delimiter=""),
    ]
    res = evaluate(model, tok, tmp_path, specs, start_token="eos")
    t = res["tasks"]
    # CharTok maps " a" to 2 tokens, so no prefix space is added: continuation follows the context directly
    assert t["mc"]["accuracy"] == 1.0 and t["mc"]["acc_sum"] == 1.0
    assert t["mc_anti"]["accuracy"] == 0.0
    assert t["lm"]["accuracy"] == 1.0 and t["lm_anti"]["accuracy"] == 0.0
    assert t["schema"]["accuracy"] == 1.0
    assert t["mc"]["prob_correct"] > 0.99 and t["mc_anti"]["prob_correct"] < 0.01
    assert t["lm"]["prob_correct"] > 0.9 and t["lm_anti"]["prob_correct"] < 1e-3
    assert t["mc"]["centered_accuracy"] == pytest.approx(1.0)
    assert t["schema"]["centered_accuracy"] == pytest.approx(1.0)
    assert res["centered_mean"] == pytest.approx(np.mean([t[k]["centered_accuracy"] for k in t]))
    # none of these is a DCLM CORE task: no CORE, not even a partial one
    assert res["core"] is None and res["core_partial"] is None and not res["core_is_full_dclm_core"]
    assert len(res["core_missing"]) == 22


def test_length_normalisation_is_per_token_mean():
    """llm-foundry picks the lowest mean cross-entropy; the summed score may pick another choice."""
    # long choice: 4 tokens each p=0.6 -> sum log = 4 log .6 = -2.04, mean -0.51
    # short choice: 1 token p=0.2 -> sum -1.61, mean -1.61
    lp = np.array([4 * math.log(0.6), math.log(0.2)])
    m = choice_metrics(lp, np.array([4, 1]), np.array([4, 1]), gold=0)
    assert m["accuracy"] == 1.0 and m["acc_sum"] == 0.0
    m = choice_metrics(lp, np.array([4, 1]), np.array([4, 1]), gold=1)
    assert m["accuracy"] == 0.0 and m["acc_sum"] == 1.0
    # probability mass: softmax over summed log-probs
    p0 = 0.6**4 / (0.6**4 + 0.2)
    assert m["prob_correct"] == pytest.approx(1 - p0)


def test_centered_accuracy_arithmetic():
    assert centered_accuracy(0.30, 25) == pytest.approx(0.05 / 0.75)  # the Gauntlet's worked example
    assert centered_accuracy(0.5, 50) == pytest.approx(0.0)
    assert centered_accuracy(1.0, 62) == pytest.approx(1.0)
    assert centered_accuracy(0.2, 0) == pytest.approx(0.2)
    assert centered_accuracy(0.25, 40.3) == pytest.approx((0.25 - 0.403) / 0.597)  # below chance is negative
    with pytest.raises(ValueError):
        centered_accuracy(0.5, 100)


# ----------------------------------------------------------------------------- prompts


def _ex_mc(i):
    return {"query": f"q{i}", "choices": [f"a{i}", f"b{i}"], "gold": i % 2}


def test_fewshot_indices_exclude_self_and_are_fixed():
    for idx in range(7):
        s = fewshot_indices(7, 6, idx, seed=3, label="t")
        assert sorted(s) == [j for j in range(7) if j != idx]  # every other example, once
    a = fewshot_indices(1000, 10, 5, seed=1, label="t")
    assert a == fewshot_indices(1000, 10, 5, seed=1, label="t")
    assert a != fewshot_indices(1000, 10, 5, seed=2, label="t")
    assert 5 not in a and len(set(a)) == 10
    assert fewshot_indices(1, 5, 0, seed=1, label="t") == []


def test_prompt_multiple_choice_layout():
    ex = [_ex_mc(i) for i in range(5)]
    spec = TaskSpec("t", "x", MC, num_fewshot=2, continuation_delimiter="\nAnswer: ", example_delimiter="\n")
    pr = build_prompt(spec, ex, 3, seed=0, prefix_space=True)
    j, k = pr.shots
    shot = lambda e: f"{e['query']}\nAnswer: {e['choices'][e['gold']]}"  # noqa: E731
    assert pr.contexts == [f"{shot(ex[j])}\n{shot(ex[k])}\nq3\nAnswer:"] * 2  # right-stripped
    assert pr.continuations == [" a3", " b3"] and pr.gold == 1
    assert 3 not in pr.shots
    # the evaluated example's answers never appear in its own context
    assert "a3" not in pr.contexts[0] and "b3" not in pr.contexts[0]
    # no prefix space for tokenizers that mark word starts themselves
    assert build_prompt(spec, ex, 3, seed=0, prefix_space=False).continuations == ["a3", "b3"]


def test_prompt_language_modelling_layout():
    ex = [{"context": f"c{i}", "continuation": f"x{i}"} for i in range(4)]
    spec = TaskSpec("t", "x", LM, num_fewshot=3, continuation_delimiter=" ", example_delimiter="\n\n")
    pr = build_prompt(spec, ex, 0, seed=5)
    body = "\n\n".join(f"c{j} x{j}" for j in pr.shots)
    assert sorted(pr.shots) == [1, 2, 3]
    assert pr.contexts == [f"{body}\n\nc0"] and pr.continuations == [" x0"] and pr.gold is None
    zero = build_prompt(TaskSpec("t", "x", LM, num_fewshot=0), ex, 2)
    assert zero.contexts == ["c2"] and zero.shots == []


def test_prompt_schema_layout():
    ex = [{"context_options": [f"o{i}a", f"o{i}b"], "continuation": f"end{i}", "gold": i % 2} for i in range(4)]
    spec = TaskSpec("t", "x", SCHEMA, num_fewshot=1, continuation_delimiter=" ")
    pr = build_prompt(spec, ex, 2, seed=1)
    (j,) = pr.shots
    shot = f"{ex[j]['context_options'][ex[j]['gold']]} end{j}"  # the gold option, then the continuation
    assert pr.contexts == [f"{shot}\no2a", f"{shot}\no2b"]
    assert pr.continuations == [" end2", " end2"] and pr.gold == 0
    zero = build_prompt(TaskSpec("t", "x", SCHEMA), ex, 1)
    assert zero.contexts == ["o1a", "o1b"]


def test_malformed_rows_are_skipped_not_fatal(tmp_path):
    p = tmp_path / "t.jsonl"
    rows = [
        json.dumps({"query": "ok", "choices": ["a", "b"], "gold": 1}),
        "{not json",
        json.dumps({"query": "bad gold", "choices": ["a", "b"], "gold": 5}),
        json.dumps({"query": 3, "choices": ["a", "b"], "gold": 0}),
        json.dumps({"query": "  padded  ", "choices": [" x", "y"], "gold": 0}),
    ]
    p.write_text("\n".join(rows) + "\n")
    ex, bad = load_examples(p, MC)
    assert bad == 3 and len(ex) == 2
    assert ex[1]["query"] == "padded" and ex[1]["choices"] == [" x", "y"]  # strings stripped, lists kept


def test_subset_evaluation_is_deterministic_and_bounded(tmp_path):
    rows = [{"context": ALPHA[i % 20 : i % 20 + 3], "continuation": ALPHA[i % 20 + 3]} for i in range(40)]
    (tmp_path / "lm.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = TaskSpec("lm", str(tmp_path / "lm.jsonl"), LM, num_fewshot=2, continuation_delimiter="")
    model = TinyCausal()
    a = evaluate_task(model, CharTok(), spec, spec.path, max_examples=7, return_per_example=True)
    b = evaluate_task(model, CharTok(), spec, spec.path, max_examples=7, return_per_example=True)
    assert a["n"] == 7 and a["n_total"] == 40
    assert [p["index"] for p in a["per_example"]] == [p["index"] for p in b["per_example"]]
    assert a["prob_correct"] == b["prob_correct"]


# ----------------------------------------------------------------------------- real task files


@pytest.mark.skipif(not EVAL_DIR.exists(), reason="shared eval data absent")
def test_real_task_files_load_and_prompt():
    meta = read_meta(EVAL_DIR)
    assert meta["copa"]["random_baseline"] == 50 and meta["arc_easy"]["shots"] == 10
    resolved = resolve_tasks(EVAL_DIR, "all")
    labels = {s.label for s, _ in resolved}
    assert {"copa", "winogrande", "lambada_openai", "hellaswag_zeroshot", "piqa"} <= labels
    for spec, path in resolved:
        ex, bad = load_examples(path, spec.task_type)
        with open(path) as f:
            n_lines = sum(1 for line in f if line.strip())
        assert bad == 0 and len(ex) == n_lines, spec.label
        pr = build_prompt(spec, ex, len(ex) // 2, seed=1)
        assert len(pr.shots) == min(spec.num_fewshot, len(ex) - 1)
        assert len(pr.contexts) == len(pr.continuations) >= 1
