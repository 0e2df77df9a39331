"""Source readers: native corpus files -> bounded Arrow batches in ``DOC_SCHEMA`` plus quarantine.

Formats (``FORMATS``):

=============  =========================================  ==========================================
format         files                                      reader
=============  =========================================  ==========================================
refinedweb     ``*.parquet`` (content, url, timestamp,    :class:`~curation.readers.parquet.RefinedWebReader`
               dump, segment, image_urls)
pile           ``*.jsonl.zst`` (text, meta.pile_set_name) :class:`~curation.readers.pile.PileReader`
redpajama      ``*.jsonl[.gz|.zst]`` (text, meta)         :class:`~curation.readers.redpajama.RedPajamaReader`
dolma          ``*.json[l].gz|.zst`` (id, text, source,   :class:`~curation.readers.dolma.DolmaReader`
               added, created, metadata)
jsonl          any JSON lines, field mapping              :class:`~curation.readers.jsonl.JsonlReader`
parquet        any parquet, field mapping                 :class:`~curation.readers.parquet.ParquetReader`
warc           ``*.warc[.gz|.zst]`` crawl archives: HTML  :class:`~curation.readers.warc.WarcReader`
               responses (``is_html``, extracted later)
wet            ``*.wet[.gz]``, ``*.warc.wet[.gz]``:       :class:`~curation.readers.warc.WetReader`
               Common Crawl text conversions
=============  =========================================  ==========================================

Large files are read as several work items: ``plan_splits(path, format, max_bytes)`` (parquet
row groups, byte ranges of uncompressed JSON lines; None for compressed streams),
``count_records`` and ``assign_first_rows`` give byte ranges their first line number, and
``reader.read(path, split)`` reads one (see ``curation.readers.splits``).

``detect_format(path)`` picks one from the extension and name hints in the path
(the file name first, then its folders, nearest first): ``refinedweb`` / ``falcon``
for parquet; ``pile``, ``dolma``, ``redpajama`` (also ``arxiv`` and ``c4``, which
are RedPajama subsets) for JSON lines; otherwise the generic ``jsonl`` / ``parquet``.
``.wet`` (also ``.warc.wet``) is ``wet`` and ``.warc`` is ``warc``; WAT files (``.wat``, link and
header metadata, no page content) are refused with a message that names the files to use.
``get_reader(path, format=None, source=None, **opts)`` builds the reader; pass
``format`` to override detection. Paths may be local or any fsspec URL.
"""

from __future__ import annotations

import re

from curation.readers.base import REASONS, Reader, ReaderOptions
from curation.readers.dolma import DolmaReader
from curation.readers.jsonl import JsonLinesOptions, JsonLinesReader, JsonlOptions, JsonlReader
from curation.readers.parquet import ParquetMappingOptions, ParquetOptions, ParquetReader, RefinedWebReader
from curation.readers.pile import PileReader
from curation.readers.redpajama import RedPajamaOptions, RedPajamaReader
from curation.readers.splits import Split, assign_first_rows, count_records, plan_splits
from curation.readers.warc import WarcReader, WetReader

READERS: dict[str, type[Reader]] = {
    "refinedweb": RefinedWebReader,
    "pile": PileReader,
    "redpajama": RedPajamaReader,
    "dolma": DolmaReader,
    "jsonl": JsonlReader,
    "parquet": ParquetReader,
    "warc": WarcReader,
    "wet": WetReader,
}
FORMATS: tuple[str, ...] = tuple(READERS)

_COMPRESSION_EXT = (".gz", ".gzip", ".zst", ".zstd")
_JSON_EXT = (".jsonl", ".json", ".ndjson", ".jsonlines")
_PARQUET_EXT = (".parquet", ".pq")
_JSON_HINTS = {"pile": "pile", "dolma": "dolma", "redpajama": "redpajama", "pajama": "redpajama",
               "rpv1": "redpajama", "rpv2": "redpajama", "arxiv": "redpajama", "c4": "redpajama"}
_PARQUET_HINTS = {"refinedweb": "refinedweb", "falcon": "refinedweb"}


def _hint(path: str, hints: dict[str, str]) -> str | None:
    parts = [p for p in path.split("?", 1)[0].replace("\\", "/").split("/") if p]
    for part in reversed(parts):  # the file name first, then the folders, nearest first
        for tok in re.split(r"[^a-z0-9]+", part.lower()):
            if tok in hints:
                return hints[tok]
    return None


def detect_format(path: str) -> str:
    """The format of ``path`` from its extension and name hints. Raises ValueError when unknown."""
    name = path.split("?", 1)[0].rstrip("/").lower()
    stem = name
    for ext in _COMPRESSION_EXT:
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
            break
    if stem.endswith(_PARQUET_EXT):
        return _hint(path, _PARQUET_HINTS) or "parquet"
    if stem.endswith(_JSON_EXT):
        return _hint(path, _JSON_HINTS) or "jsonl"
    if stem.endswith(".wet"):
        return "wet"
    if stem.endswith(".warc"):
        return "warc"
    if stem.endswith(".wat"):
        raise ValueError(
            f"{path!r} is a WAT file (link and header metadata, no page content); read the matching "
            ".warc.gz (HTML, extracted by the recipe) or .warc.wet.gz (Common Crawl's text) files instead"
        )
    raise ValueError(
        f"cannot tell the format of {path!r} from its name (expected .parquet, .jsonl/.json[.gz|.zst], "
        ".warc[.gz] or .wet[.gz]); "
        f"pass format= one of {FORMATS}"
    )


def get_reader(path: str, format: str | None = None, source: str | None = None, **opts: object) -> Reader:
    """A reader for ``path``: ``format`` (one of ``FORMATS``) or the detected one, with ``opts``
    passed to its constructor (``batch_size``, ``max_doc_bytes``, ``text_field``...)."""
    fmt = format or detect_format(path)
    if fmt not in READERS:
        raise ValueError(f"unknown format {fmt!r}; known: {FORMATS}")
    return READERS[fmt](source=source, **opts)


__all__ = [
    "FORMATS",
    "READERS",
    "REASONS",
    "Reader",
    "ReaderOptions",
    "Split",
    "assign_first_rows",
    "count_records",
    "detect_format",
    "get_reader",
    "plan_splits",
    "DolmaReader",
    "JsonLinesOptions",
    "JsonLinesReader",
    "JsonlOptions",
    "JsonlReader",
    "ParquetMappingOptions",
    "ParquetOptions",
    "ParquetReader",
    "PileReader",
    "RedPajamaOptions",
    "RedPajamaReader",
    "RefinedWebReader",
    "WarcReader",
    "WetReader",
]
