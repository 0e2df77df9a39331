"""The Ray shard runner: accounting, quarantine of failing rows, global phases, resume,
worker-count independence, set-up once per worker process, reports."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation import storage
from curation.runner import InputSpec, run_recipe
from curation.stats import check_invariant
from tests.stages_for_tests import Boom, DropShort, ExactTextDedup, Upper, kill_processes_mentioning

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def ray_local():
    import ray

    from curation.ray_utils import init_ray

    init_ray(num_workers=2)
    yield
    ray.shutdown()


def _doc_text(f: int, j: int) -> str:
    if j % 7 == 0:
        return f"short {j}"  # < 20 chars: dropped by DropShort
    if j % 11 == 0:
        return f"this document says boom at row {j} of file {f}"  # makes Boom raise after Upper
    if j % 5 == 0:
        return f"a shared paragraph that appears in several files, number {j % 3}"  # duplicates
    return f"document {j} of file {f} with enough words to be kept by the filter"


def write_inputs(d, n_files: int = 4, n_docs: int = 40) -> list[dict]:
    """Generic jsonl files with some bad lines; returns the good records (in file order)."""
    good = []
    for f in range(n_files):
        lines = []
        for j in range(n_docs):
            rec = {"id": f"f{f}-{j:03d}", "text": _doc_text(f, j)}
            good.append(rec)
            lines.append(json.dumps(rec))
            if j == 3:
                lines.append('{"id": "broken", "text": ')  # malformed JSON
            if j == 4:
                lines.append(json.dumps({"id": f"f{f}-null", "text": None}))
        (d / f"part-{f}.jsonl").write_text("\n".join(lines) + "\n")
    return good


def expected_outcome(good: list[dict]) -> tuple[dict[str, str], dict[str, str], set[str]]:
    """Independent model of the recipe [DropShort, Upper, Boom, ExactTextDedup]."""
    kept, dropped, quarantined = {}, {}, set()
    for r in good:
        t = r["text"]
        if len(t) < 20:
            dropped[r["id"]] = "too_short"
        elif "BOOM" in t.upper():
            quarantined.add(r["id"])
        else:
            kept[r["id"]] = t.upper()
    first: dict[str, str] = {}
    for i in sorted(kept):
        first.setdefault(kept[i], i)
    for i in list(kept):
        if first[kept[i]] != i:
            dropped[i] = "dup"
            del kept[i]
    return kept, dropped, quarantined


def recipe(setup_dir=None):
    return [DropShort(20), Upper(), Boom(setup_dir), ExactTextDedup()]


def inputs(d):
    return [InputSpec(str(p), "jsonl", "web") for p in sorted(d.glob("*.jsonl"))]


def read_dir(path: str) -> pa.Table:
    files = sorted(storage.expand(path)) if os.path.isdir(path) else []
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive")


def digests(run_dir) -> dict[str, str]:
    """sha256 of every output a rerun must reproduce byte for byte: data/, dropped/, quarantine/, stats.json."""
    out = {}
    for sub in ("data", "dropped", "quarantine"):
        root = os.path.join(run_dir, sub)
        for dirpath, _, files in os.walk(root):
            for f in files:
                if ".tmp-" not in f:
                    p = os.path.join(dirpath, f)
                    out[os.path.relpath(p, run_dir)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    out["stats.json"] = hashlib.sha256(open(os.path.join(run_dir, "stats.json"), "rb").read()).hexdigest()
    return out


def test_accounting_quarantine_and_global_phase(tmp_path, ray_local, capsys):
    good = write_inputs(tmp_path)
    kept, dropped, quarantined = expected_outcome(good)
    out = tmp_path / "run"
    res = run_recipe(recipe(), inputs(tmp_path), str(out), num_workers=2, batch_size=8, progress=False, executor="ray")
    assert res.ok and res.processed_shards == 8  # 4 shards x 2 phases

    data = read_dir(str(out / "data"))
    got = dict(zip(data["id"].to_pylist(), data["text"].to_pylist()))
    assert got == kept

    drops = read_dir(str(out / "dropped"))
    assert dict(zip(drops["id"].to_pylist(), drops["reason"].to_pylist())) == dropped

    q = read_dir(str(out / "quarantine"))
    reasons = q["reason"].to_pylist()
    assert reasons.count("malformed_json") == 4
    assert reasons.count("null_text") == 4
    stage_err = {i for i, r in zip(q["id"].to_pylist(), reasons) if r == "stage_error:boom:ValueError"}
    assert stage_err == quarantined

    stats = json.loads((out / "stats.json").read_text())
    names = [s["name"] for s in stats["stages"]]
    assert names == ["read", "drop_short", "upper", "boom", "exact_text"]
    for st in stats["stages"]:
        assert check_invariant(st) == []
    t = stats["totals"]
    assert t["read"]["in"] == len(good) + 8
    assert t["exact_text"]["kept"] == len(kept)
    assert t["exact_text"]["dropped"]["dup"][0] == sum(r == "dup" for r in dropped.values())
    # per shard, per stage, per source: in == kept + dropped + quarantined (the shards' counts live in the
    # passes' gathered markers: no stats file per shard)
    from curation.passes import load_markers

    per_shard = [lst[0]["result"] for p in ("p0", "p1")
                 for lst in load_markers(str(out / "_passes" / p)).entries.values()]
    assert len(per_shard) == 8 and not (out / "stats").exists()
    for blob in per_shard:
        for st in blob["stages"]:
            assert check_invariant(st) == []
    # report and plots
    report = (out / "report.md").read_text()
    assert "exact_text" in report and "malformed_json" in report
    for png in ("funnel.png", "lengths.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert stats["global"][0]["summary"]["removed"] == sum(r == "dup" for r in dropped.values())

    # the command line reads the same run
    from curation.cli import main as curate

    capsys.readouterr()
    assert curate(["stats", str(out)]) == 0
    table = capsys.readouterr().out
    assert "exact_text" in table and f"{len(kept):,}" in table
    assert curate(["quarantine", str(out), "--reason", "malformed_json"]) == 0
    listing = capsys.readouterr().out
    assert listing.startswith("4 quarantine records") and "part-0.jsonl" in listing
    assert curate(["dropped", str(out), "--reason", "dup", "--limit", "1000"]) == 0
    listing = capsys.readouterr().out
    assert all(i in listing for i, r in dropped.items() if r == "dup")


def test_one_and_two_workers_byte_identical_and_resume(tmp_path, ray_local):
    write_inputs(tmp_path)
    a, b = tmp_path / "w1", tmp_path / "w2"
    run_recipe(recipe(), inputs(tmp_path), str(a), num_workers=1, batch_size=8, progress=False, executor="ray")
    run_recipe(recipe(), inputs(tmp_path), str(b), num_workers=2, batch_size=8, progress=False, executor="ray")
    assert digests(a) == digests(b) and len([k for k in digests(a) if k.startswith("data/")]) == 4

    again = run_recipe(recipe(), inputs(tmp_path), str(b), num_workers=2, batch_size=8, progress=False, executor="ray")
    assert again.processed_shards == 0 and again.skipped_shards == 8
    assert digests(b) == digests(a)

    # an input rewritten under the same name is read again; the global stage is refitted
    # and every shard of the phase after it is recomputed against the new fit
    part0 = tmp_path / "part-0.jsonl"
    part0.write_text(part0.read_text().replace("with enough words", "with plenty of words"))
    res = run_recipe(recipe(), inputs(tmp_path), str(b), num_workers=2, batch_size=8, progress=False, executor="ray")
    assert res.processed_shards == 1 + 4 and res.skipped_shards == 3
    changed_ids = [i for i, t in zip(*_texts(b)) if "PLENTY" in t]
    assert changed_ids and all(i.startswith("f0-") for i in changed_ids)
    part0.write_text(part0.read_text().replace("with plenty of words", "with enough words"))
    run_recipe(recipe(), inputs(tmp_path), str(b), num_workers=2, batch_size=8, progress=False, executor="ray")
    assert digests(b) == digests(a)

    # a changed recipe recomputes: no upper-casing, different hash, different output
    changed = [DropShort(20), Boom(), ExactTextDedup()]
    res = run_recipe(changed, inputs(tmp_path), str(b), num_workers=2, batch_size=8, progress=False, executor="ray")
    assert res.processed_shards == 8 and res.recipe_hash != again.recipe_hash
    assert digests(b) != digests(a)


def _texts(run_dir) -> tuple[list[str], list[str]]:
    t = read_dir(os.path.join(run_dir, "data"))
    return t["id"].to_pylist(), t["text"].to_pylist()


def test_setup_once_per_worker_process(tmp_path, ray_local):
    write_inputs(tmp_path, n_files=6, n_docs=30)
    setup_dir = tmp_path / "setups"
    run_recipe([DropShort(20), Upper(), Boom(str(setup_dir))], inputs(tmp_path), str(tmp_path / "run"),
               num_workers=2, batch_size=4, progress=False, executor="ray")
    calls = os.listdir(setup_dir)
    pids = [c.split("-")[0] for c in calls]
    # 6 shards x several batches each, but one set-up per worker process
    assert len(pids) == len(set(pids)) and 1 <= len(pids) <= 6


def test_bad_recipe_is_rejected_before_running(tmp_path):
    write_inputs(tmp_path, n_files=1)
    with pytest.raises(ValueError, match="unique"):
        run_recipe([DropShort(), DropShort()], inputs(tmp_path), str(tmp_path / "run"), progress=False)


DRIVER = """
import sys
sys.path.insert(0, {root!r})
from curation.runner import InputSpec, run_recipe
from tests.stages_for_tests import DropShort, Slow, Upper
import glob
inputs = [InputSpec(p, "jsonl", "web") for p in sorted(glob.glob({inp!r} + "/*.jsonl"))]
res = run_recipe([Slow({secs}, {pids!r}), DropShort(20), Upper()], inputs, sys.argv[1], num_workers=2,
                 batch_size=10, progress=False, report=False, executor="ray")
