"""DCLM's behaviour, rule by rule, in both variants: what ``dclm-exact`` reproduces (DCLM's quirks included)
and where the default ``dclm`` follows DCLM's evident intent instead (filters/heuristics/README.md).
Each case is one that a plausible reimplementation gets wrong; DCLM's own code decides the real documents the
same way (bench/results/dclm_parity.json, test_dclm_oracle.py)."""

from __future__ import annotations

import pytest

from filters.heuristics import RefinedWebLineFilter, URLDomainFilter, URLRemoval, URLWordsFilter, refinedweb_stages
from filters.heuristics.url import dclm_netloc
from pipelines.recipes import RecipeOptions, baseline_recipe, options_from_flags
from tests.filters.heuristics.helpers import kept_texts, reasons, words


# ------------------------------------------------------------------------------------------ URLs
def test_domains_dclm_exact_vs_suffix(tmp_path):  # noqa: ANN001
    path = tmp_path / "d.txt"
    path.write_text("example.com\nEvil.org\n")
    urls = ["http://example.com/a", "http://www.example.com/", "http://a.example.com/", "http://example.com:80/",
            "http://wwwexample.com/", "https://EVIL.org/x", "http://[oops/", None]  # fmt: skip
    exact = URLDomainFilter(blocklist_path=path, match="dclm-exact")
    # DCLM: netloc lowercased, every "www" deleted (".example.com" is left), exact match, port kept
    assert reasons(exact, *["t"] * len(urls), urls=urls) == [
        "url:banned_domain", None, None, None, "url:banned_domain", "url:banned_domain", "url:invalid", None]
    default = URLDomainFilter(blocklist_path=path)
    assert reasons(default, *["t"] * len(urls), urls=urls)[:6] == ["url:banned_domain"] * 4 + [None] + [
        "url:banned_domain"]  # fmt: skip
    assert dclm_netloc("HTTP://user@WWW.Site.www.com:8080/p") == "user@.site..com:8080"


def test_dclm_exact_empty_line_in_domain_list_bans_pages_without_url(tmp_path):  # noqa: ANN001
    path = tmp_path / "d.txt"
    path.write_text("a.com\n\nb.com\n")  # DCLM reads splitlines(): "" is an entry, matching an empty netloc
    f = URLDomainFilter(blocklist_path=path, match="dclm-exact")
    assert reasons(f, "t", "t", "t", urls=[None, "no-scheme.com/x", "http://c.com"]) == [
        "url:banned_domain", "url:banned_domain", None]  # fmt: skip


def test_url_words_follow_python_re():
    f = URLWordsFilter(strict_words=["g-spot"], hard_words=["porn"], soft_words=["s&m", "hot", "cam"])
    urls = [
        "http://x.com/porn_site",      # "_" is a word character for \b: no hard word
        "http://x.com/porn-site",      # hard word between \b
        "http://x.com/porn2",          # a digit joins the word
        "http://x.com/s&m/hot",        # two distinct soft words, one of them not a \w run
        "http://x.com/hot/hot",        # the same soft word twice
        "http://x.com/g-spot",         # DCLM removes "-" from the URL, never from the list: no strict match
        "http://x.com/Porn",           # lowercased
        "http://x.com/pörn/porn",      # a non-ASCII URL goes through Python's re: the second is a hard word
    ]  # fmt: skip
    assert reasons(f, *["t"] * len(urls), urls=urls) == [
        None, "url:hard_word", None, "url:soft_words", None, None, "url:hard_word", "url:hard_word"]


