"""Vectorised building blocks shared by the heuristic stages.

Every helper works on a whole batch: texts are split into a flat array of
segments (lines, words, paragraphs) plus the index of the document each segment
belongs to (``parents``); per-document statistics are then ``np.bincount``
reductions over ``parents``. Nothing here loops over documents in Python.
"""

from __future__ import annotations

import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# str.splitlines() boundaries (Python docs, "str.splitlines"): \n \r \r\n \v \f \x1c \x1d \x1e \x85 \u2028 \u2029
SPLITLINES_PATTERN = "\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]"
SPLITLINES_SPECIAL = "[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]"  # line breaks other than \n


def texts_of(table: pa.Table, column: str = "text") -> pa.Array:
    """The text column as one contiguous large_string array (nulls become "")."""
    col = table.column(column)
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if arr.type != pa.large_string():
        arr = arr.cast(pa.large_string())
    if arr.null_count:
        arr = pc.fill_null(arr, "")
    return arr


def flatten(lists: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Flatten a list array: (values, parent document index of every value)."""
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    values = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    return values, parents


def split(texts: pa.Array, pattern: str, *, regex: bool = False) -> tuple[pa.Array, np.ndarray]:
    """Split every text on ``pattern``: flat segments and their parent indices.

    Like ``str.split(sep)``: an empty text gives one empty segment.
    """
    lists = pc.split_pattern_regex(texts, pattern) if regex else pc.split_pattern(texts, pattern)
    return flatten(lists)


def split_whitespace(texts: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """``str.split()`` for every text (Unicode whitespace, no empty tokens)."""
    # Arrow yields empty tokens for leading/trailing whitespace; trimmed texts only
    # yield one, for a text that is empty or all whitespace.
    trimmed = pc.utf8_trim_whitespace(texts)
    values, parents = flatten(pc.utf8_split_whitespace(trimmed))
    empty_docs = np.nonzero(as_numpy(pc.equal(pc.binary_length(trimmed), 0)))[0]
    if len(empty_docs):
        mask = ~np.isin(parents, empty_docs)
        values = values.filter(pa.array(mask))
        parents = parents[mask]
    return values, parents


# str.isspace() characters, for RE2 (whose \s is ASCII only)


_ASCII_WS = np.zeros(256, dtype=bool)
_ASCII_WS[[0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20]] = True
_NON_ASCII_WS = "[\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}]"


def _bytes_of(strings: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """(offsets relative to the first string, UTF-8 bytes) of a large_string array without nulls."""
    n = len(strings)
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int64, count=n + 1, offset=strings.offset * 8)
    buf = strings.buffers()[2]
    data = np.frombuffer(buf, dtype=np.uint8)[offsets[0] : offsets[-1]] if buf is not None else None
    return offsets - offsets[0], data


def _as_large(strings: pa.Array) -> pa.Array:
    if isinstance(strings, pa.ChunkedArray):
        strings = strings.combine_chunks()
    if strings.type != pa.large_string():
        strings = strings.cast(pa.large_string())
    if strings.null_count:
        strings = pc.fill_null(strings, "")
    return strings


_ASCII_ALNUM = np.zeros(256, dtype=bool)
_ASCII_ALNUM[np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", np.uint8)] = True


def letter_or_number_at(data: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Whether the UTF-8 character starting at each byte position ``pos`` of ``data`` is a
    letter or a number (Unicode categories L* / N*, RE2's ``[\\pL\\pN]``).

    ASCII from a byte table; other characters are decoded with numpy and their category
    looked up once per distinct code point.
    """
    lead = data[pos]
    out = _ASCII_ALNUM[lead]
    wide = np.flatnonzero(lead >= 0xC0)
    if len(wide):
        p = pos[wide]
        b0 = data[p].astype(np.int64)
        last = len(data) - 1  # continuation bytes past a 2- or 3-byte character are masked out below
        b1, b2, b3 = (data[np.minimum(p + k, last)].astype(np.int64) & 0x3F for k in (1, 2, 3))
        cp = np.where(b0 < 0xE0, ((b0 & 0x1F) << 6) | b1,
                      np.where(b0 < 0xF0, ((b0 & 0x0F) << 12) | (b1 << 6) | b2,
                               ((b0 & 0x07) << 18) | (b1 << 12) | (b2 << 6) | b3))  # fmt: skip
        uniq, inv = np.unique(cp, return_inverse=True)
        ok = np.array([unicodedata.category(chr(int(c)))[0] in "LN" for c in uniq], dtype=bool)
        out[wide] = ok[inv]
    return out


def starts_with_letter_or_number(strings: pa.Array) -> np.ndarray:
    """``regex.match(r"[\\pL\\pN]", s)`` for every string, with numpy."""
    strings = _as_large(strings)
    out = np.zeros(len(strings), dtype=bool)
    rel, data = _bytes_of(strings) if len(strings) else (None, None)
    if data is None:
        return out
    nonempty = np.flatnonzero(rel[1:] > rel[:-1])
    out[nonempty] = letter_or_number_at(data, rel[:-1][nonempty])
    return out


def word_counts(strings: pa.Array, letter_or_number: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """``len(s.split())`` for every string; with ``letter_or_number``, also the number of
    those words that start with a letter or a number (DCLM's ``split_words`` with
    ``ignore_punctuation``): ``(words, words starting with a letter or number)``.

    Counts word starts (a non-space byte after a space byte or at the start) on the
    UTF-8 bytes with numpy; strings holding a non-ASCII space (rare) take a regex path.
    """
    strings = _as_large(strings)
    n = len(strings)
    counts = np.zeros(n, dtype=np.int64)
    alnum = np.zeros(n, dtype=np.int64)
    if n == 0:
        return (counts, alnum) if letter_or_number else counts
    rel, data = _bytes_of(strings)
    if data is not None and rel[-1] > 0:
        ws = _ASCII_WS[data]
        start = ~ws
        start[1:] &= ws[:-1]
        firsts = rel[:-1][rel[:-1] < len(data)]
        start[firsts] = ~ws[firsts]  # a string's first byte
        pos = np.flatnonzero(start)  # word starts (few compared with bytes)
        counts = np.diff(np.searchsorted(pos, rel)).astype(np.int64)
        if letter_or_number:
            pos = pos[letter_or_number_at(data, pos)]
            alnum = np.diff(np.searchsorted(pos, rel)).astype(np.int64)
    odd = np.nonzero(as_numpy(pc.match_substring_regex(strings, _NON_ASCII_WS)))[0]
    for i in odd:  # non-ASCII whitespace: exact Python semantics
        words = strings[int(i)].as_py().split()
        counts[i] = len(words)
        alnum[i] = sum(unicodedata.category(w[0])[0] in "LN" for w in words)
    return (counts, alnum) if letter_or_number else counts


# Byte classes for :func:`word_flags`: 1 = ASCII letter, 2 = not a punctuation/symbol/
# control character (ASCII letter, digit, space), 4 = a byte of a non-ASCII character.
_BYTE_CLASS = np.zeros(256, dtype=np.uint8)
_BYTE_CLASS[np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", np.uint8)] = 1 | 2
_BYTE_CLASS[np.frombuffer(b"0123456789 ", np.uint8)] = 2
_BYTE_CLASS[0x80:] = 4


def word_flags(words: pa.Array, letter_re: str, symbol_only_re: str) -> tuple[np.ndarray, np.ndarray]:
    """(has a letter, made only of punctuation/symbol/control characters) per string.

    ASCII strings are classified from a byte table with one ``bitwise_or.reduceat``
    over the batch; strings with a non-ASCII byte take the regexes ``letter_re``
    (e.g. ``\\pL``) and ``symbol_only_re`` (e.g. ``^[\\pP\\pS\\pC]+$``), which must agree
    with the table on ASCII.
    """
    if isinstance(words, pa.ChunkedArray):
        words = words.combine_chunks()
    n = len(words)
    letter = np.zeros(n, dtype=bool)
    symbol = np.zeros(n, dtype=bool)
    if n == 0:
        return letter, symbol
    if words.type != pa.large_string():
        words = words.cast(pa.large_string())
    if words.null_count:
        words = pc.fill_null(words, "")
    bufs = words.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64, count=n + 1, offset=words.offset * 8)
    if bufs[2] is None or offsets[-1] == offsets[0]:
        return letter, symbol
    data = np.frombuffer(bufs[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    rel = offsets - offsets[0]
    nonempty = np.nonzero(rel[1:] > rel[:-1])[0]
    bits = np.bitwise_or.reduceat(_BYTE_CLASS[data], rel[nonempty])
    letter[nonempty] = (bits & 1).astype(bool)
    symbol[nonempty] = (bits & 2) == 0
    odd = nonempty[(bits & 4).astype(bool)]
    if len(odd):
        sub = words.take(pa.array(odd))
        # Python's str.isalpha (its Unicode tables: DCLM and datatrove test letters with it)
        from filters.heuristics._words import char_counts

        letter[odd] = char_counts(sub, "isalpha") > 0
        symbol[odd] = as_numpy(pc.match_substring_regex(sub, symbol_only_re))
    return letter, symbol


def byte_counts(strings: pa.Array, char: str) -> np.ndarray:
    """Occurrences of the ASCII character ``char`` in every string (``pc.count_substring``),
    from one comparison over the batch's UTF-8 bytes (no non-ASCII byte equals an ASCII one)."""
    code = ord(char)
    if code >= 0x80:
        raise ValueError("byte_counts needs an ASCII character")
    if isinstance(strings, pa.ChunkedArray):
        strings = strings.combine_chunks()
    n = len(strings)
    if strings.type != pa.large_string():
        strings = strings.cast(pa.large_string())
    bufs = strings.buffers()
    if n == 0 or bufs[2] is None:
        return np.zeros(n, dtype=np.int64)
    offsets = np.frombuffer(bufs[1], dtype=np.int64, count=n + 1, offset=strings.offset * 8)
    data = np.frombuffer(bufs[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    pos = np.flatnonzero(data == code)
    counts = np.diff(np.searchsorted(pos, offsets - offsets[0])).astype(np.int64)
    if strings.null_count:
        counts[as_numpy(pc.is_null(strings))] = 0
    return counts


def ends_with_any(suffixes) -> str:  # noqa: ANN001
    """An RE2 pattern matching strings that end with one of ``suffixes``."""
    alts = sorted({"".join(f"\\x{{{ord(c):x}}}" for c in s) for s in suffixes}, key=lambda a: (-len(a), a))
    return "(?:" + "|".join(alts) + ")$"


def splitlines(texts: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """``str.splitlines()`` for every text: no trailing empty line, "" gives no line."""
    special = pc.any(pc.match_substring_regex(texts, SPLITLINES_SPECIAL)).as_py()
    values, parents = split(texts, SPLITLINES_PATTERN, regex=True) if special else split(texts, "\n")
    # str.splitlines drops the empty piece after a final line break and returns [] for "".
    n = len(values)
    if n == 0:
        return values, parents
    is_last = np.ones(n, dtype=bool)
    is_last[:-1] = parents[1:] != parents[:-1]
    empty = (pc.binary_length(values).to_numpy(zero_copy_only=False) == 0)
    drop = is_last & empty
    if drop.any():
        keep = ~drop
        values = values.filter(pa.array(keep))
        parents = parents[keep]
    return values, parents


def per_doc(parents: np.ndarray, n_docs: int, weights: np.ndarray | pa.Array | None = None) -> np.ndarray:
    """Sum ``weights`` (or count segments) per document."""
    if weights is None:
        return np.bincount(parents, minlength=n_docs).astype(np.int64)
    w = as_numpy(weights).astype(np.float64, copy=False)
    return np.bincount(parents, weights=w, minlength=n_docs)


def as_numpy(values: np.ndarray | pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_boolean(values.type):
        return values.to_numpy(zero_copy_only=False).astype(bool)
    return values.to_numpy(zero_copy_only=False)


def lengths(values: pa.Array) -> np.ndarray:
    """Characters (code points) per string, like Python's len()."""
    return as_numpy(pc.utf8_length(values)).astype(np.int64, copy=False)


def join_kept(
    values: pa.Array, parents: np.ndarray, keep: np.ndarray, n_docs: int, sep: str = "\n"
) -> pa.Array:
    """Join the kept segments of every document with ``sep`` (large_string array)."""
    kept_values = values.filter(pa.array(keep)) if not keep.all() else values
    kept_parents = parents[keep]
    counts = np.bincount(kept_parents, minlength=n_docs)
    offsets = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    kept_values = kept_values.cast(pa.large_string())
    lists = pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), kept_values)
    return pc.binary_join(lists, pa.scalar(sep, pa.large_string()))


def group_codes(values: pa.Array, parents: np.ndarray) -> np.ndarray:
    """An int64 key per segment, equal iff same document and same string.

    Uses Arrow's hash-based dictionary encoding, so it is exact (no collisions).
    """
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    enc = pc.dictionary_encode(values)
    codes = as_numpy(enc.indices).astype(np.int64)
    return parents * np.int64(len(enc.dictionary)) + codes


def duplicate_stats(
    keys: np.ndarray, seg_len: np.ndarray, parents: np.ndarray, n_docs: int
) -> dict[str, np.ndarray]:
    """Per document, from the segment keys of :func:`group_codes`:

    * ``repeat_elems`` / ``repeat_chars``: segments (and their characters) that are
      not the first occurrence of their string (datatrove ``find_duplicates``);
    * ``dup_elems`` / ``dup_chars``: all occurrences of strings seen more than once
      (DCLM ``repetition_filter``: count * length over strings with count > 1).
    """
    out = {
        k: np.zeros(n_docs, dtype=np.float64) for k in ("repeat_elems", "repeat_chars", "dup_elems", "dup_chars")
    }
    if len(keys) == 0:
        return out
    _, first_idx, inverse, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    is_first = np.zeros(len(keys), dtype=bool)
    is_first[first_idx] = True
    repeat = ~is_first
    dup = counts[inverse] > 1
    seg_len = seg_len.astype(np.float64)
    out["repeat_elems"] = np.bincount(parents, weights=repeat.astype(np.float64), minlength=n_docs)
    out["repeat_chars"] = np.bincount(parents, weights=seg_len * repeat, minlength=n_docs)
    out["dup_elems"] = np.bincount(parents, weights=dup.astype(np.float64), minlength=n_docs)
    out["dup_chars"] = np.bincount(parents, weights=seg_len * dup, minlength=n_docs)
    return out


def reasons_array(reasons: np.ndarray) -> pa.Array:
    """An object array of str/None -> Arrow string array (null = keep)."""
    return pa.array(reasons.tolist(), pa.string())


class ReasonBuilder:
    """First failing rule wins: ``set(mask, "reason")`` only fills rows still empty."""

    def __init__(self, n: int) -> None:
        self.codes = np.full(n, -1, dtype=np.int32)
        self.names: list[str] = []

    def set(self, mask: np.ndarray, reason: str) -> None:
        mask = np.asarray(mask, dtype=bool) & (self.codes < 0)
        if mask.any():
            if reason not in self.names:
                self.names.append(reason)
            self.codes[mask] = self.names.index(reason)

    @property
    def pending(self) -> np.ndarray:
        """Rows that no rule has dropped yet."""
        return self.codes < 0

    def build(self) -> pa.Array:
        if not self.names:
            return pa.nulls(len(self.codes), pa.string())
        dictionary = pa.array(self.names, pa.string())
        indices = pa.array(self.codes, pa.int32(), mask=self.codes < 0)
        return pa.DictionaryArray.from_arrays(indices, dictionary).cast(pa.string())



class BatchWords:
    """The whitespace words of the batch a chain of stages is working on, split once.

    Stages given the same instance (Gopher repetition and quality) ask it for a
    batch's words; a stage that drops rows hands it the words of the rows it keeps
    (:meth:`carry`), so the next stage, which gets the kept rows, finds them. A batch is
    recognised by the identity of its text column's buffers (held while cached); any
    other input is split anew, so results never depend on the cache. Not pickled: each
    worker starts empty (one pickle of the recipe keeps the stages sharing it).
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._held: pa.ChunkedArray | pa.Array | None = None
        self._words: pa.Array | None = None
        self._parents: np.ndarray | None = None

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    @staticmethod
    def _key_of(column: pa.ChunkedArray | pa.Array) -> tuple:
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        return tuple((c.offset, len(c), *(b.address if b is not None else 0 for b in c.buffers())) for c in chunks)

    def split(self, column: pa.ChunkedArray | pa.Array, texts: pa.Array) -> tuple[pa.Array, np.ndarray]:
        """``split_whitespace(texts)``, where ``texts`` is ``texts_of`` the table whose text column is ``column``."""
        key = self._key_of(column)
        if key != self._key:
            words, parents = split_whitespace(texts)
            self._key, self._held, self._words, self._parents = key, column, words, parents
        return self._words, self._parents

    def carry(self, column: pa.ChunkedArray | pa.Array, keep: np.ndarray, kept: pa.ChunkedArray | pa.Array) -> None:
        """Rows ``keep`` of ``column`` became ``kept``: keep their words for it."""
        if self._key is None or self._key_of(column) != self._key:
            return
        if keep.all():
            self._key, self._held = self._key_of(kept), kept
            return
        new_index = np.cumsum(keep) - 1
        mask = keep[self._parents]
        self._words = self._words.filter(pa.array(mask))
        self._parents = new_index[self._parents[mask]]
        self._key, self._held = self._key_of(kept), kept
