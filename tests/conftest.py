import _posixsubprocess
import inspect
import os
import shutil
import subprocess
import types
from pathlib import Path

import hypothesis
import pytest

from tests.utils import short_tempdir


@pytest.fixture
def home() -> Path:
    """A short, private MPMD_HOME (Unix socket paths must stay under ~104 bytes)."""
    path = short_tempdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


# ---- the browser tests' fixtures (helpers in tests/browser.py, which skips the modules
# that import it when Playwright or chromium is missing)

@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    from tests.browser import ARGS, CHROMIUM

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A page that fails its test on any page error or Content-Security-Policy violation."""
    context = browser.new_context(viewport={"width": 1400, "height": 860}, accept_downloads=True)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text)
          if m.type == "error" and "Content Security Policy" in m.text else None)
    yield pg
    context.close()
    assert not errors, errors


@pytest.fixture
def daemon(home: Path):
    from tests.utils import Daemon

    with Daemon(home, MPMD_VIEWER_PORT="0") as d:
        yield d


# ---- markers: every test gets exactly one of claude, browser, integration, unit (the first
# that applies), so `make test-fast` (`-m unit`) is the edit-test loop and `-m "not claude"`
# runs without the Claude Code CLI. The rule reads the names a test uses: in its own code,
# in the functions, classes and fixtures of its module (and conftest's) that it calls, as
# far as they go. A test may carry a marker itself where the rule is wrong.
# MPMD_TEST_UNIT_STRICT=1 checks the rule: a unit test that starts a process fails.

KINDS = ("claude", "browser", "integration", "unit")
CLAUDE_NAMES = frozenset({"Sandbox", "require_claude", "Terminal", "ScriptedAPI"})
BROWSER_FIXTURES = frozenset({"browser", "page"})
# What starts a process: the daemon, the CLI, a hook, any subprocess.
PROCESS_NAMES = frozenset({"Daemon", "mpmd_cli", "run_hook", "subprocess", "multiprocessing",
                           "Popen", "spawn_wait", "fork", "posix_spawn"})


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _names_reached(func: object, seen: set[int]) -> set[str]:
    """The names ``func`` uses, and those of the functions and classes of its own module
    that it names (a test's helpers), as far as they go."""
    func = inspect.unwrap(getattr(func, "__func__", func))  # a @contextmanager's generator
    func = getattr(getattr(func, "hypothesis", None), "inner_test", func)  # under @given
    if not isinstance(func, types.FunctionType) or id(func) in seen:
        return set()
    seen.add(id(func))
    names = _code_names(func.__code__)
    for name in list(names):
        local = func.__globals__.get(name)
        if getattr(local, "__module__", None) != func.__module__:
            continue
        members = vars(local).values() if isinstance(local, type) else (local,)
        for member in members:
            names |= _names_reached(getattr(member, "fget", member), seen)
    return names


def _kind(item: pytest.Item) -> str:
    module = getattr(item, "module", None)
    if module is not None and module.__name__.startswith("tests.test_claude_"):
        return "claude"
    info = getattr(item, "_fixtureinfo", None)
    fixtures = [d.func for defs in info.name2fixturedefs.values() for d in defs] if info else []
    seen: set[int] = set()
    names = set().union(*(_names_reached(f, seen) for f in [getattr(item, "obj", None),
                                                                *fixtures]))
    if names & CLAUDE_NAMES:
        return "claude"
    # A module that imports tests.browser is skipped, every test of it, without chromium.
    if BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())) or module is not None and any(
            getattr(v, "__module__", None) == "tests.browser" for v in vars(module).values()):
        return "browser"
    return "integration" if names & PROCESS_NAMES else "unit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if not any(item.get_closest_marker(kind) for kind in KINDS):  # unless it says
            item.add_marker(_kind(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    if os.environ.get("MPMD_TEST_UNIT_STRICT") != "1" or not item.get_closest_marker("unit"):
        return (yield)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{item.nodeid} is marked unit but starts a process")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(subprocess.Popen, "__init__", refuse)
        mp.setattr(_posixsubprocess, "fork_exec", refuse)  # multiprocessing's spawn
        for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "popen"):
            mp.setattr(os, name, refuse)
        return (yield)


# ---- `make test-fast` (MPMD_TEST_FAST=1): property tests try fewer examples (tests.utils.
# examples caps the counts tests ask for; this profile, the default of the others).
hypothesis.settings.register_profile("fast", max_examples=20)
if os.environ.get("MPMD_TEST_FAST") == "1":
    hypothesis.settings.load_profile("fast")
