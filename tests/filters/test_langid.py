"""Language ID on real pages, its thresholds, and the fastText model_path backend."""

from __future__ import annotations

import json
import pickle
import re

import numpy as np
import pyarrow as pa
import pytest

from curation.schema import docs_table
from filters.langid import LanguageID
from tests.filters.heuristics.realdata import CORPORA, SHARED, available, warc_pages

pytest.importorskip("py3langid")


@pytest.fixture(scope="module")
def lid() -> LanguageID:
    stage = LanguageID()
    stage.setup()
    return stage


def test_real_pages(lid):  # noqa: ANN001
    if not available():
        pytest.skip("shared/data samples are absent")
    from tests.filters.heuristics.realdata import load_real_docs

    docs = load_real_docs()
    sources = np.array(docs.column("source").to_pylist())
    langs, scores = lid.predict(docs.column("text").to_pylist())
    langs = np.array(langs)
    english = np.isin(sources, ["c4", "dolma", "pile", "openwebtext", "wikitext", "pg19"])
    kept = (langs == "en") & (scores > 0.65)
    assert kept[english].mean() >= 0.97, list(zip(langs[english], scores[english]))
    # CC pages in Chinese, Russian, German, Dutch (resiliparse sample) and Japanese (ClueWeb)
    non_en = []
    for name in ("warc/resiliparse_CC-MAIN-2020-34_warcfile.warc.gz", "edge/resiliparse_clueweb-quirk.warc.gz"):
        non_en += [t for url, t in warc_pages(CORPORA / name) if "037426.cn" not in url]  # that one is English
    l2, s2 = lid.predict(non_en)
    assert len(non_en) >= 40
    assert np.mean([(a == "en" and b > 0.65) for a, b in zip(l2, s2)]) == 0


def test_bigbench_sentences(lid):  # noqa: ANN001
    path = SHARED / "eval" / "language_understanding" / "bigbench_language_identification.jsonl"
    if not path.exists():
        pytest.skip("bigbench sample absent")
    codes = {"English": "en", "German": "de", "French": "fr", "Spanish": "es", "Italian": "it", "Dutch": "nl",
             "Portuguese": "pt", "Swedish": "sv", "Russian": "ru", "Polish": "pl", "Finnish": "fi", "Czech": "cs"}
    texts, gold = [], []
    for line in path.open(encoding="utf-8"):
        rec = json.loads(line)
        q = rec["query"]
        if "Sentence: " not in q:
            continue
        name = re.findall(r"\n([A-D])\. ([^\n]+)", q)[rec["gold"]][1]
        if name in codes:
            texts.append(q.split("Sentence: ", 1)[1].split("\nA. ")[0])
            gold.append(codes[name])
    langs, _ = lid.predict(texts)
    assert len(texts) >= 50
    assert np.mean(np.array(langs) == np.array(gold)) >= 0.9


def test_columns_reasons_and_threshold(lid):  # noqa: ANN001
    en = "The committee said on Tuesday that the new bridge will open to traffic next spring."
    de = "Der Ausschuss teilte am Dienstag mit, dass die neue Brücke im Frühjahr eröffnet wird."
    t = docs_table(["a", "b", "c"], [en, de, ""], "s")
    res = lid.process(t)
    assert res.kept.column("id").to_pylist() == ["a"]
    assert res.kept.column("lang").to_pylist() == ["en"]
    assert dict(zip(res.dropped.column("id").to_pylist(), res.dropped.column("reason").to_pylist())) == {
        "b": "lang:not_en", "c": "lang:not_en"}  # fmt: skip
    score = res.kept.column("lang_score")[0].as_py()
    assert 0.65 < score <= 1
    # the kept score must be strictly above min_score
    assert LanguageID(min_score=np.nextafter(score, 0)).process(t).kept.num_rows == 1
    assert LanguageID(min_score=score).process(t).dropped.column("reason").to_pylist()[0] == "lang:low_score"
    # annotate only
    ann = LanguageID(keep_langs=None).process(t)
    assert ann.kept.num_rows == 3 and ann.kept.column("lang").to_pylist() == ["en", "de", "und"]
    assert ann.kept.schema.field("lang_score").type == pa.float64()
    multi = LanguageID(keep_langs=("en", "de")).process(t)
    assert multi.kept.num_rows == 2 and multi.dropped.column("reason").to_pylist() == ["lang:other"]


def test_fasttext_model_path(tmp_path):  # noqa: ANN001
    fasttext = pytest.importorskip("fasttext")
    rows = []
    en = ["the cat sat on the mat", "we went to the market today", "this is a sentence in english",
          "the weather is nice and warm", "she reads books in the evening"]  # fmt: skip
    de = ["die katze sitzt auf der matte", "wir gingen heute auf den markt", "das ist ein satz auf deutsch",
          "das wetter ist schön und warm", "sie liest abends bücher"]  # fmt: skip
    for _ in range(20):
        rows += [f"__label__en {s}" for s in en] + [f"__label__de {s}" for s in de]
    train = tmp_path / "train.txt"
    train.write_text("\n".join(rows) + "\n")
    model = fasttext.train_supervised(str(train), epoch=30, lr=1.0, minn=2, maxn=4, dim=16, thread=1, seed=0)
    path = tmp_path / "lid.bin"
    model.save_model(str(path))
    stage = LanguageID(model_path=path)
    assert stage.backend == "fasttext"
    t = docs_table(["a", "b"], ["the cat went to\nthe market", "die katze ging\nauf den markt"], "s")
    res = LanguageID(model_path=path, keep_langs=None).process(t)
    assert res.kept.column("lang").to_pylist() == ["en", "de"]
    assert all(0 < s <= 1 for s in res.kept.column("lang_score").to_pylist())
    clone = pickle.loads(pickle.dumps(stage))
    assert clone._model is None and clone.model_path == stage.model_path


def test_bad_args(tmp_path):  # noqa: ANN001
    with pytest.raises(ValueError):
        LanguageID(keep_langs="en")
    with pytest.raises(ValueError):
        LanguageID(min_score=1.5)
    with pytest.raises(ValueError):
        LanguageID(backend="fasttext")
    with pytest.raises(ValueError):
        LanguageID(model_path=tmp_path / "missing.bin")
    with pytest.raises(ValueError):
        LanguageID(backend="cld3")
