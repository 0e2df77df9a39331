"""Scoring a curation run against the demo pool's planted repeated passages (``passages.jsonl``, truth.passage).

    from demopool.passages import planted_passage_report
    planted_passage_report("runs/baseline", "runs/demo_pool")  # a run with --dedup ...,substring

Reads the run's files only (the substring stage's input phase, its decision files and state), so it
works on any run directory, finished or copied.
"""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq


def _truth_file(pool: str, name: str) -> str:
    """A truth file of the pool: under ``_truth/`` (bookkeeping, never an input) or, in older pools, beside the data."""
    inside = os.path.join(pool, "_truth", name)
    return inside if os.path.exists(inside) else os.path.join(pool, name)


def planted_passage_report(run: str, pool: str) -> dict:
    """Recall on the planted passages' later occurrences in the substring stage's input, and the removed
    bytes outside every planted occurrence: ``in_duplicate_groups`` when the removed words also occur in
    another copy of the same original (the truth's exact and near duplicates: a real repeat the stage is
    right to cut), ``elsewhere`` otherwise."""
    passages = [json.loads(line)["text"].encode() for line in open(_truth_file(pool, "passages.jsonl"))]
    truth = {(r := json.loads(line))["id"]: r for line in open(_truth_file(pool, "truth.jsonl"))}
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
