"""Deterministic demo pool: web-like documents in four native source formats and a WARC file, with planted truth.

``generate_pool(out_dir, n_docs=2000, seed=0)`` writes::

    out_dir/refinedweb/refinedweb-00000.parquet ...   (content, url, timestamp, dump, segment, image_urls)
    out_dir/pile/pile-00000.jsonl.zst ...             ({"text", "meta": {"pile_set_name"}})
    out_dir/redpajama/redpajama-c4-00000.jsonl ...    ({"text", "meta": {"url", "timestamp", "language"}})
    out_dir/dolma/dolma-cc-00000.jsonl.gz ...         ({"id", "text", "source", "added", "created", "metadata"})
    out_dir/warc/warc-cc-00000.warc.gz                crawled HTML pages, Common Crawl style (``demopool.warc``)
    out_dir/_truth/truth.jsonl, _truth/truth.parquet  one row per document: id, category, format, file,
                                                      row, dup_of, lang, topic, n_words, passage
    out_dir/_truth/passages.jsonl                     the planted repeated passages: passage, text, words
    out_dir/_truth/pool.json                          the manifest (also returned)

The ground truth and the manifest live under ``_truth/``: a name beginning with ``_`` is
bookkeeping, never an input (``curation.storage.expand``), so ``-i out_dir`` reads the
pool's documents and nothing else. :func:`manifest_path`, :func:`truth_path`,
:func:`read_manifest` and :func:`pool_files` find them.

About 27% of the documents go to RefinedWeb, 18% to the Pile, 18% to RedPajama, 27%
to Dolma and 10% to a WARC file of HTML pages wrapped in navigation, cookie banners,
footers and spam comments (so that the default run exercises reading and extracting
crawl archives). Each of the four text formats gets at least 3 shards (the WARC one
shard) of at most ``max_shard_docs`` documents (so a 1,000,000-document pool streams to
disk shard by shard with bounded memory). The ``id`` in the truth is the id our readers
give the document (``curation.readers``): ``<source>/<file name>/<row>`` for the formats
without ids, the record's own id for Dolma and WARC; for WARC pages ``n_words`` counts
the words of the document inside the page, what extraction should recover.

Every document is a pure function of ``(seed, index)`` (its own ``random.Random``),
so the pool is byte-identical across runs (gzip with mtime 0, single-threaded zstd,
fixed parquet settings) and duplicates are made by regenerating their original.

Categories and their probabilities (drawn independently per document):

============  =====  ============================================================================
category       p     what it looks like / what a DCLM-style chain should do with it
============  =====  ============================================================================
clean         0.52   English prose from a grammar over 12 topics (60-1500 words, optional title,
                     10% carry one share/cookie line): kept
long          0.02   the same prose, 3,000-8,000 words: kept (under Gopher's 100k-word cap)
exact_dup     0.06   a byte-identical copy of a clean document (any format): exact dedup drops it
near_dup      0.05   a clean document with 0.5-2% of its words replaced / inserted / deleted:
                     fuzzy (MinHash) dedup drops it
boilerplate   0.06   navigation, cookie banners and footers around 1-2 sentences: dropped
spam          0.05   keyword lists, tag clouds and shouting ads: dropped
short         0.05   "Page not found", "Coming soon." or one short sentence: dropped (< 50 words)
non_english   0.08   de, fr, es, it, pt, nl, ru, pl and zh pages: dropped by English language ID
lorem         0.02   lorem ipsum paragraphs: dropped (C4 "lorem ipsum" rule)
code          0.03   JavaScript / Python / CSS snippets with braces: dropped (C4 curly-brace rule)
repeated      0.03   a few lines repeated many times: dropped (Gopher repetition rules)
bullets       0.03   bullet-list pages: dropped (Gopher bullet-line ratio)
============  =====  ============================================================================

Planted repeated passages (for exact-substring dedup): ``max(2, n_docs // 250)`` passages of 60-90
words of the same prose; a clean document carries one with probability ``PASSAGE_RATE`` (4%), drawn
from its own hash, appended to its last paragraph (so a copy of it made by an exact or near duplicate
carries it too). ``truth.passage`` names the passage a document carries (null for none);
``passages.jsonl`` holds their texts. Documents that carry none are byte-identical to what the
generator wrote before passages existed (version 2), and no document changes category.

``clean_prose(rng, n_words)`` is the clean-prose generator, exported for other modules
(e.g. offline positives for a quality classifier). Command line::

    python -m demopool --out DIR --docs N --seed S
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import logging
import math
import os
import random
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from demopool import lexicon as L

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 3  # 3: planted repeated passages in 4% of the clean documents
#: share of clean documents that carry a planted passage, and the passages' length in words
PASSAGE_RATE = 0.04
PASSAGE_WORDS = (60, 90)
CATEGORIES: dict[str, float] = {
    "clean": 0.52,
    "long": 0.02,
    "exact_dup": 0.06,
    "near_dup": 0.05,
    "boilerplate": 0.06,
    "spam": 0.05,
    "short": 0.05,
    "non_english": 0.08,
    "lorem": 0.02,
    "code": 0.03,
    "repeated": 0.03,
    "bullets": 0.03,
}
# categories a DCLM-style chain (heuristics + English langid + dedup) is meant to keep
KEPT_CATEGORIES = ("clean", "long")
FORMAT_SHARES: dict[str, float] = {"refinedweb": 0.27, "pile": 0.18, "redpajama": 0.18, "dolma": 0.27,
                                   "warc": 0.10}
MIN_SHARDS_PER_FORMAT = 3
MIN_SHARDS = {"warc": 1}  # formats with another minimum
DEFAULT_MAX_SHARD_DOCS = 25_000
ROW_GROUP = 4096
LANG_CODES = tuple(L.LANGS) + ("zh",)
TOPIC_NAMES = tuple(L.TOPICS)

_MASK64 = (1 << 64) - 1
_CUM = []
_acc = 0.0
for _name, _p in CATEGORIES.items():
    _acc += _p
    _CUM.append((_acc, _name))


# ---------------------------------------------------------------------------------------------------
# English grammar
# ---------------------------------------------------------------------------------------------------

_IRREGULAR_PLURALS = {
    "child": "children", "person": "people", "leaf": "leaves", "knife": "knives", "life": "lives",
    "shelf": "shelves", "tooth": "teeth", "foot": "feet", "man": "men", "woman": "women",
    "mouse": "mice", "potato": "potatoes", "tomato": "tomatoes", "hero": "heroes", "loaf": "loaves",
    "family member": "family members", "food writer": "food writers", "local": "locals", "species": "species",
}


def _plural(noun: str) -> str:
    if noun in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[noun]
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _third(verb: str) -> str:
    if verb == "have":
        return "has"
    if verb.endswith(("s", "x", "z", "ch", "sh", "o")):
        return verb + "es"
    if verb.endswith("y") and verb[-2:-1] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


class _Topic:
    __slots__ = ("name", "nouns", "plurals", "mass", "verbs", "verbs3", "adjs", "people", "people_pl", "templates",
                 "titles")

    def __init__(self, name: str, spec: dict[str, str]) -> None:
        self.name = name
        self.nouns = spec["nouns"].split()
        self.plurals = [_plural(n) for n in self.nouns]
        self.mass = spec["mass"].split()
        self.verbs = spec["verbs"].split()
        self.verbs3 = [_third(v) for v in self.verbs]
        self.adjs = spec["adjs"].split()
        people = spec["people"].split()
        merged: list[str] = []
        k = 0
        while k < len(people):  # two-word people ("family member", "food writer")
            if k + 1 < len(people) and f"{people[k]} {people[k + 1]}" in _IRREGULAR_PLURALS:
                merged.append(f"{people[k]} {people[k + 1]}")
                k += 2
            else:
                merged.append(people[k])
                k += 1
        self.people = merged
        self.people_pl = [_plural(p) for p in merged]
        self.templates: list[list] = []
        self.titles: list[list] = []


_TOPICS = {name: _Topic(name, spec) for name, spec in L.TOPICS.items()}
_SLOT = re.compile(r"(\$[A-Z]+)")
_TEMPLATES = [[p for p in _SLOT.split(t) if p] for t in L.TEMPLATES]
_TITLES = [[p for p in _SLOT.split(t) if p] for t in L.TITLE_TEMPLATES]
_VOWELS = frozenset("aeiouAEIOU")


def _article(det: str, word: str) -> str:
    return "an" if det == "a" and word[0] in _VOWELS else det


# Every choice goes through ``seq[int(rng.random() * len(seq))]``: one C call, several times faster
# than ``rng.choice`` (the generator spends most of its time choosing words).


def _np_sing(rng: random.Random, t: _Topic) -> str:
    r = rng.random
    noun = t.nouns[int(r() * len(t.nouns))]
    det = L.DETS_S[int(r() * len(L.DETS_S))]
    if r() < 0.5:
        adj = t.adjs[int(r() * len(t.adjs))]
        return f"{_article(det, adj)} {adj} {noun}"
    return f"{_article(det, noun)} {noun}"


def _np_plur(rng: random.Random, t: _Topic) -> str:
    r = rng.random
    noun = t.plurals[int(r() * len(t.plurals))]
    x = r()
    if x < 0.4:
        return f"{L.DETS_P[int(r() * len(L.DETS_P))]} {t.adjs[int(r() * len(t.adjs))]} {noun}"
    if x < 0.75:
        return f"{L.DETS_P[int(r() * len(L.DETS_P))]} {noun}"
    return f"{t.adjs[int(r() * len(t.adjs))]} {noun}"


def _np_mass(rng: random.Random, t: _Topic) -> str:
    r = rng.random
    return f"{L.DETS_M[int(r() * len(L.DETS_M))]} {t.mass[int(r() * len(t.mass))]}"


def _obj(rng: random.Random, t: _Topic) -> str:
    x = rng.random()
    if x < 0.4:
        return _np_sing(rng, t)
    if x < 0.75:
        return _np_plur(rng, t)
    return _np_mass(rng, t)


def _person(rng: random.Random, t: _Topic) -> str:
    r = rng.random
    if r() < 0.4:
        return L.GENERAL_PEOPLE_SING[int(r() * len(L.GENERAL_PEOPLE_SING))]
    return "the " + t.people[int(r() * len(t.people))]


def _people(rng: random.Random, t: _Topic) -> str:
    r = rng.random
    if r() < 0.5:
        return L.GENERAL_PEOPLE_PLURAL[int(r() * len(L.GENERAL_PEOPLE_PLURAL))]
    return "many " + t.people_pl[int(r() * len(t.people_pl))]


def _compile(parts: list[str], t: _Topic) -> list:
    """A template as literals (str), word lists to pick from (list) and phrase builders (callables)."""
    lists = {
        "$V": t.verbs, "$VS": t.verbs3, "$A": t.adjs, "$N": t.nouns, "$NN": t.plurals,
        "$CONN": L.CONNECTIVES, "$TIME": L.TIMES, "$APRE": L.ADV_PRE, "$APOST": L.ADV_POST, "$EVAL": L.EVALS,
        "$PREP": L.PREPS, "$NUM": L.NUM_WORDS, "$UNIT": L.TIME_UNITS, "$PLACE": L.PLACES,
    }
    builders = {"$OBJ": _obj, "$NS": _np_sing, "$NP": _np_plur, "$PS": _person, "$PPL": _people}
    out: list = []
    for p in parts:
        if p[0] != "$":
            out.append(p)
        elif p in lists:
            out.append(lists[p])
        elif p in builders:
            out.append(builders[p])
        else:  # pragma: no cover - a template typo
            raise KeyError(p)
    return out


for _t in _TOPICS.values():
    _t.templates = [_compile(p, _t) for p in _TEMPLATES]
    _t.titles = [_compile(p, _t) for p in _TITLES]


def _fill(rng: random.Random, t: _Topic, parts: list) -> str:
    r = rng.random
    out = []
    for p in parts:
        tp = type(p)
        if tp is str:
            out.append(p)
        elif tp is list:
            out.append(p[int(r() * len(p))])
        else:
            out.append(p(rng, t))
    s = "".join(out)
    return s[0].upper() + s[1:]


def _sentence(rng: random.Random, t: _Topic) -> str:
    return _fill(rng, t, t.templates[int(rng.random() * len(t.templates))])


def _title(rng: random.Random, t: _Topic) -> str:
    s = _fill(rng, t, t.titles[int(rng.random() * len(t.titles))])
    return " ".join(w[:1].upper() + w[1:] if len(w) > 3 else w for w in s.split(" "))


def clean_prose(rng: random.Random, n_words: int, topic: str | None = None) -> str:
    """English prose of at least ``n_words`` words on one topic: paragraphs (one per line) of 2-7
    sentences, every line ending with terminal punctuation. ``topic`` is one of ``TOPIC_NAMES``
    (random when None). Built from this module's grammar and vocabulary (about 1,600 words, 44
    sentence templates): varied, grammatical enough for a small LM to learn, and passing the
    Gopher / C4 / RefinedWeb heuristics (stop words, mean word length, no repeated n-grams)."""
    t = _TOPICS[topic] if topic is not None else _TOPICS[rng.choice(TOPIC_NAMES)]
    paragraphs: list[str] = []
    count = 0
    while count < n_words:
        sents = [_sentence(rng, t) for _ in range(2 + int(rng.random() * 6))]
        para = " ".join(sents)
        count += para.count(" ") + 1
        paragraphs.append(para)
    return "\n".join(paragraphs)


def _clean_doc(rng: random.Random, n_words: int, passage: str | None = None) -> tuple[str, str]:
    topic = rng.choice(TOPIC_NAMES)
    t = _TOPICS[topic]
    body = clean_prose(rng, n_words, topic)
    if passage is not None:  # appended to the last paragraph: inside it, so that BFF keeps the paragraph
        body = f"{body} {passage}"
    lines = []
    if rng.random() < 0.5:
        lines.append(_title(rng, t))
    lines.append(body)
    if rng.random() < 0.1:  # a share / navigation line, as crawls keep them
        extra = rng.choice(L.NAV_LINES)
        if rng.random() < 0.5:
            lines.insert(0, extra)
        else:
            lines.append(extra)
    return "\n".join(lines), topic


# ---------------------------------------------------------------------------------------------------
# the other categories
# ---------------------------------------------------------------------------------------------------


def _site(rng: random.Random) -> str:
    t = _TOPICS[rng.choice(TOPIC_NAMES)]
    return f"{rng.choice(t.adjs)}{rng.choice(t.nouns)}{rng.choice(['', 'hub', 'daily', 'world', 'blog', 'online'])}"


def _boilerplate(rng: random.Random) -> str:
    site = _site(rng) + "." + rng.choice(L.TLDS)
    lines = rng.sample(L.NAV_LINES, rng.randint(6, 16))
    if rng.random() < 0.7:
        lines.insert(rng.randint(0, len(lines)), rng.choice(L.COOKIE_LINES))
    t = _TOPICS[rng.choice(TOPIC_NAMES)]
    lines.append(_title(rng, t))
    lines.append(_sentence(rng, t))
    for f in rng.sample(L.FOOTER_LINES, rng.randint(3, 6)):
        lines.append(f.format(year=rng.randint(2009, 2023), site=site, num=rng.randint(100, 999)))
    lines.extend(rng.sample(L.NAV_LINES, rng.randint(3, 8)))
    return "\n".join(lines)


def _spam(rng: random.Random) -> str:
    kind = rng.random()
    product = rng.choice(L.SPAM_PRODUCTS)
    if kind < 0.4:  # comma-separated keyword list
        n = rng.randint(20, 80)
        kws = [f"{rng.choice(L.SPAM_KEYWORDS)} {product}" if rng.random() < 0.7 else rng.choice(L.SPAM_KEYWORDS)
               for _ in range(n)]
        return ", ".join(kws)
    if kind < 0.7:  # tag cloud + shouting
        lines = [rng.choice(L.SPAM_SHOUTS)]
        for _ in range(rng.randint(3, 8)):
            lines.append(" ".join(rng.choice(L.SPAM_KEYWORDS) for _ in range(rng.randint(6, 15))) + f" {product}")
        lines.append("Tags: " + " ".join(rng.choice(L.SPAM_KEYWORDS).replace(" ", "") for _ in range(30)))
        lines.append(rng.choice(L.SPAM_SHOUTS))
        return "\n".join(lines)
    # stuffed title lines
    lines = []
    year = rng.randint(2015, 2023)
    for _ in range(rng.randint(10, 30)):
        lines.append(f"{rng.choice(L.SPAM_KEYWORDS)} {product} {year} {rng.choice(L.SPAM_KEYWORDS)} "
                     f"{product} {rng.choice(L.SPAM_KEYWORDS)}")
    return "\n".join(lines)


def _short(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return rng.choice(L.SHORT_PAGES)
    t = _TOPICS[rng.choice(TOPIC_NAMES)]
    return " ".join(_sentence(rng, t) for _ in range(rng.randint(1, 2)))


def _non_english(rng: random.Random) -> tuple[str, str]:
    lang = rng.choice(LANG_CODES)
    n_sent = rng.randint(6, 40)
    sents = []
    if lang == "zh":
        z = {k: v.split("|") for k, v in L.ZH.items()}
        for _ in range(n_sent):
            s = rng.choice(z["subj"]) + (rng.choice(z["adv"]) if rng.random() < 0.6 else "") + rng.choice(
                z["verb"]) + rng.choice(z["obj"]) + "。"
            if rng.random() < 0.3:
                s = rng.choice(z["conn"]) + "，" + s
            sents.append(s)
        per = rng.randint(3, 6)
        return "\n".join("".join(sents[i:i + per]) for i in range(0, len(sents), per)), lang
    spec = L.LANGS[lang]
    subj, verb, obj = spec["subj"].split("|"), spec["verb"].split("|"), spec["obj"].split("|")
    adv, conn = spec["adv"].split("|"), spec["conn"].split("|")
    inverted = spec.get("inverted") == "1"
    for _ in range(n_sent):
        s_, v_, o_ = rng.choice(subj), rng.choice(verb), rng.choice(obj)
        if rng.random() < 0.3:
            o_ = f"{o_} {spec['and']} {rng.choice(obj)}"
        tail = f" {rng.choice(adv)}" if rng.random() < 0.6 else ""
        if rng.random() < 0.3:
            c = rng.choice(conn)
            if inverted:
                s = f"{c} {v_} {s_[0].lower()}{s_[1:]} {o_}{tail}"
            else:
                s = f"{c} {s_[0].lower()}{s_[1:]} {v_} {o_}{tail}"
        else:
            s = f"{s_} {v_} {o_}{tail}"
        r = rng.random()
        sents.append(s + ("." if r < 0.85 else "!" if r < 0.93 else "?"))
    per = rng.randint(3, 6)
    return "\n".join(" ".join(sents[i:i + per]) for i in range(0, len(sents), per)), lang


def _lorem(rng: random.Random) -> str:
    paras = []
    for p in range(rng.randint(2, 6)):
        words = [rng.choice(L.LOREM) for _ in range(rng.randint(30, 90))]
        if p == 0:
            words[:5] = ["lorem", "ipsum", "dolor", "sit", "amet,"]
        sents, k = [], 0
        while k < len(words):
            n = rng.randint(6, 14)
            s = " ".join(words[k:k + n]).rstrip(",")
            sents.append(s[0].upper() + s[1:] + ".")
            k += n
        paras.append(" ".join(sents))
    return "\n".join(paras)


def _code(rng: random.Random) -> str:
    ids = L.CODE_IDENTS
    kind = rng.choice(("js", "py", "css", "c"))
    lines = []
    for _ in range(rng.randint(2, 6)):
        a, b, c = rng.sample(ids, 3)
        name = f"{rng.choice(['get', 'set', 'update', 'parse', 'load', 'build', 'render'])}{a.capitalize()}"
        if kind == "js":
            lines += [f"function {name}({b}, {c}) {{", f"  const {a} = {b}.map(x => x + {rng.randint(1, 9)});",
                      f"  if ({a}.length > {rng.randint(2, 99)}) {{", f"    return {c}[{a}.length - 1];", "  }",
                      f"  return {{ {a}, {b}: {c} }};", "}", ""]
        elif kind == "py":
            lines += [f"def {name}({b}, {c}={rng.randint(0, 9)}):", f"    {a} = {{k: v for k, v in {b}.items()}}",
                      f"    for key in {a}:", f"        {c} += len({a}[key])", f"    return {a}, {c}", ""]
        elif kind == "css":
            lines += [f".{a}-{b} {{", f"  margin: {rng.randint(0, 20)}px;",
                      f"  color: #{rng.randint(0, 0xFFFFFF):06x};",
                      f"  display: {rng.choice(['flex', 'block', 'none', 'grid'])};", "}", ""]
        else:
            lines += [f"int {name}(int *{b}, size_t {c}) {{", f"    int {a} = 0;",
                      f"    for (size_t i = 0; i < {c}; i++) {{", f"        {a} += {b}[i];", "    }",
                      f"    return {a};", "}", ""]
    return "\n".join(lines).strip()


def _repeated(rng: random.Random) -> str:
    t = _TOPICS[rng.choice(TOPIC_NAMES)]
    unique = [_sentence(rng, t) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.4:
        unique.append(rng.choice(["Click here to read more.", "Download the file now.", "Add to cart",
                                  "Sold out", "Call us today!"]))
    lines = [rng.choice(unique) for _ in range(rng.randint(12, 40))]
    return "\n".join(lines)


def _bullets(rng: random.Random) -> str:
    t = _TOPICS[rng.choice(TOPIC_NAMES)]
    mark = rng.choice(["•", "-", "*", "·", "►"])
    lines = []
    for _ in range(rng.randint(10, 35)):
        r = rng.random()
        if r < 0.4:
            item = f"{rng.choice(t.adjs)} {rng.choice(t.plurals)}"
        elif r < 0.7:
            item = f"{rng.choice(t.verbs)} {_obj(rng, t)}"
        else:
            item = f"{rng.choice(t.nouns)} and {rng.choice(t.nouns)}"
        lines.append(f"{mark} {item[0].upper()}{item[1:]}")
    return "\n".join(lines)


def _near_dup(rng: random.Random, text: str) -> str:
    """Edit 0.5-2% of the words (at least 1): replace, insert or delete a plain word."""
    lines = [line.split(" ") for line in text.split("\n")]
    n_words = sum(len(x) for x in lines)
    n_edits = max(1, round(n_words * rng.uniform(0.005, 0.02)))
    t = _TOPICS[rng.choice(TOPIC_NAMES)]
    pool = t.nouns + t.adjs + t.verbs
    done, tries = 0, 0
    while done < n_edits and tries < n_edits * 20:
        tries += 1
        li = rng.randrange(len(lines))
        words = lines[li]
        if not words:
            continue
        wi = rng.randrange(len(words))
        w = words[wi]
        if not w.isalpha():  # keep punctuation-bearing words: sentence ends stay where they are
            continue
        op = rng.random()
        if op < 0.5:
            new = rng.choice(pool)
            if new == w:
                continue
            words[wi] = new
        elif op < 0.8:
            words.insert(wi, rng.choice(pool))
        elif len(words) > 3:
            del words[wi]
        else:
            continue
        done += 1
    out = "\n".join(" ".join(w) for w in lines)
    if out == text:  # cannot happen with >= 1 edit on an alphabetic word, but never emit an exact copy
        out = text + " " + rng.choice(pool)
    return out


# ---------------------------------------------------------------------------------------------------
# documents as pure functions of (seed, index)
# ---------------------------------------------------------------------------------------------------


def _mix(seed: int, index: int, salt: int) -> int:
    """splitmix64 of (seed, index, salt): a stable 64-bit hash."""
    z = (seed * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9 + salt * 0x94D049BB133111EB) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _category(seed: int, index: int) -> str:
    u = _mix(seed, index, 1) / 2.0**64
    for cum, name in _CUM:
        if u < cum:
            return name
    return _CUM[-1][1]


def _n_words_clean(rng: random.Random) -> int:
    return int(min(1500, max(60, math.exp(rng.gauss(5.4, 0.6)))))


class _Doc:
    __slots__ = ("index", "category", "text", "lang", "topic", "dup_of", "passage")

    def __init__(self, index: int, category: str, text: str, lang: str = "en", topic: str | None = None,
                 dup_of: int | None = None) -> None:
        self.index = index
        self.category = category
        self.text = text
        self.lang = lang
        self.topic = topic
        self.dup_of = dup_of
        self.passage: int | None = None


def n_passages(n_docs: int) -> int:
    """How many distinct passages a pool of ``n_docs`` documents plants."""
    return max(2, n_docs // 250)


def passage_text(seed: int, k: int) -> str:
    """Planted passage ``k``: whole sentences of prose, at least ``PASSAGE_WORDS[0]`` words (usually under
    ``PASSAGE_WORDS[1]``), a pure function of ``(seed, k)``."""
    rng = random.Random(_mix(seed, k, 9))
    t = _TOPICS[TOPIC_NAMES[k % len(TOPIC_NAMES)]]
    target = rng.randint(*PASSAGE_WORDS)
    sents: list[str] = []
    n = 0
    while n < target and (n < PASSAGE_WORDS[0] or n + 12 <= PASSAGE_WORDS[1]):
        sents.append(_sentence(rng, t))
        n += len(sents[-1].split())
    return " ".join(sents)


def passage_of(seed: int, index: int, n_docs: int) -> int | None:
    """The passage a clean document ``index`` carries (None for most): its own hash, not its text's random draws."""
    if _mix(seed, index, 8) / 2.0**64 >= PASSAGE_RATE:
        return None
    return _mix(seed, index, 10) % n_passages(n_docs)


