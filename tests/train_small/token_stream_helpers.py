"""Helpers shared by train_small tests: write the DESIGN.md token-stream format directly with pyarrow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa


def write_token_stream(path: Path, windows: np.ndarray, vocab_size: int, n_files: int = 2,
                       batch_rows: int = 16) -> Path:
    """Write ``windows (n, seq_len + 1)`` as the DESIGN.md token-stream format (IPC streams + manifest)."""
    path.mkdir(parents=True, exist_ok=True)
    n, width = windows.shape
    dtype = np.uint16 if vocab_size <= 65535 else np.uint32
    typ = pa.list_(pa.uint16() if dtype == np.uint16 else pa.uint32(), width)
    files = []
    for i, part in enumerate(np.array_split(windows.astype(dtype), n_files)):
        name = f"tokens-{i:05d}.arrow"
        schema = pa.schema([("tokens", typ)])
        with pa.OSFile(str(path / name), "wb") as sink, pa.ipc.new_stream(sink, schema) as w:
            for s in range(0, len(part), batch_rows):
                chunk = part[s : s + batch_rows]
                arr = pa.FixedSizeListArray.from_arrays(pa.array(chunk.reshape(-1)), width)
                w.write_batch(pa.record_batch([arr], schema=schema))
        files.append({"name": name, "windows": len(part)})
    manifest = {"seq_len": width - 1, "vocab_size": vocab_size, "eos_id": 0, "dtype": np.dtype(dtype).name,
                "files": files, "num_windows": n, "seed": 0}
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


def learnable_windows(n: int, seq_len: int, alphabet: int = 64, seed: int = 0) -> np.ndarray:
    """Arithmetic progressions mod ``alphabet`` with a random start and stride in {1, 2, 3}: after two tokens
    the rest of the window is determined, so a model can drive the loss far below log(vocab)."""
    rng = np.random.default_rng(seed)
    start = rng.integers(0, alphabet, size=(n, 1))
    stride = rng.integers(1, 4, size=(n, 1))
    return (start + stride * np.arange(seq_len + 1)[None, :]) % alphabet + 1  # id 0 is reserved (EOS)
