"""Few-shot evaluation of a causal LM on llm-foundry jsonl tasks, scored by log-likelihood.

Prompt construction follows llm-foundry's ``InContextLearning*Dataset``
(mosaicml/llm-foundry ``llmfoundry/eval/datasets/in_context_learning_evaluation.py``):

* every string field is stripped (``strip_dataset=True``);
* a few-shot example is ``[example_delimiter] prelimiter + context + continuation_delimiter + answer``
  (the delimiter only when some text precedes it), appended to ``prompt_string``;
* the evaluated example's context is built the same way without the answer, then
  right-stripped ("a prompt ending in a space results in degenerate output");
* the word boundary before the answer is written once, the way the tokenizer expects it
  (:func:`prompts.boundary_mode`): an explicit space when ``" a"`` is one token (llm-foundry's
  ``tokenizer_needs_prefix_space``), the tokenizer's own word-start marker for SentencePiece models that add
  one (a raw leading space on a choice would add a second ``▁``: HellaSwag has such choices), nothing for
  character tokenizers;
* tasks with categories (Jeopardy, DCLM ``has_categories: true``) are evaluated per category, shots drawn
  from the same category, and the category accuracies averaged with equal weight (DCLM
  ``eval/eval_openlm_ckpt.py``);
* schema tasks (Winograd) score the shared continuation after each context option
  (partial scoring, Trinh & Le 2018, arXiv:1806.02847).

Differences, deliberate: the shots are drawn per example from ``random.Random`` seeded
with ``(seed, task, example index)`` (llm-foundry threads one RNG through the file, so
a subset run would see other shots); the context string (shots + question) is encoded
in one call rather than shots and question separately, which avoids a spurious
word-start token where a sentencepiece piece begins with the example delimiter; and
every prompt starts from one start token (:func:`prompts.start_token_id`): EOS for our proxies, which are
trained on EOS-separated documents so EOS is their "start of document" state, and the tokenizer's BOS where
its configuration asks for one (the Llama tokenizer of the published OpenELM checkpoints: ``<s>``), as
llm-foundry prepends the tokenizer's BOS.

Scores (llm-foundry metrics, ``llmfoundry/eval/metrics/nlp.py``):

* multiple choice / schema ``accuracy``: the choice with the lowest mean per-token
  cross-entropy of its continuation (``InContextLearningMultipleChoiceAccuracy``);
  ``acc_sum`` (highest summed log-probability, lm-eval-harness ``acc``) and
  ``acc_char`` (summed log-probability per character, lm-eval-harness ``acc_norm``) too;
* language modelling ``accuracy``: every continuation token is the greedy argmax
  (``InContextLearningLMAccuracy``);
* continuous scores (DataDecide, Magnusson et al. 2025, found small proxies rank data only by these):
  ``prob_correct``, the probability mass of the correct answer, softmax over the choices' summed
  log-probabilities (MC/schema), or the probability of the whole continuation (LM);
  ``gold_logprob_per_token`` and ``gold_logprob_per_byte``, the correct continuation's log-probability (nats)
  per token and per UTF-8 byte; ``prob_correct_centered`` = (prob_correct − 1/k) / (1 − 1/k) for k choices
  (0 at a uniform guess; LM tasks keep ``prob_correct``);
* ``centered_accuracy`` = (acc − rb/100) / (1 − rb/100) with rb the task's random
  baseline (the Eval Gauntlet rescaling; DCLM ``eval/aggregated_metrics.py``);
* ``core``: DCLM's CORE, the mean centered accuracy over its 22 ``low_variance_datasets``, only when all 22
  were evaluated as DCLM defines them (``core_is_full_dclm_core``): DCLM's shots, every example, none skipped,
  DCLM's task files. Otherwise ``core`` is None, ``core_partial`` is the mean over the CORE tasks that were
  evaluated, ``core_missing`` names the absent ones and ``core_departures`` says, per task, what differs
  (``shots``, ``subset``, ``skipped``, ``file``). ``core_prob`` (mean ``prob_correct_centered``) and
  ``core_gold_bpb`` (mean bits per byte of the correct continuation) are the same aggregate over the continuous
  scores. ``centered_mean`` is the mean over every evaluated task.

Window limits: a continuation longer than the model window cannot be scored whole, so its example is
skipped and counted (``n_skipped_long``), never scored on its first tokens; contexts longer than the window
keep their end (llm-foundry ``trim_context``), counted as ``n_context_truncated`` (frequent at tiny recipes'
64-token windows, where few-shot prompts rarely fit).

Precision: fp32 by default from every entry point, as DCLM evaluates (``precision: fp32`` in its
``eval/heavy.yaml``); ``precision="bf16"`` runs the model under bf16 autocast on CUDA.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from train_small.eval.prompts import (  # noqa: F401  (re-exported: the harness's public names)
    Prompt,
    SentencePieceTokenizer,
    TextTokenizer,
    as_tokenizer,
    boundary_mode,
    build_prompt,
    encode_continuation,
    fewshot_indices,
    load_examples,
    needs_prefix_space,
    start_token_id,
)
from train_small.eval.tasks import CORE_TASKS, LM, TaskSpec, dclm_departures, resolve_tasks

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- scoring


@dataclass
class Request:
    context: list[int]
    continuation: list[int]


@dataclass
class Score:
    logprob: float  # summed log-probability of the continuation tokens
    n_tokens: int
    greedy: bool  # every continuation token is the argmax


def _model_max_len(model: torch.nn.Module, default: int = 2048) -> int:
    for obj in (getattr(model, "cfg", None), getattr(model, "config", None), model):
        for name in ("max_seq_len", "max_context_length", "seq_len", "block_size", "max_position_embeddings"):
            v = getattr(obj, name, None) if obj is not None else None
            if isinstance(v, int) and v > 0:
                return v
    return default


def _logits(model: torch.nn.Module, idx: torch.Tensor) -> torch.Tensor:
    out = model(idx)
    if isinstance(out, (tuple, list)):
        out = out[0]
    elif isinstance(out, dict):
        out = out["logits"]
    elif hasattr(out, "logits"):
        out = out.logits
    return out


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def autocast_dtype_for(precision: str) -> torch.dtype | None:
    """``"fp32"`` -> None (no autocast), ``"bf16"`` -> bf16 autocast (CUDA only)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    return PRECISIONS[precision]


