"""HTML -> text: the extraction stage that starts a recipe on WARC input.

:class:`HtmlExtractor` is a Mapper. It touches only the rows the WARC reader marked
(``is_html`` true, see ``curation.readers.warc``): their ``text`` (the decoded page) becomes
the extracted text, and the marker column is removed, so that every shard of a run has the same
columns whatever its input format. Tables without the marker (parquet, JSON lines and WET
input, already text) pass through untouched.

Backends (``backend=``):

* ``resiliparse`` (default): ``resiliparse.extract.html2text.extract_plain_text`` with
  ``main_content=True``, the setting DCLM used to extract DCLM-Pool from Common Crawl (Li et al.
  2024, "DataComp-LM", Sec. 4.2: resiliparse and trafilatura beat the WET text, resiliparse at a
  fraction of the cost); the other options are resiliparse's defaults.
* ``trafilatura``: ``trafilatura.extract`` with ``favor_precision=True`` and no comments, as
  RefinedWeb (Penedo et al. 2023, Sec. 3.1) and datatrove's ``Trafilatura`` step, but
  ``deduplicate=False``: trafilatura's deduplication is a per-process cache, so its output would
  depend on which pages a worker saw before (our outputs must not depend on the worker layout).

``options`` overrides any keyword of the backend's function (e.g. ``{"main_content": False}``).

A page that makes the extractor raise is quarantined with ``stage_error:html_extract:<error>``
(the reason ``apply_stage`` gives, without its row-by-row retry of the whole batch); a page whose
extraction is empty (only whitespace) is dropped with ``extract:empty``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from curation.readers.base import RAW_SNIPPET_BYTES
from curation.readers.warc import HTML_COLUMN
from curation.schema import QUARANTINE_SCHEMA
from curation.stage import Mapper, ShardContext, StageResult, empty_dropped, split_by_reason

logger = logging.getLogger(__name__)

BACKENDS: dict[str, dict[str, Any]] = {
    "resiliparse": {"main_content": True},
    "trafilatura": {"favor_precision": True, "include_comments": False, "deduplicate": False},
}
EMPTY_REASON = "extract:empty"


def _as_str(page: str | bytes) -> str:
    if isinstance(page, str):
        return page
    from curation.readers.http_body import decode_html

    return decode_html(bytes(page), None).text  # meta tag, detection, then UTF-8 / windows-1252


class HtmlExtractor(Mapper):
    """HTML in, ``text`` out (see the module docstring). ``extract_many`` is the batch API."""

    name = "html_extract"
    version = "1"

    def __init__(self, backend: str = "resiliparse", options: dict[str, Any] | None = None) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown extractor backend {backend!r}; choose from {sorted(BACKENDS)}")
        self.backend = backend
        self.options = {**BACKENDS[backend], **(options or {})}
        self._fn: Any = None

    def setup(self) -> None:
        if self._fn is not None:
            return
        if self.backend == "resiliparse":
            from resiliparse.extract.html2text import extract_plain_text

            self._fn = extract_plain_text
        else:
            import trafilatura

            self._fn = trafilatura.extract

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_fn"} | {"_fn": None}

    # -- the batch API -------------------------------------------------------------------------

    def extract_with_errors(self, pages: Sequence[str | bytes]) -> tuple[list[str | None], list[Exception | None]]:
        """(texts, errors): ``texts[i]`` is page i's text ("" when nothing was extracted), or None
        when the extractor raised, with the exception in ``errors[i]``."""
        self.setup()
        fn, opts = self._fn, self.options
        texts: list[str | None] = []
        errors: list[Exception | None] = []
        for page in pages:
            try:
                out = fn(_as_str(page), **opts)
            except Exception as exc:  # noqa: BLE001 - one bad page must not cost its batch
                texts.append(None)
                errors.append(exc)
                continue
            texts.append(out or "")
            errors.append(None)
        return texts, errors

    def extract_many(self, pages: Sequence[str | bytes]) -> list[str | None]:
        """Extracted text of each page (``str`` or ``bytes`` HTML; bytes are decoded by their meta
        charset or detection): "" when the page has no text, None when the extractor failed on it."""
        texts, errors = self.extract_with_errors(pages)
        for err in errors:
            if err is not None:
                logger.warning("%s extraction failed on a page: %r", self.backend, err)
        return texts

    # -- the stage -----------------------------------------------------------------------------

    def transform(self, table: pa.Table) -> tuple[pa.Table, pa.Array | None]:
        """Not used: :meth:`process` also quarantines pages that fail."""
        raise NotImplementedError("HtmlExtractor works through process()")

    def process(self, table: pa.Table, shard: ShardContext | None = None) -> StageResult:
        if HTML_COLUMN not in table.column_names:
            return StageResult(table, empty_dropped())
        marked = pc.fill_null(table.column(HTML_COLUMN), False).to_pylist()
        table = table.drop_columns([HTML_COLUMN])
        rows = [i for i, m in enumerate(marked) if m]
        if not rows:
            return StageResult(table, empty_dropped())
        texts = table.column("text").to_pylist()
        extracted, errors = self.extract_with_errors([texts[i] for i in rows])
        reasons: list[str | None] = [None] * table.num_rows
        failed: list[int] = []
        for i, out, err in zip(rows, extracted, errors):
            if err is not None:
                failed.append(i)
                reasons[i] = f"stage_error:{self.name}:{type(err).__name__}"
                texts[i] = ""
            else:
                texts[i] = out
                if not out.strip():
                    reasons[i] = EMPTY_REASON
        new = table.set_column(table.schema.get_field_index("text"), table.schema.field("text"),
                               pa.array(texts, table.schema.field("text").type))
        if not failed:
            return split_by_reason(new, pa.array(reasons, pa.string()))
        quarantined = _quarantine(table, failed, [reasons[i] for i in failed], self.name, shard)
        gone = set(failed)
        keep = [i not in gone for i in range(table.num_rows)]
        result = split_by_reason(new.filter(pa.array(keep)), pa.array([r for r, k in zip(reasons, keep) if k],
                                                                      pa.string()))
        result.quarantined = quarantined
        return result


def _quarantine(table: pa.Table, rows: list[int], reasons: list[str], stage: str,
                shard: ShardContext | None) -> pa.Table:
    """Quarantine records of the pages that made the extractor raise (their HTML as ``raw``)."""
    sub = table.take(rows)
    raw = [t.encode("utf-8", "replace")[:RAW_SNIPPET_BYTES] for t in sub.column("text").to_pylist()]
    n = len(rows)
    return pa.table(
        {
            "file": pa.array([shard.path if shard else None] * n, pa.string()),
            "position": pa.array([-1] * n, pa.int64()),
            "reason": pa.array(reasons, pa.string()),
            "stage": pa.array([stage] * n, pa.string()),
            "source": sub.column("source").cast(pa.string()),
            "id": sub.column("id").cast(pa.string()),
            "raw": pa.array(raw, pa.large_binary()),
        },
        schema=QUARANTINE_SCHEMA,
    )
