"""HTML extraction per core, ours against datatrove's Trafilatura step, and the WARC parser choice.

Questions, each on the same pages in the same process, equal repetitions on both sides, CPU
seconds of this one process (so MB/s is per core even on a busy machine):

1. ``extract_*``: MB of HTML per CPU-second through ``HtmlExtractor.extract_many`` (resiliparse
   main content, our default) against datatrove's ``Trafilatura`` extractor (its ``extract``
   method called in-process, without the subprocess sandbox that ``run()`` adds: the peer's
   best case). Target >= 5x, on the real crawled pages of ``../shared/data/corpora`` (Common
   Crawl, wget and ClueWeb09 samples) and on the demo pool's generated pages.
2. ``extract_trafilatura_*``: our ``trafilatura`` backend against the same peer: the same library
   behind both, so this shows what our wrapper costs (target >= 0.9x). Both sides run with
   ``deduplicate=False``: trafilatura's deduplication is a per-process cache, so with it repeated
   runs (and different workers) would not see the same pages the same way.
3. ``warc_parse``: reading the WARC files (every record, every payload) with FastWARC, which our
   reader uses, against warcio (the parser datatrove's WarcReader uses); target >= 1.5x.
4. ``chars_kept_*``: characters of text each extractor keeps (no target: a fact for the README),
   with side-by-side excerpts written to ``bench/results/extract_excerpts.md``.
5. ``quality_cleaneval_*``: extraction quality against people's cleaned text: the 739 CleanEval
   pages with a gold standard (``../shared/data/extraction/cleaneval``), token precision, recall and
   F1 of each extractor option (resiliparse main content, our trafilatura backend) and of
   datatrove's Trafilatura on the same pages (the reference; no target: a choice made on quality
   as well as speed). Tokens are lowercased word-character runs, compared as multisets per page; micro
   (all pages' tokens pooled) and macro (mean over pages) figures.

    python bench/extract.py --quick      # ~40 s on 2 cores
    python bench/extract.py              # full run (2,000 demo pages, 5 repetitions): ~3 minutes
"""

from __future__ import annotations

import io
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import Timing, bench_parser, compare, measure, save  # noqa: E402

from curation.readers import get_reader  # noqa: E402
from filters.extract import HtmlExtractor  # noqa: E402

CORPORA = ROOT / ".." / "shared" / "data" / "corpora"
WARC_FILES = [CORPORA / "warc" / n for n in ("resiliparse_CC-MAIN-2020-34_warcfile.warc.gz", "sample-0000.warc.gz",
                                             "sample-0001.warc.gz", "whirlwind.warc.gz")]
WARC_FILES.append(CORPORA / "edge" / "resiliparse_clueweb-quirk.warc.gz")
EXCERPTS = ROOT / "bench" / "results" / "extract_excerpts.md"
TARGET_EXTRACT = 5.0
TARGET_WRAPPER = 0.9
TARGET_PARSE = 1.5


def read_pages(paths: list[Path]) -> list[tuple[str, str, str]]:
    """(file, url, decoded HTML) of every HTML response, read by our WARC reader."""
    out = []
    for p in paths:
        for docs, _ in get_reader(str(p)).read(str(p)):
            for url, text in zip(docs.column("url").to_pylist(), docs.column("text").to_pylist()):
                out.append((p.name, url, text))
    return out


def demo_pages(n_docs: int, workdir: str) -> list[tuple[str, str, str]]:
    from demopool import generate_pool

    m = generate_pool(workdir, n_docs=n_docs, seed=0)
    return read_pages([Path(workdir) / f for f in m["formats"]["warc"]["files"]])


def interleaved(fns: list, reps: int) -> list[Timing]:
    """``measure`` each function ``reps`` times, one repetition of each in turn (after one warm-up of
    each), so that a change of load on a shared machine falls on every side alike."""
    for fn in fns:
        fn()
    out = [Timing() for _ in fns]
    for _ in range(reps):
        for t, fn in zip(out, fns):
            t.values += measure(fn, 1).values
    return out


def rate(t: Timing, mb: float) -> Timing:
    """MB per second of each repetition."""
    return Timing([mb / v for v in t.values], clock=t.clock)


def parse_rows(reps: int) -> list[dict]:
    try:
        from warcio.archiveiterator import ArchiveIterator as WarcioIterator
    except ImportError:
        print("warcio is not installed (pip install warcio): skipping the parser comparison")
        return []
    from fastwarc.warc import ArchiveIterator

    blobs = [p.read_bytes() for p in WARC_FILES]

    def fastwarc() -> int:
        n = 0
        for b in blobs:
            for rec in ArchiveIterator(io.BytesIO(b), parse_http=True):
                n += len(rec.reader.read())
        return n

    def warcio() -> int:
        n = 0
        for b in blobs:
            for rec in WarcioIterator(io.BytesIO(b)):
                n += len(rec.content_stream().read())
        return n

    mb = sum(len(b) for b in blobs) / 1e6
    ours, ref = interleaved([fastwarc, warcio], reps)
    return [compare("warc_parse_fastwarc_vs_warcio", "MB/s of compressed WARC per CPU-second", rate(ours, mb),
                    rate(ref, mb), "warcio", TARGET_PARSE, f"{len(blobs)} WARC files, {mb:.2f} MB gzip",
                    kind="rate")]


