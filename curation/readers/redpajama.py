"""RedPajama: jsonl / jsonl.gz / jsonl.zst lines ``{"text": ..., "meta": {...}}``.

Together Computer 2023, RedPajama-Data-1T (subsets arxiv, book, c4, common_crawl,
github, stackexchange, wikipedia). ``meta`` may be an object or, as in the Hugging
Face copy, a JSON string; ``red_pajama_subset`` (HF) is honoured too. The subset goes
to ``metadata["subset"]``: from the record (``red_pajama_subset``,
``meta.redpajama_set_name``, ``meta.source``), else from the file name
(``arxiv_*.jsonl``, ``c4-train.*.json.gz``...). The url comes from ``meta.url`` or a
top-level ``url``. RedPajama-V2 / CCNet records with ``raw_content`` instead of
``text`` are read too. Ids: the record's ``id`` / ``doc_id`` when present, else
``redpajama/<file>/<line>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import orjson

from curation.readers.base import file_basename
from curation.readers.jsonl import (
    _ONLY_DICT,
    _ONLY_STR,
    _STR_OR_NONE,
    MISSING,
    Fields,
    JsonLinesOptions,
    JsonLinesReader,
    dumps_many,
)

# file-name tokens that name a RedPajama-1T subset
SUBSETS = {
    "arxiv": "arxiv",
    "book": "book",
    "books": "book",
    "c4": "c4",
    "cc": "common_crawl",
    "common_crawl": "common_crawl",
    "commoncrawl": "common_crawl",
    "github": "github",
    "stackexchange": "stackexchange",
    "stack_exchange": "stackexchange",
    "wikipedia": "wikipedia",
    "wiki": "wikipedia",
}


def subset_from_path(path: str) -> str | None:
    """The subset a path names, looking at the file name first, then its folders (nearest first)."""
    parts = path.replace("\\", "/").split("/")
    for part in reversed(parts):
        low = part.lower()
        for key in ("common_crawl", "stack_exchange"):
            if key in low:
                return SUBSETS[key]
        for tok in re.split(r"[^a-z0-9]+", low):
            if tok in SUBSETS:
                return SUBSETS[tok]
    return None


@dataclass(frozen=True, kw_only=True)
class RedPajamaOptions(JsonLinesOptions):
    """``subset``: the subset of every file read (None: from the records, else from the file name)."""

    subset: str | None = None


class RedPajamaReader(JsonLinesReader):
    format = "redpajama"
    default_source = "redpajama"
    Options = RedPajamaOptions
    options: RedPajamaOptions

    def file_state(self, path: str) -> str | None:
        """The subset this file's records default to."""
        return self.options.subset or subset_from_path(file_basename(path)) or subset_from_path(path)

    def fields(self, recs: list[dict], state: Any) -> Fields:
        n = len(recs)
        texts = [r.pop("text", MISSING) for r in recs]
        if MISSING in texts:  # RedPajama-V2 / CCNet layout: raw_content
            texts = [r.pop("raw_content", t) if t is MISSING else t for t, r in zip(texts, recs)]
        metas = [r.pop("meta", None) for r in recs]
        kinds = set(map(type, metas))
        if str in kinds:  # the Hugging Face copy: meta as a JSON string
            metas = [_parse_meta(m) for m in metas]
            kinds = set(map(type, metas))
        if any(recs):  # fields beside text and meta (C4: url, timestamp; HF: red_pajama_subset; V2: doc_id)
            subsets = [r.pop("red_pajama_subset", None) for r in recs]
            urls = [r.pop("url", None) for r in recs]
            ids = [r.pop("id", None) for r in recs]
            ids = [r.pop("doc_id", None) if i is None else i for i, r in zip(ids, recs)]
            if not set(map(type, ids)) <= _STR_OR_NONE:
                ids = [i if i is None or type(i) is str else str(i) for i in ids]
            # the url from meta where the top level had none; then meta's fields after the record's others
            urls = [m.pop("url", None) if u is None and type(m) is dict else u for u, m in zip(urls, metas)]
            outs = [({**r, **m} if r else m) if type(m) is dict else ({**r, "meta": m} if m is not None else r)
                    for r, m in zip(recs, metas)]
            subsets = [(m.get("redpajama_set_name") or m.get("source")) if s is None and type(m) is dict else s
                       for s, m in zip(subsets, metas)]
        elif kinds == _ONLY_DICT:  # {"text", "meta": {...}}: the same steps, with nothing on the top level
            ids = None
            urls = [m.pop("url", None) for m in metas]
            outs = metas
            subsets = [m.get("redpajama_set_name") or m.get("source") for m in metas]
        else:
            ids = None
            urls = [m.pop("url", None) if type(m) is dict else None for m in metas]
            outs = [m if type(m) is dict else ({"meta": m} if m is not None else r) for r, m in zip(recs, metas)]
            subsets = [(m.get("redpajama_set_name") or m.get("source")) if type(m) is dict else None for m in metas]
        if not set(map(type, urls)) <= _STR_OR_NONE:
            for k, url in enumerate(urls):
                if url is not None and type(url) is not str:  # keep odd values in the metadata
                    outs[k]["url"] = url
                    urls[k] = None
        if not set(map(type, subsets)) <= _ONLY_STR:
            subsets = [s if type(s) is str else state for s in subsets]
        list(map(dict.__setitem__, outs, repeat("subset", n), subsets))
        return Fields(texts, ids, urls, dumps_many(outs))


def _parse_meta(meta: Any) -> Any:
    """A meta string parsed as JSON (kept as it is when it is not JSON)."""
    if type(meta) is not str:
        return meta
    try:
        return orjson.loads(meta)
    except orjson.JSONDecodeError:
        return meta
