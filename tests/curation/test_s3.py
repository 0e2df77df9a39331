"""Runs on an S3-compatible object store: moto's S3 server in its own process on 127.0.0.1 (tests/s3server.py),
reached through s3fs, as a user's bucket would be.

* the whole baseline (every block, the default quality model, the tokenizer, token streams) from ``s3://`` to
  ``s3://`` gives byte for byte the local run's data, dropped, quarantine, stats and token files; ``curate``
  reads the run on the store; a rerun of the finished run starts no Ray, writes no data and reads O(1)
  objects per pass (counted by the server);
* a driver SIGKILLed in the middle of a pass, then rerun against the store under injected transient errors
  (throttling, 500s, connection resets), resumes at the item and ends byte-identical to the clean run;
* a rerun of a finished 1,001-item pass makes O(1) listings plus O(items / 1000) reads, counted by the server;
* a streamed write that fails aborts its multipart upload: no partial object.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.s3server import S3Server

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration
pytest.importorskip("s3fs")
pytest.importorskip("moto")

COMMON = ["--workers", "2", "--no-progress", "--seq-len", "128", "--vocab-size", "1000", "--quality-top-fraction",
          "0.5", "--log-level", "WARNING", "--executor", "local"]
N_DOCS = 240
FORMATS = ("refinedweb", "pile", "warc")  # parquet, jsonl.zst and a WARC file (HTML extraction): 7 of its 13 files


def _inputs(root: str) -> list[str]:
    return [a for f in FORMATS for a in ("-i", f"{root}/{f}")]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """The server, with this process's environment pointing s3fs at it (restored afterwards). The machine's
    model cache is left as it is: the default quality model, trained once per machine, is shared with the
    other tests that run the baseline."""
    import s3fs

    with S3Server() as server:
        env = server.env
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        s3fs.S3FileSystem.clear_instance_cache()
        try:
            from curation import storage  # its settings: no listing cache (other processes write the bucket)

            fs = storage.fs_path("s3://inp")[0]
            for bucket in ("inp", "out"):
                fs.mkdir(bucket)
            yield server, fs, env
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture(scope="module")
def runs(s3, tmp_path_factory):
    """The demo pool on local disk and in the bucket (with its _truth/ folder), the baseline run over each."""
    from demopool import generate_pool

    sys.path.insert(0, str(ROOT / "pipelines"))
    import baseline

    server, fs, _ = s3
    tmp = tmp_path_factory.mktemp("s3runs")
    pool = tmp / "pool"
    generate_pool(str(pool), n_docs=N_DOCS, seed=3)
    fs.put(str(pool) + "/", "inp/pool/", recursive=True)
    assert any("_truth" in p for p in fs.find("inp/pool"))
    assert baseline.main([*_inputs(str(pool)), "-o", str(tmp / "local" / "run"), *COMMON]) == 0
    server.reset()
    assert baseline.main([*_inputs("s3://inp/pool"), "-o", "s3://out/run", *COMMON]) == 0
    first = server.counts()
    fs.get("out/run/", str(tmp / "copy") + "/", recursive=True)
    return {"pool": pool, "local": tmp / "local" / "run", "copy": tmp / "copy", "first_counts": first, "tmp": tmp}


_ID = re.compile(r"-[0-9a-f]{8}(?=(~\d+)?\.parquet\b)")


def _outputs(run: Path, prefix: str = "", root: str = "") -> dict[str, bytes]:
    """data/, dropped/, quarantine/ by path with the shard ids' path hash taken out (the local and the S3
    inputs have the same names under different roots: ``prefix``), stats.json, the token files, the tokenizer
    and the token manifest with the run's own location (``root``) taken out."""
    out = {}
    for sub in ("data", "dropped", "quarantine"):
        for p in sorted((run / sub).rglob("*.parquet")):
            rel = _ID.sub("", str(p.relative_to(run)))
            if sub == "quarantine":  # records name their input file: compare with the root taken out
                t = pq.read_table(p)
                out[rel] = json.dumps([{**r, "file": r["file"].replace(prefix, "<root>"), "raw": str(r["raw"])}
                                       for r in t.to_pylist()]).encode()
            else:
                out[rel] = p.read_bytes()
    out["stats.json"] = (run / "stats.json").read_bytes()
    for p in sorted((run / "tokens").glob("*.arrow")):
        out[f"tokens/{p.name}"] = p.read_bytes()
    out["tokenizer"] = (run / "tokenizer" / "sp.model").read_bytes()
    manifest = json.loads((run / "tokens" / "manifest.json").read_text())
    manifest["tokenizer"]["training"].pop("key")  # a hash of the input files' fingerprints (mtime or ETag)
    text = _ID.sub("", json.dumps(manifest, sort_keys=True).replace(root or str(run), "<run>"))
    out["manifest"] = text.encode()
    return out


