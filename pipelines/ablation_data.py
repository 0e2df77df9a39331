"""The data side of an ablation: held-out split, one curation run per recipe, one tokenizer, a token stream
per mix. Every step resumes: the runner and the token build skip what their pass markers say is complete.

1. Held-out split. A fixed fraction of the input documents (chosen by a hash of the
   document id and the seed) is reserved: every mix's curation drops it first (reason
   ``holdout:reserved``). The reserved documents that are *clean* form the held-out
   domain ``clean`` (the demo pool's ground-truth label when the input is the demo
   pool, else the documents that pass the RefinedWeb heuristics); all of them form
   the domain ``raw``.
2. Curation, once per distinct recipe (:func:`pipelines.recipes.baseline_recipe` with the
   ablation's options and the mix's own), through the runner.
3. One SentencePiece tokenizer for every mix, trained on the raw training split.
4. One token stream per mix (:func:`curation.tokens.build_token_stream`); a mix with source
   weights splits its curated run by ``source`` and mixes those parts.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation import storage
from curation.runner import RunConfig
from filters.decontam import HoldoutSplit
from pipelines.mixes import Mix
from pipelines.recipes import RecipeOptions, baseline_recipe, decontam_stages, extraction_stages

logger = logging.getLogger("ablate")


def run_config(args: argparse.Namespace, out: str) -> RunConfig:
    """The runner settings of the command line (workers, executor, memory, limit, ...) for the run dir ``out``."""
    from curation.cli import config_from_args

    return dataclasses.replace(config_from_args(args), output_dir=out)


def resolve_inputs(args: argparse.Namespace) -> tuple[list, str | None]:
    """(input specs, demo pool dir or None)."""
    from curation.runner import InputSpec

    if args.input:
        from curation.cli import inputs_from_args

        return inputs_from_args(args.input), None
    from demopool import generate_pool, manifest_path, pool_files

    demo = args.demo_dir or os.path.join(args.output, "demo_pool")
    if not storage.exists(manifest_path(demo)):
        logger.info("writing the demo pool (%d docs) to %s", args.demo_docs, demo)
        generate_pool(demo, n_docs=args.demo_docs, seed=args.seed)
    return [InputSpec(p) for p in pool_files(demo)], demo


def _demo_clean_ids(demo: str) -> set[str] | None:
    """Ids of the demo pool's clean documents (truth categories ``clean``/``long``) that are neither
    duplicates nor the original of a planted duplicate (so no copy of them can sit in the training split)."""
    from demopool import truth_path

    path = truth_path(demo)
    if not os.path.exists(path):
        return None
    t = pq.read_table(path, columns=["id", "category", "dup_of"])
    ids, cats, dup_of = (t.column(c).to_pylist() for c in ("id", "category", "dup_of"))
    originals = {d for d in dup_of if d}
    return {i for i, c, d in zip(ids, cats, dup_of) if c in ("clean", "long") and not d and i not in originals}


def _is_clean_meta(meta: str | None) -> bool | None:
    if not meta:
        return None
    try:
        m = json.loads(meta)
    except ValueError:
        return None
    if not isinstance(m, dict):
        return None
    for key in ("demo_kind", "kind", "label"):
        if isinstance(m.get(key), str):
            return m[key] == "clean"
    return None


def build_heldout(args: argparse.Namespace, inputs: list, demo: str | None,
                  options: RecipeOptions | None = None) -> dict[str, list[str]]:
    """The held-out parquet files per domain ({"clean": [...], "raw": [...]}), built once (WARC pages
    through the same HTML extraction as the training side)."""
    from curation.runner import Runner

    root = os.path.join(args.output, "heldout")
    done = os.path.join(root, "domains.json")
    if os.path.exists(done):
        return json.loads(Path(done).read_text())
    run_dir = os.path.join(root, "run")
    extractor = (options or RecipeOptions()).extractor
    stages = [HoldoutSplit(args.heldout_fraction, args.seed, keep="heldout"), *extraction_stages(inputs, extractor)]
    res = Runner(stages, inputs, run_config(args, run_dir)).run()
    if not res.ok:
        raise RuntimeError(f"held-out extraction failed on shards {res.failed_shards}")
    files = sorted(str(p) for p in Path(run_dir, "data").glob("*.parquet"))
    table = pa.concat_tables(
        [pq.read_table(f, columns=["id", "text", "source", "metadata"]) for f in files], promote_options="permissive"
    )
    clean_ids = _demo_clean_ids(demo) if demo else None
    if clean_ids is not None:
        mask = [i in clean_ids for i in table.column("id").to_pylist()]
        how = "demo pool labels"
    else:
        labels = [_is_clean_meta(m) for m in table.column("metadata").to_pylist()]
        if demo and any(x is not None for x in labels):
            mask = [bool(x) for x in labels]
            how = "demo pool metadata"
        else:
            mask = _passes_heuristics(table)
            how = "documents passing the RefinedWeb heuristics"
    clean = table.filter(pa.array(mask, pa.bool_()))
    os.makedirs(root, exist_ok=True)
    out = {"clean": os.path.join(root, "clean.parquet"), "raw": os.path.join(root, "raw.parquet")}
    pq.write_table(clean.select(["id", "text", "source"]), out["clean"])
    pq.write_table(table.select(["id", "text", "source"]), out["raw"])
    info = {k: [v] for k, v in out.items()}
    Path(done).write_text(json.dumps(info, indent=2))
    logger.info("held-out: %d documents reserved, %d clean (%s)", table.num_rows, clean.num_rows, how)
    if clean.num_rows == 0:
        raise RuntimeError("held-out split has no clean documents: raise --heldout-fraction or pass --heldout")
    return info


def _passes_heuristics(table: pa.Table) -> list[bool]:
    """Which documents pass the RefinedWeb heuristics (the fallback definition of "clean")."""
    from filters.heuristics import refinedweb_stages

    t = table
    for st in refinedweb_stages():
        st.setup()
        t = st(t).kept
    kept = set(t.column("id").to_pylist())
    return [i in kept for i in table.column("id").to_pylist()]


def curate(args: argparse.Namespace, mixes: list[Mix], inputs: list, options: RecipeOptions) -> dict[str, str]:
    """Run each distinct curation recipe once (the raw pool always); returns {curation key: run dir}.

    ``options``: the ablation's recipe options; each mix's own apply on top.
    """
    from curation.runner import Runner

    runs: dict[str, str] = {}
    recipes = {"raw": ((), options)} | {m.curation_key: (m.blocks, m.options(options)) for m in mixes}
    for key, (blocks, opts) in recipes.items():
        run_dir = os.path.join(args.output, "curated", key.replace("+", "_").replace("~", "-"))
        # the held-out slice first (by id), then HTML extraction of WARC pages, then text stages
        stages = [HoldoutSplit(args.heldout_fraction, args.seed, keep="train"),
                  *extraction_stages(inputs, opts.extractor)]
        if args.decontam:
            stages += decontam_stages(args.eval_dir, n=args.decontam_n)
        stages += baseline_recipe(blocks, opts, run_dir)
        t0 = time.perf_counter()
        res = Runner(stages, inputs, run_config(args, run_dir)).run()
        if not res.ok:
            raise RuntimeError(f"curation {key} failed on shards {res.failed_shards}; rerun to retry")
        logger.info("curated %s in %.1fs (%d shards processed, %d skipped)", key, time.perf_counter() - t0,
                    res.processed_shards, res.skipped_shards)  # fmt: skip
        runs[key] = run_dir
    return runs


def tokenizer_for(args: argparse.Namespace, raw_run: str) -> str:
    if args.tokenizer:
        return args.tokenizer
    from curation.tokens import train_tokenizer

    prefix = os.path.join(args.output, "tokenizer", "sp")
    if os.path.exists(prefix + ".model"):
        return prefix + ".model"
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    return train_tokenizer([raw_run], prefix, vocab_size=args.vocab_size, seed=args.seed)


def _split_by_source(run_dir: str, out_dir: str) -> dict[str, str]:
    """Write the run's documents into one parquet folder per source; {source: folder}."""
    files = sorted(Path(run_dir, "data").glob("*.parquet"))
    t = (
        pa.concat_tables(
            [pq.read_table(f, columns=["id", "text", "source"]) for f in files], promote_options="permissive"
        )
        if files
        else None
    )
    if t is None or t.num_rows == 0:
        raise RuntimeError(f"{run_dir} holds no documents")
    out: dict[str, str] = {}
    for src in sorted(set(t.column("source").to_pylist())):
        d = os.path.join(out_dir, src)
        os.makedirs(d, exist_ok=True)
        pq.write_table(t.filter(pc.equal(t.column("source"), src)), os.path.join(d, "part-0.parquet"))
        out[src] = d
    return out


