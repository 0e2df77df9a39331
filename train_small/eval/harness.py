"""Few-shot evaluation of a causal LM on llm-foundry jsonl tasks, scored by log-likelihood.

Prompt construction follows llm-foundry's ``InContextLearning*Dataset``
(mosaicml/llm-foundry ``llmfoundry/eval/datasets/in_context_learning_evaluation.py``):

* every string field is stripped (``strip_dataset=True``);
* a few-shot example is ``[example_delimiter] prelimiter + context + continuation_delimiter + answer``
  (the delimiter only when some text precedes it), appended to ``prompt_string``;
* the evaluated example's context is built the same way without the answer, then
  right-stripped ("a prompt ending in a space results in degenerate output");
* the answer gets a leading space when the tokenizer needs one to start a word
  (llm-foundry's ``tokenizer_needs_prefix_space``: ``" a"`` encodes to one token);
* schema tasks (Winograd) score the shared continuation after each context option
  (partial scoring, Trinh & Le 2018, arXiv:1806.02847).

Differences, deliberate: the shots are drawn per example from ``random.Random`` seeded
with ``(seed, task, example index)`` (llm-foundry threads one RNG through the file, so
a subset run would see other shots); the context string (shots + question) is encoded
in one call rather than shots and question separately, which avoids a spurious
word-start token where a sentencepiece piece begins with the example delimiter; and
an EOS token is prepended, because the proxy is trained on EOS-separated documents so
EOS is its "start of document" state (llm-foundry adds the tokenizer's BOS, if any).

Scores (llm-foundry metrics, ``llmfoundry/eval/metrics/nlp.py``):

* multiple choice / schema ``accuracy``: the choice with the lowest mean per-token
  cross-entropy of its continuation (``InContextLearningMultipleChoiceAccuracy``);
  ``acc_sum`` (highest summed log-probability, lm-eval-harness ``acc``) and
  ``acc_char`` (summed log-probability per character, lm-eval-harness ``acc_norm``) too;
* language modelling ``accuracy``: every continuation token is the greedy argmax
  (``InContextLearningLMAccuracy``);
* ``prob_correct``, a continuous score: the probability mass of the correct answer,
  softmax over the choices' summed log-probabilities (MC/schema), or the probability
  of the whole continuation (LM);
* ``centered_accuracy`` = (acc − rb/100) / (1 − rb/100) with rb the task's random
  baseline (the Eval Gauntlet rescaling; DCLM ``eval/aggregated_metrics.py``), and
  ``core``: the mean centered accuracy over the evaluated tasks (DCLM's CORE when
  the 22 ``low_variance_datasets`` are all present).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from train_small.eval.tasks import CORE_TASKS, LM, MC, SCHEMA, TaskSpec, resolve_tasks

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- tokenizer


@runtime_checkable
class TextTokenizer(Protocol):
    """What the harness needs from a tokenizer."""

    eos_id: int | None

    def encode(self, text: str) -> list[int]: ...


class SentencePieceTokenizer:
    """A thin adapter over ``sentencepiece.SentencePieceProcessor`` (or a ``.model`` path)."""

    def __init__(self, sp: Any) -> None:
        import sentencepiece as spm

        if isinstance(sp, (str, os.PathLike)):
            path = str(sp)
            if not os.path.exists(path):
                raise FileNotFoundError(f"tokenizer model {path} does not exist")
            sp = spm.SentencePieceProcessor(model_file=path)
        if not isinstance(sp, spm.SentencePieceProcessor):
            raise TypeError(f"expected a SentencePieceProcessor or a model path, got {type(sp).__name__}")
        self.sp = sp
        eos = int(sp.eos_id())
        self.eos_id: int | None = eos if eos >= 0 else None
        self.vocab_size = int(sp.get_piece_size())

    def encode(self, text: str) -> list[int]:
        return list(self.sp.encode(text))

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [list(x) for x in self.sp.encode(texts)]

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode(ids)


def as_tokenizer(tok: Any) -> TextTokenizer:
    """Wrap a SentencePieceProcessor / model path; pass through anything with ``encode`` and ``eos_id``."""
    if isinstance(tok, (str, os.PathLike)):
        return SentencePieceTokenizer(tok)
    try:
        import sentencepiece as spm

        if isinstance(tok, spm.SentencePieceProcessor):
            return SentencePieceTokenizer(tok)
    except ImportError:  # pragma: no cover
        pass
    if hasattr(tok, "encode"):
        if not hasattr(tok, "eos_id"):
            raise TypeError("tokenizer object needs an `eos_id` attribute (None if it has no EOS)")
        eos = tok.eos_id() if callable(tok.eos_id) else tok.eos_id
        if callable(tok.eos_id):  # e.g. a raw processor-like object
            return _CallableEos(tok, eos)
        return tok
    raise TypeError(f"cannot use {type(tok).__name__} as a tokenizer")


class _CallableEos:
    def __init__(self, tok: Any, eos: int | None) -> None:
        self._tok = tok
        self.eos_id = eos if eos is None or eos >= 0 else None

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text))


def needs_prefix_space(tok: TextTokenizer) -> bool:
    """llm-foundry's rule: a word needs an explicit leading space when ``" a"`` is one token."""
    return len(tok.encode(" a")) == 1


