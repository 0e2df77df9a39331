"""Document-for-document parity with DCLM's own heuristics (``../shared/tools/dclm_reference``).

Builds documents from the real web samples of ``../shared/data/corpora`` (C4, Dolma, RedPajama
CC, Pile-CC and OpenWebText2, OpenWebText, WET conversions, WARC pages extracted with
resiliparse's DCLM settings), runs DCLM's mappers over them (the oracle: ``run.sh``, language ID
off, an empty domain list) and our recipe through the command line a user runs::

    python pipelines/baseline.py -i DOCS.jsonl@jsonl --blocks heuristics --heuristics-variant dclm-exact \\
        --langid-backend none --banned-domains EMPTY_FILE --no-tokens -o RUN

and compares keep/drop and the final text per document. Two sets: ``dev`` (the samples as they
are, plus seeded line windows of them: other first lines, other lengths near the thresholds),
which the implementation was checked on while it was written, and ``heldout`` (the 798 CleanEval
pages, HTML extracted with resiliparse), looked at only to measure. Used by the slow test
(test_dclm_oracle.py) and ``bench/heuristics.py --dclm-parity`` (bench/results/dclm_parity.json).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa

from tests.filters.heuristics.realdata import CORPORA, ROOT, SHARED, _jsonl

ORACLE = ROOT / ".." / "shared" / "tools" / "dclm_reference"
CLEANEVAL = SHARED / "extraction" / "cleaneval"


def oracle_available() -> bool:
    return (ORACLE / "run.sh").is_file() and CORPORA.is_dir()


def _doc(source: str, doc_id: str, text: object, url: object = None) -> dict | None:
    if not isinstance(text, str) or not text.strip():
        return None
    return {"id": doc_id, "text": text, "url": url if isinstance(url, str) else "", "source": source}


def _html_pages(paths: list[Path], source: str) -> list[dict]:
    """(url, text) of every HTML response in WARC files, through our WARC reader and resiliparse
    with DCLM's setting (main content), as a recipe on WARC input does."""
    from curation.readers import get_reader
    from filters.extract import HtmlExtractor

    ex = HtmlExtractor("resiliparse")
    out = []
    for path in paths:
        reader = get_reader(str(path), "warc")
        for table, _ in reader.read(str(path)):
            kept = ex.process(table).kept
            for i, t, u in zip(kept.column("id").to_pylist(), kept.column("text").to_pylist(),
                               kept.column("url").to_pylist()):  # fmt: skip
                d = _doc(source, f"{source}/{path.name}/{i.rsplit('/', 1)[-1]}", t, u)
                if d:
                    out.append(d)
    return out


def _wet_pages(paths: list[Path]) -> list[dict]:
    from curation.readers import get_reader

    out = []
    for path in paths:
        reader = get_reader(str(path), "wet")
        for table, _ in reader.read(str(path)):
            for i, t, u in zip(table.column("id").to_pylist(), table.column("text").to_pylist(),
                               table.column("url").to_pylist()):  # fmt: skip
                d = _doc("wet", f"wet/{path.name}/{i.rsplit('/', 1)[-1]}", t, u)
                if d:
                    out.append(d)
    return out