def _make_original(seed: int, index: int, category: str, n_docs: int = 0) -> _Doc:
    rng = random.Random(_mix(seed, index, 2))
    if category == "clean":
        k = passage_of(seed, index, n_docs) if n_docs else None
        text, topic = _clean_doc(rng, _n_words_clean(rng), passage_text(seed, k) if k is not None else None)
        doc = _Doc(index, category, text, topic=topic)
        doc.passage = k
        return doc
    if category == "long":
        text, topic = _clean_doc(rng, rng.randint(3000, 8000))
        return _Doc(index, category, text, topic=topic)
    if category == "non_english":
        text, lang = _non_english(rng)
        return _Doc(index, category, text, lang=lang)
    gen: dict[str, Callable[[random.Random], str]] = {
        "boilerplate": _boilerplate, "spam": _spam, "short": _short, "lorem": _lorem, "code": _code,
        "repeated": _repeated, "bullets": _bullets,
    }
    return _Doc(index, category, gen[category](rng), lang="la" if category == "lorem" else "en")


def make_doc(seed: int, index: int, n_docs: int) -> _Doc:
    """Document ``index`` of a pool of ``n_docs`` made with ``seed`` (its text, category, language...)."""
    category = _category(seed, index)
    if category in ("exact_dup", "near_dup"):
        rng = random.Random(_mix(seed, index, 3))
        root = None
        for _ in range(64):  # the original is a clean document anywhere in the pool
            j = rng.randrange(n_docs)
            if j != index and _category(seed, j) == "clean":
                root = j
                break
        if root is None:
            category = "clean"
        else:
            orig = _make_original(seed, root, "clean", n_docs)
            text = orig.text if category == "exact_dup" else _near_dup(rng, orig.text)
            doc = _Doc(index, category, text, topic=orig.topic, dup_of=root)
            doc.passage = orig.passage  # a copy carries its original's passage (a near copy maybe edited)
            return doc
    return _make_original(seed, index, category, n_docs)


