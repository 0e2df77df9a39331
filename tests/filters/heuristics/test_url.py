"""URL stages: domain blocklist (UT1 format), banned URL words, URL removal, newlines."""

from __future__ import annotations

import json
import pickle

import pytest

from curation.schema import docs_table
from filters.heuristics import HQ_DOMAINS, MoveURL, NewlineCollapse, URLDomainFilter, URLRemoval, URLWordsFilter
from tests.filters.heuristics.helpers import kept_texts, reasons


def test_domain_blocklist_ut1_file(tmp_path):  # noqa: ANN001
    path = tmp_path / "domains"
    path.write_text("# adult\nbad.example\n\nwww.worse.example\n")
    f = URLDomainFilter(blocklist_path=path)
    urls = ["http://bad.example/x", "https://www.bad.example:8443/a?b", "http://cdn.img.bad.example/",
            "http://notbad.example/", "http://worse.example", "bad.example/no-scheme", None, "http://good.example"]
    got = reasons(f, *["t"] * len(urls), urls=urls)
    assert got == ["url:banned_domain"] * 3 + [None] + ["url:banned_domain"] * 2 + [None, None]
    exact = URLDomainFilter(blocklist_path=path, match_subdomains=False)
    assert reasons(exact, "t", "t", urls=["http://cdn.bad.example/", "http://www.bad.example/"]) == [
        None, "url:banned_domain"]  # fmt: skip


def test_hq_domains_include_subdomains():
    f = URLDomainFilter(blocklist_path=None, domains=HQ_DOMAINS, reason="url:hq_domain")
    urls = ["https://en.wikipedia.org/wiki/X", "https://math.stackexchange.com/q/1", "https://example.com/wikipedia.org"]
    assert reasons(f, "t", "t", "t", urls=urls) == ["url:hq_domain", "url:hq_domain", None]


def test_url_words_strict_hard_soft():
    f = URLWordsFilter(strict_words=["porn"], hard_words=["sex"], soft_words=["hot", "cam", "live"])
    urls = [
        "http://site.com/p-o.r-n/x",   # strict: substring after removing '-' and '.'
        "http://site.com/freeporn",    # strict substring
        "http://site.com/sex/video",   # hard: whole word
        "http://essex.example/sussex",  # hard word only as a substring: kept
        "http://site.com/hot-stuff",   # one soft word: kept
        "http://site.com/hot/cam",     # two distinct soft words: dropped
        "http://site.com/hot/hot",     # the same soft word twice: kept
        "http://site.com/HOT/CAM",     # lowercased (DCLM case_sensitive=False)
    ]  # fmt: skip
    assert reasons(f, *["t"] * len(urls), urls=urls) == [
        "url:strict_word", "url:strict_word", "url:hard_word", None, None, "url:soft_words", None, "url:soft_words"]
    cs = URLWordsFilter(strict_words=[], hard_words=[], soft_words=["hot", "cam"], case_sensitive_words=True)
    assert reasons(cs, "t", urls=["http://site.com/HOT/CAM"]) == [None]


def test_default_lists_load_and_threshold_arg():
    f = URLWordsFilter()
    # DCLM's lists: "2girls1cup" is a strict word, "xxx" a hard one
    assert reasons(f, "t", "t", urls=["http://x.com/2girls1cup", "http://x.com/xxx"]) == ["url:strict_word",
                                                                                          "url:hard_word"]
    with pytest.raises(ValueError):
        URLWordsFilter(soft_threshold=0)
    with pytest.raises(ValueError):
        URLWordsFilter(hard_words_path="/no/such/file")
    with pytest.raises(ValueError):
        URLDomainFilter(blocklist_path=None)


def test_url_removal():
    f = URLRemoval()
    got = kept_texts(f, "see https://foo.com/a?b=1 now", "mail me at bob.example.org.", "ip 10.0.0.1:80 ok",
                     "node.js is not a url", "Shout at EXAMPLE.COM", "visit www.site.io/path today")
    # DCLM's path class includes '.', so a sentence-final dot after a URL goes with it
    assert got == ["see now", "mail me at", "ip ok", "node.js is not a url", "Shout at EXAMPLE.COM",
                   "visit today"]  # fmt: skip
    assert reasons(f, "http://only.com") == ["url_removal:empty"]


def test_newline_collapse_boundary():
    f = NewlineCollapse(max_consecutive=2)
    assert kept_texts(f, "a\n\nb", "a\n\n\nb", "a\n\n\n\n\nb\nc") == ["a\n\nb", "a\n\nb", "a\n\nb\nc"]
    with pytest.raises(ValueError):
        NewlineCollapse(max_consecutive=0)


def test_move_url_from_metadata():
    meta = [json.dumps({"WARC-Target-URI": "http://a.example/x/y"}), None, json.dumps({"url": "http://b.example/"})]
    t = docs_table(["a", "b", "c"], ["x", "y", "z"], "s", [None, "http://keep.example", None], meta)
    out = MoveURL().process(t).kept.column("url").to_pylist()
    assert out == ["http://a.example/x/y", "http://keep.example", "http://b.example/"]


def test_url_stages_pickle():
    for stage in (URLDomainFilter(), URLWordsFilter(), URLRemoval()):
        stage.setup()
        clone = pickle.loads(pickle.dumps(stage))
        assert clone.config() == stage.config()
