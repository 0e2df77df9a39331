"""The leaderboard reads per-document reference scores: it ranks only mixes whose proxies beat their n-gram floor,
compares with raw by intervals over documents, and does not compare mixes repeated very differently."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from pipelines.leaderboard import leaderboard, ranking_status, write_leaderboard
from pipelines.mixes import DEFAULT_MIXES
from train_small.eval.score import _write_table

N_DOCS = 120


def _trial(tmp_path: Path, mix: str, seed: int, shift: float, floor_gap: float, epochs: float = 0.5) -> dict:
    """A trial whose proxy scores each document ``base * (1 + shift)`` nats, its bigram floor ``floor_gap`` nats per
    byte above (> 0: the proxy beats the floor); two domains of 60 documents."""
    rng = np.random.default_rng([seed, zlib.crc32(mix.encode())])
    base = np.random.default_rng(0).uniform(800, 1200, N_DOCS)
    nbytes = np.full(N_DOCS, 400)
    nll = base * (1 + shift) + rng.normal(0, 2.0, N_DOCS)
    out = tmp_path / f"{mix}-{seed}"
    out.mkdir()
    _write_table(out / "reference_docs.parquet", {
        "domain": ["wiki"] * 60 + ["news"] * 60, "nll": nll, "tokens": np.full(N_DOCS, 300), "bytes": nbytes,
        "unigram": base * 1.5, "bigram": nll + floor_gap * nbytes})  # fmt: skip
    bpb = float(nll.sum() / np.log(2) / nbytes.sum())
    return {"extra": {"mix": mix}, "seed": seed, "out_dir": str(out), "epochs": epochs,
            "reference": {"domains": {}, "weighted_bits_per_byte": bpb}}


MIXES = [DEFAULT_MIXES[n] for n in ("raw", "heuristics", "baseline")]


def test_mixes_above_their_floor_are_ranked_with_intervals_per_domain(tmp_path: Path) -> None:
    results = [_trial(tmp_path, "raw", s, 0.0, 0.05) for s in range(3)]
    results += [_trial(tmp_path, "heuristics", s, -0.03, 0.05) for s in range(3)]  # 3% fewer nats: better
    results += [_trial(tmp_path, "baseline", s, 0.0, 0.05) for s in range(3)]  # the same as raw up to noise
    rows = leaderboard(results, MIXES, "reference/weighted_bits_per_byte", n_boot=200)
    assert ranking_status(rows)["ranked"] and [r["mix"] for r in rows][0] == "heuristics"
    assert all(r["beats_ngram_floor"] for r in rows) and [r["rank"] for r in rows] == [1, 2, 3]
    h = next(r for r in rows if r["mix"] == "heuristics")
    assert h["beats_raw"] is True and h["delta_interval"][0] > 0
    for d in ("wiki", "news"):
        assert h["domain_deltas_vs_raw"][d]["delta"] > 0 and h["domain_deltas_vs_raw"][d]["interval"][0] > 0
    b = next(r for r in rows if r["mix"] == "baseline")
    assert b["beats_raw"] is False  # its interval holds 0 or its gap is within the seed spread
    md = Path(write_leaderboard(str(tmp_path), rows, {"recipe": "cpu-1m", "seeds": 3},
                                "reference/weighted_bits_per_byte")).read_text()
    assert "Not ranked" not in md and "| 1 | heuristics |" in md and "Per reference domain" in md


def test_below_the_floor_nothing_is_ranked_and_the_reason_is_given(tmp_path: Path) -> None:
    results = [_trial(tmp_path, "raw", s, 0.0, 0.05) for s in range(3)]
    results += [_trial(tmp_path, "heuristics", s, -0.03, -0.02) for s in range(3)]  # worse than its bigram
    rows = leaderboard(results, MIXES, "reference/weighted_bits_per_byte", n_boot=200)
    status = ranking_status(rows)
    assert not status["ranked"] and status["below"] == ["heuristics"]
    assert all(r["rank"] is None for r in rows)
    h = next(r for r in rows if r["mix"] == "heuristics")
    assert h["beats_raw"] is None and h["not_compared"] == "below the n-gram floor"
    md = Path(write_leaderboard(str(tmp_path), rows, {"recipe": "cpu-1m", "seeds": 3},
                                "reference/weighted_bits_per_byte", needed="Train a larger proxy.")).read_text()
    assert "**Not ranked.**" in md and "heuristics" in md.split("**Not ranked.**")[1].split("\n")[0]
    assert "Train a larger proxy." in md


def test_mixes_repeated_very_differently_are_not_compared(tmp_path: Path) -> None:
    results = [_trial(tmp_path, "raw", s, 0.0, 0.05, epochs=0.4) for s in range(3)]
    results += [_trial(tmp_path, "heuristics", s, -0.03, 0.05, epochs=1.0) for s in range(3)]  # read once: fine
    results += [_trial(tmp_path, "baseline", s, -0.03, 0.05, epochs=3.6) for s in range(3)]  # repeated 3.6x
    rows = {r["mix"]: r for r in leaderboard(results, MIXES, "reference/weighted_bits_per_byte", n_boot=100)}
    assert rows["heuristics"]["beats_raw"] is True and rows["heuristics"]["epoch_ratio_vs_raw"] == 1.0
    assert rows["baseline"]["beats_raw"] is None and "repetition differs 3.6x" in rows["baseline"]["not_compared"]
    again = {r["mix"]: r for r in leaderboard(results, MIXES, "reference/weighted_bits_per_byte", n_boot=100,
                                              allow_repetition=True)}
    assert again["baseline"]["beats_raw"] is True


def test_smallest_stream_budget_never_repeats_the_smallest_mix(tmp_path):
    """``--total-tokens smallest`` gives a budget whose whole optimizer steps fit in every mix's stream: the trainer
    rounds a budget up to whole steps, so a budget equal to a stream size that is not a multiple of the step would
    read part of the smallest mix twice."""
    import json

    from pipelines.ablate import _smallest_stream
    from train_small.recipes import get_recipe

    recipe = get_recipe("cpu-1m")
    streams = {}
    for mix, windows in {"raw": 1889, "baseline": 526}.items():  # 526 windows: not a whole number of steps
        (tmp_path / mix).mkdir()
        (tmp_path / mix / "manifest.json").write_text(json.dumps({"num_windows": windows}))
        streams[mix] = str(tmp_path / mix)
    budget = _smallest_stream(streams, recipe.seq_len, recipe.tokens_per_step)
    steps = get_recipe("cpu-1m", total_tokens=budget).total_steps(0)
    assert steps * recipe.tokens_per_step <= 526 * recipe.seq_len  # no window of the smallest mix read twice
    assert (steps + 1) * recipe.tokens_per_step > 526 * recipe.seq_len  # and no whole step left unused
