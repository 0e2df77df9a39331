"""The n-gram floor and the instrument's statistics: Kneser-Ney is a distribution, the floor is fit on exactly the
windows training read, a model that only learnt unigram statistics is below the floor and a context model above
it, and decision accuracy / differences carry intervals over items."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.train_small.token_stream_helpers import learnable_windows, write_token_stream
from train_small.data import open_token_stream
from train_small.eval.decide import ItemScores, decision_accuracy, difference, floor_verdict
from train_small.eval.ngram import NGramFloor, count_windows, fit_floor, trial_windows
from train_small.eval.reference import reference_loss

A = 24  # alphabet of the progressions; token 0 is EOS
V = A + 1


class IntTokenizer:
    """Texts are space-separated token ids (test fixture: every byte count is the text's length)."""

    eos_id = 0
    bos_id = None
    vocab_size = V

    def encode(self, text: str) -> list[int]:
        return [int(x) for x in text.split()]


def _docs(n: int, length: int, seed: int) -> list[str]:
    return [" ".join(map(str, w)) for w in learnable_windows(n, length - 1, A, seed)]


class UnigramLM(torch.nn.Module):
    """Predicts the training unigram distribution whatever the context."""

    max_seq_len = 64

    def __init__(self, p: np.ndarray) -> None:
        super().__init__()
        self.logp = torch.nn.Parameter(torch.log(torch.tensor(p, dtype=torch.float32)), requires_grad=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.logp.expand(*idx.shape, V).clone()


class ProgressionLM(torch.nn.Module):
    """Knows the source: after two tokens the next is determined (stride = last difference)."""

    max_seq_len = 64

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        out = torch.full((B, T, V), -20.0)
        out[:, :, 1:] = math.log(1.0 / A)  # nothing known: uniform over the alphabet
        for b in range(B):
            for t in range(T):
                cur = int(idx[b, t])
                prev = int(idx[b, t - 1]) if t > 0 else 0
                if cur == 0:
                    continue
                if prev == 0:  # one token seen: the stride is 1, 2 or 3
                    out[b, t, :] = -20.0
                    for s in (1, 2, 3):
                        out[b, t, (cur - 1 + s) % A + 1] = math.log(1 / 3)
                else:
                    out[b, t, :] = math.log(0.001)
                    out[b, t, (2 * (cur - 1) - (prev - 1)) % A + 1] = math.log(0.97)
        return out


def test_kneser_ney_bigram_is_a_distribution_for_seen_and_unseen_contexts() -> None:
    rng = np.random.default_rng(0)
    windows = rng.integers(0, 12, size=(40, 9))
    windows[:, 1:] = np.where(rng.random((40, 8)) < 0.5, (windows[:, :-1] + 1) % 12, windows[:, 1:])
    c = count_windows([windows], vocab_size=15)  # ids 12..14 never occur
    for D in (0.3, 0.75, 0.95):
        f = NGramFloor(c, k=0.1, discount=D)
        for v in (0, 5, 11, 13):  # 13: a context never seen
            p = np.exp(f.logprob_bigram(np.full(15, v), np.arange(15)))
            assert p.sum() == pytest.approx(1.0, abs=1e-9)
            assert (p > 0).all()
        assert np.exp(f.logprob_unigram(np.arange(15))).sum() == pytest.approx(1.0, abs=1e-9)


def test_counts_match_a_direct_count_and_chunking_does_not_matter() -> None:
    w = learnable_windows(300, 16, A, seed=3)
    direct: dict[tuple[int, int], int] = {}
    for row in w:
        for a, b in zip(row[:-1], row[1:]):
            direct[(int(a), int(b))] = direct.get((int(a), int(b)), 0) + 1
    whole = count_windows([w], V)
    parts = count_windows([w[i : i + 7] for i in range(0, len(w), 7)], V, flush_pairs=50)
    got = {(int(k) // V, int(k) % V): int(n) for k, n in zip(whole.keys, whole.counts)}
    assert got == direct
    assert np.array_equal(whole.keys, parts.keys) and np.array_equal(whole.counts, parts.counts)
    assert whole.tokens == w[:, 1:].size


def test_trial_windows_are_what_the_trainer_reads_epochs_included(tmp_path) -> None:
    windows = learnable_windows(50, 16, A, seed=1)
    path = write_token_stream(tmp_path / "s", windows, V)
    stream = open_token_stream(path, seed=7)
    positions = 130  # 2.6 epochs
    want = np.concatenate([np.asarray(stream.batch(p, 10)) for p in range(0, positions, 10)])
    got = np.concatenate(list(trial_windows(str(path), 7, positions, batch=32)))
    assert np.array_equal(got, want)


def _score(model: torch.nn.Module, floor: NGramFloor, docs: list[str]) -> dict:
    return reference_loss(model, IntTokenizer(), {"prog": docs, "prog2": docs[::-1][:20]}, seq_len=32, floor=floor,
                          per_doc=True, start_token="eos")


def test_a_unigram_only_model_is_below_the_floor_and_a_context_model_beats_it(tmp_path) -> None:
    train = learnable_windows(400, 32, A, seed=0)
    floor, info = fit_floor([train], V)
    assert 0 < info["discount"] < 1 and info["tokens"] == train[:, 1:].size
    docs = _docs(60, 30, seed=99)
    uni_p = np.bincount(train[:, 1:].ravel(), minlength=V) + 1.0
    uni = [_score(UnigramLM(uni_p / uni_p.sum()), floor, docs) for _ in range(2)]
    ctx = [_score(ProgressionLM(), floor, docs) for _ in range(2)]
    for r in uni + ctx:
        for m in r["domains"].values():
            f = m["ngram_floor"]
            assert f["bigram_bpb"] < f["unigram_bpb"]  # the source has bigram structure
    # the unigram model sits at the unigram floor, far above the bigram floor
    u = uni[0]["domains"]["prog"]
    assert u["bits_per_byte"] == pytest.approx(u["ngram_floor"]["unigram_bpb"], rel=0.05)
    v_uni = floor_verdict([r["_per_doc"] for r in uni])
    v_ctx = floor_verdict([r["_per_doc"] for r in ctx])
    assert v_uni["beats_ngram_floor"] is False
    assert all(not d["beats"] and d["margin"] < 0 for d in v_uni["domains"].values())
    assert v_ctx["beats_ngram_floor"] is True
    assert all(d["margin"] > 0 and d["interval"][0] > 0 for d in v_ctx["domains"].values())


def _items(good: float, bad: float, n: int = 200, seeds: int = 3, noise: float = 0.05) -> ItemScores:
    rng = np.random.default_rng(0)
    base = rng.uniform(1.0, 2.0, size=n)
    cols = [base * good + rng.normal(0, noise, n) for _ in range(seeds)]
    cols += [base * bad + rng.normal(0, noise, n) for _ in range(seeds)]
    strata = np.arange(n) % 2
    return ItemScores(np.stack(cols, 1), np.ones(n), strata, np.array([1.0, 1.0]), True, ["a", "b"])


def test_decision_accuracy_orders_a_clear_difference_and_is_chance_without_one() -> None:
    clear = decision_accuracy(_items(1.0, 1.1), good=[0, 1, 2], bad=[3, 4, 5], n_boot=200)
    assert clear["decision_accuracy"] == 1.0 and clear["interval"] == [1.0, 1.0] and clear["pairs"] == 9
    wrong = decision_accuracy(_items(1.1, 1.0), good=[0, 1, 2], bad=[3, 4, 5], n_boot=200)
    assert wrong["decision_accuracy"] == 0.0
    # no difference, noisy items: the order is a coin toss and the interval says so (it spans chance)
    none = decision_accuracy(_items(1.0, 1.0, noise=0.3), good=[0, 1, 2], bad=[3, 4, 5], n_boot=200)
    assert none["interval"][0] < 0.5 < none["interval"][1]
    assert none["interval"][1] - none["interval"][0] > 0.3


def test_difference_interval_covers_the_shift_and_excludes_zero_when_clear() -> None:
    d = difference(_items(1.0, 1.1, n=400), a=[0, 1, 2], b=[3, 4, 5], n_boot=300)
    assert d["difference"] < 0 and d["interval"][0] < d["difference"] < d["interval"][1] < 0
    same = difference(_items(1.0, 1.0, n=400), a=[0, 1, 2], b=[3, 4, 5], n_boot=300)
    assert same["interval"][0] < 0 < same["interval"][1]
