"""Reference domains of an ablation: a quality classifier trained on a reference domain's files is refused,
non-English and pool-overlapping reference documents are dropped and counted."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from demopool import clean_prose, non_english_page
from filters.quality.synthetic import crawl_junk
from filters.quality.train import train_classifier
from pipelines.references import check_classifier_overlap, clean_references


def _jsonl(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def _prose(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [clean_prose(rng, rng.randint(120, 300)) for _ in range(n)]


def test_classifier_trained_on_a_reference_file_is_refused_with_both_named(tmp_path: Path) -> None:
    books = _jsonl(tmp_path / "books.jsonl", _prose(80, 1))
    wiki = _jsonl(tmp_path / "wiki.jsonl", _prose(80, 2))
    neg = pa.array(crawl_junk(80, seed=3))
    model = str(tmp_path / "q.bin")
    train_classifier([str(books)], neg, model)
    # positives = books; scoring on wiki is fine, and the check says what it compared
    ok = check_classifier_overlap(model, {"wiki": str(wiki)})
    assert ok["checked"] is True and ok["positives"] == [str(books)]
    with pytest.raises(ValueError) as e:
        check_classifier_overlap(model, {"wiki": str(wiki), "books": str(books)})
    msg = str(e.value)
    assert model in msg and str(books) in msg and "'books'" in msg
    # the same content under another name is the same file
    copy = tmp_path / "elsewhere" / "renamed.jsonl"
    copy.parent.mkdir()
    copy.write_bytes(books.read_bytes())
    with pytest.raises(ValueError, match="renamed.jsonl"):
        check_classifier_overlap(model, {"b2": str(copy.parent)})


def test_classifier_without_metadata_is_reported_unchecked(tmp_path: Path) -> None:
    (tmp_path / "m.bin").write_bytes(b"not a model")
    assert check_classifier_overlap(str(tmp_path / "m.bin"), {"x": str(tmp_path)})["checked"] is False


def test_reference_documents_in_another_language_or_in_the_pool_are_dropped_and_counted(tmp_path: Path) -> None:
    english = _prose(30, 5)
    rng = random.Random(9)
    foreign = [non_english_page(rng)[0] * 3 for _ in range(6)]
    ref_file = _jsonl(tmp_path / "ref.jsonl", english + foreign)
    # the pool holds a copy of 4 reference documents, embedded in other text
    pool = tmp_path / "pool" / "data"
    pool.mkdir(parents=True)
    leaked = [english[i] for i in (0, 7, 11, 29)]
    pool_texts = _prose(50, 6) + [f"Intro line.\n{x}\nOutro." for x in leaked]
    pool_texts.append("Quote: " + " ".join(english[3].split()[40:52]) + " ...")  # 12 words: not a 13-gram
    pq.write_table(pa.table({"id": [str(i) for i in range(len(pool_texts))], "text": pool_texts}),
                   pool / "part.parquet")
    files, report = clean_references({"web": str(ref_file)}, [str(pool)], str(tmp_path / "out"))
    d = report["domains"]["web"]
    assert d["documents"] == 36
    assert d["dropped"] == {"not_english": 6, "pool_overlap": 4}
    kept = pq.read_table(files["web"]).column("text").to_pylist()
    assert len(kept) == d["kept"] == 26
    assert not set(kept) & set(leaked + foreign)
    assert english[3] in kept and report["n"] == 13
    # a rerun with the same inputs reuses the result; a changed pool recomputes
    again = clean_references({"web": str(ref_file)}, [str(pool)], str(tmp_path / "out"))
    assert again == (files, report)
