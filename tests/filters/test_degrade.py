"""Known-answer degradations: each changes what it says and nothing else, deterministically by seed."""

from __future__ import annotations

import random
import re

import pytest

from curation.schema import docs_table
from demopool import BOILERPLATE_LINES, clean_prose
from filters.degrade import (
    KINDS,
    Degrade,
    char_noise,
    degrade_text,
    foreign_text,
    insert_boilerplate,
    near_duplicate_spam,
    parse_degrade,
    selected,
    shuffle_words,
)


def _doc(i: int) -> str:
    rng = random.Random(i)
    return "\n\n".join(clean_prose(rng, rng.randint(80, 300)) for _ in range(rng.randint(1, 4)))


DOCS = [_doc(i) for i in range(60)]


def _sentences(text: str) -> list[list[str]]:
    """Per line, per sentence, the sorted words without the final punctuation, and that punctuation (the
    multiset a shuffle must keep, and the sentence end it keeps in place)."""
    out = []
    for line in text.split("\n"):
        for j, piece in enumerate(re.split(r"((?<=[.!?])\s+)", line)):
            if j % 2 == 0:
                end = re.search(r"[.!?]+$", piece)
                body = piece[: end.start()] if end else piece
                out.append((sorted(body.split()), end.group() if end else ""))
    return out


def _skeleton(text: str) -> list[str]:
    return re.findall(r"\s+", text)


@pytest.mark.parametrize("doc", DOCS[:20])
def test_shuffle_keeps_each_sentences_words_and_the_layout(doc: str) -> None:
    out = shuffle_words(doc, random.Random(7))
    assert out != doc
    assert _sentences(out) == _sentences(doc)  # same words in every sentence
    assert _skeleton(out) == _skeleton(doc)  # whitespace and line breaks where they were
    assert out.count("\n") == doc.count("\n")


def test_shuffle_changes_word_order_in_most_long_sentences() -> None:
    doc = DOCS[0]
    out = shuffle_words(doc, random.Random(1))
    pairs = [(a, b) for a, b in zip(re.split(r"(?<=[.!?])\s+", doc), re.split(r"(?<=[.!?])\s+", out))
             if len(a.split()) >= 6]
    assert pairs and sum(a != b for a, b in pairs) / len(pairs) > 0.9


@pytest.mark.parametrize("doc", DOCS[:20])
def test_boilerplate_only_adds_lines(doc: str) -> None:
    out, inserted = insert_boilerplate(doc, random.Random(3))
    lines = out.split("\n")
    kept = [x for i, x in enumerate(lines) if i not in set(inserted)]
    assert kept == doc.split("\n")  # every original line, in order, unchanged
    assert len(inserted) >= 5  # a header and a footer block at least
    vocab = set(BOILERPLATE_LINES["nav"]) | set(BOILERPLATE_LINES["cookie"])
    footer_like = re.compile("|".join(re.escape(f).replace(r"\{year\}", r"\d+").replace(r"\{site\}", r"\S+")
                                      .replace(r"\{num\}", r"\d+") for f in BOILERPLATE_LINES["footer"]))
    assert all(lines[i] in vocab or footer_like.fullmatch(lines[i]) for i in inserted)