# ---------------------------------------------------------------------------------------------------
# layout: formats, shards, ids
# ---------------------------------------------------------------------------------------------------


class _Shard:
    __slots__ = ("format", "k", "start", "stop", "relpath")

    def __init__(self, fmt: str, k: int, start: int, stop: int, relpath: str) -> None:
        self.format, self.k, self.start, self.stop, self.relpath = fmt, k, start, stop, relpath


def _layout(n_docs: int, max_shard_docs: int) -> list[_Shard]:
    counts = {f: int(round(n_docs * s)) for f, s in FORMAT_SHARES.items()}
    counts["dolma"] = n_docs - sum(v for f, v in counts.items() if f != "dolma")
    shards: list[_Shard] = []
    start = 0
    for fmt, n in counts.items():
        if n <= 0:
            continue
        k_total = min(n, max(MIN_SHARDS.get(fmt, MIN_SHARDS_PER_FORMAT), math.ceil(n / max_shard_docs)))
        base, extra = divmod(n, k_total)
        for k in range(k_total):
            size = base + (1 if k < extra else 0)
            if fmt == "refinedweb":
                rel = f"refinedweb/refinedweb-{k:05d}.parquet"
            elif fmt == "pile":
                rel = f"pile/pile-{k:05d}.jsonl.zst"
            elif fmt == "redpajama":
                rel = f"redpajama/redpajama-{'c4' if k % 2 == 0 else 'common_crawl'}-{k:05d}.jsonl"
            elif fmt == "warc":
                rel = f"warc/warc-cc-{k:05d}.warc.gz"
            else:
                rel = f"dolma/dolma-cc-{k:05d}.jsonl.gz"
            shards.append(_Shard(fmt, k, start, start + size, rel))
            start += size
    return shards


