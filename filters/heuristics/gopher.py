"""Gopher quality and repetition rules (Rae et al. 2021, "Scaling Language Models:
Methods, Analysis & Insights from Training Gopher", arXiv:2112.11446, Appendix A.1,
Table A1), vectorised over Arrow batches.

Two published implementations of these rules disagree in details, so both are
available through ``variant``:

* ``"dclm"`` (default): DCLM's RefinedWeb reproduction
  (mlfoundations/dclm ``baselines/mappers/filters/content_filters.py``:
  ``page_length_filter`` .. ``stop_word_filter`` and
  ``massive_web_repetition_filters``), the rules run by
  ``baselines_configs/dclm_baseline_refinedweb.yaml``, reproduced exactly (checked
  document by document against DCLM's own code, ``bench/results/dclm_parity.json``).
  The page length counts fastText's tokens starting with a letter or digit
  (``split_words(model="fasttext")``: fastText splits on ASCII whitespace only); the
  other word rules use ``str.split()``; the symbol ratio adds ``#``, ``...``, ``. . .``
  and ``…``; bullets are ``● • * -`` at the start of stripped non-empty lines; stop
  words are counted with repetition, case-insensitively. Repetition counts *all*
  occurrences of a repeated line/paragraph/n-gram, over stripped non-empty segments,
  and n-grams are built on Unicode (UAX #29) words starting with a letter or digit,
  as DCLM's uniseg words (``_words.py`` says how, with which library).
* ``"datatrove"``: huggingface/datatrove ``GopherQualityFilter`` and
  ``GopherRepetitionFilter`` semantics, with whitespace word tokens (datatrove's
  default English tokenizer is spaCy; pass a whitespace tokenizer there to
  compare, as ``tests/filters/heuristics`` does). Symbol words are tokens made of
  Unicode punctuation/symbol/control characters only; repetition counts the
  *second and later* occurrences, n-gram duplicates are found by datatrove's
  greedy left-to-right scan, and ratios are over ``len(text)``.

Each rule is written once; what the two readings do differently is data, a
:class:`GopherVariant` (``DCLM`` and ``DATATROVE`` below). The n-gram statistics live in
``_ngrams.py``. Every threshold is a keyword argument with the paper's default; ``None``
turns a rule off. Reasons are ``gopher_quality:<rule>`` / ``gopher_rep:<rule>``.
Stages given the same :class:`~filters.heuristics._arrow.BatchWords` (``words=``) split a
batch into whitespace words once between them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.stage import Filter, ShardContext, StageResult, empty_dropped, split_by_reason
from filters.heuristics import _arrow as A
from filters.heuristics import _ngrams as G
from filters.heuristics import _words as W

logger = logging.getLogger(__name__)

#: Gopher's stop words (Rae et al. 2021, A.1): "the, be, to, of, and, that, have, with".
GOPHER_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
#: Gopher Table A1: top n-gram character fractions and duplicated n-gram fractions.
TOP_N_GRAMS = ((2, 0.20), (3, 0.18), (4, 0.16))
DUP_N_GRAMS = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))
_SYMBOL_ONLY = r"^[\pP\pS\pC]+$"  # a token with no letter, digit, mark or space
_HAS_LETTER = r"\pL"
#: str.isspace() characters except "\n", as an RE2 class
_WS_NO_NL = (
    "[\\t\\x0b\\x0c\\r\\x1c-\\x1f \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}"
    "\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}]"
)


@dataclass(frozen=True)
class GopherVariant:
    """How one implementation reads the Gopher rules: every difference between DCLM's and
    datatrove's code, as data (the rules in :class:`GopherQuality` and
    :class:`GopherRepetition` are written once)."""

    # --- quality
    #: tokens that count toward the page length: "fasttext" (DCLM: fastText's tokens starting
    #: with a letter or digit, see _words.fasttext_counts) or "not_symbol" (whitespace tokens
    #: not made only of punctuation/symbols)
    doc_words: str
    #: what a "symbol" character is for ``not_symbol``: "unicode" (every punctuation, symbol or control
    #: character, \pP\pS\pC) or "datatrove" (datatrove's own fixed set, ``datatrove.utils.text.PUNCTUATION_SET``,
    #: read from the installed library: it leaves out symbols such as "©", "•", "®", "€" and holds "１")
    symbol_chars: str
    #: mean word length over the counted tokens (else over all tokens)
    mean_over_counted: bool
    #: symbol-to-word rules: (reason, substrings counted) each
    symbol_rules: tuple[tuple[str, tuple[str, ...]], ...]
    #: lines: "nonblank" (``split("\n")``, stripped, non-empty) or "splitlines"
    lines: str
    bullets: tuple[str, ...]
    ellipses: tuple[str, ...]
    #: line ratios compared as ``count > ratio * lines`` (else ``count / lines > ratio``)
    ratio_as_product: bool
    #: non-alphabetic words as ``(n - alpha) / n > r`` (else ``alpha / n < 1 - r``)
    non_alpha_as_complement: bool
    #: stop words: "occurrences" (case-insensitive) or "distinct" (case-sensitive)
    stop_words: str
    # --- repetition
    #: segments: "nonblank" (split on "\n" / "\n\n", stripped, non-empty) or "runs"
    #: (``re.split(r"\n+")`` / ``re.split(r"\n{2,}", text.strip())``)
    segments: str
    #: a repeated segment counts with all its occurrences (else from the second on)
    count_first: bool
    #: a page with a single line (paragraph) passes that granularity; none: dropped
    single_segment_passes: bool
    #: character fractions over the segments' characters (else over ``len(text)``)
    chars_of_segments: bool
    #: a threshold of 0 turns the rule off (datatrove's ``if threshold and ...``)
    zero_is_off: bool
    #: order of the four segment rules (the first failing one gives the reason)
    segment_rules: tuple[str, ...]
    #: n-gram words: "uax29" (DCLM: Unicode word boundaries, words starting with a letter or
    #: digit, see _words.uax29_words) or "whitespace"
    ngram_words: str
    #: n-gram fractions over the words' characters (else over ``len(text)``)
    ngram_over_word_chars: bool
    #: the most common n-gram among ties: "longest" or "first" (see _ngrams.top_value)
    top_tie: str
    #: duplicated n-grams: "covered" or "greedy" (see _ngrams.dup_value)
    dup_scan: str


DCLM = GopherVariant(
    doc_words="fasttext", symbol_chars="unicode", mean_over_counted=False,
    symbol_rules=(("symbol_ratio", ("#", "...", ". . .", "\u2026")),), lines="nonblank",
    bullets=("\u25cf", "\u2022", "*", "-"), ellipses=("...", ". . .", "\u2026"), ratio_as_product=True,
    non_alpha_as_complement=True, stop_words="occurrences",
    segments="nonblank", count_first=True, single_segment_passes=True, chars_of_segments=True, zero_is_off=False,
    segment_rules=("dup_line_frac", "dup_para_frac", "dup_line_char_frac", "dup_para_char_frac"),
    ngram_words="uax29", ngram_over_word_chars=True, top_tie="longest", dup_scan="covered",
)  # fmt: skip
DATATROVE = GopherVariant(
    doc_words="not_symbol", symbol_chars="datatrove", mean_over_counted=True,
    symbol_rules=(("hash_ratio", ("#",)), ("ellipsis_ratio", ("...", "\u2026"))), lines="splitlines",
    bullets=("\u2022", "-"), ellipses=("...", "\u2026"), ratio_as_product=False,
    non_alpha_as_complement=False, stop_words="distinct",
    segments="runs", count_first=False, single_segment_passes=False, chars_of_segments=False, zero_is_off=True,
    segment_rules=("dup_para_frac", "dup_para_char_frac", "dup_line_frac", "dup_line_char_frac"),
    ngram_words="whitespace", ngram_over_word_chars=False, top_tie="first", dup_scan="greedy",
)  # fmt: skip
VARIANTS = {"dclm": DCLM, "datatrove": DATATROVE}


@functools.cache
def _symbol_only_re(chars: str) -> str:
    """The RE2 pattern of a word made only of symbol characters (``GopherVariant.symbol_chars``); used on
    non-ASCII words only (ASCII ones take a byte table, on which both sets agree: ASCII punctuation and
    controls)."""
    if chars == "unicode":
        return _SYMBOL_ONLY
    from datatrove.utils.text import PUNCTUATION_SET  # the installed datatrove's own set, not a copy

    members = "".join(f"\\x{{{ord(c):x}}}" for c in sorted(PUNCTUATION_SET))
    return f"^[{members}]+$"


def _quiet() -> np.errstate:
    """Ratios over empty pages are NaN (and compare False), not warnings."""
    return np.errstate(invalid="ignore", divide="ignore")


def _variant(variant: str) -> GopherVariant:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {tuple(VARIANTS)}, got {variant!r}")
    return VARIANTS[variant]


def _check_nonneg(**kwargs: float | None) -> None:
    for name, value in kwargs.items():
        if value is not None and (not isinstance(value, (int, float)) or value < 0):
            raise ValueError(f"{name} must be a non-negative number or None, got {value!r}")


def _check_ratio(**kwargs: float | None) -> None:
    for name, value in kwargs.items():
        if value is not None and (not isinstance(value, (int, float)) or not 0 <= value <= 1):
            raise ValueError(f"{name} must be in [0, 1] or None, got {value!r}")


class _SharesWords(Filter):
    """A filter that may share its batch's whitespace words with the next stage."""

    _words: A.BatchWords | None = None

    def split_words(self, table: pa.Table, texts: pa.Array) -> tuple[pa.Array, np.ndarray]:
        if self._words is None:
            return A.split_whitespace(texts)
        return self._words.split(table.column("text"), texts)

    def process(self, table: pa.Table, shard: ShardContext | None = None) -> StageResult:
        if table.num_rows == 0:
            return StageResult(table, empty_dropped())
        reasons = self.decide(table)
        result = split_by_reason(table, reasons)
        if self._words is not None:
            self._words.carry(table.column("text"), A.as_numpy(pc.is_null(reasons)), result.kept.column("text"))
        return result


