"""Inspect source files with the readers: ``python -m curation.readers PATH [PATH ...]``.

Prints, per file, the detected format, documents read, quarantined records by
reason, records dropped as not documents (a WARC file's requests, non-HTML responses)
by reason and the read speed, and optionally the first documents and quarantine
records. Paths may be globs, folders or fsspec URLs.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

from curation import storage
from curation.readers import FORMATS, detect_format, get_reader
from curation.readers.base import DEFAULT_BATCH_SIZE, DEFAULT_MAX_DOC_BYTES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m curation.readers",
        description="Read source files with the curation readers and report documents, quarantine reasons and speed.",
    )
    parser.add_argument("paths", nargs="+", help="files, globs or folders (local or fsspec URLs)")
    parser.add_argument("--format", choices=FORMATS, default=None, help="override format detection")
    parser.add_argument("--source", default=None, help="value of the source column (default: the format's)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="documents per batch")
    parser.add_argument("--max-doc-bytes", type=int, default=DEFAULT_MAX_DOC_BYTES,
                        help="larger texts are quarantined as doc_too_large")
    parser.add_argument("--show", type=int, default=0, help="print the first N documents of each file")
    parser.add_argument("--show-quarantine", type=int, default=0, help="print the first N quarantine records")
    args = parser.parse_args(argv)

    files = storage.expand(args.paths)
    if not files:
        parser.error(f"no files match {args.paths}")
    total_docs, total_q = 0, Counter()
    for path in files:
        try:
            fmt = args.format or detect_format(path)
        except ValueError as exc:
            print(f"{path}: skipped ({exc})")
            continue
        reader = get_reader(path, format=fmt, source=args.source, batch_size=args.batch_size,
                            max_doc_bytes=args.max_doc_bytes)
        n_docs, reasons, drops = 0, Counter(), Counter()
        shown, shown_q = 0, 0
        t0 = time.perf_counter()
        for docs, quar, dropped in reader.read_with_dropped(path):
            n_docs += docs.num_rows
            drops.update(dropped.column("reason").to_pylist())
            reasons.update(quar.column("reason").to_pylist())
            for row in docs.slice(0, max(0, args.show - shown)).to_pylist():
                shown += 1
                row["text"] = row["text"][:300] + ("..." if len(row["text"]) > 300 else "")
                print(json.dumps(row, ensure_ascii=False))
            for row in quar.slice(0, max(0, args.show_quarantine - shown_q)).to_pylist():
                shown_q += 1
                row["raw"] = (row["raw"] or b"")[:200].decode("utf-8", "backslashreplace")
                print(json.dumps(row, ensure_ascii=False))
        dt = time.perf_counter() - t0
        total_docs += n_docs
        total_q.update(reasons)
        q_text = ", ".join(f"{r}={n}" for r, n in sorted(reasons.items())) or "none"
        d_text = (" dropped: " + ", ".join(f"{r}={n}" for r, n in sorted(drops.items()))) if drops else ""
        print(f"{path}: format={fmt} docs={n_docs} quarantined: {q_text}{d_text} "
              f"({n_docs / dt if dt > 0 else 0:.0f} docs/s)")
    print(f"total: {total_docs} documents, {sum(total_q.values())} quarantined in {len(files)} files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
