"""The trainer on CPU with the tiny recipe: learning, determinism, exact resume, logs, checkpoints, CLI."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from train_small.model import OpenELM, load_from_checkpoint
from train_small.recipes import RECIPES, Recipe, get_recipe
from train_small.train import _param_groups, build_parser, main, train


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from intra-op threads; on a shared 2-core machine they only oversubscribe."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _losses(out_dir) -> dict[int, float]:
    rows = [json.loads(ln) for ln in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["total_loss"] for r in rows}


def test_tiny_recipe_learns_and_writes_outputs(learnable_stream, tmp_path):
    out = tmp_path / "run"
    m = train("tiny", learnable_stream, out, device="cpu")
    losses = _losses(out)
    assert m["finished"] and m["step"] == m["total_steps"] == 40 == len(losses)
    assert losses[1] > 0.8 * math.log(512)  # starts near uniform over the vocabulary
    assert m["loss"] < 1.0 < losses[1] / 4  # ... and learns the progressions
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    for key in ("loss", "z_loss", "total_loss", "grad_norm", "lr", "tokens", "tokens_per_s", "mfu", "peak_mem_gb"):
        assert key in row
    assert row["tokens"] == 40 * 8 * 64 and row["mfu"] is None  # no peak FLOP/s on CPU
    assert row["lr"] == pytest.approx(0.1 * get_recipe("tiny").lr, rel=0.02)  # cosine ends at 10% of peak
    meta = json.loads((out / "run.json").read_text())
    assert len(meta["data_manifest_sha256"]) == 64 and "git_commit" in meta and "6 * N_matmul" in meta["mfu_formula"]
    assert meta["recipe"]["name"] == "tiny" and meta["model_config"]["vocab_size"] == 512
    assert list((out / "tb").glob("events.out.tfevents.*"))
    # Checkpoints load with weights_only=True and rebuild the same model.
    state = torch.load(out / "model.pt", weights_only=True)
    assert state["step"] == 40 and state["data_position"] == 40 * 8
    model, cfg = load_from_checkpoint(m["checkpoint"])
    idx = torch.randint(1, 65, (2, 64))
    ref = OpenELM(cfg)
    ref.load_state_dict(state["model"])
    torch.testing.assert_close(model(idx), ref(idx), rtol=0, atol=0)
    assert len(list((out / "ckpt").glob("step_*.pt"))) == 2  # step 20 and 40 kept


def test_same_seed_same_losses_other_seed_differs(learnable_stream, tmp_path):
    r = dataclasses.replace(get_recipe("tiny"), total_tokens=10 * 8 * 64)
    train(r, learnable_stream, tmp_path / "a", device="cpu", tensorboard=False)
    train(r, learnable_stream, tmp_path / "b", device="cpu", tensorboard=False)
    train(dataclasses.replace(r, seed=1), learnable_stream, tmp_path / "c", device="cpu", tensorboard=False)
    a, b, c = (_losses(tmp_path / k) for k in "abc")
    assert a == b
    assert a != c


def test_resume_reproduces_uninterrupted_run(learnable_stream, tmp_path):
    r = dataclasses.replace(get_recipe("tiny"), total_tokens=12 * 8 * 64, ckpt_every=5)
    full = train(r, learnable_stream, tmp_path / "full", device="cpu", tensorboard=False)
    part = tmp_path / "part"
    first = train(r, learnable_stream, part, max_steps=7, device="cpu", tensorboard=False)
    assert first["step"] == 7 and not first["finished"]
    # Simulate a crash after step 7's checkpoint was *not* written: drop it, so resume starts from step 5
    # and re-runs steps 6-7 (their log lines are replaced, not duplicated).
    (part / "ckpt" / "step_0000007.pt").unlink()
    rest = train(r, learnable_stream, part, device="cpu", tensorboard=False)
    assert rest["finished"] and rest["step"] == 12
    assert _losses(part) == _losses(tmp_path / "full")
    assert rest["total_loss"] == full["total_loss"]
    # Once finished, a resumed call trains nothing and reports the final state.
    again = train(r, learnable_stream, part, device="cpu", tensorboard=False)
    assert again["step"] == 12 and again["total_loss"] == full["total_loss"]


def test_resume_refuses_another_recipe(learnable_stream, tmp_path):
    r = dataclasses.replace(get_recipe("tiny"), total_tokens=4 * 8 * 64)
    train(r, learnable_stream, tmp_path / "x", max_steps=2, device="cpu", tensorboard=False)
    with pytest.raises(ValueError, match="different recipe"):
        train(dataclasses.replace(r, lr=1e-3), learnable_stream, tmp_path / "x", device="cpu", tensorboard=False)
    out = train(dataclasses.replace(r, lr=1e-3), learnable_stream, tmp_path / "x", resume=False, device="cpu",
                tensorboard=False)
    assert out["finished"] and len(_losses(tmp_path / "x")) == 4


def test_gradient_accumulation_matches_one_big_batch(learnable_stream, tmp_path):
    """global_batch 8 as 2 x 4 or 1 x 8: the same optimizer steps up to float summation order."""
    base = dataclasses.replace(get_recipe("tiny"), total_tokens=3 * 8 * 64)
    train(dataclasses.replace(base, micro_batch=4), learnable_stream, tmp_path / "acc", device="cpu",
          tensorboard=False)
    train(dataclasses.replace(base, micro_batch=8), learnable_stream, tmp_path / "one", device="cpu",
          tensorboard=False)
    a, b = _losses(tmp_path / "acc"), _losses(tmp_path / "one")
    assert a.keys() == b.keys()
    assert all(a[k] == pytest.approx(b[k], rel=1e-4) for k in a)


def test_lr_schedule_warmup_then_cosine_to_ten_percent():
    r = Recipe(name="t", model="cpu-tiny", seq_len=8, global_batch=1, micro_batch=1, lr=1.0, warmup_frac=0.1)
    total = 100
    lrs = [r.lr_at(s, total) for s in range(total)]
    assert lrs[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])  # linear warmup to the peak
    assert max(lrs) == pytest.approx(1.0)
    assert all(x >= y for x, y in zip(lrs[10:], lrs[11:]))  # monotone decay
    assert r.lr_at(total, total) == pytest.approx(0.1)
    assert lrs[55] == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 45 / 90)))


def test_recipes_budget_and_optimizer_groups():
    from train_small.configs import count_parameters, get_config

    for name, fn in RECIPES.items():
        r = fn()
        assert (r.betas, r.eps, r.weight_decay, r.grad_clip, r.z_loss, r.min_lr_ratio) == (
            (0.9, 0.95), 1e-8, 0.1, 1.0, 1e-4, 0.1), name
        n = count_parameters(get_config(r.model))
        if r.total_tokens is None:  # DCLM 1x: 20 tokens per parameter
            assert r.token_budget(n) == 20 * n
            assert r.total_steps(n) * r.tokens_per_step >= 20 * n
    model = OpenELM(get_config("cpu-tiny"))
    decay, no_decay = _param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert any(p is model.token_embeddings.weight for p in decay["params"])
    assert {id(p) for p in no_decay["params"]} == {id(p) for n, p in model.named_parameters() if "norm" in n}
    with pytest.raises(ValueError):
        Recipe(name="bad", model="cpu-tiny", seq_len=8, global_batch=6, micro_batch=4)


def test_cli_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert all(a.help for a in build_parser()._actions)
    assert "--recipe" in capsys.readouterr().out


def test_cli_runs(learnable_stream, tmp_path, capsys):
    rc = main(["--recipe", "tiny", "--data", str(learnable_stream), "--out", str(tmp_path / "cli"), "--max-steps",
               "3", "--device", "cpu", "--no-tensorboard", "--total-tokens", str(6 * 8 * 64)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["step"] == 3 and out["total_steps"] == 6


@pytest.mark.slow
def test_torch_compile_matches_eager(learnable_stream, tmp_path):
    """The optional torch.compile path (inductor; needs a C++ compiler on CPU) trains to the same losses."""
    r = dataclasses.replace(get_recipe("tiny"), total_tokens=4 * 8 * 64)
    train(r, learnable_stream, tmp_path / "eager", device="cpu", tensorboard=False)
    train(dataclasses.replace(r, compile=True), learnable_stream, tmp_path / "comp", device="cpu", tensorboard=False)
    a, b = _losses(tmp_path / "eager"), _losses(tmp_path / "comp")
    assert all(a[k] == pytest.approx(b[k], rel=1e-3) for k in a)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_fused_path_trains_like_reference_path(learnable_stream, tmp_path):
    """On CUDA (bf16 autocast): the Triton path and the reference path give the same losses within bf16 noise."""
    r = dataclasses.replace(get_recipe("tiny"), total_tokens=20 * 8 * 64)
    fused = train(dataclasses.replace(r, use_kernels=True), learnable_stream, tmp_path / "f", device="cuda",
                  tensorboard=False)
    ref = train(dataclasses.replace(r, use_kernels=False), learnable_stream, tmp_path / "r", device="cuda",
                tensorboard=False)
    a, b = _losses(tmp_path / "f"), _losses(tmp_path / "r")
    assert a[1] == pytest.approx(b[1], rel=2e-2)
    assert fused["loss"] == pytest.approx(ref["loss"], rel=0.1, abs=0.05)
    assert fused["loss"] < 0.5 * a[1]
    meta = json.loads((tmp_path / "f" / "run.json").read_text())
    assert meta["model_config"]["use_kernels"] is True


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="the GPU test above covers the kernel path on CUDA")
def test_kernel_path_in_the_trainer_matches_reference_path_on_cpu(learnable_stream, tmp_path):
    """End to end through the trainer (accumulation, clipping, AdamW) with the Triton kernels run by Triton's
    interpreter (TRITON_INTERPRET=1, set by conftest): fp32 losses agree with the reference path. ~2.5 min."""
    import os

    assert os.environ.get("TRITON_INTERPRET") == "1"
    r = dataclasses.replace(get_recipe("tiny"), total_tokens=3 * 8 * 64)
    train(dataclasses.replace(r, use_kernels=True), learnable_stream, tmp_path / "k", device="cpu", tensorboard=False)
    train(dataclasses.replace(r, use_kernels=False), learnable_stream, tmp_path / "r", device="cpu", tensorboard=False)
    a, b = _losses(tmp_path / "k"), _losses(tmp_path / "r")
    assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], rel=1e-5) for k in a)


def test_module_entry_point_help():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "train_small", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--recipe" in out.stdout and "--data" in out.stdout


def test_recipe_learning_rates_follow_the_stated_rule():
    """OpenELM's 5.3e-3 at 2048 x 2048 tokens and width 1280, moved by sqrt(batch) and 1/width; tiny from the sweep."""
    from train_small.configs import get_config
    from train_small.recipes import scaled_lr

    assert scaled_lr(2048 * 2048, 1280) == 5.3e-3  # the anchor itself
    assert scaled_lr(4 * 2048 * 2048, 1280) == pytest.approx(2 * 5.3e-3, rel=0.05)  # 4x batch: 2x LR (2 digits)
    assert scaled_lr(2048 * 2048, 640) == pytest.approx(2 * 5.3e-3, rel=0.05)  # half the width: 2x LR
    for name in ("proxy-20m", "proxy-60m", "proxy-150m", "openelm-270m"):
        r = get_recipe(name)
        assert r.lr == scaled_lr(r.tokens_per_step, get_config(r.model).model_dim) < 5.3e-3, name
    assert get_recipe("proxy-20m").lr == 2.2e-3 and get_recipe("tiny").lr == 1e-2


def test_resume_follows_the_streams_content_not_its_manifest(learnable_stream, tmp_path):
    """A checkpoint resumes on a stream whose manifest changed but whose windows did not (content_sha256 the
    same), and is refused on a stream with other windows."""
    r = dataclasses.replace(get_recipe("tiny"), total_tokens=4 * 8 * 64)
    man = learnable_stream / "manifest.json"
    m = json.loads(man.read_text())
    man.write_text(json.dumps({**m, "content_sha256": "a" * 64, "note": "first build"}))
    first = train(r, learnable_stream, tmp_path / "x", max_steps=2, device="cpu", tensorboard=False)
    assert first["step"] == 2
    man.write_text(json.dumps({**m, "content_sha256": "a" * 64, "note": "rebuilt, other paths"}))
    assert train(r, learnable_stream, tmp_path / "x", max_steps=3, device="cpu", tensorboard=False)["step"] == 3
    assert json.loads((tmp_path / "x" / "run.json").read_text())["resumed_from_step"] == 2
    man.write_text(json.dumps({**m, "content_sha256": "b" * 64}))
    with pytest.raises(ValueError, match="different data"):
        train(r, learnable_stream, tmp_path / "x", device="cpu", tensorboard=False)
