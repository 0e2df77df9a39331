"""URL stages of the RefinedWeb recipe (Penedo et al. 2023, "The RefinedWeb Dataset
for Falcon LLM", arXiv:2306.01116, §G.1) as run by DCLM
(``baselines_configs/dclm_baseline_refinedweb.yaml``): move the URL into its own
column, ban domains (UT1 blocklist format), ban URL words (strict substrings, hard
whole words, soft words with >= 2 hits), optionally drop "high-quality" domains
(kept for curated sources, ``refinedweb.yaml``), remove URLs from the text and
collapse runs of newlines.

Where DCLM's implementation departs from its evident intent we follow the intent
and say so: DCLM removes every ``"www"`` from the host before an exact match
(so ``www.x.com`` never matched ``x.com``); we strip a leading ``www.`` and by
default also match parent domains, as UT1 lists mean them. DCLM only removes URLs
from a page when the page *starts* with a TLD (``Blacklist.match``); we remove them
everywhere. The word lists shipped in ``filters/data`` are small defaults only.
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

logger = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parents[1] / "data"
DEFAULT_DOMAINS = DATA / "banned_domains_ut1.txt"
DEFAULT_STRICT = DATA / "banned_url_words_strict.txt"
DEFAULT_HARD = DATA / "banned_url_words_hard.txt"
DEFAULT_SOFT = DATA / "banned_url_words_soft.txt"
DEFAULT_TLDS = DATA / "tlds.txt"

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


class URLDomainFilter(Filter):
    """Drop documents whose host is on a domain list (UT1 format).

    ``blocklist_path`` defaults to the small list shipped in ``filters/data``;
    ``domains`` adds entries. With ``match_subdomains`` (default) ``a.b.example.com``
    is banned by ``example.com``; without it only the host itself is matched
    (DCLM's ``exact_domain_match``). Documents without a URL are kept.
    """

    name = "url_domains"

    def __init__(
        self,
        *,
        blocklist_path: str | Path | None = DEFAULT_DOMAINS,
        domains: Iterable[str] = (),
        match_subdomains: bool = True,
        strip_www: bool = True,
        reason: str = "url:banned_domain",
        name: str | None = None,
    ) -> None:
        self.blocklist_path = str(blocklist_path) if blocklist_path is not None else None
        if self.blocklist_path is not None and not Path(self.blocklist_path).is_file():
            raise ValueError(f"blocklist_path {self.blocklist_path!r} is not a file")
        self.domains = tuple(sorted({d.strip().lower() for d in domains if d.strip()}))
        if self.blocklist_path is None and not self.domains:
            raise ValueError("give blocklist_path and/or domains")
        self.match_subdomains = match_subdomains
        self.strip_www = strip_www
        self.reason = reason
        if name is not None:
            self.name = name
        self._set: pa.Array | None = None

    def setup(self) -> None:
        entries = set(self.domains)
        if self.blocklist_path is not None:
            entries.update(e.lstrip(".") for e in read_list(self.blocklist_path))
        if self.strip_www:
            entries = {re.sub(r"^www\d*\.", "", e) for e in entries}
        self._set = pa.array(sorted(entries), pa.string())
        logger.debug("%s: %d domains", self.name, len(entries))

    def decide(self, table: pa.Table) -> pa.Array:
        if self._set is None:
            self.setup()
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


class URLWordsFilter(Filter):
    """Banned words in the URL (RefinedWeb §G.1; DCLM ``url_substring_filter`` x3):

    * strict: substring of the lowercased URL after deleting ``strict_remove_chars``
      (default ``-`` and ``.``, as DCLM);
    * hard: a whole word of the lowercased URL (words are runs of ``[a-z0-9]``);
    * soft: at least ``soft_threshold`` (2) distinct soft words as whole words.

    Each list defaults to a small file in ``filters/data``; pass a path or ``[]``.
    ``case_sensitive_words=True`` matches hard/soft words against the URL as
    written (datatrove's ``URLFilter`` behaviour) instead of lowercased (DCLM).
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

    def decide(self, table: pa.Table) -> pa.Array:
        if self._lists is None:
            self.setup()
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
            pattern = "|".join(re.escape(w) for w in strict)
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


def _tld_alternation(tlds: list[str]) -> str:
    return "|".join(re.escape(t) for t in sorted(set(tlds), key=lambda t: (-len(t), t)))


class URLRemoval(Mapper):
    """Remove URLs (a host with a known TLD, or an IPv4 address, with optional scheme
    and path) from the text, with up to 10 preceding spaces (DCLM
    ``url_removal_modifier``). The TLD must be lowercase, as in DCLM."""

    name = "url_removal"

    def __init__(self, *, tlds_path: str | Path = DEFAULT_TLDS, drop_empty: bool = True) -> None:
        if not Path(tlds_path).is_file():
            raise ValueError(f"tlds_path {tlds_path!r} is not a file")
        self.tlds_path = str(tlds_path)
        self.drop_empty = drop_empty
        self._patterns: tuple[str, str] | None = None

    def setup(self) -> None:
        tlds = _tld_alternation(read_list(self.tlds_path))
        url = (
            r"\s{0,10}(?:(?:https?|ftp)://)?[-a-zA-Z0-9@:%._+~#=]{1,256}\.(?:" + tlds + r")\b"
            r"[-a-zA-Z0-9()@:%_+.~#?&/=]*"
        )
        ipv4 = r"\s{0,10}\b(?:(?:https?|ftp)://)?(?:[0-2]?[0-9]{1,2}\.){3}[0-2]?[0-9]{1,2}[-a-zA-Z0-9()@:%_+.~#?&/=]*"
        self._patterns = (url, ipv4)

    def transform(self, table: pa.Table) -> tuple[pa.Table, pa.Array | None]:
        if self._patterns is None:
            self.setup()
        texts = A.texts_of(table)
        for pat in self._patterns:
            texts = pc.replace_substring_regex(texts, pat, "")
        out = table.set_column(table.column_names.index("text"), table.schema.field("text"), texts)
        if not self.drop_empty:
            return out, None
        empty = A.as_numpy(pc.equal(pc.binary_length(texts), 0))
        return out, pa.array(np.where(empty, "url_removal:empty", None).tolist(), pa.string())


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
