"""build_token_stream: packing order, remainder accounting, shuffle invariants, determinism, dtypes, mixes."""

from __future__ import annotations

import collections
import dataclasses
import json
import os

import numpy as np
import pyarrow as pa
import pytest
import sentencepiece as spm

from curation.tokens import SourceSpec, TokenStream, TokenStreamConfig, build_token_stream

SEQ = 63  # windows of 64 tokens: small enough for several windows per shard


def _rows(out: str) -> np.ndarray:
    ts = TokenStream(out)
    return np.concatenate(ts.chunks) if ts.chunks else np.empty((0, ts.window_len), ts.dtype)


def _row_counter(rows: np.ndarray) -> collections.Counter:
    return collections.Counter(r.tobytes() for r in rows)


def _encode_shard(sp, texts, eos) -> list[int]:
    out: list[int] = []
    for t in texts:
        if t:
            out += sp.encode(t) + [eos]
    return out


@pytest.fixture(scope="module")
def unshuffled(corpus, tokenizer, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("plain"))
    m = build_token_stream([corpus["web"]], out, tokenizer, seq_len=SEQ, shuffle=False, remainder="drop")
    return out, m


def test_unshuffled_windows_detokenise_to_the_documents_in_order(unshuffled, corpus, tokenizer):
    out, m = unshuffled
    sp = spm.SentencePieceProcessor(model_file=tokenizer)
    eos = m["eos_id"]
    ts = TokenStream(out)
    # one file per input shard, in shard order; each holds the full windows of that shard's stream
    assert len(ts.chunks) == len(corpus["web_texts"])
    dropped = 0
    for rows, texts in zip(ts.chunks, corpus["web_texts"]):
        expected = _encode_shard(sp, texts, eos)
        full = len(expected) // (SEQ + 1)
        assert rows.shape == (full, SEQ + 1)
        assert rows.reshape(-1).tolist() == expected[: full * (SEQ + 1)]
        dropped += len(expected) - full * (SEQ + 1)
        # detokenise: split at EOS; every complete document comes back verbatim, in order
        flat = rows.reshape(-1).tolist()
        cuts = [i for i, t in enumerate(flat) if t == eos]
        docs = [sp.decode(flat[a + 1 : b]) for a, b in zip([-1, *cuts], cuts)]
        assert docs == [t for t in texts if t][: len(docs)]
    src = m["mix"]["sources"][0]
    assert src["remainder_tokens_dropped"] == dropped > 0
    assert src["empty_docs"] == 1 and src["docs"] == sum(len(t) for t in corpus["web_texts"]) - 1
    assert src["doc_tokens"] == src["windows"] * (SEQ + 1) + dropped
    assert m["recipe_hashes"] == ["h-web"] and src["recipe_hash"] == "h-web"


