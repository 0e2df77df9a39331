"""pipelines/ablate.py across proxy families: trials per (family, mix, seed), reference domains in the trial
key, the ranking metric, and the leaderboard's rank agreement section (synthetic results: the training
itself is covered by tests/train_small/eval/test_agreement.py and test_eval_ablate.py)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "pipelines"))

import ablate  # noqa: E402

from pipelines.leaderboard import agreement_markdown, leaderboard, leaderboard_markdown  # noqa: E402
from pipelines.mixes import DEFAULT_MIXES  # noqa: E402
from pipelines.trials import trial_items  # noqa: E402


def _args(tmp_path, *extra):
    return ablate.build_parser().parse_args(["-o", str(tmp_path / "out"), "--seeds", "2", *extra])


def _streams(tmp_path, names):
    out = {}
    for n in names:
        d = tmp_path / "tokens" / n
        d.mkdir(parents=True)
        (d / "manifest.json").write_text(f'{{"mix": "{n}"}}')
        out[n] = str(d)
    return out


def test_trials_per_family_with_distinct_keys_and_folders(tmp_path):
    mixes = [DEFAULT_MIXES["raw"], DEFAULT_MIXES["heuristics"]]
    streams = _streams(tmp_path, [m.name for m in mixes])
    plain = trial_items(_args(tmp_path), mixes, streams, {"clean": ["x"]})
    assert [it.key for it in plain] == ["raw-seed0", "raw-seed1", "heuristics-seed0", "heuristics-seed1"]
    assert all(it.args[0]["arch"] is None and it.args[0]["reference"] is None for it in plain)
    args = _args(tmp_path, "--archs", "openelm,mobilellm", "--heldout-ref", "wiki=/data/wiki.txt")
    both = trial_items(args, mixes, streams, {"clean": ["x"]})
    assert len(both) == 8 and len({it.key for it in both}) == 8
    assert {it.args[0]["arch"] for it in both} == {"openelm", "mobilellm"}
    assert all(it.args[0]["reference"] == ["wiki=/data/wiki.txt"] for it in both)
    assert len({it.args[0]["out_dir"] for it in both}) == 8
    keys = {(it.args[0]["arch"], it.key.split("-")[0], it.args[0]["seed"]): it.args[0]["extra"]["trial_key"]
            for it in both}
    # the pass owns the resume: the stream's manifest is an input, result.json an output
    assert all(it.inputs == (str(tmp_path / "tokens" / it.key.split("-")[0] / "manifest.json"),) for it in plain)
    assert all(it.outputs[0].endswith("result.json") for it in both)
    assert keys[("openelm", "raw", 0)] != keys[("mobilellm", "raw", 0)]
    # a reference domain changes what a trial measures: another key than the plain trial's
    assert keys[("openelm", "raw", 0)] != plain[0].args[0]["extra"]["trial_key"]


def _result(arch, mix, seed, bpb):
    return {"arch": arch, "seed": seed, "extra": {"mix": mix},
            "reference": {"domains": {"wiki": {"loss": bpb * 2, "bits_per_byte": bpb}}, "mean_bits_per_byte": bpb}}


def test_leaderboard_ranks_by_reference_bits_and_reports_rank_agreement():
    from train_small.eval.agreement import rank_agreement_from_results

    mixes = list(DEFAULT_MIXES.values())[:3]
    bpb = {"raw": 2.0, "heuristics": 1.8, "heuristics+dedup": 1.7}
    results = [_result(a, m.name, s, bpb[m.name] + 0.01 * s + (0.05 if a == "mobilellm" else 0))
               for a in ("openelm", "mobilellm") for m in mixes for s in range(3)]
    primary = ablate.choose_primary(results, None)
    assert primary == "reference/mean_bits_per_byte"
    rows = leaderboard([r for r in results if r["arch"] == "openelm"], mixes, primary)
    assert [r["mix"] for r in rows] == ["heuristics+dedup", "heuristics", "raw"]
    assert rows[0]["beats_raw"] is True and rows[0]["delta_vs_raw"] > 0
    md = "\n".join(leaderboard_markdown(rows, primary))
    assert "wiki bits/byte" in md
    agreement = rank_agreement_from_results(results, primary)
    assert agreement["tau_mean"] == 1.0 and agreement["n_seeds"] == 3
    text = "\n".join(agreement_markdown(agreement))
    assert "mobilellm~openelm" in text and "1.000" in text
    # one seed: "beats raw" is not decided
    one = leaderboard([r for r in results if r["arch"] == "openelm" and r["seed"] == 0], mixes, primary)
    assert all(r.get("beats_raw") is None for r in one if r["mix"] != "raw")


def test_a_stream_rebuilt_with_the_same_windows_keeps_its_trials(tmp_path):
    """Trial keys and folders follow the stream's content digest, not its manifest's bytes: new bookkeeping (a
    rebuild: other paths, another build time) resumes the trials, other windows recompute them; a stream without
    a digest keeps its manifest as the pass input."""
    import json

    mixes = [DEFAULT_MIXES["raw"]]
    streams = _streams(tmp_path, ["raw"])
    man = Path(streams["raw"], "manifest.json")

    def keyed(content, note):
        man.write_text(json.dumps({"content_sha256": content, "files": [], "note": note}))
        it = trial_items(_args(tmp_path), mixes, streams, {"clean": ["x"]})[0]
        return it.args[0]["extra"]["trial_key"], it.args[0]["out_dir"], it.inputs

    k1, out1, inputs = keyed("a" * 64, "first build")
    assert inputs == ()
    assert keyed("a" * 64, "rebuilt elsewhere")[:2] == (k1, out1)
    k3, out3, _ = keyed("b" * 64, "first build")
    assert k3 != k1 and out3 != out1
    man.write_text('{"mix": "raw"}')  # built before content digests
    assert trial_items(_args(tmp_path), mixes, streams, {"clean": ["x"]})[0].inputs == (str(man),)
