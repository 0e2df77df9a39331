"""Reference domains: held-out text from real sources that no mix trains on, scored per domain (Paloma-style).

A data mix's held-out loss on its own pool's held-out slice says how well the proxy fits that pool; it cannot
say whether the curated pool is better *text*. Reference domains answer that: real Wikipedia, books, arXiv,
StackExchange or web text the user names (``NAME=PATH``), identical for every mix, reported per domain in loss
and bits per byte, as Paloma does (Magnusson et al. 2023, arXiv:2312.10523).

Scoring follows Paloma's rules: every document is scored on its own (no packing with other documents), from a
start-of-document token (:func:`train_small.eval.prompts.start_token_id`: our EOS, the state the proxy is trained
to start documents from; the tokenizer's BOS where its configuration asks for one), in non-overlapping windows of
``seq_len`` predicted tokens, so each document token is predicted exactly once and nothing across documents leaks
in. Per domain: ``loss`` (mean nats per token), ``perplexity``, ``bits_per_byte`` (total nats / ln 2 / UTF-8
bytes: independent of the tokenizer, so proxies with different tokenizers compare), ``tokens``, ``bytes``,
``docs``, and ``sha256`` of the documents scored; over domains, ``weighted_bits_per_byte`` (the token-weighted
mean: a domain counts by its scored tokens) and the unweighted ``mean_bits_per_byte``.

With an n-gram floor (:class:`train_small.eval.ngram.NGramFloor`, fit on the proxy's own training tokens) every
domain also gets ``ngram_floor: {unigram_bpb, bigram_bpb}``, the same documents scored the same way by counting
alone. ``per_doc=True`` returns the per-document sums (``_per_doc``: domain, nats, tokens, bytes, and the
floor's nats) for intervals over documents.

``PATH`` is a text file (one document), a folder (every ``.txt``/``.raw``/``.md`` file in it is a document,
jsonl / parquet files in it are read as below, anything else, e.g. a ``metadata.csv`` or a licence, is skipped),
a jsonl (``.gz``/``.zst``) with a ``text`` field per line, or a parquet file with a ``text`` (or ``content``)
column: :func:`train_small.eval.heldout.read_file`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from typing import Any

import numpy as np
import torch

from train_small.eval.harness import _logits, _model_max_len, as_tokenizer, autocast_dtype_for
from train_small.eval.heldout import load_texts
from train_small.eval.prompts import start_token_id

log = logging.getLogger(__name__)

__all__ = ["parse_reference_specs", "load_reference_domains", "reference_loss", "documents_nll"]


def parse_reference_specs(values: list[str] | dict[str, str] | None) -> dict[str, str]:
    """``["wiki=path/to/wikitext", "books=pg19/"]`` -> ``{"wiki": ..., "books": ...}`` with clear errors."""
    if not values:
        return {}
    if isinstance(values, dict):
        items = list(values.items())
    else:
        items = []
        for v in values:
            if "=" not in v:
                raise ValueError(f"reference domain {v!r}: expected NAME=PATH (e.g. wiki=../shared/data/...)")
            items.append(tuple(v.split("=", 1)))
    out: dict[str, str] = {}
    for name, path in items:
        name = name.strip()
        if not name or "/" in name or name.startswith("mean_"):
            raise ValueError(f"reference domain name {name!r}: use a short name without '/' (e.g. wiki, books)")
        if name in out:
            raise ValueError(f"reference domain {name!r} given twice")
        if not os.path.exists(path):
            raise FileNotFoundError(f"reference domain {name}: {path} does not exist")
        out[name] = str(path)
    return out


_DOC_SUFFIXES = (".txt", ".raw", ".md", ".jsonl", ".json", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst",
                 ".parquet")  # fmt: skip


def _files(path: str) -> list[str]:
    if not os.path.isdir(path):
        return [path]
    found = sorted(os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs)
    keep = [f for f in found if f.lower().endswith(_DOC_SUFFIXES)]
    if len(keep) < len(found):
        log.info("%s: %d files that are not text, jsonl or parquet skipped", path, len(found) - len(keep))
    return keep


def load_reference_domains(
    specs: list[str] | dict[str, str], max_docs: int | None = None
) -> dict[str, list[str]]:
    """``{name: [documents]}`` for ``NAME=PATH`` specs (the first ``max_docs`` documents of each, in file order)."""
    paths = parse_reference_specs(specs)
    files = {name: _files(p) for name, p in paths.items()}
    empty = sorted(n for n, f in files.items() if not f)
    if empty:
        raise ValueError(f"reference domains {empty}: no text, jsonl or parquet file under {[paths[n] for n in empty]}")
    domains = load_texts(files)  # {name: files} -> every document, in sorted file order
    missing = sorted(set(paths) - set(domains))
    if missing:
        raise ValueError(f"reference domains {missing}: no text found under {[paths[m] for m in missing]}")
    return {d: docs[:max_docs] if max_docs else docs for d, docs in domains.items()}


@torch.inference_mode()
def documents_nll(
    model: torch.nn.Module,
    docs: list[list[int]],
    seq_len: int,
    start_id: int | None,
    *,
    batch_tokens: int = 16384,
    device: torch.device | str | None = None,
    precision: str = "fp32",
) -> tuple[np.ndarray, np.ndarray]:
    """Per-document summed NLL (nats) and predicted-token counts; each document scored on its own.

    Document ``[start] + tokens`` is cut into windows starting every ``seq_len`` tokens (each window holds up
    to ``seq_len + 1`` tokens and predicts up to ``seq_len``), so every document token is predicted once.
    """
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)
    amp = autocast_dtype_for(precision)
    windows: list[tuple[int, np.ndarray]] = []
    for d, toks in enumerate(docs):
        seq = np.asarray(([start_id] if start_id is not None else []) + list(toks), dtype=np.int64)
        for s in range(0, max(len(seq) - 1, 0), seq_len):
            windows.append((d, seq[s : s + seq_len + 1]))
    nll, count = np.zeros(len(docs)), np.zeros(len(docs), dtype=np.int64)
    windows.sort(key=lambda w: -len(w[1]))  # similar lengths share a batch: little padding
    pos = 0
    while pos < len(windows):
        width = len(windows[pos][1]) - 1
        n = max(1, min(batch_tokens // max(width, 1), len(windows) - pos))
        batch = windows[pos : pos + n]
        pos += n
        x = torch.zeros((n, width), dtype=torch.long)
        y = torch.full((n, width), -100, dtype=torch.long)
        for b, (_, w) in enumerate(batch):
            t = torch.from_numpy(w)
            x[b, : len(w) - 1], y[b, : len(w) - 1] = t[:-1], t[1:]
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None and device.type == "cuda"):
            logits = _logits(model, x.to(device)).float()
        tok_nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), y.to(device).reshape(-1), ignore_index=-100, reduction="none"
        ).view(n, width)
        sums = tok_nll.sum(1).double().cpu().numpy()
        for b, (d, w) in enumerate(batch):
            nll[d] += sums[b]
            count[d] += len(w) - 1
    return nll, count


def reference_loss(
    model: torch.nn.Module,
    tokenizer: Any,
    domains: dict[str, list[str]],
    *,
    seq_len: int | None = None,
    max_tokens_per_domain: int | None = None,
    batch_tokens: int = 16384,
    device: torch.device | str | None = None,
    precision: str = "fp32",
    start_token: str = "auto",
    published: bool = False,
    floor: Any = None,
    per_doc: bool = False,
) -> dict[str, Any]:
    """Per-domain ``{loss, perplexity, bits_per_byte, tokens, bytes, docs, sha256}`` and their means.

    ``max_tokens_per_domain`` keeps whole documents, in order, while their tokens fit (at least one document).
    ``floor``: an :class:`~train_small.eval.ngram.NGramFloor` scored on the same documents (``ngram_floor`` per
    domain). ``per_doc``: add ``_per_doc`` (per-document arrays, for intervals; not JSON).
    """
    tok = as_tokenizer(tokenizer)
    seq_len = seq_len or _model_max_len(model)
    start = start_token_id(tok, start_token, published)
    was_training = model.training
    model.eval()
    per: dict[str, dict[str, Any]] = {}
    docs_out: dict[str, list[np.ndarray]] = {k: [] for k in ("domain", "nll", "tokens", "bytes", "unigram", "bigram")}
    try:
        for name, texts in domains.items():
            ids, used = [], []
            total = 0
            for text in texts:
                t = tok.encode(text)
                if not t:
                    continue
                if max_tokens_per_domain is not None and ids and total + len(t) > max_tokens_per_domain:
                    break
                ids.append(t)
                used.append(text)
                total += len(t)
            if not ids:
                log.warning("reference domain %s: no text to score", name)
                continue
            nll, count = documents_nll(model, ids, seq_len, start, batch_tokens=batch_tokens, device=device,
                                       precision=precision)  # fmt: skip
            doc_bytes = np.array([len(x.encode("utf-8")) for x in used], np.int64)
            n_bytes = int(doc_bytes.sum())
            sha = hashlib.sha256()
            for x in used:
                sha.update(hashlib.sha256(x.encode("utf-8")).digest())
            loss = float(nll.sum() / count.sum())
            per[name] = {
                "loss": loss,
                "perplexity": math.exp(min(loss, 50.0)),
                "bits_per_byte": float(nll.sum() / math.log(2) / n_bytes),
                "tokens": int(count.sum()),
                "bytes": n_bytes,
                "docs": len(used),
                "sha256": sha.hexdigest()[:16],
            }
            ng = floor.documents_nll(ids, start) if floor is not None else None
            if ng is not None:
                per[name]["ngram_floor"] = {f"{k}_bpb": float(ng[k].sum() / math.log(2) / n_bytes)
                                            for k in ("unigram", "bigram")}  # fmt: skip
            if per_doc:
                docs_out["domain"].append(np.array([name] * len(used), dtype=object))
                docs_out["nll"].append(nll)
                docs_out["tokens"].append(count)
                docs_out["bytes"].append(doc_bytes)
                for k in ("unigram", "bigram"):
                    docs_out[k].append(ng[k] if ng is not None else np.full(len(used), np.nan))
            log.info("reference %s: loss %.4f, %.4f bits/byte (%d docs, %d tokens)", name, loss,
                     per[name]["bits_per_byte"], len(used), per[name]["tokens"])  # fmt: skip
    finally:
        model.train(was_training)
    out: dict[str, Any] = {"domains": per, "seq_len": seq_len, "precision": precision, "start_token": start_token,
                           "start_token_id": start,
                           "method": "per document, from the start token, non-overlapping windows (Paloma)"}
    if per:
        w = np.array([d["tokens"] for d in per.values()], np.float64)
        out["mean_loss"] = float(np.mean([d["loss"] for d in per.values()]))
        out["mean_bits_per_byte"] = float(np.mean([d["bits_per_byte"] for d in per.values()]))
        out["weighted_bits_per_byte"] = float(np.average([d["bits_per_byte"] for d in per.values()], weights=w))
        if floor is not None:
            out["ngram_floor"] = {
                f"weighted_{k}_bpb": float(np.average([d["ngram_floor"][f"{k}_bpb"] for d in per.values()], weights=w))
                for k in ("unigram", "bigram")
            }
    if per_doc:
        out["_per_doc"] = {k: np.concatenate(v) if v else np.zeros(0) for k, v in docs_out.items()}
    return out
