"""URL stages of the RefinedWeb recipe (Penedo et al. 2023, "The RefinedWeb Dataset
for Falcon LLM", arXiv:2306.01116, §G.1) as run by DCLM
(``baselines_configs/dclm_baseline_refinedweb.yaml``): move the URL into its own
column, ban domains, ban URL words (strict substrings, hard whole words, soft words
with >= 2 hits), optionally drop "high-quality" domains (kept for curated sources,
``refinedweb.yaml``), remove URLs from the text and collapse runs of newlines.

The word lists and the TLD list are DCLM's own (``filters/data``, MIT, origin noted
there). Word matching follows DCLM's Python ``re`` (``\\b`` and case folding are Unicode):
URL words with the same regular expressions in Python (one URL per document: cheap);
URL removal with RE2 over the batch where RE2 and Python agree, and Python's ``re`` on the
few pages where they might not (a non-ASCII character against a ``\\b``).

Two DCLM behaviours are evidently accidents; ``refinedweb_stages(variant="dclm")`` follows
the intent and ``variant="dclm-exact"`` reproduces them (``filters/heuristics/README.md``):

* domains: DCLM deletes every ``"www"`` from ``urlparse(url).netloc`` (port included)
  and matches the result exactly (``URLDomainFilter(match="dclm-exact")``); by default
  a leading ``www.`` is stripped from the host and parent domains match too, as UT1 lists
  mean them (``match="suffix"``);
* URL removal: DCLM removes TLD-based URLs only from pages whose text *starts* with a TLD
  (``Blacklist(...).compiled.match``: ``URLRemoval(gate="start_tld")``; 743 of 1,313 real
  pages did); by default URLs are removed from every page, as DCLM's docstring says.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.stage import Filter, Mapper
from filters.heuristics import _arrow as A
from filters.heuristics import _words as W

logger = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parents[1] / "data"
DEFAULT_DOMAINS = DATA / "banned_domains_ut1.txt"
DEFAULT_STRICT = DATA / "dclm_url_words_strict.txt"  # DCLM's lists (filters/data/README.md)
DEFAULT_HARD = DATA / "dclm_url_words_hard.txt"
DEFAULT_SOFT = DATA / "dclm_url_words_soft.txt"
DEFAULT_TLDS = DATA / "dclm_iana_tlds.txt"

#: refinedweb.yaml's second url_substring_filter: curated sources that RefinedWeb
#: excludes from the web crawl because they are added separately.
HQ_DOMAINS = (
    "arxiv.org", "askubuntu.com", "stackoverflow.com", "stackapps.com", "stackexchange.com",
    "mathoverflow.net", "exporter.nih.gov", "ncbi.nlm.nih.gov", "github.com", "irclogs.ubuntu.com",
    "news.ycombinator.com", "courtlistener.com", "reddit.com", "statmt.org", "uspto.gov", "wikipedia.org",
)  # fmt: skip

_HOST_RE = r"^(?:[a-zA-Z][a-zA-Z0-9+.\-]*:)?//(?:[^@/?#]*@)?(?P<host>\[[^\]]*\]|[^:/?#]*)"


def read_list(path: str | Path) -> list[str]:
    """One entry per line; blank lines and ``#`` comments skipped (UT1 ``domains`` files)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#"):
                out.append(line.lower())
    return out


def _url_column(table: pa.Table) -> pa.Array:
    if "url" not in table.column_names:
        return pa.nulls(table.num_rows, pa.string())
    col = table.column("url")
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def url_hosts(urls: pa.Array, strip_www: bool = True) -> pa.Array:
    """Lowercased host of every URL (scheme-less URLs too); null where there is none."""
    low = pc.utf8_lower(pc.utf8_trim_whitespace(urls))
    has_scheme = pc.match_substring_regex(low, r"^(?:[a-z][a-z0-9+.\-]*:)?//")
    low = pc.if_else(has_scheme, low, pc.binary_join_element_wise("//", low, ""))
    host = pc.struct_field(pc.extract_regex(low, _HOST_RE), "host")
    host = pc.utf8_rtrim(host, characters=".")
    if strip_www:
        host = pc.replace_substring_regex(host, r"^www\d*\.", "")
    return pc.if_else(pc.equal(host, ""), pa.scalar(None, pa.string()), host)