def extract_rows(name: str, pages: list[str], reps: int, what: str) -> tuple[list[dict], dict]:
    from datatrove.pipeline.extractors import Trafilatura

    mb = sum(len(p.encode()) for p in pages) / 1e6
    ours = HtmlExtractor()
    ours_traf = HtmlExtractor("trafilatura")
    peer = Trafilatura(favour_precision=True, deduplicate=False, timeout=None)
    ours.setup()
    ours_traf.setup()

    def run_peer() -> list:
        return [peer.extract(p) for p in pages]

    t_ours, t_traf, t_peer = interleaved([lambda: ours.extract_many(pages), lambda: ours_traf.extract_many(pages),
                                          run_peer], reps)
    inp = f"{len(pages)} {what} pages, {mb:.2f} MB of HTML"
    rows = [
        compare(f"extract_{name}", "MB/s of HTML per CPU-second", rate(t_ours, mb), rate(t_peer, mb),
                "datatrove Trafilatura", TARGET_EXTRACT, inp, kind="rate", ours_backend="resiliparse"),
        compare(f"extract_trafilatura_{name}", "MB/s of HTML per CPU-second", rate(t_traf, mb), rate(t_peer, mb),
                "datatrove Trafilatura", TARGET_WRAPPER, inp, kind="rate", ours_backend="trafilatura"),
    ]
    texts = {"resiliparse": ours.extract_many(pages), "trafilatura": [t or "" for t in run_peer()]}
    kept = {k: sum(len(t) for t in v) for k, v in texts.items()}
    html_chars = sum(len(p) for p in pages)
    rows.append(compare(f"chars_kept_{name}", "characters of text kept", kept["resiliparse"], kept["trafilatura"],
                        "datatrove Trafilatura", None, inp, kind="rate", html_chars=html_chars,
                        ours_fraction=kept["resiliparse"] / html_chars,
                        reference_fraction=kept["trafilatura"] / html_chars,
                        ours_empty=sum(not t.strip() for t in texts["resiliparse"]),
                        reference_empty=sum(not t.strip() for t in texts["trafilatura"])))
    return rows, texts


def _excerpt(text: str, n: int = 600) -> str:
    text = "\n".join(ln for ln in text.split("\n") if ln.strip())
    cut = text[:n] + (" [...]" if len(text) > n else "")
    return textwrap.indent(cut or "(nothing extracted)", "    ")


def write_excerpts(real: list[tuple[str, str, str]], texts: dict[str, list[str]], rows: list[dict]) -> None:
    """A short markdown file for the README: chars kept per sample file and three pages side by side."""
    per_file: dict[str, list[int]] = {}
    for (fname, _, html), r, t in zip(real, texts["resiliparse"], texts["trafilatura"]):
        acc = per_file.setdefault(fname, [0, 0, 0, 0])
        acc[0] += 1
        acc[1] += len(html)
        acc[2] += len(r)
        acc[3] += len(t)
    lines = ["# Extraction on real crawled pages: resiliparse (ours, default) and trafilatura", "",
             "Generated by `python bench/extract.py`; characters of text kept from the HTML of every page.", "",
             "| sample file | pages | HTML chars | resiliparse | trafilatura |", "| --- | ---: | ---: | ---: | ---: |"]
    for f, (n, h, r, t) in sorted(per_file.items()):
        lines.append(f"| {f} | {n} | {h:,} | {r:,} ({r / h:.1%}) | {t:,} ({t / h:.1%}) |")
    lines += ["", "Side by side (first 600 characters of each extraction, blank lines removed):", ""]
    wanted = ["whirlwind.warc.gz", "sample-0000.warc.gz", "resiliparse_CC-MAIN-2020-34_warcfile.warc.gz"]
    for f in wanted:
        idx = [i for i, (fname, _, _) in enumerate(real) if fname == f]
        if not idx:
            continue
        # the page of the file where the two extractors differ most in length (a telling example)
        i = max(idx, key=lambda k: (abs(len(texts["resiliparse"][k]) - len(texts["trafilatura"][k])), -k))
        lines += [f"## {real[i][1]} ({f})", "", f"resiliparse, {len(texts['resiliparse'][i]):,} chars:", "",
                  _excerpt(texts["resiliparse"][i]), "", f"trafilatura, {len(texts['trafilatura'][i]):,} chars:", "",
                  _excerpt(texts["trafilatura"][i]), ""]
    EXCERPTS.write_text("\n".join(lines))
    print(f"wrote {EXCERPTS}")


