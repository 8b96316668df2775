import shutil
from pathlib import Path

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
