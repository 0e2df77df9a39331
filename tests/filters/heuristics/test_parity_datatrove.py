"""Keep/drop parity with datatrove's implementations of the same rules, with the
same thresholds, on the real samples, the seeded synthetic pages and the demo pool.

datatrove's English word tokenizer is spaCy (not installed, and it splits off
punctuation as words); both sides use whitespace words here (see conftest), which
is what our stages and DCLM use. Agreement was measured at 100% on every corpus, so
100% is required: a document decided differently fails the test unless it is listed in
``EXCEPTIONS`` (by document id, with the reason; none today). The known ways the two can
differ are described next to each test.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from curation.schema import docs_table
from filters.heuristics import C4Lines, FineWebQuality, GopherQuality, GopherRepetition, URLDomainFilter, URLWordsFilter
from tests.filters.heuristics.conftest import whitespace_tokenizer

dtf = pytest.importorskip("datatrove.pipeline.filters")
pytest.importorskip("regex")
from datatrove.data import Document  # noqa: E402


def ours_keep(stage, table: pa.Table) -> list[bool]:  # noqa: ANN001
    stage.setup()
    result = stage.process(table)
    dropped = set(result.dropped.column("id").to_pylist())
    return [i not in dropped for i in table.column("id").to_pylist()]


def ref_keep(ref, table: pa.Table) -> list[bool]:  # noqa: ANN001
    out = []
    for i, text, url in zip(table.column("id").to_pylist(), table.column("text").to_pylist(),
                            table.column("url").to_pylist()):  # fmt: skip
        res = ref.filter(Document(text=text, id=i, metadata={"url": url} if url else {}))
        out.append(res is True or (isinstance(res, tuple) and res[0]))
    return out


#: documents on which a difference is accepted: {test name: {document id: reason}}
EXCEPTIONS: dict[str, dict[str, str]] = {}


def check(ours: list[bool], ref: list[bool], table: pa.Table, test: str) -> None:
    """100% agreement, except for the documents listed in ``EXCEPTIONS[test]``."""
    ids = table.column("id").to_pylist()
    texts = table.column("text").to_pylist()
    allowed = EXCEPTIONS.get(test, {})
    diff = [k for k, (a, b) in enumerate(zip(ours, ref)) if a != b and ids[k] not in allowed]
    detail = [(ids[k], "ours keeps" if ours[k] else "datatrove keeps", texts[k][:80]) for k in diff[:5]]
    assert 0 < sum(ref) < len(ref), "the reference must keep some and drop some documents"
    assert not diff, f"{len(diff)} of {len(ids)} documents decided differently: {detail}"


def test_gopher_quality_parity(corpus):  # noqa: ANN001
    ref = dtf.GopherQualityFilter(
        min_doc_words=50, max_doc_words=100_000, min_avg_word_length=3, max_avg_word_length=10,
        max_symbol_word_ratio=0.1, max_bullet_lines_ratio=0.9, max_ellipsis_lines_ratio=0.3,
        max_non_alpha_words_ratio=0.8, min_stop_words=2, language=whitespace_tokenizer(),
    )  # fmt: skip
    ours = GopherQuality(variant="datatrove")

    # The datatrove variant reads datatrove's own symbol set (a fixed list of punctuation, without
    # e.g. "©", "•", "€"), so a token made only of those is a word on both sides.
    check(ours_keep(ours, corpus), ref_keep(ref, corpus), corpus, "gopher_quality")
    # pages around the 50-word limit made up with tokens of symbols that are in one set and not the
    # other (found on the 200,000-document demo pool: navigation pages whose "©" decided the count)
    words = "the quick brown fox jumps over a lazy dog and".split()
    odd = ["\u00a9", "\u2022", "\u00ae", "\u20ac", "\u2192", "\uff11", "\u2014", "\u00bb", "|", ">"]
    texts = [" ".join(words[k % 10] for k in range(n)) + " " + " ".join(odd[k % 10] for k in range(m))
             for n in (45, 48, 49, 50) for m in (0, 1, 2, 5, 10)]
    edge = docs_table([f"edge/{k}" for k in range(len(texts))], texts, "edge")
    ref_edge = ref_keep(ref, edge)
    assert ours_keep(GopherQuality(variant="datatrove"), edge) == ref_edge
    assert 0 < sum(ref_edge) < len(ref_edge)
    # the DCLM variant counts its own way (fastText words): the "©" pages are short for it
    assert ours_keep(GopherQuality(variant="dclm"), edge) != ref_edge


def test_gopher_repetition_parity(corpus):  # noqa: ANN001
    ref = dtf.GopherRepetitionFilter(language=whitespace_tokenizer())
    ours = GopherRepetition(variant="datatrove")
    # datatrove keys duplicated 5..10-grams by "".join(words) (so "ab c" == "a bc");
    # ours are exact word sequences. Not hit on these corpora.
    check(ours_keep(ours, corpus), ref_keep(ref, corpus), corpus, "gopher_repetition")


def test_fineweb_quality_parity(corpus):  # noqa: ANN001
    from datatrove.utils.text import TERMINAL_PUNCTUATION

    ref = dtf.FineWebQualityFilter(language=whitespace_tokenizer())
    ours = FineWebQuality(stop_chars=tuple(TERMINAL_PUNCTUATION))
    check(ours_keep(ours, corpus), ref_keep(ref, corpus), corpus, "fineweb_quality")


def test_c4_line_rules_parity(corpus):  # noqa: ANN001
    # The line rules with a sentence minimum of 1 (= some line is kept, whatever the
    # splitter): runs without spaCy. DCLM c4.yaml thresholds (>= 5 words per line);
    # datatrove's end marks include "'" (TFDS's do not): passed to ours.
    ref = dtf.C4QualityFilter(min_num_sentences=1, min_words_per_line=5, language=whitespace_tokenizer())
    ours = C4Lines(end_marks=(".", "?", "!", '"', "'"), min_sentences=1)
    check(ours_keep(ours, corpus), ref_keep(ref, corpus), corpus, "c4_lines")


def test_c4_quality_parity(corpus):  # noqa: ANN001
    """Every C4 rule with datatrove's real English sentence splitting (spaCy's sentencizer,
    its default for ``language="en"``): our sentence-boundary regex against a real splitter.
    C4's words are ``line.split()`` on both sides."""
    pytest.importorskip("spacy")
    ref = dtf.C4QualityFilter(min_num_sentences=3, min_words_per_line=5)
    ours = C4Lines(end_marks=(".", "?", "!", '"', "'"))
    check(ours_keep(ours, corpus), ref_keep(ref, corpus), corpus, "c4_quality")


