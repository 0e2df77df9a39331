"""DCLM's word units and character classes, exact and vectorised over an Arrow batch.

DCLM (mlfoundations/dclm ``baselines/mappers/core_utils.py``) counts and splits words in
three ways, and its rules depend on which:

* ``split_words(text, model="fasttext", ignore_punctuation=True)`` (page length, the words
  before/after the line modifiers): fastText's tokenizer, which splits on the bytes
  ``" \\n\\r\\t\\v\\f\\0"`` only (``Dictionary::readWord``; U+00A0 and other Unicode spaces
  stay inside a token), keeping the tokens whose first character ``str.isalnum()``:
  :func:`fasttext_counts`.
* ``split_words(text, model="uniseg", ignore_punctuation=True)`` (the repetition n-grams):
  Unicode word boundaries (UAX #29, as the uniseg package implements them), keeping the
  pieces whose first character ``str.isalnum()``: :func:`uax29_words`.
* ``str.split()`` (mean word length, symbols, alphabetic words, stop words): Arrow's
  ``utf8_split_whitespace`` splits on exactly Python's whitespace (checked in the tests).

UAX #29 comes from a library: ``unicode_segmentation_rs`` (the Rust crate
unicode-segmentation, Unicode 16.0, the version uniseg 0.10 implements). On the 300 real
documents of ``../shared/data`` it gives uniseg's words on every document at 30 MB/s against
uniseg's 0.12 MB/s; ICU's word iterator (PyICU) runs at 11 MB/s but differs on 43 of them
(it segments CJK with a dictionary, UAX #29 makes every ideograph a word). ``bench/heuristics.py``
measures the three; ``tests/filters/heuristics/test_words.py`` checks the library against
uniseg on random strings of every Word_Break class.

Most of a page needs no segmenter at all, and the library is only called for what does:

1. Characters of Word_Break class Other, CR, LF, Newline or WSegSpace break on both sides
   (no UAX #29 rule joins them to a neighbour; an Extend/Format/ZWJ after one attaches to
   it and starts no word). The ASCII ones (whitespace and punctuation other than
   ``_ . ' : , ; "``) cut a text into chunks that are segmented independently, with the
   same words as in context.
2. A chunk that is ASCII letters and digits, with only ``. ' : , ; "`` around them, is one
   word (WB5, WB8-WB10; the mid-word rules WB6/7 and WB11/12 need a letter or digit on both
   sides). Arrow finds these with one regex over the batch's *distinct* chunks.
3. The other distinct chunks (``don't``, ``9:00``, ``it’s``, ``café``, CJK runs) go to the
   library, once per batch each.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.heuristics import _arrow as A

#: the bytes fastText's tokenizer splits on (fasttext/src/dictionary.cc, Dictionary::readWord)
FASTTEXT_SPACES = b" \n\r\t\x0b\x0c\x00"
_FT_WS = np.zeros(256, dtype=bool)
_FT_WS[np.frombuffer(FASTTEXT_SPACES, np.uint8)] = True

#: ASCII characters of Word_Break class Other/CR/LF/Newline/WSegSpace (see the module docstring)
CHUNK_BREAKS = "".join(chr(c) for c in range(128) if not chr(c).isalnum() and chr(c) not in "_.':,;\"")
_CHUNK_RE = "[" + "".join(f"\\x{ord(c):02x}" for c in CHUNK_BREAKS) + "]+"
_ONE_WORD_RE = r"^[.':,;\"]*(?P<w>[A-Za-z0-9]+)[.':,;\"]*$"


def _decode_at(data: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Code points of the UTF-8 characters starting at byte positions ``pos`` (lead bytes >= 0xC0)."""
    b0 = data[pos].astype(np.int64)
    last = len(data) - 1
    b1, b2, b3 = (data[np.minimum(pos + k, last)].astype(np.int64) & 0x3F for k in (1, 2, 3))
    return np.where(b0 < 0xE0, ((b0 & 0x1F) << 6) | b1,
                    np.where(b0 < 0xF0, ((b0 & 0x0F) << 12) | (b1 << 6) | b2,
                             ((b0 & 0x07) << 18) | (b1 << 12) | (b2 << 6) | b3))  # fmt: skip


def _python_class(cps: np.ndarray, predicate: str) -> np.ndarray:
    """``getattr(chr(cp), predicate)()`` for every code point, looked up once per distinct one."""
    uniq, inv = np.unique(cps, return_inverse=True)
    ok = np.array([getattr(chr(int(c)), predicate)() for c in uniq], dtype=bool)
    return ok[inv]


