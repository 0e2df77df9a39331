"""C4's heuristic rules (Raffel et al. 2020, "Exploring the Limits of Transfer
Learning with a Unified Text-to-Text Transformer", JMLR 21(140), §2.2), with the
thresholds of DCLM's ``baselines/baselines_configs/c4.yaml`` (from TFDS
``c4_utils``): pages up to 190,000 characters; drop lines with a word over 1,000
characters; remove Wikipedia citation marks; keep lines that end in terminal
punctuation (``. ! ? "``, not an ellipsis) and have at least 5 words; drop pages
with "lorem ipsum" or ``{``; drop lines with "javascript" or cookie/policy phrases;
keep pages with at least 3 sentences; drop pages with a bad word.

Sentences are counted as kept lines plus the sentence boundaries inside them
(terminal punctuation, optional closing quotes/brackets, whitespace, more text);
DCLM uses NLTK's punkt, which also knows abbreviations ("Mr."), so a page that is
exactly at the 3-sentence boundary may be counted differently.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.stage import Filter, Mapper
from filters.heuristics import _arrow as A
from filters.heuristics.url import read_list

logger = logging.getLogger(__name__)

DEFAULT_BAD_WORDS = Path(__file__).resolve().parents[1] / "data" / "bad_words_en.txt"
CITATION_RE = r"\[\d*\]|\[edit\]|\[citation needed\]"
POLICY_PHRASES = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
#: TFDS c4_utils / DCLM punctuation_line_modifier: . ! ? " (and the ellipsis, then removed)
END_MARKS = (".", "!", "?", '"')
SENTENCE_BOUNDARY_RE = r"[.!?\x{2026}]+[\"'\x{2019}\x{201D})\]]*\s+\S"


class C4PageLength(Filter):
    """Drop pages longer than ``max_chars`` characters (C4/DCLM: 190,000)."""

    name = "c4_page_length"

    def __init__(self, *, max_chars: int | None = 190_000, min_chars: int | None = None) -> None:
        for label, v in (("max_chars", max_chars), ("min_chars", min_chars)):
            if v is not None and (not isinstance(v, int) or v < 0):
                raise ValueError(f"{label} must be a non-negative int or None")
        if max_chars is not None and min_chars is not None and min_chars > max_chars:
            raise ValueError("min_chars > max_chars")
        self.max_chars = max_chars
        self.min_chars = min_chars

    def decide(self, table: pa.Table) -> pa.Array:
        n_chars = A.lengths(A.texts_of(table))
        rb = A.ReasonBuilder(len(n_chars))
        if self.max_chars is not None:
            rb.set(n_chars > self.max_chars, "c4:long_page")
        if self.min_chars is not None:
            rb.set(n_chars < self.min_chars, "c4:short_page")
        return rb.build()


class C4Lines(Mapper):
    """C4's line rules and the page rules that depend on the kept lines.

    Lines are stripped; a line is dropped when it has a word longer than
    ``max_word_length``, does not end in one of ``end_marks`` (after citation
    removal), ends in an ellipsis, has fewer than ``min_words_per_line`` words,
    mentions "javascript" or a policy phrase. The page is dropped when a kept line
    contains "lorem ipsum" or ``{``, or fewer than ``min_sentences`` remain. The
    text becomes the kept lines joined by newlines.
    """

    name = "c4_lines"

    def __init__(
        self,
        *,
        max_word_length: int | None = 1000,
        remove_citations: bool = True,
        end_marks: Sequence[str] | None = END_MARKS,
        drop_ellipsis_lines: bool = True,
        min_words_per_line: int | None = 5,
        filter_lorem_ipsum: bool = True,
        filter_javascript: bool = True,
        filter_curly_bracket: bool = True,
        policy_phrases: Sequence[str] | None = POLICY_PHRASES,
        min_sentences: int | None = 3,
    ) -> None:
        for label, v in (
            ("max_word_length", max_word_length),
            ("min_words_per_line", min_words_per_line),
            ("min_sentences", min_sentences),
        ):
            if v is not None and (not isinstance(v, int) or v < 0):
                raise ValueError(f"{label} must be a non-negative int or None")
        if end_marks is not None and (isinstance(end_marks, str) or not all(end_marks)):
            raise ValueError("end_marks must be a sequence of non-empty strings")
        self.max_word_length = max_word_length
        self.remove_citations = remove_citations
        self.end_marks = tuple(end_marks) if end_marks is not None else None
        self.drop_ellipsis_lines = drop_ellipsis_lines
        self.min_words_per_line = min_words_per_line
        self.filter_lorem_ipsum = filter_lorem_ipsum
        self.filter_javascript = filter_javascript
        self.filter_curly_bracket = filter_curly_bracket
        self.policy_phrases = tuple(p.lower() for p in policy_phrases) if policy_phrases else ()
        self.min_sentences = min_sentences

    def transform(self, table: pa.Table) -> tuple[pa.Table, pa.Array]:
        texts = A.texts_of(table)
        n = len(texts)
        lines, lp = A.split(texts, "\n")
        lines = pc.utf8_trim_whitespace(lines)
        nbytes = A.as_numpy(pc.binary_length(lines))
        keep = nbytes > 0
        if self.max_word_length is not None:
            # only a line with more bytes than the limit can hold a word over it
            cand = np.nonzero(nbytes > self.max_word_length)[0]
            if len(cand):
                flat, fp = A.flatten(pc.utf8_split_whitespace(lines.take(pa.array(cand))))
                too_long = A.lengths(flat) > self.max_word_length
                keep[cand[np.bincount(fp[too_long], minlength=len(cand)) > 0]] = False
        # Each rule below looks only at the lines still kept (most web lines fail the
        # punctuation rule), so later rules cost little.
        idx = np.nonzero(keep)[0]
        sub = lines.filter(pa.array(keep))
        ok = np.ones(len(idx), dtype=bool)
        if self.remove_citations:
            has = A.as_numpy(pc.match_substring(sub, "["))
            cleaned = pc.replace_substring_regex(sub, CITATION_RE, "") if has.any() else sub
        else:
            cleaned = sub
        if self.end_marks is not None:
            ok &= A.as_numpy(pc.match_substring_regex(cleaned, A.ends_with_any(self.end_marks)))
        if self.drop_ellipsis_lines:
            ok &= ~A.as_numpy(pc.match_substring_regex(cleaned, A.ends_with_any(("...", "\u2026"))))
        if self.min_words_per_line is not None:  # words of the line before citation removal (TFDS)
            cand = np.nonzero(ok)[0]  # only lines that passed the rules above
            words = A.word_counts(sub.take(pa.array(cand)) if len(cand) < len(ok) else sub)
            ok[cand] = words >= self.min_words_per_line
        idx, cleaned = idx[ok], cleaned.filter(pa.array(ok))
        lower = pc.utf8_lower(cleaned)
        sp = lp[idx]
        rb = A.ReasonBuilder(n)
        ok = np.ones(len(idx), dtype=bool)
        if self.filter_lorem_ipsum:
            hit = A.as_numpy(pc.match_substring(lower, "lorem ipsum"))
            rb.set(np.bincount(sp[hit], minlength=n) > 0, "c4:lorem_ipsum")
        if self.filter_javascript:
            ok &= ~A.as_numpy(pc.match_substring(lower, "javascript"))
        if self.filter_curly_bracket:
            hit = ok & A.as_numpy(pc.match_substring(cleaned, "{"))
            rb.set(np.bincount(sp[hit], minlength=n) > 0, "c4:curly_bracket")
        if self.policy_phrases:
            policy = "|".join(re.escape(p) for p in self.policy_phrases)
            ok &= ~A.as_numpy(pc.match_substring_regex(lower, policy))
        if self.min_sentences is not None:
            inner = A.as_numpy(pc.count_substring_regex(cleaned, SENTENCE_BOUNDARY_RE)).astype(np.int64)
            sentences = np.bincount(sp, weights=(1 + inner) * ok, minlength=n)
            rb.set(sentences < self.min_sentences, "c4:too_few_sentences")
        new_text = A.join_kept(cleaned, sp, ok, n, "\n")
        rb.set(A.as_numpy(pc.equal(pc.binary_length(new_text), 0)), "c4:empty")
        out = table.set_column(table.column_names.index("text"), table.schema.field("text"), new_text)
        return out, rb.build()


class C4BadWords(Filter):
    """Drop pages containing a bad word as a whole word of the lowercased text (C4).

    ``bad_words_path`` defaults to a short list shipped with the package (a default
    only); pass the LDNOOBW list for a faithful C4 run.
    """

    name = "c4_bad_words"

    def __init__(
        self,
        *,
        bad_words_path: str | Path | None = DEFAULT_BAD_WORDS,
        bad_words: Iterable[str] = (),
    ) -> None:
        if bad_words_path is not None and not Path(bad_words_path).is_file():
            raise ValueError(f"bad_words_path {bad_words_path!r} is not a file")
        self.bad_words_path = str(bad_words_path) if bad_words_path is not None else None
        self.bad_words = tuple(sorted({w.strip().lower() for w in bad_words if w.strip()}))
        if self.bad_words_path is None and not self.bad_words:
            raise ValueError("give bad_words_path and/or bad_words")
        self._pattern: str | None = None

    def setup(self) -> None:
        words = set(self.bad_words)
        if self.bad_words_path is not None:
            words.update(read_list(self.bad_words_path))
        alt = "|".join(re.escape(w) for w in sorted(words, key=lambda w: (-len(w), w)))
        # whole word: flanked by a non-word character or the text boundary (C4's regex)
        self._pattern = r"(?:^|[^\pL\pN_])(?:" + alt + r")(?:[^\pL\pN_]|$)"

    def decide(self, table: pa.Table) -> pa.Array:
        if self._pattern is None:
            self.setup()
        lower = pc.utf8_lower(A.texts_of(table))
        hit = A.as_numpy(pc.match_substring_regex(lower, self._pattern))
        return pa.array(np.where(hit, "c4:bad_words", None).tolist(), pa.string())
