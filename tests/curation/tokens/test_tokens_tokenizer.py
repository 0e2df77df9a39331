"""Tokenizer training (LLaMA-style BPE with byte fallback), vocabulary fallback, determinism, dtype choice."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import sentencepiece as spm

from curation.tokens import load_tokenizer, token_dtype, train_tokenizer
from curation.tokens.tokenizer import sha256_bytes


def test_roundtrip_with_byte_fallback(tokenizer, corpus):
    sp, info, model = load_tokenizer(tokenizer)
    assert info.sha256 == sha256_bytes(open(tokenizer, "rb").read())
    assert info.eos_id == 2 and info.dtype == "uint16" and info.vocab_size == sp.vocab_size()
    texts = [t for shard in corpus["code_texts"] for t in shard] + ["never seen: ŝ ǅ 𝔘 \u200b\t  two  spaces\n\nend"]
    for t in texts:
        ids = sp.encode(t)
        assert sp.unk_id() not in ids  # byte fallback: nothing becomes <unk>
        assert sp.decode(ids) == t  # identity normalisation, whitespace kept


def test_vocab_fallback_warns_and_records(corpus, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="curation.tokens.tokenizer"):
        path = train_tokenizer([corpus["code"]], str(tmp_path / "big"), vocab_size=32000, sample_docs=50)
    side = json.loads((tmp_path / "big.json").read_text())
    actual = spm.SentencePieceProcessor(model_file=path).vocab_size()
    assert side["vocab_fallback"] is True and side["requested_vocab_size"] == 32000
    assert side["vocab_size"] == actual < 32000
    assert side["requested_sample_docs"] == 50 and 0 < side["sample_docs"] <= 50  # empty documents are not counted
    assert any("supports only" in r.message for r in caplog.records)
    # the build manifest carries the sidecar through load_tokenizer
    assert load_tokenizer(path)[1].training["vocab_fallback"] is True


def test_strict_vocab_raises_with_the_supported_size(corpus, tmp_path):
    with pytest.raises(ValueError, match="cannot support vocab_size=32000"):
        train_tokenizer(
            [corpus["code"]], str(tmp_path / "s"), vocab_size=32000, sample_docs=50, allow_smaller_vocab=False
        )


def test_training_is_deterministic_and_seeded(corpus, tmp_path):
    a = train_tokenizer([corpus["web"]], str(tmp_path / "a"), vocab_size=400, sample_docs=100, seed=5)
    b = train_tokenizer([corpus["web"]], str(tmp_path / "b"), vocab_size=400, sample_docs=100, seed=5)
    train_tokenizer([corpus["web"]], str(tmp_path / "c"), vocab_size=400, sample_docs=100, seed=6)
    assert open(a, "rb").read() == open(b, "rb").read()
    side_a, side_c = (json.loads((tmp_path / f"{x}.json").read_text()) for x in "ac")
    assert side_a["sha256"] != side_c["sha256"]  # a different sample


def test_dtype_boundary():
    assert token_dtype(65536) == np.uint16  # ids 0..65535 fit
    assert token_dtype(65537) == np.uint32
    assert token_dtype(32000) == np.uint16
    with pytest.raises(ValueError):
        token_dtype(0)


def test_bad_inputs(tmp_path):
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a SentencePiece model"):
        load_tokenizer(str(junk))
    with pytest.raises(FileNotFoundError, match="no parquet shards"):
        train_tokenizer([str(tmp_path / "nothing")], str(tmp_path / "t"))


def test_too_small_vocab_is_a_clear_error(corpus, tmp_path):
    with pytest.raises(ValueError, match="byte pieces"):
        train_tokenizer([corpus["code"]], str(tmp_path / "t"), vocab_size=100, sample_docs=50)


def test_large_vocabulary_uses_uint32_end_to_end(tokenizer, corpus, tmp_path):
    """A real >65,536-piece model (user-defined pieces appended): ids above 65535 survive the uint32 stream."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    from curation.schema import docs_table
    from curation.storage import write_parquet_atomic
    from curation.tokens import TokenStream, build_token_stream

    m = pb.ModelProto()
    m.ParseFromString(open(tokenizer, "rb").read())
    base = len(m.pieces)
    for i in range(70_000 - base):
        p = m.pieces.add()
        p.piece, p.score, p.type = f"<extra{i}>", 0.0, pb.ModelProto.SentencePiece.USER_DEFINED
    big = tmp_path / "big.model"
    big.write_bytes(m.SerializeToString())
    sp, info, _ = load_tokenizer(str(big))
    assert info.vocab_size == 70_000 and info.dtype == "uint32"
    texts = [f"hello <extra{70_000 - base - 1}> world <extra{i * 1000}>" for i in range(60)]
    write_parquet_atomic(
        str(tmp_path / "run" / "data" / "0.parquet"), docs_table([str(i) for i in range(60)], texts, "x")
    )
    out = str(tmp_path / "o")
    man = build_token_stream([str(tmp_path / "run")], out, str(big), seq_len=15, shuffle=False, remainder="drop")
    assert man["dtype"] == "uint32"
    flat = np.concatenate(TokenStream(out).chunks).reshape(-1)
    assert flat.dtype == np.uint32 and flat.max() == 69_999  # the top id, above the uint16 range
    expected = [t for x in texts for t in sp.encode(x) + [info.eos_id]]
    assert flat.tolist() == expected[: flat.size]
