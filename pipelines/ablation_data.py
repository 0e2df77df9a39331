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


def _demo_clean_ids(truth: str) -> set[str]:
    """Ids of the demo pool's clean documents (truth categories ``clean``/``long``) that are neither
    duplicates nor the original of a planted duplicate (so no copy of them can sit in the training split)."""
    t = pq.read_table(truth, columns=["id", "category", "dup_of"])
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


def split_heldout_shard(src: str, clean_out: str, raw_out: str, truth: str | None, demo: bool) -> dict[str, Any]:
    """One held-out shard into its clean documents and all of them (``raw``): clean by the demo pool's labels
    (``truth``), else its metadata labels, else the RefinedWeb heuristics. A pass item's body."""
    table = pq.read_table(src, columns=["id", "text", "source", "metadata"])
    if truth is not None:
        ids = _demo_clean_ids(truth)
        mask = [i in ids for i in table.column("id").to_pylist()]
        how = "demo pool labels"
    else:
        labels = [_is_clean_meta(m) for m in table.column("metadata").to_pylist()]
        if demo and any(x is not None for x in labels):
            mask, how = [bool(x) for x in labels], "demo pool metadata"
        else:
            mask, how = _passes_heuristics(table), "documents passing the RefinedWeb heuristics"
    keep = table.select(["id", "text", "source"])
    storage.write_parquet_atomic(clean_out, keep.filter(pa.array(mask, pa.bool_())))
    storage.write_parquet_atomic(raw_out, keep)
    return {"docs": table.num_rows, "clean": int(sum(mask)), "how": how}


def build_heldout(args: argparse.Namespace, inputs: list, demo: str | None,
                  options: RecipeOptions | None = None) -> dict[str, list[str]]:
    """The held-out folders per domain (``{"clean": [dir], "raw": [dir]}``): the reserved documents through
    the same HTML extraction as the training side (the runner), then one pass item per shard splits out the
    clean ones; nothing is gathered on the driver."""
    from curation.passes import Item
    from curation.runner import Runner

    root = os.path.join(args.output, "heldout")
    run_dir = os.path.join(root, "run")
    extractor = (options or RecipeOptions()).extractor
    stages = [HoldoutSplit(args.heldout_fraction, args.seed, keep="heldout"), *extraction_stages(inputs, extractor)]
    res = Runner(stages, inputs, run_config(args, run_dir)).run()
    if not res.ok:
        raise RuntimeError(f"held-out extraction failed on shards {res.failed_shards}")
    truth = None
    if demo:
        from demopool import truth_path

        truth = truth_path(demo) if os.path.exists(truth_path(demo)) else None
    files = sorted(str(p) for p in Path(run_dir, "data").glob("*.parquet"))
    dirs = {k: os.path.join(root, k) for k in ("clean", "raw")}
    items = [Item(Path(f).stem, (f, os.path.join(dirs["clean"], Path(f).name), os.path.join(dirs["raw"], Path(f).name),
                                 truth, bool(demo)),
                  inputs=(f,) + ((truth,) if truth else ()),
                  outputs=(os.path.join(dirs["clean"], Path(f).name), os.path.join(dirs["raw"], Path(f).name)))
             for f in files]  # fmt: skip
    split = _local_executor(args).run("heldout-split", split_heldout_shard, items,
                                      marker_dir=os.path.join(root, "_passes", "heldout-split"))
    docs = sum(r["docs"] for r in split.results)
    clean = sum(r["clean"] for r in split.results)
    how = {r["how"] for r in split.results}
    logger.info("held-out: %d documents reserved, %d clean (%s)", docs, clean, ", ".join(sorted(how)))
    if clean == 0:
        raise RuntimeError("held-out split has no clean documents: raise --heldout-fraction or pass --heldout")
    return {k: [v] for k, v in dirs.items()}


def _passes_heuristics(table: pa.Table) -> list[bool]:
    """Which documents pass the RefinedWeb heuristics (the fallback definition of "clean")."""
    from filters.heuristics import refinedweb_stages

    t = table
    for st in refinedweb_stages():
        st.setup()
        t = st(t).kept
    kept = set(t.column("id").to_pylist())
    return [i in kept for i in table.column("id").to_pylist()]


def _local_executor(args: argparse.Namespace) -> Any:
    """The data step's small per-shard passes run in this process (a few seconds each; no Ray start)."""
    from curation.passes import make_executor

    return make_executor("local", max_retries=args.max_retries, progress=False)


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
    """``--tokenizer``, or one trained on the raw run (reused when trained on the same inputs with the same
    settings: ``train_tokenizer`` keeps the key in its sidecar)."""
    if args.tokenizer:
        return args.tokenizer
    from curation.tokens import train_tokenizer

    prefix = os.path.join(args.output, "tokenizer", "sp")
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    return train_tokenizer([raw_run], prefix, vocab_size=args.vocab_size, seed=args.seed)


