"""What a token stream's manifest.json says: files and format, tokenizer, and the mix per source
(documents, tokens, windows, repetitions, skipped shards, tokens per corpus source)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from curation.tokens.mix import SourceSpec

if TYPE_CHECKING:
    from curation.tokens.build import TokenStreamConfig

FORMAT = "curation.tokens/1"


def source_summary(name: str, path: str, recipe_hash: str | None, packed: list[dict[str, Any]], tail_windows: int,
                   lost: int) -> dict[str, Any]:
    """One source's entry before the mix plan: its counts, from the packing results of its shards
    (``{"file", "error"}`` for a skipped shard)."""
    res = [p for p in packed if "error" not in p]
    return {
        "name": name,
        "path": path,
        "recipe_hash": recipe_hash,
        "docs": sum(p["docs"] for p in res),
        "null_docs": sum(p["null_docs"] for p in res),
        "empty_docs": sum(p["empty_docs"] for p in res),
        "doc_tokens": sum(p["doc_tokens"] for p in res),
        "rehydrated_copies": sum(p.get("copies", 0) for p in res),
        "rehydrated_tokens": sum(p.get("copy_tokens", 0) for p in res),
        "tail_windows": tail_windows,
        "remainder_tokens_dropped": lost,
        "windows_available": sum(p["windows"] for p in res) + tail_windows,
        "skipped_shards": [{"file": p["file"], "error": p["error"]} for p in packed if "error" in p],
        "by_corpus_source": _merge_by_source([p["by_source"] for p in res]),
        "input_shards": [{"file": p["file"], "docs": p["docs"], "doc_tokens": p["doc_tokens"],
                          "windows": p["windows"], "by_corpus_source": p["by_source"]} for p in res],
    }  # fmt: skip


def _merge_by_source(parts: list[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for part in parts:
        for src, c in part.items():
            acc = out.setdefault(src, {"docs": 0, "doc_tokens": 0})
            acc["docs"] += c["docs"]
            acc["doc_tokens"] += c["doc_tokens"]
    return dict(sorted(out.items()))


def _stream_tokens_by_corpus_source(per_source: list[dict[str, Any]]) -> dict[str, int]:
    """Tokens in the stream per corpus source (the documents' ``source`` column), an estimate.

    Windows cross document boundaries, so a mix source's stream tokens are split
    over its corpus sources in proportion to their document tokens.
    """
    out: dict[str, float] = {}
    for s in per_source:
        total = sum(c["doc_tokens"] for c in s["by_corpus_source"].values())
        for src, c in s["by_corpus_source"].items():
            out[src] = out.get(src, 0.0) + (s["tokens"] * c["doc_tokens"] / total if total else 0.0)
    return {k: round(v) for k, v in sorted(out.items())}


def content_sha256(files: list[dict[str, Any]], seq_len: int, dtype: str, eos_id: int, tokenizer_sha256: str | None
                   ) -> str | None:
    """What a trainer reads, as one digest: the windows' bytes file by file in manifest order (each file's
    ``sha256``), their shape and type, and the tokenizer. Two streams with the same digest train the same
    model whatever their folder, build time, source paths or mix bookkeeping; None when a file has no digest
    (a stream built before digests existed)."""
    if not files or any(not f.get("sha256") for f in files):
        return None
    payload = {"format": FORMAT, "seq_len": seq_len, "dtype": dtype, "eos_id": eos_id,
               "tokenizer_sha256": tokenizer_sha256, "files": [[f["windows"], f["sha256"]] for f in files]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def stream_identity(data_dir: str | os.PathLike) -> str:
    """What the token stream in ``data_dir`` trains on, as one string, for resuming trials and checkpoints: its
    manifest's ``content_sha256`` (token windows, shape, tokenizer), else ``manifest:<sha256 of manifest.json>``
    (a stream built before content digests). A stream rebuilt with the same windows keeps its identity."""
    raw = Path(data_dir, "manifest.json").read_bytes()
    return json.loads(raw).get("content_sha256") or "manifest:" + hashlib.sha256(raw).hexdigest()


def make_manifest(cfg: TokenStreamConfig, specs: list[SourceSpec], per_source: list[dict[str, Any]],
                  files: list[dict[str, Any]], total_windows: int, k: int, dt: np.dtype, tok: Any,
                  tok_json: dict[str, Any]) -> dict[str, Any]:
    """manifest.json (DESIGN.md, "Token streams"): the files, the format, the tokenizer, the mix per source."""
    mode = "tokens" if specs[0].tokens is not None else "weights" if specs[0].weight is not None else "all"
    window = cfg.seq_len + 1
    return {
        "format": FORMAT,
        "files": files,
        "num_windows": total_windows,
        "num_tokens": total_windows * window,
        "seq_len": cfg.seq_len,
        "window": window,
        "dtype": dt.name,
        "eos_id": tok.eos_id,
        "vocab_size": tok.vocab_size,
        "tokenizer": tok_json,
        "seed": cfg.seed,
        "shuffle": cfg.shuffle,
        "num_buckets": k,
        "remainder": cfg.remainder,
        "mix": {"mode": mode, "total_tokens": cfg.total_tokens, "sources": per_source},
        "rehydrate": None if not cfg.rehydrate else {
            "table": [list(x) for x in cfg.rehydrate],
            "copies": sum(s["rehydrated_copies"] for s in per_source),
            "copy_tokens": sum(s["rehydrated_tokens"] for s in per_source),
        },
        "tokens_per_source": {s["name"]: s["tokens"] for s in per_source},
        "doc_tokens_by_corpus_source": _merge_by_source([s["by_corpus_source"] for s in per_source]),
        "stream_tokens_by_corpus_source_est": _stream_tokens_by_corpus_source(per_source),
        "recipe_hashes": [s["recipe_hash"] for s in per_source],
        "skipped_shards": sum(len(s["skipped_shards"]) for s in per_source),
        "content_sha256": content_sha256(files, cfg.seq_len, dt.name, tok.eos_id, tok_json.get("sha256")),
    }
