"""pipelines/baseline.py from raw crawl: WARC input -> extraction -> the DCLM heuristics, through the
runner, with the read stage's accounting, and the --extractor switch."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.runner import InputSpec
from curation.stats import check_invariant
from demopool import generate_pool, truth_path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "pipelines"))

import baseline  # noqa: E402

from pipelines.recipes import extraction_stages  # noqa: E402

CLUEWEB = ROOT / ".." / "shared" / "data" / "corpora" / "edge" / "resiliparse_clueweb-quirk.warc.gz"


def test_extraction_stages_only_for_warc_inputs():
    assert extraction_stages([InputSpec("a.parquet"), InputSpec("b.jsonl.zst")]) == []
    assert extraction_stages([InputSpec("x.warc.wet.gz")]) == []  # WET is already text
    (st,) = extraction_stages([InputSpec("a.parquet"), InputSpec("cc/x.warc.gz")], "trafilatura")
    assert st.name == "html_extract" and st.backend == "trafilatura"
    (st,) = extraction_stages([InputSpec("odd.name", format="warc")])
    assert st.backend == "resiliparse"
    helptext = baseline.build_parser().format_help()
    assert "--extractor" in helptext and "trafilatura" in helptext


@pytest.mark.integration
def test_baseline_on_warc_input(tmp_path):
    pool = generate_pool(str(tmp_path / "pool"), n_docs=300, seed=4)
    cc = tmp_path / "cc"
    cc.mkdir()
    (rel,) = pool["formats"]["warc"]["files"]
    shutil.copy(tmp_path / "pool" / rel, cc / "demo.warc.gz")
    n_pages = pool["formats"]["warc"]["docs"]
    if CLUEWEB.exists():
        shutil.copy(CLUEWEB, cc / "clueweb.warc.gz")
    out = tmp_path / "run"
    argv = ["-i", str(cc / "*.warc.gz"), "-o", str(out), "--blocks", "heuristics", "--no-tokens",
            "--workers", "2", "--no-progress", "--log-level", "WARNING"]
    assert baseline.main(argv) == 0
    stats = json.loads((out / "stats.json").read_text())
    names = [s["name"] for s in stats["stages"]]
    assert names[:2] == ["read", "html_extract"] and "gopher_quality" in names
    for st in stats["stages"]:
        assert check_invariant(st) == []
    read = stats["totals"]["read"]
    assert read["quarantined"] == {}
    assert read["kept"] == n_pages + (29 if CLUEWEB.exists() else 0)
    assert read["dropped"]["warc:not_response:request"][0] == n_pages + n_pages // 20
    assert stats["totals"]["html_extract"]["in"] == read["kept"]
    data = pa.concat_tables([pq.read_table(out / "data" / f) for f in sorted(os.listdir(out / "data"))])
    assert "is_html" not in data.column_names and data.num_rows > 0
    assert not any("<p>" in t or "<html" in t.lower() for t in data.column("text").to_pylist())
    dropped = pa.concat_tables([pq.read_table(p) for p in sorted((out / "dropped").rglob("*.parquet"))])
    assert set(dropped.filter(pa.compute.equal(dropped.column("stage"), "read")).column("reason").to_pylist()) >= {
        "warc:not_response:request", "warc:not_response:metadata", "warc:not_response:warcinfo"}
    # the planted categories: the clean prose survives extraction + heuristics, most junk pages do not
    # (a spam comment section can tip a bullet-list page over the bullet-ratio rule: extraction matters)
    truth = [t for t in pq.read_table(truth_path(str(tmp_path / "pool"))).to_pylist() if t["format"] == "warc"]
    kept = set(data.column("id").to_pylist())
    good = [t["id"] in kept for t in truth if t["category"] in ("clean", "long")]
    junk = [t["id"] in kept for t in truth if t["category"] not in ("clean", "long", "exact_dup", "near_dup")]
    assert sum(good) >= 0.9 * len(good) and sum(junk) <= 0.25 * len(junk), (sum(good), len(good), sum(junk), len(junk))
    run = json.loads((out / "run.json").read_text())
    # the other extractor is another recipe
    out2 = tmp_path / "run2"
    assert baseline.main([*argv[:2], "-o", str(out2), *argv[4:], "--extractor", "trafilatura"]) == 0
    assert json.loads((out2 / "run.json").read_text())["recipe_hash"] != run["recipe_hash"]