def test_baseline_from_s3_to_s3_equals_the_local_run(runs, s3, capsys):
    server, fs, _ = s3
    local, copy = runs["local"], runs["copy"]
    a, b = _outputs(local, str(runs["pool"])), _outputs(copy, "s3://inp/pool", "s3://out/run")
    assert sorted(a) == sorted(b) and len([k for k in a if k.startswith("data/")]) == 7
    assert [k for k in a if a[k] != b[k]] == []
    stats = json.loads((copy / "stats.json").read_text())
    manifest = json.loads(fs.cat_file("inp/pool/_truth/pool.json"))
    assert stats["totals"]["read"]["kept"] == sum(manifest["formats"][f]["docs"] for f in FORMATS)
    # the pool's folder as input: its documents, none of its ground truth (_truth/)
    from curation import storage

    assert storage.expand("s3://inp/pool") == sorted(f"s3://inp/pool/{f}" for spec in manifest["formats"].values()
                                                     for f in spec["files"])
    # the default quality model: trained here, recorded beside the run on the store, the local run's bytes
    remote = [p for p in fs.find("out/run/quality_model") if p.endswith(".bin")]
    assert len(remote) == 1 and fs.cat_file(remote[0]) == next((local / "quality_model").glob("*.bin")).read_bytes()
    assert fs.exists(remote[0] + ".json")
    for name in ("report.md", "funnel.png", "lengths.png", "passes.json"):
        assert fs.exists(f"out/run/{name}")
    # no per-shard stats files, no empty side files, one marker object per finished pass
    assert not fs.exists("out/run/stats")
    markers = [p for p in fs.find("out/run/_passes")]
    assert markers and all(p.rsplit("/", 1)[-1].startswith("_batch-") for p in markers)
    passes = json.loads((copy / "passes.json").read_text())
    assert passes["objects_written"] > 0 and all("objects_written" in p for p in passes["passes"])
    # a streamed object store write is one PUT or a completed multipart upload: nothing was moved or copied
    assert runs["first_counts"].get("copy", 0) == 0 and runs["first_counts"].get("mpu_abort", 0) == 0

    from curation.cli import main as curate

    capsys.readouterr()
    assert curate(["stats", "s3://out/run"]) == 0
    assert "quality_top_fraction" in capsys.readouterr().out
    assert curate(["dropped", "s3://out/run", "--reason", "dedup", "--limit", "3"]) == 0
    assert re.search(r"^[\d,]+ dropped records with reason dedup", capsys.readouterr().out, re.M)


def test_a_rerun_of_a_finished_run_reads_o1_objects_per_pass(runs, s3):
    sys.path.insert(0, str(ROOT / "pipelines"))
    import baseline

    server, fs, _ = s3
    before = {p: i["ETag"] for p, i in fs.find("out/run", detail=True).items()}
    server.reset()
    assert baseline.main([*_inputs("s3://inp/pool"), "-o", "s3://out/run", *COMMON[:-2], "--executor", "ray"]) == 0
    import ray

    assert not ray.is_initialized()  # nothing to run: Ray never started
    log = server.requests()
    writes = sorted({p for op, p in log if op in ("put", "mpu_complete", "copy", "delete", "delete_batch")})
    # only the run's summary files are rewritten; no data, marker, token or model object
    assert writes == ["/out/run/funnel.png", "/out/run/lengths.png", "/out/run/passes.json", "/out/run/report.md",
                      "/out/run/run.json", "/out/run/stats.json", "/out/run/timings.json"]
    after = {p: i["ETag"] for p, i in fs.find("out/run", detail=True).items()}
    assert {p for p in after if after[p] != before.get(p)} <= {w.lstrip("/") for w in writes}
    reads = [p for op, p in log if op == "get"]
    passes = json.loads(fs.cat_file("out/run/passes.json"))["passes"]
    batches = [p for p in reads if "/_batch-" in p]
    assert len(batches) == len(passes)  # each pass: one gathered marker object (< 1,000 items)
    bulk = [p for p in reads if "/data/" in p or "/phases/" in p or "/dropped/" in p or "/tokens/tokens-" in p]
    assert bulk == []  # no document, side file or token stream is read
    assert all(p["ran"] == 0 and p["driver_requests"].get("get", 0) <= 1 for p in passes)
    # the rest is bookkeeping: summary files, fitted states, the tokenizer and stream manifests (O(1) per run),
    # and folder listings (inputs, phase outputs, markers: O(1) per pass, one page per 1,000 objects)
    assert len(reads) <= len(passes) + 25 and sum(op == "list" for op, _ in log) <= 4 * len(passes) + 25
    assert sum(op == "head" for op, _ in log) <= 10