def test_url_filter_parity(corpus, monkeypatch):  # noqa: ANN001
    pytest.importorskip("tldextract")
    pytest.importorskip("ahocorasick")
    pytest.importorskip("fasteners")  # datatrove's URLFilter declares it
    import tldextract

    from filters.heuristics.url import DEFAULT_DOMAINS, DEFAULT_HARD, DEFAULT_SOFT, DEFAULT_STRICT, read_list

    table = corpus.filter(pa.compute.is_valid(corpus.column("url")))
    if table.num_rows == 0:
        pytest.skip("no URLs in this corpus")
    domains, hard = read_list(DEFAULT_DOMAINS), read_list(DEFAULT_HARD)
    soft, strict = read_list(DEFAULT_SOFT), read_list(DEFAULT_STRICT)
    # add a few entries that the real/synthetic URLs do hit, so both sides drop something
    extract = tldextract.TLDExtract(suffix_list_urls=())  # offline: the bundled suffix list
    hosts = sorted({extract(u).registered_domain for u in table.column("url").to_pylist()} - {""})
    domains += hosts[::7]
    ref = dtf.URLFilter(
        extra_domains=domains, banned_words=hard, soft_banned_words=soft, banned_subwords=strict,
        use_integrated_lists=False,
    )  # fmt: skip
    ref.tldextractor = extract
    ref.banned_subwords_automaton.make_automaton()
    dom = URLDomainFilter(blocklist_path=None, domains=domains)
    words = URLWordsFilter(
        strict_words=strict, hard_words=hard, soft_words=soft, strict_remove_chars="", soft_threshold=2,
        case_sensitive_words=True,  # datatrove splits the URL into words without lowercasing it
    )
    # datatrove removes every non-alphanumeric character before the substring match;
    # ours removes `strict_remove_chars` ("-." in DCLM): pass all ASCII punctuation.
    words.strict_remove_chars = "".join(chr(c) for c in range(33, 127) if not chr(c).isalnum())
    d, w = ours_keep(dom, table), ours_keep(words, table)
    ours = [a and b for a, b in zip(d, w)]

    # Can differ: a host with a trailing dot or an explicit port / credentials
    # (tldextract vs our host parser). None seen on these corpora.
    check(ours, ref_keep(ref, table), table, "url")

