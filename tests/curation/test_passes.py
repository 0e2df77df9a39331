"""The pass primitive: markers, resume at the item, one retry policy, in-process and Ray modes."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from curation.passes import ExecConfig, Executor, Item, PassFailed, decode, encode
from tests.pass_fns import churn_arrow, fails_on, fails_while_flagged, flaky, square_to_file, timed_sleep, with_runtime


def _items(tmp_path, n=4):
    outs = [str(tmp_path / f"out{x}.json") for x in range(n)]
    return [Item(f"i{x}", (x, outs[x]), params={"x": x}, outputs=(outs[x],)) for x in range(n)]


def _calls(tmp_path, x):
    p = tmp_path / f"out{x}.json.calls"
    return len(p.read_text().split()) if p.exists() else 0


def test_encode_decode_round_trip_is_exact():
    obj = {1: np.array([[1, 2], [3, 4]], dtype=np.int32), "f": np.float32(0.5), "l": (1, np.uint64(2**63 + 1)),
           "inf": float("inf")}
    back = decode(json.loads(json.dumps(encode(obj))))
    assert back["1"].dtype == np.int32 and back["1"].tolist() == [[1, 2], [3, 4]]
    assert back["f"] == 0.5 and back["l"] == [1, 2**63 + 1] and back["inf"] == float("inf")


def test_local_pass_writes_markers_and_resumes_at_the_item(tmp_path):
    ex = Executor(ExecConfig(mode="local", progress=False))
    markers = str(tmp_path / "m")
    first = ex.run("sq", square_to_file, _items(tmp_path), marker_dir=markers, config={"c": 1})
    assert first.ok and len(first.ran) == 4 and first.skipped == []
    assert [r["y"] for r in first.results] == [0, 1, 4, 9]
    assert first.results[3]["arr"].tolist() == [0, 1, 2] and first.results[3]["t"] == [3, "a"]

    again = ex.run("sq", square_to_file, _items(tmp_path), marker_dir=markers, config={"c": 1})
    assert again.ran == [] and len(again.skipped) == 4
    assert [_calls(tmp_path, x) for x in range(4)] == [1, 1, 1, 1]
    # a resumed pass returns exactly what the first run returned
    assert json.dumps(encode(again.results)) == json.dumps(encode(first.results))
    assert again.digest == first.digest

    # the markers are gathered into one object when the pass ends; a rerun of a finished pass writes nothing
    assert [f.startswith("_batch-") and f.endswith(".jsonl.gz") for f in os.listdir(markers)] == [True]
    assert again.objects == 0 and "put" not in again.driver_requests and "delete" not in again.driver_requests

    # a lost output: only that item runs again
    os.remove(tmp_path / "out2.json")
    part = ex.run("sq", square_to_file, _items(tmp_path), marker_dir=markers, config={"c": 1})
    assert part.ran == ["i2"] and part.outputs_missing == ["i2"]
    assert [_calls(tmp_path, x) for x in range(4)] == [1, 1, 2, 1]
    assert len(os.listdir(markers)) == 1

    # another config: every item runs again, and the digest changes
    other = ex.run("sq", square_to_file, _items(tmp_path), marker_dir=markers, config={"c": 2})
    assert len(other.ran) == 4 and other.digest != first.digest


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads the resident set from /proc")
def test_an_item_hands_its_freed_memory_back(tmp_path):
    """A long-lived worker holds the largest item's memory, not the sum of every item's high-water mark:
    Arrow's allocator keeps freed pages unless told to release them."""
    ex = Executor(ExecConfig(mode="local", progress=False))
    before = _rss_mib()
    res = ex.run("churn", churn_arrow, [Item("a", (150,))], marker_dir=str(tmp_path / "m"))
    assert res.ok and res.results == [150]
    grew = _rss_mib() - before
    assert grew < 100, f"the process kept {grew:.0f} MiB of the ~230 MiB an item allocated and freed"


