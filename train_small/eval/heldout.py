"""Held-out loss per domain: mean next-token cross-entropy and bits per byte on text the user names.

Each domain's documents are tokenised, each followed by EOS (as the token streams
pack them, DESIGN.md), concatenated, and cut into non-overlapping windows of
``seq_len + 1`` tokens (the last, shorter window is scored too). The loss is the mean
cross-entropy in nats over every predicted token. Bits per byte (total nats / ln 2 /
UTF-8 bytes of the scored documents; The Pile, Gao et al. 2020, arXiv:2101.00027)
does not depend on the tokenizer, so mixes tokenised differently stay comparable.

Inputs (:func:`load_texts`): a path, glob or list of them, or ``{domain: paths}``.
``.parquet`` (column ``text``, else ``content`` as in RefinedWeb), jsonl / json
(``.gz``, ``.zst``; field ``text``), and any other UTF-8 file (``.txt``, ``.raw``) as one
document. Without
an explicit domain, a file's domain is its ``source`` column when it has one
(``by_source=True``), else its file stem.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from train_small.eval.harness import _logits, _model_max_len, as_tokenizer, autocast_dtype_for

log = logging.getLogger(__name__)


def _expand(paths: str | os.PathLike | list[str | os.PathLike]) -> list[str]:
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    out: list[str] = []
    for p in items:
        p = str(p)
        if os.path.isdir(p):
            out += sorted(q for q in glob.glob(os.path.join(p, "**", "*"), recursive=True) if os.path.isfile(q))
        elif any(c in p for c in "*?["):
            out += sorted(glob.glob(p, recursive=True))
        elif os.path.exists(p):
            out.append(p)
        else:
            raise FileNotFoundError(f"held-out path {p} does not exist")
    return out


def _open_text(path: str) -> io.TextIOBase:
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    if path.endswith(".zst"):
        import zstandard

        fh = open(path, "rb")
        return io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(fh), encoding="utf-8")
    return open(path, encoding="utf-8")


def read_file(path: str, by_source: bool = True) -> dict[str, list[str]]:
    """{domain: texts} of one file (domain = ``source`` column/field when ``by_source``, else the stem)."""
    stem = Path(path).name.split(".")[0]
    name = Path(path).name
    out: dict[str, list[str]] = {}
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        cols = pq.read_schema(path).names
        tcol = "text" if "text" in cols else "content" if "content" in cols else None
        if tcol is None:
            raise ValueError(f"{path}: no `text` or `content` column")
        want = [tcol] + (["source"] if by_source and "source" in cols else [])
        t = pq.read_table(path, columns=want)
        texts = t.column(tcol).to_pylist()
        srcs = t.column("source").to_pylist() if len(want) == 2 else [stem] * len(texts)
        for s, x in zip(srcs, texts):
            if isinstance(x, str) and x:
                out.setdefault(str(s or stem), []).append(x)
        return out
    if any(name.endswith(e) for e in (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst")):
        bad = 0
        with _open_text(path) as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    bad += 1
                    continue
                x = row.get("text") if isinstance(row, dict) else None
                if isinstance(x, str) and x:
                    s = row.get("source") if by_source else None
                    out.setdefault(str(s) if isinstance(s, str) and s else stem, []).append(x)
                else:
                    bad += 1
        if bad:
            log.warning("%s: %d rows without a usable `text` skipped", path, bad)
        return out
    if name.endswith((".parquet.gz", ".arrow", ".feather")):
        raise ValueError(f"{path}: unsupported held-out file type (parquet, jsonl[.gz|.zst], plain text)")
    # anything else is one plain-text document (.txt, .raw, .md, no extension)
    try:
        with _open_text(path) as f:
            x = f.read()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text, parquet or jsonl ({e})") from e
    return {stem: [x]} if x else {}


def load_texts(
    spec: str | os.PathLike | list[str | os.PathLike] | dict[str, Any], by_source: bool = True
) -> dict[str, list[str]]:
    """Resolve a held-out specification to ``{domain: [documents]}`` (domains sorted by name)."""
    out: dict[str, list[str]] = {}
    if isinstance(spec, dict):
        for domain, paths in spec.items():
            for p in _expand(paths):
                for texts in read_file(p, by_source=False).values():
                    out.setdefault(str(domain), []).extend(texts)
    else:
        for p in _expand(spec):
            for d, texts in read_file(p, by_source=by_source).items():
                out.setdefault(d, []).extend(texts)
    if not out:
        raise ValueError(f"no held-out text found in {spec!r}")
    return dict(sorted(out.items()))


def _domain_stream(tok: Any, texts: list[str], max_tokens: int | None) -> tuple[np.ndarray, int, int]:
    """Concatenated tokens (each document + EOS), UTF-8 bytes and documents used (whole documents)."""
    eos = tok.eos_id
    parts: list[np.ndarray] = []
    n_tok = n_bytes = n_docs = 0
    for x in texts:
        ids = tok.encode(x) + ([eos] if eos is not None else [])
        if max_tokens is not None and n_docs > 0 and n_tok + len(ids) > max_tokens:
            break
        parts.append(np.asarray(ids, dtype=np.int64))
        n_tok += len(ids)
        n_bytes += len(x.encode("utf-8"))
        n_docs += 1
    stream = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    if max_tokens is not None and len(stream) > max_tokens:  # a single document longer than the cap
        frac = max_tokens / len(stream)
        stream = stream[:max_tokens]
        n_bytes = int(round(n_bytes * frac))
    return stream, n_bytes, n_docs


@torch.inference_mode()
def stream_nll(
    model: torch.nn.Module,
    tokens: np.ndarray,
    seq_len: int,
    batch_size: int = 8,
    device: torch.device | str | None = None,
    precision: str = "fp32",
) -> tuple[float, int]:
    """Summed next-token NLL (nats) and number of predicted tokens over ``tokens`` in windows."""
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)
    amp = autocast_dtype_for(precision)
    W = seq_len + 1
    starts = list(range(0, max(len(tokens) - 1, 0), seq_len))
    total, count = 0.0, 0
    for i in range(0, len(starts), batch_size):
        chunk = [tokens[s : s + W] for s in starts[i : i + batch_size]]
        chunk = [c for c in chunk if len(c) >= 2]
        if not chunk:
            continue
        T = max(len(c) for c in chunk) - 1
        x = torch.zeros((len(chunk), T), dtype=torch.long)
        y = torch.full((len(chunk), T), -100, dtype=torch.long)
        for b, c in enumerate(chunk):
            t = torch.from_numpy(np.ascontiguousarray(c))
            x[b, : len(c) - 1] = t[:-1]
            y[b, : len(c) - 1] = t[1:]
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None and device.type == "cuda"):
            logits = _logits(model, x.to(device)).float()
        nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), y.to(device).reshape(-1), ignore_index=-100, reduction="sum"
        )
        total += float(nll)
        count += int((y != -100).sum())
    return total, count


def heldout_loss(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: dict[str, list[str]],
    *,
    seq_len: int | None = None,
    max_tokens_per_domain: int | None = None,
    batch_size: int = 8,
    device: torch.device | str | None = None,
    precision: str = "fp32",
    floor: Any = None,
) -> dict[str, Any]:
    """Per-domain ``{loss, bits_per_byte, perplexity, tokens, bytes, docs}`` plus their macro means.

    ``max_tokens_per_domain`` caps the scored tokens of each domain (whole documents,
    in file order), for quick CPU runs. ``floor`` (an :class:`~train_small.eval.ngram.NGramFloor`) adds
    ``ngram_floor: {unigram_bpb, bigram_bpb}`` per domain, the same stream scored by counting alone.
    """
    tok = as_tokenizer(tokenizer)
    seq_len = seq_len or _model_max_len(model)
    was_training = model.training
    model.eval()
    per: dict[str, dict[str, float]] = {}
    try:
        for domain, docs in texts.items():
            stream, n_bytes, n_docs = _domain_stream(tok, docs, max_tokens_per_domain)
            nll, n = stream_nll(model, stream, seq_len, batch_size=batch_size, device=device, precision=precision)
            if n == 0:
                log.warning("held-out domain %s: nothing to score", domain)
                continue
            per[domain] = {
                "loss": nll / n,
                "perplexity": math.exp(min(nll / n, 50.0)),
                "bits_per_byte": nll / math.log(2) / max(n_bytes, 1),
                "tokens": n,
                "bytes": n_bytes,
                "docs": n_docs,
            }
            if floor is not None:
                ng = floor.stream_nll(stream)
                per[domain]["ngram_floor"] = {f"{k}_bpb": ng[k] / math.log(2) / max(n_bytes, 1)
                                              for k in ("unigram", "bigram")}  # fmt: skip
    finally:
        model.train(was_training)
    out: dict[str, Any] = {"domains": per}
    if per:
        out["mean_loss"] = float(np.mean([d["loss"] for d in per.values()]))
        out["mean_bits_per_byte"] = float(np.mean([d["bits_per_byte"] for d in per.values()]))
    out["seq_len"] = seq_len
    out["precision"] = precision
    return out