# ----------------------------------------------------------------------------- examples and prompts


def load_examples(path: str | os.PathLike, task_type: str) -> tuple[list[dict], int]:
    """Read a jsonl task file; return (valid examples with strings stripped, number of rows skipped).

    A row with missing or ill-typed fields is skipped with a warning, never a crash.
    """
    out: list[dict] = []
    bad = 0
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                ex = _validate(row, task_type)
            except (ValueError, TypeError, KeyError) as e:
                bad += 1
                if bad <= 3:
                    log.warning("%s:%d skipped: %s", path, lineno, e)
                continue
            out.append(ex)
    if bad:
        log.warning("%s: %d malformed rows skipped", path, bad)
    return out, bad


def _validate(row: Any, task_type: str) -> dict:
    if not isinstance(row, dict):
        raise TypeError("row is not an object")
    # llm-foundry strip_data: strip every top-level string field (lists are left alone)
    row = {k: (v.strip() if isinstance(v, str) else v) for k, v in row.items()}
    if task_type == MC:
        q, ch, g = row["query"], row["choices"], row["gold"]
        if not isinstance(q, str) or not isinstance(ch, list) or len(ch) < 2 or not all(isinstance(c, str) for c in ch):
            raise TypeError("multiple choice needs a string query and >= 2 string choices")
        if not isinstance(g, int) or not 0 <= g < len(ch):
            raise ValueError(f"gold {g!r} out of range")
        return {"query": q, "choices": ch, "gold": g}
    if task_type == LM:
        c, cont = row["context"], row["continuation"]
        if not isinstance(c, str) or not isinstance(cont, str) or not cont:
            raise TypeError("language modelling needs string context and non-empty continuation")
        return {"context": c, "continuation": cont}
    if task_type == SCHEMA:
        opts, cont, g = row["context_options"], row["continuation"], row["gold"]
        if not isinstance(opts, list) or len(opts) < 2 or not all(isinstance(o, str) for o in opts):
            raise TypeError("schema needs >= 2 string context_options")
        if not isinstance(cont, str) or not cont:
            raise TypeError("schema needs a non-empty string continuation")
        if not isinstance(g, int) or not 0 <= g < len(opts):
            raise ValueError(f"gold {g!r} out of range")
        return {"context_options": opts, "continuation": cont, "gold": g}
    raise ValueError(f"unknown task type {task_type!r}")


def fewshot_indices(n: int, k: int, idx: int, seed: int, label: str) -> list[int]:
    """``k`` distinct example indices in ``[0, n)``, never ``idx``, fixed by (seed, label, idx)."""
    k = min(k, n - 1)
    if k <= 0:
        return []
    rng = random.Random(f"{seed}/{label}/{idx}")
    picks = rng.sample(range(n - 1), k)
    return [p + 1 if p >= idx else p for p in picks]  # skip idx without rejection sampling


@dataclass
class Prompt:
    """The strings scored for one example: one (context, continuation) pair per choice."""

    contexts: list[str]
    continuations: list[str]
    gold: int | None  # None for language modelling
    shots: list[int] = field(default_factory=list)


def _answer(spec: TaskSpec, ex: dict) -> str:
    if spec.task_type == MC:
        return ex["choices"][ex["gold"]]
    return ex["continuation"]


def _shot_text(spec: TaskSpec, ex: dict, preceding: str) -> str:
    """One solved example as llm-foundry's ``construct_context(add_answer=True)`` writes it."""
    if spec.task_type == SCHEMA:
        ctx = ex["context_options"][ex["gold"]]
        if preceding:
            ctx = spec.example_delimiter + ctx
        return f"{spec.prelimiter}{ctx}{spec.continuation_delimiter}{ex['continuation']}"
    ctx = spec.prelimiter + (ex["query"] if spec.task_type == MC else ex["context"])
    if preceding:
        ctx = spec.example_delimiter + ctx
    return f"{ctx}{spec.continuation_delimiter}{_answer(spec, ex)}"


