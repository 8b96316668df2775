"""What the remote-approval tests share (tests/test_remote_approval.py and the page's test in
tests/test_viewer_browser.py): a policy with a `remote` rule, and real waiting hooks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.utils import HOOK_SCRIPT, env_for, fixture_payloads, mpmd_cli

PERMISSION = json.loads(fixture_payloads()[7])  # Bash `rm -rf node_modules`, asks permission
assert PERMISSION["hook_event_name"] == "PermissionRequest"


def write_policy(home: Path, timeout_s: float = 60) -> None:
    (home / "policy.toml").write_text(f"""
[[rule]]
name = "bash-from-the-viewer"
action = "remote"
events = ["PermissionRequest"]
tools = ["Bash"]
timeout_s = {timeout_s}
""")
    checked = mpmd_cli(home, "policy", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def start_hook(home: Path, payload: dict = PERMISSION) -> subprocess.Popen[bytes]:
    """A real hook process, as Claude Code starts it; it waits for the answer."""
    proc = subprocess.Popen([sys.executable, "-I", "-S", str(HOOK_SCRIPT)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env_for(home))
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(payload).encode())
    proc.stdin.close()
    proc.stdin = None  # closed: communicate() must not flush it
    return proc


def hook_output(proc: subprocess.Popen[bytes]) -> dict | None:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out) if out.strip() else None


def decision_of(behavior: str, message: str) -> dict:
    return {"hookSpecificOutput": {"hookEventName": "PermissionRequest",
                                   "decision": {"behavior": behavior, "message": message}}}


