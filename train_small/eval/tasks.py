"""Few-shot task specifications: the llm-foundry jsonl formats and DCLM's task settings.

Three scoring formats (llm-foundry ``icl_task_type``):

* ``multiple_choice``: ``{"query", "choices": [...], "gold": int}``
* ``language_modeling``: ``{"context", "continuation"}``
* ``schema`` (Winograd-style): ``{"context_options": [...], "continuation", "gold": int}``

Shot counts and random baselines come from ``dclm_eval_meta_data.csv`` (the
mlfoundations/dclm ``eval/eval_meta_data.csv``) when it sits in the user's eval
folder; the delimiters below are the ones DCLM's ``eval/heavy.yaml`` sets for
each task (llm-foundry's defaults otherwise: example delimiter ``"\\n"``,
continuation delimiter ``" "``). Nothing here downloads: the user points to a
folder laid out like llm-foundry's ``scripts/eval/local_data``.
"""

from __future__ import annotations

import csv
import glob
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

log = logging.getLogger(__name__)

MC = "multiple_choice"
LM = "language_modeling"
SCHEMA = "schema"
TASK_TYPES = (MC, LM, SCHEMA)

META_CSV = "dclm_eval_meta_data.csv"


@dataclass(frozen=True)
class TaskSpec:
    """One evaluation task (an llm-foundry ``icl_tasks`` entry)."""

    label: str
    path: str  # jsonl path relative to the eval dir (or absolute)
    task_type: str
    num_fewshot: int = 0
    random_baseline: float = 0.0  # percent, as in the meta-data CSV
    category: str = ""
    continuation_delimiter: str = " "
    example_delimiter: str = "\n"
    prompt_string: str = ""
    prelimiter: str = ""
    has_categories: bool = False  # evaluate per ``category`` field, average the categories equally (DCLM)

    def __post_init__(self) -> None:
        if self.task_type not in TASK_TYPES:
            raise ValueError(f"{self.label}: task_type must be one of {TASK_TYPES}, got {self.task_type!r}")
        if self.num_fewshot < 0:
            raise ValueError(f"{self.label}: num_fewshot must be >= 0")
        if not 0.0 <= self.random_baseline < 100.0:
            raise ValueError(f"{self.label}: random_baseline is a percentage in [0, 100)")


_ANSWER = "\nAnswer: "

# label -> (relative path, type, continuation delimiter); DCLM eval/heavy.yaml.
_BUILTIN: dict[str, tuple[str, str, str]] = {
    "hellaswag_zeroshot": ("olmes_validation/hellaswag__rc_5shot.jsonl", MC, " "),
    "hellaswag": ("olmes_validation/hellaswag__rc_5shot.jsonl", MC, " "),
    "jeopardy": ("world_knowledge/jeopardy_all.jsonl", LM, _ANSWER),
    "bigbench_qa_wikidata": ("world_knowledge/bigbench_qa_wikidata.jsonl", LM, " "),
    "arc_easy": ("world_knowledge/arc_easy.jsonl", MC, _ANSWER),
    "arc_challenge": ("world_knowledge/arc_challenge.jsonl", MC, _ANSWER),
    "copa": ("commonsense_reasoning/copa.jsonl", MC, " "),
    "commonsense_qa": ("commonsense_reasoning/commonsense_qa.jsonl", MC, " "),
    "piqa": ("commonsense_reasoning/piqa.jsonl", MC, _ANSWER),
    "openbook_qa": ("commonsense_reasoning/openbook_qa.jsonl", MC, " "),
    "siqa": ("commonsense_reasoning/siqa.jsonl", MC, " "),
    "bigbench_strategy_qa": ("commonsense_reasoning/bigbench_strategy_qa.jsonl", MC, " "),
    "lambada_openai": ("language_understanding/lambada_openai.jsonl", LM, " "),
    "winograd": ("language_understanding/winograd_wsc.jsonl", SCHEMA, " "),
    "winogrande": ("language_understanding/winogrande.jsonl", SCHEMA, " "),
    "bigbench_language_identification": ("language_understanding/bigbench_language_identification.jsonl", MC, " "),
    "bigbench_dyck_languages": ("symbolic_problem_solving/bigbench_dyck_languages.jsonl", LM, " "),
    "agi_eval_lsat_ar": ("symbolic_problem_solving/agi_eval_lsat_ar.jsonl", MC, " "),
    "bigbench_cs_algorithms": ("symbolic_problem_solving/bigbench_cs_algorithms.jsonl", LM, " "),
    "bigbench_operators": ("symbolic_problem_solving/bigbench_operators.jsonl", LM, " "),
    "bigbench_repeat_copy_logic": ("symbolic_problem_solving/bigbench_repeat_copy_logic.jsonl", LM, " "),
    "boolq": ("reading_comprehension/boolq.jsonl", MC, _ANSWER),
    "pubmed_qa_labeled": ("reading_comprehension/pubmed_qa_labeled.jsonl", LM, " "),
    "squad": ("reading_comprehension/squad.jsonl", LM, " "),
    "coqa": ("reading_comprehension/coqa.jsonl", LM, " "),
}