def build_prompt(spec: TaskSpec, examples: list[dict], idx: int, seed: int = 1234, prefix_space: bool = True) -> Prompt:
    """The scored strings of ``examples[idx]`` with ``spec.num_fewshot`` solved shots before it."""
    shots = fewshot_indices(len(examples), spec.num_fewshot, idx, seed, spec.label)
    text = spec.prompt_string
    for j in shots:
        text += _shot_text(spec, examples[j], text)
    ex = examples[idx]

    def cont(s: str) -> str:
        return f" {s}" if prefix_space and not s.startswith(" ") else s

    if spec.task_type == SCHEMA:
        if text:
            cdel = spec.continuation_delimiter.rstrip()
            opts = [f"{spec.prelimiter}{spec.example_delimiter}{c}{cdel}" for c in ex["context_options"]]
        else:
            opts = [f"{spec.prelimiter}{c}" for c in ex["context_options"]]
        contexts = [text + o for o in opts]
        return Prompt(contexts, [cont(ex["continuation"])] * len(opts), ex["gold"], shots)
    ctx = spec.prelimiter + (ex["query"] if spec.task_type == MC else ex["context"])
    if text:
        ctx = spec.example_delimiter + ctx
    context = (text + ctx + spec.continuation_delimiter).rstrip()
    if spec.task_type == MC:
        return Prompt([context] * len(ex["choices"]), [cont(c) for c in ex["choices"]], ex["gold"], shots)
    return Prompt([context], [cont(ex["continuation"])], None, shots)


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


def _fit(req: Request, max_len: int) -> tuple[list[int], int]:
    """Concatenate and left-truncate to ``max_len + 1`` tokens (llm-foundry ``trim_context``).

    Returns the token list and the number of continuation tokens kept.
    """
    cont = req.continuation
    if len(cont) > max_len:  # a continuation longer than the window: score its head (counted by the caller)
        cont = cont[:max_len]
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
    n_cut = sum(len(r.continuation) > max_len for r in requests)
    if n_cut:
        log.warning("%d of %d continuations longer than the model window %d: scored on their head",
                    n_cut, len(requests), max_len)  # fmt: skip
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


def choice_metrics(logprobs: np.ndarray, n_tokens: np.ndarray, n_chars: np.ndarray, gold: int) -> dict[str, float]:
    """Per-example MC/schema metrics from the choices' summed log-probs, token and character counts."""
    lp = np.asarray(logprobs, dtype=np.float64)
    per_tok = lp / np.maximum(np.asarray(n_tokens), 1)
    per_char = lp / np.maximum(np.asarray(n_chars), 1)
    p = np.exp(lp - lp.max())
    p /= p.sum()
    return {
        "accuracy": float(int(np.argmax(per_tok)) == gold),  # llm-foundry: lowest mean cross-entropy
        "acc_sum": float(int(np.argmax(lp)) == gold),
        "acc_char": float(int(np.argmax(per_char)) == gold),
        "prob_correct": float(p[gold]),
    }


def select_examples(n: int, max_examples: int | None, seed: int, label: str) -> list[int]:
    """All indices, or a seeded subset of ``max_examples`` (sorted), the same for every model."""
    if max_examples is None or max_examples >= n:
        return list(range(n))
    rng = random.Random(f"subset/{seed}/{label}")
    return sorted(rng.sample(range(n), max_examples))


