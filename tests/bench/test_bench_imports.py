"""Every module a benchmark imports comes with `pip install -e ".[test,bench]"` (what `EXTRAS=test,bench bash
bootstrap.sh` installs): it is the standard library, this project, or a distribution that pyproject.toml's
dependencies and its test and bench extras pull in, directly or through their own requirements (read from the
installed distributions' metadata). A benchmark that imports something undeclared works on a machine where it
happens to be installed and fails on a fresh one: this test fails first."""

from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import importlib.util
import os
import re
import sys
import tomllib

import pytest
from packaging.requirements import Requirement

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "bench")
OWN = {"curation", "filters", "train_small", "pipelines", "demopool", "tests"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_modules(path: str) -> set[str]:
    """Top-level names of every absolute import in a file (inside functions too)."""
    tree = ast.parse(open(path).read(), path)
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


@functools.lru_cache(maxsize=4)
def declared_closure(extras: tuple[str, ...] = ("test", "bench")) -> set[str]:
    """Normalised names of the distributions the project's dependencies and ``extras`` install, transitively."""
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    for e in extras:
        todo += [Requirement(r) for r in project["optional-dependencies"][e]]
    seen: dict[str, set[str]] = {}
    env = {"python_version": f"{sys.version_info.major}.{sys.version_info.minor}"}
    while todo:
        req = todo.pop()
        name = _norm(req.name)
        wanted = set(req.extras) | {""}
        if name in seen and wanted <= seen[name]:
            continue
        seen.setdefault(name, set()).update(wanted)
        try:
            requires = md.requires(req.name) or []
        except md.PackageNotFoundError:
            continue  # declared but not installed here: the import check below says so if a benchmark needs it
        for r in map(Requirement, requires):
            if r.marker is None or any(r.marker.evaluate({**env, "extra": x}) for x in wanted):
                todo.append(r)
    return set(seen)


# Import names that differ from the distribution that provides them, for the check when it is not installed.
IMPORT_NAMES = {"icu": "pyicu-wheels", "lingua": "lingua-language-detector", "fasttext": "fasttext-numpy2-wheel"}


@functools.lru_cache(maxsize=4)
def declared_directly(extras: tuple[str, ...] = ("test", "bench")) -> set[str]:
    """Normalised names the project's dependencies and ``extras`` list themselves (no metadata needed)."""
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    reqs = list(project["dependencies"])
    for e in extras:
        reqs += project["optional-dependencies"][e]
    return {_norm(Requirement(r).name) for r in reqs}


@functools.lru_cache(maxsize=1)
def _provided() -> dict[str, list[str]]:
    return md.packages_distributions()


SCRIPTS = sorted(f for f in os.listdir(BENCH) if f.endswith(".py"))


def test_the_closure_is_read_from_the_metadata():
    closure = declared_closure()
    assert {"pyarrow", "numba", "psutil", "rensa"} <= closure  # direct: a dependency and bench extras
    assert "llvmlite" in closure  # transitive: numba's own requirement
    assert "rensa" not in declared_closure(extras=("test",))  # a peer only the bench extra brings
    assert {"rensa", "pyicu-wheels", "lingua-language-detector"} <= declared_directly()
    assert "rensa" not in declared_directly(extras=("test",))


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_benchmark_import_is_declared(script):
    local = {f[:-3] for f in SCRIPTS}
    provided = _provided()
    closure = declared_closure()
    problems = []
    for mod in sorted(imported_modules(os.path.join(BENCH, script))):
        if mod in sys.stdlib_module_names or mod in OWN or mod in local or mod == "__future__":
            continue
        if importlib.util.find_spec(mod) is None:
            # The README's test command installs the test extra only: a benchmark peer is not installed there.
            # Its distribution must then be one pyproject.toml names itself (under its import name or the
            # known distribution name above); a transitive provider cannot be read without its metadata.
            if _norm(IMPORT_NAMES.get(mod, mod)) not in declared_directly():
                problems.append(f"{mod}: not installed, and no dependency or extra names it")
            continue
        dists = {_norm(d) for d in provided.get(mod, [])}
        if not dists & closure:
            problems.append(f"{mod}: from {sorted(dists) or 'no distribution'}, which no dependency or extra declares")
    assert not problems, f"bench/{script}: " + "; ".join(problems) + " (declare it in pyproject.toml's bench extra)"
