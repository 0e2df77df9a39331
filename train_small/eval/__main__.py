"""``python -m train_small.eval``: evaluate a checkpoint, or train + evaluate a token stream (``score``).

Examples::

    # few-shot tasks + held-out loss of a trained checkpoint
    python -m train_small.eval tasks --ckpt runs/x/train/model.pt --tokenizer tok.model \\
        --eval-dir ../shared/data/eval --tasks cpu --max-examples 200 --heldout clean=heldout/*.parquet

    # the whole scoring protocol on one token stream
    python -m train_small.eval score --data tokens/ --recipe tiny --out scores/mix_a --eval-dir EVAL
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any


def _heldout_arg(values: list[str] | None) -> Any:
    """``--heldout PATH`` (domains from files) or ``--heldout name=PATH`` (repeatable)."""
    if not values:
        return None
    named = [v for v in values if "=" in v.split("/")[0]]
    if named and len(named) != len(values):
        raise SystemExit("--heldout: use either all name=PATH or all PATH")
    if not named:
        return values
    out: dict[str, list[str]] = {}
    for v in values:
        k, p = v.split("=", 1)
        out.setdefault(k, []).append(p)
    return out


def add_eval_args(p: argparse.ArgumentParser) -> None:
    """Flags shared by the evaluation commands (also used by pipelines/score.py)."""
    p.add_argument(
        "--eval-dir",
        default=None,
        help="llm-foundry eval folder (jsonl tasks + dclm_eval_meta_data.csv); omit to skip tasks",
    )
    p.add_argument(
        "--tasks",
        default="core",
        help="'core' (DCLM CORE, 22 tasks), 'cpu' (9 quick tasks), 'all', or a comma list of labels",
    )
    p.add_argument(
        "--max-examples",
        type=int,
        default=None,
        help="evaluate a seeded subset of at most N examples per task (CPU runs)",
    )
    p.add_argument("--num-fewshot", type=int, default=None, help="override every task's shot count")
    p.add_argument("--eval-seed", type=int, default=1234, help="seed for the few-shot draws and subsets")
    p.add_argument(
        "--heldout",
        action="append",
        default=None,
        help="held-out text: PATH/GLOB (domain = source column or file stem) or NAME=PATH; repeatable",
    )
    p.add_argument(
        "--heldout-ref",
        action="append",
        default=None,
        metavar="NAME=PATH",
        help="reference domain of real text no mix trains on (a text file, a folder of .txt, a jsonl or a parquet "
        "with a text column), scored per document in loss and bits per byte; repeatable",
    )
    p.add_argument("--max-heldout-tokens", type=int, default=None,
                   help="cap scored tokens per held-out and per reference domain")  # fmt: skip
    p.add_argument("--batch-tokens", type=int, default=16384, help="padded tokens per scoring batch")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="evaluation precision: fp32 (as DCLM evaluates; the default of every entry point) or bf16 "
                        "autocast (CUDA only)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")  # fmt: skip
    p.add_argument("--start-token", choices=["auto", "eos", "bos", "none"], default="auto",
                   help="what every scored document and prompt starts from: auto = the tokenizer's BOS where its "
                   "configuration asks for one (add_bos_token in a tokenizer_config.json beside the .model, e.g. "
                   "the Llama tokenizer of the published OpenELM checkpoints) or for a published checkpoint, else "
                   "EOS (our proxies are trained on EOS-separated documents); default auto")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train_small.eval", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tasks", help="evaluate a trained checkpoint (few-shot tasks and/or held-out loss)")
    t.add_argument("--ckpt", required=True,
                   help="trainer checkpoint (model.pt or ckpt/step_*.pt), or a published OpenELM folder "
                        "(Hugging Face config.json + safetensors, e.g. apple/OpenELM-270M downloaded beforehand)")
    t.add_argument("--tokenizer", required=True, help="SentencePiece .model used for the training stream")
    t.add_argument("--out", default=None, help="write the JSON here (default: print it)")
    add_eval_args(t)
    s = sub.add_parser("score", help="train the proxy on a token stream, evaluate, write result.json")
    s.add_argument("--data", required=True, help="token-stream folder (manifest.json + Arrow files)")
    s.add_argument("--recipe", default="tiny", help="train_small recipe name")
    s.add_argument("--arch", default=None, choices=["openelm", "mobilellm"],
                   help="proxy family to train (the recipe's model size in that family); default: the recipe's model")
    s.add_argument("--out", required=True, help="output folder (train/, result.json)")
    s.add_argument("--seed", type=int, default=None, help="override the recipe seed")
    s.add_argument("--total-tokens", type=int, default=None, help="override the recipe's token budget")
    s.add_argument("--max-steps", type=int, default=None, help="stop training early at this step")
    s.add_argument("--force", action="store_true", help="recompute even if result.json matches")
    add_eval_args(s)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if args.cmd == "tasks":
        import torch

        from train_small.eval.harness import evaluate, write_results
        from train_small.eval.heldout import heldout_loss, load_texts
        from train_small.model import load_from_checkpoint

        dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model, cfg = load_from_checkpoint(args.ckpt, device=dev)
        from train_small.hf_openelm import is_hf_checkpoint

        published = is_hf_checkpoint(args.ckpt)
        res: dict[str, Any] = {"checkpoint": args.ckpt}
        ho = _heldout_arg(args.heldout)
        if ho is not None:
            res["heldout"] = heldout_loss(model, args.tokenizer, load_texts(ho), seq_len=cfg.max_seq_len,
                                          max_tokens_per_domain=args.max_heldout_tokens,
                                          precision=args.precision)  # fmt: skip
        if args.heldout_ref:
            from train_small.eval.reference import load_reference_domains, reference_loss

            res["reference"] = reference_loss(model, args.tokenizer, load_reference_domains(args.heldout_ref),
                                              seq_len=cfg.max_seq_len, max_tokens_per_domain=args.max_heldout_tokens,
                                              batch_tokens=args.batch_tokens, precision=args.precision,
                                              start_token=args.start_token, published=published)  # fmt: skip
        if args.eval_dir:
            res.update(evaluate(model, args.tokenizer, args.eval_dir, args.tasks, seed=args.eval_seed,
                                max_examples=args.max_examples, num_fewshot=args.num_fewshot,
                                max_seq_len=cfg.max_seq_len, batch_tokens=args.batch_tokens,
                                precision=args.precision, start_token=args.start_token,
                                published=published))  # fmt: skip
        if args.out:
            write_results(res, args.out)
            print(f"wrote {args.out}")
        else:
            json.dump(res, sys.stdout, indent=2, default=float)
            print()
        return 0

    from train_small.eval.score import score

    res = score(
        args.data, args.recipe, args.out, seed=args.seed, eval_dir=args.eval_dir, tasks=args.tasks,
        heldout=_heldout_arg(args.heldout), max_examples=args.max_examples, num_fewshot=args.num_fewshot,
        max_heldout_tokens=args.max_heldout_tokens, total_tokens=args.total_tokens, max_steps=args.max_steps,
        device=args.device, eval_seed=args.eval_seed, batch_tokens=args.batch_tokens, force=args.force,
        arch=args.arch, precision=args.precision, reference=args.heldout_ref, start_token=args.start_token,
    )  # fmt: skip
    summary = {k: res.get(k) for k in ("recipe_name", "arch", "seed", "data_manifest_sha256", "core", "core_partial")}
    if "heldout" in res:
        summary["heldout_mean_loss"] = res["heldout"].get("mean_loss")
    if "reference" in res:
        summary["reference_bits_per_byte"] = {d: m["bits_per_byte"] for d, m in res["reference"]["domains"].items()}
    print(json.dumps(summary, indent=2, default=float))
    print(f"result: {args.out}/result.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
