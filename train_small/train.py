"""The fixed-recipe trainer for the OpenELM proxy.

Python::

    from train_small.train import train
    metrics = train("tiny", "data/tokens", "runs/tiny", resume=True, max_steps=None, device=None)

Command line::

    python -m train_small.train --recipe proxy-20m --data data/tokens --out runs/mixA

Outputs in ``out_dir``: ``run.json`` (recipe, model config, data manifest sha256, git commit, FLOP formula and
peak), ``metrics.jsonl`` (one line per logged step), ``tb/`` (TensorBoard events), ``ckpt/step_XXXXXXX.pt``
(the last two kept) and ``model.pt`` (the final checkpoint). Checkpoints hold model, optimizer, step, data
position, RNG states, recipe and model config, and load with ``torch.load(weights_only=True)``; evaluation
rebuilds the model with :func:`train_small.model.load_from_checkpoint`.

Determinism: the same recipe, data and seed give the same losses on the same device; a run resumed from a
checkpoint continues exactly as the uninterrupted run (tested on CPU). On GPU, SDPA's backward and Triton
reductions are deterministic per launch configuration, but cuBLAS may pick different algorithms across
GPU models.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from train_small.configs import ModelConfig, get_config
from train_small.data import TokenStream, manifest_sha256, open_token_stream, stream_identity, to_batch
from train_small.model import DecoderLM, build_model, flops_per_token
from train_small.recipes import RECIPES, Recipe, get_recipe

logger = logging.getLogger(__name__)

__all__ = ["train", "main", "peak_flops", "MFU_FORMULA"]

MFU_FORMULA = (
    "mfu = tokens_per_s * flops_per_token / peak_flops; flops_per_token = 6 * N_matmul + 12 * sum_l(Hq_l * "
    "head_dim) * seq_len (PaLM appendix B; N_matmul = linear weights + tied output projection V*d)"
)
# Dense bf16 tensor-core peaks from NVIDIA's datasheets (FLOP/s), matched on the device name.
_PEAKS = [("H200", 989.5e12), ("H100 PCIe", 756e12), ("H100", 989.5e12), ("A100", 312e12), ("L40S", 362e12),
          ("A10G", 70e12), ("L4", 121e12), ("4090", 165.2e12), ("3090", 71e12)]
# Fields that may change between a checkpoint and its resumption without changing the run's result.
_RESUME_FREE = {"log_every", "ckpt_every", "compile", "use_kernels"}


def peak_flops(device: torch.device) -> float | None:
    """Peak dense bf16 FLOP/s of a CUDA device from a datasheet table; None on CPU or an unknown GPU."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((p for key, p in _PEAKS if key in name), None)


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "train_small"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _peak_mem_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _latest_checkpoint(ckpt_dir: Path) -> Path | None:
    found = sorted(ckpt_dir.glob("step_*.pt"))
    return found[-1] if found else None


