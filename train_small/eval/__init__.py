"""Evaluation of the proxy: few-shot tasks (llm-foundry formats), held-out loss, and ``score``.

Public API::

    from train_small.eval import evaluate, heldout_loss, load_texts, score, centered_accuracy

    res = evaluate(model, "tokenizer.model", "../shared/data/eval", tasks="cpu", max_examples=100)
    res["tasks"]["copa"]["accuracy"], res["core"]            # core: None unless all 22 CORE tasks ran
    res["core_partial"], res["core_missing"]                 # ... then the mean over those that did
    ho = heldout_loss(model, sp, load_texts({"clean": "heldout/*.parquet"}))
    ref = reference_loss(model, sp, load_reference_domains(["wiki=wikitext/", "books=pg19/"]))   # Paloma-style
    result = score("tokens/", "tiny", "scores/mix", eval_dir=..., heldout=...)   # writes result.json

``train_small.eval`` imports neither ``filters`` nor ``pipelines`` (DESIGN.md).
"""

from train_small.eval.agreement import kendall_tau, rank_agreement, rank_agreement_from_results
from train_small.eval.harness import (
    SentencePieceTokenizer,
    aggregate,
    as_tokenizer,
    build_prompt,
    centered_accuracy,
    evaluate,
    evaluate_task,
    score_requests,
)
from train_small.eval.heldout import heldout_loss, load_texts
from train_small.eval.reference import load_reference_domains, parse_reference_specs, reference_loss
from train_small.eval.score import flat_metrics, score
from train_small.eval.tasks import CORE_TASKS, CPU_TASKS, TaskSpec, resolve_tasks

__all__ = [
    "CORE_TASKS",
    "CPU_TASKS",
    "SentencePieceTokenizer",
    "TaskSpec",
    "aggregate",
    "as_tokenizer",
    "build_prompt",
    "centered_accuracy",
    "evaluate",
    "evaluate_task",
    "flat_metrics",
    "heldout_loss",
    "kendall_tau",
    "load_reference_domains",
    "load_texts",
    "parse_reference_specs",
    "rank_agreement",
    "rank_agreement_from_results",
    "reference_loss",
    "resolve_tasks",
    "score",
    "score_requests",
]
