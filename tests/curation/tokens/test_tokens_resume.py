"""A build whose driver is killed (its whole process group) during the shuffle pass resumes at the bucket:
the rerun writes only the unfinished buckets, and every token file and manifest.json are byte-identical
to a clean build's."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from curation.tokens import build_token_stream
from tests.curation.tokens.conftest import write_run

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
# many small buckets, so that the shuffle pass takes long enough to be interrupted midway
OPTIONS = {"seq_len": 63, "seed": 5, "max_shard_bytes": 16 * 64 * 2, "executor": "local"}

CHILD = """
import json, sys
sys.path.insert(0, {root!r})
from curation.tokens import build_token_stream
build_token_stream({sources!r}, {out!r}, {tok!r}, **json.loads({options!r}))
"""


def _stream_files(out: str) -> dict[str, bytes]:
    names = [f for f in os.listdir(out) if f.startswith("tokens-") or f == "manifest.json"]
    return {f: open(os.path.join(out, f), "rb").read() for f in sorted(names)}


def test_driver_killed_during_the_shuffle_resumes_at_the_bucket(tokenizer, tmp_path):
    run = str(tmp_path / "run")
    write_run(run, "web", [500, 400, 600], seed=9)
    out = str(tmp_path / "out")
    # the clean build, in the same folder (the manifest names it), then moved aside
    clean_manifest = build_token_stream([run], out, tokenizer, **OPTIONS)
    k = clean_manifest["num_buckets"]
    assert k >= 200
    clean = _stream_files(out)
    shutil.rmtree(out)

    code = CHILD.format(root=ROOT, sources=[run], out=out, tok=tokenizer, options=json.dumps(OPTIONS))
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    markers = os.path.join(out, "_work", "_passes", "shuffle")
    deadline = time.time() + 45
    try:
        while len(glob.glob(os.path.join(markers, "*.json"))) < 5:
            assert child.poll() is None, "the build finished before it could be interrupted"
            assert time.time() < deadline, "the shuffle pass did not start in time"
            time.sleep(0.002)
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # the driver's whole process group
        child.wait()
    done = len(glob.glob(os.path.join(markers, "*.json")))
    assert 5 <= done < k and not os.path.exists(os.path.join(out, "manifest.json"))

    again = build_token_stream([run], out, tokenizer, **OPTIONS)
    passes = {p["pass"]: p for p in json.load(open(os.path.join(out, "build.json")))["passes"]}
    assert passes["tokenize"]["ran"] == 0 and passes["tokenize"]["skipped"] == 3
    assert passes["scatter"]["ran"] == 0
    assert (passes["shuffle"]["ran"], passes["shuffle"]["skipped"]) == (k - done, done)  # only the unfinished
    assert again == clean_manifest
    assert _stream_files(out) == clean  # every token file and manifest.json, byte for byte
    assert not [f for f in os.listdir(out) if ".tmp-" in f]  # no half-written file left