class MoveURL(Mapper):
    """Fill the ``url`` column from the metadata JSON where it is null (DCLM
    ``move_url_modifier``: the URL sat in ``metadata['WARC-Target-URI']``)."""

    name = "move_url"

    def __init__(self, *, keys: Iterable[str] = ("WARC-Target-URI", "url", "warc_url")) -> None:
        self.keys = tuple(keys)
        if not self.keys:
            raise ValueError("keys must name at least one metadata field")
        for k in self.keys:
            if not re.fullmatch(r"[\w.\-]+", k):
                raise ValueError(f"bad metadata key {k!r}")

    def transform(self, table: pa.Table) -> tuple[pa.Table, None]:
        url = _url_column(table).cast(pa.string())
        if "metadata" not in table.column_names or url.null_count == 0:
            return table, None
        meta = table.column("metadata").combine_chunks().cast(pa.string())
        for key in self.keys:
            pat = r'"' + re.escape(key) + r'"\s*:\s*"(?P<v>(?:[^"\\]|\\.)*)"'
            found = pc.struct_field(pc.extract_regex(meta, pat), "v")
            found = pc.replace_substring(found, "\\/", "/")
            url = pc.coalesce(url, found)
        idx = table.column_names.index("url") if "url" in table.column_names else None
        if idx is None:
            return table.append_column("url", url), None
        return table.set_column(idx, table.schema.field("url"), url), None


def dclm_netloc(url: str) -> str:
    """DCLM's key for ``exact_domain_match``: ``urlparse(url).netloc``, lowercased, every ``"www"``
    deleted (``ignore_chars: ['www']``); port and user info stay. Raises ValueError where urlparse does."""
    from urllib.parse import urlparse

    return urlparse(url).netloc.lower().replace("www", "")


class URLDomainFilter(Filter):
    """Drop documents whose host is on a domain list (UT1 format).

    ``blocklist_path`` defaults to the small list shipped in ``filters/data``;
    ``domains`` adds entries. ``match="suffix"`` (default): the lowercased host, a leading
    ``www.`` stripped (``strip_www``), and with ``match_subdomains`` ``a.b.example.com`` is
    banned by ``example.com``; documents without a URL are kept. ``match="dclm-exact"``: DCLM's
    ``url_substring_filter(exact_domain_match=True, ignore_chars=['www'])`` as it runs: the list
    read as DCLM reads it (every line, lowercased, not stripped), the key :func:`dclm_netloc`
    (a missing URL is ``""``), and a URL that ``urlparse`` rejects (``http://[x``) dropped as
    ``url:invalid`` (DCLM's mapper raises there and loses the page).
    """

    MATCHES = ("suffix", "dclm-exact")

    name = "url_domains"

    def __init__(
        self,
        *,
        blocklist_path: str | Path | None = DEFAULT_DOMAINS,
        domains: Iterable[str] = (),
        match_subdomains: bool = True,
        strip_www: bool = True,
        match: str = "suffix",
        reason: str = "url:banned_domain",
        name: str | None = None,
    ) -> None:
        if match not in self.MATCHES:
            raise ValueError(f"match must be one of {self.MATCHES}, got {match!r}")
        self.match = match
        self.blocklist_path = str(blocklist_path) if blocklist_path is not None else None
        if self.blocklist_path is not None and not Path(self.blocklist_path).is_file():
            raise ValueError(f"blocklist_path {self.blocklist_path!r} is not a file")
        self.domains = tuple(sorted({d.strip().lower() for d in domains if d.strip()}))
        if self.blocklist_path is None and not self.domains and match != "dclm-exact":
            raise ValueError("give blocklist_path and/or domains")
        self.match_subdomains = match_subdomains
        self.strip_www = strip_www
        self.reason = reason
        if name is not None:
            self.name = name
        self._set: pa.Array | None = None

    def setup(self) -> None:
        entries = set(self.domains)
        if self.match == "dclm-exact":
            if self.blocklist_path is not None:
                with open(self.blocklist_path, encoding="utf-8") as fh:
                    entries.update(line.lower() for line in fh.read().splitlines())
            self._set = pa.array(sorted(entries), pa.string())
            return
        if self.blocklist_path is not None:
            entries.update(e.lstrip(".") for e in read_list(self.blocklist_path))
        if self.strip_www:
            entries = {re.sub(r"^www\d*\.", "", e) for e in entries}
        self._set = pa.array(sorted(entries), pa.string())
        logger.debug("%s: %d domains", self.name, len(entries))

    def decide(self, table: pa.Table) -> pa.Array:
        if self._set is None:
            self.setup()
        if self.match == "dclm-exact":
            return self._decide_dclm(_url_column(table).cast(pa.string()))
        host = url_hosts(_url_column(table).cast(pa.string()), self.strip_www)
        hit = A.as_numpy(pc.fill_null(pc.is_in(host, value_set=self._set), False))
        if self.match_subdomains:
            cur = host
            for _ in range(127):  # at most 127 labels in a DNS name
                cur = pc.replace_substring_regex(cur, r"^[^.]*\.", "", max_replacements=1)
                nxt = pc.if_else(pc.match_substring(cur, "."), cur, pa.scalar(None, pa.string()))
                if nxt.null_count == len(nxt):
                    # last label only (a TLD): matched only if a list bans a whole TLD
                    hit |= A.as_numpy(pc.fill_null(pc.is_in(cur, value_set=self._set), False))
                    break
                hit |= A.as_numpy(pc.fill_null(pc.is_in(nxt, value_set=self._set), False))
                cur = nxt
        return pa.array(np.where(hit, self.reason, None).tolist(), pa.string())

    def _decide_dclm(self, urls: pa.Array) -> pa.Array:
        keys, invalid = [], []
        for i, url in enumerate(pc.fill_null(urls, "").to_pylist()):
            try:
                keys.append(dclm_netloc(url))
            except ValueError:
                keys.append(None)
                invalid.append(i)
        hit = A.as_numpy(pc.fill_null(pc.is_in(pa.array(keys, pa.string()), value_set=self._set), False))
        out = np.where(hit, self.reason, None)
        out[invalid] = "url:invalid"
        return pa.array(out.tolist(), pa.string())


