"""``score``: train the fixed-recipe proxy on a token stream, evaluate it, write one result JSON.

DCLM's protocol (Li et al. 2024, arXiv:2406.11794): the recipe (model, tokens,
schedule, seed) is fixed, so two mixes differ only in their data, and a mix's
score is what the proxy trained on it achieves: held-out loss per domain and
few-shot task accuracy aggregated as centered accuracy (CORE).

The result JSON (``<out_dir>/result.json``) holds: the recipe (name and every
field), the data manifest's sha256 and path, the seed, the git commit (and
whether the tree was dirty), training's final metrics, held-out loss per domain,
every task's metrics and the aggregates, timings, and versions. A rerun with a
finished ``result.json`` for the same recipe, data and evaluation settings
returns it without work; an interrupted training resumes from its checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from train_small.eval.harness import as_tokenizer, evaluate, write_results
from train_small.eval.heldout import heldout_loss, load_texts
from train_small.eval.ngram import fit_floor, trial_windows
from train_small.eval.reference import load_reference_domains, reference_loss
from train_small.hf_openelm import is_hf_checkpoint

log = logging.getLogger(__name__)

RESULT = "result.json"
REFERENCE_DOCS = "reference_docs.parquet"
TASK_EXAMPLES = "task_examples.parquet"


def git_info(root: str | os.PathLike | None = None) -> dict[str, Any]:
    """The commit of the checkout this package runs from, and whether tracked files differ from it."""
    root = str(root or Path(__file__).resolve().parents[2])
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=root, capture_output=True, text=True, timeout=10,
            ).stdout.strip()
        )  # fmt: skip
        return {"git_commit": commit, "git_dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}


def manifest_info(data_dir: str | os.PathLike) -> dict[str, Any]:
    """sha256 of the stream's manifest.json, and the parts of it that describe the mix."""
    p = Path(data_dir) / "manifest.json"
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist: not a token-stream folder")
    raw = p.read_bytes()
    m = json.loads(raw)
    return {
        "data_manifest_sha256": hashlib.sha256(raw).hexdigest(),
        "data_dir": _rel(data_dir),
        "data_num_tokens": m.get("num_tokens"),
        "data_tokens_per_source": m.get("tokens_per_source"),
        "data_recipe_hashes": m.get("recipe_hashes"),
        "data_seed": m.get("seed"),
        "tokenizer": m.get("tokenizer"),
    }


def tokenizer_from_manifest(data_dir: str | os.PathLike) -> str:
    """The tokenizer model path recorded in the manifest (or ``tokenizer.model`` beside it)."""
    m = json.loads((Path(data_dir) / "manifest.json").read_text())
    path = (m.get("tokenizer") or {}).get("path")
    if path and os.path.exists(path):
        return path
    local = Path(data_dir) / "tokenizer.model"
    if local.exists():
        return str(local)
    raise FileNotFoundError(f"no tokenizer model for {data_dir} (manifest path {path!r}); pass tokenizer=")


