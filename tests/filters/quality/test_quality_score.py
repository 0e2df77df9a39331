from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import fasttext
import numpy as np
import pyarrow as pa
import pytest

from curation.schema import docs_table
from filters.quality import ModelFileError, QualityScorer, preprocess
from filters.quality.model import cached_models
from filters.quality.synthetic import clean_prose, crawl_junk


def _table(n: int = 40) -> pa.Table:
    texts = clean_prose(n // 2, seed=9) + crawl_junk(n - n // 2, seed=9) + ["", "   \n  "]
    return docs_table([f"d{i}" for i in range(len(texts))], texts, "test")


def test_scores_match_a_plain_fasttext_predict_loop(small_model: str) -> None:
    table = _table()
    result = QualityScorer(small_model).process(table)
    assert result.dropped.num_rows == 0
    kept = result.kept
    assert kept.column_names == [*table.column_names, "quality_score"]
    assert kept.schema.field("quality_score").type == pa.float32()
    scores = kept.column("quality_score").to_numpy()
    ft = fasttext.load_model(small_model)
    ref = []
    for text in table.column("text").to_pylist():
        labels, probs = ft.predict(" ".join(text.strip().splitlines()), k=2)  # DCLM's scoring normalisation
        ref.append(min(dict(zip(labels, probs))["__label__hq"], 1.0))
    np.testing.assert_allclose(scores, np.array(ref, dtype=np.float32), atol=1e-6)
    assert ((scores >= 0) & (scores <= 1)).all()
    # it separates what it was trained to separate
    n = 20
    assert scores[:n].min() > scores[n : 2 * n].max()


def test_other_label_is_the_complement_for_a_binary_model(small_model: str) -> None:
    table = _table(10)
    hq = QualityScorer(small_model).process(table).kept.column("quality_score").to_numpy()
    cc = QualityScorer(small_model, label="__label__cc", column="cc").process(table).kept.column("cc").to_numpy()
    np.testing.assert_allclose(hq + cc, 1.0, atol=2e-5)  # fastText adds 1e-5 to each probability


def test_rescoring_replaces_the_column(small_model: str) -> None:
    scorer = QualityScorer(small_model)
    once = scorer.process(_table(6)).kept
    twice = scorer.process(once).kept
    assert twice.column_names.count("quality_score") == 1
    assert twice.column("quality_score").equals(once.column("quality_score"))


def test_pickles_without_the_model_and_shares_the_process_cache(small_model: str) -> None:
    a = QualityScorer(small_model)
    a.setup()
    blob = pickle.dumps(a)
    assert len(blob) < 10_000  # the weights (tens of MB) never travel
    b = pickle.loads(blob)
    assert b._model is None
    b.setup()
    assert b._model is a._model  # one copy per process, keyed by path + sha256
    assert sum(1 for p, _ in cached_models() if p == str(Path(small_model).resolve())) == 1
    report = a.memory_report()
    assert report["rss_bytes"] > report["model_file_bytes"] > 0
    assert a.config()["model_sha256"] == json.loads(Path(small_model + ".json").read_text())["model_sha256"]


def test_missing_model_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="not found"):
        QualityScorer(tmp_path / "nope.bin")


def test_non_fasttext_file_fails_at_construction(tmp_path: Path) -> None:
    bad = tmp_path / "junk.bin"
    bad.write_bytes(b"definitely not a model" * 10)
    with pytest.raises(ModelFileError, match="not a fastText model"):
        QualityScorer(bad)
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(ModelFileError, match="corrupt"):
        QualityScorer(tmp_path / "empty.bin")


def test_truncated_model_fails_before_any_shard(small_model: str, tmp_path: Path) -> None:
    data = Path(small_model).read_bytes()
    trunc = tmp_path / "trunc.bin"
    trunc.write_bytes(data[: len(data) // 2])  # fastText itself loads this silently
    scorer = QualityScorer(trunc)  # no sidecar: the header looks fine
    with pytest.raises(ModelFileError, match="truncated"):
        scorer.validate()
    # with our metadata beside it, the sha256 check catches it at construction
    shutil.copy(small_model + ".json", str(trunc) + ".json")
    with pytest.raises(ModelFileError, match="does not match its metadata"):
        QualityScorer(trunc)


def test_unknown_label_fails_at_validation(small_model: str) -> None:
    with pytest.raises(ModelFileError, match="labels"):
        QualityScorer(small_model, label="__label__nope").validate()
    with pytest.raises(ValueError):
        QualityScorer(small_model, label="hq")


def test_lowercase_setting_comes_from_the_model_metadata(tmp_path: Path) -> None:
    from filters.quality import train_classifier

    path = str(tmp_path / "lower.bin")
    train_classifier(pa.array(clean_prose(100, 4)), pa.array(crawl_junk(100, 4)), path, lowercase=True)
    scorer = QualityScorer(path)
    assert scorer.lowercase is True
    text = "The River Gradually Shapes The Valley Floor.\nIt Changes The Climate."
    ft = fasttext.load_model(path)
    labels, probs = ft.predict(preprocess(text, lowercase=True), k=2)
    expected = dict(zip(labels, probs))["__label__hq"]
    assert scorer.score_texts([text]).to_numpy()[0] == pytest.approx(min(expected, 1.0), abs=1e-6)
