"""Seeded web-like documents that sit near the heuristic thresholds.

Each document is built from real sentences (or a fixed vocabulary when the shared
samples are absent) plus one perturbation typical of crawled pages: repeated
lines/paragraphs/n-grams, bullet lists, ellipses, hash tags, uppercase or numeric
lines, counters, boilerplate phrases, code braces, lorem ipsum, very short pages.
The perturbation strength is drawn around each rule's threshold, so the parity
tests exercise both sides of every boundary.
"""

from __future__ import annotations

import random
import re

import pyarrow as pa

from curation.schema import docs_table

_VOCAB = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which but have an they "
    "you were her she there one all we their been has would when more time if will about two people into some "
    "could other them than only its new over after also first years city river music school government history "
    "water system research data model language report market family house world during between under while"
).split()


def _pool(seed_texts: list[str] | None) -> list[str]:
    pool: list[str] = []
    for t in seed_texts or ():
        pool.extend(s.strip() for s in re.split(r"(?<=[.!?])\s+", t) if 20 < len(s.strip()) < 300)
    return pool


def _sentences(pool: list[str], rng: random.Random, k: int) -> list[str]:
    if pool:
        return [rng.choice(pool) for _ in range(k)]
    out = []
    for _ in range(k):
        words = [rng.choice(_VOCAB) for _ in range(rng.randint(5, 20))]
        out.append(" ".join(words).capitalize() + rng.choice([".", ".", ".", "!", "?"]))
    return out


def _doc(rng: random.Random, pool: list[str]) -> str:
    n_lines = rng.randint(3, 40)
    lines = _sentences(pool, rng, n_lines)
    kind = rng.choice(
        ["plain", "dup_lines", "dup_paras", "ngram_rep", "bullets", "ellipsis", "hashes", "upper", "numeric",
         "counter", "boiler", "brace", "lorem", "short", "nonalpha", "stopless", "shortlines", "javascript",
         "policy", "citations", "longword", "blank"]
    )  # fmt: skip
    frac = rng.uniform(0.0, 0.6)
    k = max(1, int(round(frac * n_lines)))
    if kind == "dup_lines":
        for i in rng.sample(range(n_lines), min(k, n_lines)):
            lines[i] = lines[0]
    elif kind == "dup_paras":
        paras = ["\n".join(lines[i : i + 3]) for i in range(0, n_lines, 3)]
        for i in rng.sample(range(len(paras)), min(k // 3 + 1, len(paras))):
            paras[i] = paras[0]
        return "\n\n".join(paras)
    elif kind == "ngram_rep":
        phrase = " ".join(rng.choice(_VOCAB) for _ in range(rng.randint(2, 10)))
        for i in rng.sample(range(n_lines), min(k, n_lines)):
            lines[i] = lines[i] + " " + phrase
    elif kind == "bullets":
        mark = rng.choice(["- ", "• ", "* ", "● "])
        k = int(round(rng.uniform(0.8, 1.0) * n_lines))
        for i in rng.sample(range(n_lines), k):
            lines[i] = mark + lines[i]
    elif kind == "ellipsis":
        for i in rng.sample(range(n_lines), min(k, n_lines)):
            lines[i] = lines[i].rstrip(".!?") + rng.choice(["...", "…", ". . ."])
    elif kind == "hashes":
        for i in rng.sample(range(n_lines), min(k, n_lines)):
            lines[i] = lines[i] + " " + " ".join("#" + rng.choice(_VOCAB) for _ in range(rng.randint(1, 4)))
    elif kind == "upper":
        for i in rng.sample(range(n_lines), min(k, n_lines)):
            lines[i] = lines[i].upper()
    elif kind == "numeric":
        for i in rng.sample(range(n_lines), min(k, n_lines)):
            lines.insert(i, str(rng.randint(0, 10**6)))
    elif kind == "counter":
        for i in rng.sample(range(n_lines), min(k, n_lines)):
            unit = rng.choice(["likes", "shares", "views"])
            lines.insert(i, f"{rng.randint(1, 999)}{rng.choice(['', 'K', 'k'])} {unit}")
    elif kind == "boiler":
        for _ in range(k):
            lines.insert(rng.randrange(len(lines) + 1), rng.choice(
                ["3 items in cart", "Read more...", "Sign-in", "Home", "Contact us", "Sign-in to comment"]))
    elif kind == "brace":
        lines[rng.randrange(n_lines)] += " function f() { return 1; }."
    elif kind == "lorem":
        lines[rng.randrange(n_lines)] = "Lorem ipsum dolor sit amet, consectetur adipiscing elit."
    elif kind == "short":
        return " ".join(lines[0].split()[: rng.randint(1, 60)])
    elif kind == "nonalpha":
        for i in rng.sample(range(n_lines), min(k, n_lines)):
            lines[i] = lines[i] + " " + " ".join(str(rng.randint(0, 9999)) for _ in range(rng.randint(3, 15)))
    elif kind == "stopless":
        return " ".join(w for w in " ".join(lines).split() if w.lower() not in {"the", "of", "and", "to", "be"})
    elif kind == "shortlines":
        lines = [w for ln in lines for w in ln.split()[: rng.randint(1, 3)]]
    elif kind == "javascript":
        lines.insert(rng.randrange(n_lines), "Please enable JavaScript to view the comments powered by Disqus.")
    elif kind == "policy":
        lines.insert(rng.randrange(n_lines), "By using this site you agree to the Terms of Use and Privacy Policy.")
    elif kind == "citations":
        lines = [ln + f"[{rng.randint(1, 30)}]" if rng.random() < 0.5 else ln for ln in lines]
    elif kind == "longword":
        lines.insert(rng.randrange(n_lines), "x" * rng.choice([999, 1000, 1001, 1500]) + " is long.")
    elif kind == "blank":
        return "\n".join(ln + "\n" * rng.randint(0, 4) for ln in lines)
    return "\n".join(lines)


_HOSTS = ("example.com", "www.example.org", "news.example.co.uk", "blog.pornhub.com", "xvideos.com",
          "shop.test-site.net", "WWW.Mixed-Case.COM", "192.168.1.20", "casino-royale.biz", "en.wikipedia.org")
_URL_WORDS = ("about", "news", "sex", "free", "hot", "teen", "girls", "cam", "live", "porn", "p-o-r-n", "xxx",
              "Hot", "Live", "Cams", "webcam", "dating", "blog", "story", "2024", "sexcam", "strip")


def _url(rng: random.Random) -> str | None:
    if rng.random() < 0.05:
        return None
    path = "/".join(rng.choice(_URL_WORDS + tuple(_VOCAB)) for _ in range(rng.randint(0, 4)))
    sep = rng.choice(["-", "_", ".", "/"])
    tail = sep.join(rng.choice(_URL_WORDS) for _ in range(rng.randint(0, 3)))
    return f"{rng.choice(['http', 'https'])}://{rng.choice(_HOSTS)}/{path}/{tail}?id={rng.randint(0, 99)}"


def synthetic_docs(n: int = 600, seed: int = 0, seed_texts: list[str] | None = None) -> pa.Table:
    rng = random.Random(seed)
    pool = _pool(seed_texts)
    texts = [_doc(rng, pool) for _ in range(n)]
    urls = [_url(rng) for _ in range(n)]
    return docs_table([f"syn/{seed}/{i}" for i in range(n)], texts, "synthetic", urls)
