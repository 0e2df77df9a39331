"""The baseline recipe's language-ID flags reach the stage, and a missing model is a clear error."""

from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "pipelines"))

import baseline  # noqa: E402


def _langid(argv: list[str]):  # noqa: ANN202
    args = baseline.build_parser().parse_args(["--blocks", "heuristics", *argv])
    return next(s for s in baseline.build_recipe(args) if s.name == "langid")


def test_langid_flags(tmp_path):  # noqa: ANN001
    pytest.importorskip("py3langid")
    assert _langid(["--langid-backend", "py3langid"]).backend == "py3langid"
    model = tmp_path / "lid.bin"
    model.write_bytes(b"not checked until a worker loads it")
    stage = _langid(["--langid-model", str(model)])
    assert stage.backend == "fasttext" and stage.model_path == str(model)
    with pytest.raises(SystemExit, match="is not a file"):
        _langid(["--langid-model", str(tmp_path / "missing.bin")])
