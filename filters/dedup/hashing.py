"""Vectorised text normalisation and 64-bit hashing of words and n-grams.

Everything here works on whole Arrow arrays with pyarrow.compute and numpy; no
Python loop runs per word, shingle or document.

* Words are hashed once per *distinct* word of a batch: the flattened word array
  is dictionary-encoded (Arrow's C++ hash table), the dictionary is hashed with
  pandas' vectorised SipHash (fixed key, so hashes are stable across processes,
  machines and runs), and the codes index the dictionary hashes.
* An n-gram hash is a polynomial over the word hashes modulo 2**64,
  ``H = sum_j w_j * P**(len-1-j)``, with the length mixed in and the murmur3
  ``fmix64`` finaliser. :func:`range_hashes` computes it for arbitrary runs from
  prefix sums (``C[k] = sum_{j<k} w_j * P**-j``; ``H(a, e) = P**(e-1) * (C[e] - C[a])``),
  so the cost does not depend on the run length; :func:`ngram_hashes` computes the
  same values for the fixed-size n-grams of MinHash with ``n - 1`` Horner steps over
  shifted views (no index arrays). numpy integer arithmetic wraps modulo 2**64,
  which is exactly the ring we want; ``P`` is odd, hence invertible modulo 2**64.
* Fuzzy (MinHash) words: :func:`normalize_fuzzy` leaves the ASCII space as the only
  whitespace character, so :func:`split_spaces` finds words with byte comparisons on
  the string buffer instead of a Unicode whitespace split.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

M64 = (1 << 64) - 1
# Odd multipliers (digits of pi / e); any odd 64-bit constants would do.
_P = np.uint64(0x3243F6A8885A308D)
_P_INV = np.uint64(pow(0x3243F6A8885A308D, -1, 1 << 64))
_LEN_MIX = np.uint64(0x9E3779B97F4A7C15)

# Punctuation, symbols, separators and whitespace: replaced by spaces in fuzzy normalisation.
# U+0085 (NEL) is the one character Arrow's (and Python's) whitespace split breaks on that is
# neither \s nor \p{Z}; with it the ASCII space is the only whitespace left (tested).
_PUNCT_RE = r"[\p{P}\p{S}\p{Z}\s\x{85}]+"
_DIGIT_RE = r"\p{Nd}"
# bff tokens: runs of word characters, or any single other non-space character
_NON_WORD_RE = r"([^\p{L}\p{N}\p{M}_\s])"


def fmix64(x: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finaliser: a bijection that spreads every input bit (in place on a copy)."""
    x = np.asarray(x, dtype=np.uint64).copy()
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(33)
        x *= np.uint64(0xFF51AFD7ED558CCD)
        x ^= x >> np.uint64(33)
        x *= np.uint64(0xC4CEB9FE1A85EC53)
        x ^= x >> np.uint64(33)
    return x


