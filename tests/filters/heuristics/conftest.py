"""Shared inputs for the heuristic-filter tests: real samples, seeded synthetic pages,
the demo pool (when curation/demo.py exists), and datatrove with a whitespace tokenizer."""

from __future__ import annotations

import importlib
import inspect
import json
import re

import pyarrow as pa
import pytest

from curation.schema import docs_table
from tests.filters.heuristics.realdata import available, load_real_docs
from tests.filters.heuristics.synthetic import synthetic_docs


@pytest.fixture(scope="session")
def real_docs() -> pa.Table:
    if not available():
        pytest.skip("shared/data samples are absent")
    return load_real_docs()


@pytest.fixture(scope="session")
def synthetic() -> pa.Table:
    seed_texts = load_real_docs().column("text").to_pylist()[:60] if available() else None
    return synthetic_docs(800, seed=7, seed_texts=seed_texts)


def _demo_pool() -> pa.Table | None:
    """The demo pool of curation/demo.py, if that module exists and can build one in memory."""
    try:
        demo = importlib.import_module("curation.demo")
    except ImportError:
        return None
    if hasattr(demo, "make_doc"):  # curation/demo.py: every document is a pure function of (seed, index)
        n = 1000
        docs = [demo.make_doc(0, i, n) for i in range(n)]
        meta = [json.dumps({"category": d.category, "lang": d.lang}) for d in docs]
        return docs_table([f"demo/{i}" for i in range(n)], [d.text for d in docs], "demo", None, meta)
    for fname in ("demo_docs", "make_demo_docs", "demo_table", "generate_docs"):
        fn = getattr(demo, fname, None)
        if fn is None:
            continue
        params = inspect.signature(fn).parameters
        kwargs = {k: v for k, v in (("n", 2000), ("n_docs", 2000), ("seed", 0)) if k in params}
        try:
            table = fn(**kwargs)
        except TypeError:
            continue
        if isinstance(table, pa.Table) and "text" in table.column_names:
            return table
    return None


@pytest.fixture(scope="session")
def demo_pool() -> pa.Table:
    table = _demo_pool()
    if table is None:
        pytest.skip("curation/demo.py does not provide an in-memory demo pool")
    return table


@pytest.fixture(scope="session", params=["real", "synthetic", "demo"])
def corpus(request, real_docs, synthetic) -> pa.Table:  # noqa: ANN001
    if request.param == "real":
        return real_docs
    if request.param == "synthetic":
        return synthetic
    return request.getfixturevalue("demo_pool")


# C4 sentence boundary, the same rule as filters.heuristics.c4.SENTENCE_BOUNDARY_RE
# (RE2's \s is ASCII whitespace: spelled out here for Python's re).
_BOUNDARY = re.compile("[.!?\u2026]+[\"'\u2019\u201d)\\]]*[\t\n\f\r ]+\\S")


def whitespace_tokenizer():  # noqa: ANN201
    """A datatrove WordTokenizer that splits words on whitespace (str.split) and
    sentences at the boundaries our C4 stage counts, so that parity tests compare
    the rules, not spaCy's tokenisation (which is not installed here, and which
    counts punctuation as words)."""
    pytest.importorskip("regex")
    from datatrove.utils.word_tokenizers import WordTokenizer

    class WhitespaceTokenizer(WordTokenizer):
        def word_tokenize(self, text: str) -> list[str]:
            return text.split()

        def sent_tokenize(self, text: str) -> list[str]:
            return [text[a:b] for a, b in self.span_tokenize(text)]

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            ends = [m.end() - 1 for m in _BOUNDARY.finditer(text)]
            starts = [0] + ends
            return list(zip(starts, ends + [len(text)]))

    return WhitespaceTokenizer("en")
