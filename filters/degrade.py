"""Known-answer degradations: turn a controlled fraction of clean documents into the junk web text is made of.

A proxy's ranking of data mixes can be trusted only as far as it orders mixes whose order is known. Clean
text against the same text with a fraction of its documents degraded is such a pair: whatever the proxy,
the clean mix should score better on held-out clean text. ``pipelines/calibrate.py`` builds these mixes and
measures how often each proxy size and budget gets the order right (decision accuracy).

Kinds (each a pure function of the text and a per-document ``random.Random``, so the same seed gives the same
output whatever the batching or the worker count):

==============  =========================================================================================
``shuffle``     the words of every sentence in random order (sentences end at ``.!?`` followed by
                whitespace; the final punctuation, line breaks and the whitespace between words stay where
                they were)
``boilerplate`` navigation, cookie-banner and footer lines inserted: a header block, a footer block and
                single lines between paragraphs; every original line kept, in order
``spam``        the document replaced by a near-duplicate (0.5-2% of words edited) of one of 16 spam pages
                (keyword lists, tag clouds, stuffed titles) drawn from the seed
``foreign``     the document replaced by text in another language (de, fr, es, it, pt, nl, ru, pl, zh) of at
                least its length in bytes
``charnoise``   ``rate`` (default 5%) of the letters changed: replaced by another letter or swapped with the
                next letter of the same word; length, whitespace and every non-letter character unchanged
==============  =========================================================================================

A document is degraded when a hash of ``(seed, kind, id)`` falls below ``fraction`` (a decision per document,
so the achieved fraction is the requested one up to sampling noise: the calibration reports both). Degraded
rows carry the kind in the ``degraded`` column (null elsewhere), so a run's output says which rows changed.
The spam pages, foreign text and boilerplate lines come from the demo pool's generators (:mod:`demopool`).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable

import pyarrow as pa

from curation.stage import Mapper

__all__ = ["KINDS", "Degrade", "DegradeSpec", "parse_degrade", "degrade_text", "selected"]

_SENTENCE_SEP = re.compile(r"((?<=[.!?])\s+)")
_SPACE = re.compile(r"(\s+)")
_END_PUNCT = re.compile(r"[.!?]+[\"')\]]*$")
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
N_SPAM_TEMPLATES = 16


def unit_hash(key: str) -> float:
    """A uniform number in [0, 1) fixed by ``key`` (sha256)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def selected(doc_id: str, kind: str, fraction: float, seed: int) -> bool:
    """Whether ``doc_id`` is among the degraded documents of ``(kind, fraction, seed)``."""
    return unit_hash(f"degrade/{seed}/{kind}/{doc_id}") < fraction


def _doc_rng(doc_id: str, kind: str, seed: int) -> random.Random:
    return random.Random(f"degrade/{seed}/{kind}/{doc_id}/rng")


# ------------------------------------------------------------------------------------------------ kinds


def shuffle_words(text: str, rng: random.Random) -> str:
    """Shuffle the words inside each sentence; separators (spaces, line breaks) stay in place."""
    out_lines = []
    for line in text.split("\n"):
        pieces = _SENTENCE_SEP.split(line)  # sentence, separator, sentence, ...
        for j in range(0, len(pieces), 2):
            toks = _SPACE.split(pieces[j])  # word, space, word, ...
            slots = [k for k in range(0, len(toks), 2) if toks[k]]
            if len(slots) < 2:
                continue
            words = [toks[k] for k in slots]
            end = _END_PUNCT.search(words[-1])  # the sentence's final punctuation stays at its end
            tail = ""
            if end and end.start() > 0:
                tail, words[-1] = end.group(), words[-1][: end.start()]
            rng.shuffle(words)
            words[-1] += tail
            for k, w in zip(slots, words):
                toks[k] = w
            pieces[j] = "".join(toks)
        out_lines.append("".join(pieces))
    return "\n".join(out_lines)


def _boilerplate_lines(rng: random.Random) -> tuple[list[str], list[str], list[str]]:
    from demopool import BOILERPLATE_LINES

    site = f"{rng.choice(['daily', 'city', 'home', 'best', 'top'])}{rng.choice(['news', 'guide', 'hub'])}.com"
    year = rng.randint(2009, 2023)
    header = rng.sample(BOILERPLATE_LINES["nav"], rng.randint(3, 8))
    if rng.random() < 0.5:
        header.insert(rng.randint(0, len(header)), rng.choice(BOILERPLATE_LINES["cookie"]))
    footer = [f.format(year=year, site=site, num=rng.randint(100, 999))
              for f in rng.sample(BOILERPLATE_LINES["footer"], rng.randint(2, 5))]
    return header, footer, list(BOILERPLATE_LINES["nav"])


def insert_boilerplate(text: str, rng: random.Random) -> tuple[str, list[int]]:
    """(degraded text, indices of the inserted lines in its ``split("\\n")``)."""
    header, footer, nav = _boilerplate_lines(rng)
    lines: list[tuple[str, bool]] = [(x, True) for x in header]
    for line in text.split("\n"):
        lines.append((line, False))
        if not line.strip() and rng.random() < 0.3:  # between paragraphs
            lines.append((rng.choice(nav), True))
    lines += [(x, True) for x in footer]
    return "\n".join(x for x, _ in lines), [i for i, (_, ins) in enumerate(lines) if ins]


def _spam_templates(seed: int) -> list[str]:
    from demopool import spam_page

    return [spam_page(random.Random(f"degrade/{seed}/spam-template/{k}")) for k in range(N_SPAM_TEMPLATES)]


def near_duplicate_spam(text: str, rng: random.Random, templates: list[str]) -> str:
    from demopool import near_duplicate

    return near_duplicate(rng, templates[rng.randrange(len(templates))])


