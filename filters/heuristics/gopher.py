"""Gopher quality and repetition rules (Rae et al. 2021, "Scaling Language Models:
Methods, Analysis & Insights from Training Gopher", arXiv:2112.11446, Appendix A.1,
Table A1), vectorised over Arrow batches.

Two published implementations of these rules disagree in details, so both are
available through ``variant``:

* ``"dclm"`` (default): DCLM's RefinedWeb reproduction
  (mlfoundations/dclm ``baselines/mappers/filters/content_filters.py``:
  ``page_length_filter`` .. ``stop_word_filter`` and
  ``massive_web_repetition_filters``), the rules run by
  ``baselines_configs/dclm_baseline_refinedweb.yaml``. Words are whitespace
  tokens (``str.split``); the page length counts tokens starting with a letter
  or digit; the symbol ratio adds ``#``, ``...``, ``. . .`` and ``…``; bullets are
  ``● • * -`` at the start of stripped non-empty lines; stop words are counted
  with repetition, case-insensitively. Repetition counts *all* occurrences of a
  repeated line/paragraph/n-gram, over stripped non-empty segments, and n-grams
  are built on word tokens without punctuation (DCLM uses uniseg's UAX #29 word
  break; we approximate it with letter/digit/mark runs that may contain inner
  ``' ’ . , :``, a documented approximation).
* ``"datatrove"``: huggingface/datatrove ``GopherQualityFilter`` and
  ``GopherRepetitionFilter`` semantics, with whitespace word tokens (datatrove's
  default English tokenizer is spaCy; pass a whitespace tokenizer there to
  compare, as ``tests/filters/heuristics`` does). Symbol words are tokens made of
  Unicode punctuation/symbol/control characters only; repetition counts the
  *second and later* occurrences, n-gram duplicates are found by datatrove's
  greedy left-to-right scan, and ratios are over ``len(text)``.

Every threshold is a keyword argument with the paper's default; ``None`` turns a
rule off. Reasons are ``gopher_quality:<rule>`` / ``gopher_rep:<rule>``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.stage import Filter
from filters.heuristics import _arrow as A

logger = logging.getLogger(__name__)

VARIANTS = ("dclm", "datatrove")
#: Gopher's stop words (Rae et al. 2021, A.1): "the, be, to, of, and, that, have, with".
GOPHER_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
_SYMBOL_ONLY = r"^[\pP\pS\pC]+$"  # a token with no letter, digit, mark or space
_HAS_LETTER = r"\pL"


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


def _check_nonneg(**kwargs: float | None) -> None:
    for name, value in kwargs.items():
        if value is not None and (not isinstance(value, (int, float)) or value < 0):
            raise ValueError(f"{name} must be a non-negative number or None, got {value!r}")


def _check_ratio(**kwargs: float | None) -> None:
    for name, value in kwargs.items():
        if value is not None and (not isinstance(value, (int, float)) or not 0 <= value <= 1):
            raise ValueError(f"{name} must be in [0, 1] or None, got {value!r}")


class GopherQuality(Filter):
    """Gopher's quality rules: length, mean word length, symbols, bullets, ellipses,
    alphabetic words and stop words (Rae et al. 2021, A.1).

    Defaults: 50..100,000 words, mean word length 3..10, symbol-to-word ratio
    <= 0.1, <= 90% lines starting with a bullet, <= 30% lines ending with an
    ellipsis, <= 20% words without a letter (i.e. >= 80% with one), >= 2 stop words.
    """

    name = "gopher_quality"

    def __init__(
        self,
        *,
        min_doc_words: int | None = 50,
        max_doc_words: int | None = 100_000,
        min_avg_word_length: float | None = 3,
        max_avg_word_length: float | None = 10,
        max_symbol_word_ratio: float | None = 0.1,
        max_bullet_lines_ratio: float | None = 0.9,
        max_ellipsis_lines_ratio: float | None = 0.3,
        max_non_alpha_words_ratio: float | None = 0.2,
        min_stop_words: int | None = 2,
        stop_words: Sequence[str] | None = None,
        variant: str = "dclm",
        name: str | None = None,
    ) -> None:
        _check_variant(variant)
        _check_nonneg(
            min_doc_words=min_doc_words,
            max_doc_words=max_doc_words,
            min_avg_word_length=min_avg_word_length,
            max_avg_word_length=max_avg_word_length,
            max_symbol_word_ratio=max_symbol_word_ratio,
            min_stop_words=min_stop_words,
        )
        _check_ratio(
            max_bullet_lines_ratio=max_bullet_lines_ratio,
            max_ellipsis_lines_ratio=max_ellipsis_lines_ratio,
            max_non_alpha_words_ratio=max_non_alpha_words_ratio,
        )
        if min_doc_words is not None and max_doc_words is not None and min_doc_words > max_doc_words:
            raise ValueError("min_doc_words > max_doc_words")
        if (
            min_avg_word_length is not None
            and max_avg_word_length is not None
            and min_avg_word_length > max_avg_word_length
        ):
            raise ValueError("min_avg_word_length > max_avg_word_length")
        self.min_doc_words = min_doc_words
        self.max_doc_words = max_doc_words
        self.min_avg_word_length = min_avg_word_length
        self.max_avg_word_length = max_avg_word_length
        self.max_symbol_word_ratio = max_symbol_word_ratio
        self.max_bullet_lines_ratio = max_bullet_lines_ratio
        self.max_ellipsis_lines_ratio = max_ellipsis_lines_ratio
        self.max_non_alpha_words_ratio = max_non_alpha_words_ratio
        self.min_stop_words = min_stop_words
        self.stop_words = tuple(GOPHER_STOP_WORDS if stop_words is None else stop_words)
        self.variant = variant
        if name is not None:
            self.name = name

    def decide(self, table: pa.Table) -> pa.Array:
        texts = A.texts_of(table)
        n = len(texts)
        rb = A.ReasonBuilder(n)
        p = "gopher_quality:"
        dclm = self.variant == "dclm"
        words, wp = A.split_whitespace(texts)
        n_words = A.per_doc(wp, n)
        wlen = A.lengths(words)
        rb.set(n_words == 0, p + "no_words")

        # per-word classes from a byte table (regexes only for non-ASCII words)
        has_letter, symbol_only = A.word_flags(words, _HAS_LETTER, _SYMBOL_ONLY)

        # page length
        if dclm:
            counted = A.starts_with_letter_or_number(words)
        else:
            counted = ~symbol_only
        n_counted = A.per_doc(wp, n, counted)
        if self.min_doc_words is not None:
            rb.set(n_counted < self.min_doc_words, p + "short_doc")
        if self.max_doc_words is not None:
            rb.set(n_counted > self.max_doc_words, p + "long_doc")

        # mean word length: DCLM over all tokens, datatrove over non-symbol tokens
        with np.errstate(invalid="ignore", divide="ignore"):
            if dclm:
                avg = A.per_doc(wp, n, wlen) / n_words
            else:
                avg = A.per_doc(wp, n, wlen * counted) / n_counted
        if self.min_avg_word_length is not None:
            rb.set(avg < self.min_avg_word_length, p + "below_avg_word_len")
        if self.max_avg_word_length is not None:
            rb.set(avg > self.max_avg_word_length, p + "above_avg_word_len")

        # symbol-to-word ratio
        if self.max_symbol_word_ratio is not None:
            hashes = A.byte_counts(texts, "#").astype(np.float64)
            ell = A.as_numpy(pc.count_substring(texts, "...")) + A.as_numpy(pc.count_substring(texts, "…"))
            with np.errstate(invalid="ignore", divide="ignore"):
                if dclm:
                    spaced = A.as_numpy(pc.count_substring(texts, ". . ."))
                    rb.set((hashes + ell + spaced) / n_words > self.max_symbol_word_ratio, p + "symbol_ratio")
                else:
                    rb.set(hashes / n_words > self.max_symbol_word_ratio, p + "hash_ratio")
                    rb.set(ell / n_words > self.max_symbol_word_ratio, p + "ellipsis_ratio")

        # bullet / ellipsis lines, counted with multi-line regexes on the whole texts
        # (no line arrays); datatrove's str.splitlines() also splits at \r, \x0b,
        # \u2028..., so batches holding those take the line-array path.
        if self.max_bullet_lines_ratio is not None or self.max_ellipsis_lines_ratio is not None:
            n_lines, n_bullet, n_ellipsis = self._line_counts(texts, dclm)
            with np.errstate(invalid="ignore", divide="ignore"):
                if self.max_bullet_lines_ratio is not None:
                    if dclm:  # DCLM: count > ratio * n_lines
                        rb.set(n_bullet > self.max_bullet_lines_ratio * n_lines, p + "bullet_lines")
                    else:
                        rb.set(n_bullet / n_lines > self.max_bullet_lines_ratio, p + "bullet_lines")
                if self.max_ellipsis_lines_ratio is not None:
                    if dclm:
                        rb.set(n_ellipsis > self.max_ellipsis_lines_ratio * n_lines, p + "ellipsis_lines")
                    else:
                        rb.set(n_ellipsis / n_lines > self.max_ellipsis_lines_ratio, p + "ellipsis_lines")

        # words without any letter
        if self.max_non_alpha_words_ratio is not None:
            alpha = A.per_doc(wp, n, has_letter)
            with np.errstate(invalid="ignore", divide="ignore"):
                if dclm:
                    rb.set((n_words - alpha) / n_words > self.max_non_alpha_words_ratio, p + "non_alpha_words")
                else:  # datatrove: alpha / n < 0.8
                    rb.set(alpha / n_words < 1 - self.max_non_alpha_words_ratio, p + "non_alpha_words")

        # stop words
        if self.min_stop_words is not None:
            stop = pa.array(sorted(set(self.stop_words)), pa.large_string())
            if dclm:  # occurrences, case-insensitive
                hit = A.as_numpy(pc.is_in(pc.utf8_lower(words), value_set=stop))
                count = A.per_doc(wp, n, hit)
            else:  # distinct stop words, case-sensitive
                idx = A.as_numpy(pc.fill_null(pc.index_in(words, value_set=stop), -1)).astype(np.int64)
                hit = idx >= 0
                if hit.any():
                    pairs = np.unique(wp[hit] * len(stop) + idx[hit])
                    count = np.bincount(pairs // len(stop), minlength=n)
                else:
                    count = np.zeros(n)
            rb.set(count < self.min_stop_words, p + "few_stop_words")
        return rb.build()


    @staticmethod
    def _line_counts(texts: pa.Array, dclm: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lines, lines starting with a bullet, lines ending with an ellipsis) per text.

        DCLM: lines are ``text.split("\n")``, stripped, non-empty; bullets ``● • * -``
        and endings ``...``, ``. . .``, ``…``. datatrove: ``text.splitlines()``,
        bullets ``• -`` after lstrip, endings ``...``, ``…`` before rstrip.
        """
        ws = _WS_NO_NL
        # Arrow counts matches by searching again from the end of the previous one, where
        # RE2's ^ would match anew: line starts are spelled as "\n" on "\n" + text instead.
        nl, empty = pa.scalar("\n", pa.large_string()), pa.scalar("", pa.large_string())
        nl_texts = pc.binary_join_element_wise(nl, texts, empty)

        def count(pattern: str, on: pa.Array = nl_texts) -> np.ndarray:
            return A.as_numpy(pc.count_substring_regex(on, pattern)).astype(np.float64)

        if dclm:
            n_lines = count(f"\\n{ws}*[^{ws[1:-1]}\\n]")
            n_bullet = count(f"\\n{ws}*[●•*\\-]")
            n_ellipsis = count(f"(?:\\.\\.\\.|\\. \\. \\.|…){ws}*(?:\\n|\\z)")
            return n_lines, n_bullet, n_ellipsis
        breaks = A.byte_counts(texts, "\n")
        length = A.as_numpy(pc.binary_length(texts))
        trailing = A.as_numpy(pc.ends_with(texts, "\n"))
        n_lines = np.where(length == 0, 0.0, breaks + 1 - trailing)
        n_bullet = count(f"\\n{ws}*[•\\-]")
        n_ellipsis = count(f"(?:\\.\\.\\.|…){ws}*(?:\\n|\\z)")
        # texts with other line breaks (few) are recounted on their str.splitlines() lines
        special = np.nonzero(A.as_numpy(pc.match_substring_regex(texts, A.SPLITLINES_SPECIAL)))[0]
        if len(special):
            lines, lp = A.splitlines(texts.take(pa.array(special)))
            m = len(special)
            starts, ends = pc.utf8_ltrim_whitespace(lines), pc.utf8_rtrim_whitespace(lines)
            bullet = A.as_numpy(pc.starts_with(starts, "•")) | A.as_numpy(pc.starts_with(starts, "-"))
            ell = A.as_numpy(pc.ends_with(ends, "...")) | A.as_numpy(pc.ends_with(ends, "…"))
            n_lines[special] = A.per_doc(lp, m)
            n_bullet[special] = A.per_doc(lp, m, bullet)
            n_ellipsis[special] = A.per_doc(lp, m, ell)
        return n_lines, n_bullet, n_ellipsis


