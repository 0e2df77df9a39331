"""Fixtures for train_small tests.

Without CUDA the Triton kernels run in Triton's interpreter: TRITON_INTERPRET must be set before any kernel
module is imported (``triton.jit`` reads it when decorating). Model and trainer tests use the reference path
(``use_kernels=False``), which never imports the kernel modules, so the setting only affects kernel tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from token_stream_helpers import learnable_windows, write_token_stream

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture
def learnable_stream(tmp_path: Path) -> Path:
    return write_token_stream(tmp_path / "tokens", learnable_windows(256, 64), vocab_size=512)