# Tasks DCLM's eval/heavy.yaml marks ``has_categories: true`` (among those we know).
_HAS_CATEGORIES = {"jeopardy"}

# Shots / random baselines used when the meta-data CSV is absent (values of that CSV).
_FALLBACK_META: dict[str, tuple[int, float, str]] = {
    "hellaswag_zeroshot": (0, 25, "language understanding"),
    "hellaswag": (10, 25, "language understanding"),
    "jeopardy": (10, 0, "world knowledge"),
    "bigbench_qa_wikidata": (10, 0, "world knowledge"),
    "arc_easy": (10, 25, "world knowledge"),
    "arc_challenge": (10, 25, "world knowledge"),
    "copa": (0, 50, "commonsense reasoning"),
    "commonsense_qa": (10, 40.3, "commonsense reasoning"),
    "piqa": (10, 50, "commonsense reasoning"),
    "openbook_qa": (0, 25, "commonsense reasoning"),
    "siqa": (10, 50, "commonsense reasoning"),
    "bigbench_strategy_qa": (10, 50, "commonsense reasoning"),
    "lambada_openai": (0, 0, "language understanding"),
    "winograd": (0, 50, "language understanding"),
    "winogrande": (0, 50, "language understanding"),
    "bigbench_language_identification": (10, 25, "language understanding"),
    "bigbench_dyck_languages": (10, 0, "symbolic problem solving"),
    "agi_eval_lsat_ar": (3, 25, "symbolic problem solving"),
    "bigbench_cs_algorithms": (10, 0, "symbolic problem solving"),
    "bigbench_operators": (10, 0, "symbolic problem solving"),
    "bigbench_repeat_copy_logic": (10, 0, "symbolic problem solving"),
    "boolq": (10, 62, "reading comprehension"),
    "pubmed_qa_labeled": (10, 0, "reading comprehension"),
    "squad": (10, 0, "reading comprehension"),
    "coqa": (0, 0, "reading comprehension"),
}

#: Tasks whose file in an llm-foundry eval folder is not the one DCLM evaluates: HellaSwag is read from OLMES's
#: 1,000 validation questions (``olmes_validation/``), not DCLM's 10,042-item file.
NOT_DCLM_FILES: dict[str, str] = {
    "hellaswag": "OLMES hellaswag validation questions, not DCLM's language_understanding/hellaswag.jsonl",
    "hellaswag_zeroshot": "OLMES hellaswag validation questions, not DCLM's language_understanding/hellaswag.jsonl",
}


def dclm_departures(spec: TaskSpec, n: int, n_total: int, n_skipped: int) -> list[str]:
    """How an evaluation of ``spec`` differs from DCLM's definition of the task (empty: it does not).

    ``shots`` (another shot count than DCLM's meta-data), ``subset`` (not every example evaluated),
    ``skipped`` (examples left out because they do not fit the window), ``file`` (another task file)."""
    out = []
    if spec.label in _FALLBACK_META and spec.num_fewshot != _FALLBACK_META[spec.label][0]:
        out.append(f"shots: {spec.num_fewshot} instead of DCLM's {_FALLBACK_META[spec.label][0]}")
    if n_skipped:
        out.append(f"skipped: {n_skipped} examples longer than the window")
    if n + n_skipped < n_total:
        out.append(f"subset: {n + n_skipped} of {n_total} examples")
    if spec.label in NOT_DCLM_FILES:
        out.append(f"file: {NOT_DCLM_FILES[spec.label]}")
    elif spec.label not in _BUILTIN or spec.path != _BUILTIN[spec.label][0]:
        out.append(f"file: {spec.path} is not DCLM's file for {spec.label}")
    return out