print("PROCESSED", res.processed_shards, "SKIPPED", res.skipped_shards, flush=True)
sys.exit(0 if res.ok else 3)
"""


@pytest.mark.integration
def test_kill_worker_and_driver_then_rerun_equals_clean_run(tmp_path):
    """SIGKILL a Ray worker mid-shard (Ray retries the task), then SIGKILL the driver
    mid-run and rerun: the final output equals a clean run's, byte for byte."""
    import signal
    import time

    inp = tmp_path / "in"
    inp.mkdir()
    write_inputs(inp, n_files=6, n_docs=60)
    pids = tmp_path / "pids"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(root=ROOT, inp=str(inp), secs=0.25, pids=str(pids)))
    # the drivers' embedded Ray lives under its own temp dir, so that the processes a
    # killed driver leaves behind can be found and stopped at the end
    ray_tmp = f"/tmp/ray_kill_{os.getpid()}"
    env = {**os.environ, "PYTHONPATH": ROOT, "RAY_TMPDIR": ray_tmp}

    def start(out):
        return subprocess.Popen([sys.executable, str(script), str(out)], env=env, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)

    def wait_for(cond, timeout=120):
        t0 = time.time()
        while not cond():
            if time.time() - t0 > timeout:
                raise TimeoutError
            time.sleep(0.1)

    clean = tmp_path / "clean"
    p = start(clean)
    assert p.wait(timeout=300) == 0, p.stdout.read()

    # 1. kill a worker in the middle of a shard; Ray retries it and the run completes
    for f in pids.iterdir():
        f.unlink()
    killed_run = tmp_path / "killed_worker"
    p = start(killed_run)
    wait_for(lambda: pids.exists() and any(pids.iterdir()))
    victim = int(sorted(pids.iterdir())[0].name)
    os.kill(victim, signal.SIGKILL)
    out = p.communicate(timeout=300)[0]
    assert p.returncode == 0, out
    assert digests(killed_run) == digests(clean)

    # 2. kill the driver (and its embedded Ray) after some shards finished, then rerun
    crashed = tmp_path / "crashed"
    p = start(crashed)
    markers = crashed / "_passes" / "p0"  # per-item markers, until the pass ends and gathers them
    wait_for(lambda: len(list(markers.glob("*.json"))) >= 2 if markers.exists() else False)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    done_before = len(list(markers.glob("*.json")))
    p = start(crashed)
    out = p.communicate(timeout=300)[0]
    assert p.returncode == 0, out
    # shards finished before the crash are not redone (a worker that outlived the driver
    # may have finished one more); every shard is done exactly once in the end
    import re

    processed, skipped = map(int, re.search(r"PROCESSED (\d+) SKIPPED (\d+)", out).groups())
    assert skipped >= done_before >= 2 and processed + skipped == 6 and processed >= 1
    assert digests(crashed) == digests(clean)
    leftovers = [f for f in os.listdir(crashed / "data") if ".tmp-" in f]
    assert leftovers == []
    kill_processes_mentioning(ray_tmp)


