"""A small learning-rate sweep on CPU at the smallest proxy sizes, on real text: what the recipes' LRs rest on.

    python -m train_small.lr_sweep --out train_small/results/lr_sweep.json          # ~15 CPU-minutes
    python -m train_small.lr_sweep --quick                                            # ~1 minute, a smoke run

Real text (by default the shared samples: Wikipedia, books, web text, Shakespeare) is tokenised with our curation
tokenizer (SentencePiece BPE, vocabulary 512), packed into 65-token windows, 5% held out. Each (model, batch,
learning rate, seed) trains the ``tiny`` recipe's schedule (AdamW 0.9/0.95, wd 0.1, 10% warm-up, cosine to 10%)
on the same token budget and is scored by held-out loss. Per (model, batch) the best LR is the grid point with
the lowest seed-mean held-out loss. Two contrasts test the scaling rule the larger recipes use
(:mod:`train_small.recipes`): the same model at a 4x larger batch (sqrt rule: optimum x2), and the same batch at
twice the width (1/width rule: optimum x1/2).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

SHARED_TEXT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "corpora" / "text"
SEQ = 64


def _texts(paths: list[str]) -> list[str]:
    from train_small.eval.reference import load_reference_domains

    specs = [f"d{i}={p}" for i, p in enumerate(paths)]
    return [t for docs in load_reference_domains(specs).values() for t in docs]


def build_windows(paths: list[str], work: str, vocab: int = 512, heldout_frac: float = 0.05, seed: int = 0):
    """Tokenise the documents with our curation tokenizer; return (stream dir, held-out tokens, vocab size)."""
    import pyarrow.parquet as pq

    from curation.schema import docs_table
    from curation.tokens.shuffle import write_stream
    from curation.tokens.tokenizer import train_tokenizer
    from train_small.eval.harness import SentencePieceTokenizer

    texts = _texts(paths)
    # documents are split into paragraphs so that the tokenizer and the packing see many short documents
    paras = [p for t in texts for p in t.split("\n\n") if len(p.strip()) > 20]
    pq.write_table(docs_table([str(i) for i in range(len(paras))], paras, "sweep"), os.path.join(work, "docs.parquet"))
    tok = SentencePieceTokenizer(train_tokenizer([os.path.join(work, "docs.parquet")], os.path.join(work, "tok"),
                                                 vocab_size=vocab))  # fmt: skip
    ids = np.concatenate([np.asarray(tok.encode(p) + [tok.eos_id], dtype=np.uint16) for p in paras])
    n = len(ids) // (SEQ + 1)
    windows = ids[: n * (SEQ + 1)].reshape(n, SEQ + 1)
    perm = np.random.default_rng(seed).permutation(n)
    n_held = max(8, int(heldout_frac * n))
    held, train = windows[perm[:n_held]], windows[perm[n_held:]]
    out = os.path.join(work, "tokens")
    os.makedirs(out, exist_ok=True)
    rows = write_stream(os.path.join(out, "tokens-00000.arrow"), [train], SEQ, np.dtype(np.uint16))
    manifest = {"seq_len": SEQ, "dtype": "uint16", "vocab_size": tok.vocab_size, "eos_id": tok.eos_id,
                "files": [{"name": "tokens-00000.arrow", "windows": rows}], "num_windows": rows, "seed": seed}
    Path(out, "manifest.json").write_text(json.dumps(manifest))
    logger.info("sweep data: %d documents, %d train windows, %d held-out windows", len(paras), rows, len(held))
    return out, held.reshape(-1).astype(np.int64), tok.vocab_size


def run_one(data: str, held: np.ndarray, model: str, batch: int, lr: float, seed: int, tokens: int, work: str,
            overrides: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    from train_small.eval.heldout import stream_nll
    from train_small.model import load_from_checkpoint
    from train_small.recipes import get_recipe
    from train_small.train import train

    rec = dataclasses.replace(get_recipe("tiny"), model=model, global_batch=batch, micro_batch=batch, lr=lr,
                              seed=seed, total_tokens=tokens, log_every=1000, ckpt_every=10**9)  # fmt: skip
    out = os.path.join(work, f"{model}-{batch}-{lr:g}-{seed}-{abs(hash(json.dumps(overrides, sort_keys=True)))}")
    t0 = time.process_time()
    m = train(rec, data, out, resume=False, device="cpu", tensorboard=False, config_overrides=overrides)
    net, cfg = load_from_checkpoint(m["checkpoint"])
    nll, count = stream_nll(net, held, SEQ)
    return {"model": model, "model_dim": cfg.model_dim, "overrides": overrides, "batch_seqs": batch,
            "batch_tokens": batch * SEQ, "lr": lr, "seed": seed, "steps": m["step"], "train_loss": m.get("loss"),
            "heldout_loss": nll / count, "cpu_s": round(time.process_time() - t0, 1)}  # fmt: skip


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Best LR per (model, width, batch) by seed-mean held-out loss, and the ratios the two contrasts give."""
    groups: dict[tuple, dict[float, list[float]]] = {}
    for r in rows:
        key = (r["model"], r["model_dim"], r["batch_tokens"])
        groups.setdefault(key, {}).setdefault(r["lr"], []).append(r["heldout_loss"])
    best = []
    for (model, dim, bt), by_lr in sorted(groups.items()):
        means = {lr: float(np.mean(v)) for lr, v in by_lr.items()}
        lr_star = min(means, key=means.get)
        grid = sorted(means)
        best.append({"model": model, "model_dim": dim, "batch_tokens": bt, "best_lr": lr_star,
                     "best_heldout_loss": means[lr_star], "edge_of_grid": lr_star in (grid[0], grid[-1]),
                     "mean_loss_by_lr": {f"{lr:g}": means[lr] for lr in grid}})  # fmt: skip
    out: dict[str, Any] = {"best": best}
    by = {(b["model"], b["model_dim"], b["batch_tokens"]): b["best_lr"] for b in best}
    for (m, d, bt), lr in by.items():
        for (m2, d2, bt2), lr2 in by.items():
            if m2 == m and d2 == d and bt2 == 4 * bt:
                out.setdefault("batch_x4", []).append({"model": m, "model_dim": d, "lr_ratio": lr2 / lr,
                                                       "sqrt_rule": 2.0})  # fmt: skip
            if m2 == m and bt2 == bt and d2 == 2 * d:
                out.setdefault("width_x2", []).append({"model": m, "batch_tokens": bt, "lr_ratio": lr2 / lr,
                                                       "inverse_width_rule": 0.5})  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train_small.lr_sweep", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--text", action="append", default=None,
                    help="text file or folder (repeatable); default: the shared samples under ../shared/data")
    ap.add_argument("--lrs", default="0.002,0.004,0.008,0.016,0.032", help="peak learning rates, comma separated")
    ap.add_argument("--seeds", type=int, default=2, help="seeds per grid point")
    ap.add_argument("--tokens", type=int, default=160_000, help="training tokens per run (the same for every run)")
    ap.add_argument("--quick", action="store_true", help="3 LRs, 1 seed, 20k tokens, base configuration only")
    ap.add_argument("--out", default=None, help="write rows + summary JSON here (default: print only)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("train_small.train").setLevel(logging.WARNING)
    torch.set_num_threads(1)
    paths = args.text or [str(SHARED_TEXT)]
    if not all(os.path.exists(p) for p in paths):
        ap.error(f"text not found: {paths}; pass --text PATH")
    lrs = [float(x) for x in args.lrs.split(",")]
    seeds, tokens = range(args.seeds), args.tokens
    # (model, sequences per step, config overrides): the base point, 4x the batch, 2x the width, the other family
    grid = [("cpu-tiny", 8, {}), ("cpu-tiny", 32, {}), ("cpu-tiny", 8, {"model_dim": 128}), ("mobilellm-tiny", 8, {})]
    if args.quick:
        lrs, seeds, tokens, grid = lrs[1:4], range(1), 20_000, grid[:1]
    rows = []
    with tempfile.TemporaryDirectory() as work:
        data, held, vocab = build_windows(paths, work)
        for model, batch, ov in grid:
            for lr in lrs:
                for seed in seeds:
                    r = run_one(data, held, model, batch, lr, seed, tokens, work, ov)
                    logger.info("%s %s batch %d lr %g seed %d: held-out %.4f (%.0f CPU s)", model, ov or "",
                                r["batch_tokens"], lr, seed, r["heldout_loss"], r["cpu_s"])  # fmt: skip
                    rows.append(r)
    summary = summarise(rows)
    result = {"settings": {"text": paths, "seq_len": SEQ, "vocab": vocab, "tokens_per_run": tokens,
                           "lrs": lrs, "seeds": len(seeds), "grid": grid, "command": " ".join(sys.argv)},
              "summary": summary, "rows": rows}  # fmt: skip
    print(json.dumps(summary, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0 if all(math.isfinite(r["heldout_loss"]) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
