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

1. ASCII whitespace always breaks (Word_Break CR, LF, Newline, WSegSpace or Other: no
   UAX #29 rule joins them to a neighbour, and an Extend/Format/ZWJ after one attaches to
   it and starts no word), so a text is cut into chunks at ASCII whitespace and each chunk
   is segmented on its own, with the same words as in context.
2. A chunk that is ASCII letters and digits with only ASCII punctuation other than ``_``
   around them is one word: letters and digits join (WB5, WB8-WB10), and the mid-word
   rules (WB6/7, WB11/12) need a letter or digit on both sides of ``. ' : , ;``. Arrow finds
   these with one regex over the batch's *distinct* chunks.
3. The other distinct chunks (``don't``, ``9:00``, ``it’s``, ``café``, URLs, CJK runs) go
   to the library, once per batch each.
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

#: ASCII punctuation but "_" (Word_Break Other, MidLetter, MidNum, MidNumLet, Single/Double_Quote)
_PUNCT = r"[!-/:-@\[-\^`{-~]"
_ONE_WORD_RE = rf"^{_PUNCT}*(?P<w>[A-Za-z0-9]+){_PUNCT}*$"


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


def _segment(chunks: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """The UAX #29 words starting with a letter or digit of every chunk (no chunk holds ASCII whitespace),
    with the index of their chunk. One library call on the chunks joined by "\\n": a line feed breaks on
    both sides and, like the start of a text, lets nothing attach across it, so each chunk segments as alone.
    """
    from unicode_segmentation_rs import split_word_bounds

    pieces = pa.array(split_word_bounds("\n".join(chunks.to_pylist())), pa.large_string())
    char_starts = np.concatenate([[0], np.cumsum(A.lengths(pieces))[:-1]]).astype(np.int64)
    chunk_starts = np.concatenate([[0], np.cumsum(A.lengths(chunks) + 1)[:-1]]).astype(np.int64)
    owner = np.searchsorted(chunk_starts, char_starts, side="right") - 1
    rel, data = A._bytes_of(pieces)
    word = isalnum_at(data, rel[:-1]) if len(pieces) else np.zeros(0, dtype=bool)
    return pieces.filter(pa.array(word)), owner[word]


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + n) for s, n in zip(starts, lengths)])``, vectorised."""
    before = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return np.repeat(starts - before, lengths) + np.arange(int(lengths.sum()), dtype=np.int64)


def uax29_words(texts: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """DCLM's n-gram words of every text (``split_words(model="uniseg", ignore_punctuation=True)``):
    the UAX #29 words whose first character is alphanumeric, flat, with the index of their text."""
    values, slots, parents = _uax29(texts)
    return values.take(pa.array(slots)), parents


def uax29_codes(texts: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`uax29_words` as (an id per word, equal iff the strings are; each word's length in
    characters; the index of its text), encoded once per distinct chunk's word, not per word."""
    values, slots, parents = _uax29(texts)
    codes = A.as_numpy(pc.dictionary_encode(values).indices).astype(np.int64)
    return codes[slots], A.lengths(values)[slots], parents


def _uax29(texts: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """(the words of every distinct chunk, in slots; the slot of every word of the texts; its text)."""
    texts = A._as_large(texts)
    chunks, cp = A.flatten(pc.ascii_split_whitespace(texts))  # every ASCII space is a break (class 1)
    keep = A.as_numpy(pc.greater(pc.binary_length(chunks), 0))
    chunks, cp = chunks.filter(pa.array(keep)), cp[keep]
    if len(chunks) == 0:
        return pa.array([], pa.large_string()), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    enc = pc.dictionary_encode(chunks)
    distinct = enc.dictionary
    codes = A.as_numpy(enc.indices).astype(np.int64)
    # one word (the core) for most distinct chunks; the others from the segmenter, once each
    core = pc.struct_field(pc.extract_regex(distinct, _ONE_WORD_RE), "w")
    is_hard = A.as_numpy(pc.is_null(core))
    hard = np.flatnonzero(is_hard)
    if len(hard):
        flat, owner = _segment(distinct.take(pa.array(hard)))
    else:
        flat, owner = pa.array([], pa.large_string()), np.zeros(0, dtype=np.int64)
    n_words = np.ones(len(distinct), dtype=np.int64)
    n_words[hard] = np.bincount(owner, minlength=len(hard))
    offsets = np.concatenate([[0], np.cumsum(n_words)]).astype(np.int64)
    easy = np.flatnonzero(~is_hard)
    src = np.empty(int(offsets[-1]), dtype=np.int64)  # slot of a distinct chunk's word -> its source
    src[offsets[easy]] = np.arange(len(easy))
    src[_ranges(offsets[hard], n_words[hard])] = len(easy) + np.arange(int(n_words[hard].sum()))
    values = pa.concat_arrays([core.filter(pa.array(~is_hard)).cast(pa.large_string()), flat]).take(pa.array(src))
    per = n_words[codes]  # every chunk occurrence takes its distinct chunk's words
    return values, _ranges(offsets[codes], per), np.repeat(cp, per)


def python_whitespace_class() -> str:
    """Python's ``\\s`` (``str.isspace``) as the body of an RE2 character class."""
    return "".join(f"\\x{{{ord(c):x}}}" for c in map(chr, range(0x3001)) if c.isspace())
