"""The demo pool: deterministic bytes, readable by our readers, categories as documented, duplicates real,
and the planted categories behave as intended under an independent DCLM-style heuristic check."""

from __future__ import annotations

import hashlib
import math
import os
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from curation.readers import detect_format, get_reader
from demopool import (
    CATEGORIES,
    KEPT_CATEGORIES,
    TOPIC_NAMES,
    clean_prose,
    generate_pool,
    main,
    pool_files,
    read_manifest,
    truth_path,
)
from demopool import lexicon as L
from filters.extract import HtmlExtractor

# --- an independent re-implementation of the DCLM heuristic checks ----------------------------------
# Gopher quality / repetition rules (Rae et al. 2021, App. A) and C4 rules (Raffel et al. 2020) as in
# DCLM's RefinedWeb reproduction: C4 line filter (terminal punctuation, >= 3 words, no "javascript"),
# no "lorem ipsum", no "{"; 50-100k words; mean word length 3-10; symbol/word <= 0.1; <= 90% bullet
# lines; >= 80% words with a letter; >= 2 stop words; duplicate lines <= 30%; top 2/3/4-gram character
# fraction <= .20/.18/.16; duplicated 5..10-gram character fraction <= .15 ... .10.

STOP_WORDS = {"the", "be", "to", "of", "and", "that", "have", "with"}
BULLETS = ("•", "-", "*", "·", "►", "‣", "▪")


def _dup_ngram_frac(words: list[str], n: int) -> float:
    grams = [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]
    counts = Counter(grams)
    covered = [False] * len(words)
    for i, g in enumerate(grams):
        if counts[g] > 1:
            covered[i:i + n] = [True] * n
    return sum(len(w) for w, c in zip(words, covered) if c) / max(sum(map(len, words)), 1)