def _param_groups(model: DecoderLM, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices and the (tied) embedding; none on norm weights (all 1-D parameters)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _build(recipe: Recipe, data: TokenStream, device: torch.device,
           overrides: dict[str, Any] | None = None) -> tuple[DecoderLM, ModelConfig]:
    use_kernels = recipe.use_kernels if recipe.use_kernels is not None else device.type == "cuda"
    if use_kernels and device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError("use_kernels needs CUDA (or TRITON_INTERPRET=1 for a slow CPU check)")
    cfg = get_config(recipe.model, **{"vocab_size": data.vocab_size, "use_kernels": use_kernels,
                                      "max_seq_len": recipe.seq_len, **(overrides or {})})
    torch.manual_seed(recipe.seed)
    model = build_model(cfg)  # initialised on CPU, so the weights do not depend on the device
    return model.to(device), cfg


def train(
    recipe: Recipe | str,
    data_dir: str | Path,
    out_dir: str | Path,
    resume: bool = True,
    max_steps: int | None = None,
    device: str | torch.device | None = None,
    *,
    peak_tflops: float | None = None,
    tensorboard: bool = True,
    config_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``recipe`` on the token stream in ``data_dir``; write logs and checkpoints to ``out_dir``.

    ``max_steps`` stops after that optimizer step (an absolute step: the LR schedule still spans the recipe's
    full budget, so a stopped run is a prefix of the full one). ``resume`` continues from the newest
    checkpoint in ``out_dir/ckpt`` when there is one. ``config_overrides`` changes fields of the recipe's model
    config (e.g. ``{"model_dim": 128}`` in a width sweep); they are saved in the checkpoint's model config and in
    ``run.json``. Returns the final metrics (see ``metrics.jsonl`` keys,
    plus ``num_params``, ``total_steps``, ``checkpoint``, ``finished``, and what was read: ``data_position``
    (windows consumed), ``data_windows`` (windows in the stream) and ``epochs``, their ratio).
    """
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out = Path(out_dir)
    ckpt_dir = out / "ckpt"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    data = open_token_stream(data_dir, seed=recipe.seed)
    if data.seq_len < recipe.seq_len:
        raise ValueError(f"data windows hold {data.seq_len} tokens, the recipe needs {recipe.seq_len}")
    if data.seq_len > recipe.seq_len:
        logger.warning("data seq_len %d > recipe seq_len %d: each window is cropped", data.seq_len, recipe.seq_len)
    model, cfg = _build(recipe, data, device, config_overrides)
    num_params = model.num_parameters()
    total_steps = recipe.total_steps(num_params)
    end_step = total_steps if max_steps is None else min(total_steps, max_steps)
    fused = device.type == "cuda"
    opt = torch.optim.AdamW(_param_groups(model, recipe.weight_decay), lr=recipe.lr, betas=recipe.betas,
                            eps=recipe.eps, fused=fused)
    data_hash = manifest_sha256(data_dir)
    data_id = stream_identity(data_dir)  # content: a stream rebuilt with the same windows resumes

    step, position = 0, 0
    latest = _latest_checkpoint(ckpt_dir) if resume else None
    if latest is not None:
        state = torch.load(latest, map_location="cpu", weights_only=True)
        saved = {k: v for k, v in state["recipe"].items() if k not in _RESUME_FREE}
        now = {k: v for k, v in recipe.to_dict().items() if k not in _RESUME_FREE}
        if saved != now:
            raise ValueError(f"{latest} was written by a different recipe: {saved} != {now}")
        old, new = state["model_config"], cfg.to_dict()
        differ = sorted(k for k in set(old) & set(new) if k != "use_kernels" and old[k] != new[k])
        if differ:
            raise ValueError(f"{latest} was written for another model config ({differ} differ); pass the same "
                             "config_overrides or --no-resume")
        if state.get("data_identity", "manifest:" + str(state.get("data_manifest_sha256"))) != data_id:
            raise ValueError(f"{latest} was trained on different data (the token streams' content digests differ)")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, position = int(state["step"]), int(state["data_position"])
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and state.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(state["rng_cuda"], device)
        logger.info("resumed from %s at step %d", latest, step)
    elif resume is False:
        for p in ckpt_dir.glob("step_*.pt"):
            p.unlink()

    fpt = flops_per_token(cfg, recipe.seq_len)
    peak = peak_tflops * 1e12 if peak_tflops else peak_flops(device)
    meta = {
        "recipe": recipe.to_dict(), "model_config": cfg.to_dict(), "num_params": num_params,
        "total_steps": total_steps, "token_budget": recipe.token_budget(num_params),
        "data_dir": str(data_dir), "data_manifest_sha256": data_hash, "data_identity": data_id,
        "data_windows": len(data),
        "git_commit": _git_commit(), "torch": torch.__version__, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "flops_per_token": fpt, "peak_flops": peak, "mfu_formula": MFU_FORMULA, "resumed_from_step": step,
    }
    (out / "run.json").write_text(json.dumps(meta, indent=2))
    metrics_path = out / "metrics.jsonl"
    if metrics_path.exists():  # drop lines past the checkpoint we resumed from (or all, for a fresh run)
        kept = [ln for ln in metrics_path.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
        metrics_path.write_text("".join(ln + "\n" for ln in kept))
    writer = None
    if tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out / "tb"), purge_step=step + 1)
        except ImportError:
            logger.warning("tensorboard is not installed: no event files")

    fwd = torch.compile(model) if recipe.compile else model
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast(
        "cpu", enabled=False)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    last: dict[str, Any] = {}
    window_t, window_tokens = time.perf_counter(), 0
    sums = torch.zeros(3, device=device)  # ce, z, total summed over the steps of this log window
    n_in_window = 0
    ckpt_path: Path | None = latest
    model.train()
    while step < end_step:
        lr = recipe.lr_at(step, total_steps)
        for g in opt.param_groups:
            g["lr"] = lr
        step_sums = torch.zeros(3, device=device)
        for _ in range(recipe.grad_accum):
            x, y = to_batch(data.batch(position, recipe.micro_batch), recipe.seq_len, device)
            position += recipe.micro_batch
            with amp:  # on the kernel path (GPU) the loss is the fused chunked LM-head loss: no (B, T, V) logits
                total, ce, z = fwd(x, y, z_loss=recipe.z_loss)
            (total / recipe.grad_accum).backward()
            step_sums += torch.stack([ce.detach(), recipe.z_loss * z.detach(), total.detach()]) / recipe.grad_accum
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        sums += step_sums
        n_in_window += 1
        window_tokens += recipe.tokens_per_step
        if step % recipe.log_every == 0 or step == end_step:
            vals = (sums / n_in_window).tolist()  # synchronises
            now = time.perf_counter()
            tps = window_tokens / max(now - window_t, 1e-9)
            last = {
                "step": step, "loss": vals[0], "z_loss": vals[1], "total_loss": vals[2],
                "grad_norm": float(grad_norm), "lr": lr, "tokens": step * recipe.tokens_per_step,
                "tokens_per_s": tps, "mfu": tps * fpt / peak if peak else None,
                "peak_mem_gb": _peak_mem_gb(device), "time": time.time(),
            }
            with metrics_path.open("a") as f:
                f.write(json.dumps(last) + "\n")
            if writer is not None:
                for k in ("loss", "z_loss", "total_loss", "grad_norm", "lr", "tokens_per_s", "peak_mem_gb"):
                    writer.add_scalar(f"train/{k}", last[k], step)
                if last["mfu"] is not None:
                    writer.add_scalar("train/mfu", last["mfu"], step)
                writer.add_scalar("train/tokens", last["tokens"], step)
            logger.info("step %d/%d loss %.4f z %.2e gnorm %.3f lr %.2e tok/s %.0f", step, total_steps, vals[0],
                        vals[1], last["grad_norm"], lr, tps)
            sums.zero_()
            n_in_window, window_t, window_tokens = 0, time.perf_counter(), 0
        if step % recipe.ckpt_every == 0 or step == end_step:
            ckpt_path = _save(model, opt, recipe, cfg, step, position, (data_hash, data_id), ckpt_dir, device)
    if writer is not None:
        writer.close()
    if ckpt_path is not None and step == total_steps:
        _atomic_save(torch.load(ckpt_path, map_location="cpu", weights_only=True), out / "model.pt")
    if not last and metrics_path.exists():  # nothing ran this session: report the logged end state
        lines = metrics_path.read_text().splitlines()
        last = json.loads(lines[-1]) if lines else {}
    # what the model saw: windows consumed (epochs included) and how many times the stream was read
    return {**last, "num_params": num_params, "total_steps": total_steps, "step": step,
            "checkpoint": str(ckpt_path) if ckpt_path else None, "finished": step == total_steps,
            "out_dir": str(out), "data_position": step * recipe.global_batch, "data_windows": len(data),
            "epochs": step * recipe.global_batch / max(len(data), 1)}


def _save(model, opt, recipe, cfg, step, position, data_ids: tuple, ckpt_dir: Path, device, keep_last: int = 2) -> Path:
    state = {
        "model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "data_position": position,
        "recipe": recipe.to_dict(), "model_config": cfg.to_dict(), "data_manifest_sha256": data_ids[0],
        "data_identity": data_ids[1], "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }
    path = ckpt_dir / f"step_{step:07d}.pt"
    _atomic_save(state, path)
    for old in sorted(ckpt_dir.glob("step_*.pt"))[:-keep_last]:
        old.unlink()
    return path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train_small.train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--recipe", default="tiny", choices=sorted(RECIPES), help="training recipe (train_small.recipes)")
    p.add_argument("--arch", default=None, choices=["openelm", "mobilellm"],
                   help="proxy family: the recipe's model is replaced by this family's model of about the same size "
                        "(default: the recipe's own model)")
    p.add_argument("--data", help="token-stream folder (manifest.json + Arrow stream files)")
    p.add_argument("--out", help="output folder: run.json, metrics.jsonl, tb/, ckpt/, model.pt")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this optimizer step (absolute)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--no-resume", action="store_true", help="start over, deleting checkpoints in --out/ckpt")
    p.add_argument("--seed", type=int, default=None, help="override the recipe's seed (init and data order)")
    p.add_argument("--total-tokens", type=int, default=None, help="override the token budget (default 20x params)")
    p.add_argument("--micro-batch", type=int, default=None, help="sequences per forward/backward (memory knob)")
    p.add_argument("--lr", type=float, default=None, help="override the peak learning rate")
    p.add_argument("--kernels", choices=["auto", "on", "off"], default="auto",
                   help="Triton fused kernels: auto = on iff CUDA")
    p.add_argument("--compile", action="store_true", help="wrap the model in torch.compile")
    p.add_argument("--log-every", type=int, default=None, help="log every N optimizer steps")
    p.add_argument("--ckpt-every", type=int, default=None, help="checkpoint every N optimizer steps")
    p.add_argument("--peak-tflops", type=float, default=None, help="peak bf16 TFLOP/s for MFU (default: by GPU)")
    p.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard event files")
    p.add_argument("--list-recipes", action="store_true", help="print the recipes as JSON and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.list_recipes:
        print(json.dumps({k: f().to_dict() for k, f in RECIPES.items()}, indent=2))
        return 0
    if not args.data or not args.out:
        build_parser().error("--data and --out are required")
    overrides: dict[str, Any] = {k: v for k, v in {
        "seed": args.seed, "total_tokens": args.total_tokens, "micro_batch": args.micro_batch, "lr": args.lr,
        "log_every": args.log_every, "ckpt_every": args.ckpt_every}.items() if v is not None}
    if args.kernels != "auto":
        overrides["use_kernels"] = args.kernels == "on"
    if args.compile:
        overrides["compile"] = True
    recipe = get_recipe(args.recipe, **overrides)
    if args.arch:
        recipe = recipe.for_arch(args.arch)
    metrics = train(recipe, args.data, args.out, resume=not args.no_resume, max_steps=args.max_steps,
                    device=args.device, peak_tflops=args.peak_tflops, tensorboard=not args.no_tensorboard)
    print(json.dumps(metrics, indent=2))
    return 0 if math.isfinite(metrics.get("loss", float("nan"))) else 1


if __name__ == "__main__":
    sys.exit(main())
