"""The project's language-ID evaluation set and its scoring (used by bench/heuristics.py).

Texts: 82 real web pages from ``shared/data/corpora/warc`` and ``edge/`` (HTML reduced to
text; en, zh, ru, de, nl, ja, an), the documents of the English corpora samples (C4,
Pile, RedPajama incl. arXiv LaTeX and code, Dolma, OpenWebText) whose Spanish
StackOverflow pages are labelled ``es``, and the sentences of BIG-bench
``language_identification``: those in 40 common languages, and up to 1,500 in rare
languages no candidate supports ("rare -> en" = taken for English with score > 0.65).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import numpy as np

from tests.filters.heuristics.realdata import CORPORA, SHARED, load_real_docs, warc_pages

CODES = {"English": "en", "German": "de", "French": "fr", "Spanish": "es", "Italian": "it", "Portuguese": "pt",
         "Dutch": "nl", "Swedish": "sv", "Russian": "ru", "Polish": "pl", "Czech": "cs", "Danish": "da",
         "Finnish": "fi", "Hungarian": "hu", "Turkish": "tr", "Indonesian": "id", "Vietnamese": "vi",
         "Norwegian": "no", "Romanian": "ro", "Catalan": "ca", "Croatian": "hr", "Slovak": "sk", "Greek": "el",
         "Ukrainian": "uk", "Bulgarian": "bg", "Estonian": "et", "Latvian": "lv", "Lithuanian": "lt",
         "Slovenian": "sl", "Afrikaans": "af", "Welsh": "cy", "Irish": "ga", "Basque": "eu", "Galician": "gl",
         "Icelandic": "is", "Malay": "ms", "Swahili": "sw", "Esperanto": "eo", "Latin": "la",
         "Tagalog": "tl"}  # fmt: skip


def eval_set() -> list[tuple[str, str, str]]:
    """(text, gold language, group) for every evaluation text."""
    docs: list[tuple[str, str, str]] = []
    for path in sorted((CORPORA / "warc").glob("*.warc.gz")) + [CORPORA / "edge" / "resiliparse_clueweb-quirk.warc.gz"]:
        for url, text in warc_pages(path):
            if "clueweb" in path.name:
                gold = "ja"
            elif "sample-000" in path.name:
                gold = "en"
            elif "whirlwind" in path.name:
                gold = "an"
            elif "037426.cn" in url:
                continue  # an English page on a .cn host
            else:
                gold = "ru" if ".ru/" in url else "de" if ".ch/" in url else "nl" if ".nl/" in url else "zh"
            docs.append((text, gold, "warc"))
    real = load_real_docs()
    for t, src, i in zip(real.column("text").to_pylist(), real.column("source").to_pylist(),
                         real.column("id").to_pylist()):  # fmt: skip
        if src in ("c4", "dolma", "pile", "redpajama", "openwebtext"):
            docs.append((t, "es" if "stack_exchange" in i else "en", "english corpora"))
    rare = 0
    path = SHARED / "eval" / "language_understanding" / "bigbench_language_identification.jsonl"
    for line in path.open(encoding="utf-8"):
        rec = json.loads(line)
        q = rec["query"]
        if "Sentence: " not in q:
            continue
        sent = q.split("Sentence: ", 1)[1].split("\nA. ")[0]
        name = re.findall(r"\n([A-D])\. ([^\n]+)", q)[rec["gold"]][1]
        if name in CODES:
            docs.append((sent, CODES[name], "bigbench"))
        elif rare < 1500:
            docs.append((sent, "rare", "bigbench-rare"))
            rare += 1
    return docs


def score(docs: list[tuple[str, str, str]], langs: list[str], scores: np.ndarray) -> dict[str, float]:
    """Accuracy per group, over all labelled texts, English kept, rare languages taken for English."""
    gold = np.array([g for _, g, _ in docs])
    group = np.array([s for _, _, s in docs])
    lang = np.array(langs)
    kept_en = (lang == "en") & (np.asarray(scores) > 0.65)
    labelled = group != "bigbench-rare"
    return {
        "accuracy": float(np.mean(lang[labelled] == gold[labelled])),
        "bigbench_acc": float(np.mean(lang[group == "bigbench"] == gold[group == "bigbench"])),
        "warc_acc": float(np.mean(lang[group == "warc"] == gold[group == "warc"])),
        "english_corpora_acc": float(np.mean(lang[group == "english corpora"] == gold[group == "english corpora"])),
        "en_kept": float(np.mean(kept_en[gold == "en"])),
        "rare_kept_as_en": float(np.mean(kept_en[group == "bigbench-rare"])),
    }


def candidates() -> dict[str, Callable[[list[str]], tuple[list[str], np.ndarray]]]:
    """Every installed language-ID candidate: texts -> (languages, scores)."""
    from filters.langid import LanguageID

    out: dict[str, Callable[[list[str]], tuple[list[str], np.ndarray]]] = {}
    for name, kw in (("fasttext-lid176", {}), ("py3langid", {"backend": "py3langid"})):
        try:
            stage = LanguageID(keep_langs=None, **kw)
        except ValueError:
            continue
        out[name] = stage.predict
    try:
        from langid.langid import LanguageIdentifier, model

        ident = LanguageIdentifier.from_modelstring(model, norm_probs=True)

        def langid_py(texts: list[str]) -> tuple[list[str], np.ndarray]:
            res = [ident.classify(" ".join(t.split())) for t in texts]
            return [r[0] for r in res], np.array([r[1] for r in res])

        out["langid.py"] = langid_py
    except ImportError:
        pass
    try:
        from lingua import LanguageDetectorBuilder

        for label, low in (("lingua-high", False), ("lingua-low", True)):
            b = LanguageDetectorBuilder.from_all_languages()
            det = (b.with_low_accuracy_mode() if low else b).build()

            def run(texts: list[str], det=det) -> tuple[list[str], np.ndarray]:  # noqa: ANN001
                langs, scores = [], []
                for t in texts:
                    r = det.compute_language_confidence_values(t)
                    langs.append(r[0].language.iso_code_639_1.name.lower() if r else "und")
                    scores.append(r[0].value if r else 0.0)
                return langs, np.array(scores)

            out[label] = run
    except ImportError:
        pass
    return out
