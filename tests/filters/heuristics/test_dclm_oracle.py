"""DCLM's own code as the oracle: the recipe's command line (``pipelines/baseline.py ... --blocks heuristics
--heuristics-variant dclm-exact --langid-backend none``) against DCLM's mappers, document for document, on
documents built from every real web sample (``dclm_parity.py``). Slow: DCLM's environment is built from PyPI on
first use and its pure-Python word segmenter runs at ~0.1 MB/s. Skips without ``../shared``.

Required: ``dclm-exact`` >= 99.9% keep/drop agreement and >= 99% identical final text; the default ``dclm`` the
same keep/drop agreement counting only disagreements that no listed intent fix explains.
"""

from __future__ import annotations

import pytest

from tests.filters.heuristics import dclm_parity as P

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def dev(tmp_path_factory):  # noqa: ANN001, ANN201
    if not P.oracle_available():
        pytest.skip("../shared (data samples and tools/dclm_reference) is absent")
    tmp = tmp_path_factory.mktemp("dclmparity")  # pytest's tmp paths hold no dots (DCLM's discovery needs that)
    docs = P.dev_docs()
    P.write_jsonl(docs, tmp / "docs.jsonl")
    (tmp / "empty.txt").write_text("")
    oracle = P.run_oracle(tmp / "docs.jsonl", tmp / "oracle.jsonl", tmp)
    return docs, oracle, tmp


def test_dclm_exact_matches_dclm(dev):  # noqa: ANN001
    docs, oracle, tmp = dev
    res = P.compare(docs, oracle, P.run_ours(tmp / "docs.jsonl", "dclm-exact", tmp / "exact", tmp / "empty.txt"))
    assert 0 < res["dclm_keeps"] < res["documents"]
    assert res["keep_drop_agreement"] >= 0.999, res["diffs"][:5]
    assert res["identical_text_of_both_kept"] >= 0.99, res["diffs"][:5]


def test_default_departs_only_by_intent_fixes(dev):  # noqa: ANN001
    docs, oracle, tmp = dev
    res = P.compare(docs, oracle, P.run_ours(tmp / "docs.jsonl", "dclm", tmp / "default", tmp / "empty.txt"))
    P.attribute(docs, res["diffs"], tmp / "empty.txt")
    s = P.summary_outside_fixes(res)
    assert s["keep_drop_agreement_outside_intent_fixes"] >= 0.999, [x for x in res["diffs"] if not x["explained_by"]]
    assert s["text_differences_unexplained"] == 0, [x for x in res["diffs"] if not x["explained_by"]][:5]
