"""RefinedWeb's line-wise corrections (Penedo et al. 2023, arXiv:2306.01116, §G.2,
Table 11) as reproduced by DCLM (``baselines/mappers/modifiers.py``, steps
``word_counter_enricher`` .. ``word_removal_ratio_filter`` of
``baselines_configs/dclm_baseline_refinedweb.yaml``), in DCLM's order and with its
semantics:

1. drop lines with more than 50% upper-case characters (``str.isupper``);
2. drop lines that are entirely digits (``str.isdigit`` ratio > 0.999999);
3. drop counter lines ("12 likes", "3.4K shares"; DCLM's Python regex);
4. drop lines with fewer than 2 words (``str.split``; empty lines stay);
5. on lines of at most 10 words, remove the phrases "items in cart" (anywhere),
   "Read more..." (at the end) and "Sign-in" (at the start), dropping a line that is
   left blank (a line of only whitespace too);
6. drop the page when these removals took out more than 5% of its words (fastText's
   words starting with a letter or digit, ``_words.fasttext_counts``).

DCLM strips the page after every modifier but the line-length one, and drops it when
that leaves nothing (``refinedweb_lines:empty``): the strips are reproduced (they change
the first and last lines, and so their ratios), on one split of the batch into lines.
DCLM's "Read more..." regex leaves the dots unescaped (any three characters);
``phrases_as_regex=True`` (the ``dclm-exact`` variant) keeps that, the default matches the
literal phrase (an intent fix, ``README.md``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.stage import Mapper
from filters.heuristics import _arrow as A
from filters.heuristics import _words as W

logger = logging.getLogger(__name__)

_LOCATIONS = ("any", "prefix", "suffix")
_COUNTED = "likes|shares|comments|retweets|reposts|quotes|bookmarks|upvotes|downvotes|downloads|views|followers"
#: DCLM's counter_line_modifier, searched in ``line.lower()`` (Python ``re``: Unicode ``\\W`` ``\\d`` ``\\s``)
COUNTER = re.compile(rf"^\W*\d(?:,|\.|\d)*(?:K|k|M|m|B|b)?\s+(?:{_COUNTED})\W*$")
COUNTER_WORDS = f"(?i)(?:{_COUNTED})"  # RE2: the lines that can match (simple case folding covers str.lower)
BOILERPLATE = (("items in cart", "any"), ("Read more...", "suffix"), ("Sign-in", "prefix"))


def _escape_re2(s: str) -> str:
    return "".join("\\" + c if not c.isalnum() and c != " " else c for c in s)


def count_words(texts: pa.Array) -> np.ndarray:
    """DCLM's ``split_words(text, ignore_punctuation=True)`` count (fastText tokens starting with a letter or digit)."""
    return W.fasttext_counts(texts)


class RefinedWebLineFilter(Mapper):
    """RefinedWeb's line removals plus the "> 5% of words removed" page rule (DCLM's modifiers)."""

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
        phrases_as_regex: bool = False,
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
        self.phrases_as_regex = phrases_as_regex

    def _phrase_patterns(self) -> list[tuple[re.Pattern, str]]:
        """(DCLM's Python pattern, an RE2 pattern matching at least where it does) per phrase."""
        out = []
        for phrase, where in self.boilerplate:
            body = phrase.lower() if self.phrases_as_regex else re.escape(phrase.lower())
            py = {"any": rf"\s?(?:{body})", "prefix": rf"^(?:{body})\s?", "suffix": rf"\s?(?:{body})$"}[where]
            # RE2 prefilter: each letter with Python's extra IGNORECASE matches (İ ı ſ K), "." any character
            loose = "".join(_FOLDS.get(c, "." if c == "." and self.phrases_as_regex else _escape_re2(c))
                            for c in phrase.lower())  # fmt: skip
            out.append((re.compile(py, re.IGNORECASE), loose))
        return out

    def transform(self, table: pa.Table) -> tuple[pa.Table, pa.Array]:
        texts = A.texts_of(table)
        n = len(texts)
        rb = A.ReasonBuilder(n)
        lines, lp = A.split(texts, "\n")
        lines = lines.cast(pa.large_string())
        ft = W.fasttext_counts(lines).astype(np.float64)  # words never span a "\n"
        prev_words = np.bincount(lp, weights=ft, minlength=n)
        n_words = A.word_counts(lines)
        state = _Lines(lines, lp, n, ft, n_words)
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.max_uppercase_ratio is not None:
                upper = W.char_counts(state.lines, "isupper")
                state.step(rb, (state.length == 0) | (upper / state.length <= self.max_uppercase_ratio))
            if self.max_numeric_ratio is not None:
                digits = W.char_counts(state.lines, "isdigit")
                state.step(rb, (state.length == 0) | (digits / state.length <= self.max_numeric_ratio))
        if self.remove_counters:
            state.step(rb, ~_counter_lines(state.lines, state.alive))
        if self.min_line_words is not None:
            state.step(rb, (state.length == 0) | (state.n_words >= self.min_line_words), strip=False)
        for py, loose in self._phrase_patterns():
            short = state.alive.copy()
            if self.boilerplate_max_words is not None:
                short &= state.n_words <= self.boilerplate_max_words
            cand = np.flatnonzero(short & A.as_numpy(pc.match_substring_regex(state.lines, loose)))
            keep = ~(short & state.blank & (state.length > 0))  # a line of only whitespace is dropped too
            if len(cand):
                new = [py.sub("", ln) for ln in state.lines.take(pa.array(cand)).to_pylist()]
                gone = np.array([not x or x.isspace() for x in new], dtype=bool)
                keep[cand[gone]] = False
                state.replace(cand[~gone], [x for x, g in zip(new, gone) if not g])
            state.step(rb, keep)
        new_text = A.join_kept(state.lines, lp, state.alive, n, "\n")
        if self.max_removed_word_ratio is not None:
            new_words = np.bincount(lp[state.alive], weights=state.ft[state.alive], minlength=n)
            rb.set(prev_words == 0, "refinedweb_lines:no_words")
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = (prev_words - new_words) / prev_words
            rb.set(ratio > self.max_removed_word_ratio, "refinedweb_lines:removed_words")
        out = table.set_column(table.column_names.index("text"), table.schema.field("text"), new_text)
        return out, rb.build()