def split_source_shard(src: str, out_dir: str) -> list[str]:
    """One curated shard into one parquet file per source (``<out_dir>/<source>/<shard>.parquet``); returns
    the sources it holds. A pass item's body."""
    from curation.passes import report_outputs

    t = pq.read_table(src, columns=["id", "text", "source"])
    sources = sorted(set(t.column("source").to_pylist()))
    for s in sources:
        path = os.path.join(out_dir, str(s), Path(src).name)
        storage.write_parquet_atomic(path, t.filter(pc.equal(t.column("source"), s)))
        report_outputs(path)
    return sources


def _split_by_source(args: argparse.Namespace, run_dir: str, out_dir: str) -> dict[str, str]:
    """The run's documents in one parquet folder per source, one pass item per shard; {source: folder}."""
    from curation.passes import Item

    files = sorted(str(p) for p in Path(run_dir, "data").glob("*.parquet"))
    if not files:
        raise RuntimeError(f"{run_dir} holds no documents")
    res = _local_executor(args).run("split-by-source", split_source_shard,
                                    [Item(Path(f).stem, (f, out_dir), inputs=(f,)) for f in files],
                                    marker_dir=os.path.join(out_dir, "_passes", "split-by-source"))
    return {s: os.path.join(out_dir, s) for s in sorted({s for r in res.results for s in r})}


def token_stream(args: argparse.Namespace, mix: Mix, run_dir: str, tok: str, seq_len: int) -> str:
    """The mix's token stream (``build_token_stream`` returns a finished build with the same key as it is)."""
    from curation.passes import make_executor
    from curation.tokens import build_token_stream

    out = os.path.join(args.output, "tokens", mix.name)
    if mix.weights is None:
        sources: Any = [(run_dir, 1.0)]
        total = args.stream_tokens
    else:
        parts = _split_by_source(args, run_dir, os.path.join(args.output, "tokens", f"{mix.name}.by_source"))
        w = {s: 1.0 for s in parts} if mix.weights == "uniform" else dict(mix.weights)  # type: ignore[arg-type]
        missing = set(w) - set(parts)
        if missing:
            raise ValueError(f"mix {mix.name}: no curated documents from sources {sorted(missing)}")
        sources = [(parts[s], float(w[s])) for s in sorted(w) if w[s] > 0]
        total = args.stream_tokens or _natural_tokens(args, run_dir, tok)
    size = sum(p.stat().st_size for p in Path(run_dir, "data").glob("*.parquet"))
    ex = make_executor(args.executor, input_bytes=size, num_workers=args.workers, address=args.address,
                       max_retries=args.max_retries, memory_per_worker=args.memory_per_worker,
                       progress=args.progress, dashboard=args.dashboard)
    build_token_stream(sources, out, tok, seq_len=seq_len, seed=args.seed, total_tokens=total, overwrite=True,
                       executor=ex)
    return out


def count_shard_tokens(src: str, tok: str, every: int = 50) -> dict[str, int]:
    """UTF-8 bytes of a shard, and bytes and tokens (EOS included) of every ``every``-th document: a sample for
    the run's bytes per token. A pass item's body."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=tok)
    texts = pq.read_table(src, columns=["text"]).column("text").to_pylist()
    sample = texts[::every]
    return {"bytes": sum(len(x.encode()) for x in texts), "sample_bytes": sum(len(x.encode()) for x in sample),
            "sample_tokens": sum(len(sp.encode(x)) + 1 for x in sample)}


def _natural_tokens(args: argparse.Namespace, run_dir: str, tok: str) -> int:
    """Approximate token count of a run (bytes / bytes-per-token of a sample), for weighted mixes; one pass item
    per shard."""
    from curation.passes import Item

    files = sorted(str(p) for p in Path(run_dir, "data").glob("*.parquet"))
    res = _local_executor(args).run("count-tokens", count_shard_tokens,
                                    [Item(Path(f).stem, (f, tok), inputs=(f, tok)) for f in files],
                                    marker_dir=os.path.join(run_dir, "_passes", "count-tokens"))
    total = {k: sum(r[k] for r in res.results) for k in ("bytes", "sample_bytes", "sample_tokens")}
    return int(total["bytes"] / max(total["sample_bytes"] / max(total["sample_tokens"], 1), 1e-9))
