"""What the browser tests share: Debian's chromium driven by Playwright, a page that fails
its test on any page error or Content-Security-Policy violation, a daemon, real hooks.

Importing this module skips the importing test module when Playwright or chromium is
missing. The `browser`, `page` and `daemon` fixtures are in tests/conftest.py.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.utils import ROOT, env_for, run_hook

pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("no chromium at /usr/bin/chromium", allow_module_level=True)

from playwright.sync_api import Page, expect  # noqa: E402

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
