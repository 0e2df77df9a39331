"""Memory-mapped Arrow token streams, read in a seed-determined order, resumable at a window position.

Format (DESIGN.md "Token streams", written by ``curation.tokens``): a folder with ``manifest.json`` (``seq_len``,
``dtype``, ``vocab_size``, ``eos_id``, ``files: [{"name", "windows"}]``, ...) and Arrow IPC *streaming* files with
one column ``tokens: fixed_size_list<uint16|uint32>[seq_len + 1]``. Every record batch's value buffer is viewed
as an ``(n, seq_len + 1)`` numpy array straight from the mapped file (no copy).

Order: position ``p`` (windows consumed so far, counted across epochs) maps to epoch ``p // N`` and the window
``perm_epoch[p % N]`` with ``perm_epoch = default_rng([seed, epoch]).permutation(N)`` -- the same rule as
``curation.tokens.TokenStream``, so a run resumed at position ``p`` reads exactly what it would have read.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

logger = logging.getLogger(__name__)

__all__ = ["TokenWindows", "manifest_sha256", "to_batch"]


def manifest_sha256(data_dir: str | Path) -> str | None:
    """sha256 of ``manifest.json`` (identifies the data mix in run metadata); None when absent."""
    p = Path(data_dir) / "manifest.json"
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None


class TokenWindows:
    """All windows of a token-stream folder, as zero-copy numpy views, in a seeded order."""

    def __init__(self, data_dir: str | Path, seed: int = 0) -> None:
        self.path = Path(data_dir)
        mpath = self.path / "manifest.json"
        if not mpath.exists():
            raise FileNotFoundError(f"{mpath} not found: expected a token-stream folder (manifest.json + .arrow)")
        self.manifest: dict[str, Any] = json.loads(mpath.read_text())
        try:
            self.seq_len = int(self.manifest["seq_len"])
            self.vocab_size = int(self.manifest["vocab_size"])
        except KeyError as e:
            raise ValueError(f"{mpath}: missing field {e}") from None
        self.eos_id = self.manifest.get("eos_id")
        self.dtype = np.dtype(self.manifest.get("dtype", "uint16"))
        self.seed = seed
        files = self.manifest.get("files")
        names = [f["name"] for f in files] if files else sorted(p.name for p in self.path.glob("*.arrow"))
        if not names:
            raise ValueError(f"{self.path}: no token files")
        self._maps, self.chunks = [], []
        for i, name in enumerate(names):
            mm = pa.memory_map(str(self.path / name))
            self._maps.append(mm)
            rows = 0
            for batch in pa.ipc.open_stream(mm):
                arr = self._view(batch, name)
                rows += len(arr)
                if len(arr):
                    self.chunks.append(arr)
            if files and "windows" in files[i] and rows != int(files[i]["windows"]):
                raise ValueError(f"{name}: {rows} windows, the manifest says {files[i]['windows']}")
        sizes = np.array([len(c) for c in self.chunks], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(sizes)])
        self.num_windows = int(self._starts[-1])
        if self.num_windows == 0:
            raise ValueError(f"{self.path}: the stream holds no windows")
        self._perm_cache: tuple[int, np.ndarray] | None = None

    def _view(self, batch: pa.RecordBatch, name: str) -> np.ndarray:
        col = batch.column(batch.schema.get_field_index("tokens")) if "tokens" in batch.schema.names else None
        t = None if col is None else col.type
        if t is None or not pa.types.is_fixed_size_list(t) or t.list_size != self.seq_len + 1:
            raise ValueError(f"{name}: need a 'tokens' fixed_size_list column of size {self.seq_len + 1}, got {t}")
        values = col.flatten().to_numpy(zero_copy_only=True)
        if values.dtype not in (np.uint16, np.uint32):
            raise ValueError(f"{name}: token dtype {values.dtype} is not uint16/uint32")
        return values.reshape(len(col), self.seq_len + 1)

    def __len__(self) -> int:
        return self.num_windows

    def _perm(self, epoch: int) -> np.ndarray:
        if self._perm_cache is None or self._perm_cache[0] != epoch:
            self._perm_cache = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.num_windows))
        return self._perm_cache[1]

    def global_ids(self, start: int, n: int) -> np.ndarray:
        """File-order indices of the windows at positions ``[start, start + n)`` (epochs wrap around)."""
        out = np.empty(n, dtype=np.int64)
        pos, filled = start, 0
        while filled < n:
            epoch, off = divmod(pos, self.num_windows)
            take = min(n - filled, self.num_windows - off)
            out[filled : filled + take] = self._perm(epoch)[off : off + take]
            filled, pos = filled + take, pos + take
        return out

    def batch(self, start: int, n: int) -> np.ndarray:
        """``(n, seq_len + 1)`` windows at positions ``[start, start + n)``."""
        gids = self.global_ids(start, n)
        chunk = np.searchsorted(self._starts, gids, side="right") - 1
        out = np.empty((n, self.seq_len + 1), dtype=self.chunks[0].dtype)
        for c in np.unique(chunk):
            m = chunk == c
            out[m] = self.chunks[int(c)][gids[m] - self._starts[c]]
        return out


def to_batch(windows: np.ndarray, seq_len: int, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows ``(n, >= seq_len + 1)`` -> ``(inputs, targets)`` int64 tensors of shape ``(n, seq_len)``."""
    x = torch.from_numpy(windows[:, : seq_len + 1].astype(np.int64))
    if torch.device(device).type == "cuda":
        x = x.pin_memory().to(device, non_blocking=True)
    else:
        x = x.to(device)
    return x[:, :-1], x[:, 1:]
