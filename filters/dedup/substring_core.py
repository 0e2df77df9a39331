"""Exact-substring deduplication on one machine: tokens, minimizer anchors, suffix-array marking, cuts.

The rule (Lee et al. 2022, "Deduplicating Training Data Makes Language Models Better", ExactSubstr;
RefinedWeb applied it at 50 tokens): a *window* is ``min_len`` consecutive tokens of one document
(words, or UTF-8 bytes in byte mode). With ``keep="first"`` a window is *marked* when the same
tokens occur at an earlier position in corpus order (an earlier document, or earlier in the same
document, overlapping or not); with ``keep="none"`` when they occur at two positions or more. The
tokens of marked windows are *covered*; every substring of at least ``min_len`` tokens that occurs
more than once is covered in all its occurrences but the first (``keep="none"``: in all of them),
and nothing else is.

This module holds the pieces that work on one batch or one partition; :mod:`.substring` runs them
as passes over a corpus:

* :func:`tokenize`: token byte spans of a batch of texts (words: maximal runs of non-whitespace
  characters, whitespace being exactly Python's ``str.isspace``; or bytes) and 64-bit token hashes.
* :func:`anchors`: the *minimizer* k-grams of every document (Roberts et al. 2004; Schleimer et al.
  2003's winnowing): among each run of ``w = min_len - k + 1`` consecutive k-grams, the one with the
  smallest hash (the leftmost of equal ones). A window of ``min_len`` tokens is exactly such a run,
  so its minimizer is a function of its content, at the same offset in every occurrence: two
  occurrences of a window always share a selected k-gram (an *anchor*). About ``2 / (w + 1)`` of the
  k-grams are selected.
* :func:`mark_windows`: the exact marking over a set of token segments with a suffix array and its
  LCP array (libdivsufsort's ``divsufsort`` and Kasai's LCP, through ``pydivsufsort``): suffixes
  sharing a prefix of ``min_len`` tokens are adjacent in the suffix array, so every class of equal
  windows is a run of LCP >= ``min_len``; segments carry their global position, so overlapping
  segments of the same text count once.
* :func:`cut_plan` / :func:`apply_cuts`: covered tokens -> byte ranges to remove, cut at word
  boundaries only (in byte mode a covered range is shrunk to the whole words inside it).
* :func:`reference_dedup`: the whole rule on a list of texts with one suffix array over all of
  them (the single-partition result the distributed passes must equal).
"""

from __future__ import annotations

import ctypes
import functools
import glob
import logging
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pydivsufsort
from pydivsufsort import divsufsort, kasai

from .hashing import _buffer_view, as_large_string, hash_tokens, range_hashes

logger = logging.getLogger(__name__)

UNITS = ("word", "byte")
KEEPS = ("first", "none")
REASON_EMPTY = "substring:removed_spans"
REASON_SHORT = "substring:too_short_after"

# Python's str.isspace() characters, as UTF-8: one byte ...
_WS_ASCII = np.zeros(256, dtype=bool)
_WS_ASCII[[0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20]] = True
# ... two bytes (U+0085, U+00A0) and three bytes (U+1680, U+2000-200A, U+2028, U+2029, U+202F, U+205F, U+3000)
_WS_2 = {(0xC2, 0x85), (0xC2, 0xA0)}
_WS_3 = {(0xE1, 0x9A, 0x80), (0xE2, 0x80, 0xA8), (0xE2, 0x80, 0xA9), (0xE2, 0x80, 0xAF), (0xE2, 0x81, 0x9F),
         (0xE3, 0x80, 0x80)} | {(0xE2, 0x80, b) for b in range(0x80, 0x8B)}
_U32 = np.uint64(0xFFFFFFFF)


def whitespace_mask(raw: np.ndarray) -> np.ndarray:
    """True at every byte of a whitespace character (``str.isspace``) in the UTF-8 bytes ``raw``."""
    ws = _WS_ASCII[raw]
    n = len(raw)
    lead = np.flatnonzero((raw >= 0xC2) & (raw <= 0xE3))
    if len(lead) == 0:
        return ws
    two = lead[(raw[lead] == 0xC2) & (lead + 1 < n)]
    if len(two):
        b1 = raw[two + 1]
        hit = two[(b1 == 0x85) | (b1 == 0xA0)]
        ws[hit] = ws[hit + 1] = True
    three = lead[(raw[lead] >= 0xE1) & (lead + 2 < n)]
    if len(three):
        b0, b1, b2 = raw[three].astype(np.int32), raw[three + 1].astype(np.int32), raw[three + 2].astype(np.int32)
        code = (b0 << 16) | (b1 << 8) | b2
        known = np.array(sorted((a << 16) | (b << 8) | c for a, b, c in _WS_3), dtype=np.int32)
        hit = three[np.isin(code, known)]
        ws[hit] = ws[hit + 1] = ws[hit + 2] = True
    return ws


