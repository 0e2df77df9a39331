"""The baseline recipe end to end on a small demo pool: every block, accounting, planted
duplicates removed, token streams and report, and a rerun that skips everything."""

from __future__ import annotations

import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.stats import check_invariant
from demopool import truth_path

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "pipelines"))

import baseline  # noqa: E402

pytestmark = pytest.mark.integration


def test_baseline_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--output", str(out), "--demo-docs", "600", "--workers", "2", "--no-progress", "--seq-len", "256",
            "--vocab-size", "2000", "--quality-top-fraction", "0.5", "--log-level", "WARNING"]
    assert baseline.main(argv) == 0

    run = json.loads((out / "run.json").read_text())
    stats = json.loads((out / "stats.json").read_text())
    assert run["status"] == "complete"
    names = [s["name"] for s in stats["stages"]]
    for expected in ("read", "html_extract", "langid", "gopher_quality", "exact_dedup", "minhash_dedup", "bff_dedup",
                     "quality_score", "quality_top_fraction"):
        assert expected in names
    assert names.index("html_extract") == 1  # the demo pool's WARC shard is extracted before anything else
    for st in stats["stages"]:
        assert check_invariant(st) == []
    read = stats["totals"]["read"]
    assert read["kept"] == 600  # documents; the WARC file's other records are dropped by the read stage
    assert read["in"] == 600 + sum(v[0] for v in read["dropped"].values())
    assert set(read["dropped"]) >= {"warc:not_response:request", "warc:not_response:metadata"}

    data = pa.concat_tables([pq.read_table(out / "data" / f) for f in sorted(os.listdir(out / "data"))])
    kept = set(data["id"].to_pylist())
    # the top-fraction selection keeps half of what reached it (ties cut deterministically)
    before = stats["totals"]["quality_top_fraction"]["in"]
    assert len(kept) == before // 2 or len(kept) == (before + 1) // 2
    # no planted exact copy survives together with its original; nothing non-English survives
    truth = pq.read_table(truth_path(str(tmp_path / "demo_pool"))).to_pylist()
    by_id = {t["id"]: t for t in truth}
    for t in truth:
        if t["category"] == "exact_dup" and t["id"] in kept:
            assert t.get("dup_of") not in kept
        if t["category"] == "non_english":
            assert t["id"] not in kept
    assert {by_id[i]["category"] for i in kept} <= {"clean", "long", "exact_dup", "near_dup"}

    manifest = json.loads((out / "tokens" / "manifest.json").read_text())
    assert manifest["seq_len"] == 256 and manifest["num_windows"] > 0
    assert manifest["recipe_hashes"] == [run["recipe_hash"]]
    report = (out / "report.md").read_text()
    assert "## Token streams" in report and "quality_top_fraction" in report

    # a rerun finds every shard complete and rewrites nothing
    before_bytes = {f: (out / "data" / f).read_bytes() for f in os.listdir(out / "data")}
    assert baseline.main(argv) == 0
    assert {f: (out / "data" / f).read_bytes() for f in os.listdir(out / "data")} == before_bytes
    assert "report:" in capsys.readouterr().out
