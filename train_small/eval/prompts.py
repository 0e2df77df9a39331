"""Prompts for the few-shot harness: the tokenizer adapter, task rows, few-shot draws and prompt strings.

Prompt construction follows llm-foundry's ``InContextLearning*Dataset``
(mosaicml/llm-foundry ``llmfoundry/eval/datasets/in_context_learning_evaluation.py``); see
:mod:`train_small.eval.harness` for the whole protocol and its deliberate differences.

The context/continuation boundary is handled once, by :func:`boundary_mode`: the context is right-stripped, the
continuation's leading spaces are removed, and the word boundary is then written the way the tokenizer expects:

* ``"space"``: ``" a"`` is one token (GPT-2 style BPE): the continuation gets one explicit leading space;
* ``"marker"``: the tokenizer writes its own word-start marker on the first word of any text (SentencePiece with
  ``add_dummy_prefix``, as our curation tokenizer and Llama's): the continuation is encoded without a space, and
  the tokenizer's ``▁`` marks the boundary. A raw leading space here would add a second, spurious ``▁`` token;
  HellaSwag's choices start with a space on some choices of a question and not others, so it would lengthen
  only those choices and skew the per-token mean;
* ``"none"`` (character tokenizers): no space is added (llm-foundry's behaviour when ``" a"`` is not one token).
"""

from __future__ import annotations

import json
import logging
import os
import random
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from train_small.eval.tasks import LM, MC, SCHEMA, TaskSpec

log = logging.getLogger(__name__)


@runtime_checkable
class TextTokenizer(Protocol):
    """What the harness needs from a tokenizer."""

    eos_id: int | None

    def encode(self, text: str) -> list[int]: ...


class SentencePieceTokenizer:
    """A thin adapter over ``sentencepiece.SentencePieceProcessor`` (or a ``.model`` path)."""

    def __init__(self, sp: Any) -> None:
        import sentencepiece as spm

        path = None
        if isinstance(sp, (str, os.PathLike)):
            path = str(sp)
            if not os.path.exists(path):
                raise FileNotFoundError(f"tokenizer model {path} does not exist")
            sp = spm.SentencePieceProcessor(model_file=path)
        if not isinstance(sp, spm.SentencePieceProcessor):
            raise TypeError(f"expected a SentencePieceProcessor or a model path, got {type(sp).__name__}")
        self.sp = sp
        eos, bos = int(sp.eos_id()), int(sp.bos_id())
        self.eos_id: int | None = eos if eos >= 0 else None
        self.bos_id: int | None = bos if bos >= 0 else None
        self.vocab_size = int(sp.get_piece_size())
        # Hugging Face keeps "prepend BOS" beside the model file (tokenizer_config.json, add_bos_token: the Llama
        # tokenizer of the published OpenELM checkpoints sets it); a .model alone does not say
        self.add_bos = False
        if path is not None:
            cfg = os.path.join(os.path.dirname(os.path.abspath(path)), "tokenizer_config.json")
            if os.path.exists(cfg):
                try:
                    self.add_bos = bool(json.load(open(cfg, encoding="utf-8")).get("add_bos_token", False))
                except (ValueError, AttributeError):
                    log.warning("%s: not a JSON object, add_bos_token not read", cfg)

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


START_TOKENS = ("auto", "eos", "bos", "none")


def start_token_id(tok: TextTokenizer, mode: str = "auto", published: bool = False) -> int | None:
    """The token every scored document and prompt starts from.

    ``"eos"``: the tokenizer's EOS, the state our proxies are trained to start documents from (token streams
    put EOS after every document). ``"bos"``: its BOS, what llm-foundry and Hugging Face prepend for a tokenizer
    that adds one (the Llama tokenizer of the published OpenELM checkpoints: ``<s>``). ``"none"``: nothing.
    ``"auto"``: BOS when the tokenizer's configuration asks for it (``add_bos_token`` in a ``tokenizer_config.json``
    beside the model file) or the model is a published checkpoint (``published``) and the tokenizer has a BOS;
    else EOS.
    """
    if mode not in START_TOKENS:
        raise ValueError(f"start token must be one of {START_TOKENS}, got {mode!r}")
    bos = getattr(tok, "bos_id", None)
    if mode == "none":
        return None
    if mode == "bos":
        if bos is None:
            raise ValueError("start token 'bos': the tokenizer has no BOS piece")
        return bos
    if mode == "auto" and bos is not None and (getattr(tok, "add_bos", False) or published):
        return bos
    return tok.eos_id


def needs_prefix_space(tok: TextTokenizer) -> bool:
    """llm-foundry's rule: a word needs an explicit leading space when ``" a"`` is one token."""
    return len(tok.encode(" a")) == 1


def boundary_mode(tok: TextTokenizer) -> str:
    """How the tokenizer writes the word boundary before a continuation: ``"space"``, ``"marker"`` or ``"none"``.

    ``"space"`` when ``" a"`` is one token; ``"marker"`` when the tokenizer starts any text with its own
    word-start marker (the tokens of ``"a"`` are what ``"a"`` becomes after another word: ``enc("x a")`` ends
    with ``enc("a")``); ``"none"`` otherwise (see the module docstring).
    """
    if needs_prefix_space(tok):
        return "space"
    x, xa = tok.encode("x"), tok.encode("x a")
    return "marker" if xa[: len(x)] == x and xa[len(x) :] == tok.encode("a") else "none"


def continuation_text(text: str, mode: str) -> str:
    """The continuation as it is encoded: leading spaces removed, then one explicit space in ``"space"`` mode."""
    text = text.lstrip(" ")
    return f" {text}" if mode == "space" else text


def encode_continuation(tok: TextTokenizer, text: str, mode: str | None = None) -> list[int]:
    """Tokens of a continuation after a right-stripped context, with the word boundary written once.

    ``"tree"`` and ``" tree"`` give the same tokens with every tokenizer; ``mode`` defaults to
    :func:`boundary_mode` of ``tok``.
    """
    return tok.encode(continuation_text(text, mode or boundary_mode(tok)))


# ----------------------------------------------------------------------------- examples and prompts


def load_examples(path: str | os.PathLike, task_type: str) -> tuple[list[dict], int]:
    """Read a jsonl task file; return (valid examples with strings stripped, number of rows skipped).

    A row with missing or ill-typed fields is skipped with a warning, never a crash. A string ``category`` field
    is kept (tasks with ``has_categories`` are evaluated per category).
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
    ex = _validate_fields(row, task_type)
    if isinstance(row.get("category"), str) and row["category"]:
        ex["category"] = row["category"]
    return ex


def _validate_fields(row: dict, task_type: str) -> dict:
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
    """The scored strings of ``examples[idx]`` with ``spec.num_fewshot`` solved shots before it.

    Continuations lose their leading spaces and, with ``prefix_space``, get exactly one (the ``"space"``
    boundary mode; ``prefix_space=False`` for the other two, see :func:`boundary_mode`)."""
    shots = fewshot_indices(len(examples), spec.num_fewshot, idx, seed, spec.label)
    text = spec.prompt_string
    for j in shots:
        text += _shot_text(spec, examples[j], text)
    ex = examples[idx]

    def cont(s: str) -> str:
        return continuation_text(s, "space" if prefix_space else "marker")

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


