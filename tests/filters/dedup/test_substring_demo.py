"""Exact-substring dedup in the baseline recipe: the flags reach the stage, and on the demo pool
``pipelines/baseline.py --dedup exact,minhash,bff,substring`` removes the planted repeated passages
(recall >= 0.99) and nothing outside them but text that a near duplicate MinHash left shares with
another copy of its original (a real repeat too, documented by the pool's truth)."""

from __future__ import annotations

import json
import os
import sys

import pyarrow.parquet as pq
import pytest

from curation.stage import recipe_hash
from filters.dedup import SubstringDedup
from pipelines.recipes import DEDUP_METHODS, RecipeOptions, baseline_recipe

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "pipelines"))

import baseline  # noqa: E402


def test_flags_reach_the_stage(tmp_path):
    flags = ["-o", str(tmp_path), "--blocks", "dedup", "--dedup", "exact,substring", "--substring-min-len", "40",
             "--substring-unit", "byte", "--substring-keep", "none", "--substring-min-words-after", "10"]
    stages = baseline.build_recipe(baseline.build_parser().parse_args(flags))
    assert [s.name for s in stages] == ["exact_dedup", "url_dedup", "substring_dedup"]
    cfg = stages[-1].cfg
    assert (cfg.min_len, cfg.unit, cfg.keep, cfg.min_words_after) == (40, "byte", "none", 10)
    direct = baseline_recipe(("dedup",), RecipeOptions(dedup=("exact", "substring"), substring_min_len=40,
                                                       substring_unit="byte", substring_keep="none",
                                                       substring_min_words_after=10), str(tmp_path))
    assert recipe_hash(stages) == recipe_hash(direct)
    # not in the default recipe; the default recipe is what it was
    assert "substring" not in DEDUP_METHODS and RecipeOptions().overrides() == {}
    default = baseline_recipe(("dedup",), RecipeOptions(dedup=("substring",)), str(tmp_path))
    assert isinstance(default[0], SubstringDedup) and default[0].cfg.min_len == 50
    with pytest.raises(ValueError, match="keep"):
        RecipeOptions(dedup=("substring",), substring_keep="last")
    helptext = baseline.build_parser().format_help()
    for flag in ("--substring-min-len", "--substring-unit", "--substring-keep", "--substring-min-words-after"):
        assert flag in helptext


def planted_passage_report(run: str, pool: str) -> dict:
    """Recall on the planted passages' later occurrences in the substring stage's input, and the removed
    bytes outside every planted occurrence: ``in_duplicate_groups`` when the removed words also occur in
    another copy of the same original (the truth's exact and near duplicates: a real repeat the stage is
    right to cut), ``elsewhere`` otherwise."""
    passages = [json.loads(line)["text"].encode() for line in open(os.path.join(pool, "passages.jsonl"))]
    truth = {(r := json.loads(line))["id"]: r for line in open(os.path.join(pool, "truth.jsonl"))}
    gdir = next(d for d in sorted(os.listdir(os.path.join(run, "global"))) if d.endswith("_substring_dedup"))
    state = json.load(open(os.path.join(run, "global", gdir, "state.json")))["state"]
    phase = int(gdir.split("_")[0]) - 1
    texts: dict[str, bytes] = {}
    for f in sorted(os.listdir(os.path.join(run, "phases", f"p{phase}"))):  # shards in corpus order
        t = pq.read_table(os.path.join(run, "phases", f"p{phase}", f), columns=["id", "text"])
        texts.update((i, x.encode()) for i, x in zip(t.column("id").to_pylist(), t.column("text").to_pylist()))
    decisions = {}
    for path in state["decisions"].values():
        t = pq.read_table(path)
        decisions.update((i, (a, list(zip(s, e)))) for i, a, s, e in zip(*(t.column(c).to_pylist()
                                                                          for c in ("id", "action", "starts", "ends"))))
    group: dict[str, str] = {i: r["dup_of"] or i for i, r in truth.items()}  # every copy -> its original
    members: dict[str, list[str]] = {}
    for i, root in group.items():
        members.setdefault(root, []).append(i)
    seen: set[int] = set()
    later = removed = 0
    outside = {"in_duplicate_groups": 0, "elsewhere": 0}
    for doc_id, data in texts.items():
        occ = []
        for k, p in enumerate(passages):
            pos = data.find(p)
            while pos >= 0:
                occ.append((pos, pos + len(p), k in seen))
                seen.add(k)
                pos = data.find(p, pos + 1)
        action, ranges = decisions.get(doc_id, (None, []))
        if action is not None and action != "cut":
            ranges = [(0, len(data))]
        for lo, hi, is_later in occ:
            later += is_later
            removed += is_later and any(a <= lo and hi <= b for a, b in ranges)
        copies = [texts[o] for o in members[group.get(doc_id, doc_id)] if o != doc_id and o in texts]
        for a, b in ranges:
            for word, why in explained(data[a:b], passages, copies):
                if why != "passage":
                    outside["in_duplicate_groups" if why == "copy" else "elsewhere"] += len(word)
    return {"later_occurrences": later, "removed": removed, "recall": removed / max(1, later),
            "outside_bytes": outside, "summary": state["summary"]}


def explained(cut: bytes, passages: list[bytes], copies: list[bytes], n: int = 12) -> list[tuple[bytes, str]]:
    """Each removed word with what explains its removal: inside a run of ``n`` words that a planted passage
    holds ("passage"; a near copy may have edited the passage elsewhere), else that another copy of the same
    original holds ("copy"), else nothing ("")."""
    words = cut.split()
    grams = {k: {tuple(w[i : i + n]) for w in [t.split()] for i in range(len(w) - n + 1)}
             for k, t in (("passage", b" ".join(passages)), ("copy", b" ".join(copies)))}
    why = [""] * len(words)
    for kind in ("copy", "passage"):  # a passage explains a word first
        for i in range(len(words) - n + 1):
            if tuple(words[i : i + n]) in grams[kind]:
                why[i : i + n] = [kind] * n
    return list(zip(words, why))


def test_demo_pool_planted_passages(tmp_path):
    out, pool = tmp_path / "run", tmp_path / "demo_pool"
    rc = baseline.main(["-o", str(out), "--demo-dir", str(pool), "--blocks", "heuristics,dedup", "--dedup",
                        "exact,minhash,bff,substring", "--no-tokens", "--executor", "local", "--log-level", "WARNING"])
    assert rc == 0
    rep = planted_passage_report(str(out), str(pool))
    assert rep["later_occurrences"] >= 20  # the passages survived heuristics, exact, MinHash and BFF
    assert rep["recall"] >= 0.99, rep
    assert rep["outside_bytes"]["elsewhere"] == 0, rep["outside_bytes"]
    s = rep["summary"]
    assert s["documents_cut"] >= rep["removed"] // 2 and s["documents_removed"] == 0
    assert 0 < s["fraction_bytes_removed"] < 0.02
    stats = json.load(open(out / "stats.json"))
    stage = next(st for st in stats["stages"] if st["name"] == "substring_dedup")
    bytes_in = sum(v["in_bytes"] for v in stage["by_source"].values())
    bytes_kept = sum(v["kept_bytes"] for v in stage["by_source"].values())
    assert bytes_in - bytes_kept == s["bytes_removed"]  # the run's accounting agrees with the stage's summary
