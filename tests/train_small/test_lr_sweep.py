"""The LR sweep's summary (best LR per configuration, the batch and width contrasts) and the trainer's
config_overrides it relies on."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from train_small.lr_sweep import summarise


def _rows(model, dim, bt, losses_by_lr):
    return [{"model": model, "model_dim": dim, "batch_tokens": bt, "lr": lr, "seed": s, "heldout_loss": v}
            for lr, vals in losses_by_lr.items() for s, v in enumerate(vals)]


def test_summary_picks_the_seed_mean_best_and_reports_the_contrasts():
    rows = (_rows("cpu-tiny", 64, 512, {0.004: [3.0, 3.2], 0.008: [2.9, 3.0], 0.016: [2.8, 3.3]})  # mean 3.05
            + _rows("cpu-tiny", 64, 2048, {0.008: [2.9], 0.016: [2.7], 0.032: [2.8]})
            + _rows("cpu-tiny", 128, 512, {0.002: [2.6], 0.004: [2.5], 0.008: [2.7]}))
    s = summarise(rows)
    best = {(b["model_dim"], b["batch_tokens"]): b for b in s["best"]}
    assert best[(64, 512)]["best_lr"] == 0.008 and not best[(64, 512)]["edge_of_grid"]
    assert best[(64, 512)]["mean_loss_by_lr"]["0.016"] == pytest.approx(3.05)
    assert s["batch_x4"] == [{"model": "cpu-tiny", "model_dim": 64, "lr_ratio": 2.0, "sqrt_rule": 2.0}]
    assert s["width_x2"] == [{"model": "cpu-tiny", "batch_tokens": 512, "lr_ratio": 0.5, "inverse_width_rule": 0.5}]
    edge = summarise(_rows("m", 8, 64, {0.1: [1.0], 0.2: [2.0]}))
    assert edge["best"][0]["edge_of_grid"]  # the optimum may lie outside the grid: flagged


def test_config_overrides_change_the_model_and_guard_resume(learnable_stream, tmp_path):
    from train_small.model import load_from_checkpoint
    from train_small.recipes import get_recipe
    from train_small.train import train

    torch.set_num_threads(1)
    rec = dataclasses.replace(get_recipe("tiny"), total_tokens=3 * 8 * 64)
    m = train(rec, learnable_stream, tmp_path / "w", device="cpu", tensorboard=False,
              config_overrides={"model_dim": 128}, max_steps=2)
    _, cfg = load_from_checkpoint(m["checkpoint"])
    assert cfg.model_dim == 128 and cfg.name == "cpu-tiny"
    with pytest.raises(ValueError, match="model_dim"):  # resuming with another width is refused, not crashed
        train(rec, learnable_stream, tmp_path / "w", device="cpu", tensorboard=False)