def foreign_text(text: str, rng: random.Random) -> str:
    """Pages in other languages until at least ``len(text)`` bytes (one language per document)."""
    from demopool import non_english_page

    want = len(text.encode("utf-8"))
    first, lang = non_english_page(rng)
    parts, size = [first], len(first.encode("utf-8"))
    tries = 0
    while size < want and tries < 10_000:
        tries += 1
        page, lg = non_english_page(rng)
        if lg != lang:
            continue
        parts.append(page)
        size += len(page.encode("utf-8")) + 2
    return "\n\n".join(parts)


def char_noise(text: str, rng: random.Random, rate: float = 0.05) -> str:
    """Change about ``rate`` of the ASCII letters: a random other letter (same case) or a swap with the next
    letter of the word. Length, whitespace and non-letters are unchanged."""
    chars = list(text)
    i, n = 0, len(chars)
    while i < n:
        c = chars[i]
        if c.isascii() and c.isalpha() and rng.random() < rate:
            nxt = chars[i + 1] if i + 1 < n else ""
            if nxt.isascii() and nxt.isalpha() and nxt != c and rng.random() < 0.5:
                chars[i], chars[i + 1] = nxt, c
                i += 2
                continue
            new = rng.choice(_LETTERS.replace(c.lower(), ""))
            chars[i] = new.upper() if c.isupper() else new
        i += 1
    return "".join(chars)


KINDS = ("shuffle", "boilerplate", "spam", "foreign", "charnoise")


def degrade_text(kind: str, text: str, rng: random.Random, *, rate: float = 0.05,
                 templates: list[str] | None = None, seed: int = 0) -> str:
    """Apply one degradation kind to one text."""
    if kind == "shuffle":
        return shuffle_words(text, rng)
    if kind == "boilerplate":
        return insert_boilerplate(text, rng)[0]
    if kind == "spam":
        return near_duplicate_spam(text, rng, templates or _spam_templates(seed))
    if kind == "foreign":
        return foreign_text(text, rng)
    if kind == "charnoise":
        return char_noise(text, rng, rate)
    raise ValueError(f"unknown degradation {kind!r}; known: {list(KINDS)}")


class DegradeSpec(tuple):
    """``(kind, fraction)``: what ``--degrade KIND:FRACTION`` asks for."""

    __slots__ = ()

    def __new__(cls, kind: str, fraction: float) -> DegradeSpec:
        if kind not in KINDS:
            raise ValueError(f"unknown degradation {kind!r}; known: {list(KINDS)}")
        if not 0.0 < float(fraction) <= 1.0:
            raise ValueError(f"degradation fraction must be in (0, 1], got {fraction}")
        return super().__new__(cls, (kind, float(fraction)))

    @property
    def kind(self) -> str:
        return self[0]

    @property
    def fraction(self) -> float:
        return self[1]

    @property
    def label(self) -> str:
        return f"{self.kind}-{round(self.fraction * 100):g}"


def parse_degrade(value: str) -> DegradeSpec:
    """``"shuffle:0.25"`` (or ``"shuffle:25%"``) -> ``DegradeSpec("shuffle", 0.25)``, with a clear error."""
    kind, sep, frac = value.partition(":")
    if not sep:
        raise ValueError(f"--degrade {value!r}: expected KIND:FRACTION, e.g. shuffle:0.25 (kinds {list(KINDS)})")
    frac = frac.strip()
    try:
        f = float(frac[:-1]) / 100 if frac.endswith("%") else float(frac)
    except ValueError:
        raise ValueError(f"--degrade {value!r}: {frac!r} is not a fraction") from None
    return DegradeSpec(kind.strip(), f)


class Degrade(Mapper):
    """Degrade ``fraction`` of the documents (by a hash of their id) with ``kind``; add the ``degraded`` column."""

    name = "degrade"
    version = "1"

    def __init__(self, kind: str, fraction: float, seed: int = 0, rate: float = 0.05) -> None:
        spec = DegradeSpec(kind, fraction)
        if not 0 < rate < 1:
            raise ValueError(f"rate must be in (0, 1), got {rate}")
        self.kind, self.fraction, self.seed, self.rate = spec.kind, spec.fraction, int(seed), float(rate)
        self._templates: list[str] | None = None

    def setup(self) -> None:
        if self.kind == "spam":
            self._templates = _spam_templates(self.seed)

    def transform(self, table: pa.Table) -> tuple[pa.Table, pa.Array | None]:
        ids = table.column("id").to_pylist()
        texts = table.column("text").to_pylist()
        marks: list[str | None] = []
        if self.kind == "spam" and self._templates is None:
            self.setup()
        fn: Callable[[str, random.Random], str] = lambda t, r: degrade_text(  # noqa: E731
            self.kind, t, r, rate=self.rate, templates=self._templates, seed=self.seed)
        for k, (i, t) in enumerate(zip(ids, texts)):
            if t is not None and selected(i, self.kind, self.fraction, self.seed):
                texts[k] = fn(t, _doc_rng(i, self.kind, self.seed))
                marks.append(self.kind)
            else:
                marks.append(None)
        idx = table.schema.get_field_index("text")
        out = table.set_column(idx, table.schema.field("text"), pa.array(texts, table.schema.field("text").type))
        col = pa.array(marks, pa.string())
        if "degraded" in out.column_names:  # a second degradation stage: keep the first mark, add ours
            old = out.column("degraded").to_pylist()
            col = pa.array([a if a else b for a, b in zip(old, marks)], pa.string())
            out = out.set_column(out.schema.get_field_index("degraded"), "degraded", col)
        else:
            out = out.append_column("degraded", col)
        return out, None
