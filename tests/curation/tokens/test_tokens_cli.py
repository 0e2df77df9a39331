"""CLI (--help covers every flag; a build through the CLI equals the API's) and the mix arithmetic."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from curation.tokens.__main__ import _parser, main
from curation.tokens.mix import (
    SourceSpec,
    as_specs,
    largest_remainder,
    parse_count,
    parse_source,
    source_names,
    target_windows,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_help_documents_every_flag():
    parser = _parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        text = p.format_help()
        for action in p._actions:
            for opt in action.option_strings:
                assert opt in text, (name, opt)
            assert action.help, (name, action.dest)  # no undocumented flag
    out = subprocess.run(
        [sys.executable, "-m", "curation.tokens", "build", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0 and "--train-tokenizer" in out.stdout and "DIR:=TOKENS" in out.stdout


def test_cli_build_equals_api(corpus, tokenizer, tmp_path, capsys):
    from curation.tokens import build_token_stream

    cli_out, api_out = str(tmp_path / "cli"), str(tmp_path / "api")
    rc = main(
        ["build", "--runs", f"{corpus['web']}:3", f"{corpus['code']}:1", "--out", cli_out, "--tokenizer", tokenizer,
         "--seq-len", "31", "--seed", "9", "--total-tokens", "4k", "--num-shards", "2"]
    )  # fmt: skip
    assert rc == 0 and json.loads(capsys.readouterr().out)["windows"] == 125  # 4000 / 32 windows
    m = build_token_stream(
        [(corpus["web"], 3.0), (corpus["code"], 1.0)], api_out, tokenizer, seq_len=31, seed=9, total_tokens=4000,
        num_shards=2,
    )  # fmt: skip
    for f in m["files"]:
        assert (
            open(os.path.join(cli_out, f["name"]), "rb").read() == open(os.path.join(api_out, f["name"]), "rb").read()
        )
    assert m["tokens_per_source"] == {"web": 94 * 32, "code": 31 * 32}  # 3:1 of 125 windows, largest remainder


def test_cli_trains_a_tokenizer_when_asked(corpus, tmp_path, capsys):
    out = str(tmp_path / "t")
    assert main(["build", "--runs", corpus["code"], "--out", out, "--train-tokenizer", "--vocab-size", "400",
                 "--seq-len", "15", "--no-shuffle"]) == 0  # fmt: skip
    m = json.load(open(os.path.join(out, "manifest.json")))
    assert m["tokenizer"]["source_path"] == os.path.abspath(os.path.join(out, "tokenizer", "spm.model"))
    assert m["vocab_size"] == 400 and m["tokenizer"]["training"]["requested_vocab_size"] == 400
    assert main(["inspect", out]) == 0 and "TokenStream" in capsys.readouterr().out


def test_source_parsing():
    assert parse_source("runs/web") == SourceSpec("runs/web")
    assert parse_source("runs/web:0.7") == SourceSpec("runs/web", weight=0.7)
    assert parse_source("runs/web:=50M") == SourceSpec("runs/web", tokens=50_000_000)
    assert parse_source("s3://bucket/run") == SourceSpec("s3://bucket/run")
    assert parse_source("s3://bucket/run:2") == SourceSpec("s3://bucket/run", weight=2.0)
    assert parse_count("2.5B") == 2_500_000_000 and parse_count("1e6") == 1_000_000 and parse_count("300k") == 300_000
    with pytest.raises(ValueError):
        parse_count("lots")
    with pytest.raises(ValueError):
        SourceSpec("x", weight=-1)
    with pytest.raises(ValueError, match="do not mix"):
        as_specs([SourceSpec("a", weight=1), SourceSpec("b", tokens=5)])
    with pytest.raises(ValueError, match="share a name"):
        as_specs([SourceSpec("x/run", name="a"), SourceSpec("y/run", name="a")])
    assert source_names(as_specs(["x/run", "y/run", "z/web", "*.parquet"])) == ["run-0", "run-1", "web", "source3"]


@pytest.mark.parametrize("total", [0, 1, 7, 1000, 12345])
def test_largest_remainder_sums_and_stays_within_one(total):
    shares = np.array([0.5, 0.3, 0.2 - 1e-12, 1e-12])
    shares = shares / shares.sum()
    out = largest_remainder(shares, total)
    assert out.sum() == total and np.all(np.abs(out - shares * total) < 1)


def test_targets_by_mode():
    specs = as_specs([("a", 1.0), ("b", 3.0)])
    t, shares = target_windows(specs, [100, 90], seq_len=9)  # no total: b (weight 0.75) is the scarcer
    assert list(t) == [30, 90] and list(shares) == [0.25, 0.75]
    t, _ = target_windows(specs, [100, 90], seq_len=9, total_tokens=4000)  # 400 windows -> repeats
    assert list(t) == [100, 300]
    t, shares = target_windows(as_specs(["a", "b"]), [100, 90], seq_len=9)
    assert list(t) == [100, 90] and shares is None
    t, _ = target_windows(as_specs([SourceSpec("a", tokens=55), SourceSpec("b", tokens=0)]), [100, 90], seq_len=9)
    assert list(t) == [6, 0]  # round(55 / 10)