class GopherQuality(_SharesWords):
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
        words: A.BatchWords | None = None,
        name: str | None = None,
    ) -> None:
        _variant(variant)
        _check_nonneg(min_doc_words=min_doc_words, max_doc_words=max_doc_words,
                      min_avg_word_length=min_avg_word_length, max_avg_word_length=max_avg_word_length,
                      max_symbol_word_ratio=max_symbol_word_ratio, min_stop_words=min_stop_words)  # fmt: skip
        _check_ratio(max_bullet_lines_ratio=max_bullet_lines_ratio, max_ellipsis_lines_ratio=max_ellipsis_lines_ratio,
                     max_non_alpha_words_ratio=max_non_alpha_words_ratio)  # fmt: skip
        if min_doc_words is not None and max_doc_words is not None and min_doc_words > max_doc_words:
            raise ValueError("min_doc_words > max_doc_words")
        if None not in (min_avg_word_length, max_avg_word_length) and min_avg_word_length > max_avg_word_length:
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
        self._words = words
        if name is not None:
            self.name = name

    def decide(self, table: pa.Table) -> pa.Array:
        v = VARIANTS[self.variant]
        texts = A.texts_of(table)
        n = len(texts)
        rb = A.ReasonBuilder(n)
        p = "gopher_quality:"
        words, wp = self.split_words(table, texts)
        n_words = A.per_doc(wp, n)
        rb.set(n_words == 0, p + "no_words")
        # per-word classes from a byte table (regexes only for non-ASCII words)
        has_letter, symbol_only = A.word_flags(words, _HAS_LETTER, _symbol_only_re(v.symbol_chars))
        if v.doc_words == "fasttext":
            counted = None
            n_counted = W.fasttext_counts(texts)
        else:
            counted = ~symbol_only
            n_counted = A.per_doc(wp, n, counted)
        if self.min_doc_words is not None:
            rb.set(n_counted < self.min_doc_words, p + "short_doc")
        if self.max_doc_words is not None:
            rb.set(n_counted > self.max_doc_words, p + "long_doc")
        with _quiet():
            wlen = A.lengths(words)
            if v.mean_over_counted:
                avg = A.per_doc(wp, n, wlen * counted) / n_counted
            else:
                avg = A.per_doc(wp, n, wlen) / n_words
        if self.min_avg_word_length is not None:
            rb.set(avg < self.min_avg_word_length, p + "below_avg_word_len")
        if self.max_avg_word_length is not None:
            rb.set(avg > self.max_avg_word_length, p + "above_avg_word_len")
        if self.max_symbol_word_ratio is not None:
            for reason, marks in v.symbol_rules:
                count = sum(A.byte_counts(texts, m) if m == "#" else A.as_numpy(pc.count_substring(texts, m))
                            for m in marks).astype(np.float64)  # fmt: skip
                with _quiet():
                    rb.set(count / n_words > self.max_symbol_word_ratio, p + reason)
        if self.max_bullet_lines_ratio is not None or self.max_ellipsis_lines_ratio is not None:
            n_lines, n_bullet, n_ellipsis = _line_counts(texts, v)
            for ratio, count, reason in ((self.max_bullet_lines_ratio, n_bullet, "bullet_lines"),
                                         (self.max_ellipsis_lines_ratio, n_ellipsis, "ellipsis_lines")):  # fmt: skip
                if ratio is not None:
                    with _quiet():
                        over = count > ratio * n_lines if v.ratio_as_product else count / n_lines > ratio
                    rb.set(over, p + reason)
        if self.max_non_alpha_words_ratio is not None:
            alpha = A.per_doc(wp, n, has_letter)
            r = self.max_non_alpha_words_ratio
            with _quiet():
                rb.set((n_words - alpha) / n_words > r if v.non_alpha_as_complement else alpha / n_words < 1 - r,
                       p + "non_alpha_words")  # fmt: skip
        if self.min_stop_words is not None:
            rb.set(_stop_word_counts(words, wp, n, self.stop_words, v.stop_words) < self.min_stop_words,
                   p + "few_stop_words")  # fmt: skip
        return rb.build()