def _top_ngram_frac(words: list[str], n: int) -> float:
    counts = Counter(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
    if not counts:
        return 0.0
    gram, c = counts.most_common(1)[0]
    return len(gram.replace(" ", "")) * c / max(sum(map(len, words)), 1)


def dclm_reason(text: str) -> str | None:
    if "lorem ipsum" in text.lower():
        return "lorem_ipsum"
    if "{" in text:
        return "curly_bracket"
    lines = [ln for ln in text.split("\n") if ln.rstrip().endswith((".", "!", "?", '"'))
             and len(ln.split()) >= 3 and "javascript" not in ln.lower()]
    words = " ".join(lines).split()
    if not 50 <= len(words) <= 100_000:
        return "word_count"
    if not 3 <= sum(map(len, words)) / len(words) <= 10:
        return "mean_word_length"
    if (text.count("#") + text.count("...")) / len(words) > 0.1:
        return "symbol_ratio"
    if sum(ln.lstrip().startswith(BULLETS) for ln in lines) / len(lines) > 0.9:
        return "bullet_lines"
    if sum(bool(re.search(r"[^\W\d_]", w)) for w in words) / len(words) < 0.8:
        return "alpha_words"
    if len(STOP_WORDS & {w.lower().strip(".,!?;:") for w in words}) < 2:
        return "stop_words"
    if len(lines) > 1 and 1 - len(set(lines)) / len(lines) > 0.3:
        return "dup_lines"
    lw = [w.lower() for w in words]
    for n, lim in ((2, 0.20), (3, 0.18), (4, 0.16)):
        if _top_ngram_frac(lw, n) > lim:
            return f"top_{n}gram"
    for n, lim in zip(range(5, 11), (0.15, 0.14, 0.13, 0.12, 0.11, 0.10)):
        if _dup_ngram_frac(lw, n) > lim:
            return f"dup_{n}gram"
    return None


def shingles(text: str, n: int = 5) -> set[str]:
    w = text.split()
    return {" ".join(w[i:i + n]) for i in range(len(w) - n + 1)}


def jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


# --- fixtures ------------------------------------------------------------------------------------------


def _article(extractor: HtmlExtractor, pages: list[str]) -> list[str]:
    """The document inside each demo page: main-content extraction without the comment section,
    one line per paragraph (leading indentation, which HTML does not keep, removed)."""
    return ["\n".join(ln.strip() for ln in t.split("\n") if ln.strip()) for t in extractor.extract_many(pages)]


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    out = tmp_path_factory.mktemp("pool")
    manifest = generate_pool(str(out), n_docs=2000, seed=0)
    truth = [orjson.loads(x) for x in Path(truth_path(str(out), "jsonl")).read_bytes().splitlines()]
    docs: dict[str, dict] = {}
    quarantined = 0
    extractor = HtmlExtractor(options={"comments": False})
    for files in manifest["formats"].values():
        for rel in files["files"]:
            path = str(out / rel)
            for d, q in get_reader(path).read(path):
                quarantined += q.num_rows
                rows = d.to_pylist()
                if "is_html" in d.column_names:  # WARC pages: the document is the page's article
                    for row, text in zip(rows, _article(extractor, [r["text"] for r in rows])):
                        row["html"], row["text"] = row["text"], text
                for row in rows:
                    row["file"] = rel
                    docs[row["id"]] = row
    return out, manifest, truth, docs, quarantined


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- tests -------------------------------------------------------------------------------------------


def test_deterministic_bytes(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_pool(str(a), n_docs=300, seed=7)
    generate_pool(str(b), n_docs=300, seed=7)
    generate_pool(str(c), n_docs=300, seed=8)
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert da == db
    assert set(da) == set(dc) and da["_truth/truth.jsonl"] != dc["_truth/truth.jsonl"]
    assert {k.split("/")[0] for k in da} == {"refinedweb", "pile", "redpajama", "dolma", "warc", "_truth"}


def test_a_folder_of_the_pool_as_input_is_its_documents_only(tmp_path):
    """`-i POOL_DIR` lists the data files and none of the ground truth or manifest (under _truth/), also
    after regenerating over a pool written by the earlier layout (truth beside the data)."""
    from curation import storage

    (tmp_path / "truth.jsonl").write_text("{}\n")  # the earlier layout's files are removed
    (tmp_path / "pool.json").write_text("{}")
    generate_pool(str(tmp_path), n_docs=120, seed=1)
    listed = storage.expand(str(tmp_path))
    assert listed == pool_files(str(tmp_path)) and len(listed) >= 13
    assert read_manifest(str(tmp_path))["n_docs"] == 120
    assert os.path.exists(truth_path(str(tmp_path))) and not (tmp_path / "truth.jsonl").exists()


def test_layout_and_readers(pool):
    out, manifest, truth, docs, quarantined = pool
    assert quarantined == 0
    n_files = sum(len(f["files"]) for f in manifest["formats"].values())
    assert 8 <= n_files <= 16
    for fmt, spec in manifest["formats"].items():
        assert len(spec["files"]) >= (1 if fmt == "warc" else 3)
        for rel in spec["files"]:
            assert detect_format(str(out / rel)) == fmt
    # every truth id is a document our readers produce, in that file and row, and nothing else
    assert len(docs) == len(truth) == 2000
    for t in truth:
        d = docs[t["id"]]
        assert d["file"] == t["file"] and d["source"] == t["format"]
        assert len(d["text"].split()) == t["n_words"]  # for WARC pages: the words extraction recovers
    assert Counter(t["format"] for t in truth) == {f: s["docs"] for f, s in manifest["formats"].items()}
    tp = pq.read_table(truth_path(str(out))).to_pylist()
    assert tp == truth


def test_category_proportions(pool):
    _, manifest, truth, _, _ = pool
    counts = Counter(t["category"] for t in truth)
    assert counts == Counter({k: v for k, v in manifest["categories"].items() if v})
    n = len(truth)
    for cat, p in CATEGORIES.items():
        sd = math.sqrt(n * p * (1 - p))
        assert counts[cat] > 0, cat
        assert abs(counts[cat] - n * p) <= 4 * sd + 1, (cat, counts[cat], n * p)
    langs = Counter(t["lang"] for t in truth if t["category"] == "non_english")
    assert len(langs) >= 6 and "en" not in langs
    assert len({t["topic"] for t in truth if t["category"] == "clean"}) == len(TOPIC_NAMES)


def test_duplicates_are_duplicates(pool):
    _, _, truth, docs, _ = pool
    by_id = {t["id"]: t for t in truth}
    exact = [t for t in truth if t["category"] == "exact_dup"]
    near = [t for t in truth if t["category"] == "near_dup"]
    assert exact and near
    cross_format = 0
    for t in exact + near:
        root = by_id[t["dup_of"]]
        assert root["category"] == "clean"
        cross_format += root["format"] != t["format"]
        a, b = docs[t["id"]]["text"], docs[root["id"]]["text"]
        if t["category"] == "exact_dup":
            assert a == b
        else:
            assert a != b
            assert jaccard(a, b) >= 0.6, (t["id"], jaccard(a, b))
    assert cross_format > len(exact + near) / 2
    sims = sorted(jaccard(docs[t["id"]]["text"], docs[t["dup_of"]]["text"]) for t in near)
    assert sims[len(sims) // 2] >= 0.8  # the median near-duplicate is above DCLM's 0.8 MinHash threshold
    # no accidental duplicates: texts of non-duplicate documents are distinct, apart from short pages
    originals = [docs[t["id"]]["text"] for t in truth if t["category"] in ("clean", "long")]
    assert len(set(originals)) == len(originals)


def test_planted_categories_under_dclm_heuristics(pool):
    _, _, truth, docs, _ = pool
    verdict: dict[str, Counter] = {}
    for t in truth:
        verdict.setdefault(t["category"], Counter())[dclm_reason(docs[t["id"]]["text"]) is None] += 1
    for cat in KEPT_CATEGORIES + ("exact_dup", "near_dup"):
        assert verdict[cat][False] == 0, (cat, verdict[cat])  # clean prose passes every heuristic
    for cat in ("boilerplate", "spam", "short", "lorem", "code", "repeated", "bullets"):
        assert verdict[cat][False] >= 0.9 * sum(verdict[cat].values()), (cat, verdict[cat])
    ne = [docs[t["id"]]["text"] for t in truth if t["category"] == "non_english"]
    assert sum(dclm_reason(x) is not None for x in ne) >= 0.9 * len(ne)  # (and language ID drops the rest)


def test_planted_passages(pool):
    """Repeated passages for exact-substring dedup: in ~4% of the clean documents (and in the copies of those),
    inside their last paragraph, listed in passages.jsonl and truth.passage; no other document holds one."""
    out, manifest, truth, docs, _ = pool
    folder = out / "_truth" if (out / "_truth" / "passages.jsonl").exists() else out  # beside the truth files
    passages = [orjson.loads(x) for x in (folder / "passages.jsonl").read_bytes().splitlines()]
    assert [p["passage"] for p in passages] == list(range(8)) == list(range(manifest["planted_passages"]["passages"]))
    assert all(p["words"] >= 60 and p["words"] == len(p["text"].split()) for p in passages)
    carriers = [t for t in truth if t["passage"] is not None]
    assert manifest["planted_passages"]["carriers"] == len(carriers)
    clean = [t for t in truth if t["category"] == "clean"]
    own = [t for t in carriers if t["category"] == "clean"]
    assert 0.02 * len(clean) < len(own) < 0.06 * len(clean)
    assert {t["category"] for t in carriers} <= {"clean", "exact_dup", "near_dup"}
    assert len({t["passage"] for t in own}) == len(passages)  # every passage is planted, most of them often
    for t in truth:
        text = docs[t["id"]]["text"]
        held = [p["passage"] for p in passages if p["text"] in text]
        if t["category"] in ("clean", "exact_dup"):
            assert held == ([t["passage"]] if t["passage"] is not None else []), t["id"]
            if held:
                assert text.count(passages[held[0]]["text"]) == 1
                line = next(ln for ln in text.split("\n") if passages[held[0]]["text"] in ln)
                assert len(line.split()) > passages[held[0]]["words"]  # inside a paragraph, not a line of its own
        elif t["category"] != "near_dup":
            assert not held, t["id"]


def test_warc_pages(pool):
    """The WARC shard: one HTML capture per document plus request / metadata records and a few non-HTML
    captures (dropped by the reader with reasons), boilerplate around the article that main-content
    extraction removes, legacy charsets declared in the header or the page."""
    from collections import Counter as C

    out, manifest, truth, docs, _ = pool
    (rel,) = manifest["formats"]["warc"]["files"]
    path = str(out / rel)
    kept, dropped, quarantined = 0, C(), 0
    for d, q, x in get_reader(path).read_with_dropped(path):
        kept += d.num_rows
        quarantined += q.num_rows
        dropped.update(x.column("reason").to_pylist())
    n_pages = manifest["formats"]["warc"]["docs"]
    assert kept == n_pages and quarantined == 0
    extras = n_pages // 20
    assert dropped["warc:not_response:request"] == dropped["warc:not_response:metadata"] == n_pages + extras
    assert dropped["warc:not_response:warcinfo"] == 1
    assert sum(v for k, v in dropped.items() if k.startswith(("warc:not_html:", "warc:http_status:"))) == extras
    pages = [docs[t["id"]] for t in truth if t["format"] == "warc"]
    html = [p["html"] for p in pages]
    cookie = sum(any(c.split(".")[0] in h for c in L.COOKIE_LINES) for h in html)
    assert 0.4 * n_pages < cookie < 0.8 * n_pages
    assert all("<nav>" in h and "<footer>" in h for h in html)
    assert 0.15 * n_pages < sum('class="comments"' in h for h in html) < 0.45 * n_pages
    clean = [p for p, t in zip(pages, [t for t in truth if t["format"] == "warc"]) if t["category"] == "clean"]
    for p in clean:  # the article is the document: no banner, navigation or footer in it
        assert not any(c in p["text"] for c in L.COOKIE_LINES) and "All rights reserved" not in p["text"]
    charsets = C(orjson.loads(p["metadata"])["charset"] for p in pages)
    assert charsets["utf-8"] > n_pages / 2 and len(charsets) >= 2


def test_clean_prose_api():
    a = clean_prose(random.Random(1), 300)
    assert a == clean_prose(random.Random(1), 300)
    assert a != clean_prose(random.Random(2), 300)
    for n in (50, 120, 700):
        text = clean_prose(random.Random(n), n, topic="cooking")
        assert len(text.split()) >= n
        assert dclm_reason(text) is None
        assert all(line.rstrip()[-1] in ".!?" for line in text.split("\n"))
    words: set[str] = set()
    grams: Counter = Counter()
    for s in range(60):
        text = clean_prose(random.Random(100 + s), 200)
        words |= {w.strip(".,!?").lower() for w in text.split()}
        grams.update(shingles(text))
    assert len(words) > 700  # a sizeable vocabulary in use
    assert sum(1 for c in grams.values() if c == 1) / len(grams) > 0.9  # varied: 5-grams rarely repeat
    with pytest.raises(KeyError):
        clean_prose(random.Random(0), 10, topic="no-such-topic")


def test_regenerating_smaller_pool_removes_stale_shards(tmp_path):
    out = tmp_path / "again"
    generate_pool(str(out), n_docs=400, seed=1, max_shard_docs=30)
    m = generate_pool(str(out), n_docs=100, seed=1)
    listed = {rel for spec in m["formats"].values() for rel in spec["files"]}
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.parent != out}
    assert on_disk == listed | {"_truth/pool.json", "_truth/truth.jsonl", "_truth/truth.parquet",
                                "_truth/passages.jsonl"}


def test_small_pool_and_shard_cap(tmp_path):
    m = generate_pool(str(tmp_path / "tiny"), n_docs=5, seed=1)
    assert sum(f["docs"] for f in m["formats"].values()) == 5
    m = generate_pool(str(tmp_path / "capped"), n_docs=400, seed=1, max_shard_docs=30)
    for fmt, spec in m["formats"].items():
        assert spec["docs"] <= 30 * len(spec["files"])
        assert len(spec["files"]) == math.ceil(spec["docs"] / 30) or len(spec["files"]) == (1 if fmt == "warc" else 3)
    with pytest.raises(ValueError):
        generate_pool(str(tmp_path / "none"), n_docs=0)


def test_cli(tmp_path, capsys):
    helptext = subprocess.run([sys.executable, "-m", "demopool", "--help"], capture_output=True, text=True,
                              check=True).stdout
    for flag in ("--out", "--docs", "--seed", "--max-shard-docs", "--no-progress"):
        assert flag in helptext
    assert main(["--out", str(tmp_path / "cli"), "--docs", "60", "--seed", "2"]) == 0
    manifest = read_manifest(str(tmp_path / "cli"))
    assert manifest["n_docs"] == 60 and manifest["seed"] == 2
    assert "wrote 60 documents" in capsys.readouterr().out


def _peak_rss_mb(out: Path, n_docs: int) -> float:
    code = (
        "import resource, sys; from demopool import generate_pool; "
        f"generate_pool({str(out)!r}, n_docs={n_docs}, seed=0, max_shard_docs=5000); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


@pytest.mark.slow
def test_large_pool_streams_with_bounded_memory(tmp_path):
    """Peak memory does not grow with the pool: 60,000 documents need about what 6,000 need."""
    small = _peak_rss_mb(tmp_path / "small", 6_000)
    big = _peak_rss_mb(tmp_path / "big", 60_000)
    assert big < small + 64, (small, big)
    m = read_manifest(str(tmp_path / "big"))
    assert sum(len(f["files"]) for f in m["formats"].values()) >= 12
    for spec in m["formats"].values():
        for rel in spec["files"]:
            path = str(tmp_path / "big" / rel)
            n = sum(d.num_rows for d, _ in get_reader(path).read(path))
            assert 0 < n <= 5_000