def test_changed_input_file_reruns_only_its_item(tmp_path):
    ex = Executor(ExecConfig(mode="local", progress=False))
    inputs = [tmp_path / f"in{x}.txt" for x in range(3)]
    for p in inputs:
        p.write_text("a")
    items = [Item(f"i{x}", (x, str(tmp_path / f"out{x}.json")), inputs=(str(inputs[x]),)) for x in range(3)]
    ex.run("sq", square_to_file, items, marker_dir=str(tmp_path / "m"))
    time.sleep(0.01)
    inputs[1].write_text("changed, longer")
    res = ex.run("sq", square_to_file, items, marker_dir=str(tmp_path / "m"))
    assert res.ran == ["i1"] and sorted(res.skipped) == ["i0", "i2"]


def test_failed_item_does_not_stop_the_others_and_rerun_redoes_only_it(tmp_path):
    ex = Executor(ExecConfig(mode="local", progress=False))
    flags = str(tmp_path / "flag")
    open(f"{flags}.2", "w").close()
    items = [Item(f"i{x}", (x, flags)) for x in range(4)]
    with pytest.raises(PassFailed, match="bad item 2") as err:
        ex.run("f", fails_while_flagged, items, marker_dir=str(tmp_path / "m"))
    res = err.value.result
    assert set(res.ran) == {"i0", "i1", "i3"} and list(res.failed) == ["i2"] and res.results[2] is None
    os.remove(f"{flags}.2")  # the fix: the item's arguments are the same
    again = ex.run("f", fails_while_flagged, items, marker_dir=str(tmp_path / "m"))
    assert again.ran == ["i2"] and again.results == [0, 1, 2, 3]
    # the arguments are hashed: other arguments are another item, whatever the key
    moved = ex.run("f", fails_while_flagged, [Item(f"i{x}", (x, flags + "x")) for x in range(4)],
                   marker_dir=str(tmp_path / "m"))
    assert len(moved.ran) == 4
    items = [Item(f"i{x}", (x, 2)) for x in range(4)]
    collected = ex.run("g", fails_on, items, marker_dir=str(tmp_path / "m2"), on_error="collect")
    assert list(collected.failed) == ["i2"]


def test_transient_errors_are_retried_up_to_the_policy(tmp_path):
    ok = Executor(ExecConfig(mode="local", progress=False, max_retries=2))
    res = ok.run("fl", flaky, [Item("a", (str(tmp_path / "c1"), 2))], marker_dir=str(tmp_path / "m"))
    assert res.results == ["ok"] and (tmp_path / "c1").read_text() == "3"
    strict = Executor(ExecConfig(mode="local", progress=False, max_retries=1))
    res = strict.run("fl", flaky, [Item("a", (str(tmp_path / "c2"), 2))], marker_dir=str(tmp_path / "m2"),
                     on_error="collect")
    assert "OSError" in res.failed["a"] and (tmp_path / "c2").read_text() == "2"


def test_duplicate_keys_and_bad_settings_are_refused(tmp_path):
    ex = Executor(ExecConfig(mode="local", progress=False))
    with pytest.raises(ValueError, match="unique"):
        ex.run("d", fails_on, [Item("a", (1, 0)), Item("a", (2, 0))], marker_dir=str(tmp_path))
    with pytest.raises(ValueError, match="memory-per-worker"):
        ExecConfig(memory_per_worker=1 << 20)
    with pytest.raises(ValueError, match="mode"):
        ExecConfig(mode="dask")


@pytest.fixture(scope="module")
def ray_two_cpus():
    import ray

    from curation.ray_utils import init_ray

    init_ray(num_workers=2)
    yield
    ray.shutdown()