#: str.isspace() characters except "\n", as an RE2 class
_WS_NO_NL = (
    "[\\t\\x0b\\x0c\\r\\x1c-\\x1f \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}"
    "\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}]"
)

# --------------------------------------------------------------------------- repetition

#: Gopher Table A1: top n-gram character fractions and duplicated n-gram fractions.
TOP_N_GRAMS = ((2, 0.20), (3, 0.18), (4, 0.16))
DUP_N_GRAMS = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))


def _ngram_words(texts: pa.Array, variant: str) -> tuple[pa.Array, np.ndarray]:
    if variant == "datatrove":
        return A.split_whitespace(texts)
    # UAX #29-like words without punctuation (DCLM: uniseg words, ignore_punctuation=True)
    spaced = pc.replace_substring_regex(texts, r"[^\pL\pN\pM_'’.,:]+", " ")
    words, wp = A.split_whitespace(spaced)
    words = pc.utf8_trim(words, characters="'’.,:_")
    keep = A.starts_with_letter_or_number(words)
    return words.filter(pa.array(keep)), wp[keep]


def _dense(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense ids (ranks of the sorted distinct keys) and the count of every id:
    exact, document-major order."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return inverse.astype(np.int64, copy=False), counts.astype(np.int64, copy=False)


class _NGrams:
    """Exact n-gram identities for every document of a batch, built incrementally.

    Only live positions are held: ``idx`` (ascending flat word positions whose
    n-gram may still repeat) and ``ids`` (a dense id of the n-gram starting there,
    unique per document and word sequence); ``counts[id]`` is its number of
    occurrences. :attr:`key` spells the same as a full array with ``-1`` elsewhere.
    """

    def __init__(self, words: pa.Array, parents: np.ndarray, n_docs: int, start: int = 1) -> None:
        self.parents = parents
        self.n_docs = n_docs
        self.wlen = A.lengths(words).astype(np.int64)
        self.cum = np.concatenate([[0], np.cumsum(self.wlen)])
        counts = np.bincount(parents, minlength=n_docs)
        self.doc_start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.doc_len = counts.astype(np.int64)
        w = len(words)
        # one past each word's document end: a window [j, j + n) fits iff j + n <= doc_end[j]
        self.doc_end = (self.doc_start + self.doc_len)[parents] if w else np.zeros(0, np.int64)
        if w:
            codes = A.as_numpy(pc.dictionary_encode(words).indices).astype(np.int64)
        else:
            codes = np.zeros(0, np.int64)
        self.codes = codes
        self.ndict = int(codes.max()) + 1 if w else 1
        if start >= 2 and w and n_docs * self.ndict * self.ndict < 2**62:
            # Straight to bigrams: a bigram can only repeat in a document if both its
            # words occur more than once in the batch (a cheap necessary condition).
            rep = np.bincount(codes, minlength=self.ndict)[codes] > 1
            ok = rep.copy()
            ok[:-1] &= rep[1:]
            ok &= np.arange(w, dtype=np.int64) + 2 <= self.doc_end
            idx = np.nonzero(ok)[0]
            self.n = 2
            self.idx = idx
            self.ids, self.counts = _dense((parents[idx] * self.ndict + codes[idx]) * self.ndict + codes[idx + 1])
        else:
            self.n = 1
            self.idx = np.arange(w, dtype=np.int64)
            self.ids, self.counts = _dense(parents * self.ndict + codes)

    @property
    def key(self) -> np.ndarray:
        full = np.full(len(self.codes), -1, dtype=np.int64)
        full[self.idx] = self.ids
        return full

    def advance(self) -> None:
        """Extend keys from n-grams to (n+1)-grams.

        An (n+1)-gram can only repeat if the n-gram it starts with repeats, so
        positions whose n-gram occurs once are pruned, as are windows that run past
        the document end. Most of a page's n-grams are unique, so the arrays shrink
        quickly with n.
        """
        n = self.n + 1
        idx, ids = self.idx, self.ids
        keep = self.counts[ids] > 1
        keep &= idx + n <= self.doc_end[idx]
        idx = idx[keep]
        self.idx = idx
        self.ids, self.counts = _dense(ids[keep] * self.ndict + self.codes[idx + n - 1])
        self.n = n

    def window_chars(self, idx: np.ndarray) -> np.ndarray:
        return self.cum[idx + self.n] - self.cum[idx]


class GopherRepetition(Filter):
    """Gopher's repetition rules (Rae et al. 2021, Table A1): duplicate line and
    paragraph fractions (0.3) and their character fractions (0.2), the top 2/3/4-gram
    character fractions (0.20/0.18/0.16) and the duplicated 5..10-gram character
    fractions (0.15 .. 0.10).

    Per document Python remains only in the ``"datatrove"`` variant's greedy
    duplicated-n-gram scan, and only for documents whose (vectorised) upper bound
    on that fraction exceeds the threshold.
    """

    name = "gopher_repetition"

    def __init__(
        self,
        *,
        dup_line_frac: float | None = 0.3,
        dup_para_frac: float | None = 0.3,
        dup_line_char_frac: float | None = 0.2,
        dup_para_char_frac: float | None = 0.2,
        top_n_grams: Sequence[tuple[int, float]] | None = TOP_N_GRAMS,
        dup_n_grams: Sequence[tuple[int, float]] | None = DUP_N_GRAMS,
        variant: str = "dclm",
        name: str | None = None,
    ) -> None:
        _check_variant(variant)
        _check_ratio(
            dup_line_frac=dup_line_frac,
            dup_para_frac=dup_para_frac,
            dup_line_char_frac=dup_line_char_frac,
            dup_para_char_frac=dup_para_char_frac,
        )
        self.top_n_grams = self._check_ngrams("top_n_grams", top_n_grams)
        self.dup_n_grams = self._check_ngrams("dup_n_grams", dup_n_grams)
        self.dup_line_frac = dup_line_frac
        self.dup_para_frac = dup_para_frac
        self.dup_line_char_frac = dup_line_char_frac
        self.dup_para_char_frac = dup_para_char_frac
        self.variant = variant
        if name is not None:
            self.name = name

    @staticmethod
    def _check_ngrams(label: str, spec: Sequence[tuple[int, float]] | None) -> tuple[tuple[int, float], ...]:
        if spec is None:
            return ()
        out = []
        for item in spec:
            try:
                n, frac = item
            except (TypeError, ValueError):
                raise ValueError(f"{label}: expected (n, fraction) pairs, got {item!r}") from None
            if not isinstance(n, int) or n < 1 or not 0 <= frac <= 1:
                raise ValueError(f"{label}: bad (n, fraction) pair {item!r}")
            out.append((n, float(frac)))
        return tuple(sorted(out))

    # ---- segments
    def _segments(self, texts: pa.Array, n: int, kind: str) -> dict[str, np.ndarray]:
        if self.variant == "dclm":
            segs, sp = A.split(texts, "\n\n" if kind == "para" else "\n")
            segs = pc.utf8_trim_whitespace(segs)
            keep = A.as_numpy(pc.greater(pc.binary_length(segs), 0))
            segs, sp = segs.filter(pa.array(keep)), sp[keep]
        else:
            if kind == "para":
                segs, sp = A.split(pc.utf8_trim_whitespace(texts), r"\n{2,}", regex=True)
            else:
                # re.split(r"\n+"): the pieces of split("\n") that are non-empty, plus the
                # (possibly empty) first and last piece of every text
                segs, sp = A.split(texts, "\n")
                keep = A.as_numpy(pc.binary_length(segs)) > 0
                if len(sp):
                    edge = np.ones(len(sp) + 1, dtype=bool)
                    edge[1:-1] = sp[1:] != sp[:-1]
                    keep |= edge[:-1] | edge[1:]
                if not keep.all():
                    segs, sp = segs.filter(pa.array(keep)), sp[keep]
        seg_len = A.lengths(segs)
        stats = A.duplicate_stats(A.group_codes(segs, sp), seg_len, sp, n)
        stats["n"] = A.per_doc(sp, n).astype(np.float64)
        stats["chars"] = A.per_doc(sp, n, seg_len)
        return stats

    def decide(self, table: pa.Table) -> pa.Array:
        texts = A.texts_of(table)
        n = len(texts)
        rb = A.ReasonBuilder(n)
        p = "gopher_rep:"
        text_len = A.lengths(texts).astype(np.float64)
        rb.set(text_len == 0, p + "empty")
        line = self._segments(texts, n, "line")
        para = self._segments(texts, n, "para")
        err = np.errstate(invalid="ignore", divide="ignore")
        with err:
            if self.variant == "dclm":
                # DCLM: one segment -> that granularity passes; none -> the page is dropped
                rb.set(line["n"] == 0, p + "empty")
                multi_l, multi_p = line["n"] > 1, para["n"] > 1
                if self.dup_line_frac is not None:
                    rb.set(multi_l & (line["dup_elems"] / line["n"] > self.dup_line_frac), p + "dup_line_frac")
                if self.dup_para_frac is not None:
                    rb.set(multi_p & (para["dup_elems"] / para["n"] > self.dup_para_frac), p + "dup_para_frac")
                if self.dup_line_char_frac is not None:
                    frac = line["dup_chars"] / line["chars"]
                    rb.set(multi_l & (frac > self.dup_line_char_frac), p + "dup_line_char_frac")
                if self.dup_para_char_frac is not None:
                    frac = para["dup_chars"] / para["chars"]
                    rb.set(multi_p & (frac > self.dup_para_char_frac), p + "dup_para_char_frac")
            else:
                # datatrove treats a threshold of 0 as "off" (``if self.dup_para_frac and ...``)
                if self.dup_para_frac:
                    rb.set(para["repeat_elems"] / para["n"] > self.dup_para_frac, p + "dup_para_frac")
                if self.dup_para_char_frac:
                    rb.set(para["repeat_chars"] / text_len > self.dup_para_char_frac, p + "dup_para_char_frac")
                if self.dup_line_frac:
                    rb.set(line["repeat_elems"] / line["n"] > self.dup_line_frac, p + "dup_line_frac")
                if self.dup_line_char_frac:
                    rb.set(line["repeat_chars"] / text_len > self.dup_line_char_frac, p + "dup_line_char_frac")

        if not (self.top_n_grams or self.dup_n_grams):
            return rb.build()
        todo = np.nonzero(rb.pending)[0]
        if len(todo) == 0:
            return rb.build()
        sub = texts.take(pa.array(todo)) if len(todo) < n else texts
        sub_reasons = self._ngram_reasons(sub, text_len[todo])
        sub_reasons = np.array(sub_reasons, dtype=object)
        for reason in sorted({r for r in sub_reasons.tolist() if r is not None}):
            mask = np.zeros(n, dtype=bool)
            mask[todo[sub_reasons == reason]] = True
            rb.set(mask, reason)
        return rb.build()

    def _ngram_reasons(self, texts: pa.Array, text_len: np.ndarray) -> list[str | None]:
        n_docs = len(texts)
        words, wp = _ngram_words(texts, self.variant)
        specs = [(k, f, "top") for k, f in self.top_n_grams] + [(k, f, "dup") for k, f in self.dup_n_grams]
        specs.sort(key=lambda s: (s[2] != "top", s[0]))
        g = _NGrams(words, wp, n_docs, start=min(k for k, _, _ in specs))
        total_word_chars = np.bincount(wp, weights=g.wlen, minlength=n_docs).astype(np.float64)
        denom = total_word_chars if self.variant == "dclm" else text_len
        reasons = np.full(n_docs, None, dtype=object)
        for k, frac, kind in specs:
            while g.n < k:
                g.advance()
            valid = g.idx
            if len(valid) == 0:
                if kind == "top" and self.variant == "datatrove":
                    value = self._first_window_value(g, k, n_docs, np.zeros(n_docs, dtype=bool))
                    self._mark(reasons, value, denom, frac, f"top_{k}_gram")
                continue
            ids = g.ids  # dense ids, document-major (ids of one document are contiguous)
            counts = g.counts
            first_pos = np.full(len(counts), len(wp), dtype=np.int64)
            np.minimum.at(first_pos, ids, valid)  # first occurrence of every n-gram
            udoc = wp[first_pos]  # non-decreasing
            if kind == "top":
                value = self._top_value(g, first_pos, udoc, counts, k, n_docs)
                label = f"top_{k}_gram"
            else:
                value = self._dup_value(g, valid, ids, counts, k, n_docs, denom, frac, wp)
                label = f"dup_{k}_gram"
            self._mark(reasons, value, denom, frac, label)
        return reasons.tolist()

    @staticmethod
    def _mark(reasons: np.ndarray, value: np.ndarray, denom: np.ndarray, frac: float, label: str) -> None:
        pending = np.array([r is None for r in reasons], dtype=bool)
        with np.errstate(invalid="ignore", divide="ignore"):
            hit = (value / denom > frac) & pending
        reasons[hit] = "gopher_rep:" + label

    @staticmethod
    def _first_window_value(g: _NGrams, k: int, n_docs: int, has_repeat: np.ndarray) -> np.ndarray:
        """datatrove, no repeated k-gram: Counter.most_common(1) is the first k-gram (count 1)."""
        value = np.zeros(n_docs, dtype=np.float64)
        docs = np.nonzero(~has_repeat & (g.doc_len >= k))[0]
        if len(docs):
            starts = g.doc_start[docs]
            value[docs] = g.cum[starts + k] - g.cum[starts] + (k - 1)
        return value

    def _top_value(self, g: _NGrams, first_pos, udoc, counts, k, n_docs) -> np.ndarray:
        value = np.zeros(n_docs, dtype=np.float64)
        chars = g.window_chars(first_pos).astype(np.float64)
        starts = np.nonzero(np.r_[True, udoc[1:] != udoc[:-1]])[0]  # segment per document
        docs = udoc[starts]
        maxc = np.maximum.reduceat(counts, starts)
        tied = counts == np.repeat(maxc, np.diff(np.r_[starts, len(udoc)]))
        if self.variant == "datatrove":
            # Counter.most_common(1): highest count, ties -> first inserted; len(" ".join(ngram)).
            # Only repeated n-grams survive pruning; documents without one use their first n-gram.
            big = np.iinfo(np.int64).max
            pos = np.minimum.reduceat(np.where(tied, first_pos, big), starts)  # earliest among the ties
            rep = maxc > 1
            value[docs[rep]] = (g.window_chars(pos[rep]) + (k - 1)) * maxc[rep]
            has_repeat = np.zeros(n_docs, dtype=bool)
            has_repeat[docs[rep]] = True
            value += GopherRepetition._first_window_value(g, k, n_docs, has_repeat)
        else:
            # DCLM: most common count (> 1), the longest n-gram (in word chars) among the ties
            longest = np.maximum.reduceat(np.where(tied, chars, 0.0), starts)
            value[docs] = np.where(maxc > 1, longest * maxc, 0.0)
        return value

    def _dup_value(self, g, valid, ids, counts, k, n_docs, denom, frac, wp) -> np.ndarray:
        # words covered by any n-gram occurring more than once (vectorised)
        repeated = counts[ids] > 1
        rep = valid[repeated]  # ascending start positions of repeated n-grams
        # characters of the union of the windows [j, j + k): clip each window at the next start
        ends = rep + k
        if len(rep) > 1:
            ends[:-1] = np.minimum(ends[:-1], rep[1:])
        covered_chars = np.bincount(wp[rep], weights=(g.cum[ends] - g.cum[rep]).astype(np.float64),
                                    minlength=n_docs)
        if self.variant == "dclm":
            return covered_chars
        # datatrove's greedy scan counts disjoint repeated windows, so it is <= covered_chars:
        # only documents above the threshold on the bound need the exact scan.
        with np.errstate(invalid="ignore", divide="ignore"):
            need = np.nonzero(covered_chars / denom > frac)[0]
        value = np.zeros(n_docs, dtype=np.float64)
        if len(need) == 0:
            return value
        rep_ids = ids[repeated]
        lo = np.searchsorted(rep, g.doc_start[need])
        hi = np.searchsorted(rep, g.doc_start[need] + g.doc_len[need])
        for d, a, b in zip(need.tolist(), lo.tolist(), hi.tolist()):
            # The scan visits n-grams left to right: a repeated one already seen adds its
            # characters and skips its k words; n-grams occurring once never match, so
            # only the repeated ones (a few) are visited, skipping those inside a match.
            pos = rep[a:b]
            chars = (g.cum[pos + k] - g.cum[pos]).tolist()
            seen: set[int] = set()
            total, nxt = 0, -1
            for j, key, c in zip(pos.tolist(), rep_ids[a:b].tolist(), chars):
                if j < nxt:
                    continue
                if key in seen:
                    total += c
                    nxt = j + k
                else:
                    seen.add(key)
            value[d] = total
        return value
