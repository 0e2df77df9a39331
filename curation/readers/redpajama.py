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
from collections.abc import Sequence

import orjson

from curation.readers.base import DEFAULT_BATCH_SIZE, DEFAULT_MAX_DOC_BYTES, file_basename
from curation.readers.jsonl import (
    _MISSING,
    _ONLY_DICT,
    _STR_OR_NONE,
    DEFAULT_MAX_BATCH_BYTES,
    JsonlReader,
    _Batch,
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


class RedPajamaReader(JsonlReader):
    format = "redpajama"
    default_source = "redpajama"

    def __init__(
        self,
        source: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES,
        id_parents: int = 0,
        compression: str = "infer",
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        subset: str | None = None,
    ) -> None:
        super().__init__(
            source=source,
            batch_size=batch_size,
            max_doc_bytes=max_doc_bytes,
            id_parents=id_parents,
            text_field="text",
            id_field="id",
            url_field="url",
            compression=compression,
            max_batch_bytes=max_batch_bytes,
        )
        self.subset = subset

    def _file_context(self, path: str) -> dict:
        return {"prefix": self.id_prefix(path), "subset": self.subset or subset_from_path(file_basename(path))
                or subset_from_path(path)}

    def _pop_text(self, rec: dict) -> object:
        text = rec.pop("text", _MISSING)
        if text is _MISSING and "raw_content" in rec:  # RedPajama-V2 / CCNet layout
            text = rec.pop("raw_content")
        return text

    def _pop_texts(self, recs: list[dict]) -> list:
        texts = [r.pop("text", _MISSING) for r in recs]
        if _MISSING in texts:
            for k, rec in enumerate(recs):
                if texts[k] is _MISSING and "raw_content" in rec:
                    texts[k] = rec.pop("raw_content")
        return texts

    def _extract(self, rec: dict, lineno: int, ctx: dict) -> tuple[str, str | None, str | None]:
        return self._extract_meta(rec, rec.pop("meta", None), lineno, ctx)

    def _extract_meta(self, rec: dict, meta: object, lineno: int, ctx: dict) -> tuple[str, str | None, str | None]:
        """``_extract`` of a record whose ``meta`` was already popped."""
        if type(meta) is str:
            try:
                meta = orjson.loads(meta)
            except orjson.JSONDecodeError:
                pass  # keep the string as it is
        if rec:  # fields beside text and meta (C4: url, timestamp; HF: red_pajama_subset)
            subset = rec.pop("red_pajama_subset", None)
            url = rec.pop("url", None)
            ident = rec.pop("id", None)
            if ident is None:
                ident = rec.pop("doc_id", None)
        else:
            subset = url = ident = None
        if type(meta) is dict:
            if url is None:
                url = meta.pop("url", None)
            if subset is None:
                subset = meta.get("redpajama_set_name") or meta.get("source")
            out = {**rec, **meta} if rec else meta
        else:
            out = {**rec, "meta": meta} if meta is not None else rec
        if url is not None and type(url) is not str:
            out["url"] = url
            url = None
        out["subset"] = subset if type(subset) is str else ctx["subset"]
        if ident is not None and type(ident) is not str:
            ident = str(ident)
        return ident or ctx["prefix"] + str(lineno), url, orjson.dumps(out).decode()

    def _extract_many(self, recs: list[dict], nums: Sequence[int], ctx: dict, acc: _Batch) -> None:
        metas = [r.pop("meta", None) for r in recs]
        if any(recs) or set(map(type, metas)) != _ONLY_DICT:  # other top-level fields, or a meta string
            extract = self._extract_meta
            for rec, meta, n in zip(recs, metas, nums):
                ident, url, out = extract(rec, meta, n, ctx)
                acc.ids.append(ident)
                acc.urls.append(url)
                acc.metas.append(out)
            return
        # {"text", "meta": {...}}: the same steps as _extract_meta, a column at a time
        urls = [m.pop("url", None) for m in metas]
        if not set(map(type, urls)) <= _STR_OR_NONE:
            for k, url in enumerate(urls):
                if url is not None and type(url) is not str:
                    metas[k]["url"] = url
                    urls[k] = None
        default = ctx["subset"]
        for m in metas:
            subset = m.get("redpajama_set_name") or m.get("source")
            m["subset"] = subset if type(subset) is str else default
        prefix = ctx["prefix"]
        acc.ids.extend([prefix + str(n) for n in nums])
        acc.urls.extend(urls)
        acc.metas.extend(dumps_many(metas))

    def _failed_id(self, rec: object, lineno: int, ctx: dict) -> str:
        if type(rec) is dict and rec.get("id"):
            return str(rec["id"])
        return ctx["prefix"] + str(lineno)
