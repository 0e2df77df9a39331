"""The start token (BOS where the tokenizer's configuration asks for it, else our EOS) with a real SentencePiece
model, and the CORE flag: false whenever shots, subsets, skipped examples or task files differ from DCLM's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from eval_tiny_models import TEXT, train_curation_tokenizer

from train_small.eval.harness import SentencePieceTokenizer, aggregate, evaluate
from train_small.eval.prompts import start_token_id
from train_small.eval.reference import reference_loss
from train_small.eval.tasks import CORE_TASKS, MC, TaskSpec, builtin_spec, dclm_departures


@pytest.fixture(scope="module")
def sp_model(tmp_path_factory) -> Path:
    """Our curation tokenizer (Llama-style ids: unk 0, <s> 1, </s> 2), trained on a little text."""
    return Path(train_curation_tokenizer(tmp_path_factory.mktemp("sp")))


class FirstTokens(torch.nn.Module):
    """A real causal model (embedding + GRU + head) that records the first token of every row it scores."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.emb = torch.nn.Embedding(vocab, 16)
        self.rnn = torch.nn.GRU(16, 16, batch_first=True)
        self.head = torch.nn.Linear(16, vocab)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
        self.max_seq_len = 256
        self.seen: list[int] = []

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        self.seen += idx[:, 0].tolist()
        return self.head(self.rnn(self.emb(idx))[0])


def _task(tmp_path: Path) -> TaskSpec:
    rows = [{"query": "The queen stayed in the", "choices": ["tower", "gate"], "gold": 0},
            {"query": "The guards let him", "choices": ["in", "out"], "gold": 0}]
    path = tmp_path / "mini.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return TaskSpec("mini", str(path), MC)


@pytest.mark.parametrize("configured", [False, True])
def test_bos_is_prepended_where_the_tokenizer_config_asks_for_it(sp_model: Path, tmp_path: Path,
                                                                 configured: bool) -> None:
    folder = tmp_path / "tok"
    folder.mkdir()
    model_path = folder / "tokenizer.model"
    shutil.copy(sp_model, model_path)
    if configured:  # what a Hugging Face Llama tokenizer folder holds beside its tokenizer.model
        (folder / "tokenizer_config.json").write_text(json.dumps({"add_bos_token": True, "bos_token": "<s>"}))
    tok = SentencePieceTokenizer(str(model_path))
    assert (tok.bos_id, tok.eos_id) == (1, 2)
    assert tok.sp.id_to_piece(1) == "<s>"
    want = tok.bos_id if configured else tok.eos_id
    assert start_token_id(tok) == want
    model = FirstTokens(tok.vocab_size)
    ev = evaluate(model, tok, tmp_path, [_task(tmp_path)])
    assert model.seen and set(model.seen) == {want}  # every request of the few-shot harness
    assert ev["settings"]["start_token_id"] == want
    model.seen.clear()
    ref = reference_loss(model, tok, {"d": [TEXT[:300], TEXT[300:700]]})
    assert set(model.seen[:2]) == {want} and ref["start_token_id"] == want  # every document's first window


def test_published_checkpoints_start_from_bos_and_overrides_apply(sp_model: Path) -> None:
    tok = SentencePieceTokenizer(str(sp_model))
    assert start_token_id(tok) == tok.eos_id  # our proxies: trained on EOS-separated documents
    assert start_token_id(tok, published=True) == tok.bos_id  # a published OpenELM: Llama's <s>
    assert start_token_id(tok, "bos") == tok.bos_id and start_token_id(tok, "eos") == tok.eos_id
    assert start_token_id(tok, "none") is None
    with pytest.raises(ValueError):
        start_token_id(tok, "begin")


def _task_result(label: str, departures: list[str]) -> dict:
    return {"accuracy": 0.5, "centered_accuracy": 0.1, "prob_correct": 0.5, "prob_correct_centered": 0.0,
            "gold_logprob_per_byte": -1.0, "category": "x", "dclm_departures": departures}


def test_core_is_dclm_core_only_without_departures() -> None:
    full = {t: _task_result(t, []) for t in CORE_TASKS}
    agg = aggregate(full)
    assert agg["core_is_full_dclm_core"] is True and agg["core"] == pytest.approx(0.1)
    assert agg["core_departures"] == {}
    assert agg["core_prob"] == pytest.approx(0.0)
    full["piqa"] = _task_result("piqa", ["shots: 0 instead of DCLM's 10"])
    agg = aggregate(full)
    assert agg["core_is_full_dclm_core"] is False and agg["core"] is None
    assert agg["core_departures"] == {"piqa": ["shots: 0 instead of DCLM's 10"]}
    assert agg["core_partial"] == pytest.approx(0.1)


def test_departures_name_shots_subsets_skips_and_files() -> None:
    piqa = builtin_spec("piqa")
    assert dclm_departures(piqa, n=100, n_total=100, n_skipped=0) == []
    from dataclasses import replace

    got = dclm_departures(replace(piqa, num_fewshot=0), n=50, n_total=100, n_skipped=3)
    assert [g.split(":")[0] for g in got] == ["shots", "skipped", "subset"]
    assert dclm_departures(builtin_spec("hellaswag"), 1000, 1000, 0)[0].startswith("file: OLMES")
    assert dclm_departures(replace(piqa, path="/elsewhere/piqa.jsonl"), 10, 10, 0)[0].startswith("file:")
    # all examples evaluated except the skipped ones: skipped, not a subset
    assert [g.split(":")[0] for g in dclm_departures(piqa, 97, 100, 3)] == ["skipped"]


def test_evaluate_reports_departures_of_a_subset_with_other_shots(tmp_path: Path) -> None:
    from eval_tiny_models import CharTok, TinyCausal

    eval_dir = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "eval"
    if not eval_dir.exists():
        pytest.skip("shared eval data absent")
    ev = evaluate(TinyCausal(), CharTok(), eval_dir, ["copa"], max_examples=10, num_fewshot=2)
    dep = ev["core_departures"]["copa"]
    assert any(d.startswith("shots: 2") for d in dep) and any(d.startswith("subset: 10 of") for d in dep)
    assert ev["core_is_full_dclm_core"] is False and ev["core"] is None