def sample_docs() -> list[dict]:
    """Every real web sample document, as it is."""
    docs: list[dict | None] = []
    for path in sorted((CORPORA / "c4").glob("*.json.gz")):
        docs += [_doc("c4", f"c4/{path.name}/{i}", r.get("text"), r.get("url")) for i, r in enumerate(_jsonl(path))]
    dolma = sorted((CORPORA / "dolma").glob("*.jsonl.gz")) + [CORPORA / "dolma/provided/documents/000.json.gz"]
    for path in dolma:
        docs += [_doc("dolma", f"dolma/{path.name}/{i}", r.get("text"), (r.get("metadata") or {}).get("url"))
                 for i, r in enumerate(_jsonl(path))]  # fmt: skip
    for path in sorted((CORPORA / "redpajama").glob("data_mixture__redpajama-c*.jsonl")):
        for i, r in enumerate(_jsonl(path)):
            meta = r.get("meta") if isinstance(r.get("meta"), dict) else {}
            docs.append(_doc("redpajama", f"redpajama/{path.name}/{i}", r.get("text"), meta.get("url")))
    for path in sorted((CORPORA / "pile").glob("*.jsonl.zst")):
        for i, r in enumerate(_jsonl(path)):
            if (r.get("meta") or {}).get("pile_set_name") in ("Pile-CC", "OpenWebText2"):
                docs.append(_doc("pile", f"pile/{path.name}/{i}", r.get("text")))
    for path in sorted((CORPORA / "text" / "openwebtext").glob("*.txt")):
        docs.append(_doc("openwebtext", f"owt/{path.name}", path.read_text(encoding="utf-8")))
    docs += _wet_pages([CORPORA / "warc/whirlwind.warc.wet.gz", CORPORA / "edge/cc_net_sample.warc.wet"])
    warcs = [p for p in sorted((CORPORA / "warc").glob("*.warc.gz")) if not p.name.endswith((".wat.gz", ".wet.gz"))]
    docs += _html_pages(warcs + [CORPORA / "edge/resiliparse_clueweb-quirk.warc.gz"], "warc")
    return [d for d in docs if d]


def dev_docs(windows_per_doc: int = 6, seed: int = 0) -> list[dict]:
    """The samples, plus seeded windows of consecutive lines of each (other first lines, lengths
    around the 50-word and 5%-removed thresholds, pages starting with a URL-like word)."""
    base = sample_docs()
    rng = random.Random(seed)
    out = list(base)
    for d in base:
        lines = d["text"].split("\n")
        for k in range(windows_per_doc):
            if len(lines) < 3:
                break
            size = rng.choice((2, 4, 8, 16, 40))
            start = rng.randrange(0, max(1, len(lines) - size))
            out.append({**d, "id": f"{d['id']}#w{k}", "text": "\n".join(lines[start:start + size])})
    return [d for d in out if d["text"].strip()]


def heldout_docs() -> list[dict]:
    """The CleanEval pages (real web HTML, 2007), extracted with resiliparse (main content)."""
    from filters.extract import HtmlExtractor

    ex = HtmlExtractor("resiliparse")
    out = []
    for sub in ("cleaneval-final", "cleaneval-dev"):
        paths = sorted((CLEANEVAL / sub / "input").glob("*"))
        texts = ex.extract_many([p.read_bytes() for p in paths])
        for p, t in zip(paths, texts):
            d = _doc("cleaneval", f"cleaneval/{sub}/{p.name}", t)
            if d:
                out.append(d)
    return out


