"""Small helpers for the per-rule boundary tests."""

from __future__ import annotations

from curation.schema import docs_table


def table(*texts: str, urls=None):  # noqa: ANN001, ANN201
    return docs_table([f"d{i}" for i in range(len(texts))], list(texts), "test", urls)


def reasons(stage, *texts: str, urls=None) -> list[str | None]:  # noqa: ANN001
    """The drop reason of every text (None = kept) after ``stage.process``."""
    stage.setup()
    t = table(*texts, urls=urls)
    res = stage.process(t)
    by_id = dict(zip(res.dropped.column("id").to_pylist(), res.dropped.column("reason").to_pylist()))
    return [by_id.get(i) for i in t.column("id").to_pylist()]


def kept_texts(stage, *texts: str) -> list[str]:  # noqa: ANN001
    stage.setup()
    return stage.process(table(*texts)).kept.column("text").to_pylist()


def words(n: int, word: str = "word") -> str:
    return " ".join([word] * n)