def _fit(req: Request, max_len: int) -> tuple[list[int], int]:
    """Concatenate and left-truncate to ``max_len + 1`` tokens (llm-foundry ``trim_context``).

    Returns the token list and the number of continuation tokens. A continuation longer than the window is
    an error: it cannot be scored whole (:func:`evaluate_task` skips and counts such examples).
    """
    cont = req.continuation
    if len(cont) > max_len:
        raise ValueError(f"continuation of {len(cont)} tokens does not fit the {max_len}-token window")
    ctx = req.context[-(max_len + 1 - len(cont)) :] if req.context else []
    if not ctx:
        raise ValueError("a request needs at least one context token (prepend EOS)")
    return ctx + cont, len(cont)


@torch.inference_mode()
def score_requests(
    model: torch.nn.Module,
    requests: list[Request],
    *,
    max_seq_len: int | None = None,
    batch_tokens: int = 16384,
    max_batch: int = 64,
    device: torch.device | str | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> list[Score]:
    """Log-likelihood of each request's continuation given its context, batched with right padding.

    Requests are sorted by length (longest first) and packed into batches of at most
    ``batch_tokens`` padded tokens. Right padding is harmless under causal attention:
    positions before the pad never attend to it. Only the continuation positions'
    logits go through the log-softmax (in fp32), so memory is ``B×T×V`` for the model
    output only.
    """
    if not requests:
        return []
    max_len = max_seq_len or _model_max_len(model)
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)
    fitted = [_fit(r, max_len) for r in requests]
    order = sorted(range(len(fitted)), key=lambda i: -len(fitted[i][0]))
    results: list[Score | None] = [None] * len(requests)
    pos = 0
    while pos < len(order):
        T = len(fitted[order[pos]][0]) - 1  # longest input in this batch
        B = max(1, min(max_batch, batch_tokens // max(T, 1), len(order) - pos))
        batch = order[pos : pos + B]
        pos += B
        inp = torch.zeros((B, T), dtype=torch.long)
        rows, cols, tgts, seg = [], [], [], []
        for b, i in enumerate(batch):
            toks, n_cont = fitted[i]
            t = torch.as_tensor(toks, dtype=torch.long)
            inp[b, : len(toks) - 1] = t[:-1]
            start = len(toks) - 1 - n_cont  # position whose logits predict the first continuation token
            rows.append(torch.full((n_cont,), b, dtype=torch.long))
            cols.append(torch.arange(start, start + n_cont))
            tgts.append(t[-n_cont:])
            seg.append(torch.full((n_cont,), b, dtype=torch.long))
        inp = inp.to(device)
        if autocast_dtype is not None and device.type == "cuda":
            with torch.autocast("cuda", dtype=autocast_dtype):
                logits = _logits(model, inp)
        else:
            logits = _logits(model, inp)
        r = torch.cat(rows).to(device)
        c = torch.cat(cols).to(device)
        tg = torch.cat(tgts).to(device)
        sel = logits[r, c].float()  # (N, V)
        lp = torch.log_softmax(sel, dim=-1).gather(1, tg[:, None]).squeeze(1)
        hit = (sel.argmax(dim=-1) == tg).to(torch.float64)
        sg = torch.cat(seg).to(device)
        sums = torch.zeros(B, dtype=torch.float64, device=device).index_add_(0, sg, lp.double())
        hits = torch.zeros(B, dtype=torch.float64, device=device).index_add_(0, sg, hit)
        counts = torch.bincount(sg, minlength=B)
        for b, i in enumerate(batch):
            n = int(counts[b])
            results[i] = Score(float(sums[b]), n, bool(hits[b].item() == n))
    return results  # type: ignore[return-value]


# ----------------------------------------------------------------------------- metrics


def centered_accuracy(acc: float, random_baseline: float) -> float:
    """(acc − rb/100) / (1 − rb/100): 0 at chance, 1 when perfect; rb in percent."""
    rb = random_baseline / 100.0
    if not 0.0 <= rb < 1.0:
        raise ValueError(f"random baseline {random_baseline} must be a percentage in [0, 100)")
    return (acc - rb) / (1.0 - rb)


def choice_metrics(logprobs: np.ndarray, n_tokens: np.ndarray, n_chars: np.ndarray, gold: int,
                   n_bytes: np.ndarray | None = None) -> dict[str, float]:
    """Per-example MC/schema metrics from the choices' summed log-probs, token, character (and byte) counts."""
    lp = np.asarray(logprobs, dtype=np.float64)
    per_tok = lp / np.maximum(np.asarray(n_tokens), 1)
    per_char = lp / np.maximum(np.asarray(n_chars), 1)
    nb = np.asarray(n_chars if n_bytes is None else n_bytes)
    p = np.exp(lp - lp.max())
    p /= p.sum()
    k = len(lp)
    return {
        "accuracy": float(int(np.argmax(per_tok)) == gold),  # llm-foundry: lowest mean cross-entropy
        "acc_sum": float(int(np.argmax(lp)) == gold),
        "acc_char": float(int(np.argmax(per_char)) == gold),
        "prob_correct": float(p[gold]),
        "prob_correct_centered": float((p[gold] - 1 / k) / (1 - 1 / k)) if k > 1 else float(p[gold]),
        "gold_logprob_per_token": float(per_tok[gold]),
        "gold_logprob_per_byte": float(lp[gold] / max(int(nb[gold]), 1)),
    }


def select_examples(n: int, max_examples: int | None, seed: int, label: str) -> list[int]:
    """All indices, or a seeded subset of ``max_examples`` (sorted), the same for every model."""
    if max_examples is None or max_examples >= n:
        return list(range(n))
    rng = random.Random(f"subset/{seed}/{label}")
    return sorted(rng.sample(range(n), max_examples))


def _score_examples(
    model: torch.nn.Module,
    tok: TextTokenizer,
    spec: TaskSpec,
    examples: list[dict],
    idxs: list[int],
    *,
    seed: int,
    bos: list[int],
    mode: str,
    max_len: int,
    score_kw: dict[str, Any],
    rows: list[int] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Per-example metrics of ``examples[idxs]`` (shots drawn from ``examples``), and the window counts.

    ``rows``: the file row of each of ``examples`` (reported as ``index`` and ``shots``)."""
    requests: list[Request] = []
    groups: list[tuple[int, int, Prompt, int]] = []
    cache: dict[str, list[int]] = {}
    counts = {"n_skipped_long": 0, "n_context_truncated": 0}

    def enc(text: str) -> list[int]:
        v = cache.get(text)
        if v is None:
            if len(cache) > 4096:
                cache.clear()
            v = cache[text] = tok.encode(text)
        return v

    for i in idxs:
        pr = build_prompt(spec, examples, i, seed=seed, prefix_space=mode == "space")
        reqs = [Request(bos + enc(c), enc(k)) for c, k in zip(pr.contexts, pr.continuations)]
        if any(len(r.continuation) > max_len for r in reqs):
            counts["n_skipped_long"] += 1  # cannot be scored whole: skipped, never scored on its head
            continue
        if any(len(r.context) + len(r.continuation) > max_len + 1 for r in reqs):
            counts["n_context_truncated"] += 1
        groups.append((len(requests), len(requests) + len(reqs), pr, rows[i] if rows else i))
        requests += reqs
    scores = score_requests(model, requests, max_seq_len=max_len, **score_kw)
    per: list[dict[str, float]] = []
    for s, e, pr, i in groups:
        sc = scores[s:e]
        if spec.task_type == LM:
            n_bytes = max(len(pr.continuations[0].encode("utf-8")), 1)
            m = {"accuracy": float(sc[0].greedy), "prob_correct": math.exp(sc[0].logprob),
                 "nll_per_token": -sc[0].logprob / max(sc[0].n_tokens, 1),
                 "gold_logprob_per_token": sc[0].logprob / max(sc[0].n_tokens, 1),
                 "gold_logprob_per_byte": sc[0].logprob / n_bytes}  # fmt: skip
            m["prob_correct_centered"] = m["prob_correct"]
        else:
            m = choice_metrics(
                np.array([x.logprob for x in sc]),
                np.array([x.n_tokens for x in sc]),
                np.array([len(c) for c in pr.continuations]),
                int(pr.gold),  # type: ignore[arg-type]
                n_bytes=np.array([len(c.encode("utf-8")) for c in pr.continuations]),
            )
        m["index"] = i
        m["shots"] = [rows[j] for j in pr.shots] if rows else list(pr.shots)
        per.append(m)
    return per, counts


def _means(per: list[dict[str, Any]]) -> dict[str, float]:
    return {k: float(np.mean([p[k] for p in per])) for k in per[0] if k not in ("index", "shots", "category")}


def evaluate_task(
    model: torch.nn.Module,
    tokenizer: Any,
    spec: TaskSpec,
    path: str | os.PathLike,
    *,
    seed: int = 1234,
    max_examples: int | None = None,
    start_token: str = "auto",
    published: bool = False,
    return_per_example: bool = False,
    max_seq_len: int | None = None,
    precision: str = "fp32",
    **score_kw: Any,
) -> dict[str, Any]:
    """Evaluate one task file; returns its metrics (see the module docstring).

    ``spec.has_categories``: the examples are split by their ``category`` field; each category is a sub-task
    (shots from the same category, ``max_examples`` per category) and the task's metrics are the unweighted
    means over categories, listed under ``subcategories``. ``n`` is 0, with no metrics, when every example was
    skipped (continuations longer than the window).
    """
    tok = as_tokenizer(tokenizer)
    examples, n_bad = load_examples(path, spec.task_type)
    if len(examples) == 0:
        raise ValueError(f"{spec.label}: no valid examples in {path}")
    t0 = time.perf_counter()
    max_len = max_seq_len or _model_max_len(model)
    score_kw = {"autocast_dtype": autocast_dtype_for(precision), **score_kw}
    start = start_token_id(tok, start_token, published)
    common = dict(seed=seed, bos=[start] if start is not None else [], mode=boundary_mode(tok), max_len=max_len,
                  score_kw=score_kw)  # fmt: skip
    rows_of: dict[str, list[int]] = {}
    if spec.has_categories:
        for row, ex in enumerate(examples):
            rows_of.setdefault(ex.get("category", ""), []).append(row)
        if "" in rows_of:
            raise ValueError(f"{spec.label}: has_categories is set but {len(rows_of[''])} rows have no category")
    else:
        rows_of[""] = list(range(len(examples)))
    parts = {cat: [examples[r] for r in rows] for cat, rows in rows_of.items()}
    res: dict[str, Any] = {}
    subs: dict[str, dict[str, Any]] = {}
    per_all: list[dict[str, float]] = []
    counts = {"n_skipped_long": 0, "n_context_truncated": 0}
    for cat in sorted(parts):
        sub_spec = replace(spec, label=f"{spec.label}/{cat}") if cat else spec
        idxs = select_examples(len(parts[cat]), max_examples, seed, sub_spec.label)
        per, c = _score_examples(model, tok, sub_spec, parts[cat], idxs, rows=rows_of[cat], **common)
        for k in counts:
            counts[k] += c[k]
        if per:
            subs[cat] = {**_means(per), "n": len(per), "n_total": len(parts[cat]), **c}
            per_all += [{**p, "category": cat} for p in per] if cat else per
    if spec.has_categories and subs:
        keys = [k for k in next(iter(subs.values())) if k not in ("n", "n_total", *counts)]
        res = {k: float(np.mean([v[k] for v in subs.values()])) for k in keys}  # categories weigh equally
        res["subcategories"] = subs
    elif subs:
        res = _means(per_all)
    if res:
        res["centered_accuracy"] = centered_accuracy(res["accuracy"], spec.random_baseline)
    res.update(
        task_type=spec.task_type, num_fewshot=spec.num_fewshot, random_baseline=spec.random_baseline,
        category=spec.category, n=len(per_all), n_total=len(examples), n_malformed=n_bad, **counts,
        max_seq_len=max_len, precision=precision, seconds=round(time.perf_counter() - t0, 3),
        dclm_departures=dclm_departures(spec, len(per_all), len(examples), counts["n_skipped_long"]),
    )  # fmt: skip
    if counts["n_skipped_long"] or counts["n_context_truncated"]:
        log.warning("%s: %d examples skipped (continuation longer than the %d-token window), %d with their "
                    "context cut to fit", spec.label, counts["n_skipped_long"], max_len,
                    counts["n_context_truncated"])  # fmt: skip
    if return_per_example:
        res["per_example"] = per_all
    return res


def evaluate(
    model: torch.nn.Module,
    tokenizer: Any,
    eval_dir: str | os.PathLike,
    tasks: Any = None,
    *,
    seed: int = 1234,
    max_examples: int | None = None,
    num_fewshot: int | None = None,
    start_token: str = "auto",
    published: bool = False,
    precision: str = "fp32",
    return_per_example: bool = False,
    **score_kw: Any,
) -> dict[str, Any]:
    """Evaluate ``model`` on the tasks of ``eval_dir`` (see :func:`tasks.resolve_tasks` for ``tasks``).

    Returns ``{"tasks": {label: metrics}, "core", "core_partial", "core_is_full_dclm_core", "core_missing",
    "centered_mean", "categories", "skipped_tasks", "window": {...}, "settings": {...}}`` (see the module
    docstring). A task none of whose examples fit the window is left out of ``tasks`` and listed in
    ``skipped_tasks``.
    """
    tok = as_tokenizer(tokenizer)
    autocast_dtype_for(precision)  # validate before any work
    resolved = resolve_tasks(eval_dir, tasks, num_fewshot=num_fewshot)
    if not resolved:
        raise ValueError(f"no configured task found under {eval_dir}")
    was_training = model.training
    model.eval()
    out: dict[str, Any] = {"tasks": {}, "skipped_tasks": {}}
    try:
        for spec, path in resolved:
            r = evaluate_task(model, tok, spec, path, seed=seed, max_examples=max_examples, start_token=start_token,
                              published=published, precision=precision, return_per_example=return_per_example,
                              **score_kw)  # fmt: skip
            if r["n"] == 0:
                out["skipped_tasks"][spec.label] = f"all {r['n_skipped_long']} examples longer than the window"
                log.warning("%s: no example fits the %d-token window, task skipped", spec.label, r["max_seq_len"])
                continue
            log.info("%s: acc %.4f centered %.4f (%d ex, %.1fs)", spec.label, r["accuracy"],
                     r["centered_accuracy"], r["n"], r["seconds"])  # fmt: skip
            out["tasks"][spec.label] = r
    finally:
        model.train(was_training)
    out.update(aggregate(out["tasks"]))
    out["window"] = {k: sum(r[k] for r in out["tasks"].values()) for k in ("n_skipped_long", "n_context_truncated")}
    out["window"]["n_examples"] = sum(r["n"] for r in out["tasks"].values())
    out["settings"] = {
        "seed": seed,
        "max_examples": max_examples,
        "num_fewshot_override": num_fewshot,
        "start_token": start_token,
        "start_token_id": start_token_id(tok, start_token, published),
        "precision": precision,
        "boundary_mode": boundary_mode(tok),
        "eval_dir": str(eval_dir),
        "max_seq_len": score_kw.get("max_seq_len") or _model_max_len(model),
        "tasks": [asdict(s) for s, _ in resolved],
    }
    return out


def aggregate(task_results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Aggregates over evaluated tasks: ``core`` (DCLM CORE, only when all 22 CORE tasks are there, else None),
    ``core_partial`` (mean centered accuracy over the CORE tasks present, when some are missing),
    ``core_missing``, ``core_is_full_dclm_core``, ``centered_mean`` (over every task), per-category means,
    mean accuracy and mean ``prob_correct``."""
    present = [t for t in CORE_TASKS if t in task_results]
    departures = {t: task_results[t]["dclm_departures"] for t in present if task_results[t].get("dclm_departures")}
    full = len(present) == len(CORE_TASKS) and not departures
    core_vals = [task_results[t]["centered_accuracy"] for t in present]
    out: dict[str, Any] = {
        "core": float(np.mean(core_vals)) if full else None,
        "core_is_full_dclm_core": full,
        "core_missing": [t for t in CORE_TASKS if t not in task_results],
        "core_departures": departures,
    }
    if not full:
        out["core_partial"] = float(np.mean(core_vals)) if core_vals else None
        out["core_partial_tasks"] = len(present)
    cont = [t for t in present if "prob_correct_centered" in task_results[t]]
    if cont:
        out["core_prob"] = float(np.mean([task_results[t]["prob_correct_centered"] for t in cont]))
        out["core_gold_bpb"] = float(np.mean([-task_results[t]["gold_logprob_per_byte"] / math.log(2) for t in cont]))
    if not task_results:
        return {**out, "centered_mean": float("nan"), "mean_accuracy": float("nan"), "categories": {}}
    cats: dict[str, list[float]] = {}
    for r in task_results.values():
        cats.setdefault(r.get("category") or "other", []).append(r["centered_accuracy"])
    return {
        **out,
        "centered_mean": float(np.mean([r["centered_accuracy"] for r in task_results.values()])),
        "mean_accuracy": float(np.mean([r["accuracy"] for r in task_results.values()])),
        "mean_prob_correct": float(np.mean([r["prob_correct"] for r in task_results.values()])),
        "categories": {k: float(np.mean(v)) for k, v in sorted(cats.items())},
    }


def write_results(results: dict[str, Any], path: str | os.PathLike) -> None:
    """Write JSON atomically (temporary name, then rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True, default=float))
    os.replace(tmp, p)
