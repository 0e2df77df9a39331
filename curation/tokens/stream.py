"""TokenStream: the trainer's reader of a token-stream folder (memory-mapped, zero-copy numpy).

::

    from curation.tokens import TokenStream
    ts = TokenStream("out/tokens", seed=0, rank=rank, world_size=world)
    for batch in ts.iter_batches(batch_size=8, start=resume_position):   # (8, seq_len + 1) numpy
        x = torch.from_numpy(batch.astype(np.int64))                      # in train_small, not here
        inputs, targets = x[:, :-1], x[:, 1:]

Each file is opened with ``pa.ipc.open_stream(pa.memory_map(path))``; every record
batch's values buffer is viewed as an ``(n, seq_len + 1)`` numpy array without a
copy (read-only: it is the mapped file).

Order. The build already shuffled the windows globally. ``seed=None`` reads them
in file order; a seed reads them in a permutation drawn from ``(seed, epoch)``,
a fresh one each epoch. Ranks: the epoch's order is cut into ``world_size``
contiguous blocks of ``num_windows // world_size`` windows (the last
``num_windows % world_size`` are skipped, so every rank takes the same number
of steps); rank ``r`` reads block ``r``. Ranks are disjoint and cover the epoch.

Zero copy. ``window(i)`` is always a view. A batch is a view when its windows
are consecutive in one record batch (``seed=None``, except where a batch crosses
a record-batch boundary); otherwise it is one gather into a fresh array.

Resume. A position counts the windows this rank has consumed, across epochs:
position ``p`` is window ``p % len(self)`` of epoch ``p // len(self)``. After ``k``
batches, ``iter_batches(batch_size, start=k * batch_size, loop=True)`` yields
exactly what an uninterrupted run would have read next. With ``world_size=1``
this is the rule of ``train_small.data.TokenWindows``
(``default_rng([seed, epoch]).permutation(num_windows)``), so both readers agree.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from curation import storage

MANIFEST = "manifest.json"


class TokenStream:
    """A token-stream folder (manifest.json + Arrow stream files) as numpy windows."""

    def __init__(
        self, path: str, *, seed: int | None = None, rank: int = 0, world_size: int = 1, verify: bool = True
    ) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if not storage.is_local(path):
            raise ValueError(f"{path}: TokenStream memory-maps local files; copy the stream to local disk first")
        self.path = path
        self.manifest: dict[str, Any] = storage.read_json(os.path.join(path, MANIFEST))
        self.seq_len: int = int(self.manifest["seq_len"])
        self.window_len: int = self.seq_len + 1
        self.dtype = np.dtype(self.manifest["dtype"])
        self.eos_id: int = int(self.manifest["eos_id"])
        self.vocab_size: int = int(self.manifest["vocab_size"])
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self._maps: list[pa.MemoryMappedFile] = []
        self.chunks: list[np.ndarray] = []  # zero-copy (n_i, seq_len + 1) views, in file order
        for f in self.manifest["files"]:
            fpath = os.path.join(path, f["name"])
            mm = pa.memory_map(fpath)
            self._maps.append(mm)
            rows = 0
            for batch in pa.ipc.open_stream(mm):
                arr = self._view(batch, fpath)
                if len(arr):
                    self.chunks.append(arr)
                rows += len(arr)
            if verify and rows != f["windows"]:
                raise ValueError(f"{fpath}: {rows} windows, the manifest says {f['windows']}")
        sizes = np.array([len(c) for c in self.chunks], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.num_windows = int(self._starts[-1])
        if verify and self.num_windows != self.manifest["num_windows"]:
            raise ValueError(f"{path}: {self.num_windows} windows, the manifest says {self.manifest['num_windows']}")
        self.per_rank = self.num_windows // world_size
        self._perm_epoch: int | None = None
        self._perm: np.ndarray | None = None

    def _view(self, batch: pa.RecordBatch, fpath: str) -> np.ndarray:
        col = batch.column(0)
        t = col.type
        if not pa.types.is_fixed_size_list(t) or t.list_size != self.window_len:
            raise ValueError(f"{fpath}: column type {t}, expected fixed_size_list<{self.dtype}>[{self.window_len}]")
        values = col.flatten().to_numpy(zero_copy_only=True)
        if values.dtype != self.dtype:
            raise ValueError(f"{fpath}: values are {values.dtype}, the manifest says {self.dtype}")
        return values.reshape(len(col), self.window_len)

    def __len__(self) -> int:
        """Windows this rank reads per epoch."""
        return self.per_rank

    def __repr__(self) -> str:
        return (
            f"TokenStream({self.path!r}, windows={self.num_windows}, seq_len={self.seq_len}, dtype={self.dtype}, "
            f"seed={self.seed}, rank={self.rank}/{self.world_size})"
        )

    # order -------------------------------------------------------------------------------------------------------
    def _order(self, epoch: int) -> np.ndarray | None:
        if self.seed is None:
            return None
        if self._perm_epoch != epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_windows)
            self._perm_epoch = epoch
        return self._perm

    def global_ids(self, start: int, n: int) -> np.ndarray:
        """File-order indices of this rank's windows at positions ``[start, start + n)`` (epochs wrap around)."""
        if start < 0 or n < 0:
            raise IndexError(f"negative position or count: start={start}, n={n}")
        if self.per_rank == 0:
            raise IndexError(f"{self.path}: no windows for rank {self.rank} of {self.world_size}")
        out = np.empty(n, dtype=np.int64)
        pos, filled, lo = start, 0, self.rank * self.per_rank
        while filled < n:
            epoch, off = divmod(pos, self.per_rank)
            take = min(n - filled, self.per_rank - off)
            order = self._order(epoch)
            a, b = lo + off, lo + off + take
            out[filled : filled + take] = np.arange(a, b) if order is None else order[a:b]
            filled, pos = filled + take, pos + take
        return out

    # access ------------------------------------------------------------------------------------------------------
    def window_at(self, gid: int) -> np.ndarray:
        """The window with global index ``gid`` (file order), a zero-copy view."""
        if not 0 <= gid < self.num_windows:
            raise IndexError(gid)
        c = int(np.searchsorted(self._starts, gid, side="right") - 1)
        return self.chunks[c][gid - self._starts[c]]

    def window(self, position: int) -> np.ndarray:
        """This rank's window at ``position`` (across epochs), a zero-copy view of shape (seq_len + 1,)."""
        return self.window_at(int(self.global_ids(position, 1)[0]))

    def __getitem__(self, position: int) -> np.ndarray:
        return self.window(position)

    def gather(self, gids: np.ndarray) -> np.ndarray:
        """Windows by global index, shape (len(gids), seq_len + 1); a view when they are consecutive in one chunk."""
        gids = np.asarray(gids, dtype=np.int64)
        if gids.size == 0:
            return np.empty((0, self.window_len), dtype=self.dtype)
        c = np.searchsorted(self._starts, gids, side="right") - 1
        if c[0] == c[-1] and gids[-1] - gids[0] == gids.size - 1 and np.all(np.diff(gids) == 1):
            lo = int(gids[0] - self._starts[c[0]])
            return self.chunks[int(c[0])][lo : lo + gids.size]
        out = np.empty((gids.size, self.window_len), dtype=self.dtype)
        for u in np.unique(c):
            m = c == u
            out[m] = self.chunks[int(u)][gids[m] - self._starts[u]]
        return out

    def batch(self, start: int, n: int) -> np.ndarray:
        """This rank's windows at positions ``[start, start + n)``, shape (n, seq_len + 1); epochs wrap around."""
        return self.gather(self.global_ids(start, n))

    def iter_batches(
        self, batch_size: int, start: int = 0, *, loop: bool = False, drop_last: bool = True
    ) -> Iterator[np.ndarray]:
        """Yield (batch_size, seq_len + 1) arrays from this rank's position ``start``.

        Resume a run after ``k`` batches with ``start = k * batch_size``. ``loop=True``
        goes on forever, through epochs (a fresh permutation each epoch when seeded;
        a batch may straddle two epochs, as train_small's reader does). Otherwise it
        stops at the end of the epoch that holds ``start``, skipping a last partial
        batch when ``drop_last``.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.per_rank == 0:
            return
        pos = start
        end = (start // self.per_rank + 1) * self.per_rank
        while loop or pos < end:
            n = batch_size if loop else min(batch_size, end - pos)
            if n < batch_size and drop_last:
                return
            yield self.batch(pos, n)
            pos += n