def test_remainder_pack_keeps_all_but_one_tail(corpus, tokenizer, tmp_path):
    m = build_token_stream([corpus["web"]], str(tmp_path), tokenizer, seq_len=SEQ, shuffle=False)
    sp = spm.SentencePieceProcessor(model_file=tokenizer)
    streams = [_encode_shard(sp, t, m["eos_id"]) for t in corpus["web_texts"]]
    w = SEQ + 1
    tails = [s[len(s) // w * w :] for s in streams]
    tail_stream = [t for tail in tails for t in tail]
    src = m["mix"]["sources"][0]
    assert src["tail_windows"] == len(tail_stream) // w >= 1
    assert src["remainder_tokens_dropped"] == len(tail_stream) % w < w
    rows = _rows(str(tmp_path))
    # the last file holds the tails, concatenated in shard order
    assert rows[-src["tail_windows"] :].reshape(-1).tolist() == tail_stream[: src["tail_windows"] * w]
    assert sum(map(len, streams)) == rows.size + src["remainder_tokens_dropped"]


def test_shuffle_loses_and_duplicates_no_window(unshuffled, corpus, tokenizer, tmp_path):
    plain_out, _ = unshuffled
    m = build_token_stream(
        [corpus["web"]], str(tmp_path), tokenizer, seq_len=SEQ, seed=3, remainder="drop", num_shards=3
    )
    plain, shuf = _rows(plain_out), _rows(str(tmp_path))
    assert _row_counter(plain) == _row_counter(shuf)  # multiset equality
    assert not np.array_equal(plain, shuf)  # and the order did change
    assert [f["windows"] for f in m["files"]] == [len(c) for c in TokenStream(str(tmp_path)).chunks]
    assert sum(f["windows"] for f in m["files"]) == len(shuf) == m["num_windows"]
    assert len(m["files"]) == 3 and all(f["windows"] > 0 for f in m["files"])
    # the shuffle is global: the first output file mixes windows from every input shard
    first = TokenStream(str(tmp_path)).chunks[0]
    origin = {r.tobytes(): s for s, c in enumerate(TokenStream(plain_out).chunks) for r in c}
    assert {origin[r.tobytes()] for r in first} == {0, 1, 2}


@pytest.mark.integration
def test_identical_across_reruns_worker_counts_and_executors(corpus, tokenizer, ray_session, tmp_path):
    """In-process vs Ray, 1 vs 2 workers, a config object vs options: the same bytes."""
    outs = []
    cfg = TokenStreamConfig(seq_len=SEQ, seed=11, total_tokens=40 * (SEQ + 1), num_shards=2)
    for name, executor, workers in [("a", "local", 1), ("b", "ray", 1), ("c", "ray", 2), ("d", "local", 2)]:
        out = str(tmp_path / name)
        if name == "d":
            build_token_stream([(corpus["web"], 0.6), (corpus["code"], 0.4)], out, tokenizer, seq_len=SEQ, seed=11,
                               total_tokens=40 * (SEQ + 1), num_shards=2, executor=executor, num_workers=workers)
        else:
            build_token_stream([(corpus["web"], 0.6), (corpus["code"], 0.4)], out, tokenizer, cfg, executor=executor,
                               num_workers=workers)
        assert json.load(open(os.path.join(out, "build.json")))["executor"] == executor
        outs.append(out)
    names = sorted(f for f in os.listdir(outs[0]) if f.endswith(".arrow"))
    assert len(names) == 2
    for n in names:
        blobs = {open(os.path.join(o, n), "rb").read() for o in outs}
        assert len(blobs) == 1, n
    manifests = []
    for o in outs:
        m = json.load(open(os.path.join(o, "manifest.json")))
        assert m["tokenizer"]["path"] == os.path.join(o, "tokenizer.model")  # the copy beside the stream
        m["tokenizer"].pop("path")
        manifests.append(json.dumps(m, sort_keys=True))
    assert len(set(manifests)) == 1
    other = str(tmp_path / "seed12")
    build_token_stream([(corpus["web"], 0.6), (corpus["code"], 0.4)], other, tokenizer,
                       dataclasses.replace(cfg, seed=12))  # fmt: skip
    assert not np.array_equal(_rows(outs[0]), _rows(other))


def test_options_are_checked(corpus, tokenizer, tmp_path):
    with pytest.raises(TypeError, match="the options are seq_len, seed"):
        build_token_stream([corpus["code"]], str(tmp_path), tokenizer, seq_lenght=SEQ)
    with pytest.raises(ValueError, match="on_error"):
        TokenStreamConfig(on_error="ignore")
    with pytest.raises(ValueError, match="memory_per_worker"):  # a bucket that cannot fit one task's budget
        build_token_stream([corpus["code"]], str(tmp_path), tokenizer, max_shard_bytes=1 << 40)
    assert os.listdir(tmp_path) == []  # refused before anything was written


def test_uint32_path_holds_the_same_tokens(unshuffled, corpus, tokenizer, tmp_path):
    plain_out, m16 = unshuffled
    m32 = build_token_stream(
        [corpus["web"]], str(tmp_path), tokenizer, seq_len=SEQ, shuffle=False, remainder="drop", dtype="uint32"
    )
    assert m16["dtype"] == "uint16" and m32["dtype"] == "uint32"
    f = os.path.join(str(tmp_path), m32["files"][0]["name"])
    t = pa.ipc.open_stream(pa.memory_map(f)).schema.field("tokens").type
    assert t == pa.list_(pa.field("item", pa.uint32(), nullable=False), SEQ + 1)
    a, b = _rows(plain_out), _rows(str(tmp_path))
    assert b.dtype == np.uint32 and np.array_equal(a.astype(np.uint32), b)


def _source_of(rows: np.ndarray, web: set, code: set) -> collections.Counter:
    c = collections.Counter()
    for r in rows:
        k = r.tobytes()
        c["web" if k in web else "code" if k in code else "?"] += 1
    return c


@pytest.fixture(scope="module")
def per_source_windows(corpus, tokenizer, tmp_path_factory):
    sets = {}
    for name in ("web", "code"):
        out = str(tmp_path_factory.mktemp(f"only-{name}"))
        build_token_stream([corpus[name]], out, tokenizer, seq_len=SEQ, shuffle=False)
        sets[name] = _rows(out)
    return sets


@pytest.mark.parametrize("weights", [(0.25, 0.75), (0.9, 0.1)])
def test_weighted_mix_proportions_within_one_window(
    weights, corpus, tokenizer, tmp_path, per_source_windows
):
    web_rows, code_rows = per_source_windows["web"], per_source_windows["code"]
    total = 3 * (len(web_rows) + len(code_rows))  # forces upsampling of both
    m = build_token_stream(
        [(corpus["web"], weights[0]), (corpus["code"], weights[1])],
        str(tmp_path),
        tokenizer,
        seq_len=SEQ,
        seed=5,
        total_tokens=total * (SEQ + 1),
    )
    got = _source_of(_rows(str(tmp_path)), {r.tobytes() for r in web_rows}, {r.tobytes() for r in code_rows})
    assert got["?"] == 0
    assert got["web"] + got["code"] == total == m["num_windows"]
    for name, w in zip(("web", "code"), weights):
        assert abs(got[name] - w * total) <= 1  # within one window of the target
        src = next(s for s in m["mix"]["sources"] if s["name"] == name)
        assert src["windows"] == got[name] and m["tokens_per_source"][name] == got[name] * (SEQ + 1)
        avail = len(web_rows) if name == "web" else len(code_rows)
        assert src["repetitions"] == got[name] - avail and src["full_copies"] == got[name] // avail


def test_token_budgets_upsample_by_repetition(corpus, tokenizer, tmp_path, per_source_windows):
    web_rows, code_rows = per_source_windows["web"], per_source_windows["code"]
    nw, nc = len(web_rows) // 2, 2 * len(code_rows) + 3  # subsample web, repeat code 2x plus 3
    w = SEQ + 1
    m = build_token_stream(
        [SourceSpec(corpus["web"], tokens=nw * w), SourceSpec(corpus["code"], tokens=nc * w)],
        str(tmp_path),
        tokenizer,
        seq_len=SEQ,
        seed=1,
    )
    rows = _rows(str(tmp_path))
    counts = _row_counter(rows)
    code_counts = collections.Counter(counts[r.tobytes()] for r in code_rows)
    assert code_counts == {2: len(code_rows) - 3, 3: 3}  # every window twice, three of them a third time
    assert sum(counts[r.tobytes()] for r in web_rows) == nw and max(counts[r.tobytes()] for r in web_rows) == 1
    src = {s["name"]: s for s in m["mix"]["sources"]}
    assert src["code"]["repetitions"] == nc - len(code_rows) and src["code"]["full_copies"] == 2
    assert src["web"]["subsampled_out"] == len(web_rows) - nw and src["web"]["requested_tokens"] == nw * w
    assert m["mix"]["mode"] == "tokens"


def test_weights_without_total_use_the_scarcest_source_once(
    corpus, tokenizer, tmp_path, per_source_windows
):
    nw, nc = len(per_source_windows["web"]), len(per_source_windows["code"])
    m = build_token_stream({corpus["web"]: 1.0, corpus["code"]: 1.0}, str(tmp_path), tokenizer, seq_len=SEQ, seed=2)
    src = {s["name"]: s for s in m["mix"]["sources"]}
    assert src["code"]["windows"] == min(nw, nc) == nc and src["web"]["windows"] == nc
    assert all(s["repetitions"] == 0 for s in src.values())


def test_errors_are_clear(corpus, tokenizer, tmp_path):
    out = str(tmp_path / "o")
    first = build_token_stream([corpus["code"]], out, tokenizer, seq_len=SEQ)
    stamp = os.stat(os.path.join(out, "manifest.json")).st_mtime_ns
    # the same stream again: returned as it is, nothing rewritten; another stream in its place needs overwrite
    assert build_token_stream([corpus["code"]], out, tokenizer, seq_len=SEQ) == first
    assert os.stat(os.path.join(out, "manifest.json")).st_mtime_ns == stamp
    with pytest.raises(FileExistsError):
        build_token_stream([corpus["code"]], out, tokenizer, seq_len=SEQ, seed=5)
    m = build_token_stream([corpus["code"]], out, tokenizer, seq_len=SEQ, overwrite=True, num_shards=1)
    assert sorted(f for f in os.listdir(out) if f.endswith(".arrow")) == [f["name"] for f in m["files"]]
    with pytest.raises(FileNotFoundError):
        build_token_stream([str(tmp_path / "missing")], str(tmp_path / "x"), tokenizer)
    with pytest.raises(ValueError, match="every source or to none"):
        build_token_stream([(corpus["web"], 1.0), (corpus["code"], None)], str(tmp_path / "y"), tokenizer)
    with pytest.raises(ValueError, match="holds no full window"):
        build_token_stream([(corpus["web"], 1.0)], str(tmp_path / "z"), tokenizer, seq_len=10**6)
    assert json.load(open(os.path.join(out, "manifest.json")))["num_windows"] == m["num_windows"]


def test_unreadable_shards_are_skipped_and_reported(corpus, tokenizer, tmp_path):
    import shutil

    import pyarrow as pa

    from curation.storage import write_parquet_atomic

    run = tmp_path / "run"
    shutil.copytree(corpus["code"], run)
    (run / "data" / "00002.parquet").write_bytes(b"PAR1 not really parquet")
    write_parquet_atomic(str(run / "data" / "00003.parquet"), pa.table({"id": ["x"], "body": ["no text column"]}))
    m = build_token_stream([str(run)], str(tmp_path / "o"), tokenizer, seq_len=SEQ)
    src = m["mix"]["sources"][0]
    assert m["skipped_shards"] == 2 and len(src["input_shards"]) == 2
    errors = {os.path.basename(s["file"]): s["error"] for s in src["skipped_shards"]}
    assert set(errors) == {"00002.parquet", "00003.parquet"} and "text" in errors["00003.parquet"]
    clean = build_token_stream([corpus["code"]], str(tmp_path / "c"), tokenizer, seq_len=SEQ)
    assert m["num_windows"] == clean["num_windows"]  # the good shards are all there
    with pytest.raises(RuntimeError, match=r"0000[23]\.parquet"):
        build_token_stream([str(run)], str(tmp_path / "r"), tokenizer, seq_len=SEQ, on_error="raise")


REAL = os.path.join(os.path.dirname(os.path.abspath(__file__)), *[".."] * 3, "..", "shared", "data", "corpora")


def test_real_documents_come_back_verbatim(tokenizer, tmp_path):
    """Real C4/RedPajama text (unicode, code, LaTeX) survives tokenise -> pack -> detokenise byte for byte."""
    import glob
    import gzip

    from curation.schema import docs_table
    from curation.storage import write_parquet_atomic

    files = sorted(glob.glob(os.path.join(REAL, "c4", "*.json.gz"))) + sorted(
        glob.glob(os.path.join(REAL, "redpajama", "data_mixture__*.jsonl"))
    )
    if not files:
        pytest.skip("shared real data not available")
    texts = []
    for f in files:
        with gzip.open(f, "rt") if f.endswith(".gz") else open(f) as fh:
            texts += [json.loads(line)["text"] for line in fh if line.strip()]
    texts = [t for t in texts if t]
    write_parquet_atomic(str(tmp_path / "run" / "data" / "00000.parquet"), docs_table(
        [str(i) for i in range(len(texts))], texts, "real"))  # fmt: skip
    out = str(tmp_path / "o")
    m = build_token_stream([str(tmp_path / "run")], out, tokenizer, seq_len=255, shuffle=False, remainder="pack")
    sp = spm.SentencePieceProcessor(model_file=tokenizer)
    flat = _rows(out).reshape(-1).tolist()
    cuts = [i for i, t in enumerate(flat) if t == m["eos_id"]]
    docs = [sp.decode(flat[a + 1 : b]) for a, b in zip([-1, *cuts], cuts)]
    assert len(docs) >= len(texts) - 1 and docs == texts[: len(docs)]
    assert m["recipe_hashes"] == [None]  # no run.json: recorded as null


def test_tokens_are_counted_per_corpus_source(tokenizer, tmp_path):
    """A run mixing corpus sources (the documents' ``source`` column) reports document tokens per source."""
    import random

    from curation.schema import docs_table
    from curation.storage import write_parquet_atomic
    from tests.curation.tokens.conftest import make_docs

    rng = random.Random(3)
    texts = make_docs(rng, 80)
    sources = [rng.choice(["refinedweb", "pile", "arxiv"]) for _ in texts]
    write_parquet_atomic(
        str(tmp_path / "run" / "data" / "a.parquet"), docs_table([str(i) for i in range(80)], texts, sources)
    )
    m = build_token_stream([str(tmp_path / "run")], str(tmp_path / "o"), tokenizer, seq_len=SEQ)
    sp = spm.SentencePieceProcessor(model_file=tokenizer)
    expected: dict[str, list[int]] = {}
    for t, s in zip(texts, sources):
        e = expected.setdefault(s, [0, 0])
        e[0] += 1
        e[1] += len(sp.encode(t)) + 1
    got = m["doc_tokens_by_corpus_source"]
    assert got == {s: {"docs": d, "doc_tokens": n} for s, (d, n) in sorted(expected.items())}
    est = m["stream_tokens_by_corpus_source_est"]
    assert abs(sum(est.values()) - m["num_tokens"]) <= len(est)  # the estimate splits the stream's tokens


def test_bucket_count_follows_the_memory_bound(unshuffled, corpus, tokenizer, tmp_path):
    plain_out, plain = unshuffled
    wbytes = (SEQ + 1) * 2
    m = build_token_stream(
        [corpus["web"]], str(tmp_path), tokenizer, seq_len=SEQ, seed=8, remainder="drop", max_shard_bytes=10 * wbytes
    )
    n = plain["num_windows"]
    assert m["num_buckets"] == len(m["files"]) == -(-n // 10)  # ceil(total bytes / bound)
    assert _row_counter(_rows(str(tmp_path))) == _row_counter(_rows(plain_out))


def test_leftovers_of_an_interrupted_build_are_removed(corpus, tokenizer, tmp_path, monkeypatch):
    out = tmp_path / "o"
    out.mkdir()
    (out / "tokens-00007-of-00009.arrow").write_bytes(b"half a file")
    (out / "tokens-00000-of-00001.arrow.tmp-1234abcd").write_bytes(b"tmp")
    (out / "notes.txt").write_text("the user's")
    monkeypatch.chdir(tmp_path)
    m = build_token_stream([corpus["code"]], "o", tokenizer, seq_len=SEQ, num_shards=1)  # a relative out_dir
    assert sorted(os.listdir(out)) == sorted(["notes.txt", "manifest.json", "build.json", "tokenizer.model"]
                                             + [f["name"] for f in m["files"]])  # fmt: skip


def _passes(out: str) -> dict[str, dict]:
    return {p["pass"]: p for p in json.load(open(os.path.join(out, "build.json")))["passes"]}


def test_an_interrupted_build_resumes_from_its_pass_markers(corpus, tokenizer, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(corpus["web"], run)
    out = str(tmp_path / "o")
    kw = dict(seq_len=SEQ, seed=2, num_shards=2)
    clean = build_token_stream([str(run)], out, tokenizer, keep_work=True, **kw)
    blobs = {f["name"]: open(os.path.join(out, f["name"]), "rb").read() for f in clean["files"]}
    for name in ("build.json", "manifest.json"):  # work kept, no manifest: as after a crash
        os.remove(os.path.join(out, name))
    os.remove(os.path.join(out, blobs_first := sorted(blobs)[0]))  # one stream file never written
    again = build_token_stream([str(run)], out, tokenizer, overwrite=True, keep_work=True, **kw)
    assert json.load(open(os.path.join(out, "build.json")))["reused_packed_shards"] == 3
    p = _passes(out)
    assert (p["tokenize"]["ran"], p["tokenize"]["skipped"]) == (0, 3)
    assert (p["scatter"]["ran"], p["scatter"]["skipped"]) == (0, 4)  # 3 shards + the tails
    assert (p["shuffle"]["ran"], p["shuffle"]["skipped"]) == (1, 1)  # only the missing stream file
    assert again == clean and all(open(os.path.join(out, n), "rb").read() == b for n, b in blobs.items())
    assert blobs_first in blobs
    # a changed input shard is packed again; the others are reused; everything downstream follows
    os.utime(run / "data" / "00001.parquet", ns=(1, 1))
    build_token_stream([str(run)], out, tokenizer, overwrite=True, **kw)
    p = _passes(out)
    assert (p["tokenize"]["ran"], p["tokenize"]["skipped"]) == (1, 2)
    assert p["scatter"]["ran"] == 4 and p["shuffle"]["ran"] == 2
    assert not os.path.exists(os.path.join(out, "_work"))  # removed after a successful build
    build_json = open(os.path.join(out, "build.json")).read()
    build_token_stream([str(run)], out, tokenizer, overwrite=True, **kw)  # finished: nothing to do
    assert open(os.path.join(out, "build.json")).read() == build_json
    # resume=False recomputes what a kept _work holds
    build_token_stream([str(run)], out, tokenizer, overwrite=True, keep_work=True, **kw)
    build_token_stream([str(run)], out, tokenizer, overwrite=True, resume=False, **kw)
    assert _passes(out)["tokenize"]["ran"] == 3


def test_content_digest_names_the_windows_not_the_folder_or_the_bookkeeping(corpus, tokenizer, tmp_path):
    """A trial or checkpoint resumes on a stream with the same windows (curation.tokens.manifest.stream_identity):
    the digest is the windows' bytes file by file, so a rebuild into another folder (other paths in the manifest)
    keeps it, another shuffle seed changes it, and each file's digest is the sha256 of the windows it holds."""
    import hashlib

    from curation.tokens.manifest import stream_identity

    a = build_token_stream([corpus["web"], corpus["code"]], str(tmp_path / "a"), tokenizer, seq_len=SEQ, seed=3,
                           num_shards=2)
    b = build_token_stream([corpus["web"], corpus["code"]], str(tmp_path / "b"), tokenizer, seq_len=SEQ, seed=3,
                           num_shards=2)
    c = build_token_stream([corpus["web"], corpus["code"]], str(tmp_path / "c"), tokenizer, seq_len=SEQ, seed=4,
                           num_shards=2)
    assert (tmp_path / "a" / "manifest.json").read_bytes() != (tmp_path / "b" / "manifest.json").read_bytes()
    assert a["content_sha256"] == b["content_sha256"] != c["content_sha256"]
    assert len(a["content_sha256"]) == 64
    ts = TokenStream(str(tmp_path / "a"))
    assert [f["sha256"] for f in a["files"]] == [hashlib.sha256(ch.tobytes()).hexdigest() for ch in ts.chunks]
    assert stream_identity(tmp_path / "a") == stream_identity(tmp_path / "b") == a["content_sha256"]
    # an unshuffled stream has digests too; one without them (built before digests) is named by its manifest
    plain = build_token_stream([corpus["web"]], str(tmp_path / "p"), tokenizer, seq_len=SEQ, shuffle=False)
    assert plain["content_sha256"] and all(f["sha256"] for f in plain["files"])
    old = {k: v for k, v in plain.items() if k != "content_sha256"}
    (tmp_path / "p" / "manifest.json").write_text(json.dumps(old))
    assert stream_identity(tmp_path / "p") == "manifest:" + hashlib.sha256(
        (tmp_path / "p" / "manifest.json").read_bytes()).hexdigest()