def evaluate_task(
    model: torch.nn.Module,
    tokenizer: Any,
    spec: TaskSpec,
    path: str | os.PathLike,
    *,
    seed: int = 1234,
    max_examples: int | None = None,
    prepend_eos: bool = True,
    return_per_example: bool = False,
    **score_kw: Any,
) -> dict[str, Any]:
    """Evaluate one task file; returns its metrics (see the module docstring)."""
    tok = as_tokenizer(tokenizer)
    examples, n_bad = load_examples(path, spec.task_type)
    if len(examples) == 0:
        raise ValueError(f"{spec.label}: no valid examples in {path}")
    t0 = time.perf_counter()
    prefix_space = needs_prefix_space(tok)
    idxs = select_examples(len(examples), max_examples, seed, spec.label)
    bos = [tok.eos_id] if (prepend_eos and tok.eos_id is not None) else []
    requests: list[Request] = []
    groups: list[tuple[int, int, Prompt]] = []
    cache: dict[str, list[int]] = {}

    def enc(s: str) -> list[int]:
        v = cache.get(s)
        if v is None:
            v = cache[s] = tok.encode(s)
        return v

    for i in idxs:
        pr = build_prompt(spec, examples, i, seed=seed, prefix_space=prefix_space)
        start = len(requests)
        for ctx, cont in zip(pr.contexts, pr.continuations):
            requests.append(Request(bos + enc(ctx), enc(cont)))
        groups.append((start, len(requests), pr))
        if len(cache) > 4096:
            cache.clear()
    scores = score_requests(model, requests, **score_kw)

    per: list[dict[str, float]] = []
    for (s, e, pr), i in zip(groups, idxs):
        sc = scores[s:e]
        if spec.task_type == LM:
            m = {"accuracy": float(sc[0].greedy), "prob_correct": math.exp(sc[0].logprob)}
            m["nll_per_token"] = -sc[0].logprob / max(sc[0].n_tokens, 1)
        else:
            m = choice_metrics(
                np.array([x.logprob for x in sc]),
                np.array([x.n_tokens for x in sc]),
                np.array([len(c) for c in pr.continuations]),
                int(pr.gold),  # type: ignore[arg-type]
            )
        m["index"] = i
        per.append(m)
    keys = [k for k in per[0] if k != "index"]
    res: dict[str, Any] = {k: float(np.mean([p[k] for p in per])) for k in keys}
    res["centered_accuracy"] = centered_accuracy(res["accuracy"], spec.random_baseline)
    res.update(
        task_type=spec.task_type,
        num_fewshot=spec.num_fewshot,
        random_baseline=spec.random_baseline,
        category=spec.category,
        n=len(per),
        n_total=len(examples),
        n_malformed=n_bad,
        seconds=round(time.perf_counter() - t0, 3),
    )
    if return_per_example:
        res["per_example"] = per
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
    prepend_eos: bool = True,
    **score_kw: Any,
) -> dict[str, Any]:
    """Evaluate ``model`` on the tasks of ``eval_dir`` (see :func:`tasks.resolve_tasks` for ``tasks``).

    Returns ``{"tasks": {label: metrics}, "core": mean centered accuracy, "categories": {...},
    "core_missing": [...], "settings": {...}}``.
    """
    tok = as_tokenizer(tokenizer)
    resolved = resolve_tasks(eval_dir, tasks, num_fewshot=num_fewshot)
    if not resolved:
        raise ValueError(f"no configured task found under {eval_dir}")
    was_training = model.training
    model.eval()
    out: dict[str, Any] = {"tasks": {}}
    try:
        for spec, path in resolved:
            r = evaluate_task(
                model, tok, spec, path, seed=seed, max_examples=max_examples, prepend_eos=prepend_eos, **score_kw
            )
            log.info("%s: acc %.4f centered %.4f (%d ex, %.1fs)", spec.label, r["accuracy"],
                     r["centered_accuracy"], r["n"], r["seconds"])  # fmt: skip
            out["tasks"][spec.label] = r
    finally:
        model.train(was_training)
    out.update(aggregate(out["tasks"]))
    core_set = set(CORE_TASKS)
    if tasks is None or tasks == "core":
        out["core_missing"] = [t for t in CORE_TASKS if t not in out["tasks"]]
    out["core_is_full_dclm_core"] = core_set.issubset(out["tasks"])
    out["settings"] = {
        "seed": seed,
        "max_examples": max_examples,
        "num_fewshot_override": num_fewshot,
        "prepend_eos": prepend_eos,
        "eval_dir": str(eval_dir),
        "max_seq_len": score_kw.get("max_seq_len") or _model_max_len(model),
        "tasks": [asdict(s) for s, _ in resolved],
    }
    return out


def aggregate(task_results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """CORE-like aggregates: mean centered accuracy overall and per category, mean accuracy."""
    if not task_results:
        return {"core": float("nan"), "mean_accuracy": float("nan"), "categories": {}}
    cats: dict[str, list[float]] = {}
    for r in task_results.values():
        cats.setdefault(r.get("category") or "other", []).append(r["centered_accuracy"])
    return {
        "core": float(np.mean([r["centered_accuracy"] for r in task_results.values()])),
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
