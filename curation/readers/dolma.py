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

import orjson

from curation.readers.base import DEFAULT_BATCH_SIZE, DEFAULT_MAX_DOC_BYTES
from curation.readers.jsonl import DEFAULT_MAX_BATCH_BYTES, JsonlReader


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
        if url is None and ident and ident.startswith(("http://", "https://")):
            url = ident
        return ident or ctx["prefix"] + str(lineno), url, orjson.dumps(rec).decode() if rec else None
