"""What the browser tests share: Debian's chromium driven by Playwright, a page that fails
its test on any page error or Content-Security-Policy violation, a daemon, real hooks.

Importing this module skips the importing test module when Playwright or chromium is
missing. The `browser`, `page` and `daemon` fixtures are in tests/conftest.py.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.utils import ROOT, env_for, run_hook

pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("no chromium at /usr/bin/chromium", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = ROOT / "docs" / "screenshots"

expect.set_options(timeout=10_000)


def feed(home: Path, *payloads: dict) -> None:
    """One real hook process per payload, in order."""
    for payload in payloads:
        result = run_hook(home, json.dumps(payload).encode())
        assert result.returncode == 0, result.stderr


def viewer_url(home: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "mpmd", "status", "--json"],
                            env=env_for(home), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    url = json.loads(result.stdout)["viewer_url"]
    assert url and "#token=" in url, result.stdout
    return url


def open_viewer(page: Page, home: Path) -> None:
    page.goto(viewer_url(home))
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")


def other_session(payload: dict, session_id: str, cwd: str, **changes: object) -> dict:
    """A fixture payload moved to another session (and folder)."""
    p = copy.deepcopy(payload)
    p.update(session_id=session_id, cwd=cwd, **changes)
    return p


def screenshot_folder(tmp_path: Path) -> Path:
    """docs/screenshots with MPMD_SCREENSHOTS=1; otherwise a temporary folder (the test
    then only checks that every view renders)."""
    folder = SCREENSHOTS if os.environ.get("MPMD_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def themed_pages(browser: Browser, url: str) -> Iterator[tuple[str, Page]]:
    """The viewer at ``url`` in a light and then a dark page (the size of the README's
    screenshots), each live before it is handed over."""
    for scheme in ("light", "dark"):
        context = browser.new_context(viewport={"width": 1440, "height": 860},
                                      color_scheme=scheme)
        try:
            pg = context.new_page()
            pg.goto(url)
            expect(pg.locator("#connection")).to_have_attribute("data-state", "live")
            yield scheme, pg
        finally:
            context.close()
