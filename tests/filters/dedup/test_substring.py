"""Exact-substring dedup: the suffix-array rule against a brute-force reference, the distributed passes against
the suffix array over the whole corpus (any shards, partitions, hot-group splits, workers), cuts on word
boundaries, drop reasons, accounting, resume at the item and the budget."""

from __future__ import annotations

import random
import re

import numpy as np
import pyarrow as pa
import pytest

from curation.stage import ShardContext
from filters.dedup import SubstringConfig, SubstringDecisions, SubstringDedup
from filters.dedup.substring_core import (
    REASON_EMPTY,
    REASON_SHORT,
    anchors,
    kgram_hashes,
    reference_dedup,
    tokenize,
    whitespace_mask,
)

from .conftest import apply_stage, docs, local_ctx, pass_counts, ray_ctx, removal_bytes, write_shards

# --------------------------------------------------------------------------- a brute-force reference


def _spans(text: str, unit: str) -> list[tuple[bytes, int, int]]:
    data = text.encode()
    if unit == "byte":
        return [(data[i : i + 1], i, i + 1) for i in range(len(data))]
    out = []
    for m in re.finditer(r"\S+", text):
        s = len(text[: m.start()].encode())
        e = s + len(m.group().encode())
        out.append((data[s:e], s, e))
    return out


def brute_force(texts: list[str], min_len: int, unit: str = "word", keep: str = "first",
                min_words_after: int = 0) -> list[tuple[str | None, bytes]]:
    """Every window in a dict, position by position; covered words cut as the documented rule says."""
    toks = [_spans(t, unit) for t in texts]
    first: dict[tuple, tuple[int, int]] = {}
    count: dict[tuple, int] = {}
    for d, ts in enumerate(toks):
        for i in range(len(ts) - min_len + 1):
            key = tuple(x[0] for x in ts[i : i + min_len])
            count[key] = count.get(key, 0) + 1
            first.setdefault(key, (d, i))
    out = []
    for d, (text, ts) in enumerate(zip(texts, toks)):
        data = text.encode()
        cov = [False] * len(ts)
        for i in range(len(ts) - min_len + 1):
            key = tuple(x[0] for x in ts[i : i + min_len])
            if (first[key] != (d, i)) if keep == "first" else count[key] >= 2:
                cov[i : i + min_len] = [True] * min_len
        words = [(s, e) for _, s, e in _spans(text, "word")]
        wcov = cov if unit == "word" else [all(cov[s:e]) for s, e in words]
        ranges, removed, i, n = [], 0, 0, len(words)
        while i < n:
            if not wcov[i]:
                i += 1
                continue
            j = i
            while j < n and wcov[j]:
                j += 1
            removed += j - i
            if j == n:
                ranges.append((words[i - 1][1] if i else 0, len(data)))
            else:
                ranges.append((words[i][0] if i else 0, words[j][0]))
            i = j
        kept = b"".join(data[a:b] for a, b in zip([0] + [r[1] for r in ranges], [r[0] for r in ranges] + [len(data)]))
        reason = None
        if ranges:
            reason = REASON_EMPTY if n == removed else REASON_SHORT if n - removed < min_words_after else None
        out.append((reason, kept))
    return out


VOCAB = ["a", "b", "c", "dé", "ee", "f\u00a0g", "h", "文字", "ok."]
SEPS = [" ", "  ", "\n", "\t", " \u3000 ", "\u2028"]


def random_corpus(rng: random.Random, n_docs: int, max_words: int) -> list[str]:
    out = []
    for _ in range(n_docs):
        vocab = VOCAB[: rng.randint(2, len(VOCAB))]  # small vocabularies: many overlapping repeats
        words = [rng.choice(vocab) for _ in range(rng.randint(0, max_words))]
        out.append("".join(rng.choice(SEPS) + w for w in words) + rng.choice(["", " ", "\n"]))
    return out


