"""The WARC / WET readers on every crawl sample in ../shared/data/corpora (skipped when absent),
including the ClueWeb09 quirk file and cc_net's hand-made WET file."""

from __future__ import annotations

import re
import zlib
from collections import Counter
from pathlib import Path

import orjson
import pytest

from curation.readers import detect_format
from curation.readers.warc import HTML_COLUMN
from tests.curation.readers.warc_helpers import read_all, reasons

ROOT = Path(__file__).resolve().parents[3]
CORPORA = ROOT / ".." / "shared" / "data" / "corpora"
CJK = re.compile(r"[\u4e00-\u9fff]")
CYRILLIC = re.compile(r"[\u0400-\u04ff]")
KANA = re.compile(r"[\u3040-\u30ff]")


def _need(rel: str) -> Path:
    path = CORPORA / rel
    if not path.exists():
        pytest.skip(f"real sample absent: {rel}")
    return path


def _gzip_members(path: Path) -> int:
    """Records in a Common Crawl-style file, counted independently: one gzip member per record."""
    data, n = path.read_bytes(), 0
    while data:
        d = zlib.decompressobj(wbits=31)
        d.decompress(data)
        assert d.eof
        n += 1
        data = d.unused_data
    return n


def _metas(docs) -> list[dict]:
    return [orjson.loads(m) for m in docs.column("metadata").to_pylist()]


@pytest.mark.parametrize(
    "rel, n_docs",
    [
        ("warc/resiliparse_CC-MAIN-2020-34_warcfile.warc.gz", 16),
        ("warc/sample-0000.warc.gz", 22),
        ("warc/sample-0001.warc.gz", 15),
        ("warc/whirlwind.warc.gz", 1),
        ("edge/resiliparse_clueweb-quirk.warc.gz", 29),
    ],
)
def test_warc_samples_account_for_every_record(rel, n_docs):
    path = _need(rel)
    assert detect_format(str(path)) == "warc"
    docs, quar, drop = read_all(path)
    assert quar.num_rows == 0
    assert docs.num_rows == n_docs  # every HTML response of these files
    assert docs.num_rows + drop.num_rows == _gzip_members(path)
    assert all(r.startswith("warc:not_response:") for r in reasons(drop))
    assert docs.column(HTML_COLUMN).to_pylist() == [True] * n_docs
    assert len(set(docs.column("id").to_pylist())) == n_docs
    for text, url in zip(docs.column("text").to_pylist(), docs.column("url").to_pylist()):
        assert "<" in text[:200] and url.startswith("http")
        assert text.count("\ufffd") <= len(text) // 1000  # decoded with the right charset
    for m in _metas(docs):
        assert m["http_status"] == 200 and m["content_type"] in ("text/html", "application/xhtml+xml")
        assert m["payload_digest"].startswith("sha1:")


def test_common_crawl_charsets():
    docs, _, _ = read_all(_need("warc/resiliparse_CC-MAIN-2020-34_warcfile.warc.gz"))
    by_charset: dict[str, list[str]] = {}
    for text, m in zip(docs.column("text").to_pylist(), _metas(docs)):
        by_charset.setdefault(m["charset"], []).append(text)
    assert set(by_charset) >= {"utf-8", "cp1251", "gbk"}
    assert all(len(CYRILLIC.findall(t)) > 100 for t in by_charset["cp1251"])
    assert all(len(CJK.findall(t)) > 100 for t in by_charset["gbk"])  # gb2312 read as GBK, as browsers do


def test_clueweb_quirks():
    """WARC/0.18 headers, HTTP headers ending lines with a bare LF, ``Content-Encoding: gzip`` over plain
    bodies, EUC-JP: every page comes out whole (the HTML starts at ``<html>``, not inside the page)."""
    docs, quar, drop = read_all(_need("edge/resiliparse_clueweb-quirk.warc.gz"))
    assert quar.num_rows == 0 and reasons(drop) == {"warc:not_response:warcinfo": 1}
    for text, m in zip(docs.column("text").to_pylist(), _metas(docs)):
        assert text.lstrip().startswith("<html>")
        assert m["charset"] == "euc_jp" and "content_encoding" not in m
        assert len(KANA.findall(text)) > 50
    assert docs.column("url")[0].as_py() == "http://www.uraharajuku.st/shopdetail/001005000005/019/000/order/"
    assert docs.column("id")[0].as_py() == "urn:uuid:8789ea4e-e914-4ec6-8b7a-ecdd45d340a7"


def test_wet_sample():
    path = _need("warc/whirlwind.warc.wet.gz")
    assert detect_format(str(path)) == "wet"
    docs, quar, drop = read_all(path)
    assert quar.num_rows == 0 and reasons(drop) == {"wet:not_conversion:warcinfo": 1}
    assert docs.num_rows == 1 and HTML_COLUMN not in docs.column_names
    assert docs.column("url")[0].as_py() == "https://an.wikipedia.org/wiki/Escopete"
    assert docs.column("text")[0].as_py().startswith("Escopete")
    assert _metas(docs)[0]["refers_to"].startswith("<urn:uuid:")


def test_cc_net_wet_file_with_bare_lf_headers():
    """Hand-made, its headers end with LF and its Content-Lengths count CRLF: strict parsers reject it,
    FastWARC's quirks mode loses the English record. Read line by line: all three pages."""
    docs, quar, drop = read_all(_need("edge/cc_net_sample.warc.wet"))
    assert quar.num_rows == 0 and reasons(drop) == {"wet:not_conversion:warcinfo": 1}
    urls = docs.column("url").to_pylist()
    assert urls == ["http://sample_english.com", "http://sample_chinese.zh", "http://sample_russian.ru"]
    texts = docs.column("text").to_pylist()
    assert texts[0].startswith("Famous Mark Twain Quotes\n") and texts[0].endswith("Truth isn't.")
    assert CJK.search(texts[1]) and CYRILLIC.search(texts[2])
    ids = docs.column("id").to_pylist()
    assert ids[0] == "urn:uuid:cd61b0b3-d9b0-466c-9a5e-99c191f8d2e1" and ids[1].startswith(ids[0] + "@")
    assert len(set(ids)) == 3


def test_wat_is_refused():
    path = _need("warc/whirlwind.warc.wat.gz")
    with pytest.raises(ValueError, match="warc.wet.gz"):
        detect_format(str(path))


def test_every_crawl_sample_is_covered():
    folder_files = [p for d in ("warc", "edge") for p in (CORPORA / d).glob("*") if ".wa" in p.name or ".we" in p.name]
    if not folder_files:
        pytest.skip("real samples absent")
    kinds = Counter(p.name.split(".warc")[-1] for p in folder_files)
    # the tests above read all of these: 5 WARC, 2 WET, 1 WAT (refused)
    assert sum(kinds.values()) == 8, sorted(p.name for p in folder_files)