@dataclass
class Tokens:
    """The tokens of a batch of documents.

    ``doc_off``: token offsets per document (``n_docs + 1``); ``start``/``end``: each token's byte
    span in its document; ``ids``: 64-bit token hashes (byte mode: the byte values); ``text_off``:
    byte offsets of the documents in ``raw``, the batch's UTF-8 bytes.
    """

    doc_off: np.ndarray
    start: np.ndarray
    end: np.ndarray
    ids: np.ndarray
    text_off: np.ndarray
    raw: np.ndarray

    def doc_bytes(self, d: int) -> bytes:
        return self.raw[self.text_off[d] : self.text_off[d + 1]].tobytes()


def word_spans(raw: np.ndarray, text_off: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(token offsets per document, start, end in ``raw``, word-byte mask) of the words: maximal
    non-whitespace runs, never across a document boundary."""
    n = len(raw)
    is_word = ~whitespace_mask(raw)
    padded = np.zeros(n + 2, dtype=bool)
    padded[1 : n + 1] = is_word
    nz = np.flatnonzero(padded[1:] != padded[:-1])
    starts, ends = nz[0::2], nz[1::2]
    inner = np.unique(text_off[1:-1])
    cut = inner[(inner > 0) & (inner < n)]
    cut = cut[is_word[cut - 1] & is_word[cut]]
    if len(cut):  # a document boundary inside a run of word bytes ends one word and starts the next
        starts = np.insert(starts, np.searchsorted(starts, cut), cut)
        ends = np.insert(ends, np.searchsorted(ends, cut), cut)
    doc_off = np.searchsorted(starts, text_off).astype(np.int64)
    return doc_off, starts.astype(np.int64), ends.astype(np.int64), is_word


def _words_array(raw: np.ndarray, is_word: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """The words as one binary array (their bytes are exactly the word bytes of ``raw``, in order)."""
    off = np.zeros(len(starts) + 1, dtype=np.int64)
    np.cumsum(ends - starts, out=off[1:])
    data = np.compress(is_word, raw)
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(starts), [None, pa.py_buffer(off),
                                                                             pa.py_buffer(data)])


def tokenize(texts: pa.Array | pa.ChunkedArray, unit: str, with_ids: bool = True) -> Tokens:
    """The tokens of every text (nulls are empty); see :func:`tokens_of`."""
    t = as_large_string(texts)
    if t.null_count:
        t = t.fill_null("")
    if len(t) == 0:
        return tokens_of(np.zeros(0, np.uint8), np.zeros(1, np.int64), unit, with_ids)
    text_off, raw = _buffer_view(t)
    return tokens_of(raw, text_off.astype(np.int64), unit, with_ids)


def tokens_of(raw: np.ndarray, text_off: np.ndarray, unit: str, with_ids: bool = True) -> Tokens:
    """The tokens of the texts ``raw[text_off[i]:text_off[i + 1]]``. Word ids hash each distinct word
    once (SipHash); ``with_ids=False`` leaves ``ids`` empty (spans only)."""
    n_docs = len(text_off) - 1
    if unit == "byte":
        start = np.arange(len(raw), dtype=np.int64)
        rel = start - text_off[np.repeat(np.arange(n_docs), np.diff(text_off))]
        ids = raw.astype(np.uint64) if with_ids else np.zeros(0, np.uint64)
        return Tokens(text_off.copy(), rel, rel + 1, ids, text_off, raw)
    doc_off, starts, ends, is_word = word_spans(raw, text_off)
    base = text_off[np.repeat(np.arange(n_docs), np.diff(doc_off))]
    ids = np.zeros(0, np.uint64)
    if with_ids and len(starts):
        ids = hash_tokens(_words_array(raw, is_word, starts, ends).cast(pa.large_string()), "substr-dedup-w01")
    return Tokens(doc_off, starts - base, ends - base, ids, text_off, raw)


def kgram_hashes(ids: np.ndarray, doc_off: np.ndarray, k: int, min_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(k-gram offsets per document, hashes) of the documents with at least ``min_len`` tokens
    (shorter ones have no window and no k-gram here)."""
    n_tok = np.diff(doc_off)
    n_k = np.where(n_tok >= min_len, n_tok - k + 1, 0)
    k_off = np.zeros(len(n_tok) + 1, dtype=np.int64)
    np.cumsum(n_k, out=k_off[1:])
    total = int(k_off[-1])
    if total == 0:
        return k_off, np.zeros(0, np.uint64)
    doc = np.repeat(np.arange(len(n_tok)), n_k)
    s = doc_off[doc] + (np.arange(total) - k_off[doc])
    return k_off, range_hashes(ids, s, s + k)


def sliding_min(key: np.ndarray, w: int) -> np.ndarray:
    """Minimum of every run of ``w`` consecutive values (van Herk / Gil-Werman: two scans per block)."""
    n = len(key)
    if n < w:
        return np.zeros(0, key.dtype)
    pad = (-n) % w
    blocks = np.concatenate([key, np.full(pad, np.iinfo(key.dtype).max, key.dtype)]).reshape(-1, w)
    pre = np.minimum.accumulate(blocks, axis=1).ravel()
    suf = np.minimum.accumulate(blocks[:, ::-1], axis=1)[:, ::-1].ravel()
    return np.minimum(suf[: n - w + 1], pre[w - 1 : n])


def anchors(h: np.ndarray, k_off: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(document, token index) of every minimizer k-gram: the smallest of each run of ``w`` consecutive
    k-grams of a document, ordered by the hash's top 32 bits, then position (leftmost)."""
    n_k = np.diff(k_off)
    if len(h) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    doc = np.repeat(np.arange(len(n_k)), n_k)
    local = np.arange(len(h), dtype=np.int64) - k_off[doc]
    key = ((h >> np.uint64(32)) << np.uint64(32)) | local.astype(np.uint64)
    win = sliding_min(key, w)
    n_win = np.maximum(n_k - w + 1, 0)
    valid = local[: len(win)] < n_win[doc[: len(win)]]  # the run starting here stays inside its document
    wdoc = doc[: len(win)][valid]
    pos = (win[valid] & _U32).astype(np.int64)
    sel = np.unique(k_off[wdoc] + pos)
    return doc[sel], local[sel]


@functools.cache
def _one_openmp_thread() -> None:
    """Run libdivsufsort on one thread: a task holds one CPU, and the OpenMP team of the wheel's private
    libgomp costs ~17 ms per call in spin-up and barriers (0.3 ms for a small input on one thread)."""
    for lib in glob.glob(os.path.join(os.path.dirname(pydivsufsort.__file__) + ".libs", "libgomp*")):
        try:
            ctypes.CDLL(lib).omp_set_num_threads(1)
        except (OSError, AttributeError) as e:  # another build: leave its threads as they are
            logger.debug("could not set libdivsufsort's OpenMP threads: %s", e)


def _segments_array(ids: np.ndarray, seg_off: np.ndarray) -> np.ndarray:
    """Segments of positive ids, each followed by a 0 separator (one shared symbol; see mark_windows)."""
    n_seg = len(seg_off) - 1
    arr = np.zeros(len(ids) + n_seg, dtype=ids.dtype)
    where = np.arange(len(ids)) + np.repeat(np.arange(n_seg), np.diff(seg_off))
    arr[where] = ids
    return arr


def mark_windows(ids: np.ndarray, seg_off: np.ndarray, seg_node: np.ndarray, seg_pos: np.ndarray, min_len: int,
                 keep: str = "first") -> tuple[np.ndarray, np.ndarray]:
    """Windows of ``min_len`` tokens repeated among the segments, as (node, position) of their start.

    ``ids``: the segments' tokens, concatenated (integers >= 1, equal exactly for equal tokens);
    ``seg_off``: segment offsets; segment ``i`` is the text of document ``seg_node[i]`` from token
    ``seg_pos[i]`` on. Segments may overlap (the same text twice counts as one occurrence). A window
    is marked when its class of equal windows holds an earlier position in (node, position) order
    (``keep="first"``) or any other position (``keep="none"``). Returns unique (node, position),
    sorted.

    One separator symbol serves all segments: a window is valid only if it does not reach its
    segment's end, and the windows adjacent to a valid one in the suffix array with LCP >= min_len
    share its first ``min_len`` symbols, so they contain no separator either: a class is all valid
    or all invalid.
    """
    if keep not in KEEPS:
        raise ValueError(f"keep must be one of {KEEPS}, got {keep!r}")
    seg_off = np.asarray(seg_off, dtype=np.int64)
    if len(ids) == 0 or len(seg_off) < 2:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    _one_openmp_thread()
    arr = _segments_array(ids, seg_off)
    sa = divsufsort(arr).astype(np.int64)
    lcp = kasai(arr, sa.astype(np.int32) if len(arr) < 2**31 else sa)
    # position in arr -> segment, offset, tokens left in the segment
    n_seg = len(seg_off) - 1
    arr_start = seg_off[:-1] + np.arange(n_seg)  # where each segment starts in arr
    seg = np.searchsorted(arr_start, sa, side="right") - 1
    off = sa - arr_start[seg]
    left = (seg_off[1:] - seg_off[:-1])[seg] - off  # tokens from here to the segment's end (0: the separator)
    new = np.ones(len(sa), dtype=bool)
    new[1:] = np.asarray(lcp[:-1]) < min_len
    cls = np.cumsum(new) - 1
    ok = left >= min_len
    cls, seg, off = cls[ok], seg[ok], off[ok]
    if len(cls) == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    sizes = np.bincount(cls)
    multi = sizes[cls] >= 2
    cls, seg, off = cls[multi], seg[multi], off[multi]
    node = np.asarray(seg_node, dtype=np.uint64)[seg]
    pos = np.asarray(seg_pos, dtype=np.int64)[seg] + off
    order = np.lexsort((pos, node, cls))
    cls, node, pos = cls[order], node[order], pos[order]
    first = np.ones(len(cls), dtype=bool)
    first[1:] = cls[1:] != cls[:-1]
    head = np.flatnonzero(first)
    grp = np.cumsum(first) - 1
    min_node, min_pos = node[head][grp], pos[head][grp]
    later = (node != min_node) | (pos != min_pos)  # not the class's first occurrence
    if keep == "first":
        marked = later
    else:
        distinct = np.zeros(len(head), dtype=bool)
        np.logical_or.at(distinct, grp, later)
        marked = distinct[grp]
    node, pos = node[marked], pos[marked]
    if len(node) == 0:
        return node, pos
    order = np.lexsort((pos, node))
    node, pos = node[order], pos[order]
    uniq = np.ones(len(node), dtype=bool)
    uniq[1:] = (node[1:] != node[:-1]) | (pos[1:] != pos[:-1])
    return node[uniq], pos[uniq]


def window_intervals(node: np.ndarray, pos: np.ndarray, min_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Covered token intervals (node, start, end), merged, of marked window starts sorted by (node, pos)."""
    if len(node) == 0:
        return node, pos, pos.copy()
    new = np.ones(len(node), dtype=bool)
    new[1:] = (node[1:] != node[:-1]) | (pos[1:] > pos[:-1] + min_len)  # windows have one length: no gap
    head = np.flatnonzero(new)
    last = np.r_[head[1:] - 1, len(node) - 1]
    return node[head], pos[head], pos[last] + min_len


def merge_intervals(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of [start, end) intervals, sorted and merged (touching ones too)."""
    if len(starts) == 0:
        return starts, ends
    order = np.lexsort((ends, starts))
    s, e = starts[order], ends[order]
    run = np.maximum.accumulate(e)
    new = np.ones(len(s), dtype=bool)
    new[1:] = s[1:] > run[:-1]
    grp = np.cumsum(new) - 1
    out_e = np.zeros(int(grp[-1]) + 1, dtype=e.dtype)
    np.maximum.at(out_e, grp, e)
    return s[new], out_e


def cut_plan(tok_start: np.ndarray, tok_end: np.ndarray, n_bytes: int, cov_start: np.ndarray,
             cov_end: np.ndarray, unit: str, word_start: np.ndarray | None = None,
             word_end: np.ndarray | None = None) -> tuple[list[tuple[int, int]], int]:
    """Byte ranges to remove from one document, and the words left.

    ``cov_start``/``cov_end``: covered token intervals (merged). Word mode: a run of covered words
    ``[a, b)`` removes their bytes and the whitespace after them (``[start[a], start[b])``); a run
    reaching the end removes the whitespace before it instead; a run at the start takes the leading
    whitespace too. Byte mode: a covered byte range removes only the whole words inside it (given as
    ``word_start``/``word_end``), so no cut falls inside a word, nor inside a UTF-8 character.
    """
    if unit == "byte":
        ws, we = word_start, word_end
        assert ws is not None and we is not None
        runs = []
        for x, y in zip(cov_start.tolist(), cov_end.tolist()):
            a = int(np.searchsorted(ws, x, "left"))
            b = int(np.searchsorted(we, y, "right"))
            if a < b:
                runs.append((a, b))
        n_words = len(ws)
        starts, ends = ws, we
    else:
        runs = list(zip(cov_start.tolist(), cov_end.tolist()))
        n_words = len(tok_start)
        starts, ends = tok_start, tok_end
    if not runs:
        return [], n_words
    a_arr, b_arr = merge_intervals(np.array([r[0] for r in runs], np.int64), np.array([r[1] for r in runs], np.int64))
    ranges = []
    removed = 0
    for a, b in zip(a_arr.tolist(), b_arr.tolist()):
        b = min(b, n_words)
        if a >= b:
            continue
        removed += b - a
        if b == n_words:
            lo = int(ends[a - 1]) if a > 0 else 0
            hi = n_bytes
        else:
            lo = int(starts[a]) if a > 0 else 0
            hi = int(starts[b])
        ranges.append((lo, hi))
    return ranges, n_words - removed


def apply_cuts(data: bytes, ranges: list[tuple[int, int]] | tuple) -> bytes:
    """``data`` without the byte ranges (sorted, disjoint)."""
    out, prev = [], 0
    for lo, hi in ranges:
        out.append(data[prev:lo])
        prev = hi
    out.append(data[prev:])
    return b"".join(out)


def decide(ranges: list[tuple[int, int]], words_left: int, min_words_after: int) -> str | None:
    """The drop reason of a document after its cuts (None: kept, cut or not)."""
    if not ranges:
        return None
    if words_left == 0:
        return REASON_EMPTY
    if words_left < min_words_after:
        return REASON_SHORT
    return None


def exact_ids(tokens: Tokens, unit: str) -> np.ndarray:
    """Exact token ids (>= 1, for suffix sorting): byte values + 1, or the words' dictionary codes + 1."""
    if unit == "byte":
        return tokens.raw.astype(np.uint16) + 1
    if len(tokens.start) == 0:
        return np.zeros(0, np.uint32)
    doc_of = np.repeat(np.arange(len(tokens.text_off) - 1), np.diff(tokens.doc_off))
    s = tokens.start + tokens.text_off[doc_of]
    e = tokens.end + tokens.text_off[doc_of]
    words = _words_array(tokens.raw, ~whitespace_mask(tokens.raw), s, e)
    return words.dictionary_encode().indices.to_numpy(zero_copy_only=False).astype(np.uint32) + 1


def reference_dedup(texts: list[str], min_len: int, unit: str = "word", keep: str = "first",
                    min_words_after: int = 0) -> list[tuple[str | None, bytes]]:
    """The rule on ``texts`` (in corpus order) with one suffix array over all of them.

    Returns per text ``(reason, new UTF-8 bytes)``; ``reason`` is None for a kept text (cut or not).
    """
    arr = pa.array(texts, pa.large_string())
    tok = tokenize(arr, unit, with_ids=False)
    ids = exact_ids(tok, unit)
    n = len(texts)
    node, pos = mark_windows(ids, tok.doc_off, np.arange(n, dtype=np.uint64), np.zeros(n, np.int64), min_len, keep)
    inode, istart, iend = window_intervals(node, pos, min_len)
    out = []
    words = tokenize(arr, "word", with_ids=False) if unit == "byte" else tok
    for d in range(n):
        data = tok.doc_bytes(d)
        sel = inode == d
        a, b = tok.doc_off[d], tok.doc_off[d + 1]
        wa, wb = words.doc_off[d], words.doc_off[d + 1]
        ranges, left = cut_plan(tok.start[a:b], tok.end[a:b], len(data), istart[sel], iend[sel], unit,
                                words.start[wa:wb], words.end[wa:wb])
        out.append((decide(ranges, left, min_words_after), apply_cuts(data, ranges)))
    return out