def planted_corpus(rng: random.Random, n_docs: int, n_passages: int = 6, passage_words: tuple = (8, 20),
                   vocab_size: int = 60) -> list[str]:
    """Documents of random words with passages planted inside, at the ends, twice in one document, overlapping."""
    vocab = [f"w{i}" for i in range(vocab_size)] + ["é", "文字", "x\u00a0y", "ok."]
    passages = [" ".join(rng.choice(vocab) for _ in range(rng.randint(*passage_words))) for _ in range(n_passages)]
    texts = []
    for _ in range(n_docs):
        parts = []
        for _ in range(rng.randint(1, 6)):
            r = rng.random()
            if r < 0.3:
                parts.append(rng.choice(passages))
            elif r < 0.38:  # a passage overlapping itself: its second half then the whole
                p = rng.choice(passages).split(" ")
                parts.append(" ".join(p[len(p) // 2 :] + p))
            else:
                parts.append(" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 15))))
        texts.append(rng.choice(["\n", " ", "  "]).join(parts))
    return texts


# --------------------------------------------------------------------------- the suffix-array rule


def test_whitespace_is_str_isspace():
    chars = [chr(c) for c in range(0x3100) if chr(c).isspace()] + ["\u205f", "\u3000"]
    others = ["a", "é", "\u00a1", "\u2030", "\u3001", "文", "\U0001f600", "\u1681", "\u200b"]
    text = "".join(c + o for c, o in zip(chars, others * 10))
    raw = np.frombuffer(text.encode(), np.uint8)
    expect = np.concatenate([np.full(len(ch.encode()), ch.isspace()) for ch in text])
    assert np.array_equal(whitespace_mask(raw), expect)


@pytest.mark.parametrize("unit", ["word", "byte"])
@pytest.mark.parametrize("keep", ["first", "none"])
def test_suffix_array_rule_equals_brute_force(unit, keep):
    rng = random.Random(f"{unit}{keep}")
    for _ in range(150):
        texts = random_corpus(rng, rng.randint(1, 6), 30)
        min_len = rng.randint(1, 6) if unit == "word" else rng.randint(1, 14)
        assert reference_dedup(texts, min_len, unit, keep, 3) == brute_force(texts, min_len, unit, keep, 3), texts


def test_planted_cases():
    p = "one two three four five six"
    # inside one document, across documents, overlapping (periodic), at the end, Unicode
    texts = [f"start {p} middle {p} end", f"x {p}", "ab ab ab ab ab ab ab", f"other words {p}",
             "é 文字 α\u00a0β γ δ\u3000ε", "é 文字 α\u00a0β γ δ\u3000ε tail"]
    out = reference_dedup(texts, 6, "word", "first")
    assert out[0] == (None, f"start {p} middle end".encode())  # the second copy in the same document goes
    assert out[1] == (None, b"x")  # at the end: the whitespace before it goes too
    assert out[2] == (None, b"ab")  # the window at 1 repeats the one at 0 (they overlap): tokens 1-6 go
    assert out[3] == (None, b"other words")
    assert out[4] == (None, "é 文字 α\u00a0β γ δ\u3000ε".encode())
    assert out[5] == (None, b"tail")  # at the start: leading tokens and their whitespace
    none = reference_dedup(texts, 6, "word", "none")
    assert none[0] == (None, b"start middle end")  # every occurrence goes
    assert none[1][1] == b"x"
    assert none[2] == (REASON_EMPTY, b"") and none[4] == (REASON_EMPTY, b"") and none[5] == (None, b"tail")


def test_byte_mode_cuts_only_whole_words():
    texts = ["prefix sharedpassage of bytes here suffix", "zz xharedpassage of bytes herx"]
    out = reference_dedup(texts, 12, "byte", "first")
    # the repeated bytes "haredpassage of bytes her" hold only "of" and "bytes" whole in the second text
    assert out[1] == (None, b"zz xharedpassage herx")
    assert out[0] == (None, texts[0].encode())
    multi = ["αβγδ εζηθ ικλμ", "xαβγδ εζηθ ικλμ"]  # 2-byte characters: no cut inside one
    res = reference_dedup(multi, 5, "byte", "first")
    assert res[1] == (None, "xαβγδ".encode())
    res[1][1].decode("utf-8")


def test_drop_reasons():
    p = " ".join(f"w{i}" for i in range(10))
    texts = [p + " a b c", p, "a b " + p]
    out = reference_dedup(texts, 5, "word", "first", min_words_after=3)
    assert out[1] == (REASON_EMPTY, b"")
    assert out[2][0] == REASON_SHORT and out[2][1] == b"a b"
    assert out[0] == (None, texts[0].encode())


def test_minimizers_are_shared_by_every_occurrence():
    """Each window of L tokens has one minimizer; every occurrence of the window selects it at the same offset."""
    rng = random.Random(3)
    texts = planted_corpus(rng, 40)
    tok = tokenize(pa.array(texts, pa.large_string()), "word")
    L, k = 7, 3
    k_off, h = kgram_hashes(tok.ids, tok.doc_off, k, L)
    d, t = anchors(h, k_off, L - k + 1)
    chosen = set(zip(d.tolist(), t.tolist()))
    by_window: dict[tuple, set] = {}
    for doc in range(len(texts)):
        a, b = tok.doc_off[doc], tok.doc_off[doc + 1]
        ids = tok.ids[a:b].tolist()
        for i in range(len(ids) - L + 1):
            offs = {j for j in range(L - k + 1) if (doc, i + j) in chosen}
            assert offs, "every window holds an anchor"
            by_window.setdefault(tuple(ids[i : i + L]), set()).add(frozenset(offs))
    shared = [w for w, sets in by_window.items() if len(sets) > 1]
    for w in shared:  # the occurrences' anchor sets may differ, but they always intersect
        assert frozenset.intersection(*by_window[w])
    density = len(chosen) / sum(max(0, len(tok.ids[tok.doc_off[i]:tok.doc_off[i + 1]]) - k + 1)
                                for i in range(len(texts)))
    assert 0.2 < density < 0.5  # about 2 / (w + 1) = 0.33


# --------------------------------------------------------------------------- the distributed stage


def _ids(tables: list[pa.Table]) -> list[str]:
    return [i for t in tables for i in t.column("id").to_pylist()]


def _run(tmp_path, texts: list[str], n_shards: int, ctx_fn=local_ctx, name: str = "run", **kwargs):
    per = -(-len(texts) // n_shards)
    tables = [docs(texts[i : i + per], prefix=f"d{i:05d}-") for i in range(0, len(texts), per)]
    folder = tmp_path / name
    folder.mkdir()
    shards = write_shards(folder, tables)
    stage = SubstringDedup(**kwargs)
    ctx = ctx_fn(shards, folder / "wd")
    state = stage.fit(ctx)
    stage.load_state(state)
    return stage, state, shards, _ids(tables), ctx


def _expected(texts, ids, ref):
    return {i: ((None, r) if r else (b.decode(), None)) for i, (r, b) in zip(ids, ref)}


# many partitions and verify items, hot anchor groups cut into chunk pairs (for min_len 6: 16 contexts per item)
SMALL = dict(anchors_per_partition=40, verify_tokens_per_item=150, min_partitions=3)


@pytest.mark.parametrize("unit,min_len", [("word", 6), ("byte", 24)])
@pytest.mark.parametrize("keep", ["first", "none"])
def test_distributed_equals_suffix_array_over_the_corpus(tmp_path, unit, min_len, keep):
    texts = planted_corpus(random.Random(f"{unit}{keep}"), 80)
    ref = reference_dedup(texts, min_len, unit, keep, 5)
    assert ref == brute_force(texts, min_len, unit, keep, 5)
    cfg = dict(min_len=min_len, unit=unit, keep=keep, min_words_after=5)
    small = dict(SMALL, verify_tokens_per_item=16 * (2 * min_len - min_len // 2))
    outs = []
    for name, n_shards, extra in (("one", 1, {}), ("many", 5, small)):
        stage, state, shards, ids, _ = _run(tmp_path, texts, n_shards, name=name, **cfg, **extra)
        got = apply_stage(stage, shards, batch_rows=7)
        assert got == _expected(texts, ids, ref)
        outs.append(state.summary)
    one, many = outs
    assert many["hot_groups"] > 0 and many["verify_items"] > 10 * one["verify_items"]  # the splits were exercised
    for k in ("documents_cut", "documents_removed", "bytes_removed"):
        assert one[k] == many[k], k
    assert one["documents_cut"] > 10 and one["documents_removed"] > 0


@pytest.mark.slow
def test_smallest_items_still_exact(tmp_path):
    """Items of four contexts: ~1,400 verify items over 80 documents, most of them chunk pairs of hot groups."""
    texts = planted_corpus(random.Random("wordfirst"), 80)
    ref = reference_dedup(texts, 6, "word", "first", 5)
    stage, state, shards, ids, _ = _run(tmp_path, texts, 5, min_len=6, min_words_after=5,
                                        **dict(SMALL, verify_tokens_per_item=36))
    assert state.summary["verify_items"] > 1000
    assert apply_stage(stage, shards) == _expected(texts, ids, ref)


def test_decisions_byte_identical_across_partitions_and_workers(tmp_path, ray_session):
    texts = planted_corpus(random.Random(7), 120)
    cfg = dict(min_len=6, min_words_after=5)
    runs = {
        "local": _run(tmp_path, texts, 4, name="local", **cfg),
        "split": _run(tmp_path, texts, 4, name="split", **cfg, **SMALL),
        "ray": _run(tmp_path, texts, 4, ctx_fn=ray_ctx, name="ray", **cfg),
    }
    files = {k: removal_bytes(v[1]) for k, v in runs.items()}
    assert files["local"] == files["split"] == files["ray"]
    assert runs["local"][1].summary["documents_cut"] > 0


def test_summary_accounting_and_process_batches(tmp_path):
    texts = planted_corpus(random.Random(11), 60)
    stage, state, shards, ids, _ = _run(tmp_path, texts, 3, min_len=6, min_words_after=5)
    s = state.summary
    before = {i: t.encode() for i, t in zip(ids, texts)}
    got = apply_stage(stage, shards, batch_rows=5)
    removed = sum(len(before[i]) - len(t.encode()) for i, (t, r) in got.items() if r is None)
    removed += sum(len(before[i]) for i, (t, r) in got.items() if r is not None)
    assert removed == s["bytes_removed"] == sum(v["bytes"] for v in s["removed_by_source"].values())
    assert s["documents_removed"] == sum(r is not None for _, r in got.values())
    assert s["documents_cut"] == sum(r is None and got[i][0] != texts[ids.index(i)] for i, (_, r) in got.items())
    assert s["documents_in"] == len(texts) and 0 < s["fraction_bytes_removed"] < 1
    assert s["anchor_density"] == pytest.approx(2 / (6 - 3 + 2), rel=0.35)
    # rows not in a shard's decisions pass untouched; a shard without a decision file too
    res = stage.process(docs(["never seen"], prefix="zz"), ShardContext("nope", "in"))
    assert res.kept.num_rows == 1 and res.dropped.num_rows == 0


def _forget(marker_dir, key: str) -> None:
    """Drop one item's completion marker (through the executor's own call where it gathers markers in batches)."""
    try:
        from curation.passes import forget
    except ImportError:  # one marker file per item
        (marker_dir / f"{key}.json").unlink()
        return
    forget(str(marker_dir), [key])


def test_resume_at_the_item(tmp_path):
    texts = planted_corpus(random.Random(5), 60)
    stage, state, shards, ids, ctx = _run(tmp_path, texts, 3, min_len=6, min_words_after=5, **SMALL)
    clean = removal_bytes(state)
    wd = tmp_path / "run" / "wd"
    n_verify = state.summary["verify_items"]
    # lose one verify item (marker and output) and one decide item: only they run again
    _forget(wd / "_passes" / "verify", "r00001")
    for f in (wd / "substring" / "marks").rglob("r00001.npz"):
        f.unlink()
    _forget(wd / "_passes" / "decide", shards[1].shard_id)
    ctx2 = local_ctx(shards, wd)
    state2 = SubstringDedup(min_len=6, min_words_after=5, **SMALL).fit(ctx2)
    counts = pass_counts(ctx2)
    assert counts["verify"] == (1, n_verify - 1)
    assert counts["anchors"] == (0, 3) and counts["contexts"] == (0, 3)
    assert counts["decide"][0] >= 1
    assert removal_bytes(state2) == clean
    assert state2.summary == state.summary


def test_budget_is_refused_before_work(tmp_path):
    stage = SubstringDedup(min_len=50, verify_tokens_per_item=10**9)
    with pytest.raises(ValueError, match="verify_tokens_per_item"):
        stage.check_budget(2 << 30)
    with pytest.raises(ValueError, match="verify_tokens_per_item"):
        SubstringDedup(min_len=50, verify_tokens_per_item=100).check_budget(2 << 30)
    with pytest.raises(ValueError, match="anchors_per_partition"):
        SubstringDedup(anchors_per_partition=10**9).check_budget(2 << 30)
    with pytest.raises(ValueError, match="memory-per-worker"):
        SubstringDedup().check_budget(300 << 20)
    with pytest.raises(ValueError, match="keep"):
        SubstringConfig(keep="last")
    with pytest.raises(ValueError, match="anchor_len"):
        SubstringConfig(min_len=10, anchor_len=11)
    assert SubstringConfig(unit="byte").min_len == 200 and SubstringConfig().min_len == 50
    assert SubstringConfig().anchor_len == 25


def test_state_round_trips(tmp_path):
    texts = planted_corpus(random.Random(2), 20)
    stage, state, shards, ids, _ = _run(tmp_path, texts, 2, min_len=6, min_words_after=5)
    other = SubstringDedup(min_len=6, min_words_after=5)
    other.load_state(state.to_json())
    assert isinstance(other.state, SubstringDecisions)
    assert apply_stage(other, shards) == apply_stage(stage, shards)


def test_real_documents_against_the_suffix_array(tmp_path):
    """Real web text (../shared/data) with its own repeats (boilerplate, quoted passages), 30-word windows."""
    from .conftest import real_documents

    texts = [t[:6000] for t in real_documents()[:400]]
    ref = reference_dedup(texts, 30, "word", "first", 50)
    stage, state, shards, ids, _ = _run(tmp_path, texts, 4, min_len=30)
    assert apply_stage(stage, shards) == _expected(texts, ids, ref)
    assert state.summary["documents_cut"] + state.summary["documents_removed"] > 0

