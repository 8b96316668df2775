"""The package's shape, as docs/architecture.md draws it: stages whose imports point one way,
and no import circle between modules. Read from the source (every import, also those made
inside a function), so a new arrow upward fails here before anyone has to find it."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.utils import ROOT

# Lowest first: a module may import its own stage, any stage before it, the foundation
# (modules directly in mpmd/) and mpm_hook.
STAGES = ("model", "storage", "ingest", "history", "serve", "transcripts", "forward",
          "notify", "control", "ops", "daemon", "cli")
# Above every stage: what runs the command line (`python -m mpmd`, and the daemon a
# SessionStart hook starts, from the installation).
ENTRY_POINTS = {"mpmd.__main__", "mpm_hook.start"}


def modules() -> dict[str, Path]:
    found = {}
    for package in ("mpmd", "mpm_hook"):
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of ours ``path`` imports, outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and getattr(block.test, "id", None) == "TYPE_CHECKING"
                   for node in ast.walk(block)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return {name for name in out if name in known}


def stage_of(module: str) -> int | None:
    """The stage's rank, or None for the foundation and mpm_hook."""
    parts = module.split(".")
    if parts[0] != "mpmd" or len(parts) < 3:
        return None
    return STAGES.index(parts[1])


def test_every_package_of_mpmd_is_a_stage() -> None:
    packages = {p.name for p in (ROOT / "mpmd").iterdir()
                if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(STAGES)
    for stage in STAGES:  # a package is a folder, not a module of its own
        assert (ROOT / "mpmd" / stage / "__init__.py").read_text() == ""


def test_imports_point_down_the_stages() -> None:
    known = modules()
    upward = []
    for module, path in known.items():
        if module in ENTRY_POINTS:
            continue
        mine = stage_of(module)
        for target in imports(path, known):
            theirs = stage_of(target)
            if theirs is not None and (mine is None or theirs > mine):
                upward.append(f"{module} -> {target}")
    assert not upward, "imports against the stages' order:\n" + "\n".join(sorted(upward))


def test_no_import_circle() -> None:
    known = modules()
    graph = {module: imports(path, known) - {module} for module, path in known.items()}
    circles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                circles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, "import circles:\n" + "\n".join(circles)