def test_driver_killed_mid_pass_then_rerun_under_transient_errors(runs, s3):
    """SIGKILL the driver (and its process group) in the middle of the last global fit (the top-fraction
    selection's keys pass, when its third shard starts); rerun with every 25th request to the store failing
    (503 SlowDown, 500, connection reset in turn): the run resumes at the item and its outputs equal the clean
    run's byte for byte."""
    server, fs, env = s3
    model = next(p for p in fs.find("out/run/quality_model") if p.endswith(".bin"))
    out = "s3://out/killed/run"  # the last folder names the token stream's source: "run", as the clean run's
    argv = [*_inputs("s3://inp/pool"), "-o", out, *COMMON, "--quality-model", f"s3://{model}"]
    code = ("import json, sys; sys.path.insert(0, 'pipelines'); from tests.kill_hook import kill_when; "
            "spec = json.loads(sys.argv[1]); spec and kill_when(spec); import baseline; "
            "sys.exit(baseline.main(sys.argv[2:]))")
    penv = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}

    def driver(spec: dict) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", code, json.dumps(spec), *argv], cwd=ROOT, env=penv,
                              start_new_session=True, capture_output=True, text=True, timeout=600)

    # _pass_keys(path, keys_out, hist_out, column, seed)
    keys = f"{out}/global/05_quality_top_fraction/fit/keys/000002.npz"
    killed = driver({"module": "filters.quality.select", "function": "_pass_keys", "when": {"1": keys}})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not fs.exists("out/killed/run/stats.json")
    server.faults(25, "mix")
    try:
        rerun = driver({})
    finally:
        server.faults(0)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert sum(server.injected().values()) >= 5
    copy = runs["tmp"] / "killed"
    fs.get("out/killed/run/", str(copy) + "/", recursive=True)
    assert _outputs(copy, "s3://inp/pool", out) == _outputs(runs["copy"], "s3://inp/pool", "s3://out/run")
    passes = {}
    for p in json.loads((copy / "passes.json").read_text())["passes"]:
        passes.setdefault(p["pass"], []).append((p["ran"], p["skipped"]))
    units = json.loads((copy / "run.json").read_text())["work_units"]
    assert [passes[f"p{k}"] for k in range(5)] == [[(0, units)]] * 5  # done before the kill: not redone
    assert "map" not in passes  # the dedup fits had finished: their states are reused, nothing runs
    ran, skipped = passes["keys"][0]  # the killed pass resumes at the item
    assert ran + skipped == units and ran >= 1 and passes["p5"] == [(units, 0)]


def test_a_finished_pass_is_read_back_with_o1_listings(s3):
    """1,001 items with an input and an output each: the rerun lists the marker, input and output folders once
    each (the outputs' in two pages of 1,000) and reads the two gathered marker objects; no HEAD, PUT or
    DELETE."""
    from curation import storage
    from curation.passes import ExecConfig, Executor, Item

    server, fs, _ = s3
    n = 1001
    fs.pipe({f"out/many/in/{j:03d}.txt": b"x" for j in range(12)})
    items = [Item(f"k{i:05d}", (i, f"s3://out/many/out/{i:05d}.json"), inputs=(f"s3://out/many/in/{i % 12:03d}.txt",),
                  outputs=(f"s3://out/many/out/{i:05d}.json",)) for i in range(n)]
    ex = Executor(ExecConfig(mode="local", progress=False))
    first = ex.run("many", square_to_file_s3, items, marker_dir="s3://out/many/_passes/many")
    assert len(first.ran) == n
    assert sorted(p.rsplit("/", 1)[-1][:7] for p in fs.ls("out/many/_passes/many")) == ["_batch-", "_batch-"]
    server.reset()
    again = ex.run("many", square_to_file_s3, items, marker_dir="s3://out/many/_passes/many")
    counts = server.counts()
    assert again.ran == [] and len(again.skipped) == n and again.results == first.results
    assert counts == {"list": 4, "get": 2}, counts  # markers, inputs, outputs (two pages of 1,000)
    assert again.driver_requests == {"list": 3, "get": 2}
    # an output gone: only its item runs again
    storage.remove(["s3://out/many/out/00007.json"])
    part = ex.run("many", square_to_file_s3, items, marker_dir="s3://out/many/_passes/many")
    assert part.ran == ["k00007"] and part.outputs_missing == ["k00007"]


def square_to_file_s3(x: int, out: str) -> int:
    from curation import storage

    storage.write_bytes_atomic(out, json.dumps({"y": x * x}).encode())
    return x * x



def test_a_failed_streamed_write_leaves_no_object(s3):
    """No rename on S3: a streamed object is a multipart upload completed on close; a writer that fails
    aborts it, and neither a partial object nor a stray temporary one appears (an earlier object stays)."""
    from curation import storage

    server, fs, _ = s3
    storage.write_bytes_atomic("s3://out/w/x.bin", b"earlier")
    server.reset()
    with pytest.raises(RuntimeError):
        with storage.atomic_open("s3://out/w/x.bin") as f:
            f.write(b"y" * (storage.WRITE_PART_BYTES + 1))  # one part uploaded already
            raise RuntimeError("the writer dies")
    ops = [op for op, _ in server.requests()]
    assert ops == ["mpu_start", "upload_part", "mpu_abort"]
    assert fs.cat_file("out/w/x.bin") == b"earlier" and fs.ls("out/w") == ["out/w/x.bin"]
    with storage.atomic_open("s3://out/w/x.bin") as f:
        f.write(b"z" * (storage.WRITE_PART_BYTES + 1))
    assert fs.info("out/w/x.bin")["size"] == storage.WRITE_PART_BYTES + 1
