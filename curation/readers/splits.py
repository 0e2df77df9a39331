"""Large inputs as several work items: plan the splits of a file, count their records.

A file larger than the runner's ``--max-shard-bytes`` is read as several splits
(``Reader.read(path, split)``), each a work item of its own:

* parquet: consecutive row groups of at most about ``max_bytes`` uncompressed bytes (from the
  footer; a larger row group is a split by itself); the footer also gives each split's first row;
* uncompressed JSON lines: byte ranges ``[start, stop)`` of about ``max_bytes``, aligned to line
  starts. A split owns every line that *starts* in its range: its reader skips to the first line
  start at or after ``start`` and reads past ``stop`` to finish its last line, so no line is lost
  or read twice whatever the boundaries;
* compressed streams (gzip, zstd) cannot be entered in the middle: ``plan_splits`` returns None and
  the file stays one work item (the runner's report names it).

Generated ids and quarantine positions are file-global row (line) numbers. A byte range does not
know the number of its first line without counting the lines before it: ``count_records`` counts
the lines that start in a split (newline bytes, no JSON parsing), and ``assign_first_rows`` gives
every split its ``first_row`` from those counts. The concatenated outputs of the splits equal the
whole-file read exactly (``tests/curation/readers/test_reader_splits.py``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from curation.readers.base import open_binary
from curation.readers.streams import GZIP_MAGIC, ZSTD_MAGIC, compression_from_path

logger = logging.getLogger(__name__)

ROW_GROUPS = "row_groups"
BYTES = "bytes"
_SCAN = 1 << 16  # bytes read per step when looking for a line start or counting lines


@dataclass(frozen=True)
class Split:
    """One work item of a file: row groups ``[start, stop)`` (parquet) or the lines that start in
    bytes ``[start, stop)`` (JSON lines). ``first_row`` is the file-global index of the split's first
    record (row or physical line); None until counted (``count_records``, ``assign_first_rows``)."""

    kind: str
    start: int
    stop: int
    first_row: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in (ROW_GROUPS, BYTES):
            raise ValueError(f"split kind must be {ROW_GROUPS!r} or {BYTES!r}, got {self.kind!r}")
        if not 0 <= self.start <= self.stop:
            raise ValueError(f"split range must satisfy 0 <= start <= stop, got [{self.start}, {self.stop})")
        if self.first_row is not None and self.first_row < 0:
            raise ValueError(f"first_row must be >= 0, got {self.first_row}")

    @property
    def starts_file(self) -> bool:
        """True for the split that holds the start of the file (it reports file-level problems)."""
        return self.start == 0

    def key(self) -> str:
        """A short stable name (``bytes:0-1048576``), for work-item names and fingerprints."""
        return f"{self.kind}:{self.start}-{self.stop}"


def container_of(format: str) -> str | None:
    """``parquet`` or ``jsonl`` for the readers built on those containers, None for others."""
    from curation.readers import READERS

    cls = READERS.get(format)
    if cls is None:
        raise ValueError(f"unknown format {format!r}; known: {tuple(READERS)}")
    return getattr(cls, "container", None)


def plan_splits(path: str, format: str, max_bytes: int) -> list[Split] | None:
    """The splits of ``path`` read as ``format``, each of about ``max_bytes`` (at least one split);
    None when the file cannot be split (a compressed stream, a format without splits, a file that
    cannot be opened or is not parquet: the whole-file read quarantines it)."""
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, got {max_bytes}")
    container = container_of(format)
    if container == "parquet":
        return _plan_parquet(path, max_bytes)
    if container == "jsonl":
        return _plan_jsonl(path, max_bytes)
    return None


def _plan_parquet(path: str, max_bytes: int) -> list[Split] | None:
    import pyarrow.parquet as pq

    try:
        with open_binary(path) as f:
            meta = pq.ParquetFile(f).metadata
    except Exception as exc:  # noqa: BLE001 - the whole-file read quarantines it
        logger.info("%s: not split (%s)", path, exc)
        return None
    splits: list[Split] = []
    start, size, row, first = 0, 0, 0, 0
    for rg in range(meta.num_row_groups):
        g = meta.row_group(rg)
        if rg > start and size + g.total_byte_size > max_bytes:
            splits.append(Split(ROW_GROUPS, start, rg, first))
            start, size, first = rg, 0, row
        size += g.total_byte_size
        row += g.num_rows
    splits.append(Split(ROW_GROUPS, start, meta.num_row_groups, first))
    return splits


def _is_compressed(path: str, head: bytes) -> bool:
    return compression_from_path(path) != "none" or head.startswith((GZIP_MAGIC, ZSTD_MAGIC))


def _plan_jsonl(path: str, max_bytes: int) -> list[Split] | None:
    try:
        f = open_binary(path)
    except Exception as exc:  # noqa: BLE001
        logger.info("%s: not split (%s)", path, exc)
        return None
    with f:
        head = f.read(4)
        if _is_compressed(path, head):
            return None
        size = f.seek(0, 2)
        bounds = [0]
        b = max_bytes
        while b < size:
            ls = _next_line_start(f, b, size)
            if ls >= size:
                break
            bounds.append(ls)
            b = (ls // max_bytes + 1) * max_bytes  # the next boundary after this line start
        bounds.append(size)
    return [Split(BYTES, a, b, 0 if a == 0 else None) for a, b in zip(bounds, bounds[1:])]


def _next_line_start(f, pos: int, size: int) -> int:
    """The first line start at or after ``pos`` (``size`` when none)."""
    if pos <= 0:
        return 0
    f.seek(pos - 1)
    at = pos - 1
    while at < size:
        buf = f.read(_SCAN)
        if not buf:
            break
        nl = buf.find(b"\n")
        if nl >= 0:
            return at + nl + 1
        at += len(buf)
    return size


def count_records(path: str, split: Split | None = None) -> int:
    """Records of ``split`` (or of the whole file): rows of its parquet row groups (from the footer),
    or the lines that start in its byte range, blank ones included (they count for line numbers).
    Raises ValueError for a byte range of a compressed file."""
    with open_binary(path) as f:
        head = f.read(4)
        if (split is None and head == b"PAR1") or (split is not None and split.kind == ROW_GROUPS):
            import pyarrow.parquet as pq

            f.seek(0)
            meta = pq.ParquetFile(f).metadata
            first, stop = (0, meta.num_row_groups) if split is None else (split.start, split.stop)
            return sum(meta.row_group(rg).num_rows for rg in range(first, min(stop, meta.num_row_groups)))
        if _is_compressed(path, head):
            raise ValueError(f"{path}: a compressed stream has no byte ranges; read it whole")
        size = f.seek(0, 2)
        start, stop = (0, size) if split is None else (split.start, min(split.stop, size))
        if start >= stop:
            return 0
        # line starts in [start, stop): position 0, and q + 1 for every newline q with q + 1 < size
        n = 1 if start == 0 else 0
        lo, hi = max(start - 1, 0), min(stop - 1, size - 1)
        f.seek(lo)
        while lo < hi:
            buf = f.read(min(_SCAN * 16, hi - lo))
            if not buf:
                break
            n += buf.count(b"\n")
            lo += len(buf)
        return n


def assign_first_rows(splits: Sequence[Split], counts: Sequence[int]) -> list[Split]:
    """``splits`` (in file order) with ``first_row`` set from the record count of each split."""
    if len(splits) != len(counts):
        raise ValueError(f"{len(splits)} splits but {len(counts)} counts")
    out, row = [], 0
    for s, n in zip(splits, counts):
        out.append(dataclasses.replace(s, first_row=row))
        row += n
    return out
