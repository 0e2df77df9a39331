"""Decontamination: planted eval text is removed, nothing else is; n-gram boundaries; flag mode."""

from __future__ import annotations

import gzip
import io
import json
import pickle
from pathlib import Path

import pytest

from curation.schema import docs_table
from curation.stage import Filter, Mapper, recipe_hash
from filters.decontam import REASON, Decontaminate, eval_texts

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
EVAL_DIR = SHARED / "eval"


def _words(k: int, tag: str) -> str:
    return " ".join(f"{tag}{i}" for i in range(k))


@pytest.fixture()
def tiny_eval(tmp_path: Path) -> Path:
    d = tmp_path / "eval" / "world_knowledge"
    d.mkdir(parents=True)
    rows = [
        {"query": "Question: " + _words(20, "q"), "choices": ["alpha", "beta"], "gold": 0},
        {"query": "Question: short one here", "choices": ["x", "y"], "gold": 1},
    ]
    (d / "mcq.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    lm = [
        {"context": _words(9, "s"), "continuation": "zz"},  # 10 words with the answer: indexed whole
        {"context": "tiny", "continuation": "ctx"},  # 2 words: below min_ngram, never indexed
    ]
    (d / "lmtask.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lm))
    return tmp_path / "eval"


def test_ngram_boundary_exactly_n_words(tiny_eval):
    stage = Decontaminate(tiny_eval, n=13)
    q = _words(20, "q").split()
    docs = [
        "intro text " + " ".join(q[3:16]) + " outro",  # 13 consecutive question words -> drop
        "intro text " + " ".join(q[3:15]) + " outro",  # only 12 -> keep
        "intro " + " ".join(q[0:6]) + " and " + " ".join(q[6:13]),  # broken by a foreign word -> keep
        "IN CAPS, with punctuation: " + ", ".join(w.upper() for w in q[5:18]) + "!",  # normalised -> drop
    ]
    res = stage(docs_table([f"d{i}" for i in range(4)], docs, "web"))
    assert sorted(res.dropped.column("id").to_pylist()) == ["d0", "d3"]
    assert set(res.dropped.column("reason").to_pylist()) == {REASON}


def test_short_items_matched_whole_only_above_min_ngram(tiny_eval):
    stage = Decontaminate(tiny_eval, n=13, min_ngram=8)
    docs = [
        "prefix " + _words(9, "s") + " zz suffix",  # the whole 10-word item (context + answer)
        "prefix " + _words(9, "s") + " suffix",  # the 9-word context alone is an item too
        "prefix " + _words(8, "s") + " suffix",  # 8 of its words: not the whole item
        "this is tiny ctx indeed",  # 2-word item: not indexed
    ]
    res = stage(docs_table([f"d{i}" for i in range(4)], docs, "web"))
    assert sorted(res.dropped.column("id").to_pylist()) == ["d0", "d1"]


def test_flag_mode_keeps_rows_and_names_task(tiny_eval):
    stage = Decontaminate(tiny_eval, mode="flag")
    assert isinstance(stage, Mapper) and isinstance(Decontaminate(tiny_eval), Filter)
    docs = ["clean text about nothing", "x " + _words(20, "q") + " alpha"]
    res = stage(docs_table(["a", "b"], docs, "web"))
    assert res.kept.num_rows == 2 and res.dropped.num_rows == 0
    assert res.kept.column("decontam_task").to_pylist() == [None, "mcq"]
    counts = res.kept.column("decontam_ngrams").to_pylist()
    assert counts[0] == 0 and counts[1] >= 8  # 20 + "question" + "alpha" words -> many 13-grams


def test_config_hash_pickle_and_bad_args(tiny_eval):
    a = Decontaminate(tiny_eval)
    a.setup()
    b = pickle.loads(pickle.dumps(a))  # ships without the built index, rebuilds it
    assert b._index is None
    assert recipe_hash([a]) == recipe_hash([b])
    assert recipe_hash([a]) != recipe_hash([Decontaminate(tiny_eval, n=8)])
    f = tiny_eval / "world_knowledge" / "lmtask.jsonl"
    f.write_text(f.read_text() + json.dumps({"context": _words(30, "new"), "continuation": "w"}) + "\n")
    assert recipe_hash([a]) != recipe_hash([Decontaminate(tiny_eval)])  # eval content is in the hash
    with pytest.raises(ValueError):
        Decontaminate(tiny_eval, mode="maybe")
    with pytest.raises(FileNotFoundError):
        Decontaminate(tiny_eval, tasks=["nope"])
    with pytest.raises(FileNotFoundError):
        Decontaminate(tiny_eval / "missing")


def _real_docs() -> list[str]:
    texts: list[str] = []
    for p in sorted((SHARED / "corpora" / "c4").glob("*.json.gz")):
        with gzip.open(p, "rt", encoding="utf-8") as f:
            texts += [json.loads(line)["text"] for line in f]
    for p in sorted((SHARED / "corpora" / "redpajama").glob("*.jsonl")):
        with open(p, encoding="utf-8") as f:
            texts += [json.loads(line)["text"] for line in f]
    p = SHARED / "corpora" / "pile" / "00.jsonl.zst"
    if p.exists():
        import zstandard

        with open(p, "rb") as fh:
            stream = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(fh), encoding="utf-8")
            texts += [json.loads(line)["text"] for line in stream if line.strip()]
    return [t for t in texts if len(t.split()) >= 30]


@pytest.mark.skipif(not (EVAL_DIR.exists() and (SHARED / "corpora").exists()), reason="shared data absent")
def test_planted_eval_questions_removed_and_nothing_else():
    texts = _real_docs()
    assert len(texts) >= 60
    tasks = ["arc_easy", "piqa", "lambada_openai", "winogrande", "boolq", "jeopardy_all"]
    stage = Decontaminate(EVAL_DIR, tasks=tasks)
    rows = {}
    for name in tasks:
        path = next(EVAL_DIR.rglob(f"{name}.jsonl"))
        with open(path) as f:
            lines = f.readlines()
        rows[name] = [json.loads(lines[i]) for i in (7, len(lines) // 2)]
    planted = {}
    k = 0
    for name, exs in rows.items():
        for ex in exs:
            # the longest indexed string of the example, re-cased and re-punctuated
            item = max(eval_texts(ex), key=lambda s: len(s.split()))
            if len(item.split()) < 8:
                continue
            i = k * (len(texts) // 13)  # distinct documents
            words = texts[i].split()
            mid = len(words) // 2
            texts[i] = " ".join(words[:mid]) + "\n\n" + item.upper().replace(" ", "  ") + "\n\n" + " ".join(words[mid:])
            planted[f"doc{i}"] = name
            k += 1
    assert len(planted) >= 10
    table = docs_table([f"doc{i}" for i in range(len(texts))], texts, "real")
    res = stage(table)
    assert sorted(res.dropped.column("id").to_pylist()) == sorted(planted)
    assert res.kept.num_rows == len(texts) - len(planted)
    flag = Decontaminate(EVAL_DIR, tasks=tasks, mode="flag")(table).kept
    got = {i: t for i, t in zip(flag.column("id").to_pylist(), flag.column("decontam_task").to_pylist()) if t}
    assert got == planted
