"""The Pile: ``*.jsonl.zst`` lines ``{"text": ..., "meta": {"pile_set_name": ...}}``.

Gao et al. 2020, "The Pile: An 800GB Dataset of Diverse Text for Language Modeling"
(lm_dataformat archives). Records carry no id, so ids are ``pile/<file>/<line>``;
``metadata`` holds the ``meta`` object's fields (``pile_set_name``) plus any other
top-level field.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from curation.readers.base import DEFAULT_BATCH_SIZE, DEFAULT_MAX_DOC_BYTES
from curation.readers.jsonl import _ONLY_DICT, DEFAULT_MAX_BATCH_BYTES, JsonlReader, _Batch, dumps_many


def merge_meta(rec: dict, meta: object) -> dict | None:
    """The ``meta`` object's fields, then any other fields of the record (``meta`` wins on a clash)."""
    if type(meta) is dict:
        if not rec:
            return meta
        return {**rec, **meta}
    if meta is None:
        return rec or None
    return {**rec, "meta": meta}


class PileReader(JsonlReader):
    format = "pile"
    default_source = "pile"

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
            id_field=None,
            url_field=None,
            compression=compression,
            max_batch_bytes=max_batch_bytes,
        )

    def _extract(self, rec: dict, lineno: int, ctx: dict) -> tuple[str, str | None, str | None]:
        meta = merge_meta(rec, rec.pop("meta", None))
        return ctx["prefix"] + str(lineno), None, orjson.dumps(meta).decode() if meta else None

    def _extract_many(self, recs: list[dict], nums: Sequence[int], ctx: dict, acc: _Batch) -> None:
        metas = [r.pop("meta", None) for r in recs]
        if any(recs) or set(map(type, metas)) != _ONLY_DICT:  # other top-level fields, or odd metas
            metas = [merge_meta(r, m) for r, m in zip(recs, metas)]
        prefix = ctx["prefix"]
        acc.ids.extend([prefix + str(n) for n in nums])
        acc.urls.extend([None] * len(recs))
        acc.metas.extend(dumps_many(metas))

    def _failed_id(self, rec: object, lineno: int, ctx: dict) -> str:
        return ctx["prefix"] + str(lineno)
