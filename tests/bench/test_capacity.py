"""bench/capacity.py: the capacity model in docs/scale.md is what the script prints from bench/results, every stage
is counted, per-document costs follow the document size, and the model is checked against the measured run."""

from __future__ import annotations

import importlib.util
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _capacity():
    spec = importlib.util.spec_from_file_location("bench_capacity", os.path.join(ROOT, "bench", "capacity.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _results(tmp_path, pipeline_mb_s: float = 1.0) -> str:
    """A results folder with every source the model reads; its run details on the first scale row only, as
    bench/scale.py stores them."""
    res = tmp_path / "results"
    res.mkdir()
    docs, workers = 1000, 2
    big = {"docs": docs, "text_bytes": docs * 1000,
           "fit_seconds": {"exact_dedup": 1.0, "url_dedup": 0.5, "minhash_dedup": 2.0, "bff_dedup": 3.0,
                           "quality_top_fraction": 0.25},
           "stage_cpu_seconds": {"read": 9.0, "exact_dedup": 1.0, "minhash_dedup": 1.0, "quality_score": 4.0}}
    (res / "scale.json").write_text(json.dumps([
        {"name": "scale_memory_per_process", "input": f"demo pool; {workers} workers", "n10": big, "commit": "s1"},
        {"name": "scale_time", "input": "demo pool", "commit": "s1"}]))
    (res / "heuristics.json").write_text(json.dumps([
        {"name": "refinedweb_langid_chain_vs_reading", "ours": 2.0, "input": "10 documents, 4.0 MB of text, one",
         "commit": "h1"}]))
    (res / "tokens.json").write_text(json.dumps([
        {"name": "tokens_build_per_cpu_second_vs_raw_sentencepiece_1w", "ours": 1e6, "commit": "t1"}]))
    (res / "extract.json").write_text(json.dumps([{"name": "extract_real_pages", "ours": 50.0, "commit": "e1"}]))
    (res / "dedup_substring.json").write_text(json.dumps([
        {"name": "substring_vs_one_suffix_array_real", "ours": 8.0, "text_mb": 10.0, "anchors": 700_000,
         "repeated_anchors": 50_000, "context_bytes": 400_000, "commit": "d1"}]))
    funnel = {"read": 1000, "refinedweb_lines": 500, "exact_dedup": 450, "url_dedup": 450, "minhash_dedup": 400,
              "quality_score": 400}
    (res / "pipeline.json").write_text(json.dumps([
        {"name": "pipeline_dclm_recipe_per_core", "ours": pipeline_mb_s, "funnel": funnel, "commit": "p1",
         "input": "1,000 distinct demo documents (1.0 MB of text) in 2 parquet shards"}]))
    return str(res)


def _args(results: str, **changes):
    import argparse

    defaults = dict(docs=1e9, doc_bytes=5000, keep_heuristics=0.35, keep_dedup=0.8, keep_quality=0.1,
                    tokens_per_byte=0.25, nodes=[10, 100], cores=32, node_memory=128, memory_per_worker=2,
                    warc=False, html_per_text=6.0, results=results)
    return argparse.Namespace(**{**defaults, **changes})


def test_every_stage_is_counted_from_the_row_that_carries_the_run(tmp_path):
    cap = _capacity()
    res = _results(tmp_path)
    rates = cap.measured_rates(res)
    # fit wall x 2 workers + per-shard CPU, per document: exact 1 x 2 + 1 = 3 ms; read is the heuristics' cost
    assert rates["global_core_s_per_doc"]["exact_dedup"] == 3.0 / 1000
    assert "read" not in rates["global_core_s_per_doc"]
    stages = cap.model(_args(res), rates)
    assert all(s["core_s"] is not None for s in stages), [s["stage"] for s in stages if s["core_s"] is None]
    block = cap.render(_args(res))
    assert "not measured" not in block.lower()
    total = float(next(ln for ln in block.splitlines() if ln.startswith("| **total**")).split("|")[7].replace(",", ""))
    # the total counts every stage of the default recipe; an opt-in stage (exact substrings) is listed, not added
    assert any(s["optional"] for s in stages)
    assert abs(total - sum(s["core_s"] for s in stages if not s["optional"]) / 3600) <= 1


def test_text_costs_follow_the_document_size_and_per_document_costs_do_not(tmp_path):
    cap = _capacity()
    rates = cap.measured_rates(_results(tmp_path))
    assert cap.per_doc_cost(rates, "minhash_dedup", 2000) == 2 * cap.per_doc_cost(rates, "minhash_dedup", 1000)
    assert cap.per_doc_cost(rates, "url_dedup", 2000) == cap.per_doc_cost(rates, "url_dedup", 1000)
    small = {s["stage"]: s["core_s"] for s in cap.model(_args("", doc_bytes=1000), rates)}
    large = {s["stage"]: s["core_s"] for s in cap.model(_args("", doc_bytes=2000), rates)}
    mh = "MinHash-LSH (5-grams, 14x8)"
    # the same documents, twice the text: twice the MinHash work
    assert abs(large[mh] / small[mh] - 2.0) < 1e-9


def test_the_model_is_checked_against_the_measured_run_and_says_when_it_is_off(tmp_path):
    cap = _capacity()
    rates = cap.measured_rates(_results(tmp_path))
    chk = cap.check_against_pipeline(rates)
    # 1 MB in 1,000 docs of 1,000 bytes: heuristics 1 MB / 2 MB/s = 0.5 core-s; then the documents entering each
    # stage: 500 x exact 3 ms + 450 x url 1 ms + 450 x minhash 5 ms + 400 x quality 4 ms = 5.8 core-s
    assert abs(chk["predicted_mb_s"] - 1.0 / 6.3) < 1e-9
    assert not chk["agrees"]
    block = cap.render(_args(str(tmp_path / "results")))
    assert "disagrees by more than 25%" in block
    agreeing = tmp_path / "ok"
    agreeing.mkdir()
    res = _results(agreeing, pipeline_mb_s=1.0 / 6.3 * 1.1)
    assert cap.check_against_pipeline(cap.measured_rates(res))["agrees"]
    assert "agrees within 25%" in cap.render(_args(res))


def test_the_check_splits_the_measured_run_into_its_stages_and_the_time_outside_them(tmp_path):
    """The run's core-seconds (its text / its rate) = the stage seconds it recorded + the time outside stages;
    the model's cost of the same stages is compared with the recorded stage seconds, not with the whole run."""
    cap = _capacity()
    res = _results(tmp_path, pipeline_mb_s=0.1)  # 1 MB at 0.1 MB/s per core: 10 core-s
    rows = json.loads((tmp_path / "results" / "pipeline.json").read_text())
    rows[0]["input"] += "; 2 workers a side"
    rows[0]["step_seconds"] = {"langid": 2.0, "minhash_dedup": 4.3}  # 6.3 core-s in the stages
    (tmp_path / "results" / "pipeline.json").write_text(json.dumps(rows))
    chk = cap.check_against_pipeline(cap.measured_rates(res))
    assert abs(chk["run_core_s"] - 10.0) < 1e-9 and abs(chk["stage_core_s"] - 6.3) < 1e-9
    assert abs(chk["outside_core_s"] - 3.7) < 1e-9 and chk["workers"] == 2
    assert abs(chk["model_core_s"] - 6.3) < 1e-9 and abs(chk["stages_off"]) < 1e-9  # the model: 6.3 core-s
    block = cap.render(_args(res))
    assert "its stages took 6 " in block and "(+0%)" in block and "the other 4 (37%) were outside the stages" in block
    # a row without step seconds (an older result) still gets the end-to-end check, without the split
    rows[0].pop("step_seconds")
    (tmp_path / "results" / "pipeline.json").write_text(json.dumps(rows))
    assert "run_core_s" not in cap.check_against_pipeline(cap.measured_rates(res))


def test_docs_scale_md_holds_what_capacity_py_prints():
    """The committed block in docs/scale.md equals what `python bench/capacity.py` renders from bench/results."""
    assert _capacity().main(["--check"]) == 0, "run: python bench/capacity.py"


def test_sources_name_their_cpu_and_the_block_says_when_the_cpus_differ(tmp_path):
    cap = _capacity()
    res = _results(tmp_path)
    block = cap.render(_args(res))
    assert "different CPUs" not in block  # rows without a machine: nothing to say
    for name, machine in (("pipeline.json", "AMD EPYC, 2 cores, 24 GiB"),
                          ("tokens.json", "Intel(R) Xeon(R) Processor, 2 cores")):
        path = os.path.join(res, name)
        with open(path) as f:
            rows = json.load(f)
        rows[0]["machine"] = machine
        with open(path, "w") as f:
            json.dump(rows, f)
    block = cap.render(_args(res))
    assert "`pipeline.json (full, commit p1, AMD EPYC)`" in block and "commit t1, Intel Xeon)" in block
    assert "measured on different CPUs (AMD EPYC, Intel Xeon)" in block
