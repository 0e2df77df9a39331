"""Token streams for the trainer, read through ``curation.tokens.TokenStream``.

Format (DESIGN.md "Token streams", written by ``curation.tokens``): a folder with ``manifest.json`` (``seq_len``,
``dtype``, ``vocab_size``, ``eos_id``, ``files: [{"name", "windows"}]``, ``num_windows``, ...) and Arrow IPC
*streaming* files with one column ``tokens: fixed_size_list<uint16|uint32>[seq_len + 1]``, memory-mapped and
viewed as ``(n, seq_len + 1)`` numpy arrays without a copy.

Order: position ``p`` (windows consumed so far, counted across epochs) maps to epoch ``p // N`` and window
``perm_epoch[p % N]`` with ``perm_epoch = default_rng([seed, epoch]).permutation(N)``, so a run resumed at
position ``p`` reads exactly what the uninterrupted run would have read.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from curation.tokens.manifest import stream_identity
from curation.tokens.stream import TokenStream

logger = logging.getLogger(__name__)

__all__ = ["TokenStream", "open_token_stream", "manifest_sha256", "stream_identity", "to_batch"]


def manifest_sha256(data_dir: str | Path) -> str | None:
    """sha256 of ``manifest.json`` (identifies the data mix in run metadata); None when absent."""
    p = Path(data_dir) / "manifest.json"
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None


def open_token_stream(data_dir: str | Path, seed: int = 0) -> TokenStream:
    """Open a token-stream folder for one process, windows in the seed's order; clear errors on bad input."""
    path = Path(data_dir)
    if not (path / "manifest.json").exists():
        raise FileNotFoundError(f"{path / 'manifest.json'} not found: expected a token-stream folder")
    try:
        stream = TokenStream(str(path), seed=seed)
    except KeyError as e:
        raise ValueError(f"{path}/manifest.json: missing field {e}") from None
    if stream.num_windows == 0:
        raise ValueError(f"{path}: the stream holds no windows")
    return stream


def to_batch(windows: np.ndarray, seq_len: int, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows ``(n, >= seq_len + 1)`` -> ``(inputs, targets)`` int64 tensors of shape ``(n, seq_len)``."""
    x = torch.from_numpy(windows[:, : seq_len + 1].astype(np.int64))
    if torch.device(device).type == "cuda":
        x = x.pin_memory().to(device, non_blocking=True)
    else:
        x = x.to(device)
    return x[:, :-1], x[:, 1:]