def test_in_process_and_ray_runs_are_byte_identical(tmp_path, ray_local):
    write_inputs(tmp_path)
    a, b = tmp_path / "local", tmp_path / "ray"
    ra = run_recipe(recipe(), inputs(tmp_path), str(a), num_workers=2, batch_size=8, progress=False)  # auto: small
    rb = run_recipe(recipe(), inputs(tmp_path), str(b), num_workers=2, batch_size=8, progress=False, executor="ray")
    assert json.loads((a / "run.json").read_text())["executor"] == "local"
    assert json.loads((b / "run.json").read_text())["executor"] == "ray"
    assert digests(a) == digests(b) and ra.stats["totals"] == rb.stats["totals"]
    for sub in ("dropped", "quarantine"):
        assert read_dir(str(a / sub)).equals(read_dir(str(b / sub)))
    # the passes log says what ran; a rerun in the other mode finds every item complete
    again = run_recipe(recipe(), inputs(tmp_path), str(a), num_workers=2, batch_size=8, progress=False,
                       executor="ray")
    assert again.processed_shards == 0 and again.skipped_shards == 8
    log = json.loads((a / "passes.json").read_text())["passes"]
    assert [(p["pass"], p["ran"], p["skipped"]) for p in log] == [("p0", 0, 4), ("p1", 0, 4)]