def _settings_key(d: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def score(
    data_dir: str | os.PathLike,
    recipe: Any,
    out_dir: str | os.PathLike,
    *,
    seed: int | None = None,
    eval_dir: str | os.PathLike | None = None,
    tasks: Any = None,
    heldout: Any = None,
    max_examples: int | None = None,
    num_fewshot: int | None = None,
    max_heldout_tokens: int | None = None,
    total_tokens: int | None = None,
    max_steps: int | None = None,
    device: str | torch.device | None = None,
    tokenizer: Any = None,
    eval_seed: int = 1234,
    batch_tokens: int = 16384,
    extra: dict[str, Any] | None = None,
    force: bool = False,
    arch: str | None = None,
    precision: str = "fp32",
    reference: list[str] | dict[str, str] | None = None,
    ngram_floor: bool = True,
    start_token: str = "auto",
    per_doc: bool = True,
) -> dict[str, Any]:
    """Train ``recipe`` on the stream in ``data_dir``, evaluate, and write ``out_dir/result.json``.

    Args:
        recipe: a recipe name (``tiny``, ``proxy-60m``, ...) or a ``train_small.recipes.Recipe``.
        arch: train the recipe with this proxy family's model of the same size (``openelm``, ``mobilellm``;
            :meth:`Recipe.for_arch`); None keeps the recipe's own model. Recorded as ``result["arch"]``.
        seed: overrides the recipe's seed (model init and data order).
        eval_dir: an llm-foundry eval folder; None skips the few-shot tasks.
        tasks: task selection for :func:`train_small.eval.tasks.resolve_tasks` (None: DCLM CORE).
        heldout: held-out text for :func:`heldout.load_texts` (path, glob, list or {domain: paths});
            None skips held-out loss.
        max_examples / num_fewshot: cap examples per task / override shots (quick CPU runs).
        max_heldout_tokens: cap the scored tokens per held-out domain (and per reference domain).
        reference: reference domains, ``["NAME=PATH", ...]`` or ``{NAME: PATH}`` (:mod:`train_small.eval.reference`):
            real text no mix trains on, scored per document (Paloma-style) into ``result["reference"]``.
        total_tokens / max_steps: override the recipe's budget / stop early (the result records it).
        tokenizer: a SentencePiece processor or model path; default: the one in the manifest.
        extra: recorded as-is in the result (e.g. the ablation's mix name).
        precision: evaluation precision, ``"fp32"`` (default, as DCLM evaluates and as the CLI does) or
            ``"bf16"`` (autocast on CUDA); the same for held-out loss and tasks.
        force: recompute even if a matching ``result.json`` exists.
        ngram_floor: fit unigram and bigram models on exactly the tokens the proxy trained on
            (:mod:`train_small.eval.ngram`) and score them on the reference and held-out domains beside it
            (``result["ngram_floor"]``, and ``ngram_floor`` in every reference domain).
        start_token: what every scored document and prompt starts from (``auto``, ``eos``, ``bos``, ``none``;
            :func:`train_small.eval.prompts.start_token_id`).
        per_doc: write ``out_dir/reference_docs.parquet`` (per reference document: domain, bytes, tokens, the
            proxy's and the floor's nats) and ``out_dir/task_examples.parquet`` (per task example: the metrics),
            which intervals over documents and examples are computed from.

    The result also records what training read: ``epochs`` (windows consumed / windows in the stream; above 1
    the mix was repeated) and ``train_tokens``.
    """
    from train_small.model import load_from_checkpoint
    from train_small.recipes import Recipe, get_recipe
    from train_small.train import train

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, Any] = {}
    if seed is not None:
        overrides["seed"] = seed
    if total_tokens is not None:
        overrides["total_tokens"] = total_tokens
    if isinstance(recipe, Recipe):
        rec = Recipe.from_dict({**recipe.to_dict(), **overrides})
    else:
        rec = get_recipe(str(recipe), **overrides)
    if arch is not None:
        rec = rec.for_arch(arch)
    info = manifest_info(data_dir)
    heldout_texts = load_texts(heldout) if heldout is not None else None
    reference_texts = load_reference_domains(reference) if reference else None
    settings = {
        "recipe": rec.to_dict(),
        "data_manifest_sha256": info["data_manifest_sha256"],
        "max_steps": max_steps,
        "eval_dir": str(eval_dir) if eval_dir else None,
        "tasks": tasks if isinstance(tasks, (str, type(None))) else [str(t) for t in tasks],
        "max_examples": max_examples,
        "num_fewshot": num_fewshot,
        "eval_seed": eval_seed,
        "heldout_sha256": _texts_sha(heldout_texts),
        "reference_sha256": _texts_sha(reference_texts),
        "max_heldout_tokens": max_heldout_tokens,
        "precision": precision,
        "ngram_floor": bool(ngram_floor),
        "start_token": start_token,
        "per_doc": bool(per_doc),
    }
    key = _settings_key(settings)
    res_path = out / RESULT
    if res_path.exists() and not force:
        old = json.loads(res_path.read_text())
        if old.get("settings_key") == key and old.get("finished"):
            log.info("score: %s is complete for these settings, reused", res_path)
            return old

    t0 = time.perf_counter()
    tr = train(rec, data_dir, out / "train", resume=True, max_steps=max_steps, device=device)
    t_train = time.perf_counter() - t0
    ckpt = tr.get("checkpoint")
    if not ckpt:
        raise RuntimeError(f"training in {out / 'train'} produced no checkpoint")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, cfg = load_from_checkpoint(ckpt, device=dev)
    tok = as_tokenizer(tokenizer if tokenizer is not None else tokenizer_from_manifest(data_dir))

    result: dict[str, Any] = {
        "recipe_name": rec.name,
        "recipe": rec.to_dict(),
        "arch": rec.arch,
        "model": rec.model,
        "seed": rec.seed,
        **info,
        **git_info(),
        "settings": settings,
        "settings_key": key,
        "train": {k: v for k, v in tr.items() if isinstance(v, (int, float, str, bool, type(None)))},
        "num_params": tr.get("num_params"),
        "epochs": tr.get("epochs"),
        "out_dir": _rel(out),
        "train_tokens": int(tr.get("data_position", 0)) * rec.seq_len,
        "extra": extra or {},
    }
    published = is_hf_checkpoint(ckpt)
    floor = None
    t1 = time.perf_counter()
    if ngram_floor and (heldout_texts is not None or reference_texts is not None):
        floor, fit = fit_floor(list(trial_windows(str(data_dir), rec.seed, int(tr["data_position"]))),
                               max(tok_vocab(tok), cfg.vocab_size))
        result["ngram_floor"] = {"fit": fit, "domains": {}}
    t_floor = time.perf_counter() - t1
    if heldout_texts is not None:
        result["heldout"] = heldout_loss(
            model, tok, heldout_texts, seq_len=cfg.max_seq_len, max_tokens_per_domain=max_heldout_tokens,
            precision=precision, floor=floor,
        )  # fmt: skip
    if reference_texts is not None:
        ref = reference_loss(
            model, tok, reference_texts, seq_len=cfg.max_seq_len, max_tokens_per_domain=max_heldout_tokens,
            batch_tokens=batch_tokens, precision=precision, start_token=start_token, published=published,
            floor=floor, per_doc=per_doc,
        )  # fmt: skip
        docs = ref.pop("_per_doc", None)
        if docs is not None:
            _write_table(out / REFERENCE_DOCS, docs)
        result["reference"] = ref
    if floor is not None:
        for part in ("reference", "heldout"):
            for d, m in ((result.get(part) or {}).get("domains") or {}).items():
                if "ngram_floor" in m:
                    result["ngram_floor"]["domains"][f"{part}/{d}"] = m["ngram_floor"]
    t_heldout = time.perf_counter() - t1 - t_floor
    t2 = time.perf_counter()
    if eval_dir is not None:
        ev = evaluate(
            model, tok, eval_dir, tasks, seed=eval_seed, max_examples=max_examples, num_fewshot=num_fewshot,
            max_seq_len=cfg.max_seq_len, batch_tokens=batch_tokens, precision=precision, start_token=start_token,
            published=published, return_per_example=per_doc,
        )  # fmt: skip
        if per_doc:
            _write_examples(out / TASK_EXAMPLES, ev["tasks"])
        for k in ("tasks", "core", "core_is_full_dclm_core", "core_missing", "core_departures", "core_partial",
                  "core_partial_tasks", "core_prob", "core_gold_bpb", "centered_mean", "categories", "skipped_tasks",
                  "window"):
            if k in ev:
                result[k] = ev[k]
        result["eval_settings"] = ev["settings"]
    t_eval = time.perf_counter() - t2
    result["timings_s"] = {"train": t_train, "ngram_floor": t_floor, "heldout": t_heldout, "tasks": t_eval}
    result["versions"] = {"torch": torch.__version__, "python": platform.python_version()}
    result["device"] = str(dev)
    result["finished"] = bool(tr.get("finished")) or max_steps is not None
    write_results(result, res_path)
    log.info("score: wrote %s", res_path)
    return result