CLEANEVAL = ROOT / ".." / "shared" / "data" / "extraction" / "cleaneval"


def cleaneval_pages(limit: int | None = None) -> list[tuple[str, str, str]]:
    """(name, decoded HTML, gold text) of every CleanEval page with a gold standard; the gold's ``URL:``
    line and its ``<p>``/``<h>``/``<l>`` paragraph markers removed."""
    import re

    from filters.extract import _as_str

    out = []
    for sub in ("cleaneval-dev", "cleaneval-final"):
        for gold in sorted((CLEANEVAL / sub / "GoldStandard").glob("*.txt"), key=lambda p: int(p.stem)):
            html = CLEANEVAL / sub / "input" / f"{gold.stem}.html"
            if not html.exists():
                continue
            text = gold.read_text(encoding="utf-8", errors="replace")
            text = re.sub(r"^URL:[^\n]*\n", "", text)
            text = re.sub(r"<[phl]>", " ", text)
            out.append((f"{sub}/{gold.stem}", _as_str(html.read_bytes()), text))
    return out[:limit] if limit else out


def token_scores(extracted: list[str], gold: list[str]) -> dict[str, float]:
    """Token precision / recall / F1 (lowercased \\w+ runs as multisets per page), micro and macro."""
    import re
    from collections import Counter

    tok = re.compile(r"\w+")
    hit = n_ext = n_gold = 0
    per_page = []
    for e, g in zip(extracted, gold):
        ce, cg = Counter(tok.findall((e or "").lower())), Counter(tok.findall(g.lower()))
        h, ne, ng = sum((ce & cg).values()), sum(ce.values()), sum(cg.values())
        hit, n_ext, n_gold = hit + h, n_ext + ne, n_gold + ng
        p, r = (h / ne if ne else 0.0), (h / ng if ng else 0.0)
        per_page.append((p, r, 2 * p * r / (p + r) if p + r else 0.0))
    p, r = hit / n_ext, hit / n_gold
    n = len(per_page)
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r),
            "macro_precision": sum(x[0] for x in per_page) / n, "macro_recall": sum(x[1] for x in per_page) / n,
            "macro_f1": sum(x[2] for x in per_page) / n}  # fmt: skip


def quality_rows(limit: int | None) -> list[dict]:
    from datatrove.pipeline.extractors import Trafilatura

    pages = cleaneval_pages(limit)
    if not pages:
        print("../shared/data/extraction/cleaneval is absent: quality rows skipped")
        return []
    html, gold = [h for _, h, _ in pages], [g for _, _, g in pages]
    peer = Trafilatura(favour_precision=True, deduplicate=False, timeout=None)
    ref = token_scores([peer.extract(h) or "" for h in html], gold)
    inp = f"{len(pages)} CleanEval 2007 pages with people's cleaned text (token multisets per page)"
    rows = []
    for backend in ("resiliparse", "trafilatura"):
        ex = HtmlExtractor(backend)
        ex.setup()
        sc = token_scores([t or "" for t in ex.extract_many(html)], gold)
        print(f"quality_cleaneval_{backend}: {sc}")
        rows.append({"name": f"quality_cleaneval_{backend}", "metric": "token F1 against the gold text (micro)",
                     "ours": sc["f1"], "reference": ref["f1"], "ratio": sc["f1"] / ref["f1"], "target": None,
                     "met": None, "reference_name": "datatrove Trafilatura (favour_precision, same pages)",
                     "input": inp, "reps": 1, "ours_backend": backend, "ours_scores": sc,
                     "reference_scores": ref})  # fmt: skip
    print(f"quality_cleaneval reference (datatrove Trafilatura): {ref}")
    return rows


def main() -> int:
    p = bench_parser(__doc__)
    p.add_argument("--demo-docs", type=int, default=None,
                   help="documents of the demo pool whose WARC shard (10%% of them) is the generated input "
                   "(default 2000 with --quick, 20000 otherwise)")
    args = p.parse_args()
    reps = args.reps or (3 if args.quick else 5)
    if not all(f.exists() for f in WARC_FILES):
        sys.exit(f"the crawl samples are needed: {[str(f) for f in WARC_FILES if not f.exists()]}")
    real = read_pages(WARC_FILES)
    with tempfile.TemporaryDirectory() as tmp:
        demo = demo_pages(args.demo_docs or (2000 if args.quick else 20000), tmp)
    rows, texts = extract_rows("real_pages", [h for _, _, h in real], reps, "real crawled")
    demo_rows, _ = extract_rows("demo_pages", [h for _, _, h in demo], reps, "generated demo")
    rows += demo_rows
    rows += parse_rows(reps)
    rows += quality_rows(150 if args.quick else None)
    write_excerpts(real, texts, rows)
    save(rows, "extract", args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
