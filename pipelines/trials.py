"""Ablation trials: mix x seed, each one ``train_small.eval.score`` run (proxy training, held-out loss,
few-shot tasks), as one pass (:mod:`curation.passes`).

An item is one trial; its key names the marker (``<output>/_passes/trials``). The pass owns the resume: the
trial's ``score`` arguments (stream, recipe, budget, evaluation settings, held-out data) are hashed with the
stream's content digest (``curation.tokens.manifest.stream_identity``: the token windows, not the manifest's
bookkeeping, so a stream rebuilt with the same windows resumes and one with other windows recomputes) and
``result.json`` is a declared output (a trial whose result is gone runs again); threads and device are runtime
settings, not part of the hash. On Ray each trial asks for one GPU where the cluster has GPUs, else
``cpus_per_trial`` CPUs; at most ``--workers`` trials are in flight. A failed trial does not stop the others: it
is logged, and the next run retries it.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
from typing import TYPE_CHECKING, Any

from curation.passes import Executor, Item, make_executor
from curation.tokens.manifest import stream_identity

if TYPE_CHECKING:  # annotations only: importing the mixes builds recipe options (filters), which the
    from pipelines.mixes import Mix  # accelerator's in-process calibration does without

logger = logging.getLogger("ablate")


def trial_key(mix: Mix, seed: int, stream: str, args: argparse.Namespace, heldout: Any, arch: str | None = None) -> str:
    payload = {
        "mix": [mix.name, mix.curation_key, mix.to_json()["weights"]], "seed": seed,
        "stream": stream_identity(stream),
        "recipe": args.recipe, "total_tokens": args.total_tokens, "max_steps": args.max_steps,
        "eval": [args.eval_dir, args.tasks, args.max_examples, args.num_fewshot, args.eval_seed],
        "heldout": heldout, "max_heldout_tokens": args.max_heldout_tokens,
        # protocol 2: n-gram floor, start token, per-document scores, epochs (results of protocol 1 lack them)
        "protocol": 2,
    }  # fmt: skip
    # added only when set, so that earlier trials keep their keys
    if getattr(args, "heldout_ref", None):
        payload["reference"] = sorted(args.heldout_ref)
    if getattr(args, "precision", "fp32") != "fp32":
        payload["precision"] = args.precision
    if getattr(args, "start_token", "auto") != "auto":
        payload["start_token"] = args.start_token
    if arch is not None:
        payload["arch"] = arch
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _train_key(stream: str, seed: int, args: argparse.Namespace, arch: str | None = None) -> str:
    payload = [stream_identity(stream), seed, args.recipe, args.total_tokens, args.max_steps] + ([arch] if arch else [])
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:8]


def trial_items(args: argparse.Namespace, mixes: list[Mix], streams: dict[str, str], heldout: Any) -> list[Item]:
    """One item per (proxy family, mix, seed); its argument is the ``score`` spec (threads and device are
    added at run time). Without ``--archs`` the recipe's own model is trained."""
    items = []
    for arch in getattr(args, "archs", None) or [None]:
        for m in mixes:
            for s in range(args.seeds):
                # the folder is named by what training depends on, so a new budget never resumes an old run
                name = m.name if arch is None else f"{m.name}@{arch}"
                out = os.path.join(args.output, "trials", name, f"seed{s}-{_train_key(streams[m.name], s, args, arch)}")
                key = trial_key(m, s, streams[m.name], args, heldout, arch)
                spec = dict(
                    data_dir=streams[m.name], recipe=args.recipe, out_dir=out, seed=s, eval_dir=args.eval_dir,
                    tasks=args.tasks, heldout=heldout, max_examples=args.max_examples, num_fewshot=args.num_fewshot,
                    max_heldout_tokens=args.max_heldout_tokens, total_tokens=args.total_tokens,
                    max_steps=args.max_steps, eval_seed=args.eval_seed, batch_tokens=args.batch_tokens,
                    reference=getattr(args, "heldout_ref", None) or None,
                    precision=getattr(args, "precision", "fp32"), arch=arch,
                    start_token=getattr(args, "start_token", "auto"),
                    extra={"mix": m.name, "mix_spec": m.to_json(), "trial_key": key}, force=True,
                )  # fmt: skip
                item_key = f"{m.name}-seed{s}" if arch is None else f"{m.name}-{arch}-seed{s}"
                items.append(trial_item(item_key, spec))
    return items


def trial_item(key: str, spec: dict[str, Any]) -> Item:
    """One trial as a pass item: ``spec`` (``score``'s arguments) hashed, ``result.json`` an output. The stream's
    identity is in the spec: its content digest (``extra.stream``), so a stream rebuilt with the same windows
    (new folder times, new manifest bookkeeping) resumes its trials; a stream built before content digests
    has none, and its manifest is a declared input instead (a rebuilt stream recomputes the trial)."""
    ident = stream_identity(spec["data_dir"])
    spec = {**spec, "extra": {**spec.get("extra", {}), "stream": ident}}
    inputs = () if not ident.startswith("manifest:") else (os.path.join(spec["data_dir"], "manifest.json"),)
    return Item(key, (spec,), inputs=inputs, outputs=(os.path.join(spec["out_dir"], "result.json"),))


def trials_executor(args: argparse.Namespace) -> Executor:
    """Trials run on Ray (an embedded cluster or ``--address``) unless ``--executor local`` asks for this
    process: each is minutes of training, so running several at once pays for Ray's start-up."""
    return make_executor("local" if args.executor == "local" else "ray", num_workers=args.workers,
                         address=args.address, max_retries=args.max_retries,
                         memory_per_worker=args.memory_per_worker, progress=args.progress, dashboard=args.dashboard)


def _gpus(ex: Executor) -> int:
    if ex.uses_ray:
        import ray

        ex.ensure_ray()
        return int(ray.cluster_resources().get("GPU", 0))
    import torch

    return torch.cuda.device_count()


def run_trials(args: argparse.Namespace, items: list[Item], ex: Executor) -> tuple[list[dict[str, Any]], list[str]]:
    """Run the trials as one pass; returns (results of the finished trials, keys of the failed ones)."""
    from train_small.eval.score import score_trial  # importable by Ray workers (a script's functions are not)

    marker_dir = os.path.join(args.output, "_passes", "trials")
    # a rerun whose trials are all finished neither starts Ray nor looks for GPUs
    done = all(ex.completed("trials", score_trial, items, marker_dir=marker_dir))
    gpus = 0 if done else _gpus(ex)
    device = args.device or ("cuda" if gpus else "cpu")
    threads = 1 if gpus else args.cpus_per_trial
    items = [dataclasses.replace(it, runtime={"threads": threads, "device": device}) for it in items]
    logger.info("%d trials (%s per trial)", len(items), "1 GPU" if gpus else f"{args.cpus_per_trial} CPUs")
    res = ex.run("trials", score_trial, items, marker_dir=marker_dir, on_error="collect",
                 num_cpus=1 if gpus else args.cpus_per_trial, num_gpus=1 if gpus and ex.uses_ray else 0)
    if res.skipped:
        logger.info("%d trials finished earlier, %d run now", len(res.skipped), len(res.ran))
    if res.failed:
        logger.error("failed trials (rerun to retry): %s", sorted(res.failed))
    return [r for r in res.results if r is not None], sorted(res.failed)
