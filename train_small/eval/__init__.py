"""Evaluation of the proxy: few-shot tasks (llm-foundry formats), held-out loss, and ``score``.

Public API::

    from train_small.eval import evaluate, heldout_loss, load_texts, score, centered_accuracy

    res = evaluate(model, "tokenizer.model", "../shared/data/eval", tasks="cpu", max_examples=100)
    res["tasks"]["copa"]["accuracy"], res["core"]
    ho = heldout_loss(model, sp, load_texts({"clean": "heldout/*.parquet"}))
    result = score("tokens/", "tiny", "scores/mix", eval_dir=..., heldout=...)   # writes result.json

``train_small.eval`` imports neither ``filters`` nor ``pipelines`` (DESIGN.md).
"""

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
    "load_texts",
    "resolve_tasks",
    "score",
    "score_requests",
]
