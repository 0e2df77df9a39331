"""Dolma documents: ``*.jsonl.gz`` / ``*.json.gz`` / ``*.jsonl.zst`` lines
``{"id", "text", "source", "added", "created", "metadata": {...}}``.

Soldaini et al. 2024, "Dolma: an Open Corpus of Three Trillion Tokens" (the
``documents/`` layout of the dolma toolkit). Ids are the documents' own ``id``
(generated as ``dolma/<file>/<line>`` only when a record lacks one). The url is
``metadata.url`` when present, else the id when the id is an http(s) URL (CCNet
derived sources use the page URL as id). ``metadata`` holds every other field as
it is: ``{"source", "added", "created", "metadata": {...}}`` (Dolma's own
``source``, e.g. ``common-crawl``, stays there; the ``source`` column is the
reader's source, ``dolma`` by default).
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from curation.readers.base import DEFAULT_BATCH_SIZE, DEFAULT_MAX_DOC_BYTES
from curation.readers.jsonl import _STR_OR_NONE, DEFAULT_MAX_BATCH_BYTES, JsonlReader, _Batch, dumps_many

_HTTP = ("http://", "https://")


class DolmaReader(JsonlReader):
    format = "dolma"
    default_source = "dolma"

    def __init__(
        self,
        source: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES,
        id_parents: int = 0,
        compression: str = "infer",
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    ) -> None:
        super().__init__(
            source=source,
            batch_size=batch_size,
            max_doc_bytes=max_doc_bytes,
            id_parents=id_parents,
            text_field="text",
            id_field="id",
            url_field=None,
            compression=compression,
            max_batch_bytes=max_batch_bytes,
        )

    def _extract(self, rec: dict, lineno: int, ctx: dict) -> tuple[str, str | None, str | None]:
        ident = rec.pop("id", None)
        if ident is not None and type(ident) is not str:
            ident = str(ident)
        url = None
        meta = rec.get("metadata")
        if type(meta) is dict:
            url = meta.get("url")
            if type(url) is not str:
                url = None
        if url is None and ident and ident.startswith(_HTTP):
            url = ident
        return ident or ctx["prefix"] + str(lineno), url, orjson.dumps(rec).decode() if rec else None

    def _extract_many(self, recs: list[dict], nums: Sequence[int], ctx: dict, acc: _Batch) -> None:
        ids = [r.pop("id", None) for r in recs]
        if not set(map(type, ids)) <= _STR_OR_NONE:
            ids = [i if i is None or type(i) is str else str(i) for i in ids]
        urls = [m.get("url") if type(m) is dict else None for m in [r.get("metadata") for r in recs]]
        if not set(map(type, urls)) <= _STR_OR_NONE:
            urls = [u if type(u) is str else None for u in urls]
        urls = [u if u is not None or not i or not i.startswith(_HTTP) else i for u, i in zip(urls, ids)]
        prefix = ctx["prefix"]
        acc.ids.extend([i or prefix + str(n) for i, n in zip(ids, nums)])
        acc.urls.extend(urls)
        acc.metas.extend(dumps_many(recs))
