"""Heuristic filters (RefinedWeb as reproduced by DCLM, Gopher, C4, FineWeb) as
vectorised stages, and the two recipe blocks the pipelines use:

* :func:`refinedweb_stages` — DCLM's ``dclm_baseline_refinedweb.yaml`` (or, with
  ``exclude_hq_domains=True``, ``refinedweb.yaml``) in DCLM's order;
* :func:`c4_stages` — the local C4 rules of DCLM's ``c4.yaml``.

Both take ``overrides``: a mapping from a stage's name to the keyword arguments to
change, e.g. ``refinedweb_stages(gopher_quality={"min_doc_words": 100})``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from curation.stage import Stage
from filters.heuristics._arrow import BatchWords
from filters.heuristics.c4 import C4BadWords, C4Lines, C4PageLength
from filters.heuristics.fineweb import FineWebQuality
from filters.heuristics.gopher import GopherQuality, GopherRepetition
from filters.heuristics.refinedweb import RefinedWebLineFilter
from filters.heuristics.url import (
    HQ_DOMAINS,
    MoveURL,
    NewlineCollapse,
    URLDomainFilter,
    URLRemoval,
    URLWordsFilter,
)

__all__ = [
    "BatchWords", "C4BadWords", "C4Lines", "C4PageLength", "FineWebQuality", "GopherQuality", "GopherRepetition",
    "HQ_DOMAINS", "MoveURL", "NewlineCollapse", "RefinedWebLineFilter", "URLDomainFilter", "URLRemoval",
    "URLWordsFilter", "VARIANTS", "c4_stages", "refinedweb_stages",
]  # fmt: skip


def _build(specs: list[tuple[str, type, dict[str, Any]]], overrides: Mapping[str, Mapping[str, Any]]) -> list[Stage]:
    names = [name for name, _, _ in specs]
    unknown = set(overrides) - set(names)
    if unknown:
        raise ValueError(f"unknown stage(s) in overrides: {sorted(unknown)}; stages are {names}")
    stages = []
    for name, cls, kwargs in specs:
        extra = overrides.get(name) or {}
        if not isinstance(extra, Mapping):
            raise ValueError(f"overrides[{name!r}] must be a mapping of keyword arguments")
        stage = cls(**{**kwargs, **extra})
        stage.name = name
        stages.append(stage)
    return stages


#: ``refinedweb_stages(variant=...)``: the DCLM-Baseline heuristics as DCLM describes them, or as it runs
VARIANTS = ("dclm", "dclm-exact")


def refinedweb_stages(
    *,
    variant: str = "dclm",
    banned_domains: str | None = None,
    exclude_hq_domains: bool = False,
    language: bool = True,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    **stage_overrides: Mapping[str, Any],
) -> list[Stage]:
    """DCLM's RefinedWeb reproduction, in the order of
    ``baselines/baselines_configs/dclm_baseline_refinedweb.yaml`` (Li et al. 2024,
    DataComp-LM, arXiv:2406.11794, §4.2 and Appendix; rules from Penedo et al. 2023):

    move_url, url_domains, [url_hq_domains], url_words, url_removal,
    newline_collapse, langid (English, score > 0.65), gopher_quality,
    gopher_repetition, refinedweb_lines.

    ``variant="dclm-exact"`` reproduces DCLM's code as it runs, quirks included (exact
    domain match after deleting every "www", URLs removed only from pages that start with a
    TLD, "Read more..." as a regex); ``"dclm"`` (default) is the same but for those three,
    where it follows the evident intent (``filters/heuristics/README.md`` lists them).
    ``banned_domains``: the domain list (DCLM's curated list is not shipped; default: the
    small list in ``filters/data``). ``exclude_hq_domains=True`` adds ``refinedweb.yaml``'s
    filter of curated sources (Wikipedia, arXiv, GitHub, StackExchange, Reddit, ...).
    ``language=False`` drops the language stage (for parity runs, or an input already
    English-only). Per-stage keyword overrides go in ``overrides`` or as keyword arguments
    named after the stage: ``refinedweb_stages(langid={"min_score": 0.5})``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    exact = variant == "dclm-exact"
    merged = {**(overrides or {}), **stage_overrides}
    domains: dict[str, Any] = {"match": "dclm-exact"} if exact else {}
    if banned_domains is not None:
        domains["blocklist_path"] = banned_domains
    specs: list[tuple[str, type, dict[str, Any]]] = [
        ("move_url", MoveURL, {}),
        ("url_domains", URLDomainFilter, domains),
    ]
    if exclude_hq_domains:
        hq = {"blocklist_path": None, "domains": HQ_DOMAINS, "reason": "url:hq_domain"}
        specs.append(("url_hq_domains", URLDomainFilter, hq))
    specs += [
        ("url_words", URLWordsFilter, {}),
        ("url_removal", URLRemoval, {"gate": "start_tld" if exact else "always"}),
        ("newline_collapse", NewlineCollapse, {"max_consecutive": 2}),
    ]
    if language:
        from filters.langid import LanguageID

        specs.append(("langid", LanguageID, {"keep_langs": ("en",), "min_score": 0.65}))
    # No BatchWords here: DCLM's repetition n-grams use other words than quality's
    # whitespace words (see gopher.py); datatrove-variant chains share them (bench/heuristics.py).
    specs += [
        ("gopher_quality", GopherQuality, {"variant": "dclm"}),
        ("gopher_repetition", GopherRepetition, {"variant": "dclm"}),
        ("refinedweb_lines", RefinedWebLineFilter, {"phrases_as_regex": exact}),
    ]
    return _build(specs, merged)


def c4_stages(
    *,
    language: bool = False,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    **stage_overrides: Mapping[str, Any],
) -> list[Stage]:
    """The local (per-document) C4 rules in the order of DCLM's ``c4.yaml``:
    c4_page_length (<= 190,000 chars), c4_lines (line rules, lorem ipsum, ``{``,
    >= 3 sentences), c4_bad_words; ``language=True`` appends English language ID
    (C4 kept pages with langdetect probability >= 0.99; here ``min_score=0.99``).
    C4's URL and paragraph deduplication are global stages (``filters/dedup``).
    """
    from filters.langid import LanguageID

    merged = {**(overrides or {}), **stage_overrides}
    specs: list[tuple[str, type, dict[str, Any]]] = [
        ("c4_page_length", C4PageLength, {}),
        ("c4_lines", C4Lines, {}),
        ("c4_bad_words", C4BadWords, {}),
    ]
    if language:
        specs.append(("langid", LanguageID, {"keep_langs": ("en",), "min_score": 0.99}))
    return _build(specs, merged)
