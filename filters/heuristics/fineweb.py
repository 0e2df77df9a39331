"""FineWeb's extra quality rules (Penedo et al. 2024, "The FineWeb Datasets",
arXiv:2406.17557, §3.3.3), with datatrove ``FineWebQualityFilter`` semantics:

* at least 12% of the non-blank lines end with terminal punctuation;
* at most 67% of the non-blank lines are 30 characters or shorter;
* the characters of repeated (second and later) non-blank lines are at most 1%
  of the non-newline characters;
* newlines per (whitespace) word at most 0.3.

Reasons are ``fineweb:<rule>``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.stage import Filter
from filters.heuristics import _arrow as A

#: Sentence-final punctuation of the Latin script and of other scripts (a subset of
#: Unicode's Sentence_Terminal property, as FineWeb uses for all languages).
TERMINAL_PUNCTUATION = (
    ".", "!", "?", "\u2026", "\u3002", "\uff01", "\uff1f", "\uff0e", "\uff61", "\u0589", "\u061f", "\u06d4",
    "\u0700", "\u0701", "\u0702", "\u0964", "\u0965", "\u104a", "\u104b", "\u1362", "\u1367", "\u1368", "\u166e",
    "\u17d4", "\u17d5", "\u1803", "\u1809", "\u203c", "\u203d", "\u2047", "\u2048", "\u2049", "\u2e2e", "\ua4ff",
    "\ua60e", "\ua60f", "\ua6f3", "\ua6f7", "\ufe52", "\ufe56", "\ufe57",
)  # fmt: skip


def _ends_with_any(suffixes: Sequence[str]) -> str:
    """An RE2 pattern matching strings that end with one of ``suffixes``."""
    alts = sorted({"".join(f"\\x{{{ord(c):x}}}" for c in s) for s in suffixes}, key=lambda a: (-len(a), a))
    return "(?:" + "|".join(alts) + ")$"


class FineWebQuality(Filter):
    name = "fineweb_quality"

    def __init__(
        self,
        *,
        line_punct_thr: float | None = 0.12,
        line_punct_exclude_zero: bool = False,
        stop_chars: Sequence[str] | None = None,
        short_line_thr: float | None = 0.67,
        short_line_length: int = 30,
        char_duplicates_ratio: float | None = 0.01,
        new_line_ratio: float | None = 0.3,
    ) -> None:
        for label, v in (("line_punct_thr", line_punct_thr), ("short_line_thr", short_line_thr),
                         ("char_duplicates_ratio", char_duplicates_ratio)):  # fmt: skip
            if v is not None and (not isinstance(v, (int, float)) or not 0 <= v <= 1):
                raise ValueError(f"{label} must be in [0, 1] or None")
        if new_line_ratio is not None and new_line_ratio < 0:
            raise ValueError("new_line_ratio must be >= 0 or None")
        if not isinstance(short_line_length, int) or short_line_length < 0:
            raise ValueError("short_line_length must be a non-negative int")
        self.line_punct_thr = line_punct_thr
        self.line_punct_exclude_zero = line_punct_exclude_zero
        self.stop_chars = tuple(stop_chars) if stop_chars is not None else TERMINAL_PUNCTUATION
        if not self.stop_chars or not all(self.stop_chars):
            raise ValueError("stop_chars must be non-empty strings")
        self.short_line_thr = short_line_thr
        self.short_line_length = short_line_length
        self.char_duplicates_ratio = char_duplicates_ratio
        self.new_line_ratio = new_line_ratio

    def decide(self, table: pa.Table) -> pa.Array:
        texts = A.texts_of(table)
        n = len(texts)
        rb = A.ReasonBuilder(n)
        lines, lp = A.split(texts, "\n")
        blank = A.as_numpy(pc.equal(pc.binary_length(pc.utf8_trim_whitespace(lines)), 0))
        lines, lp = lines.filter(pa.array(~blank)), lp[~blank]
        n_lines = A.per_doc(lp, n).astype(np.float64)
        rb.set(n_lines == 0, "fineweb:empty")
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.line_punct_thr is not None:
                ends = A.as_numpy(pc.match_substring_regex(lines, _ends_with_any(self.stop_chars)))
                ratio = A.per_doc(lp, n, ends) / n_lines
                bad = ratio < self.line_punct_thr
                if self.line_punct_exclude_zero:
                    bad &= ratio != 0
                rb.set(bad, "fineweb:line_punct_ratio")
            seg_len = A.lengths(lines)
            if self.short_line_thr is not None:
                short = A.per_doc(lp, n, seg_len <= self.short_line_length) / n_lines
                rb.set(short > self.short_line_thr, "fineweb:short_line_ratio")
            if self.char_duplicates_ratio is not None:
                dup = A.duplicate_stats(A.group_codes(lines, lp), seg_len, lp, n)["repeat_chars"]
                chars = A.lengths(texts) - A.byte_counts(texts, "\n")
                rb.set(dup / chars > self.char_duplicates_ratio, "fineweb:char_dup_ratio")
            if self.new_line_ratio is not None:
                n_words = A.word_counts(texts)
                newlines = A.byte_counts(texts, "\n")
                rb.set(newlines / n_words > self.new_line_ratio, "fineweb:list_ratio")
        return rb.build()
