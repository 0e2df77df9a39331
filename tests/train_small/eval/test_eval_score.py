"""score(): a real token stream (sentencepiece + build_token_stream on Ray), the tiny recipe, result JSON."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SHARED = ROOT / ".." / "shared" / "data"
EVAL_DIR = SHARED / "eval"
TEXT_DIR = SHARED / "corpora" / "text"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (EVAL_DIR.exists() and TEXT_DIR.exists()), reason="shared data absent"),
]


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> Path:
    import pyarrow.parquet as pq

    from curation.schema import docs_table
    from curation.tokens.build import build_token_stream
    from curation.tokens.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("score")
    texts = [p.read_text(encoding="utf-8", errors="ignore") for p in sorted(TEXT_DIR.rglob("*.txt"))]
    (root / "run" / "data").mkdir(parents=True)
    pq.write_table(docs_table([str(i) for i in range(len(texts))], texts, "text"), root / "run/data/p0.parquet")
    tok = train_tokenizer([str(root / "run" / "data")], str(root / "tok"), vocab_size=512)
    build_token_stream([str(root / "run")], str(root / "tokens"), tok, seq_len=64, num_workers=1)
    return root


def _score(stream: Path, out: str, seed: int):
    from train_small.eval import score

    return score(
        stream / "tokens",
        "tiny",
        stream / out,
        seed=seed,
        eval_dir=EVAL_DIR,
        tasks="copa,winogrande,lambada_openai",
        max_examples=16,
        num_fewshot=0,
        heldout={"wiki": str(TEXT_DIR / "wikitext-103-raw")},
        reference=[f"books={TEXT_DIR / 'pg19'}"],
        max_heldout_tokens=20_000,
        extra={"mix": "test"},
    )


def test_score_writes_complete_result_and_is_deterministic(stream):
    a = _score(stream, "a", seed=0)
    on_disk = json.loads((stream / "a" / "result.json").read_text())
    assert on_disk["settings_key"] == a["settings_key"]
    manifest = (stream / "tokens" / "manifest.json").read_bytes()
    assert a["data_manifest_sha256"] == hashlib.sha256(manifest).hexdigest()
    assert a["recipe_name"] == "tiny" and a["recipe"]["seed"] == 0 and a["seed"] == 0
    assert a["git_commit"] is None or len(a["git_commit"]) == 40
    assert a["finished"] and a["train"]["step"] == a["train"]["total_steps"]
    assert set(a["tasks"]) == {"copa", "winogrande", "lambada_openai"}
    for t in a["tasks"].values():
        assert t["n"] == 16 and 0.0 <= t["accuracy"] <= 1.0 and 0.0 <= t["prob_correct"] <= 1.0
    # three CORE tasks of 22: reported as partial, never as CORE
    assert a["core"] is None and not a["core_is_full_dclm_core"] and len(a["core_missing"]) == 19
    assert a["core_partial"] == pytest.approx(sum(t["centered_accuracy"] for t in a["tasks"].values()) / 3)
    assert a["eval_settings"]["precision"] == "fp32" == a["heldout"]["precision"] == a["reference"]["precision"]
    books = a["reference"]["domains"]["books"]
    assert books["docs"] >= 1 and 0 < books["bits_per_byte"] < 8 and a["arch"] == "openelm"
    wiki = a["heldout"]["domains"]["wiki"]
    assert 0.0 < wiki["loss"] < 7.0  # below log(512) = 6.24 plus slack: the model learned something
    assert a["extra"] == {"mix": "test"}

    # same seed in another folder: identical metrics; a rerun in place reuses the result
    b = _score(stream, "b", seed=0)
    assert b["heldout"] == a["heldout"] and b["tasks"]["copa"] == {**a["tasks"]["copa"], "seconds": b["tasks"][
        "copa"]["seconds"]}  # fmt: skip
    mtime = (stream / "a" / "result.json").stat().st_mtime_ns
    again = _score(stream, "a", seed=0)
    assert (stream / "a" / "result.json").stat().st_mtime_ns == mtime and again["settings_key"] == a["settings_key"]

    # another seed trains another model
    c = _score(stream, "c", seed=1)
    assert c["heldout"]["domains"]["wiki"]["loss"] != wiki["loss"]


def test_score_cli_default_heldout_is_fresh_clean_prose(stream):
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("score_cli_under_test", ROOT / "pipelines" / "score.py")
    cli = importlib.util.module_from_spec(spec)
    sys.modules["score_cli_under_test"] = cli
    spec.loader.exec_module(cli)
    out = stream / "cli"
    assert cli.run(["--data", str(stream / "tokens"), "--out", str(out), "--max-steps", "3"]) == 0
    res = json.loads((out / "result.json").read_text())
    dom = res["heldout"]["domains"]["demo_clean"]
    assert dom["docs"] == cli.DEFAULT_HELDOUT_DOCS and dom["tokens"] > 10_000
    assert res["train"]["step"] == 3 and "tasks" not in res  # no --eval-dir: no tasks
    first = (out / "heldout_default" / "demo_clean.jsonl").read_bytes()
    assert cli.default_heldout(str(stream / "cli2")) and (stream / "cli2" / "heldout_default" / "demo_clean.jsonl"
                                                          ).read_bytes() == first  # fmt: skip
