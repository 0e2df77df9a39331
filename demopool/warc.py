"""The demo pool's WARC shard: its documents as crawled HTML pages, written like a Common Crawl file.

Each document of the shard (``demopool.make_doc``, any category) becomes one capture: a
``request``, a ``response`` and a ``metadata`` record, one gzip member per record (mtime 0, so the
bytes are a function of the seed). The page puts the document's lines in an ``<article>`` of
``<p>`` elements inside what a crawled page carries around its content, each part drawn per page:
navigation (always), a cookie banner (60%), breadcrumbs (50%), a sidebar of related links (50%),
a comment section with spam comments (30%), a footer (always). Every 20th capture is followed by
a capture that is not an HTML page (robots.txt, a JPEG, a PDF, a 301 redirect), which the reader
drops with its reason. The file opens with a ``warcinfo`` record.

Charsets as on the web: English pages declare UTF-8 in the HTTP header; Russian pages are sent in
windows-1251 and Polish in ISO-8859-2 (declared in the header); German, French, Spanish, Italian,
Portuguese and Dutch pages in windows-1252 declared only in a ``<meta charset>`` tag; Chinese pages
in GBK labelled ``gb2312`` in the header (as many Chinese sites do).

Records are formatted here (a header block, CRLF, the block, two CRLF) rather than with a WARC
library: the format is six lines, and the reader that parses them (FastWARC) stays an independent
check of the bytes.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import random
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import IO

from demopool import lexicon as L

HTTP_CHARSETS = {"en": "utf-8", "ru": "windows-1251", "pl": "iso-8859-2", "zh": "gb2312", "la": "utf-8"}
META_CHARSET = "windows-1252"  # the other European languages: declared in the page only
EXTRA_EVERY = 20  # one non-HTML capture after every 20th page
_MASK64 = (1 << 64) - 1


def record_id(key: int) -> str:
    """A deterministic ``urn:uuid`` from a 64-bit key (the demo's ``_mix`` of seed and index)."""
    return f"urn:uuid:{uuid.UUID(int=(key * 0x9E3779B97F4A7C15 & _MASK64) << 64 | key & _MASK64)}"


def _digest(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


def _warc_record(kind: str, rid: str, date: str, block: bytes, uri: str | None, content_type: str,
                 extra: Iterable[tuple[str, str]] = ()) -> bytes:
    fields = [("WARC-Type", kind), ("WARC-Date", date), ("WARC-Record-ID", f"<{rid}>")]
    if uri:
        fields.append(("WARC-Target-URI", uri))
    fields += list(extra)
    fields += [("Content-Type", content_type), ("Content-Length", str(len(block))),
               ("WARC-Block-Digest", _digest(block))]
    head = "WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields) + "\r\n"
    return head.encode() + block + b"\r\n\r\n"


def _charsets(lang: str) -> tuple[str | None, str | None, str]:
    """(charset named in the HTTP header, charset named in a meta tag, Python codec) for ``lang``."""
    if lang in HTTP_CHARSETS:
        cs = HTTP_CHARSETS[lang]
        return cs, None, "gbk" if cs == "gb2312" else cs  # what a "gb2312" site really sends
    return None, META_CHARSET, "cp1252"


def page_html(rng: random.Random, text: str, site: str, meta_charset: str | None, lang: str) -> str:
    """A crawled-looking page around the document ``text`` (one ``<p>`` per line)."""
    esc = html.escape
    lines = [ln for ln in text.split("\n") if ln.strip()] or [text]
    title = " ".join(lines[0].split()[:10])
    year = rng.randint(2012, 2023)
    head = [f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>']
    if meta_charset:
        head.append(f'<meta charset="{meta_charset}">')
    head.append(f"<title>{esc(title)} | {esc(site)}</title>\n</head>\n<body>")
    parts = ["\n".join(head)]
    if rng.random() < 0.6:
        parts.append('<div id="cookie-banner" class="cookie-consent"><p>'
                     f"{esc(rng.choice(L.COOKIE_LINES))}</p><button>Accept all cookies</button></div>")
    nav = rng.sample(L.NAV_LINES, 6)
    parts.append('<header><a class="logo" href="/">' + esc(site) + '</a><nav><ul>'
                 + "".join(f'<li><a href="/{i}">{esc(x)}</a></li>' for i, x in enumerate(nav)) + "</ul></nav></header>")
    if rng.random() < 0.5:
        parts.append('<div class="breadcrumbs"><a href="/">Home</a> &gt; <a href="/blog">Blog</a></div>')
    body = "\n".join(f"<p>{esc(ln)}</p>" for ln in lines)
    parts.append(f'<main>\n<article class="post">\n{body}\n</article>')
    if rng.random() < 0.3:
        comments = []
        for _ in range(rng.randint(2, 5)):
            words = " ".join(rng.choice(L.SPAM_KEYWORDS) for _ in range(rng.randint(5, 12)))
            comments.append(f'<div class="comment"><span class="author">{esc(rng.choice(L.SPAM_PRODUCTS))}'
                            f"{rng.randint(1, 999)}</span><p>{esc(words)} {esc(rng.choice(L.SPAM_SHOUTS))}</p></div>")
        parts.append('<section id="comments" class="comments"><h2>Comments</h2>' + "".join(comments) + "</section>")
    parts.append("</main>")
    if rng.random() < 0.5:
        related = rng.sample(L.NAV_LINES, 4)
        parts.append('<aside class="sidebar"><h3>Related posts</h3><ul>'
                     + "".join(f'<li><a href="/r{i}">{esc(x)}</a></li>' for i, x in enumerate(related))
                     + "</ul></aside>")
    foot = [f.format(year=year, site=site, num=rng.randint(100, 999)) for f in rng.sample(L.FOOTER_LINES, 3)]
    parts.append("<footer>" + "".join(f"<p>{esc(x)}</p>" for x in foot) + "</footer>\n</body>\n</html>\n")
    return "\n".join(parts)


def _http(status: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("latin-1") + body


def _capture(out: IO[bytes], key: int, rid: str, uri: str, when: datetime, status: str, ctype: str,
             payload: bytes, extra_headers: list[tuple[str, str]] | None = None) -> None:
    date = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    host = uri.split("/")[2]
    path = "/" + uri.split("/", 3)[3] if uri.count("/") >= 3 else "/"
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: DemoBot/1.0\r\n"
               "Accept: text/html,application/xhtml+xml,*/*;q=0.8\r\n\r\n").encode()
    req_id = record_id(key ^ 0x5EED)
    headers = [("Content-Type", ctype), ("Content-Length", str(len(payload))),
               ("Date", when.strftime("%a, %d %b %Y %H:%M:%S GMT"))] + (extra_headers or [])
    response = _http(status, headers, payload)
    meta = f"fetchTimeMs: {key % 900 + 20}\r\ncharset-detected: n/a\r\n".encode()
    for rec in (
        _warc_record("request", req_id, date, request, uri, "application/http; msgtype=request"),
        _warc_record("response", rid, date, response, uri, "application/http; msgtype=response",
                     [("WARC-Concurrent-To", f"<{req_id}>"), ("WARC-Payload-Digest", _digest(payload))]),
        _warc_record("metadata", record_id(key ^ 0xA11CE), date, meta, uri, "application/warc-fields",
                     [("WARC-Concurrent-To", f"<{rid}>")]),
    ):
        out.write(gzip.compress(rec, compresslevel=6, mtime=0))


def _extra_capture(out: IO[bytes], key: int, site_url: str, when: datetime) -> None:
    """A capture that is not an HTML page, as crawls hold many."""
    rng = random.Random(key)
    kind = rng.randrange(4)
    rid = record_id(key ^ 0xE7)
    if kind == 0:
        body = b"User-agent: *\nDisallow: /admin/\nSitemap: " + site_url.encode() + b"/sitemap.xml\n"
        _capture(out, key, rid, site_url + "/robots.txt", when, "200 OK", "text/plain", body)
    elif kind == 1:
        body = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(rng.randrange(256) for _ in range(600)) + b"\xff\xd9"
        _capture(out, key, rid, site_url + f"/img/{key % 10**6}.jpg", when, "200 OK", "image/jpeg", body)
    elif kind == 2:
        body = b"%PDF-1.4\n" + bytes(rng.randrange(256) for _ in range(800)) + b"\n%%EOF\n"
        _capture(out, key, rid, site_url + f"/files/report-{key % 1000}.pdf", when, "200 OK", "application/pdf", body)
    else:
        body = b'<html><body><a href="/new">Moved</a></body></html>'
        _capture(out, key, rid, site_url + "/old", when, "301 Moved Permanently", "text/html; charset=utf-8", body,
                 [("Location", site_url + "/new")])


def warcinfo(seed: int) -> bytes:
    fields = (f"software: demopool (seed {seed})\r\nformat: WARC File Format 1.0\r\n"
              "description: demo pool pages with planted categories\r\n").encode()
    rec = _warc_record("warcinfo", record_id(seed ^ 0xF00D), "2024-01-01T00:00:00Z", fields, None,
                       "application/warc-fields")
    return gzip.compress(rec, compresslevel=6, mtime=0)


def write_page(out: IO[bytes], n_written: int, key: int, rid: str, text: str, lang: str, url: str,
               when: datetime, rng: random.Random) -> None:
    """Write one document as a capture (and, every ``EXTRA_EVERY`` pages, a non-HTML capture)."""
    site = url.split("/")[2]
    http_cs, meta_cs, codec = _charsets(lang)
    state = rng.getstate()
    try:
        payload = page_html(rng, text, site, meta_cs, lang).encode(codec)
    except UnicodeEncodeError:  # a character the legacy charset lacks: send the page as UTF-8
        rng.setstate(state)
        http_cs = "utf-8"
        payload = page_html(rng, text, site, None, lang).encode("utf-8")
    ctype = f"text/html; charset={http_cs}" if http_cs else "text/html"
    _capture(out, key, rid, url, when, "200 OK", ctype, payload)
    if n_written % EXTRA_EVERY == EXTRA_EVERY - 1:
        _extra_capture(out, key, "https://" + site, when)


__all__ = ["EXTRA_EVERY", "page_html", "record_id", "warcinfo", "write_page"]