def _stop_word_counts(words: pa.Array, wp: np.ndarray, n: int, stop_words: Sequence[str], how: str) -> np.ndarray:
    stop = pa.array(sorted(set(stop_words)), pa.large_string())
    if how == "occurrences":  # every occurrence, case-insensitive (str.lower)
        if not all(w.isascii() for w in stop_words):
            raise ValueError("stop words must be ASCII")
        # only words as long as a stop word can be one; and only ASCII ones: str.lower turns no non-ASCII
        # word into an ASCII stop word (Kelvin's K is the only such letter), Arrow's utf8_lower takes "İ" to "i"
        size = np.diff(A._bytes_of(A._as_large(words))[0]) if len(words) else np.zeros(0, np.int64)
        lo, hi = min(map(len, stop_words)), max(map(len, stop_words))
        cand = np.flatnonzero((size >= lo) & (size <= hi))
        sub = words.take(pa.array(cand))
        hit = A.as_numpy(pc.is_in(pc.ascii_lower(sub), value_set=stop)) & A.as_numpy(pc.string_is_ascii(sub))
        return np.bincount(wp[cand[hit]], minlength=n).astype(np.float64)
    idx = A.as_numpy(pc.fill_null(pc.index_in(words, value_set=stop), -1)).astype(np.int64)  # distinct, as written
    hit = idx >= 0
    if not hit.any():
        return np.zeros(n)
    pairs = np.unique(wp[hit] * len(stop) + idx[hit])
    return np.bincount(pairs // len(stop), minlength=n)


def _alternation(marks: Sequence[str]) -> str:
    return "(?:" + "|".join("".join("\\" + c if c in ".*-" else c for c in m) for m in marks) + ")"


def _line_counts(texts: pa.Array, v: GopherVariant) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lines, lines starting with a bullet, lines ending with an ellipsis) per text.

    Counted with multi-line regexes on the whole texts (no line arrays). "nonblank"
    lines are ``text.split("\n")``, stripped, non-empty; "splitlines" lines also break
    at ``\r``, ``\x0b``, ``\u2028``..., so texts holding those are recounted on their
    ``str.splitlines()`` lines. Bullets are looked for after leading spaces, ellipses
    before trailing ones.
    """
    ws = _WS_NO_NL
    # Arrow counts matches by searching again from the end of the previous one, where
    # RE2's ^ would match anew: line starts are spelled as "\n" on "\n" + text instead.
    nl, empty = pa.scalar("\n", pa.large_string()), pa.scalar("", pa.large_string())
    nl_texts = pc.binary_join_element_wise(nl, texts, empty)

    def count(pattern: str) -> np.ndarray:
        return A.as_numpy(pc.count_substring_regex(nl_texts, pattern)).astype(np.float64)

    bullet = "[" + "".join("\\" + b if b in "-*" else b for b in v.bullets) + "]"
    n_bullet = count(f"\\n{ws}*{bullet}")
    n_ellipsis = count(f"{_alternation(v.ellipses)}{ws}*(?:\\n|\\z)")
    if v.lines == "nonblank":
        return count(f"\\n{ws}*[^{ws[1:-1]}\\n]"), n_bullet, n_ellipsis
    breaks = A.byte_counts(texts, "\n")
    length = A.as_numpy(pc.binary_length(texts))
    trailing = A.as_numpy(pc.ends_with(texts, "\n"))
    n_lines = np.where(length == 0, 0.0, breaks + 1 - trailing)
    special = np.nonzero(A.as_numpy(pc.match_substring_regex(texts, A.SPLITLINES_SPECIAL)))[0]
    if len(special):
        lines, lp = A.splitlines(texts.take(pa.array(special)))
        m = len(special)
        starts, ends = pc.utf8_ltrim_whitespace(lines), pc.utf8_rtrim_whitespace(lines)
        is_bullet = np.any([A.as_numpy(pc.starts_with(starts, b)) for b in v.bullets], axis=0)
        is_ellipsis = np.any([A.as_numpy(pc.ends_with(ends, e)) for e in v.ellipses], axis=0)
        n_lines[special] = A.per_doc(lp, m)
        n_bullet[special] = A.per_doc(lp, m, is_bullet)
        n_ellipsis[special] = A.per_doc(lp, m, is_ellipsis)
    return n_lines, n_bullet, n_ellipsis


class GopherRepetition(_SharesWords):
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
        words: A.BatchWords | None = None,
        name: str | None = None,
    ) -> None:
        _variant(variant)
        _check_ratio(dup_line_frac=dup_line_frac, dup_para_frac=dup_para_frac, dup_line_char_frac=dup_line_char_frac,
                     dup_para_char_frac=dup_para_char_frac)  # fmt: skip
        self.top_n_grams = self._check_ngrams("top_n_grams", top_n_grams)
        self.dup_n_grams = self._check_ngrams("dup_n_grams", dup_n_grams)
        self.dup_line_frac = dup_line_frac
        self.dup_para_frac = dup_para_frac
        self.dup_line_char_frac = dup_line_char_frac
        self.dup_para_char_frac = dup_para_char_frac
        self.variant = variant
        self._words = words
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

    def decide(self, table: pa.Table) -> pa.Array:
        v = VARIANTS[self.variant]
        texts = A.texts_of(table)
        n = len(texts)
        rb = A.ReasonBuilder(n)
        p = "gopher_rep:"
        text_len = A.lengths(texts).astype(np.float64)
        rb.set(text_len == 0, p + "empty")
        seg = {kind: _segments(texts, n, kind, v) for kind in ("line", "para")}
        if v.single_segment_passes:
            rb.set(seg["line"]["n"] == 0, p + "empty")  # no line: the page is dropped
        elems, chars = ("dup_elems", "dup_chars") if v.count_first else ("repeat_elems", "repeat_chars")
        for rule in v.segment_rules:
            kind = "line" if rule.startswith("dup_line") else "para"
            threshold = getattr(self, rule)
            if threshold is None or (v.zero_is_off and not threshold):
                continue
            s = seg[kind]
            with _quiet():
                if rule.endswith("char_frac"):
                    frac = s[chars] / (s["chars"] if v.chars_of_segments else text_len)
                else:
                    frac = s[elems] / s["n"]
            over = frac > threshold
            if v.single_segment_passes:
                over &= s["n"] > 1
            rb.set(over, p + rule)
        if not (self.top_n_grams or self.dup_n_grams):
            return rb.build()
        todo = np.nonzero(rb.pending)[0]
        if len(todo) == 0:
            return rb.build()
        words, wp = self._ngram_words(table, texts, v, todo)
        sub_reasons = self._ngram_reasons(words, wp, len(todo), text_len[todo], v)
        for reason in sorted({r for r in sub_reasons.tolist() if r is not None}):
            mask = np.zeros(n, dtype=bool)
            mask[todo[sub_reasons == reason]] = True
            rb.set(mask, reason)
        return rb.build()

    def _ngram_words(self, table: pa.Table, texts: pa.Array, v: GopherVariant, todo: np.ndarray
                     ) -> tuple[pa.Array | tuple[np.ndarray, np.ndarray], np.ndarray]:  # fmt: skip
        """The n-gram words of the pages still pending (``todo``), parents renumbered: the strings, or
        (ids, lengths) (see ``_ngrams.NGrams``)."""
        if v.ngram_words == "whitespace":
            words, wp = self.split_words(table, texts)
            if len(todo) == len(texts):
                return words, wp
            pos = np.full(len(texts), -1, dtype=np.int64)
            pos[todo] = np.arange(len(todo))
            keep = pos[wp] >= 0
            return words.filter(pa.array(keep)), pos[wp[keep]]
        sub = texts.take(pa.array(todo)) if len(todo) < len(texts) else texts
        codes, wlen, parents = W.uax29_codes(sub)  # DCLM: uniseg words, ignore_punctuation=True
        return (codes, wlen), parents

    def _ngram_reasons(self, words: pa.Array, wp: np.ndarray, n_docs: int, text_len: np.ndarray,
                       v: GopherVariant) -> np.ndarray:  # fmt: skip
        specs = [(k, f, "top") for k, f in self.top_n_grams] + [(k, f, "dup") for k, f in self.dup_n_grams]
        specs.sort(key=lambda s: (s[2] != "top", s[0]))
        g = G.NGrams(words, wp, n_docs, start=min(k for k, _, _ in specs))
        denom = np.bincount(wp, weights=g.wlen, minlength=n_docs).astype(np.float64) if v.ngram_over_word_chars \
            else text_len  # fmt: skip
        reasons = np.full(n_docs, None, dtype=object)
        for k, frac, kind in specs:
            while g.n < k:
                g.advance()
            if kind == "top":
                value = G.top_value(g, k, v.top_tie)
            else:
                value = G.dup_value(g, k, v.dup_scan, denom, frac)
            with _quiet():
                hit = (value / denom > frac) & np.equal(reasons, None)
            reasons[hit] = f"gopher_rep:{kind}_{k}_gram"
        return reasons


def _segments(texts: pa.Array, n: int, kind: str, v: GopherVariant) -> dict[str, np.ndarray]:
    """Duplicate statistics of the lines or paragraphs of every text (see A.duplicate_stats)."""
    if v.segments == "nonblank":
        segs, sp = A.split(texts, "\n\n" if kind == "para" else "\n")
        segs = pc.utf8_trim_whitespace(segs)
        keep = A.as_numpy(pc.greater(pc.binary_length(segs), 0))
        segs, sp = segs.filter(pa.array(keep)), sp[keep]
    elif kind == "para":
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
