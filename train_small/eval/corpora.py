"""Real English text as documents: the native formats of the reference corpora, a deterministic split into a
training part and a held-out reference part, and one command that prepares both.

Reference domains and known-answer experiments need real text read the way its source publishes it, cut
into documents a proxy can be scored on one by one (Paloma-style), and split so that what is scored is never
what is trained on. Readers (each yields ``(id, text)`` in file order):

==================  =========================================================================================
``wikipedia``       WikiExtractor output (``<doc id=... url=... title=...>`` ... ``</doc>``); pages whose body
                    is empty (list and disambiguation pages emptied by the extractor) are skipped
``news``            Reuters-21578 SGML: ``<TITLE>`` and ``<BODY>`` of every ``<REUTERS>`` record with a body
``stackexchange``   Stack Exchange dumps (``Posts.xml``): one document per thread (question title and body,
                    then its answers by id), HTML bodies reduced to text with resiliparse
``books``           Project Gutenberg books without the licence header and footer, cut at paragraph ends into
                    pieces of about ``book_chunk_words`` words (a whole book is one document of 100k words:
                    too few documents for an interval over documents)
``python_docs``     reStructuredText sources (``*.rst.txt``), one document per file
``arxiv``           RedPajama arXiv jsonl (``text`` per line)
==================  =========================================================================================

:func:`split_documents` assigns each document to the reference part by a hash of its id (the same document
goes to the same side whatever else is in the corpus), until the part holds ``reference_bytes`` of text;
everything else is the training part. :func:`prepare` writes ``<out>/<domain>/{train,reference}.parquet`` in
the pipeline's document schema (``id``, ``text``, ``source`` = the domain), so the runner, the token builder
and ``--heldout-ref`` read them unchanged, plus ``<out>/corpora.json`` (counts, bytes, sources)::

    python -m train_small.eval.corpora --src ../shared/data/corpora/text --out runs/english
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import html
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)

__all__ = ["DOMAINS", "Domain", "read_domain", "split_documents", "prepare", "main"]

_WS = re.compile(r"[ \t]+")
_BLANKS = re.compile(r"\n{3,}")


def _tidy(text: str) -> str:
    """Trailing spaces off every line, at most one blank line in a row, no leading/trailing blank lines."""
    lines = [_WS.sub(" ", line).rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


# ------------------------------------------------------------------------------------------------ readers

_DOC_OPEN = re.compile(r'<doc id="([^"]*)"[^>]*>')


def read_wikiextractor(path: str, min_chars: int = 200) -> Iterator[tuple[str, str]]:
    """WikiExtractor ``<doc>`` records; the first line (the title) is kept as the document's first line."""
    with open(path, encoding="utf-8") as f:
        raw = f.read()
    for m in _DOC_OPEN.finditer(raw):
        end = raw.find("</doc>", m.end())
        if end < 0:
            log.warning("%s: unterminated <doc id=%s>, the rest of the file skipped", path, m.group(1))
            return
        text = _tidy(raw[m.end() : end])
        title, _, body = text.partition("\n")
        if len(body.strip()) >= min_chars:
            yield f"wikipedia/{m.group(1)}", text


_REUTERS = re.compile(r'<REUTERS[^>]*NEWID="(\d+)"[^>]*>(.*?)</REUTERS>', re.S)
_TITLE = re.compile(r"<TITLE>(.*?)</TITLE>", re.S)
_BODY = re.compile(r"<BODY>(.*?)</BODY>", re.S)


def read_reuters(path: str) -> Iterator[tuple[str, str]]:
    """Reuters-21578 records with a ``<BODY>`` (title, blank line, body; the end-of-text mark removed)."""
    with open(path, encoding="latin-1") as f:  # the collection is 7-bit with a few stray latin-1 bytes
        raw = f.read()
    for m in _REUTERS.finditer(raw):
        body = _BODY.search(m.group(2))
        if not body:
            continue
        title = _TITLE.search(m.group(2))
        text = html.unescape(body.group(1)).replace("\x03", "")
        head = html.unescape(title.group(1)).strip() if title else ""
        text = _tidy(f"{head}\n\n{text}" if head else text)
        if text:
            yield f"news/{m.group(1)}", text


def _html_text(fragment: str) -> str:
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(fragment, main_content=False, preserve_formatting=True, list_bullets=True)


