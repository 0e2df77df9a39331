"""Rank agreement between proxy families: Kendall tau-b, its spread over seeds, and a tiny two-family run."""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from train_small.eval.agreement import kendall_tau, rank_agreement, rank_agreement_from_results

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from token_stream_helpers import learnable_windows, write_token_stream  # noqa: E402


def test_kendall_tau_by_hand():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)  # 5 concordant, 1 discordant pair
    # tau-b with a tie in one ranking: (n_c - n_d) / sqrt((6 - 0) * (6 - 1)) = 5 / sqrt(30)
    assert kendall_tau([1, 2, 3, 4], [1, 2, 2, 4]) == pytest.approx(5 / math.sqrt(30))
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError):
        kendall_tau([1], [1])


def test_kendall_tau_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(2, 12))
        x, y = rng.integers(0, 4, n).astype(float), rng.normal(size=n).round(1)
        want = stats.kendalltau(x, y).statistic  # tau-b by default
        got = kendall_tau(x, y)
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-12)


def test_rank_agreement_per_seed_and_spread():
    # held-out loss (lower is better) of 4 mixes x 3 seeds for two families; seed 2 of mobilellm swaps b and c
    openelm = {"a": {0: 1.0, 1: 1.1, 2: 1.0}, "b": {0: 2.0, 1: 2.1, 2: 2.0}, "c": {0: 3.0, 1: 3.0, 2: 3.1},
               "d": {0: 4.0, 1: 4.2, 2: 4.0}, "only_here": {0: 9.0}}
    mobile = {"a": {0: 1.5, 1: 1.4, 2: 1.5}, "b": {0: 2.5, 1: 2.6, 2: 3.6}, "c": {0: 3.5, 1: 3.5, 2: 3.5},
              "d": {0: 4.5, 1: 4.4, 2: 4.5}}
    r = rank_agreement({"openelm": openelm, "mobilellm": mobile})
    assert r["mixes"] == ["a", "b", "c", "d"] and r["mixes_missing"] == ["only_here"]
    assert r["per_seed"] == {0: 1.0, 1: 1.0, 2: pytest.approx(4 / 6)}
    assert r["tau_mean"] == pytest.approx((2 + 4 / 6) / 3)
    assert r["tau_min"] == pytest.approx(4 / 6) and r["tau_max"] == 1.0 and r["n_seeds"] == 3
    assert r["tau_std"] == pytest.approx(np.std([1, 1, 4 / 6], ddof=1))
    assert r["tau_of_means"] == 1.0  # seed-averaged, mobilellm still orders a < b < c < d
    assert r["rankings"]["openelm"] == ["a", "b", "c", "d"]
    assert r["pairs"]["mobilellm~openelm"]["tau_mean"] == r["tau_mean"]
    flipped = rank_agreement({"x": {"a": {0: 1}, "b": {0: 2}}, "y": {"a": {0: 2}, "b": {0: 1}}}, higher_is_better=True)
    assert flipped["tau_mean"] == -1.0 and flipped["rankings"]["x"] == ["b", "a"]
    with pytest.raises(ValueError, match="two mixes"):
        rank_agreement({"x": {"a": {0: 1}}, "y": {"a": {0: 1}, "b": {0: 2}}})
    with pytest.raises(ValueError, match="two proxy families"):
        rank_agreement({"x": openelm})


@pytest.fixture
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_tiny_two_family_run_agrees_on_an_ordered_set_of_mixes(tmp_path, _one_thread):
    """Three mixes of clearly different quality (learnable progressions diluted with 0%, 50% and 100% random
    windows), each trained with the tiny recipe (each family at its own LR) and two seeds; the held-out loss on
    fresh progressions ranks them the same way in every seed and family: tau = 1."""
    from train_small.eval.heldout import stream_nll
    from train_small.model import load_from_checkpoint
    from train_small.recipes import get_recipe
    from train_small.train import train

    seq, n = 64, 192
    rng = np.random.default_rng(1)
    clean = learnable_windows(n, seq, seed=2)
    noise = rng.integers(100, 300, size=(n, seq + 1))  # random windows over other tokens than the progressions
    mixes = {"clean": clean, "half": np.concatenate([clean[: n // 2], noise[: n // 2]]), "noise": noise}
    heldout = learnable_windows(16, seq, seed=99).reshape(-1)
    recipe = dataclasses.replace(get_recipe("tiny"), total_tokens=24 * 8 * seq, ckpt_every=1000)
    results = []
    for arch in ("openelm", "mobilellm"):
        for mix, windows in mixes.items():
            data = write_token_stream(tmp_path / "data" / mix, windows, vocab_size=512)
            for seed in (0, 1):
                rec = dataclasses.replace(recipe.for_arch(arch), seed=seed)
                out = train(rec, data, tmp_path / arch / mix / str(seed), device="cpu", tensorboard=False)
                model, cfg = load_from_checkpoint(out["checkpoint"])
                assert cfg.arch == arch
                nll, count = stream_nll(model, heldout, seq_len=seq)
                results.append({"arch": arch, "seed": seed, "extra": {"mix": mix},
                                "heldout": {"domains": {"ref": {"loss": nll / count, "bits_per_byte": 0.0}}}})
    r = rank_agreement_from_results(results, "heldout/ref/loss")
    assert r["rankings"] == {"mobilellm": ["clean", "half", "noise"], "openelm": ["clean", "half", "noise"]}
    assert r["per_seed"] == {0: 1.0, 1: 1.0} and r["tau_mean"] == 1.0 and r["tau_min"] == 1.0
    assert r["metric"] == "heldout/ref/loss" and not r["higher_is_better"]