def token_stream(args: argparse.Namespace, mix: Mix, run_dir: str, tok: str, seq_len: int) -> str:
    from curation.tokens import build_token_stream
    from curation.tokens.build import make_executor

    out = os.path.join(args.output, "tokens", mix.name)
    # what the stream depends on: the curated files (a recomputed curation rebuilds it), weights, tokenizer
    data = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(run_dir, "data").glob("*.parquet"))
    key = json.dumps({"weights": mix.to_json()["weights"], "run": run_dir, "data": data, "tok": _sha_file(tok),
                      "seq_len": seq_len, "seed": args.seed, "total": args.stream_tokens}, sort_keys=True)  # fmt: skip
    stamp = os.path.join(args.output, "tokens", f"{mix.name}.key.json")
    if os.path.exists(os.path.join(out, "manifest.json")) and os.path.exists(stamp):
        if Path(stamp).read_text() == key:
            return out
    if mix.weights is None:
        sources: Any = [(run_dir, 1.0)]
        total = args.stream_tokens
    else:
        parts = _split_by_source(run_dir, os.path.join(args.output, "tokens", f"{mix.name}.by_source"))
        w = {s: 1.0 for s in parts} if mix.weights == "uniform" else dict(mix.weights)  # type: ignore[arg-type]
        missing = set(w) - set(parts)
        if missing:
            raise ValueError(f"mix {mix.name}: no curated documents from sources {sorted(missing)}")
        sources = [(parts[s], float(w[s])) for s in sorted(w) if w[s] > 0]
        total = args.stream_tokens or _natural_tokens(run_dir, tok)
    size = sum(p.stat().st_size for p in Path(run_dir, "data").glob("*.parquet"))
    ex = make_executor(args.executor, args.workers, args.address, size,
                       max_retries=args.max_retries, memory_per_worker=args.memory_per_worker,
                       progress=args.progress, dashboard=args.dashboard)
    build_token_stream(sources, out, tok, seq_len=seq_len, seed=args.seed, total_tokens=total, overwrite=True,
                       executor=ex)
    Path(stamp).write_text(key)
    return out


def _natural_tokens(run_dir: str, tok: str) -> int:
    """Approximate token count of a run (bytes / bytes-per-token of a sample), for weighted mixes."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=tok)
    files = sorted(Path(run_dir, "data").glob("*.parquet"))
    t = pa.concat_tables([pq.read_table(f, columns=["text"]) for f in files], promote_options="permissive")
    texts = t.column("text").to_pylist()
    sample = texts[:: max(1, len(texts) // 200)]
    bpt = sum(len(x.encode()) for x in sample) / max(1, sum(len(sp.encode(x)) + 1 for x in sample))
    return int(sum(len(x.encode()) for x in texts) / bpt)


def _sha_file(p: str) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()[:16]
