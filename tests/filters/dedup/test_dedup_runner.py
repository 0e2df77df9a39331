"""The dedup stages in the runner: fitted states saved as typed JSON and reloaded on a rerun; a state.json lost
after the fit's passes ran is rebuilt from the pass markers, identical, so no shard after it runs again."""

from __future__ import annotations

import json
import os

from curation.runner import InputSpec, run_recipe
from curation.stats import check_invariant
from filters.dedup import BloomDedup, ExactDedup, MinHashDedup
from filters.dedup.synthetic import generate_shard


def _inputs(tmp_path) -> list[InputSpec]:
    specs = []
    for f in range(2):
        t = generate_shard(f, 150, seed=7, exact_frac=0.06, near_frac=0.06, para_frac=0.15, mean_words=80)
        path = tmp_path / f"part-{f}.jsonl"
        path.write_text("".join(json.dumps({"id": i, "text": x}) + "\n"
                                for i, x in zip(t.column("id").to_pylist(), t.column("text").to_pylist())))
        specs.append(InputSpec(str(path), "jsonl", "web"))
    return specs


def _stages():
    return [ExactDedup(), MinHashDedup(measure_curve=False), BloomDedup(fp_rate=1e-6)]


def _data(out) -> dict[str, bytes]:
    return {f: (out / "data" / f).read_bytes() for f in sorted(os.listdir(out / "data"))}


def _stats(out) -> bytes:
    """stats.json as written: it holds no timings (those go to timings.json), so it is compared byte for byte."""
    return (out / "stats.json").read_bytes()


def test_runner_saves_and_reloads_typed_states(tmp_path):
    specs, out = _inputs(tmp_path), tmp_path / "run"
    res = run_recipe(_stages(), specs, str(out), executor="local", progress=False, report=False)
    assert res.ok
    stats = json.loads((out / "stats.json").read_text())
    for st in stats["stages"]:
        assert check_invariant(st) == []
    totals = stats["totals"]
    dropped = {name: sum(v[0] for v in totals[name]["dropped"].values()) for name in ("exact_dedup", "minhash_dedup")}
    assert all(dropped.values())
    states = {}
    for g in sorted(os.listdir(out / "global")):
        states[g] = json.loads((out / "global" / g / "state.json").read_text())["state"]
    types = {g: s["type"].rsplit(".", 1)[1] for g, s in states.items()}
    assert types == {"01_exact_dedup": "RemovalLists", "02_minhash_dedup": "RemovalLists",
                     "03_bff_dedup": "BffDecisions"}
    assert states["01_exact_dedup"]["summary"]["documents_removed"] == dropped["exact_dedup"]
    assert states["02_minhash_dedup"]["summary"]["documents_removed"] == dropped["minhash_dedup"]
    data, stats = _data(out), _stats(out)

    # a rerun with new stage objects reloads every state and runs nothing
    again = run_recipe(_stages(), specs, str(out), executor="local", progress=False, report=False)
    assert again.processed_shards == 0 and _data(out) == data

    # the driver lost after the MinHash fit's passes, before its state.json: refit from the markers
    os.remove(out / "global" / "02_minhash_dedup" / "state.json")
    third = run_recipe(_stages(), specs, str(out), executor="local", progress=False, report=False)
    fit = [p for p in third.passes if p["pass"] in ("map", "reduce", "gather", "cc_r000")]
    assert fit and all(p["ran"] == 0 and p["skipped"] == p["items"] for p in fit)
    assert third.processed_shards == 0  # the same state: nothing after it is recomputed
    assert json.loads((out / "global" / "02_minhash_dedup" / "state.json").read_text())["state"] == \
        states["02_minhash_dedup"]
    assert _data(out) == data and _stats(out) == stats


def test_fit_summaries_count_removals_by_source_as_the_shards_do(tmp_path):
    """Each fit's removed_by_source (counted where removal lists and decisions are gathered) equals what the
    shard accounting, an independent path, counts as dropped by that stage per source: documents and bytes."""
    specs = [InputSpec(s.path, s.format, src) for s, src in zip(_inputs(tmp_path), ["web", "news"])]
    out = tmp_path / "run"
    assert run_recipe(_stages(), specs, str(out), executor="local", progress=False, report=False).ok
    stages = {st["name"]: st for st in json.loads((out / "stats.json").read_text())["stages"]}
    for g in sorted(os.listdir(out / "global")):
        name = g.split("_", 1)[1]
        summary = json.loads((out / "global" / g / "state.json").read_text())["state"]["summary"]
        shards = {src: [sum(v[0] for v in s["dropped"].values()), sum(v[1] for v in s["dropped"].values())]
                  for src, s in stages[name]["by_source"].items() if s["dropped"]}
        fitted = {src: [v["documents"], v["bytes"]] for src, v in summary["removed_by_source"].items()}
        assert fitted == shards and len(fitted) == 2, name
