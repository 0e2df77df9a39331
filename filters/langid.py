"""Offline language identification: adds ``lang`` and ``lang_score`` columns and,
with ``keep_langs``, drops other languages (DCLM ``detect_lang_whole_page_enricher``
+ ``language_filter``: whole page, newlines as spaces, keep English with
score > 0.65, from RefinedWeb, Penedo et al. 2023 §G.1).

Default model: **py3langid** (a maintained fork of langid.py, Lui & Baldwin 2012;
its naive-Bayes model over byte n-grams ships inside the PyPI wheel, no download).
``model_path=`` switches to a fastText language-ID model (``lid.176.bin`` /
``lid.176.ftz``, Joulin et al. 2016/2017), the model DCLM and RefinedWeb used,
read with the ``fasttext`` module this project already depends on.

Why py3langid. Candidates installed from PyPI and run on the same 2,163 texts (2.8 MB)
(``python bench/heuristics.py --langid``, CPU seconds of one process): 82 real web
pages from ``shared/data/corpora/warc`` and ``edge/`` (HTML reduced to text; en,
zh, ru, de, nl, ja, an), 211 documents of the English corpora samples (C4, Pile,
RedPajama incl. arXiv LaTeX and code, Dolma, OpenWebText) whose 70 Spanish
StackOverflow pages are labelled ``es``, and the sentences of BIG-bench
``language_identification``: 370 in 40 common languages, 1,500 in rare languages
no candidate supports ("rare -> en" = taken for English with score > 0.65).

=====================  ========  =======  ========  ========  =========  ==========  =========
model                  docs/s    MB/s     bigbench  warc      corpora    en kept     rare -> en
=====================  ========  =======  ========  ========  =========  ==========  =========
py3langid 0.4          1,228     1.59     0.968     1.000     0.919      0.931       0.4%
langid 1.1.6           137       0.18     0.946     0.988     0.934      0.942       1.5%
lingua 2.1 high acc.   67        0.09     0.946     0.988     0.924      0.931       0.1%
lingua 2.1 low acc.    240       0.31     0.914     0.988     0.924      0.936       0.3%
=====================  ========  =======  ========  ========  =========  ==========  =========

py3langid is 5-18x faster than the others, the most accurate on the labelled
sentences and on the web pages, and keeps as many English documents (the misses
are arXiv LaTeX fragments and code, for every candidate). fasttext-langdetect
was not considered because it downloads its model at run time. py3langid's
normalised probabilities are more peaked than fastText's, so the 0.65 threshold
is slightly more permissive with it; ``min_score`` is a parameter.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.stage import Mapper

logger = logging.getLogger(__name__)

BACKENDS = ("py3langid", "fasttext")


@functools.lru_cache(maxsize=4)
def _load_model(backend: str, model_path: str | None) -> Any:
    """Load a model once per process (read-only; py3langid's takes ~3 s to decompress)."""
    if backend == "py3langid":
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        model = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    else:
        import fasttext

        model = fasttext.load_model(model_path)
    logger.debug("loaded language-ID model %s %s", backend, model_path or "")
    return model


class LanguageID(Mapper):
    """Whole-page language ID: ``lang`` (ISO 639-1 where the model has it, ``und``
    for empty text) and ``lang_score`` (probability of ``lang``).

    With ``keep_langs`` (default ``("en",)``) a page is kept when its top language
    is in ``keep_langs`` and its score is > ``min_score``; reasons are
    ``lang:not_<l>`` (single kept language) / ``lang:other`` and ``lang:low_score``.
    ``keep_langs=None`` only annotates. ``max_chars`` truncates the text given to
    the model (None: the whole page, as DCLM).
    """

    name = "langid"

    def __init__(
        self,
        *,
        keep_langs: Sequence[str] | None = ("en",),
        min_score: float | None = 0.65,
        model_path: str | Path | None = None,
        backend: str | None = None,
        max_chars: int | None = None,
        name: str | None = None,
    ) -> None:
        if backend is None:
            backend = "fasttext" if model_path is not None else "py3langid"
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "fasttext" and model_path is None:
            raise ValueError("the fasttext backend needs model_path (e.g. lid.176.bin)")
        if model_path is not None and not Path(model_path).is_file():
            raise ValueError(f"model_path {model_path!r} is not a file")
        if isinstance(keep_langs, str):
            raise ValueError("keep_langs is a sequence of language codes, e.g. ('en',)")
        if min_score is not None and (not isinstance(min_score, (int, float)) or not 0 <= min_score <= 1):
            raise ValueError("min_score must be in [0, 1] or None")
        if max_chars is not None and (not isinstance(max_chars, int) or max_chars < 1):
            raise ValueError("max_chars must be a positive int or None")
        self.keep_langs = tuple(keep_langs) if keep_langs is not None else None
        self.min_score = min_score
        self.model_path = str(model_path) if model_path is not None else None
        self.backend = backend
        self.max_chars = max_chars
        if name is not None:
            self.name = name
        self._model: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_model"] = None  # models are rebuilt by setup() in each worker
        return state

    def setup(self) -> None:
        if self._model is None:
            self._model = _load_model(self.backend, self.model_path)

    def predict(self, texts: list[str]) -> tuple[list[str], np.ndarray]:
        """(language, score) for each text."""
        self.setup()
        clean = []
        for t in texts:
            t = t or ""
            if self.max_chars is not None:
                t = t[: self.max_chars]
            clean.append(" ".join(t.split()))
        langs = ["und"] * len(clean)
        scores = np.zeros(len(clean), dtype=np.float64)
        todo = [i for i, t in enumerate(clean) if t]
        if not todo:
            return langs, scores
        if self.backend == "py3langid":
            for i in todo:
                lang, score = self._model.classify(clean[i])
                langs[i], scores[i] = lang, float(score)
        else:
            labels, probs = self._model.predict([clean[i] for i in todo], k=1)
            for i, lab, pr in zip(todo, labels, probs):
                langs[i] = lab[0].removeprefix("__label__") if len(lab) else "und"
                scores[i] = float(min(pr[0], 1.0)) if len(pr) else 0.0
        return langs, scores

    def transform(self, table: pa.Table) -> tuple[pa.Table, pa.Array | None]:
        texts = table.column("text").to_pylist()
        langs, scores = self.predict(texts)
        lang_arr = pa.array(langs, pa.string())
        score_arr = pa.array(scores, pa.float64())
        out = table
        for col, arr in (("lang", lang_arr), ("lang_score", score_arr)):
            if col in out.column_names:
                out = out.set_column(out.column_names.index(col), col, arr)
            else:
                out = out.append_column(col, arr)
        if self.keep_langs is None:
            return out, None
        in_keep = pc.is_in(lang_arr, value_set=pa.array(self.keep_langs, pa.string())).to_numpy(zero_copy_only=False)
        other = "lang:not_" + self.keep_langs[0] if len(self.keep_langs) == 1 else "lang:other"
        reasons = np.where(in_keep, None, other).astype(object)
        if self.min_score is not None:
            reasons[in_keep & ~(scores > self.min_score)] = "lang:low_score"
        return out, pa.array(reasons.tolist(), pa.string())
