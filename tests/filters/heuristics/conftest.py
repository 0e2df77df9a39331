"""Shared inputs for the heuristic-filter tests: real samples, seeded synthetic pages,
the demo pool (when demopool/pool.py exists), and datatrove with a whitespace tokenizer."""

from __future__ import annotations

import importlib
import inspect
import json

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
    """Seeded pages from a fixed vocabulary: never depends on ../shared/data."""
    return synthetic_docs(800, seed=7)


@pytest.fixture(scope="session")
def synthetic_real(real_docs) -> pa.Table:  # noqa: ANN001
    """Seeded pages built from the sentences of the real samples (skips without them)."""
    return synthetic_docs(800, seed=7, seed_texts=real_docs.column("text").to_pylist()[:60])


def _demo_pool() -> pa.Table | None:
    """The demo pool of demopool/pool.py, if that module exists and can build one in memory."""
    try:
        demo = importlib.import_module("demopool")
    except ImportError:
        return None
    if hasattr(demo, "make_doc"):  # demopool/pool.py: every document is a pure function of (seed, index)
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
        pytest.skip("demopool/pool.py does not provide an in-memory demo pool")
    return table


@pytest.fixture(scope="session", params=["real", "synthetic-real", "synthetic", "demo"])
def corpus(request) -> pa.Table:  # noqa: ANN001
    """Every parity corpus; only the ones made from ../shared/data skip without it."""
    name = {"real": "real_docs", "synthetic-real": "synthetic_real", "synthetic": "synthetic", "demo": "demo_pool"}
    return request.getfixturevalue(name[request.param])


def whitespace_tokenizer():  # noqa: ANN201
    """A datatrove WordTokenizer whose words are whitespace tokens (``str.split``, what our
    stages and DCLM use; datatrove's own word tokenizers all run spaCy, which counts
    punctuation as words) and whose sentences are datatrove's own regex splitter (its
    ``WhitespaceTokenizer.sent_tokenize``), so that parity tests compare the rules on the
    same words, and our sentence counting against datatrove's splitting."""
    pytest.importorskip("regex")
    from datatrove.utils.word_tokenizers import WhitespaceTokenizer as DatatroveWhitespace
    from datatrove.utils.word_tokenizers import WordTokenizer

    class WhitespaceWords(WordTokenizer):
        def __init__(self) -> None:
            super().__init__("en")
            self._sentences = DatatroveWhitespace()  # its regex needs no spaCy; its words would

        def word_tokenize(self, text: str) -> list[str]:
            return text.split()

        def sent_tokenize(self, text: str) -> list[str]:
            return self._sentences.sent_tokenize(text)

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            return self._sentences.span_tokenize(text)

    return WhitespaceWords()
