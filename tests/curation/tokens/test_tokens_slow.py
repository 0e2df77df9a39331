"""Longer checks (pytest -m slow): a larger build across many buckets on Ray, and a Ray worker killed mid-task."""

from __future__ import annotations

import collections
import os
import signal
import threading
import time

import numpy as np
import pytest

from curation.tokens import TokenStream, build_token_stream
from tests.curation.tokens.conftest import write_run

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("big") / "run")
    write_run(root, "big", [1500] * 8, seed=7)
    return root


def _descends_from_us(pid: int) -> bool:
    """True when ``pid`` is a descendant of this process (the local Ray this test started), never another's."""
    me = os.getpid()
    while pid > 1:
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state: the parent's pid
        if pid == me:
            return True
    return False


def _task_pids() -> list[int]:
    """Our Ray workers currently running one of our pass items (process title ``ray::_execute_retrying``)."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                cmd = open(f"/proc/{d}/cmdline", "rb").read().replace(b"\0", b" ")
            except OSError:
                continue
            if cmd.startswith(b"ray::_execute_retrying") and _descends_from_us(int(d)):
                pids.append(int(d))
    return pids


def _files(out: str) -> dict[str, bytes]:
    return {f: open(os.path.join(out, f), "rb").read() for f in sorted(os.listdir(out)) if f.endswith(".arrow")}


def test_many_buckets_two_workers_equal_one_worker_and_lose_nothing(big_run, tokenizer, ray_session, tmp_path):
    kw = dict(seq_len=255, seed=1, max_shard_bytes=64 << 10, executor="ray")
    a = build_token_stream([big_run], str(tmp_path / "a"), tokenizer, num_workers=1, **kw)
    b = build_token_stream([big_run], str(tmp_path / "b"), tokenizer, num_workers=2, **kw)
    assert a["num_buckets"] >= 10 and _files(str(tmp_path / "a")) == _files(str(tmp_path / "b"))
    plain = build_token_stream([big_run], str(tmp_path / "p"), tokenizer, shuffle=False, **kw)
    rows = lambda out: collections.Counter(r.tobytes() for c in TokenStream(out).chunks for r in c)  # noqa: E731
    assert rows(str(tmp_path / "a")) == rows(str(tmp_path / "p"))
    assert a["num_windows"] == b["num_windows"] == plain["num_windows"]


def test_a_worker_killed_mid_task_changes_nothing(big_run, tokenizer, ray_session, tmp_path):
    kw = dict(seq_len=255, seed=3, num_shards=4, num_workers=2, executor="ray")
    clean = build_token_stream([big_run], str(tmp_path / "clean"), tokenizer, **kw)
    killed: list[int] = []

    def killer() -> None:
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            for pid in _task_pids():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.05)

    t = threading.Thread(target=killer)
    t.start()
    m = build_token_stream([big_run], str(tmp_path / "k"), tokenizer, **kw)
    t.join()
    assert killed, "no running task was found to kill"
    assert m == {**clean, "tokenizer": {**clean["tokenizer"], "path": m["tokenizer"]["path"]}}
    assert _files(str(tmp_path / "k")) == _files(str(tmp_path / "clean"))
    assert np.array_equal(TokenStream(str(tmp_path / "k")).chunks[0], TokenStream(str(tmp_path / "clean")).chunks[0])