def write_jsonl(docs: list[dict], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for d in docs:
            fh.write(json.dumps(d, ensure_ascii=False) + "\n")


def run_oracle(docs_path: Path, out_path: Path, tmp: Path) -> dict[str, dict]:
    """DCLM's own mappers over the documents (the first run builds its environment from PyPI)."""
    env = {**os.environ, "TMPDIR": str(tmp), "VENV": str(tmp / "dclmref_venv")}
    subprocess.run(["bash", str(ORACLE / "run.sh"), "--data", str(docs_path), "--out", str(out_path)],
                   check=True, env=env, capture_output=True)  # fmt: skip
    return {r["id"]: r for r in map(json.loads, out_path.read_text(encoding="utf-8").splitlines())}


def run_ours(docs_path: Path, variant: str, run_dir: Path, empty_domains: Path) -> dict[str, str]:
    """The recipe as a user runs it (the command in the module docstring): kept id -> text."""
    cmd = [sys.executable, str(ROOT / "pipelines" / "baseline.py"), "-i", f"{docs_path}@jsonl", "--blocks",
           "heuristics", "--heuristics-variant", variant, "--langid-backend", "none", "--banned-domains",
           str(empty_domains), "--no-tokens", "-o", str(run_dir), "--executor", "local", "--no-progress",
           "--log-level", "WARNING"]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
    import pyarrow.parquet as pq

    files = sorted((run_dir / "data").rglob("*.parquet"))
    table = pa.concat_tables([pq.read_table(f, columns=["id", "text"]) for f in files]) if files else None
    return dict(zip(table.column("id").to_pylist(), table.column("text").to_pylist())) if table else {}


def compare(docs: list[dict], oracle: dict[str, dict], ours: dict[str, str]) -> dict:
    """Keep/drop agreement, identical final text among the documents both keep, per-document diffs."""
    both = agree = same_text = 0
    diffs = []
    for d in docs:
        ref = oracle[d["id"]]
        mine = ours.get(d["id"])
        if (mine is not None) == ref["kept"]:
            agree += 1
        else:
            diffs.append({"id": d["id"], "source": d["source"], "dclm": "keeps" if ref["kept"] else "drops",
                          "dclm_step": ref["step"], "dclm_detail": ref["detail"],
                          "ours": "keeps" if mine is not None else "drops"})  # fmt: skip
        if mine is not None and ref["kept"]:
            both += 1
            if mine == ref["text"]:
                same_text += 1
            else:
                diffs.append({"id": d["id"], "source": d["source"], "both_keep": True,
                              "text_diff": _first_difference(ref["text"], mine)})  # fmt: skip
    n = len(docs)
    return {"documents": n, "dclm_keeps": sum(oracle[d["id"]]["kept"] for d in docs), "ours_keeps": len(ours),
            "keep_drop_agreement": agree / n if n else None, "both_keep": both,
            "identical_text_of_both_kept": same_text / both if both else None, "diffs": diffs}  # fmt: skip


def _first_difference(a: str, b: str, context: int = 40) -> dict:
    i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
    return {"at": i, "dclm": a[max(0, i - context): i + context], "ours": b[max(0, i - context): i + context],
            "dclm_chars": len(a), "ours_chars": len(b)}  # fmt: skip


#: the default variant's departures from DCLM as it runs (filters/heuristics/README.md), each as the
#: stage overrides that turn it on in ``dclm-exact``
INTENT_FIXES = {
    "urls_removed_from_every_page": {"url_removal": {"gate": "always"}},
    "leading_www_stripped_subdomains_banned": {"url_domains": {"match": "suffix"}},
    "read_more_literal": {"refinedweb_lines": {"phrases_as_regex": False}},
}


def _run_stages(docs: list[dict], banned_domains: Path, **overrides: dict) -> dict[str, str]:
    from curation.schema import docs_table
    from filters.heuristics import refinedweb_stages

    table = docs_table([d["id"] for d in docs], [d["text"] for d in docs], "x", [d["url"] or None for d in docs])
    for stage in refinedweb_stages(variant="dclm-exact", banned_domains=str(banned_domains), language=False,
                                   **overrides):  # fmt: skip
        stage.setup()
        table = stage.process(table).kept
    return dict(zip(table.column("id").to_pylist(), table.column("text").to_pylist()))


def attribute(docs: list[dict], diffs: list[dict], banned_domains: Path) -> None:
    """Name, on every diff, the intent fixes that alone turn ``dclm-exact`` into what the default did
    on that document (``explained_by``; empty: a departure the README does not list)."""
    by_id = {d["id"]: d for d in docs}
    sub = [by_id[i] for i in dict.fromkeys(x["id"] for x in diffs)]
    if not sub:
        return
    exact = _run_stages(sub, banned_domains)
    single = {name: _run_stages(sub, banned_domains, **ov) for name, ov in INTENT_FIXES.items()}
    for x in diffs:
        i = x["id"]
        x["explained_by"] = [name for name, out in single.items() if out.get(i) != exact.get(i)]


def summary_outside_fixes(result: dict) -> dict:
    """Keep/drop agreement counting as disagreements only those no intent fix explains."""
    flips = [x for x in result["diffs"] if not x.get("both_keep")]
    unexplained = [x for x in flips if not x.get("explained_by")]
    text = [x for x in result["diffs"] if x.get("both_keep")]
    n = result["documents"]
    return {"keep_drop_disagreements": len(flips), "explained_by_intent_fixes": len(flips) - len(unexplained),
            "keep_drop_agreement_outside_intent_fixes": 1 - len(unexplained) / n if n else None,
            "text_differences": len(text),
            "text_differences_unexplained": sum(not x.get("explained_by") for x in text)}  # fmt: skip