#: Python's IGNORECASE also matches these to the ASCII letters (re docs: İ ı ſ K)
_FOLDS = {"i": "[iIİı]", "s": "[sSſ]", "k": "[kKK]"}
_FOLDS.update({c: f"[{c}{c.upper()}]" for c in "abcdefghjlmnopqrtuvwxyz"})


def _counter_lines(lines: pa.Array, alive: np.ndarray) -> np.ndarray:
    """DCLM's counter regex on ``line.lower()``, in Python, for the lines that name a counter."""
    out = np.zeros(len(lines), dtype=bool)
    cand = np.flatnonzero(alive & A.as_numpy(pc.match_substring_regex(lines, COUNTER_WORDS)))
    if len(cand):
        out[cand] = [COUNTER.search(ln.lower()) is not None for ln in lines.take(pa.array(cand)).to_pylist()]
    return out


class _Lines:
    """The lines of a batch through DCLM's modifiers: the lines still in (``alive``), their current
    text, and ``strip()`` of the page between modifiers reproduced on the lines (leading and
    trailing blank lines go, the first and last lines lose their outer whitespace)."""

    def __init__(self, lines: pa.Array, parents: np.ndarray, n_docs: int, ft: np.ndarray, n_words: np.ndarray):
        self.lines, self.parents, self.n_docs = lines, parents, n_docs
        self.ft, self.n_words = ft, n_words
        self.alive = np.ones(len(lines), dtype=bool)
        self.length = A.lengths(lines).astype(np.float64)
        self.blank = A.as_numpy(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(lines)), 0))

    def replace(self, idx: np.ndarray, values: list[str]) -> None:
        """Lines ``idx`` now read ``values`` (counts follow)."""
        if len(idx) == 0:
            return
        new = pa.array(values, pa.large_string())
        pos = np.arange(len(self.lines), dtype=np.int64)
        pos[idx] = len(self.lines) + np.arange(len(idx))
        self.lines = pa.concat_arrays([self.lines, new]).take(pa.array(pos))
        self.length[idx] = A.lengths(new)
        self.blank[idx] = A.as_numpy(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(new)), 0))
        self.ft[idx] = W.fasttext_counts(new)
        self.n_words[idx] = A.word_counts(new)

    def step(self, rb: A.ReasonBuilder, keep: np.ndarray, strip: bool = True) -> None:
        """Keep the lines ``keep``; then ``"\n".join(lines).strip()``; an empty page is dropped."""
        self.alive &= keep
        p = self.parents
        if not strip:
            count = np.bincount(p[self.alive], minlength=self.n_docs)
            single = np.bincount(p[self.alive & (self.length == 0)], minlength=self.n_docs)
            rb.set((count == 0) | ((count == 1) & (single == 1)), "refinedweb_lines:empty")
            return
        solid = np.flatnonzero(self.alive & ~self.blank)  # ascending: documents in order
        has = np.zeros(self.n_docs, dtype=bool)
        has[p[solid]] = True
        first = np.full(self.n_docs, len(p), dtype=np.int64)
        last = np.full(self.n_docs, -1, dtype=np.int64)
        np.minimum.at(first, p[solid], solid)
        np.maximum.at(last, p[solid], solid)
        pos = np.arange(len(p), dtype=np.int64)
        self.alive &= (pos >= first[p]) & (pos <= last[p])  # blank lines outside the text go
        rb.set(~has, "refinedweb_lines:empty")
        edges = np.unique(np.concatenate([first[has], last[has]]))
        if len(edges):
            cur = self.lines.take(pa.array(edges))
            trimmed = pc.utf8_trim_whitespace(cur)
            lead = np.isin(edges, first[has])
            trail = np.isin(edges, last[has])
            new = pc.if_else(pa.array(lead & trail), trimmed,
                             pc.if_else(pa.array(lead), pc.utf8_ltrim_whitespace(cur),
                                        pc.utf8_rtrim_whitespace(cur)))  # fmt: skip
            changed = A.as_numpy(pc.not_equal(new, cur))
            if changed.any():
                self.replace(edges[changed], new.filter(pa.array(changed)).to_pylist())
