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

from typing import Any

from curation.readers.jsonl import _STR_OR_NONE, MISSING, Fields, JsonLinesReader, dumps_many

_HTTP = ("http://", "https://")


class DolmaReader(JsonLinesReader):
    format = "dolma"
    default_source = "dolma"

    def fields(self, recs: list[dict], state: Any) -> Fields:
        texts = [r.pop("text", MISSING) for r in recs]
        ids = [r.pop("id", None) for r in recs]
        if not set(map(type, ids)) <= _STR_OR_NONE:
            ids = [i if i is None or type(i) is str else str(i) for i in ids]
        urls = [m.get("url") if type(m) is dict else None for m in [r.get("metadata") for r in recs]]
        if not set(map(type, urls)) <= _STR_OR_NONE:
            urls = [u if type(u) is str else None for u in urls]
        urls = [u if u is not None or not i or not i.startswith(_HTTP) else i for u, i in zip(urls, ids)]
        return Fields(texts, ids, urls, dumps_many(recs))
