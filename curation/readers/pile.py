"""The Pile: ``*.jsonl.zst`` lines ``{"text": ..., "meta": {"pile_set_name": ...}}``.

Gao et al. 2020, "The Pile: An 800GB Dataset of Diverse Text for Language Modeling"
(lm_dataformat archives). Records carry no id, so ids are ``pile/<file>/<line>``;
``metadata`` holds the ``meta`` object's fields (``pile_set_name``) plus any other
top-level field.
"""

from __future__ import annotations

from typing import Any

from curation.readers.jsonl import _ONLY_DICT, MISSING, Fields, JsonLinesReader, dumps_many


def merge_meta(rec: dict, meta: object) -> dict | None:
    """The ``meta`` object's fields, then any other fields of the record (``meta`` wins on a clash)."""
    if type(meta) is dict:
        if not rec:
            return meta
        return {**rec, **meta}
    if meta is None:
        return rec or None
    return {**rec, "meta": meta}


class PileReader(JsonLinesReader):
    format = "pile"
    default_source = "pile"

    def fields(self, recs: list[dict], state: Any) -> Fields:
        texts = [r.pop("text", MISSING) for r in recs]
        metas = [r.pop("meta", None) for r in recs]
        if any(recs) or set(map(type, metas)) != _ONLY_DICT:  # other top-level fields, or odd metas
            metas = [merge_meta(r, m) for r, m in zip(recs, metas)]
        return Fields(texts, None, None, dumps_many(metas))