def _doc_id(seed: int, shard: _Shard, index: int) -> str:
    if shard.format == "dolma":
        return f"demo-{seed}-{index:08d}"
    if shard.format == "warc":
        from demopool.warc import record_id

        return record_id(_mix(seed, index, 6))
    return f"{shard.format}/{os.path.basename(shard.relpath)}/{index - shard.start}"


def _shard_of(shards: list[_Shard], index: int) -> _Shard:
    lo, hi = 0, len(shards) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if shards[mid].stop <= index:
            lo = mid + 1
        else:
            hi = mid
    return shards[lo]


# ---------------------------------------------------------------------------------------------------
# writers
# ---------------------------------------------------------------------------------------------------

_EPOCH = datetime(2019, 1, 1, tzinfo=UTC)
_DUMPS = ["CC-MAIN-2019-04", "CC-MAIN-2020-16", "CC-MAIN-2021-10", "CC-MAIN-2022-05", "CC-MAIN-2023-06"]
_PILE_SETS = ["Pile-CC", "Pile-CC", "Pile-CC", "OpenWebText2", "OpenWebText2", "Wikipedia (en)"]
REFINEDWEB_SCHEMA = pa.schema([
    ("content", pa.string()),
    ("url", pa.string()),
    ("timestamp", pa.timestamp("s")),
    ("dump", pa.string()),
    ("segment", pa.string()),
    ("image_urls", pa.list_(pa.list_(pa.string()))),
])
TRUTH_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("category", pa.string()),
    ("format", pa.string()),
    ("file", pa.string()),
    ("row", pa.int64()),
    ("dup_of", pa.string()),
    ("lang", pa.string()),
    ("topic", pa.string()),
    ("n_words", pa.int64()),
    ("passage", pa.int64()),
])


