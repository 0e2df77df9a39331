"""The recipe blocks the pipelines call: order, overrides, pickling, determinism."""

from __future__ import annotations

import pickle

import pyarrow as pa
import pytest

from curation.stage import recipe_hash
from filters.heuristics import FineWebQuality, c4_stages, refinedweb_stages
from tests.filters.heuristics.helpers import reasons


def run(stages, t: pa.Table) -> tuple[pa.Table, pa.Table]:  # noqa: ANN001
    dropped = []
    for s in stages:
        s.setup()
        r = s.process(t)
        t = r.kept
        dropped.append(r.dropped)
    return t, pa.concat_tables(dropped)


def test_refinedweb_order_matches_dclm_yaml():
    names = [s.name for s in refinedweb_stages()]
    assert names == ["move_url", "url_domains", "url_words", "url_removal", "newline_collapse", "langid",
                     "gopher_quality", "gopher_repetition", "refinedweb_lines"]  # fmt: skip
    assert "url_hq_domains" in [s.name for s in refinedweb_stages(exclude_hq_domains=True)]
    assert "langid" not in [s.name for s in refinedweb_stages(language=False)]
    assert len({s.name for s in refinedweb_stages(exclude_hq_domains=True)}) == 10  # unique names


def test_overrides_change_config_and_hash():
    base = refinedweb_stages(language=False)
    changed = refinedweb_stages(language=False, gopher_quality={"min_doc_words": 100})
    gq = [s for s in changed if s.name == "gopher_quality"][0]
    assert gq.min_doc_words == 100
    assert recipe_hash(base) != recipe_hash(changed)
    assert recipe_hash(base) == recipe_hash(refinedweb_stages(language=False))
    with pytest.raises(ValueError):
        refinedweb_stages(no_such_stage={"x": 1})
    with pytest.raises(TypeError):
        refinedweb_stages(gopher_quality={"no_such_arg": 1})
    assert [s.name for s in c4_stages()] == ["c4_page_length", "c4_lines", "c4_bad_words"]
    assert c4_stages(language=True)[-1].min_score == 0.99


def test_chain_is_deterministic_pickles_and_accounts(real_docs):  # noqa: ANN001
    stages = refinedweb_stages()
    kept1, dropped1 = run(stages, real_docs)
    clones = [pickle.loads(pickle.dumps(s)) for s in stages]
    assert all(getattr(c, "_model", None) is None for c in clones)  # models are not pickled
    kept2, dropped2 = run(clones, real_docs)
    assert kept1.equals(kept2) and dropped1.equals(dropped2)
    # nothing is lost: every input id is kept or dropped exactly once
    ids = set(real_docs.column("id").to_pylist())
    out = kept1.column("id").to_pylist() + dropped1.column("id").to_pylist()
    assert len(out) == len(ids) and set(out) == ids
    assert 0 < kept1.num_rows < real_docs.num_rows
    assert {"lang", "lang_score"} <= set(kept1.column_names)
    # the reasons are short stable strings "<family>:<rule>"
    assert all(":" in r and " " not in r for r in dropped1.column("reason").to_pylist())
    # batch split does not change the result (language stage excluded to keep this fast)
    half = real_docs.num_rows // 2
    whole, _ = run(refinedweb_stages(language=False), real_docs)
    k_a, _ = run(refinedweb_stages(language=False), real_docs.slice(0, half))
    k_b, _ = run(refinedweb_stages(language=False), real_docs.slice(half))
    assert pa.concat_tables([k_a, k_b]).equals(whole)


def test_c4_chain_runs(real_docs):  # noqa: ANN001
    kept, dropped = run(c4_stages(), real_docs)
    assert kept.num_rows + dropped.num_rows == real_docs.num_rows
    assert 0 < kept.num_rows < real_docs.num_rows


def test_empty_table():
    from curation.schema import empty_docs

    kept, dropped = run(refinedweb_stages(), empty_docs())
    assert kept.num_rows == 0 and dropped.num_rows == 0


def test_fineweb_bounds():
    f = FineWebQuality(short_line_thr=None, char_duplicates_ratio=None, new_line_ratio=None)
    lines = [f"a line without an end number {i}" for i in range(100)]
    at = "\n".join(["ends with a stop."] * 12 + lines[:88])  # 12% of lines end in punctuation
    under = "\n".join(["ends with a stop."] * 11 + lines[:89])
    assert reasons(f, at, under) == [None, "fineweb:line_punct_ratio"]
    g = FineWebQuality(line_punct_thr=None, char_duplicates_ratio=None, new_line_ratio=None)
    long = "x" * 31
    assert reasons(g, "\n".join(["short."] * 67 + [long] * 33), "\n".join(["short."] * 68 + [long] * 32)) == [
        None, "fineweb:short_line_ratio"]  # fmt: skip


def test_demo_pool_categories(demo_pool):  # noqa: ANN001
    """The demo pool's planted categories end up where a DCLM-style chain should put them."""
    import json
    from collections import Counter

    kept, _ = run(refinedweb_stages() + c4_stages(), demo_pool)
    kept_ids = set(kept.column("id").to_pylist())
    cats = [json.loads(m)["category"] for m in demo_pool.column("metadata").to_pylist()]
    total, survived = Counter(cats), Counter(c for c, i in zip(cats, demo_pool.column("id").to_pylist())
                                             if i in kept_ids)  # fmt: skip
    rate = {c: survived[c] / total[c] for c in total}
    assert rate["clean"] >= 0.8, rate
    for c in ("boilerplate", "spam", "short", "non_english", "lorem", "code", "repeated", "bullets"):
        if total[c] >= 5:
            assert rate[c] <= 0.1, (c, rate)