def test_ray_pass_caps_tasks_in_flight_and_matches_local(tmp_path, ray_two_cpus):
    log = tmp_path / "log.jsonl"
    ex = Executor(ExecConfig(mode="ray", num_workers=1, progress=False))
    items = [Item(f"s{i}", (str(log), i), weight=i) for i in range(4)]
    res = ex.run("sleep", timed_sleep, items, marker_dir=str(tmp_path / "m"))
    assert res.results == [0, 1, 2, 3]
    spans = sorted((s, e) for _, s, e in map(json.loads, log.read_text().splitlines()))
    assert all(spans[k + 1][0] >= spans[k][1] - 0.05 for k in range(3)), "more than one task in flight"
    # heaviest first
    order = [i for i, _, _ in sorted(map(json.loads, log.read_text().splitlines()), key=lambda r: r[1])]
    assert order == [3, 2, 1, 0]

    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    a = Executor(ExecConfig(mode="ray", num_workers=2, progress=False)).run(
        "sq", square_to_file, _items(tmp_path / "x"), marker_dir=str(tmp_path / "ma"))
    b = Executor(ExecConfig(mode="local", progress=False)).run("sq", square_to_file, _items(tmp_path / "y"),
                                                                marker_dir=str(tmp_path / "mb"))
    assert json.dumps(encode(a.results)) == json.dumps(encode(b.results))


def test_ray_failures_are_collected_and_memory_budget_checked(tmp_path, ray_two_cpus):
    ex = Executor(ExecConfig(mode="ray", num_workers=2, progress=False))
    res = ex.run("f", fails_on, [Item(f"i{x}", (x, 1)) for x in range(3)], marker_dir=str(tmp_path / "m"),
                 on_error="collect")
    assert list(res.failed) == ["i1"] and "bad item 1" in res.failed["i1"] and res.results[2] == 2
    too_big = Executor(ExecConfig(mode="ray", memory_per_worker=1 << 50, progress=False))
    with pytest.raises(ValueError, match="memory-per-worker"):
        too_big.ensure_ray()


def test_complete_pass_does_not_start_ray(tmp_path):
    local = Executor(ExecConfig(mode="local", progress=False))
    local.run("sq", square_to_file, _items(tmp_path), marker_dir=str(tmp_path / "m"))
    lazy = Executor(ExecConfig(mode="ray", progress=False))
    res = lazy.run("sq", square_to_file, _items(tmp_path), marker_dir=str(tmp_path / "m"), shared=None)
    assert len(res.skipped) == 4 and not lazy._ray_checked


class _Opaque:
    """Neither plain data, a dataclass nor fingerprinted: its output cannot be told from its repr."""


def test_every_argument_is_hashed_exactly_and_what_cannot_be_is_refused(tmp_path):
    from curation.passes import digest

    ex = Executor(ExecConfig(mode="local", progress=False))
    with pytest.raises(TypeError, match=r"args\[1\].*_Opaque.*Item.runtime"):
        ex.run("o", fails_on, [Item("a", (1, _Opaque()))], marker_dir=str(tmp_path / "m"))
    with pytest.raises(TypeError, match="_Opaque"):
        digest({"x": [_Opaque()]})
    # arrays and bytes by content, dataclasses by their fields
    a = np.arange(10, dtype=np.int64)
    assert digest({"a": a}) == digest({"a": a.copy()}) != digest({"a": a.astype(np.int32)})
    assert digest(b"model") != digest(b"other") and digest(ExecConfig(mode="local")) != digest(ExecConfig())


def test_runtime_arguments_are_passed_but_not_hashed(tmp_path):
    ex = Executor(ExecConfig(mode="local", progress=False))
    out = str(tmp_path / "o.json")
    first = ex.run("rt", with_runtime, [Item("a", (1, out), runtime={"threads": 2}, outputs=(out,))],
                   marker_dir=str(tmp_path / "m"))
    again = ex.run("rt", with_runtime, [Item("a", (1, out), runtime={"threads": 8}, outputs=(out,))],
                   marker_dir=str(tmp_path / "m"))
    assert first.results == again.results == [{"x": 1, "threads": 2}] and again.skipped == ["a"]
    assert open(out + ".calls").read().split() == ["2"]


