"""Conformance: notifications for sessions of the real Claude Code CLI.

The pinned CLI against the scripted API, mpmd's hooks over each transport, a real daemon
whose notifier sends with apprise to an ntfy server on loopback (tests/receivers.py):

* a permission prompt left open in a terminal is exactly one "needs you" notification naming
  the command, though Claude Code signals it twice (PermissionRequest as it appears, its
  permission_prompt Notification 6 to 12 s later); answering it is one follow-up;
* a request held by a `remote` policy rule, with no viewer open, is a notification with
  Approve and Deny buttons (ntfy http actions); pressing one (its POST) answers Claude Code
  (the command runs, or Claude Code is told "denied with an mpmd link"); the same link
  again, or the other answer's, is refused.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.claude.api import Script, ScriptedAPI, call, say
from tests.claude.client import Sandbox, Terminal, require_claude
from tests.receivers import NtfyServer
from tests.utils import journal_events, wait_until

PROMPT = "Do you want to proceed?"
COMMAND = "touch made-by-bash.txt"
DIALOG_TIMEOUT = 40  # Claude Code's own Notification comes 6 to 12 s after the prompt

HOLD_TOUCH = """
[[rule]]
name = "touch-from-my-phone"
action = "remote"
events = ["PermissionRequest"]
tools = ["Bash"]
command = "touch *"
timeout_s = 60
"""


@pytest.fixture(params=["command", "http"])
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    require_claude()
    sb = Sandbox(request.param)
    sb.mpmd_home.mkdir(mode=0o700)  # config.toml goes in before the daemon starts
    try:
        yield sb
    finally:
        sb.cleanup()


@pytest.fixture
def ntfy() -> Iterator[NtfyServer]:
    with NtfyServer() as server:
        yield server


def notify_to(sb: Sandbox, ntfy: NtfyServer) -> None:
    path = sb.mpmd_home / "config.toml"
    path.write_text('[[notify]]\nname = "phone"\non = ["needs-you"]\n'
                    f'targets = ["{ntfy.url("claude")}"]\n')
    path.chmod(0o600)


def events_of(sb: Sandbox, kind: str, **fields: object) -> list[dict]:
    return [e for e in journal_events(sb.mpmd_home) if e["event_type"] == kind
            and all(e["payload"].get(k) == v for k, v in fields.items())]


def test_a_permission_prompt_is_one_notification_and_its_answer_one_follow_up(
        sandbox: Sandbox, ntfy: NtfyServer) -> None:
    sb = sandbox
    notify_to(sb, ntfy)
    script = Script(turns=[call("Bash", command=COMMAND, description="Make a file"),
                           say("Made it.")])
    with sb.daemon(), ScriptedAPI(script) as api:
        term = Terminal(sb, api.url, "--permission-mode", "default")
        try:
            term.submit("make the file")
            term.wait_for(PROMPT)
            (told,) = ntfy.wait_for(1)
            (request,) = events_of(sb, "PermissionRequest")
            assert told.title == f"{sb.project.name}: needs you"
            assert f"Bash: {COMMAND}" in told.message
            assert told.click is not None and told.click.endswith(
                f"#session={request['session_id']}")
            assert told.actions == []  # Claude Code asks in its terminal: nothing to press
            # Claude Code's own notification of the same prompt: still one notification.
            wait_until(lambda: events_of(sb, "Notification",
                                         notification_type="permission_prompt"),
                       "Claude Code's permission_prompt Notification", DIALOG_TIMEOUT)
            term.press_until("Enter", lambda screen: PROMPT not in screen)  # 1. Yes
            wait_until(lambda: (sb.project / "made-by-bash.txt").exists(), "the command")
            told, follow = ntfy.wait_for(2)
            assert follow.title == f"✓ {sb.project.name}: no longer needs you"
            assert "approved: the tool ran" in follow.message
            assert COMMAND in follow.message
        finally:
            term.close()
    assert len(ntfy.received) == 2


def post(url: str) -> int:
    """An ntfy http action as the phone app sends it: POST, no body."""
    request = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("answer", ["Approve", "Deny"])
def test_a_held_request_is_answered_from_the_notification(sandbox: Sandbox,
                                                          ntfy: NtfyServer,
                                                          answer: str) -> None:
    sb = sandbox
    notify_to(sb, ntfy)
    (sb.mpmd_home / "policy.toml").write_text(HOLD_TOUCH)
    checked = sb.mpmd("policy", "check")  # compiles it for the hooks
    assert checked.returncode == 0, checked.stdout + checked.stderr
    made = sb.project / "from-the-phone.txt"
    script = Script(turns=[call("Bash", command=f"touch {made}", description="Make it"),
                           say("Finished.")])
    with sb.daemon(), ScriptedAPI(script) as api:
        result: list = []
        session = threading.Thread(target=lambda: result.append(sb.headless(api.url, "go")))
        session.start()
        try:
            (told,) = ntfy.wait_for(1, timeout=60)
            assert f"touch {made}" in told.message
            assert [a["label"] for a in told.actions] == ["Approve", "Deny"]
            assert all(a["method"] == "POST" for a in told.actions)
            urls = {a["label"]: a["url"] for a in told.actions}
            assert not made.exists()  # held: nothing runs before the answer
            assert post(urls[answer]) == 200
        finally:
            session.join(120)
        (out,) = result
        assert out.returncode == 0, out.stderr
        for url in urls.values():  # the one used, and the other: the request has its answer
            assert post(url) == 410
        used = urls[answer]
        assert post(used[:-2] + ("AA" if not used.endswith("AA") else "BB")) == 403
        (reply,) = events_of(sb, "RemoteAnswer")
        behavior = "allow" if answer == "Approve" else "deny"
        assert reply["payload"]["behavior"] == behavior
        assert reply["payload"]["answered_by"] == "link"
        told, follow = ntfy.wait_for(2)
        verb = "approved" if answer == "Approve" else "denied"
        assert f"{verb} from a notification" in follow.message
    (result_block,) = out.tool_results()
    if answer == "Approve":
        assert made.exists() and not result_block.get("is_error")
    else:  # what Claude Code was told, and showed its model
        assert not made.exists() and result_block["is_error"] is True
        assert result_block["content"] == "denied with an mpmd link"