class URLWordsFilter(Filter):
    """Banned words in the URL (RefinedWeb §G.1; DCLM ``url_substring_filter`` x3):

    * strict: substring of the lowercased URL after deleting ``strict_remove_chars``
      (default ``-`` and ``.``, as DCLM);
    * hard: a whole word of the lowercased URL (words are runs of ``[a-z0-9]``);
    * soft: at least ``soft_threshold`` (2) distinct soft words as whole words.

    Each list defaults to DCLM's file in ``filters/data``; pass a path or ``[]``.
    By default the matching is DCLM's (``url_substring_filter`` with retrie's patterns): Python
    ``re``, case-insensitive, on ``url.lower()``; hard and soft words between Unicode ``\\b``
    (so ``_`` and digits join a word, and ``s&m`` is a word), soft words counted as the distinct
    strings ``findall`` returns. ``case_sensitive_words=True`` is datatrove's ``URLFilter``
    instead: the URL split into ``[a-zA-Z0-9]`` runs as written, hard/soft words whole runs.
    """

    name = "url_words"

    def __init__(
        self,
        *,
        strict_words: Iterable[str] | None = None,
        hard_words: Iterable[str] | None = None,
        soft_words: Iterable[str] | None = None,
        strict_words_path: str | Path | None = DEFAULT_STRICT,
        hard_words_path: str | Path | None = DEFAULT_HARD,
        soft_words_path: str | Path | None = DEFAULT_SOFT,
        strict_remove_chars: str = "-.",
        soft_threshold: int | None = 2,
        case_sensitive_words: bool = False,
        name: str | None = None,
    ) -> None:
        if soft_threshold is not None and (not isinstance(soft_threshold, int) or soft_threshold < 1):
            raise ValueError("soft_threshold must be a positive int or None")
        for label, path in (("strict", strict_words_path), ("hard", hard_words_path), ("soft", soft_words_path)):
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{label}_words_path {path!r} is not a file")
        self.strict_words = tuple(w.lower() for w in strict_words) if strict_words is not None else None
        self.hard_words = tuple(w.lower() for w in hard_words) if hard_words is not None else None
        self.soft_words = tuple(w.lower() for w in soft_words) if soft_words is not None else None
        self.strict_words_path = str(strict_words_path) if strict_words_path is not None else None
        self.hard_words_path = str(hard_words_path) if hard_words_path is not None else None
        self.soft_words_path = str(soft_words_path) if soft_words_path is not None else None
        self.strict_remove_chars = strict_remove_chars
        self.soft_threshold = soft_threshold
        self.case_sensitive_words = case_sensitive_words
        if name is not None:
            self.name = name
        self._lists: dict[str, list[str]] | None = None

    def _load(self, words: tuple[str, ...] | None, path: str | None) -> list[str]:
        out = set(words or ())
        if path is not None and words is None:
            out.update(read_list(path))
        return sorted(w for w in out if w)

    def setup(self) -> None:
        self._lists = {
            "strict": self._load(self.strict_words, self.strict_words_path),
            "hard": self._load(self.hard_words, self.hard_words_path),
            "soft": self._load(self.soft_words, self.soft_words_path),
        }
        # DCLM's patterns (retrie tries; an alternation longest first matches the same strings)
        self._re = {k: _word_pattern(v, whole_words=k != "strict") for k, v in self._lists.items() if v}

    def decide(self, table: pa.Table) -> pa.Array:
        if self._lists is None:
            self.setup()
        if not self.case_sensitive_words:
            return self._decide_dclm(_url_column(table).cast(pa.string()))
        urls = pc.utf8_lower(_url_column(table).cast(pa.string()))
        n = len(urls)
        rb = A.ReasonBuilder(n)
        valid = A.as_numpy(pc.is_valid(urls))
        urls = pc.fill_null(urls, "")
        strict = self._lists["strict"]
        if strict:
            squashed = urls
            if self.strict_remove_chars:
                squashed = pc.replace_substring_regex(urls, "[" + re.escape(self.strict_remove_chars) + "]", "")
            # datatrove normalises its list the way it normalises the URL ("g-spot" finds "blogspot")
            drop = str.maketrans("", "", self.strict_remove_chars)
            pattern = "|".join(re.escape(w.translate(drop)) for w in strict if w.translate(drop))
            rb.set(valid & A.as_numpy(pc.match_substring_regex(squashed, pattern)), "url:strict_word")
        hard, soft = self._lists["hard"], self._lists["soft"]
        if hard or (soft and self.soft_threshold is not None):
            if self.case_sensitive_words:  # datatrove: URL words keep their case, lists are lowercase
                raw = pc.fill_null(_url_column(table).cast(pa.string()), "")
                toks, tp = A.split(raw, "[^a-zA-Z0-9]+", regex=True)
            else:
                toks, tp = A.split(urls, "[^a-z0-9]+", regex=True)
            if hard:
                hit = A.as_numpy(pc.is_in(toks, value_set=pa.array(hard, pa.string())))
                rb.set(valid & (np.bincount(tp[hit], minlength=n) > 0), "url:hard_word")
            if soft and self.soft_threshold is not None:
                idx = A.as_numpy(pc.fill_null(pc.index_in(toks, value_set=pa.array(soft, pa.string())), -1))
                idx = idx.astype(np.int64)
                m = idx >= 0
                pairs = np.unique(tp[m] * len(soft) + idx[m])
                distinct = np.bincount(pairs // len(soft), minlength=n)
                rb.set(valid & (distinct >= self.soft_threshold), "url:soft_words")
        return rb.build()

    def _decide_dclm(self, urls: pa.Array) -> pa.Array:
        """DCLM's matching: RE2 on ASCII URLs (there ASCII ``\\b`` and case folding are Python's), Python's
        ``re`` with DCLM's patterns on the others."""
        n = len(urls)
        rb = A.ReasonBuilder(n)
        ascii_ok = A.as_numpy(pc.fill_null(pc.string_is_ascii(urls), False))
        low = pc.utf8_lower(pc.fill_null(urls, ""))
        strict, hard, soft = (self._lists[k] for k in ("strict", "hard", "soft"))
        if strict:
            squashed = low
            if self.strict_remove_chars:
                squashed = pc.replace_substring_regex(low, "[" + _re2_literal(self.strict_remove_chars) + "]", "")
            alts = "|".join(_re2_literal(w) for w in strict)
            rb.set(ascii_ok & A.as_numpy(pc.match_substring_regex(squashed, alts)), "url:strict_word")
        if hard:
            alts = "|".join(_re2_literal(w) for w in sorted(hard, key=lambda w: (-len(w), w)))
            rb.set(ascii_ok & A.as_numpy(pc.match_substring_regex(low, rf"\b(?:{alts})\b")), "url:hard_word")
        python_rows = ~ascii_ok & A.as_numpy(pc.is_valid(urls))
        if soft and self.soft_threshold is not None:
            # findall's strings are whole \w runs for words made of word characters; a URL holding a word
            # with others ("s&m") between \b goes to Python (the trie prefers the longer match there)
            odd = [w for w in soft if not re.fullmatch(r"[a-z0-9_]+", w)]
            if odd:
                alts = "|".join(_re2_literal(w) for w in odd)
                python_rows |= ascii_ok & A.as_numpy(pc.match_substring_regex(low, rf"\b(?:{alts})\b"))
            toks, tp = A.split(low, "[^a-z0-9_]+", regex=True)
            idx = A.as_numpy(pc.fill_null(pc.index_in(toks, value_set=pa.array(soft, pa.string())), -1))
            idx = idx.astype(np.int64)
            m = idx >= 0
            distinct = np.bincount(np.unique(tp[m] * len(soft) + idx[m]) // len(soft), minlength=n)
            rb.set(ascii_ok & ~python_rows & (distinct >= self.soft_threshold), "url:soft_words")
        rows = np.flatnonzero(python_rows & rb.pending)
        if len(rows):
            reasons = [self._dclm_one(u) for u in urls.take(pa.array(rows)).to_pylist()]
            for reason in ("url:strict_word", "url:hard_word", "url:soft_words"):
                mask = np.zeros(n, dtype=bool)
                mask[rows[[r == reason for r in reasons]]] = True
                rb.set(mask, reason)
        return rb.build()

    def _dclm_one(self, url: str) -> str | None:
        """One URL through DCLM's three filters, with Python's ``re``."""
        strict, hard, soft = (self._re.get(k) for k in ("strict", "hard", "soft"))
        low = url.lower()
        if strict is not None and strict.search(low.translate(str.maketrans("", "", self.strict_remove_chars))):
            return "url:strict_word"
        if hard is not None and hard.search(low):
            return "url:hard_word"
        if soft is not None and self.soft_threshold is not None and \
                len(set(soft.findall(low))) >= self.soft_threshold:  # fmt: skip
            return "url:soft_words"
        return None


def _word_pattern(words: list[str], whole_words: bool) -> re.Pattern:
    """DCLM's ``Blacklist(words, match_substrings=not whole_words).compiled``: the same strings,
    case-insensitive, between ``\\b`` for whole words."""
    body = "(?:" + "|".join(re.escape(w) for w in sorted(words, key=lambda w: (-len(w), w))) + ")"
    return re.compile(r"\b" + body + r"\b" if whole_words else body, re.IGNORECASE)


def _re2_literal(s: str) -> str:
    return "".join(c if c.isalnum() and c.isascii() else f"\\x{{{ord(c):x}}}" for c in s)


class URLRemoval(Mapper):
    """Remove URLs from the text (DCLM ``url_removal_modifier``): a host ending in a known TLD
    (lowercase, followed by a word boundary), or an IPv4 address, each with an optional scheme,
    the rest of the URL and up to 10 whitespace characters before it.

    ``gate="always"`` (default) removes TLD-based URLs from every page, each TLD as written.
    ``gate="start_tld"`` is DCLM as it runs: only pages whose text starts with a TLD (any case:
    ``"The ..."`` starts with ``th``) lose their TLD-based URLs. (DCLM escapes the TLDs twice,
    which changes none of the 1,591 in its list.) IPv4 addresses go from every page either way.
    Pages left empty are dropped (``url_removal:empty``) unless ``drop_empty=False``.

    Python's ``re`` semantics: ``\\s`` is any ``str.isspace`` character and ``\\b`` is Unicode. RE2
    (Arrow) does the work with ``\\s`` spelt out; its ``\\b`` is ASCII, so pages where a ``\\b``
    meets a non-ASCII character (``example.comé``, ``中192.168.0.1``, an IDN TLD) are done with
    Python's ``re`` and the same expressions.
    """

    name = "url_removal"
    GATES = ("always", "start_tld")

    def __init__(self, *, tlds_path: str | Path = DEFAULT_TLDS, gate: str = "always", drop_empty: bool = True) -> None:
        if not Path(tlds_path).is_file():
            raise ValueError(f"tlds_path {tlds_path!r} is not a file")
        if gate not in self.GATES:
            raise ValueError(f"gate must be one of {self.GATES}, got {gate!r}")
        self.tlds_path = str(tlds_path)
        self.gate = gate
        self.drop_empty = drop_empty
        self._compiled: dict | None = None

    def setup(self) -> None:
        with open(self.tlds_path, encoding="utf-8") as fh:
            tlds = [t for t in fh.read().splitlines() if t]
        keys = sorted(set(tlds), key=lambda k: (-len(k), k))
        ws = W.python_whitespace_class()
        scheme = r"(?:(?:https?|ftp)://)?"
        host, rest = r"[-a-zA-Z0-9@:%._+~#=]{1,256}\.", r"[-a-zA-Z0-9()@:%_+.~#?&/=]*"
        dotted = r"(?:[0-2]?[0-9]{1,2}\.){3}[0-2]?[0-9]{1,2}"
        py_tlds = "(?:" + "|".join(re.escape(k) for k in keys) + ")"
        re2_tlds = "(?:" + "|".join(_re2_literal(k) for k in keys) + ")"
        ascii_keys = [k for k in keys if k.isascii()]
        wide_keys = [k for k in keys if not k.isascii()]
        # a \b next to a non-ASCII character: after an ASCII TLD, or before a scheme or an IPv4 address
        risky = [r"\.(?:" + "|".join(_re2_literal(k) for k in ascii_keys) + r")[^\x00-\x7f]",
                 r"[^\x00-\x7f](?:(?:https?|ftp)://|" + dotted + ")"]  # fmt: skip
        if wide_keys:
            risky.append(r"\.(?:" + "|".join(_re2_literal(k) for k in wide_keys) + ")")
        self._compiled = {
            "re2_url": f"[{ws}]{{0,10}}{scheme}{host}{re2_tlds}\\b{rest}",
            "re2_ip": f"[{ws}]{{0,10}}\\b{scheme}{dotted}{rest}",
            "re2_risky": "|".join(risky),
            "py_url": re.compile(rf"\s{{0,10}}{scheme}{host}{py_tlds}\b{rest}"),
            "py_ip": re.compile(rf"\s{{0,10}}\b{scheme}{dotted}{rest}"),
            "gate": re.compile(py_tlds, re.IGNORECASE),
            "gate_chars": max(map(len, keys)),
        }

    def _gated(self, texts: pa.Array) -> np.ndarray:
        """Pages whose text starts with a TLD, case-insensitively (DCLM's ``tlds_regex.match``)."""
        c = self._compiled
        if self.gate == "always":
            return np.ones(len(texts), dtype=bool)
        heads = pc.utf8_slice_codeunits(texts, 0, c["gate_chars"]).to_pylist()  # a match is no longer
        return np.array([c["gate"].match(h) is not None for h in heads], dtype=bool)

    def transform(self, table: pa.Table) -> tuple[pa.Table, pa.Array | None]:
        if self._compiled is None:
            self.setup()
        c = self._compiled
        texts = A.texts_of(table)
        gated = self._gated(texts)
        risky = A.as_numpy(pc.match_substring_regex(texts, c["re2_risky"]))
        easy = np.flatnonzero(~risky)
        out = texts
        if len(easy):
            sub = texts.take(pa.array(easy)) if len(easy) < len(texts) else texts
            g = gated[easy]
            if g.any():
                removed = pc.replace_substring_regex(sub, c["re2_url"], "")
                sub = pc.if_else(pa.array(g), removed, sub) if not g.all() else removed
            sub = pc.replace_substring_regex(sub, c["re2_ip"], "")
            out = sub
        hard = np.flatnonzero(risky)
        if len(hard):  # Python's re on the pages where RE2's ASCII \b could differ
            fixed = []
            for i, t in zip(hard.tolist(), texts.take(pa.array(hard)).to_pylist()):
                if gated[i]:
                    t = c["py_url"].sub("", t)
                fixed.append(c["py_ip"].sub("", t))
            order = np.concatenate([easy, hard])
            merged = pa.concat_arrays([out.cast(pa.large_string()), pa.array(fixed, pa.large_string())]) \
                if len(easy) else pa.array(fixed, pa.large_string())  # fmt: skip
            out = merged.take(pa.array(np.argsort(order, kind="stable")))
        out = out.cast(table.schema.field("text").type)
        res = table.set_column(table.column_names.index("text"), table.schema.field("text"), out)
        if not self.drop_empty:
            return res, None
        empty = A.as_numpy(pc.equal(pc.binary_length(out), 0))
        return res, pa.array(np.where(empty, "url_removal:empty", None).tolist(), pa.string())


class NewlineCollapse(Mapper):
    """Replace runs of more than ``max_consecutive`` newlines by exactly that many
    (DCLM ``newline_removal_modifier``, max_consecutive=2)."""

    name = "newline_collapse"

    def __init__(self, *, max_consecutive: int = 2) -> None:
        if not isinstance(max_consecutive, int) or max_consecutive < 1:
            raise ValueError("max_consecutive must be a positive int")
        self.max_consecutive = max_consecutive

    def transform(self, table: pa.Table) -> tuple[pa.Table, None]:
        texts = A.texts_of(table)
        k = self.max_consecutive
        texts = pc.replace_substring_regex(texts, f"\n{{{k + 1},}}", "\n" * k)
        return table.set_column(table.column_names.index("text"), table.schema.field("text"), texts), None
