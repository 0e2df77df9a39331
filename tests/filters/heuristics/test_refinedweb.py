"""RefinedWeb line removals and the 5%-of-words page rule, at their thresholds."""

from __future__ import annotations

import pytest

from filters.heuristics import RefinedWebLineFilter
from filters.heuristics.refinedweb import count_words
from tests.filters.heuristics.helpers import kept_texts, reasons, table

BODY = "\n".join(f"this is a normal sentence number {i} of the page body" for i in range(40))  # 440 words


def only(**kw) -> RefinedWebLineFilter:  # noqa: ANN001
    off = dict(max_uppercase_ratio=None, max_numeric_ratio=None, remove_counters=False, min_line_words=None,
               boilerplate=None, max_removed_word_ratio=None)  # fmt: skip
    return RefinedWebLineFilter(**{**off, **kw})


def test_uppercase_line_bound():
    f = only(max_uppercase_ratio=0.5)
    # "ABcd" = 50% uppercase: kept; "ABCd" = 75%: removed
    assert kept_texts(f, "ABcd\nfirst line", "ABCd\nfirst line") == ["ABcd\nfirst line", "first line"]


def test_numeric_line():
    f = only(max_numeric_ratio=0.999999)
    assert kept_texts(f, "12345\nline", "1234a\nline") == ["line", "1234a\nline"]


def test_counter_lines():
    f = only(remove_counters=True)
    got = kept_texts(f, "12 likes\nkeep", "3.4K shares\nkeep", "1,024 views!\nkeep", "12 likes this post\nkeep")
    assert got == ["keep", "keep", "keep", "12 likes this post\nkeep"]


def test_short_lines():
    f = only(min_line_words=2)
    assert kept_texts(f, "one\ntwo words\n\nthree words here") == ["two words\n\nthree words here"]


def test_boilerplate_phrases():
    f = only(boilerplate=RefinedWebLineFilter().boilerplate)
    got = kept_texts(
        f,
        "3 items in cart\nbody text",  # phrase removed, "3" left
        "items in cart\nbody text",  # nothing left: line dropped
        "Great article. Read more...\nbody text",  # suffix removed
        "Read more... about it\nbody text",  # not a suffix: kept
        "Sign-in to comment\nbody text",  # prefix removed
        " ".join(["word"] * 11) + " items in cart\nbody text",  # line of 14 words (> 10): untouched
    )
    assert got[:5] == ["3\nbody text", "body text", "Great article.\nbody text", "Read more... about it\nbody text",
                       "to comment\nbody text"]  # fmt: skip
    assert got[5].startswith("word word")


def test_removed_word_ratio_bound():
    f = RefinedWebLineFilter()
    n = count_words(table(BODY).column("text").combine_chunks())[0]
    assert n == 440
    # one-word lines are removed; the ratio is removed words / words before
    ok = BODY + "\n" + "\n".join(["single"] * 23)  # 23 / 463 = 4.97% removed
    bad = BODY + "\n" + "\n".join(["single"] * 24)  # 24 / 464 = 5.17% removed
    assert reasons(f, ok, bad) == [None, "refinedweb_lines:removed_words"]
    assert reasons(f, "ONLY CAPS\nMORE CAPS") == ["refinedweb_lines:empty"]


def test_bad_args():
    with pytest.raises(ValueError):
        RefinedWebLineFilter(max_uppercase_ratio=2)
    with pytest.raises(ValueError):
        RefinedWebLineFilter(boilerplate=[("x", "middle")])