def _concat_outputs(run_dir, sub: str) -> pa.Table:
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(run_dir, sub)) for f in fs
                   if f.endswith(".parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive")


def test_large_inputs_split_into_work_items_with_identical_outputs(tmp_path, ray_local):
    """A plain JSON-lines file and a parquet file over --max-shard-bytes become several work items
    (byte ranges, row groups); ids and every output equal the unsplit run's, for 1 and 2 workers; a
    compressed file over the limit stays whole and the report names it."""
    import gzip

    rng_lines = []
    for j in range(3000):
        rec = {"text": _doc_text(9, j) + " " + "filler words " * (j % 13)}  # no id: generated from the row
        rng_lines.append(json.dumps(rec))
        if j % 400 == 17:
            rng_lines.append('{"text": broken')
    (tmp_path / "big.jsonl").write_text("\n".join(rng_lines) + "\n")
    docs = pa.table({"id": [f"pq-{j}" for j in range(3000)],
                     "text": [_doc_text(8, j) + " tail " * (j % 7) for j in range(3000)]})
    pq.write_table(docs, tmp_path / "big.parquet", row_group_size=250)
    rnd = __import__("random").Random(0)
    with gzip.open(tmp_path / "big.jsonl.gz", "wt") as f:  # random hex: compresses poorly, > 64 KiB
        f.write("\n".join(json.dumps({"text": f"{_doc_text(7, j)} {rnd.randbytes(60).hex()}"})
                          for j in range(2500)) + "\n")
    assert os.path.getsize(tmp_path / "big.jsonl.gz") > 1 << 16
    specs = [InputSpec(str(tmp_path / "big.jsonl"), "jsonl", "web"), InputSpec(str(tmp_path / "big.parquet"),
             "parquet", "pq"), InputSpec(str(tmp_path / "big.jsonl.gz"), "jsonl", "gz")]
    whole = run_recipe(recipe(), specs, str(tmp_path / "whole"), num_workers=2, batch_size=64, progress=False,
                       max_shard_bytes=None)
    runs = []
    for workers in (1, 2):
        out = tmp_path / f"split{workers}"
        res = run_recipe(recipe(), specs, str(out), num_workers=workers, batch_size=64, progress=False,
                         max_shard_bytes=1 << 16, executor="ray" if workers == 2 else "local")
        assert res.ok
        runs.append(out)
        run = json.loads((out / "run.json").read_text())
        assert run["work_units"] > 6  # both plain files cut into several items
        assert run["unsplittable_inputs"] == [str(tmp_path / "big.jsonl.gz")]
        assert str(tmp_path / "big.jsonl.gz") in (out / "report.md").read_text()
    for out in runs:
        for sub in ("data", "dropped", "quarantine"):
            keys = [("file", "ascending"), ("position", "ascending")] if sub == "quarantine" else [("id", "ascending")]
            a = _concat_outputs(tmp_path / "whole", sub).sort_by(keys)
            b = _concat_outputs(out, sub).sort_by(keys)
            assert a.equals(b), sub
        # in corpus order too: the splits' files, in shard-id order, hold the whole file's rows in order
        ta = _concat_outputs(tmp_path / "whole", "data")
        tb = _concat_outputs(out, "data")
        assert ta.column("id").to_pylist() == tb.column("id").to_pylist()
        sa = json.loads((tmp_path / "whole" / "stats.json").read_text())
        sb = json.loads((out / "stats.json").read_text())
        assert sa["totals"] == sb["totals"]
    assert digests(runs[0]) == digests(runs[1])
    assert whole.stats["totals"]["read"]["in"] == 3000 + 8 + 3000 + 2500