def test_spam_replaces_the_document_with_a_near_duplicate_of_a_template() -> None:
    templates = [f"buy cheap pills now order today template {k} " * 5 for k in range(4)]
    outs = [near_duplicate_spam(DOCS[i], random.Random(i), templates) for i in range(20)]
    for out, doc in zip(outs, DOCS):
        assert out not in templates  # edited, not a copy
        best = max(templates, key=lambda t: len(set(t.split()) & set(out.split())))
        a, b = best.split(), out.split()
        assert abs(len(a) - len(b)) <= max(2, len(a) // 20)  # a near duplicate: few words changed
        assert not set(doc.split()) <= set(out.split())  # nothing of the original remains as a whole
    assert len(set(outs)) > 15  # near-duplicates, not one page


def test_foreign_text_is_another_language_and_at_least_as_long() -> None:
    from filters.langid import LanguageID

    lid = LanguageID()
    lid.setup()
    outs = [foreign_text(d, random.Random(i)) for i, d in enumerate(DOCS[:15])]
    for out, doc in zip(outs, DOCS):
        assert len(out.encode()) >= len(doc.encode())
    t = lid(docs_table([f"f{i}" for i in range(len(outs))], outs, "x")).kept
    langs = t.column("lang").to_pylist() if "lang" in t.column_names else []
    # the English language ID drops them (or labels them as other languages)
    assert t.num_rows == 0 or all(x != "en" for x in langs)


@pytest.mark.parametrize("rate", [0.02, 0.05, 0.2])
def test_char_noise_changes_about_rate_of_the_letters_and_nothing_else(rate: float) -> None:
    doc = "\n".join(DOCS[:5])
    out = char_noise(doc, random.Random(11), rate)
    assert len(out) == len(doc)
    letters = [i for i, c in enumerate(doc) if c.isascii() and c.isalpha()]
    is_letter = set(letters)
    assert all(out[i] == doc[i] for i in range(len(doc)) if i not in is_letter)  # non-letters untouched
    assert all(out[i].isalpha() for i in letters)
    changed = sum(out[i] != doc[i] for i in letters) / len(letters)
    assert 0.6 * rate < changed < 1.6 * rate


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_by_seed_and_document(kind: str) -> None:
    a = degrade_text(kind, DOCS[3], random.Random("x"), seed=1)
    b = degrade_text(kind, DOCS[3], random.Random("x"), seed=1)
    c = degrade_text(kind, DOCS[3], random.Random("y"), seed=1)
    assert a == b and a != DOCS[3] and a != c


def _table(n: int = 400):
    return docs_table([f"doc/{i}" for i in range(n)], [DOCS[i % len(DOCS)] for i in range(n)], "clean")


@pytest.mark.parametrize("kind", KINDS)
def test_the_stage_degrades_the_selected_fraction_and_leaves_the_rest_byte_identical(kind: str) -> None:
    table = _table()
    stage = Degrade(kind, 0.25, seed=5)
    stage.setup()
    res = stage(table)
    assert res.kept.num_rows == table.num_rows and res.n_dropped == 0
    marks = res.kept.column("degraded").to_pylist()
    ids, before, after = (table.column("id").to_pylist(), table.column("text").to_pylist(),
                          res.kept.column("text").to_pylist())
    for i, m, x, y in zip(ids, marks, before, after):
        assert (m == kind) == selected(i, kind, 0.25, 5)
        if m is None:
            assert x == y  # untouched documents are byte-identical
        else:
            assert x != y
    frac = sum(m is not None for m in marks) / len(marks)
    assert 0.18 < frac < 0.32
    # the same stage on a different batching gives the same rows
    halves = [stage(table.slice(0, 150)).kept, stage(table.slice(150)).kept]
    assert [t for h in halves for t in h.column("text").to_pylist()] == after


def test_another_seed_selects_other_documents() -> None:
    table = _table()
    a = Degrade("charnoise", 0.25, seed=1)(table).kept.column("degraded").to_pylist()
    b = Degrade("charnoise", 0.25, seed=2)(table).kept.column("degraded").to_pylist()
    assert a != b


@pytest.mark.parametrize("value,kind,frac", [("shuffle:0.25", "shuffle", 0.25), ("spam:10%", "spam", 0.10),
                                             ("foreign:1", "foreign", 1.0)])
def test_parse_degrade(value: str, kind: str, frac: float) -> None:
    spec = parse_degrade(value)
    assert (spec.kind, spec.fraction) == (kind, pytest.approx(frac))


@pytest.mark.parametrize("value", ["shuffle", "nope:0.2", "shuffle:0", "shuffle:1.5", "shuffle:x"])
def test_parse_degrade_rejects_bad_specs(value: str) -> None:
    with pytest.raises(ValueError):
        parse_degrade(value)