def read_stackexchange(path: str) -> Iterator[tuple[str, str]]:
    """One document per thread of a ``Posts.xml``: ``Title``, question body, then each answer (by id)."""
    import xml.etree.ElementTree as ET

    site = os.path.basename(os.path.dirname(path))
    questions: dict[int, tuple[str, str]] = {}
    answers: dict[int, list[tuple[int, str]]] = {}
    for _, el in ET.iterparse(path, events=("end",)):
        if el.tag != "row":
            continue
        kind, pid, body = el.get("PostTypeId"), int(el.get("Id", "0")), el.get("Body") or ""
        if kind == "1":
            questions[pid] = (el.get("Title") or "", body)
        elif kind == "2" and el.get("ParentId"):
            answers.setdefault(int(el.get("ParentId")), []).append((pid, body))
        el.clear()
    for qid in sorted(questions):
        title, body = questions[qid]
        parts = [title.strip(), _html_text(body)] + [_html_text(b) for _, b in sorted(answers.get(qid, []))]
        text = _tidy("\n\n".join(p for p in parts if p and p.strip()))
        if text:
            yield f"stackexchange/{site}/{qid}", text


_PG_START = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I)
_PG_END = re.compile(r"^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I)


def read_gutenberg(path: str, chunk_words: int = 2000) -> Iterator[tuple[str, str]]:
    """A Project Gutenberg book without its licence header and footer, in pieces of about ``chunk_words`` words
    cut at paragraph ends."""
    with open(path, encoding="utf-8", errors="replace") as f:
        raw = f.read().lstrip("\ufeff")
    start, end = _PG_START.search(raw), _PG_END.search(raw)
    if start and end and end.start() > start.end():
        raw = raw[start.end() : end.start()]
    else:
        log.warning("%s: no Project Gutenberg START/END markers, the whole file is used", path)
    paragraphs = [p for p in (_tidy(x) for x in re.split(r"\n\s*\n", raw)) if p]
    stem = os.path.basename(path).rsplit(".", 1)[0]
    piece: list[str] = []
    words = k = 0
    for p in paragraphs:
        piece.append(p)
        words += len(p.split())
        if words >= chunk_words:
            yield f"books/{stem}/{k}", "\n\n".join(piece)
            piece, words, k = [], 0, k + 1
    if piece and (words >= chunk_words // 4 or k == 0):
        yield f"books/{stem}/{k}", "\n\n".join(piece)


def read_rst(path: str, root: str) -> Iterator[tuple[str, str]]:
    with open(path, encoding="utf-8") as f:
        text = _tidy(f.read())
    if text:
        yield f"python_docs/{os.path.relpath(path, root)}", text


def read_jsonl_text(path: str, prefix: str) -> Iterator[tuple[str, str]]:
    stem = os.path.basename(path).split(".")[0]
    with open(path, encoding="utf-8") as f:
        for row, line in enumerate(f):
            if not line.strip():
                continue
            text = json.loads(line).get("text")
            if isinstance(text, str) and text.strip():
                yield f"{prefix}/{stem}/{row}", text.strip()


@dataclass(frozen=True)
class Domain:
    name: str
    patterns: tuple[str, ...]  # globs relative to the source root
    reader: Callable[..., Iterator[tuple[str, str]]]
    kind: str  # what the text is, for the reports


def _rst(path: str, root: str) -> Iterator[tuple[str, str]]:
    return read_rst(path, os.path.join(root, "python_docs", "_sources"))


def _arxiv(path: str, root: str) -> Iterator[tuple[str, str]]:
    return read_jsonl_text(path, "arxiv")


#: The English domains of ``../shared/data/corpora`` (relative to its ``text/`` folder; arXiv from
#: ``../redpajama``). Non-English text (the Spanish es.stackoverflow sample) is not among them.
DOMAINS: dict[str, Domain] = {
    d.name: d
    for d in (
        Domain("wikipedia", ("wikipedia_enwiki_2018/AA/wiki_*",), lambda p, r: read_wikiextractor(p),
               "encyclopedia (English Wikipedia 2018, WikiExtractor)"),
        Domain("books", ("gutenberg/[0-9]*.txt",), lambda p, r: read_gutenberg(p),
               "books (Project Gutenberg, 2,000-word pieces)"),
        Domain("news", ("reuters21578/reut2-*.sgm",), lambda p, r: read_reuters(p), "newswire (Reuters-21578, 1987)"),
        Domain("stackexchange", ("stackexchange_en/*/Posts.xml",), lambda p, r: read_stackexchange(p),
               "Q&A threads (English Stack Exchange: ai, beer, coffee)"),
        Domain("python_docs", ("python_docs/_sources/**/*.rst.txt",), _rst,
               "technical documentation (Python 3.11 docs, reStructuredText)"),
        Domain("arxiv", ("../redpajama/arxiv_sample.jsonl", "../redpajama/process_sci_data__arxiv.jsonl"), _arxiv,
               "scientific papers (RedPajama arXiv samples, LaTeX)"),
    )
}  # fmt: skip


def domain_files(domain: str, root: str) -> list[str]:
    d = DOMAINS[domain]
    return sorted({f for pat in d.patterns for f in glob.glob(os.path.join(root, pat), recursive=True)})


def read_domain(domain: str, root: str) -> Iterator[tuple[str, str]]:
    """Every document of ``domain`` under ``root`` (the corpora's ``text/`` folder), in file order."""
    if domain not in DOMAINS:
        raise KeyError(f"unknown domain {domain!r}; known: {sorted(DOMAINS)}")
    files = domain_files(domain, root)
    if not files:
        raise FileNotFoundError(f"domain {domain}: no file matches {DOMAINS[domain].patterns} under {root}")
    for path in files:
        yield from DOMAINS[domain].reader(path, root)


# ------------------------------------------------------------------------------------------------ split


def id_fraction(doc_id: str, salt: str = "reference") -> float:
    """A number in [0, 1) fixed by the id (sha256), independent of the other documents."""
    h = hashlib.sha256(f"{salt}/{doc_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def split_documents(
    docs: list[tuple[str, str]], reference_bytes: int, salt: str = "reference"
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(training, reference): documents in order of their id hash fill the reference part until it holds
    ``reference_bytes`` of UTF-8 text (the document that crosses the limit included); the rest, in their original
    order, are the training part. Each document is on exactly one side."""
    order = sorted(range(len(docs)), key=lambda i: (id_fraction(docs[i][0], salt), docs[i][0]))
    ref: set[int] = set()
    total = 0
    for i in order:
        if total >= reference_bytes:
            break
        ref.add(i)
        total += len(docs[i][1].encode("utf-8"))
    return [d for i, d in enumerate(docs) if i not in ref], [d for i, d in enumerate(docs) if i in ref]


def _write(path: str, docs: list[tuple[str, str]], domain: str) -> None:
    from curation.schema import docs_table
    from curation.storage import write_parquet_atomic

    table = docs_table([i for i, _ in docs], [t for _, t in docs], domain)
    write_parquet_atomic(path, table)


def prepare(src: str, out: str, domains: list[str] | None = None, reference_bytes: int = 600_000) -> dict:
    """Read every domain under ``src``, split it, write ``<out>/<domain>/{train,reference}.parquet`` and
    ``<out>/corpora.json``; returns the summary. Skips work whose outputs exist for the same settings."""
    domains = domains or list(DOMAINS)
    summary_path = os.path.join(out, "corpora.json")
    settings = {"src_files": {}, "reference_bytes": reference_bytes, "version": 1}
    for d in domains:
        files = domain_files(d, src)
        settings["src_files"][d] = [[os.path.relpath(f, src), os.path.getsize(f)] for f in files]
    if os.path.exists(summary_path):
        old = json.load(open(summary_path))
        if old.get("settings") == settings and all(
            os.path.exists(os.path.join(out, d, f"{part}.parquet")) for d in domains for part in ("train", "reference")
        ):
            return old
    summary: dict = {"settings": settings, "domains": {}}
    for d in domains:
        docs = list(read_domain(d, src))
        train, ref = split_documents(docs, reference_bytes)
        os.makedirs(os.path.join(out, d), exist_ok=True)
        _write(os.path.join(out, d, "train.parquet"), train, d)
        _write(os.path.join(out, d, "reference.parquet"), ref, d)
        summary["domains"][d] = {
            "kind": DOMAINS[d].kind,
            "train_docs": len(train), "train_bytes": sum(len(t.encode()) for _, t in train),
            "reference_docs": len(ref), "reference_bytes": sum(len(t.encode()) for _, t in ref),
        }  # fmt: skip
        log.info("%s: %d training documents, %d reference documents", d, len(train), len(ref))
    from curation.storage import write_json_atomic

    write_json_atomic(summary_path, summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train_small.eval.corpora",
                                description="Read the English reference corpora in their native formats and "
                                "write a training part and a held-out reference part per domain (parquet).")
    p.add_argument("--src", default="../shared/data/corpora/text", help="the corpora's text/ folder")
    p.add_argument("--out", required=True, help="output folder (<out>/<domain>/{train,reference}.parquet)")
    p.add_argument("--domains", default=",".join(DOMAINS), help=f"comma list of {list(DOMAINS)}")
    p.add_argument("--reference-bytes", type=int, default=600_000,
                   help="UTF-8 bytes of text held out per domain as its reference part (default %(default)s: "
                   "about 150k tokens of a 4k-piece BPE)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    s = prepare(a.src, a.out, [d for d in a.domains.split(",") if d], a.reference_bytes)
    print(json.dumps(s["domains"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
