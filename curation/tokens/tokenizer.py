"""SentencePiece tokenizers: train one from a curated run, or load a user's ``tokenizer.model``.

Defaults follow the LLaMA tokenizer that OpenELM uses (Touvron et al. 2023,
arXiv:2302.13971; Mehta et al. 2024, arXiv:2404.14619): BPE, 32,000 pieces,
byte fallback (every byte is representable, so nothing becomes ``<unk>``),
digits split into single pieces, no normalisation and no whitespace collapsing
(so ``decode(encode(text)) == text``), ids ``<unk>=0 <s>=1 </s>=2``.

Small samples. SentencePiece cannot learn more merges than the sample supports
(the demo pool of ~2,000 documents gives ~10-20k pieces). With
``allow_smaller_vocab=True`` (the default) the trainer treats ``vocab_size`` as a
soft limit: it trains the largest vocabulary the sample supports, logs a warning,
and records ``requested_vocab_size`` / ``vocab_size`` / ``vocab_fallback`` in the
sidecar ``<prefix>.json`` that the token-stream manifest copies. With
``allow_smaller_vocab=False`` it raises ``ValueError`` naming the largest size the
sample supports, so the caller can choose.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import sentencepiece as spm

from curation import storage
from curation.passes import digest

logger = logging.getLogger(__name__)

#: bump when the trainer's options or sampling change, so that an earlier tokenizer is not reused
TRAINER_VERSION = "1"

# Largest vocabulary whose ids all fit in uint16.
UINT16_VOCAB_LIMIT = 65536


@dataclass(frozen=True)
class TokenizerInfo:
    """What the manifest records about a tokenizer."""

    path: str
    sha256: str
    vocab_size: int
    eos_id: int
    bos_id: int
    dtype: str  # "uint16" | "uint32"
    training: dict[str, Any] | None = None  # the sidecar of train_tokenizer, when there is one

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 while every id (0..vocab_size-1) fits, else uint32."""
    if vocab_size <= 0:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    return np.dtype(np.uint16) if vocab_size <= UINT16_VOCAB_LIMIT else np.dtype(np.uint32)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_model_bytes(path: str) -> bytes:
    fs, p = storage.fs_path(path)
    with fs.open(p, "rb") as f:
        return f.read()


def processor_from_bytes(model: bytes) -> spm.SentencePieceProcessor:
    return spm.SentencePieceProcessor(model_proto=model)


def load_tokenizer(path: str, eos_id: int | None = None) -> tuple[spm.SentencePieceProcessor, TokenizerInfo, bytes]:
    """Load a SentencePiece model (any fsspec path). Returns (processor, info, model bytes).

    ``eos_id`` overrides the model's own end-of-sequence id (needed for models
    trained without one). Raises ValueError when no EOS id is available.
    """
    data = read_model_bytes(path)
    try:
        sp = processor_from_bytes(data)
    except Exception as e:  # sentencepiece raises RuntimeError/OSError with a terse message
        raise ValueError(f"{path}: not a SentencePiece model ({e})") from e
    eos = sp.eos_id() if eos_id is None else int(eos_id)
    if eos < 0:
        raise ValueError(f"{path}: the tokenizer defines no EOS piece; pass eos_id explicitly")
    if eos >= sp.vocab_size():
        raise ValueError(f"eos_id {eos} is outside the vocabulary (size {sp.vocab_size()})")
    training = None
    sidecar = _sidecar_path(path)
    if storage.exists(sidecar):
        try:
            training = storage.read_json(sidecar)
        except Exception:  # a broken sidecar is informational only
            logger.warning("could not read tokenizer sidecar %s", sidecar)
    info = TokenizerInfo(
        path=path,
        sha256=sha256_bytes(data),
        vocab_size=sp.vocab_size(),
        eos_id=eos,
        bos_id=sp.bos_id(),
        dtype=token_dtype(sp.vocab_size()).name,
        training=training,
    )
    return sp, info, data


def _sidecar_path(model_path: str) -> str:
    base = model_path[: -len(".model")] if model_path.endswith(".model") else model_path
    return base + ".json"


def parquet_files(inputs: list[str] | str) -> list[str]:
    """Curated parquet shards of run directories (``<run>/data/*.parquet``), folders, files or globs."""
    if isinstance(inputs, str):
        inputs = [inputs]
    files: list[str] = []
    for item in inputs:
        # a run directory's data/ (one listing), else the folder, file or glob itself
        found = [f for f in storage.list_dir(storage.join(item, "data"), recursive=True)
                 if f.endswith(".parquet") and not storage.is_bookkeeping(f.rsplit("/", 1)[-1])]
        if not found:
            found = [f for f in storage.expand(item) if f.endswith(".parquet")]
        if not found:
            raise FileNotFoundError(f"no parquet shards under {item!r} (expected <run>/data/*.parquet)")
        files.extend(found)
    return sorted(dict.fromkeys(files))


def sample_texts(files: list[str], sample_docs: int, seed: int, text_column: str = "text") -> list[str]:
    """A uniform sample (without replacement) of ``sample_docs`` documents across ``files``, seeded.

    Row counts come from the parquet footers, so only the shards that hold
    sampled rows are read. The order is the files' order, then row order.
    """
    counts = []
    for f in files:
        fs, p = storage.fs_path(f)
        with fs.open(p, "rb") as fh:
            counts.append(pq.ParquetFile(fh).metadata.num_rows)
    total = int(sum(counts))
    if total == 0:
        raise ValueError("the input shards hold no documents")
    k = min(sample_docs, total)
    picked = np.sort(np.random.default_rng(seed).choice(total, size=k, replace=False))
    starts = np.concatenate([[0], np.cumsum(counts)])
    texts: list[str] = []
    for i, f in enumerate(files):
        lo, hi = np.searchsorted(picked, [starts[i], starts[i + 1]])
        if lo == hi:
            continue
        col = storage.read_parquet(f, columns=[text_column]).column(text_column)
        rows = col.take(picked[lo:hi] - starts[i]).to_pylist()
        texts.extend(t for t in rows if t)
    return texts


