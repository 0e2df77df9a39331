"""DCLM's word units (filters/heuristics/_words.py) against the libraries DCLM calls: uniseg's UAX #29 words,
fastText's tokenizer, Python's str classes. Generated strings only (no ../shared needed)."""

from __future__ import annotations

import functools
import random
import sys

import pyarrow as pa
import pytest

from filters.heuristics import _words as W

uniseg = pytest.importorskip("uniseg.wordbreak")
fasttext = pytest.importorskip("fasttext")
split_word_bounds = pytest.importorskip("unicode_segmentation_rs").split_word_bounds


@functools.lru_cache(maxsize=1)
def _pool() -> list[str]:
    """Characters of every Word_Break class (uniseg's property), plus the ASCII punctuation and spaces."""
    by_class: dict[str, list[str]] = {}
    rng = random.Random(3)
    for cp in list(range(0x20, 0x3100)) + rng.sample(range(0x3100, 0x2FFFF), 4000):
        ch = chr(cp)
        if 0xD800 <= cp < 0xE000:
            continue
        by_class.setdefault(str(uniseg.word_break(ch)), []).append(ch)
    pool = [c for chars in by_class.values() for c in rng.sample(chars, min(6, len(chars)))]
    assert len(by_class) >= 15, sorted(by_class)  # every class but a few rare ones is represented
    return pool + list("abcXYZ0129 _.,:;'\"-/()\t\n\r\x0b\x0c") + ["\u00a0", "\u2019", "\u200d", "\ufeff"]


def _strings(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    pool = _pool()
    letters = list("abcdefgh0123")
    out = []
    for _ in range(n):
        k = rng.randint(1, 14)
        out.append("".join(rng.choice(pool) if rng.random() < 0.6 else rng.choice(letters) for _ in range(k)))
    return out


def test_library_gives_uniseg_words_on_every_class():
    """unicode_segmentation_rs (ours) and uniseg (DCLM's) segment alike, on strings mixing every class."""
    for s in _strings(2500, seed=1):
        assert split_word_bounds(s) == list(uniseg.words(s)), repr(s)


def test_uax29_words_are_dclm_ngram_words():
    """The chunked, vectorised words (fast path + library) equal uniseg's on whole texts."""
    # (uniseg's time grows faster than linearly with a text's length: short texts)
    texts = [" ".join(_strings(6, seed=i)) for i in range(400)] + ["", "   ", "9:00 a.m. don't 中文 _x e-mail"]
    words, parents = W.uax29_words(pa.array(texts, pa.large_string()))
    got: list[list[str]] = [[] for _ in texts]
    for w, p in zip(words.to_pylist(), parents.tolist()):
        got[p].append(w)
    for text, mine in zip(texts, got):
        assert mine == [w for w in uniseg.words(text) if w[0].isalnum()], repr(text)
    codes, wlen, cparents = W.uax29_codes(pa.array(texts, pa.large_string()))
    flat = words.to_pylist()
    assert wlen.tolist() == [len(w) for w in flat] and cparents.tolist() == parents.tolist()
    first: dict[int, str] = {}
    assert all(first.setdefault(c, w) == w for c, w in zip(codes.tolist(), flat))  # one id per string
    assert len(set(codes.tolist())) == len(set(flat))


def test_fasttext_counts_match_fasttext_tokenizer():
    rng = random.Random(5)
    alphabet = list("ab1 \n\t\r\x0b\x0c\x00\x1c") + ["\u00a0", "\u3000", "é", "-", "“", "²", "中"]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(1500)]
    got = W.fasttext_counts(pa.array(texts, pa.large_string())).tolist()
    want = [len([w for w in fasttext.FastText.tokenize(t) if w[0].isalnum()]) for t in texts]
    assert got == want
    # U+00A0 is no separator for fastText (str.split would count 2 words)
    assert W.fasttext_counts(pa.array(["a\u00a0b c"])).tolist() == [2]


@pytest.mark.parametrize("predicate", ["isupper", "isdigit", "isalpha", "isalnum"])
def test_char_counts_are_python_classes(predicate):  # noqa: ANN001
    rng = random.Random(7)
    alphabet = list("aB3 .") + ["Ⅳ", "²", "①", "É", "ß", "ǅ", "٣", "中", "\u0301", chr(sys.maxunicode)]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(800)]
    got = W.char_counts(pa.array(texts, pa.large_string()), predicate).tolist()
    assert got == [sum(getattr(c, predicate)() for c in t) for t in texts]


def test_python_whitespace_class_is_str_isspace():
    import pyarrow.compute as pc

    chars = [chr(c) for c in range(0x3100)] + ["\U0001F600", "\u3000", "\ufeff"]
    hit = pc.match_substring_regex(pa.array(chars), "^[" + W.python_whitespace_class() + "]$").to_pylist()
    assert hit == [c.isspace() for c in chars]
    assert max(ord(c) for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()) <= 0x3000
