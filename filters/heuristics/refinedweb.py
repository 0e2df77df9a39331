"""RefinedWeb's line-wise corrections (Penedo et al. 2023, arXiv:2306.01116, §G.2,
Table 11) as reproduced by DCLM (``baselines/mappers/modifiers.py``, steps
``word_counter_enricher`` .. ``word_removal_ratio_filter`` of
``baselines_configs/dclm_baseline_refinedweb.yaml``):

* drop lines with more than 50% uppercase characters;
* drop lines that are entirely digits (numeric ratio > 0.999999);
* drop counter lines ("12 likes", "3.4K shares");
* drop lines with fewer than 2 words;
* on lines of at most 10 words, remove the phrases "items in cart" (anywhere),
  "Read more..." (at the end) and "Sign-in" (at the start), dropping the line if
  nothing else is left;
* drop the page when these removals took out more than 5% of its words.

One :class:`RefinedWebLineFilter` does all of it on a single line split. DCLM
applies the modifiers one after the other, stripping the page in between; the
only difference that makes is in leading/trailing whitespace of the first and
last lines. DCLM's "Read more..." regex leaves the dots unescaped (any three
characters); we match the literal phrase.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.stage import Mapper
from filters.heuristics import _arrow as A

logger = logging.getLogger(__name__)

_LOCATIONS = ("any", "prefix", "suffix")
#: DCLM counter_line_modifier (lowercased line); \W and \d made Unicode-aware for RE2.
COUNTER_RE = (
    r"^[^\pL\pN_]*\p{Nd}(?:,|\.|\p{Nd})*[kmb]?\s+"
    r"(?:likes|shares|comments|retweets|reposts|quotes|bookmarks|upvotes|downvotes|downloads|views|followers)"
    r"[^\pL\pN_]*$"
)
BOILERPLATE = (("items in cart", "any"), ("Read more...", "suffix"), ("Sign-in", "prefix"))


def _escape_re2(s: str) -> str:
    return "".join("\\" + c if not c.isalnum() and c != " " else c for c in s)


def count_words(texts: pa.Array) -> np.ndarray:
    """DCLM ``split_words(ignore_punctuation=True)``: whitespace tokens starting with a letter or digit."""
    return A.word_counts(texts, letter_or_number=True)[1]


class RefinedWebLineFilter(Mapper):
    """RefinedWeb's line removals plus the "> 5% of words removed" page rule."""

    name = "refinedweb_lines"

    def __init__(
        self,
        *,
        max_uppercase_ratio: float | None = 0.5,
        max_numeric_ratio: float | None = 0.999999,
        remove_counters: bool = True,
        min_line_words: int | None = 2,
        boilerplate: Sequence[tuple[str, str]] | None = BOILERPLATE,
        boilerplate_max_words: int | None = 10,
        max_removed_word_ratio: float | None = 0.05,
    ) -> None:
        for label, v in (("max_uppercase_ratio", max_uppercase_ratio), ("max_numeric_ratio", max_numeric_ratio),
                         ("max_removed_word_ratio", max_removed_word_ratio)):  # fmt: skip
            if v is not None and (not isinstance(v, (int, float)) or not 0 <= v <= 1):
                raise ValueError(f"{label} must be in [0, 1] or None")
        for label, v in (("min_line_words", min_line_words), ("boilerplate_max_words", boilerplate_max_words)):
            if v is not None and (not isinstance(v, int) or v < 0):
                raise ValueError(f"{label} must be a non-negative int or None")
        pairs = []
        for item in boilerplate or ():
            try:
                phrase, where = item
            except (TypeError, ValueError):
                raise ValueError(f"boilerplate entries are (phrase, location) pairs, got {item!r}") from None
            if where not in _LOCATIONS or not phrase:
                raise ValueError(f"bad boilerplate entry {item!r}; location is one of {_LOCATIONS}")
            pairs.append((phrase, where))
        self.max_uppercase_ratio = max_uppercase_ratio
        self.max_numeric_ratio = max_numeric_ratio
        self.remove_counters = remove_counters
        self.min_line_words = min_line_words
        self.boilerplate = tuple(pairs)
        self.boilerplate_max_words = boilerplate_max_words
        self.max_removed_word_ratio = max_removed_word_ratio

    def transform(self, table: pa.Table) -> tuple[pa.Table, pa.Array]:
        texts = A.texts_of(table)
        n = len(texts)
        lines, lp = A.split(texts, "\n")
        # Words never span a line break, so the page's DCLM word counts before and after
        # are sums over its lines: one count per line instead of two passes over the pages.
        n_words, n_counted = A.word_counts(lines, letter_or_number=True)
        prev_words = np.bincount(lp, weights=n_counted, minlength=n)
        length = A.lengths(lines).astype(np.float64)
        nonempty = length > 0
        keep = np.ones(len(lines), dtype=bool)
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.max_uppercase_ratio is not None:
                upper = A.as_numpy(pc.count_substring_regex(lines, r"\p{Lu}")).astype(np.float64)
                keep &= ~nonempty | (upper / length <= self.max_uppercase_ratio)
            if self.max_numeric_ratio is not None:
                digits = A.as_numpy(pc.count_substring_regex(lines, r"\p{Nd}")).astype(np.float64)
                keep &= ~nonempty | (digits / length <= self.max_numeric_ratio)
        if self.remove_counters:
            keep &= ~A.as_numpy(pc.match_substring_regex(pc.utf8_lower(lines), COUNTER_RE))
        if self.min_line_words is not None:
            keep &= ~nonempty | (n_words >= self.min_line_words)
        for phrase, where in self.boilerplate:
            body = _escape_re2(phrase)
            pattern = {"any": r"(?i)\s?" + body, "prefix": r"(?i)^" + body + r"\s?", "suffix": r"(?i)\s?" + body + "$"}
            new = pc.replace_substring_regex(lines, pattern[where], "")
            changed = A.as_numpy(pc.not_equal(new, lines))
            if self.boilerplate_max_words is not None:
                changed &= n_words <= self.boilerplate_max_words
            if not changed.any():
                continue
            blank = A.as_numpy(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(new)), 0))
            keep &= ~(changed & nonempty & blank)
            lines = pc.if_else(pa.array(changed), new, lines)
            idx = np.flatnonzero(changed)  # recount only the lines that changed
            n_words[idx], n_counted[idx] = A.word_counts(lines.take(pa.array(idx)), letter_or_number=True)
        new_text = pc.utf8_trim_whitespace(A.join_kept(lines, lp, keep, n, "\n"))
        rb = A.ReasonBuilder(n)
        rb.set(A.as_numpy(pc.equal(pc.binary_length(new_text), 0)), "refinedweb_lines:empty")
        if self.max_removed_word_ratio is not None:
            new_words = np.bincount(lp[keep], weights=n_counted[keep], minlength=n)
            rb.set(prev_words == 0, "refinedweb_lines:no_words")
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = (prev_words - new_words) / prev_words
            rb.set(ratio > self.max_removed_word_ratio, "refinedweb_lines:removed_words")
        out = table.set_column(table.column_names.index("text"), table.schema.field("text"), new_text)
        return out, rb.build()
