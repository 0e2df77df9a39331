"""C4 rules at their thresholds."""

from __future__ import annotations

import pytest

from filters.heuristics import C4BadWords, C4Lines, C4PageLength
from tests.filters.heuristics.helpers import kept_texts, reasons

S = "This line has six words in it."  # a kept C4 line (1 sentence)


def page(*lines: str) -> str:
    return "\n".join(lines)


def test_page_length_bound():
    f = C4PageLength()
    assert reasons(f, "a" * 190_000, "a" * 190_001) == [None, "c4:long_page"]


def test_min_sentences_bound():
    f = C4Lines()
    assert reasons(f, page(S, S, S), page(S, S)) == [None, "c4:too_few_sentences"]
    # sentences inside one line count too
    assert reasons(f, "First one is here now. Second one is here too! Third is a question?") == [None]


def test_line_rules_drop_lines_not_pages():
    f = C4Lines()
    body = [S, S, S]
    long_ok = "x" * 1000 + " fits within the limit here."
    long_bad = "x" * 1001 + " is one character over it."
    out = kept_texts(
        f,
        page(*body, long_ok),
        page(*body, long_bad),
        page(*body, "Four words only here."),  # < 5 words
        page(*body, "No terminal punctuation at the end"),
        page(*body, "This line ends with an ellipsis..."),
        page(*body, "Please enable JavaScript to see this page."),
        page(*body, "We use cookies, see our Privacy Policy now."),
        page(*body, 'He said it loud and clear: "yes"'),
    )
    assert out[0] == page(*body, long_ok)
    assert out[1:7] == [page(*body)] * 6
    assert out[7] == page(*body, 'He said it loud and clear: "yes"')


def test_page_rules():
    f = C4Lines()
    assert reasons(f, page(S, S, S, "Lorem ipsum dolor sit amet, consectetur.")) == ["c4:lorem_ipsum"]
    assert reasons(f, page(S, S, S, "The function f() { return one; } here.")) == ["c4:curly_bracket"]
    # both only count on lines that survive the line rules (as in C4 and datatrove)
    assert reasons(f, page(S, S, S, "lorem ipsum", "{ brace")) == [None]
    assert reasons(f, "") == ["c4:too_few_sentences"]


def test_citations_removed():
    f = C4Lines()
    out = kept_texts(f, page("A fact about the world is stated here.[1]", S, S + "[citation needed]", S + "[edit]"))
    assert out == [page("A fact about the world is stated here.", S, S, S)]


def test_bad_words_whole_word_only(tmp_path):  # noqa: ANN001
    path = tmp_path / "bad.txt"
    path.write_text("# list\nbadword\ntwo words\n")
    f = C4BadWords(bad_words_path=path)
    got = reasons(f, "a BADWORD here", "badwords are fine", "end with badword", "two words match", "x-badword-y")
    assert got == ["c4:bad_words", None, "c4:bad_words", "c4:bad_words", "c4:bad_words"]
    assert reasons(C4BadWords(), "this is fine", "what the fuck") == [None, "c4:bad_words"]


def test_bad_args():
    with pytest.raises(ValueError):
        C4PageLength(max_chars=-1)
    with pytest.raises(ValueError):
        C4Lines(min_words_per_line=-2)
    with pytest.raises(ValueError):
        C4Lines(end_marks=".")
    with pytest.raises(ValueError):
        C4BadWords(bad_words_path=None)
