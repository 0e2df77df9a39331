"""The vectorised shortcuts (byte tables, byte counts, the repeated-n-gram scan) against
plain Python on random text."""

from __future__ import annotations

import random
import unicodedata

import numpy as np
import pyarrow as pa
import pytest

from filters.heuristics import GopherRepetition
from filters.heuristics import _arrow as A
from filters.heuristics.gopher import _HAS_LETTER, _SYMBOL_ONLY

CHARS = list("aZ9 !#-_.\x01\x7f\x1c") + ["é", "€", "•", "\x85", "ß", "中", "٣", "\u0301", "\U0001f600"]


def _random_strings(seed: int, n: int, max_len: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(CHARS) for _ in range(rng.randint(0, max_len))) for _ in range(n)]


def test_word_flags_match_unicode_categories():
    words = _random_strings(5, 5000, 5)
    arr = pa.array(words, pa.large_string())
    exp_letter = [any(unicodedata.category(c).startswith("L") for c in w) for w in words]
    exp_symbol = [bool(w) and all(unicodedata.category(c)[0] in "PSC" for c in w) for w in words]
    for start, stop in ((0, len(words)), (17, 3000)):  # a sliced array has an offset
        letter, symbol = A.word_flags(arr.slice(start, stop - start), _HAS_LETTER, _SYMBOL_ONLY)
        assert letter.tolist() == exp_letter[start:stop]
        assert symbol.tolist() == exp_symbol[start:stop]


def test_byte_counts_match_str_count():
    texts = _random_strings(6, 3000, 20) + ["", "###", "\n\n"]
    arr = pa.array(texts, pa.large_string())
    for ch in ("#", "\n", "-"):
        assert A.byte_counts(arr, ch).tolist() == [t.count(ch) for t in texts]
        assert A.byte_counts(arr.slice(11, 100), ch).tolist() == [t.count(ch) for t in texts[11:111]]
    with pytest.raises(ValueError):
        A.byte_counts(arr, "€")


def _greedy_dup_ratio(text: str, k: int) -> float:
    """datatrove's duplicated n-gram fraction: left-to-right, a seen n-gram adds its
    characters and skips its k words."""
    words = text.split()
    seen: set[tuple[str, ...]] = set()
    total, i = 0, 0
    while i <= len(words) - k:
        gram = tuple(words[i : i + k])
        if gram in seen:
            total += len("".join(gram))
            i += k
        else:
            seen.add(gram)
            i += 1
    return total / len(text)


@pytest.mark.parametrize("k", [5, 7])
def test_datatrove_dup_ngram_scan_matches_python(k):  # noqa: ANN001
    rng = random.Random(k)
    vocab = ["a", "bb", "ccc", "dd", "e"]
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(k, 80))) for _ in range(400)]
    ratios = np.array([_greedy_dup_ratio(t, k) for t in texts])
    table = pa.table({"text": pa.array(texts, pa.large_string())})
    for frac in (0.05, 0.2, 0.4, float(np.median(ratios))):
        f = GopherRepetition(
            variant="datatrove", dup_line_frac=None, dup_para_frac=None, dup_line_char_frac=None,
            dup_para_char_frac=None, top_n_grams=None, dup_n_grams=((k, frac),),
        )  # fmt: skip
        got = [r is not None for r in f.decide(table).to_pylist()]
        assert got == (ratios > frac).tolist()


def test_letter_or_number_word_starts_match_the_regex():
    # DCLM counts whitespace words that start with a letter or a number (RE2 [\pL\pN]);
    # ours classifies the first UTF-8 character with numpy: 1- to 4-byte characters,
    # marks, number letters, superscripts, non-ASCII spaces
    regex = pytest.importorskip("regex")
    rng = random.Random(0)
    alphabet = list("ab1 \t\n.,-'") + ["é", "日", "٣", "ℵ", "—", "😀", "\u00a0", "\u2028", "Ⅻ", "²", "ǅ", "\u0301"]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(3000)]
    texts += ["", "   ", "é", "😀", "\u0301a"]
    words, starts = A.word_counts(pa.array(texts), letter_or_number=True)
    assert words.tolist() == [len(t.split()) for t in texts]
    assert starts.tolist() == [sum(bool(regex.match(r"[\p{L}\p{N}]", w)) for w in t.split()) for t in texts]
    assert A.starts_with_letter_or_number(pa.array(texts)).tolist() == [
        bool(regex.match(r"[\p{L}\p{N}]", t)) for t in texts]  # fmt: skip