def test_upstream_passes_compose_into_the_hash(tmp_path):
    """A downstream item depends on its upstream item (PassResult.item_digest) or the whole upstream pass: a
    recomputed upstream item recomputes exactly what reads it."""
    ex = Executor(ExecConfig(mode="local", progress=False))
    flags = str(tmp_path / "f")

    def up(cfg):
        return ex.run("up", fails_while_flagged, [Item(f"u{x}", (x, flags), params=cfg.get(x)) for x in range(3)],
                      marker_dir=str(tmp_path / "mu"))

    def down(u, whole=False):
        return ex.run("down", fails_while_flagged,
                      [Item(f"d{x}", (x, flags), after=(u,) if whole else (u.item_digest(f"u{x}"),)) for x in range(3)],
                      marker_dir=str(tmp_path / "md" if not whole else tmp_path / "mw"))

    u = up({})
    assert len(down(u).ran) == 3 and len(down(u, whole=True).ran) == 3
    assert down(u).ran == [] and down(u, whole=True).ran == []
    u2 = up({1: "changed"})  # only u1's definition changes
    assert u2.ran == ["u1"] and u2.digest != u.digest
    assert down(u2).ran == ["d1"] and len(down(u2, whole=True).ran) == 3


def test_an_interrupted_pass_is_gathered_by_the_rerun(tmp_path):
    """Workers of a killed driver left per-item markers, and an earlier run left a gathered batch with other
    hashes: the rerun takes the per-item ones, runs the rest, and leaves one batch object."""
    from curation.passes import _execute, load_markers, marker_path, read_marker

    ex = Executor(ExecConfig(mode="local", progress=False))
    markers = str(tmp_path / "m")
    (tmp_path / "old").mkdir()
    ex.run("sq", square_to_file, _items(tmp_path / "old"), marker_dir=markers, config={"c": "earlier"})
    items = _items(tmp_path)
    hashes = ex.hashes("sq", square_to_file, items, config={"c": 1})
    for i in (0, 2):  # finished by a worker before the driver died
        _execute(square_to_file, items[i].args, {}, marker_path(markers, items[i].key),
                 {"pass": "sq", "item": items[i].key, "hash": hashes[i], "outputs": list(items[i].outputs)})
    assert len(os.listdir(markers)) == 3
    assert ex.completed("sq", square_to_file, items, marker_dir=markers, config={"c": 1}) == [True, False, True, False]
    res = ex.run("sq", square_to_file, items, marker_dir=markers, config={"c": 1})
    assert sorted(res.skipped) == ["i0", "i2"] and sorted(res.ran) == ["i1", "i3"]
    assert [_calls(tmp_path, x) for x in range(4)] == [1, 1, 1, 1]
    (batch,) = os.listdir(markers)
    assert batch.startswith("_batch-") and set(load_markers(markers).entries) == {"i0", "i1", "i2", "i3"}
    # the earlier API still finds a gathered marker
    done, value = read_marker(marker_path(markers, "i3"), hashes[3])
    assert done and value["y"] == 9 and value["arr"].tolist() == [0, 1, 2]


def test_one_builder_of_executors(tmp_path, monkeypatch):
    from curation.passes import make_executor

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert make_executor("auto", input_bytes=1 << 20).cfg.mode == "local"
    assert make_executor("auto", input_bytes=1 << 30).cfg.mode == "ray"
    assert make_executor("auto", input_bytes=1, address="ray://head:10001").cfg.mode == "ray"
    ex = make_executor("local", num_workers=3, memory_per_worker=1 << 30, resume=False)
    assert (ex.cfg.num_workers, ex.cfg.memory_per_worker, ex.cfg.resume) == (3, 1 << 30, False)
    assert make_executor(ex) is ex
    with pytest.raises(ValueError, match="executor must be"):
        make_executor("dask")