def page_meta(seed: int, doc: _Doc) -> tuple[str, datetime]:
    rng = random.Random(_mix(seed, doc.index, 4))
    site = _site(rng)
    slug = "-".join(re.findall(r"[a-z]+", doc.text[:60].lower())[:6]) or "page"
    url = f"https://{'www.' if rng.random() < 0.5 else ''}{site}.{rng.choice(L.TLDS)}/{slug}-{doc.index}"
    when = _EPOCH + timedelta(seconds=rng.randrange(4 * 365 * 86400))
    return url, when


def _iter_docs(seed: int, shard: _Shard, n_docs: int) -> Iterator[_Doc]:
    for i in range(shard.start, shard.stop):
        yield make_doc(seed, i, n_docs)


TRUTH_DIR = "_truth"
_OLD_BOOKKEEPING = ("truth.jsonl", "truth.parquet", "pool.json")  # where an earlier layout kept them


def manifest_path(out_dir: str) -> str:
    """The pool's manifest (``_truth/pool.json``)."""
    return os.path.join(out_dir, TRUTH_DIR, "pool.json")


def truth_path(out_dir: str, kind: str = "parquet") -> str:
    """The ground truth, ``kind`` ``parquet`` or ``jsonl`` (``_truth/truth.<kind>``)."""
    return os.path.join(out_dir, TRUTH_DIR, f"truth.{kind}")


