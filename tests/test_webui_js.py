"""The viewer's pure JavaScript modules (webui/model.js, timeline.js, ...) under node's own test
runner: the unit tests in tests/js/, run from here so `make test` runs them too.

Without node the test skips locally and fails under CI (``CI=true``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

JS_TESTS = Path(__file__).parent / "js"


def test_webui_js_units() -> None:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("node is not installed: the viewer's JavaScript tests (tests/js/) need "
                        "node 18 or newer (`apt-get install nodejs`)")
        pytest.skip("node not installed")
    # The files themselves, not the folder: node 21 and later take globs, not folders.
    files = sorted(str(p) for p in JS_TESTS.glob("*.test.mjs"))
    assert files, f"no *.test.mjs in {JS_TESTS}"
    out = subprocess.run([node, "--test", *files], capture_output=True, text=True, timeout=300,
                         cwd=JS_TESTS.parent.parent)
    assert out.returncode == 0, \
        f"node --test failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