def test_url_removal_gate_and_unicode_semantics():
    exact, default = URLRemoval(gate="start_tld"), URLRemoval()
    texts = [
        "The site example.com/x is good",   # starts with "th" (a TLD): URLs removed in both
        "Qqq site example.com/x is good",   # starts with no TLD: DCLM leaves the URL
        "see\u00a0example.com now",          # Python's \s: the no-break space goes with the URL
        "see example.comé now",             # Python's \b: "é" is a word character, no URL
        "中192.168.0.1 and x 10.0.0.1 ok",   # IPv4: no \b after a CJK character; removed after a space
    ]  # fmt: skip
    assert kept_texts(exact, *texts) == ["The site is good", "Qqq site example.com/x is good", "see now",
                                         "see example.comé now", "中192.168.0.1 and x ok"]  # fmt: skip
    assert kept_texts(default, *texts)[:2] == ["The site is good", "Qqq site is good"]
    assert kept_texts(default, *texts)[2:] == kept_texts(exact, *texts)[2:]
    with pytest.raises(ValueError):
        URLRemoval(gate="sometimes")


# ------------------------------------------------------------------------------------ line filter
def lines_only(**kw) -> RefinedWebLineFilter:  # noqa: ANN003
    return RefinedWebLineFilter(max_removed_word_ratio=None, **kw)


def test_line_modifiers_strip_the_page_between_steps():
    # DCLM strips the page after the upper-case step, so the numeric step sees "123" (all digits) and not
    # "  123" (60%): the line goes
    assert kept_texts(lines_only(), "  123\n" + words(5)) == [words(5)]
    # Python's str.isdigit: superscripts are digits; str.isupper: Roman numerals are upper case
    assert kept_texts(lines_only(), "²³\n" + words(5), "ⅣⅤⅥ x\n" + words(5)) == [words(5), words(5)]


def test_read_more_regex_quirk_only_in_exact():
    text = words(4) + " Read more >>\n" + words(12)  # DCLM's "Read more..." leaves the dots unescaped
    assert kept_texts(lines_only(phrases_as_regex=True), text) == [words(4) + "\n" + words(12)]
    assert kept_texts(lines_only(), text) == [text]


def test_removed_words_counted_with_fasttext_words():
    # "w\u00a0w w\u00a0w" is 2 fastText words (U+00A0 is no separator there), 4 on Unicode spaces. The line
    # "x" (1 word) is removed: 1 of 19 fastText words is over 5% (dropped), 1 of 20 is not (kept); counted on
    # Unicode spaces both pages would be kept (1 of 37, 1 of 41)
    line = "w\u00a0w w\u00a0w"
    assert reasons(RefinedWebLineFilter(), "\n".join([line] * 9) + "\nx") == ["refinedweb_lines:removed_words"]
    assert reasons(RefinedWebLineFilter(), "\n".join([line] * 10) + "\nx") == [None]


# ----------------------------------------------------------------------------------------- recipes
def test_variants_differ_only_by_the_intent_fixes():
    exact = {s.name: s.config() for s in refinedweb_stages(variant="dclm-exact", language=False)}
    default = {s.name: s.config() for s in refinedweb_stages(language=False)}
    assert {k for k in exact if exact[k] != default[k]} == {"url_domains", "url_removal", "refinedweb_lines"}
    with pytest.raises(ValueError):
        refinedweb_stages(variant="dclm-strict")


def test_recipe_flags(tmp_path):  # noqa: ANN001
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    opts = options_from_flags(["--heuristics-variant", "dclm-exact", "--langid-backend", "none",
                               "--banned-domains", str(empty)])  # fmt: skip
    assert opts == {"heuristics_variant": "dclm-exact", "langid_backend": "none", "banned_domains": str(empty)}
    stages = baseline_recipe(("heuristics",), RecipeOptions(**opts), str(tmp_path / "run"))
    by_name = {s.name: s for s in stages}
    assert "langid" not in by_name
    assert by_name["url_domains"].match == "dclm-exact" and by_name["url_domains"].blocklist_path == str(empty)
    assert by_name["url_removal"].gate == "start_tld"
    default = {s.name: s for s in baseline_recipe(("heuristics",), RecipeOptions(), str(tmp_path / "run"))}
    assert "langid" in default and default["url_removal"].gate == "always"
    with pytest.raises(ValueError):
        RecipeOptions(heuristics_variant="exact")
    with pytest.raises(ValueError):
        RecipeOptions(langid_backend="cld3")