def train_tokenizer(
    run_dirs_or_parquet: list[str],
    out_prefix: str,
    vocab_size: int = 32000,
    sample_docs: int = 50_000,
    seed: int = 0,
    *,
    allow_smaller_vocab: bool = True,
    character_coverage: float = 0.99995,
    max_sentence_length: int = 16384,
    max_sentences: int = 5_000_000,
    num_threads: int = 1,
    text_column: str = "text",
) -> str:
    """Train a LLaMA-style SentencePiece BPE tokenizer on a sample of curated documents.

    Writes ``<out_prefix>.model``, ``<out_prefix>.vocab`` and ``<out_prefix>.json``
    (requested and actual vocabulary size, sample, seed, sha256) and returns the
    model path. Documents are fed line by line (SentencePiece's unit); lines
    longer than ``max_sentence_length`` bytes are cut. The same inputs and seed
    give a byte-identical model (``num_threads=1``, input order fixed, no
    trainer-side sampling). A finished training of the same inputs (by their listing fingerprints) and
    settings at ``out_prefix`` is reused as it is: its sidecar records the key.
    """
    files = parquet_files(run_dirs_or_parquet)
    infos = storage.stat_many(files)
    key = digest({"files": [[f, storage.fingerprint_of(infos[f]) if infos.get(f) else None] for f in files],
                  "vocab_size": vocab_size, "sample_docs": sample_docs, "seed": seed,
                  "allow_smaller_vocab": allow_smaller_vocab, "character_coverage": character_coverage,
                  "max_sentence_length": max_sentence_length, "max_sentences": max_sentences,
                  "text_column": text_column, "version": TRAINER_VERSION})
    model_path = out_prefix + ".model"
    done = storage.stat_many([model_path, out_prefix + ".json"])
    if all(done.values()):
        try:
            if storage.read_json(out_prefix + ".json").get("key") == key:
                logger.info("tokenizer %s was trained on the same sample with the same settings: reused", model_path)
                return os.path.abspath(model_path) if storage.is_local(model_path) else model_path
        except (FileNotFoundError, ValueError):
            pass
    texts = sample_texts(files, sample_docs, seed, text_column)
    lines: list[str] = []
    for t in texts:
        for line in t.split("\n"):
            if line.strip():
                b = line.encode("utf-8")
                if len(b) > max_sentence_length:
                    line = b[:max_sentence_length].decode("utf-8", errors="ignore")
                lines.append(line)
                if len(lines) >= max_sentences:
                    break
        if len(lines) >= max_sentences:
            break
    if not lines:
        raise ValueError("the sampled documents hold no text to train a tokenizer on")
    options: dict[str, Any] = dict(
        model_type="bpe",
        vocab_size=vocab_size,
        byte_fallback=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        character_coverage=character_coverage,
        max_sentence_length=max_sentence_length,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=num_threads,
        hard_vocab_limit=not allow_smaller_vocab,
        minloglevel=2,
    )
    buf = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=buf, **options)
    except RuntimeError as e:
        if "smaller than required_chars" in str(e):
            raise ValueError(
                f"vocab_size={vocab_size} is below what the sample's characters, the 256 byte pieces and the "
                f"specials need ({e}); raise vocab_size or lower character_coverage"
            ) from e
        if "Vocabulary size" in str(e):
            raise ValueError(
                f"the sample ({len(texts)} documents, {len(lines)} lines) cannot support vocab_size={vocab_size}: {e}. "
                "Pass a smaller vocab_size, more sample_docs, or allow_smaller_vocab=True."
            ) from e
        raise
    model = buf.getvalue()
    sp = processor_from_bytes(model)
    actual = sp.vocab_size()
    fallback = actual < vocab_size
    if fallback:
        logger.warning(
            "tokenizer: the sample (%d documents) supports only %d pieces; trained %d instead of the requested %d",
            len(texts),
            actual,
            actual,
            vocab_size,
        )
    storage.write_bytes_atomic(model_path, model)
    vocab_lines = "".join(f"{sp.id_to_piece(i)}\t{sp.get_score(i)}\n" for i in range(actual))
    storage.write_bytes_atomic(out_prefix + ".vocab", vocab_lines.encode("utf-8"))
    sidecar = {
        "key": key,
        "requested_vocab_size": vocab_size,
        "vocab_size": actual,
        "vocab_fallback": fallback,
        "sample_docs": len(texts),
        "sample_lines": len(lines),
        "requested_sample_docs": sample_docs,
        "seed": seed,
        "inputs": list(run_dirs_or_parquet),
        "num_input_shards": len(files),
        "sha256": sha256_bytes(model),
        "options": {k: v for k, v in options.items() if k not in ("minloglevel", "num_threads")},
    }
    storage.write_json_atomic(out_prefix + ".json", sidecar)
    logger.info("tokenizer: %d pieces from %d documents -> %s", actual, len(texts), model_path)
    return os.path.abspath(model_path) if storage.is_local(model_path) else model_path
