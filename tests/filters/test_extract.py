"""The extraction stage: only marked rows are extracted, empty extractions dropped, failing pages
quarantined, both backends on real crawled pages (skipped without ../shared/data) and on demo pages."""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import pyarrow as pa
import pytest

from curation.readers.warc import HTML_COLUMN
from curation.schema import docs_table
from curation.shard import apply_stage
from curation.stage import ShardContext, recipe_hash
from demopool import make_doc
from demopool.warc import page_html
from filters.extract import EMPTY_REASON, HtmlExtractor
from tests.curation.readers.warc_helpers import read_all

ROOT = Path(__file__).resolve().parents[2]
CORPORA = ROOT / ".." / "shared" / "data" / "corpora"
SHARD = ShardContext("s", "in.warc.gz")
ARTICLE = ["The old harbour town has changed a great deal over the last twenty years, and most boats have gone.",
           "Local families still gather on the pier every Sunday evening to watch the sun go down over the water.",
           "A small museum near the station tells the story of the herring trade with photographs and old nets."]


def _page() -> str:
    return page_html(random.Random(3), "\n".join(ARTICLE), "harbourdaily.com", None, "en")


def _table(texts: list[str], marks: list[bool | None] | None) -> pa.Table:
    t = docs_table([f"d{i}" for i in range(len(texts))], texts, "warc")
    if marks is not None:
        t = t.append_column(HTML_COLUMN, pa.array(marks, pa.bool_()))
    return t


def test_only_marked_rows_are_extracted_and_the_marker_goes():
    empty = "<html><head><title>x</title><script>var a = 1;</script></head><body></body></html>"
    table = _table([_page(), "<p>already text, left alone</p>", empty], [True, False, True])
    res = apply_stage(HtmlExtractor(), table, SHARD)
    assert HTML_COLUMN not in res.kept.column_names
    assert res.kept.column("id").to_pylist() == ["d0", "d1"]
    text = res.kept.column("text")[0].as_py()
    assert all(line in text for line in ARTICLE)
    assert "<p>" not in text and "All rights reserved" not in text and "cookies" not in text.lower()
    assert res.kept.column("text")[1].as_py() == "<p>already text, left alone</p>"
    assert res.dropped.column("reason").to_pylist() == [EMPTY_REASON]
    assert res.quarantined is None


def test_tables_without_html_pass_through_untouched():
    table = _table(["plain <b>text</b> from a jsonl shard"], None)
    res = HtmlExtractor().process(table, SHARD)
    assert res.kept is table and res.dropped.num_rows == 0


def test_a_failing_page_is_quarantined_not_fatal():
    # a real failure of the real library: trafilatura rejects an unknown keyword on every page it is given
    stage = HtmlExtractor("trafilatura", options={"no_such_option": 1})
    table = _table([_page(), "plain text row", _page()], [True, False, True])
    res = apply_stage(stage, table, SHARD)
    assert res.kept.column("id").to_pylist() == ["d1"]
    assert res.quarantined.column("reason").to_pylist() == ["stage_error:html_extract:TypeError"] * 2
    assert res.quarantined.column("id").to_pylist() == ["d0", "d2"]
    assert res.quarantined.column("file").to_pylist() == ["in.warc.gz"] * 2
    assert b"<article" in res.quarantined.column("raw")[0].as_py()


def test_extract_many_takes_str_and_bytes():
    ex = HtmlExtractor()
    russian = "Съешь же ещё этих мягких французских булок, да выпей чаю."
    page = f'<html><head><meta charset="windows-1251"></head><body><p>{russian}</p></body></html>'
    out = ex.extract_many([page, page.encode("cp1251"), bytes(range(256)) * 4, "<html></html>"])
    assert out[0] == out[1] == russian
    assert out[2] is None  # binary bytes: no charset decodes them
    assert out[3] == ""


def test_backends_configuration_and_pickling():
    with pytest.raises(ValueError, match="backend"):
        HtmlExtractor("readability")
    a, b = HtmlExtractor(), HtmlExtractor("trafilatura")
    assert a.options == {"main_content": True}
    assert b.options["favor_precision"] and not b.options["deduplicate"]
    assert recipe_hash([a]) != recipe_hash([b]) != recipe_hash([HtmlExtractor(options={"main_content": False})])
    a.setup()
    clone = pickle.loads(pickle.dumps(a))
    assert clone.extract_many([_page()]) == a.extract_many([_page()])


def test_trafilatura_drops_spam_comments_resiliparse_keeps_them():
    rng = random.Random(11)
    page = ""
    while 'class="comments"' not in page:
        page = page_html(rng, "\n".join(ARTICLE), "harbourdaily.com", None, "en")
    res, traf = HtmlExtractor().extract_many([page])[0], HtmlExtractor("trafilatura").extract_many([page])[0]
    for text in (res, traf):
        assert all(line in text for line in ARTICLE)
    assert "Comments" in res and "Comments" not in traf


def test_demo_documents_come_back_from_their_pages():
    ex = HtmlExtractor(options={"comments": False})
    for i in range(40):
        doc = make_doc(5, i, 1000)
        page = page_html(random.Random(i), doc.text, "example.org", None, doc.lang)
        out = ex.extract_many([page])[0]
        got = [ln.strip() for ln in out.split("\n") if ln.strip()]
        assert got == [ln.strip() for ln in doc.text.split("\n") if ln.strip()], (i, doc.category)


def test_real_pages_main_content_against_the_wet_text():
    warc, wet = CORPORA / "warc" / "whirlwind.warc.gz", CORPORA / "warc" / "whirlwind.warc.wet.gz"
    if not warc.exists():
        pytest.skip("real samples absent")
    (html,) = read_all(warc)[0].column("text").to_pylist()
    (wet_text,) = read_all(wet)[0].column("text").to_pylist()
    for backend in ("resiliparse", "trafilatura"):
        text = HtmlExtractor(backend).extract_many([html])[0]
        assert "Escopete" in text and "ortografía oficial de Biquipedia" in text
        # Common Crawl's WET text keeps the site's navigation; main-content extraction does not
        assert "Menú principal" in wet_text and "Menú principal" not in text
        assert len(text) < 0.6 * len(wet_text)


def test_real_pages_both_backends():
    path = CORPORA / "warc" / "resiliparse_CC-MAIN-2020-34_warcfile.warc.gz"
    if not path.exists():
        pytest.skip("real samples absent")
    pages = read_all(path)[0].column("text").to_pylist()
    for backend in ("resiliparse", "trafilatura"):
        out = HtmlExtractor(backend).extract_many(pages)
        assert None not in out
        assert sum(bool(t.strip()) for t in out) >= 0.75 * len(pages)
        assert all("<div" not in t and "</p>" not in t for t in out)