_ASCII_TABLES = {p: np.array([getattr(chr(c), p)() for c in range(128)] + [False] * 128, dtype=bool)
                 for p in ("isalnum", "isupper", "isdigit", "isalpha")}  # fmt: skip


def char_counts(strings: pa.Array, predicate: str) -> np.ndarray:
    """Per string, the characters for which ``str.<predicate>()`` holds (``isupper``, ``isdigit``,
    ``isalpha``, ``isalnum``): Python's own Unicode tables, so ``²`` is a digit and ``Ⅳ`` upper case
    (RE2's ``\\p{Nd}`` / ``\\p{Lu}`` say otherwise). ASCII from a byte table, other characters once
    per distinct code point."""
    strings = A._as_large(strings)
    n = len(strings)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    rel, data = A._bytes_of(strings)
    if data is None or rel[-1] == 0:
        return np.zeros(n, dtype=np.int64)
    hit = _ASCII_TABLES[predicate][data]
    wide = np.flatnonzero(data >= 0xC0)
    if len(wide):
        hit[wide] = _python_class(_decode_at(data, wide), predicate)
    pos = np.flatnonzero(hit)
    return np.diff(np.searchsorted(pos, rel)).astype(np.int64)


def isalnum_at(data: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``str.isalnum()`` of the UTF-8 characters starting at byte positions ``pos`` of ``data``."""
    lead = data[pos]
    out = _ASCII_TABLES["isalnum"][lead]
    wide = np.flatnonzero(lead >= 0xC0)
    if len(wide):
        out[wide] = _python_class(_decode_at(data, pos[wide]), "isalnum")
    return out


def fasttext_counts(strings: pa.Array) -> np.ndarray:
    """Per string, ``len(split_words(s, model="fasttext", ignore_punctuation=True))`` of DCLM: the
    fastText tokens (split on ``FASTTEXT_SPACES``) whose first character is alphanumeric.

    Counted on the UTF-8 bytes with numpy: a token starts at a non-space byte after a space byte or
    at the string's start (fastText's ``</s>`` newline tokens start with ``<`` and never count).
    """
    strings = A._as_large(strings)
    n = len(strings)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    rel, data = A._bytes_of(strings)
    if data is None or rel[-1] == 0:
        return np.zeros(n, dtype=np.int64)
    ws = _FT_WS[data]
    start = ~ws
    start[1:] &= ws[:-1]
    firsts = rel[:-1][rel[:-1] < len(data)]
    start[firsts] = ~ws[firsts]
    pos = np.flatnonzero(start)
    pos = pos[isalnum_at(data, pos)]
    return np.diff(np.searchsorted(pos, rel)).astype(np.int64)


def _segment(chunks: list[str]) -> list[list[str]]:
    from unicode_segmentation_rs import split_word_bounds

    return [[w for w in split_word_bounds(c) if w[0].isalnum()] for c in chunks]


def uax29_words(texts: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """DCLM's n-gram words of every text (``split_words(model="uniseg", ignore_punctuation=True)``):
    the UAX #29 words whose first character is alphanumeric, flat, with the index of their text."""
    texts = A._as_large(texts)
    chunks, cp = A.split(texts, _CHUNK_RE, regex=True)
    keep = A.as_numpy(pc.greater(pc.binary_length(chunks), 0))
    chunks, cp = chunks.filter(pa.array(keep)), cp[keep]
    if len(chunks) == 0:
        return pa.array([], pa.large_string()), np.zeros(0, dtype=np.int64)
    enc = pc.dictionary_encode(chunks)
    distinct = enc.dictionary
    codes = A.as_numpy(enc.indices).astype(np.int64)
    # one word (its core) for most distinct chunks; the others from the segmenter, once each
    words_of = pc.struct_field(pc.extract_regex(distinct, _ONE_WORD_RE), "w").to_pylist()
    hard = [i for i, w in enumerate(words_of) if w is None]
    for i, ws in zip(hard, _segment(distinct.take(pa.array(hard, pa.int64())).to_pylist())):
        words_of[i] = ws
    lists = pa.array([[w] if isinstance(w, str) else w for w in words_of], pa.large_list(pa.large_string()))
    taken = lists.take(pa.array(codes))  # every chunk occurrence takes its distinct chunk's words
    words, parents = A.flatten(taken)
    return words, cp[parents]


def python_whitespace_class() -> str:
    """Python's ``\\s`` (``str.isspace``) as the body of an RE2 character class."""
    return "".join(f"\\x{{{ord(c):x}}}" for c in map(chr, range(0x3001)) if c.isspace())