def as_large_string(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if arr.type != pa.large_string():
        arr = arr.cast(pa.large_string())
    return arr


def normalize_exact(text: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Exact-dedup normalisation: NFC, lower case, runs of (Unicode) whitespace -> one space, trimmed.

    Two documents are exact duplicates when these strings are equal: copies that
    differ only in case or layout (re-wrapped lines, trailing spaces) collapse.
    """
    t = as_large_string(text)
    t = pc.utf8_normalize(t, "NFC")
    t = pc.utf8_lower(t)
    t = pc.replace_substring_regex(t, r"[\s\v\x{85}\p{Z}]+", " ")
    return pc.utf8_trim_whitespace(t)


def _fuzzy_byte_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint8)
    for c in range(128):
        ch = chr(c)
        if ch.isdigit():
            table[c] = ord("0")
        elif ch.isalpha():
            table[c] = ord(ch.lower())
        else:
            table[c] = ord(" ")  # ASCII punctuation (``_`` too: it is \p{Pc}), symbols, whitespace, controls
    return table


_FUZZY_TABLE = _fuzzy_byte_table()


def map_ascii_bytes(arr: pa.Array, table: np.ndarray) -> pa.Array:
    """Apply a 256-entry byte table to a large_string array's data (ASCII-only changes keep UTF-8 valid).

    Nulls become empty strings.
    """
    arr = as_large_string(arr)
    if arr.null_count:
        arr = pc.fill_null(arr, "")
    if len(arr) == 0:
        return arr
    _, offsets, data = arr.buffers()
    off = np.frombuffer(offsets, dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    raw = np.frombuffer(data, dtype=np.uint8)[off[0] : off[-1]] if data is not None else np.zeros(0, np.uint8)
    new = table[raw]
    new_off = (off - off[0]).astype(np.int64)
    return pa.LargeStringArray.from_buffers(len(arr), pa.py_buffer(new_off), pa.py_buffer(new), None, 0, 0)


def normalize_fuzzy(text: pa.Array | pa.ChunkedArray) -> pa.Array:
    """MinHash normalisation (as datatrove's ``simplify_text`` in spirit).

    NFKC, lower case, every digit -> ``0``, punctuation (``_`` included)/symbols/
    separators/whitespace -> a space, so that shingles are runs of words and
    formatting noise is ignored.
    Nulls become empty strings. Afterwards the ASCII space is the only whitespace
    character (what :func:`split_spaces` relies on).

    Pure-ASCII documents (NFKC and lower case are ASCII-only there) get one byte
    table (numpy) that lowers, maps digits and blanks punctuation; NFKC, Unicode lower
    case and the Unicode punctuation/digit regexes run only on the other documents.
    Runs of blanks may collapse to one space in those documents and not in ASCII
    ones; only the words are meant to matter.
    """
    t = as_large_string(text)
    if t.null_count:
        t = pc.fill_null(t, "")
    non_ascii = pc.invert(pc.string_is_ascii(t))
    if pc.any(non_ascii).as_py():
        sub = pc.utf8_lower(pc.utf8_normalize(t.filter(non_ascii), "NFKC"))
        sub = pc.replace_substring_regex(sub, _PUNCT_RE, " ")
        sub = pc.replace_substring_regex(sub, _DIGIT_RE, "0")
        t = pc.replace_with_mask(t, non_ascii, sub)
    return map_ascii_bytes(t, _FUZZY_TABLE)


def normalize_url(url: pa.Array | pa.ChunkedArray) -> pa.Array:
    """URL key: lower case, no scheme, no ``www.``, no fragment, no trailing slash; null/empty -> null."""
    u = url.combine_chunks() if isinstance(url, pa.ChunkedArray) else url
    u = pc.utf8_lower(pc.utf8_trim_whitespace(u.cast(pa.string())))
    u = pc.replace_substring_regex(u, r"^[a-z][a-z0-9+.-]*://", "")
    u = pc.replace_substring_regex(u, r"^www\.", "")
    u = pc.replace_substring_regex(u, r"#.*$", "")
    u = pc.replace_substring_regex(u, r"/+$", "")
    return pc.if_else(pc.equal(pc.utf8_length(u), 0), pa.scalar(None, pa.string()), u)


def hash_strings(values: pa.Array, key: str = "dclm-dedup-key-0") -> np.ndarray:
    """64-bit SipHash of every string (nulls hash to 0). ``key`` must be 16 characters."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.uint64)
    obj = values.to_numpy(zero_copy_only=False)
    if values.null_count:
        obj = np.where(pd.isna(obj), "", obj)
    return pd.util.hash_array(obj.astype(object), hash_key=key, categorize=False).astype(np.uint64)


def hash_tokens(tokens: pa.Array, key: str = "dclm-dedup-key-0") -> np.ndarray:
    """Hash a (flat) array of tokens, hashing each distinct token once."""
    if len(tokens) == 0:
        return np.zeros(0, dtype=np.uint64)
    enc = pc.dictionary_encode(tokens)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks()
    dict_hash = hash_strings(enc.dictionary, key)
    return dict_hash[enc.indices.to_numpy(zero_copy_only=False)]


def split_words(norm_text: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Split on whitespace: (word offsets per document, flat word array)."""
    lists = pc.utf8_split_whitespace(norm_text)
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    lists = lists.cast(pa.large_list(pa.large_string()))
    # drop empty words produced by leading/trailing whitespace
    flat = lists.flatten()
    counts = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    keep = pc.greater(pc.utf8_length(flat), 0)
    if pc.all(keep).as_py() is False:
        keep_np = keep.to_numpy(zero_copy_only=False)
        doc_of = np.repeat(np.arange(len(counts)), counts)
        counts = np.bincount(doc_of[keep_np], minlength=len(counts)).astype(np.int64)
        flat = flat.filter(keep)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets, flat


def _buffer_view(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets relative to the first string, bytes) of a large_string array without nulls, no copy."""
    _, offsets, data = arr.buffers()
    off = np.frombuffer(offsets, dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    raw = np.frombuffer(data, dtype=np.uint8)[off[0] : off[-1]] if data is not None else np.zeros(0, np.uint8)
    return off - off[0], raw


def split_spaces(norm_text: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Words of text whose only whitespace is the ASCII space (:func:`normalize_fuzzy`'s output).

    Returns the same as :func:`split_words` on such text, (word offsets per document,
    flat word array), but finds the words where one byte comparison over the
    whole string buffer changes value and copies the non-space bytes once,
    instead of Arrow's Unicode whitespace split.
    """
    t = as_large_string(norm_text)
    if t.null_count:
        t = pc.fill_null(t, "")
    n_docs = len(t)
    if n_docs == 0:
        return np.zeros(1, dtype=np.int64), pa.array([], pa.large_string())
    rel, raw = _buffer_view(t)
    n = len(raw)
    is_word = raw != 32
    # word runs start and end where the space-padded mask changes (alternately)
    padded = np.zeros(n + 2, dtype=bool)
    padded[1 : n + 1] = is_word
    nz = np.flatnonzero(padded[1:] != padded[:-1])
    starts, ends = nz[0::2], nz[1::2]
    # a document boundary inside a run of word bytes ends one word and starts the next (empty
    # documents repeat a boundary: cut there once)
    inner = np.unique(rel[1:-1])
    cut = inner[(inner > 0) & (inner < n)]
    cut = cut[is_word[cut - 1] & is_word[cut]]
    if len(cut):
        starts = np.insert(starts, np.searchsorted(starts, cut), cut)
        ends = np.insert(ends, np.searchsorted(ends, cut), cut)
    word_off = np.searchsorted(starts, rel).astype(np.int64)
    lengths = ends - starts
    data = np.compress(is_word, raw)
    flat_off = np.zeros(len(starts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=flat_off[1:])
    words = pa.LargeStringArray.from_buffers(len(starts), pa.py_buffer(flat_off), pa.py_buffer(data), None, 0, 0)
    return word_off, words


def bff_tokens(text: pa.Array) -> pa.Array:
    """bff-style tokens of each string: word runs, and each other non-space character alone.

    DCLM's bff uses Unicode word boundaries (UAX #29) and drops whitespace; this
    regex approximation agrees on Latin-script text except for apostrophes and
    decimal points inside words (``don't`` -> ``don ' t``) and runs of CJK
    ideographs (one token here, one per ideograph there).
    """
    spaced = pc.replace_substring_regex(as_large_string(text), _NON_WORD_RE, r" \1 ")
    return spaced


class _Powers:
    """Cache of P**k and P**-k modulo 2**64, grown on demand (per process)."""

    pos = np.ones(1, dtype=np.uint64)
    neg = np.ones(1, dtype=np.uint64)

    @classmethod
    def get(cls, n: int) -> tuple[np.ndarray, np.ndarray]:
        if len(cls.pos) < n:
            m = max(n, 2 * len(cls.pos))
            with np.errstate(over="ignore"):
                pos = np.full(m, _P, dtype=np.uint64)
                pos[0] = 1
                cls.pos = np.cumprod(pos, dtype=np.uint64)
                neg = np.full(m, _P_INV, dtype=np.uint64)
                neg[0] = 1
                cls.neg = np.cumprod(neg, dtype=np.uint64)
        return cls.pos, cls.neg


def range_hashes(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Hash of each contiguous run ``values[s:e]`` (order-sensitive), fmix64-finalised.

    ``H = sum_j values[s+j] * P**(len-1-j)`` modulo 2**64, computed for all runs at
    once from one prefix sum; the run length is mixed in before finalising.
    """
    n = len(values)
    if len(starts) == 0:
        return np.zeros(0, dtype=np.uint64)
    pos, neg = _Powers.get(n + 1)
    with np.errstate(over="ignore"):
        prefix = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum(values.astype(np.uint64) * neg[:n], out=prefix[1:], dtype=np.uint64)
        h = (prefix[ends] - prefix[starts]) * pos[ends - 1]
        h ^= (ends - starts).astype(np.uint64) * _LEN_MIX
    return fmix64(h)


def ngram_spans(offsets: np.ndarray, n: int, min_n: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token spans of all n-grams of each segment (segments given by ``offsets``).

    Returns ``(segment index, start, end)`` per n-gram, in segment order. A segment
    with fewer than ``n`` tokens yields one n-gram of all its tokens when it has at
    least ``min_n`` tokens (default ``1``; pass ``min_n=n`` to skip short segments).
    """
    min_n = 1 if min_n is None else min_n
    lengths = np.diff(offsets)
    full = np.maximum(lengths - n + 1, 0)
    short = (lengths < n) & (lengths >= min_n) & (lengths > 0)
    counts = np.where(short, 1, full)
    total = int(counts.sum())
    seg = np.repeat(np.arange(len(lengths), dtype=np.int64), counts)
    first = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(counts, out=first[1:])
    within = np.arange(total, dtype=np.int64) - first[seg]
    starts = offsets[seg] + within
    ends = np.where(short[seg], offsets[seg + 1], starts + n)
    return seg, starts, ends


def ngram_hashes(values: np.ndarray, offsets: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of each segment's ``n``-grams of ``values``: (n-gram offsets per segment, hashes).

    The same values as ``range_hashes(values, starts, ends)`` over
    ``ngram_spans(offsets, n, min_n=1)`` (a segment shorter than ``n`` has one n-gram
    of all its values, an empty one none), computed with ``n - 1`` Horner steps over
    shifted views of ``values`` for every start position at once; the starts whose
    window would cross a segment end are then dropped.
    """
    if n < 1:
        raise ValueError(f"n-gram size must be >= 1, got {n}")
    values = np.asarray(values, dtype=np.uint64)
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    counts = np.where(lengths >= n, lengths - n + 1, (lengths > 0).astype(np.int64))
    gram_off = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(counts, out=gram_off[1:])
    out = np.empty(int(gram_off[-1]), dtype=np.uint64)
    short = np.flatnonzero((lengths > 0) & (lengths < n))
    in_short = np.zeros(len(out), dtype=bool)
    in_short[gram_off[short]] = True
    total = len(values)
    with np.errstate(over="ignore"):
        if total >= n and len(out) > len(short):
            m = total - n + 1
            acc = values[:m].copy()
            for j in range(1, n):
                acc *= _P
                acc += values[j : j + m]
            acc ^= np.uint64(n) * _LEN_MIX
            # a start is invalid within n - 1 positions of any segment end (that covers its own)
            valid = np.ones(m, dtype=bool)
            bad = (offsets[1:][lengths > 0][:, None] - np.arange(1, n, dtype=np.int64)[None, :]).ravel()
            valid[bad[(bad >= 0) & (bad < m)]] = False
            out[~in_short] = acc[valid]
        if len(short):
            start, length = offsets[short], lengths[short]
            acc_s = np.zeros(len(short), dtype=np.uint64)
            for j in range(int(length.max())):
                sel = length > j
                acc_s[sel] = acc_s[sel] * _P + values[start[sel] + j]
            acc_s ^= length.astype(np.uint64) * _LEN_MIX
            out[in_short] = acc_s
    return gram_off, fmix64(out)