def portable(obj: Any, root: str | None = None) -> Any:
    """``obj`` with every absolute path (a string starting with ``/``) made relative to ``root`` (default: the
    working directory), for result files that are committed: they hold no absolute paths of the machine."""
    root = root or os.getcwd()
    if isinstance(obj, dict):
        return {k: portable(v, root) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [portable(v, root) for v in obj]
    if isinstance(obj, str) and obj.startswith("/") and "\n" not in obj and len(obj) < 4096:
        return os.path.relpath(os.path.normpath(obj), root)
    return obj


def _rel(path: str | os.PathLike) -> str:
    """A path as recorded in results: relative to the working directory when under it (results are committed;
    they hold no absolute paths of the machine that made them)."""
    p = os.path.abspath(path)
    rel = os.path.relpath(p)
    return p if rel.startswith("..") else rel


def tok_vocab(tok: Any) -> int:
    return int(getattr(tok, "vocab_size", 0) or 0)


def _write_table(path: Path, cols: dict[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({k: pa.array(list(v) if k == "domain" else v) for k, v in cols.items()})
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _write_examples(path: Path, tasks: dict[str, dict[str, Any]]) -> None:
    """Per-example metrics of every task (popped from the task results: they stay out of result.json)."""
    rows: dict[str, list[Any]] = {"task": [], "index": []}
    keys = ("accuracy", "prob_correct", "prob_correct_centered", "gold_logprob_per_token", "gold_logprob_per_byte")
    for k in keys:
        rows[k] = []
    for t, r in tasks.items():
        for ex in r.pop("per_example", []):
            rows["task"].append(t)
            rows["index"].append(f"{ex.get('category', '')}/{ex['index']}")
            for k in keys:
                rows[k].append(float(ex.get(k, float("nan"))))
    _write_table(path, rows)


def score_trial(spec: dict[str, Any], *, threads: int = 1, device: str | None = None) -> dict[str, Any]:
    """``score(**spec)`` on ``device`` with ``threads`` torch threads: one trial of an ablation (a pass item's
    body; threads and device are runtime settings, not part of what the trial computes).

    ``spec["arch"]`` picks the proxy family (see :func:`score`); results carry ``arch``, so
    :func:`train_small.eval.agreement.rank_agreement_from_results` can compare the families' leaderboards."""
    spec = dict(spec)
    threads = int(spec.pop("threads", threads))
    device = spec.pop("device", device)
    torch.set_num_threads(max(1, threads))
    return score(**spec, device=device)


def _texts_sha(texts: dict[str, list[str]] | None) -> str | None:
    if texts is None:
        return None
    h = hashlib.sha256()
    for d, docs in texts.items():
        h.update(d.encode())
        for x in docs:
            h.update(hashlib.sha256(x.encode()).digest())
    return h.hexdigest()[:16]


def flat_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The scalar metrics of a result, flattened to ``{"heldout/<domain>/loss": ..., "task/<t>/accuracy": ...}``."""
    out: dict[str, float] = {}
    ho = result.get("heldout") or {}
    for d, m in (ho.get("domains") or {}).items():
        for k in ("loss", "bits_per_byte"):
            out[f"heldout/{d}/{k}"] = float(m[k])
    for k in ("mean_loss", "mean_bits_per_byte"):
        if k in ho:
            out[f"heldout/{k}"] = float(ho[k])
    ref = result.get("reference") or {}
    for d, m in (ref.get("domains") or {}).items():
        for k in ("loss", "bits_per_byte"):
            out[f"reference/{d}/{k}"] = float(m[k])
        for k, v in (m.get("ngram_floor") or {}).items():
            out[f"reference/{d}/{k}"] = float(v)
    for k in ("mean_loss", "mean_bits_per_byte", "weighted_bits_per_byte"):
        if k in ref:
            out[f"reference/{k}"] = float(ref[k])
    for k, v in (ref.get("ngram_floor") or {}).items():
        out[f"reference/{k}"] = float(v)
    for t, m in (result.get("tasks") or {}).items():
        for k in ("accuracy", "centered_accuracy", "prob_correct", "prob_correct_centered", "gold_logprob_per_byte"):
            if k in m:
                out[f"task/{t}/{k}"] = float(m[k])
    # "core" only for the full DCLM CORE set; a partial task set is "core_partial", never called CORE
    for k in ("core", "core_partial", "core_prob", "core_gold_bpb", "centered_mean", "epochs"):
        if result.get(k) is not None:
            out[k] = float(result[k])
    if "loss" in (result.get("train") or {}):
        out["train/loss"] = float(result["train"]["loss"])
    return out