def read_manifest(out_dir: str) -> dict | None:
    """The manifest of the pool in ``out_dir``, or None when there is none."""
    try:
        with open(manifest_path(out_dir), "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        return None


def pool_files(out_dir: str) -> list[str]:
    """The pool's input files (paths under ``out_dir``), sorted."""
    manifest = read_manifest(out_dir)
    if manifest is None:
        raise FileNotFoundError(f"no demo pool in {out_dir} (no {manifest_path(out_dir)})")
    return sorted(os.path.join(out_dir, f) for fmt in manifest["formats"].values() for f in fmt["files"])


class _TruthWriter:
    def __init__(self, out_dir: str) -> None:
        self.out_dir = os.path.join(out_dir, TRUTH_DIR)
        os.makedirs(self.out_dir, exist_ok=True)
        self.jsonl = open(os.path.join(self.out_dir, "truth.jsonl.tmp"), "wb")
        self.pq = pq.ParquetWriter(os.path.join(self.out_dir, "truth.parquet.tmp"), TRUTH_SCHEMA, compression="zstd")
        self.rows: list[dict] = []

    def add(self, row: dict) -> None:
        import orjson  # the writers only: the generators also run where orjson is absent (filters.degrade)

        self.jsonl.write(orjson.dumps(row) + b"\n")
        self.rows.append(row)
        if len(self.rows) >= ROW_GROUP * 4:
            self._flush()

    def _flush(self) -> None:
        if self.rows:
            self.pq.write_table(pa.Table.from_pylist(self.rows, schema=TRUTH_SCHEMA))
            self.rows = []

    def close(self) -> None:
        self._flush()
        self.jsonl.close()
        self.pq.close()
        for name in ("truth.jsonl", "truth.parquet"):
            os.replace(os.path.join(self.out_dir, name + ".tmp"), os.path.join(self.out_dir, name))


def _write_shard(out_dir: str, seed: int, n_docs: int, shards: list[_Shard], shard: _Shard,
                 truth: _TruthWriter, counts: dict[str, int], tick: Callable[[int], None]) -> None:
    import orjson

    path = os.path.join(out_dir, shard.relpath)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    fmt = shard.format

    def truth_row(doc: _Doc) -> dict:
        dup = None
        if doc.dup_of is not None:
            dup = _doc_id(seed, _shard_of(shards, doc.dup_of), doc.dup_of)
        counts[doc.category] = counts.get(doc.category, 0) + 1
        if doc.passage is not None:
            counts["_passage_carriers"] = counts.get("_passage_carriers", 0) + 1
        return {
            "id": _doc_id(seed, shard, doc.index), "category": doc.category, "format": fmt,
            "file": shard.relpath, "row": doc.index - shard.start, "dup_of": dup, "lang": doc.lang,
            "topic": doc.topic, "n_words": len(doc.text.split()), "passage": doc.passage,
        }

    if fmt == "warc":
        from demopool import warc as demo_warc

        with open(tmp, "wb") as raw_out:
            raw_out.write(demo_warc.warcinfo(seed))
            for n, doc in enumerate(_iter_docs(seed, shard, n_docs)):
                url, when = page_meta(seed, doc)
                key = _mix(seed, doc.index, 6)
                demo_warc.write_page(raw_out, n, key, demo_warc.record_id(key), doc.text, doc.lang, url, when,
                                     random.Random(_mix(seed, doc.index, 7)))
                truth.add(truth_row(doc))
                tick(1)
    elif fmt == "refinedweb":
        writer = pq.ParquetWriter(tmp, REFINEDWEB_SCHEMA, compression="zstd", use_dictionary=["dump"])
        cols: dict[str, list] = {n: [] for n in REFINEDWEB_SCHEMA.names}

        def flush() -> None:
            if cols["content"]:
                writer.write_table(pa.table(cols, schema=REFINEDWEB_SCHEMA))
                for v in cols.values():
                    v.clear()

        for doc in _iter_docs(seed, shard, n_docs):
            url, when = page_meta(seed, doc)
            rng = random.Random(_mix(seed, doc.index, 5))
            cols["content"].append(doc.text)
            cols["url"].append(url)
            cols["timestamp"].append(when.replace(tzinfo=None))
            cols["dump"].append(_DUMPS[min(4, (when - _EPOCH).days // 292)])
            cols["segment"].append(f"{1674764494000 + rng.randrange(10**6)}.{rng.randrange(100):02d}")
            host = url.split("/")[2]
            cols["image_urls"].append([[f"https://{host}/img/{rng.randrange(10**6)}.jpg", rng.choice(L.NAV_LINES)]
                                       for _ in range(rng.choice([0, 0, 1, 2, 3]))])
            truth.add(truth_row(doc))
            if len(cols["content"]) >= ROW_GROUP:
                flush()
            tick(1)
        flush()
        writer.close()
    else:
        raw = open(tmp, "wb")
        if fmt == "pile":
            import zstandard

            stream: Any = zstandard.ZstdCompressor(level=3, threads=0).stream_writer(raw, closefd=False)
        elif fmt == "dolma":
            stream = gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0)
        else:
            stream = io.BufferedWriter(raw, 1 << 20)
        buf: list[bytes] = []
        for doc in _iter_docs(seed, shard, n_docs):
            url, when = page_meta(seed, doc)
            if fmt == "pile":
                name = "Github" if doc.category == "code" else _PILE_SETS[doc.index % len(_PILE_SETS)]
                rec: dict[str, Any] = {"text": doc.text, "meta": {"pile_set_name": name}}
            elif fmt == "redpajama":
                rec = {"text": doc.text, "meta": {"timestamp": when.strftime("%Y-%m-%dT%H:%M:%S"), "url": url,
                                                  "language": doc.lang}}
            else:
                added = when + timedelta(days=400 + doc.index % 97)
                rec = {"id": _doc_id(seed, shard, doc.index), "text": doc.text, "source": "common-crawl",
                       "added": added.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                       "created": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "metadata": {"url": url, "language": doc.lang, "length": len(doc.text),
                                    "nlines": doc.text.count("\n") + 1}}
            buf.append(orjson.dumps(rec))
            truth.add(truth_row(doc))
            if len(buf) >= 256:
                stream.write(b"\n".join(buf) + b"\n")
                buf.clear()
            tick(1)
        if buf:
            stream.write(b"\n".join(buf) + b"\n")
        stream.close()
        if not raw.closed:
            raw.close()
    os.replace(tmp, path)


_SHARD_NAME = re.compile(r"^(refinedweb|pile|redpajama|dolma|warc)-[a-z0-9_-]*\d{5}\."
                         r"(parquet|jsonl|jsonl\.zst|jsonl\.gz|warc\.gz)(\.tmp)?$")


def _remove_stale(out_dir: str, keep: set[str]) -> None:
    """Delete shard files of an earlier, different pool in ``out_dir`` (so a reader glob sees this pool only),
    and truth files an earlier layout kept beside the data."""
    for name in _OLD_BOOKKEEPING:
        if os.path.isfile(os.path.join(out_dir, name)):
            os.remove(os.path.join(out_dir, name))
    for fmt in FORMAT_SHARES:
        folder = os.path.join(out_dir, fmt)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if _SHARD_NAME.match(name) and f"{fmt}/{name}" not in keep:
                logger.info("removing stale demo shard %s/%s", fmt, name)
                os.remove(os.path.join(folder, name))


def generate_pool(
    out_dir: str,
    n_docs: int = 2000,
    seed: int = 0,
    max_shard_docs: int = DEFAULT_MAX_SHARD_DOCS,
    progress: bool = False,
) -> dict:
    """Write the demo pool (see the module docstring) and return its manifest (also ``pool.json``).

    Byte-identical for the same ``(n_docs, seed, max_shard_docs)``. Memory stays bounded by
    one parquet row group whatever ``n_docs`` is.
    """
    if n_docs < 1:
        raise ValueError("n_docs must be at least 1")
    if max_shard_docs < 1:
        raise ValueError("max_shard_docs must be at least 1")
    os.makedirs(out_dir, exist_ok=True)
    shards = _layout(n_docs, max_shard_docs)
    _remove_stale(out_dir, {s.relpath for s in shards})
    counts: dict[str, int] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_docs, unit="doc", desc="demo pool")

    def tick(k: int) -> None:
        if bar is not None:
            bar.update(k)

    truth = _TruthWriter(out_dir)
    try:
        for shard in shards:
            _write_shard(out_dir, seed, n_docs, shards, shard, truth, counts, tick)
    finally:
        truth.close()
        if bar is not None:
            bar.close()
    files: dict[str, list[str]] = {}
    for s in shards:
        files.setdefault(s.format, []).append(s.relpath)
    passages = [passage_text(seed, k) for k in range(n_passages(n_docs))]
    where = truth.out_dir  # beside the truth files
    with open(os.path.join(where, "passages.jsonl.tmp"), "w", encoding="utf-8") as f:
        for k, text in enumerate(passages):
            f.write(json.dumps({"passage": k, "text": text, "words": len(text.split())}, ensure_ascii=False) + "\n")
    os.replace(os.path.join(where, "passages.jsonl.tmp"), os.path.join(where, "passages.jsonl"))
    manifest = {
        "generator": "demopool",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "n_docs": n_docs,
        "max_shard_docs": max_shard_docs,
        "formats": {f: {"files": fl, "docs": sum(s.stop - s.start for s in shards if s.format == f)}
                    for f, fl in files.items()},
        "categories": {c: counts.get(c, 0) for c in CATEGORIES},
        "category_probabilities": CATEGORIES,
        "kept_categories": list(KEPT_CATEGORIES),
        "truth": [f"{TRUTH_DIR}/truth.jsonl", f"{TRUTH_DIR}/truth.parquet", f"{TRUTH_DIR}/passages.jsonl"],
        "planted_passages": {"passages": len(passages), "rate": PASSAGE_RATE, "words": list(PASSAGE_WORDS),
                             "carriers": counts.get("_passage_carriers", 0)},
    }
    path = manifest_path(out_dir)
    with open(path + ".tmp", "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)
    manifest["out_dir"] = out_dir
    logger.info("demo pool: %d documents in %d files under %s", n_docs, len(shards), out_dir)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demopool",
        description="Write a deterministic demo pool of web-like documents in the RefinedWeb (parquet), "
        "Pile (jsonl.zst), RedPajama (jsonl) and Dolma (jsonl.gz) formats plus one WARC file of crawled HTML pages "
        "(warc.gz), with _truth/truth.jsonl/.parquet "
        "listing every document's planted category (clean, duplicates, boilerplate, spam, ...).",
    )
    parser.add_argument("--out", required=True, help="output folder (created; an earlier pool's files in it are "
                        "overwritten or removed)")
    parser.add_argument("--docs", type=int, default=2000, help="number of documents (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed and size give identical bytes "
                        "(default 0)")
    parser.add_argument("--max-shard-docs", type=int, default=DEFAULT_MAX_SHARD_DOCS,
                        help=f"most documents per output file (default {DEFAULT_MAX_SHARD_DOCS}); every format "
                        f"gets at least {MIN_SHARDS_PER_FORMAT} files")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (shown by default when "
                        "--docs >= 20000)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    m = generate_pool(args.out, n_docs=args.docs, seed=args.seed, max_shard_docs=args.max_shard_docs,
                      progress=not args.no_progress and args.docs >= 20000)
    n_files = sum(len(v["files"]) for v in m["formats"].values())
    print(f"wrote {args.docs} documents in {n_files} files to {args.out}")
    for c, n in m["categories"].items():
        print(f"  {c:12s} {n:8d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
