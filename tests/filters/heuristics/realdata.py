"""Real documents from ``<root>/../shared/data`` for parity tests and the benchmark.

Reads the samples in their native formats (C4/Dolma jsonl.gz, Pile jsonl.zst,
RedPajama jsonl, plain text, and WARC responses whose HTML is reduced to text with a
small stdlib extractor) into DOC_SCHEMA tables. Nothing is copied into the repo.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa

from curation.schema import docs_table

ROOT = Path(__file__).resolve().parents[3]
SHARED = ROOT / ".." / "shared" / "data"
CORPORA = SHARED / "corpora"


def available() -> bool:
    return CORPORA.is_dir()


class _TextExtractor(HTMLParser):
    SKIP = {"script", "style", "noscript", "head", "title", "svg", "template"}
    BLOCK = {
        "p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article",
        "ul", "ol", "table", "header", "footer", "nav", "pre", "blockquote", "dd", "dt",
    }  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):  # noqa: ANN001
        if tag in self.SKIP:
            self.skip += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):  # noqa: ANN001
        if tag in self.SKIP and self.skip:
            self.skip -= 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):  # noqa: ANN001
        if not self.skip:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    parser = _TextExtractor()
    parser.feed(markup)
    lines = (re.sub(r"[ \t\xa0]+", " ", ln).strip() for ln in "".join(parser.parts).split("\n"))
    return "\n".join(ln for ln in lines if ln)


def warc_pages(path: Path) -> list[tuple[str, str]]:
    """(url, extracted text) for every HTTP response record of a (gzipped) WARC file."""
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    out = []
    for chunk in re.split(rb"\r?\nWARC/[01]\.\d+\r?\n", b"\n" + raw):
        if b"WARC-Type: response" not in chunk[:4000]:
            continue
        m = re.search(rb"WARC-Target-URI: *<?([^\r\n>]*)", chunk)
        url = m.group(1).decode("utf-8", "replace") if m else ""
        parts = chunk.split(b"\r\n\r\n", 2)
        if len(parts) < 3:
            continue
        head, body = parts[1], parts[2]
        charset = rb"charset=[\"']?([-\w]+)"
        cs = re.search(charset, head, re.I) or re.search(charset, body[:4000], re.I)
        enc = cs.group(1).decode() if cs else "utf-8"
        try:
            markup = body.decode(enc, errors="replace")
        except LookupError:
            markup = body.decode("utf-8", errors="replace")
        out.append((url, html_to_text(markup)))
    return out


def _jsonl(path: Path) -> list[dict]:
    if path.suffix == ".gz":
        fh = io.TextIOWrapper(gzip.open(path), encoding="utf-8")
    elif path.suffix == ".zst":
        import zstandard

        fh = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(path.open("rb")), encoding="utf-8")
    else:
        fh = path.open(encoding="utf-8")
    with fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_real_docs(max_chars: int | None = None) -> pa.Table:
    """Every real sample document as one DOC_SCHEMA table (source = sample family)."""
    ids, texts, sources, urls = [], [], [], []

    def add(source: str, doc_id: str, text: str, url: str | None = None) -> None:
        if not isinstance(text, str) or not text:
            return
        if max_chars is not None:
            text = text[:max_chars]
        ids.append(doc_id)
        texts.append(text)
        sources.append(source)
        urls.append(url)

    for path in sorted((CORPORA / "c4").glob("*.json.gz")):
        for i, rec in enumerate(_jsonl(path)):
            add("c4", f"c4/{path.name}/{i}", rec.get("text"), rec.get("url"))
    for path in sorted((CORPORA / "dolma").glob("*.jsonl.gz")):
        for i, rec in enumerate(_jsonl(path)):
            add("dolma", f"dolma/{path.name}/{i}", rec.get("text"), (rec.get("metadata") or {}).get("url"))
    for path in sorted((CORPORA / "pile").glob("*.jsonl.zst")):
        for i, rec in enumerate(_jsonl(path)):
            add("pile", f"pile/{path.name}/{i}", rec.get("text"))
    for path in sorted((CORPORA / "redpajama").glob("*.jsonl")):
        for i, rec in enumerate(_jsonl(path)):
            meta = rec.get("meta") if isinstance(rec.get("meta"), dict) else {}
            add("redpajama", f"redpajama/{path.name}/{i}", rec.get("text"), meta.get("url"))
    for path in sorted((CORPORA / "text" / "openwebtext").glob("*.txt")):
        add("openwebtext", f"owt/{path.name}", path.read_text(encoding="utf-8"))
    for path in sorted((CORPORA / "text" / "pg19").glob("*.txt")):
        add("pg19", f"pg19/{path.name}", path.read_text(encoding="utf-8"))
    for wiki in sorted((CORPORA / "text" / "wikitext-103-raw").glob("*.raw")):
        arts = re.split(r"\n(?= ?= [^=])", wiki.read_text(encoding="utf-8"))
        for i, art in enumerate(arts):
            add("wikitext", f"wikitext/{wiki.name}/{i}", art.strip())
    warcs = sorted((CORPORA / "warc").glob("*.warc.gz")) + sorted((CORPORA / "edge").glob("*.warc.gz"))
    for path in warcs:
        if path.name.endswith((".wat.gz", ".wet.gz")):
            continue
        for i, (url, text) in enumerate(warc_pages(path)):
            add("warc", f"warc/{path.name}/{i}", text, url)
    return docs_table(ids, texts, sources, urls)
