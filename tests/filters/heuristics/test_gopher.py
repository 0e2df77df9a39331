"""Gopher quality and repetition rules at their thresholds (just at / just over)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from filters.heuristics import GopherQuality, GopherRepetition, gopher
from filters.heuristics import _arrow as A
from tests.filters.heuristics.helpers import reasons, words

OFF = dict(
    min_doc_words=None, max_doc_words=None, min_avg_word_length=None, max_avg_word_length=None,
    max_symbol_word_ratio=None, max_bullet_lines_ratio=None, max_ellipsis_lines_ratio=None,
    max_non_alpha_words_ratio=None, min_stop_words=None,
)  # fmt: skip


def only(variant="dclm", **kw) -> GopherQuality:  # noqa: ANN001
    return GopherQuality(**{**OFF, **kw}, variant=variant)


@pytest.mark.parametrize("variant", ["dclm", "datatrove"])
def test_page_length_bounds(variant):  # noqa: ANN001
    f = only(variant, min_doc_words=50, max_doc_words=60)
    assert reasons(f, words(50), words(49), words(60), words(61)) == [
        None, "gopher_quality:short_doc", None, "gopher_quality:long_doc"]  # fmt: skip
    # punctuation-only tokens are not words for either variant
    assert reasons(f, words(49) + " -- ...") == ["gopher_quality:short_doc"]


def test_default_max_words_is_100k():
    f = only(max_doc_words=100_000)
    assert reasons(f, words(100_000, "ab"), words(100_001, "ab")) == [None, "gopher_quality:long_doc"]


def test_mean_word_length_bounds():
    f = only(min_avg_word_length=3, max_avg_word_length=10)
    at_min = words(100, "abc")
    under = words(99, "abc") + " ab"  # mean 2.99
    at_max = words(100, "abcdefghij")
    over = words(99, "abcdefghij") + " abcdefghijk"  # mean 10.01
    assert reasons(f, at_min, under, at_max, over) == [
        None, "gopher_quality:below_avg_word_len", None, "gopher_quality:above_avg_word_len"]  # fmt: skip


def test_symbol_ratio_bounds():
    f = only(max_symbol_word_ratio=0.1)
    base = ["word"] * 100
    at = " ".join(["#tag"] * 10 + base[10:])  # 10 '#' / 100 words
    over = " ".join(["#tag"] * 11 + base[11:])
    ell = " ".join(["more…"] * 5 + ["more..."] * 5 + ["x. . ."] + base[11:])  # 11 ellipses / 100 words (DCLM)
    assert reasons(f, at, over, ell) == [None, "gopher_quality:symbol_ratio", "gopher_quality:symbol_ratio"]
    g = only("datatrove", max_symbol_word_ratio=0.1)  # datatrove: '#' and ellipsis separately
    assert reasons(g, at, over) == [None, "gopher_quality:hash_ratio"]


@pytest.mark.parametrize("variant,bullet", [("dclm", "•"), ("dclm", "*"), ("datatrove", "-")])
def test_bullet_lines_bounds(variant, bullet):  # noqa: ANN001
    f = only(variant, max_bullet_lines_ratio=0.9)
    at = "\n".join([f"{bullet} item"] * 9 + ["plain line"])
    over = "\n".join([f"{bullet} item"] * 10)
    assert reasons(f, at, over) == [None, "gopher_quality:bullet_lines"]


def test_ellipsis_lines_bounds():
    f = only(max_ellipsis_lines_ratio=0.3)
    at = "\n".join(["and so on..."] * 2 + ["and so on…"] + ["a full line."] * 7)
    over = "\n".join(["and so on..."] * 4 + ["a full line."] * 6)
    assert reasons(f, at, over) == [None, "gopher_quality:ellipsis_lines"]


@pytest.mark.parametrize("variant", ["dclm", "datatrove"])
def test_alpha_words_bounds(variant):  # noqa: ANN001
    f = only(variant, max_non_alpha_words_ratio=0.2)
    at = " ".join(["1999", "42"] + ["word"] * 8)  # 80% with a letter
    over = " ".join(["1999", "42", "-7"] + ["word"] * 7)
    drop = "gopher_quality:non_alpha_words"
    assert reasons(f, at, over, "été 12 ½ ça") == [None, drop, drop]


def test_stop_words_variants():
    dclm, dt = only(min_stop_words=2), only("datatrove", min_stop_words=2)
    texts = ["the cat and dog", "the cat the dog", "The cat with dog", "cat dog"]
    # DCLM counts occurrences case-insensitively; datatrove counts distinct words, case-sensitively
    assert reasons(dclm, *texts) == [None, None, None, "gopher_quality:few_stop_words"]
    assert reasons(dt, *texts) == [None, "gopher_quality:few_stop_words", "gopher_quality:few_stop_words",
                                   "gopher_quality:few_stop_words"]  # fmt: skip


def test_empty_and_whitespace_docs_are_dropped_not_crashing():
    assert reasons(GopherQuality(), "", "   \n ") == ["gopher_quality:no_words"] * 2
    assert reasons(GopherRepetition(), "", "  \n\n ") == ["gopher_rep:empty"] * 2


def test_bad_arguments():
    with pytest.raises(ValueError):
        GopherQuality(variant="spacy")
    with pytest.raises(ValueError):
        GopherQuality(min_doc_words=100, max_doc_words=10)
    with pytest.raises(ValueError):
        GopherQuality(max_bullet_lines_ratio=1.5)
    with pytest.raises(ValueError):
        GopherRepetition(top_n_grams=((0, 0.2),))
    with pytest.raises(ValueError):
        GopherRepetition(dup_line_frac=-0.1)


REP_OFF = dict(dup_line_frac=None, dup_para_frac=None, dup_line_char_frac=None, dup_para_char_frac=None,
               top_n_grams=None, dup_n_grams=None)  # fmt: skip


def rep(variant="dclm", **kw) -> GopherRepetition:  # noqa: ANN001
    return GopherRepetition(**{**REP_OFF, **kw}, variant=variant)


def distinct_lines(k: int) -> list[str]:
    return [f"line number {i:03d} here" for i in range(k)]  # all the same length


def test_dup_line_fraction_bounds():
    # DCLM counts every occurrence of a repeated line: 3 copies / 10 lines = 0.3
    f = rep(dup_line_frac=0.3)
    at = "\n".join(["same line"] * 3 + distinct_lines(7))
    over = "\n".join(["same line"] * 4 + distinct_lines(6))
    assert reasons(f, at, over) == [None, "gopher_rep:dup_line_frac"]
    # datatrove counts the repeats after the first: 4 copies -> 3 / 10
    g = rep("datatrove", dup_line_frac=0.3)
    over_dt = "\n".join(["same line"] * 5 + distinct_lines(5))
    assert reasons(g, over, over_dt) == [None, "gopher_rep:dup_line_frac"]


def test_dup_paragraph_fraction_bounds():
    f = rep(dup_para_frac=0.3)
    at = "\n\n".join(["same para"] * 3 + distinct_lines(7))
    over = "\n\n".join(["same para"] * 4 + distinct_lines(6))
    assert reasons(f, at, over) == [None, "gopher_rep:dup_para_frac"]


def test_dup_line_char_fraction_bounds():
    f = rep(dup_line_char_frac=0.2)
    lines = distinct_lines(10)
    at = "\n".join([lines[0], lines[0]] + lines[2:])  # 2 of 10 equal-length lines
    over = "\n".join([lines[0]] * 3 + lines[3:])
    assert reasons(f, at, over) == [None, "gopher_rep:dup_line_char_frac"]


def test_single_segment_passes_line_rules():
    # DCLM: a page of one line cannot have duplicate lines
    assert reasons(rep(dup_line_frac=0.0, dup_line_char_frac=0.0), "just one line") == [None]


def _bigram_doc(r: int, u: int) -> str:
    # "ab cd" r times, separated by distinct 5-letter words: top 2-gram fraction = 4r / (4r + 5u)
    uniq = iter(f"w{i:03d}x" for i in range(u))
    parts = []
    for i in range(max(r, u)):
        if i < r:
            parts.append("ab cd")
        if i < u:
            parts.append(next(uniq))
    return " ".join(parts)


def test_top_2gram_bounds():
    f = rep(top_n_grams=((2, 0.2),))
    assert reasons(f, _bigram_doc(5, 16), _bigram_doc(5, 15)) == [None, "gopher_rep:top_2_gram"]


def test_dup_5gram_bounds():
    f = rep(dup_n_grams=((5, 0.2),))
    five = "a1 b1 c1 d1 e1"  # 10 word characters, repeated twice -> 20 covered characters

    def doc(u: int) -> str:
        uniq = [f"w{i:03d}x" for i in range(u)]
        return " ".join([five] + uniq[: u // 2] + [five] + uniq[u // 2:])

    assert reasons(f, doc(16), doc(15)) == [None, "gopher_rep:dup_5_gram"]


def test_stages_pickle_and_are_deterministic(real_docs):  # noqa: ANN001
    for stage in (GopherQuality(), GopherRepetition(), GopherRepetition(variant="datatrove")):
        clone = pickle.loads(pickle.dumps(stage))
        a = stage.decide(real_docs).to_pylist()
        b = clone.decide(real_docs).to_pylist()
        assert a == b
        # batch composition does not change a document's decision
        half = real_docs.num_rows // 2
        c = stage.decide(real_docs.slice(0, half)).to_pylist() + stage.decide(real_docs.slice(half)).to_pylist()
        assert a == c


def _ngram_doc(n: int, r: int, u: int) -> str:
    # an n-gram of 2-letter words repeated r times, separated by distinct 5-letter words:
    # top n-gram fraction (DCLM, word characters) = 2n*r / (2n*r + 5u)
    gram = " ".join(f"{chr(97 + i)}{chr(97 + i)}" for i in range(n))
    uniq = [f"w{i:03d}x" for i in range(u)]
    per = -(-u // r)
    parts = []
    for i in range(r):
        parts.append(gram)
        parts.extend(uniq[i * per : (i + 1) * per])
    return " ".join(parts)


@pytest.mark.parametrize("n,frac,r,u_at", [(2, 0.20, 5, 16), (3, 0.18, 15, 82), (4, 0.16, 5, 42)])
def test_top_ngram_published_thresholds(n, frac, r, u_at):  # noqa: ANN001
    f = rep(top_n_grams=((n, frac),))
    assert reasons(f, _ngram_doc(n, r, u_at), _ngram_doc(n, r, u_at - 1)) == [None, f"gopher_rep:top_{n}_gram"]


@pytest.mark.parametrize("dclm", [True, False])
def test_line_counts_match_python(dclm):  # noqa: ANN001
    """The regex line counts equal DCLM's split("\\n")+strip and datatrove's splitlines() on random text."""
    import random

    import pyarrow as pa

    rng = random.Random(3)
    pieces = ["a", "-", "•", "*", "●", " ", "\n", "...", "…", ". . .", "\t", "\xa0", "x", "\r\n", "\u2028"]
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 30))) for _ in range(2000)]
    for batch in (texts, [t for t in texts if "\r" not in t and "\u2028" not in t]):  # both datatrove paths
        variant = gopher.DCLM if dclm else gopher.DATATROVE
        got = np.stack(gopher._line_counts(pa.array(batch, pa.large_string()), variant)).T.tolist()
        exp = []
        for x in batch:
            if dclm:
                lines = [p for ln in x.split("\n") if (p := ln.strip())]
                exp.append([len(lines), sum(ln.startswith(("●", "•", "*", "-")) for ln in lines),
                            sum(ln.endswith(("...", ". . .", "…")) for ln in lines)])  # fmt: skip
            else:
                lines = x.splitlines()
                exp.append([len(lines), sum(ln.lstrip().startswith(("•", "-")) for ln in lines),
                            sum(ln.rstrip().endswith(("...", "…")) for ln in lines)])  # fmt: skip
        assert got == exp


def test_shared_words_are_split_once_and_change_nothing():
    """Gopher repetition and quality given one BatchWords: the same decisions as alone,
    the words of the rows repetition keeps handed to quality, and nothing cached in a pickle."""
    import pickle

    from filters.heuristics import BatchWords
    from tests.filters.heuristics.synthetic import synthetic_docs

    table = synthetic_docs(300, seed=5)
    for variant in ("datatrove", "dclm"):
        words = BatchWords()
        shared = [GopherRepetition(variant=variant, words=words), GopherQuality(variant=variant, words=words)]
        alone = [GopherRepetition(variant=variant), GopherQuality(variant=variant)]
        t_shared, t_alone = table, table
        for a, b in zip(shared, alone):
            ra, rb = a.process(t_shared), b.process(t_alone)
            assert ra.dropped.to_pylist() == rb.dropped.to_pylist()
            t_shared, t_alone = ra.kept, rb.kept
        assert 0 < t_shared.num_rows < table.num_rows
    # after repetition dropped rows, the cache holds the words of exactly the kept rows
    words = BatchWords()
    r = GopherRepetition(variant="datatrove", words=words)
    kept = r.process(table).kept
    assert kept.num_rows < table.num_rows and words._key == BatchWords._key_of(kept.column("text"))  # a hit
    cached, parents = words._words, words._parents
    fresh, fresh_parents = A.split_whitespace(A.texts_of(kept))
    assert cached.equals(fresh) and (parents == fresh_parents).all()
    q = GopherQuality(words=words)
    r2, q2 = pickle.loads(pickle.dumps([r, q]))
    assert r2._words is q2._words and r2._words._key is None