#: DCLM's CORE set (``low_variance_datasets`` of eval/additional_aggregation.json, 22 tasks).
CORE_TASKS: tuple[str, ...] = (
    "hellaswag_zeroshot", "jeopardy", "bigbench_qa_wikidata", "arc_easy", "arc_challenge", "copa",
    "commonsense_qa", "piqa", "openbook_qa", "lambada_openai", "hellaswag", "winograd", "winogrande",
    "bigbench_dyck_languages", "agi_eval_lsat_ar", "bigbench_cs_algorithms", "bigbench_operators",
    "bigbench_repeat_copy_logic", "squad", "coqa", "boolq", "bigbench_language_identification",
)  # fmt: skip

#: A small fast subset for CPU proxies (all three formats, rb > 0 and rb = 0 tasks).
CPU_TASKS: tuple[str, ...] = (
    "hellaswag_zeroshot", "arc_easy", "copa", "piqa", "openbook_qa", "lambada_openai", "winogrande",
    "bigbench_qa_wikidata", "boolq",
)  # fmt: skip


def read_meta(eval_dir: str | os.PathLike | None) -> dict[str, dict]:
    """Parse ``dclm_eval_meta_data.csv`` in ``eval_dir``: {task: {shots, random_baseline, category}}."""
    if eval_dir is None:
        return {}
    path = Path(eval_dir) / META_CSV
    if not path.exists():
        return {}
    out: dict[str, dict] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            name = (row.get("Eval Task") or "").strip()
            if not name:
                continue
            try:
                shots = int(row.get("#shots") or 0)
                rb = float(row.get("Random baseline") or 0.0)
            except ValueError:
                log.warning("meta CSV: unparsable row for %s, skipped", name)
                continue
            out[name] = {"shots": shots, "random_baseline": rb, "category": (row.get("Task Category") or "").strip()}
    return out


def _find_file(eval_dir: Path, rel: str) -> Path | None:
    p = eval_dir / rel
    if p.exists():
        return p
    hits = sorted(glob.glob(str(eval_dir / "**" / Path(rel).name), recursive=True))
    return Path(hits[0]) if hits else None


def builtin_spec(label: str, eval_dir: str | os.PathLike | None = None, meta: dict | None = None) -> TaskSpec:
    """The spec of a known task, with shots/baseline from the eval dir's CSV when present."""
    if label not in _BUILTIN:
        raise KeyError(f"unknown task {label!r}; known: {sorted(_BUILTIN)}")
    rel, ttype, cdelim = _BUILTIN[label]
    shots, rb, cat = _FALLBACK_META[label]
    m = (meta if meta is not None else read_meta(eval_dir)).get(label)
    if m is not None:
        shots, rb, cat = m["shots"], m["random_baseline"], m["category"] or cat
    return TaskSpec(
        label=label,
        path=rel,
        task_type=ttype,
        num_fewshot=shots,
        random_baseline=rb,
        category=cat,
        continuation_delimiter=cdelim,
        has_categories=label in _HAS_CATEGORIES,
    )


def resolve_tasks(
    eval_dir: str | os.PathLike,
    tasks: list[str | TaskSpec] | tuple[str | TaskSpec, ...] | str | None = None,
    num_fewshot: int | None = None,
) -> list[tuple[TaskSpec, Path]]:
    """Resolve task names (or specs) to (spec, jsonl path) pairs present in ``eval_dir``.

    ``tasks``: None or "core" for DCLM's CORE set, "cpu" for :data:`CPU_TASKS`,
    "all" for every known task, a comma-separated string, or a list of labels /
    :class:`TaskSpec`. Tasks whose file is absent are skipped with a warning (a
    CORE aggregate over a partial set is reported as such by the harness).
    ``num_fewshot`` overrides every task's shot count (e.g. 0 for a quick run).
    """
    root = Path(eval_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"eval dir {root} does not exist")
    if tasks is None or tasks == "core":
        names: list[str | TaskSpec] = list(CORE_TASKS)
    elif tasks == "cpu":
        names = list(CPU_TASKS)
    elif tasks == "all":
        names = list(_BUILTIN)
    elif isinstance(tasks, str):
        names = [t.strip() for t in tasks.split(",") if t.strip()]
    else:
        names = list(tasks)
    meta = read_meta(root)
    out: list[tuple[TaskSpec, Path]] = []
    for t in names:
        spec = t if isinstance(t, TaskSpec) else builtin_spec(t, meta=meta)
        if num_fewshot is not None:
            spec = replace(spec, num_fewshot=num_fewshot)
        path = Path(spec.path) if os.path.isabs(spec.path) else _find_file(root, spec.path)
        if path is None or not path.exists():
            log.warning("task %s: %s not found under %s, skipped", spec.label, spec.path, root)
            continue
        out.append((spec, path))
    return out
