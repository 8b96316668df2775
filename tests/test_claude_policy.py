"""Conformance: mpmd's policy and remote approvals with the real Claude Code CLI.

Each test runs end to end: `mpmd install-hooks` in a Sandbox, a real daemon, the pinned
Claude Code CLI against the scripted Messages API, and Claude Code's own hook processes;
each test once with command hooks and once with http hooks into the daemon's endpoint,
which answers with the same decisions and holds a `remote` request the same way.

What the real client (2.1.328) does, which these tests hold it to:

- A PreToolUse `deny` stops the call even when the settings allow the tool; the tool_result
  Claude Code sends back to the model is `PreToolUse:Bash hook error: <mpmd's reason>`
  (is_error), and no PostToolUse follows.
- A Bash call the settings do not allow fires PreToolUse and then PermissionRequest, in
  headless (`claude -p`) and in interactive sessions alike. The approval rides on
  PermissionRequest: its hook's `decision.behavior` runs the call (allow) or not (deny, the
  message as the tool_result). In an interactive session Claude Code shows its own "Do you
  want to proceed?" prompt while the hook runs; the hook's answer takes the prompt away
  ("Allowed by PermissionRequest hook" / "Denied by PermissionRequest hook").
- (Not tested here, observed:) a PreToolUse `ask` makes an interactive session prompt and
  fire PermissionRequest, but a headless one refuses the call at once, with the ask's reason
  as the tool_result and no PermissionRequest. A `remote` rule without `events` is matched
  at PreToolUse first, so the viewer is asked before Claude Code knows whether it would ask.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.claude.api import Script, ScriptedAPI, call, say
from tests.claude.client import Headless, Sandbox, Terminal
from tests.test_remote_approval import Viewer
from tests.utils import DENY_RM_RF, journal_events, wait_until

HAVE_BROWSER = (importlib.util.find_spec("playwright") is not None
                and Path("/usr/bin/chromium").exists())


# Sent to the viewer when Claude Code would ask (PermissionRequest); the viewer answers
# well inside the hook's own time limit.
TOUCH_FROM_THE_VIEWER = """
[[rule]]
name = "touch-from-the-viewer"
action = "remote"
events = ["PermissionRequest"]
tools = ["Bash"]
command = "touch *"
timeout_s = 30
"""


@pytest.fixture(params=["command", "http"])
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """A sandbox whose hooks its daemon installs, over each transport in turn."""
    sb = Sandbox(request.param)
    sb.mpmd_home.mkdir(mode=0o700)  # the policy goes in before the daemon starts
    try:
        yield sb
    finally:
        sb.cleanup()


def use_policy(sb: Sandbox, text: str) -> None:
    (sb.mpmd_home / "policy.toml").write_text(text)
    checked = sb.mpmd("policy", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def events_of(sb: Sandbox, event_type: str) -> list[dict]:
    return [e for e in journal_events(sb.mpmd_home) if e["event_type"] == event_type]


def wait_for_session_end(sb: Sandbox) -> list[dict]:
    """The journal once the session's SessionEnd is in (it fires after the stream ends)."""
    wait_until(lambda: events_of(sb, "SessionEnd"), "SessionEnd is journaled")
    return journal_events(sb.mpmd_home)


def assert_every_hook_journaled_once(out: Headless, journal: list[dict]) -> None:
    """Each hook Claude Code reports starting is one journal event, and nothing else is
    (SessionEnd has no hook_started record: it fires after the stream ends)."""
    started = Counter(h["hook_event"] for h in out.hooks_started)
    journaled = Counter(e["event_type"] for e in journal
                        if e["source"] in ("hook", "http") and e["event_type"] != "SessionEnd")
    assert started == journaled


def hook_output(out: Headless, event: str) -> dict | None:
    """What the one hook of ``event`` printed, from Claude Code's own record of it."""
    (response,) = [h for h in out.hook_responses if h["hook_event"] == event]
    # A command hook's exit code, or an http hook's status.
    assert response["exit_code"] in (0, 200) and response["outcome"] == "success", response
    return json.loads(response["stdout"]) if response["stdout"].strip() else None


def test_a_policy_deny_stops_rm_rf_outside_the_project(sandbox: Sandbox) -> None:
    """The settings allow Bash; the policy's deny still stops `rm -rf` of a folder outside
    the project (its files survive), while the same command inside the project runs."""
    outside = sandbox.base / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("precious\n")
    (outside / "sub").mkdir()
    (outside / "sub" / "also.txt").write_text("also precious\n")
    inside = sandbox.project / "build"
    inside.mkdir()
    (inside / "junk.o").write_text("junk\n")
    use_policy(sandbox, DENY_RM_RF)
    script = Script(turns=[
        call("Bash", command=f"rm -rf {outside}", description="Remove the old folder"),
        call("Bash", command=f"rm -rf {inside}", description="Remove the build folder"),
        say("Cleaned up."),
    ])
    with sandbox.daemon(), ScriptedAPI(script) as api:
        out = sandbox.headless(api.url, "clean up", allowed_tools=["Bash"])
        journal = wait_for_session_end(sandbox)
    assert out.returncode == 0, out.stderr

    assert (outside / "keep.txt").read_text() == "precious\n"
    assert (outside / "sub" / "also.txt").read_text() == "also precious\n"
    assert not inside.exists()  # the rule is about outside only: this one ran

    denied, ran = out.tool_results()
    assert denied["is_error"] is True
    assert denied["content"] == (
        "PreToolUse:Bash hook error: rm -rf of a path outside the project is not allowed")
    assert not ran.get("is_error")

    pre = [e for e in journal if e["event_type"] == "PreToolUse"]
    assert [e["payload"]["tool_input"]["command"] for e in pre] == [
        f"rm -rf {outside}", f"rm -rf {inside}"]
    assert pre[0]["decision"] == {
        "action": "deny", "rule": "no-rm-rf-outside-project", "rule_index": 1,
        "reason": "rm -rf of a path outside the project is not allowed"}
    assert pre[0]["risk"] == "high"
    assert pre[1].get("decision") is None  # no rule matched
    # The denied call never ran: only the second call has a PostToolUse.
    post = [e for e in journal if e["event_type"] == "PostToolUse"]
    assert [e["tool_use_id"] for e in post] == [pre[1]["tool_use_id"]]
    assert not [e for e in journal if e["event_type"] == "PermissionRequest"]
    # Claude Code's own record of what mpm-hook printed for the denied call.
    first_pre = next(h for h in out.hook_responses if h["hook_event"] == "PreToolUse")
    assert json.loads(first_pre["stdout"]) == {"hookSpecificOutput": {
        "hookEventName": "PreToolUse", "permissionDecision": "deny",
        "permissionDecisionReason": "rm -rf of a path outside the project is not allowed"}}
    assert_every_hook_journaled_once(out, journal)


@pytest.mark.parametrize("behavior", ["allow", "deny"])
def test_remote_approval_answered_from_a_websocket_viewer(sandbox: Sandbox,
                                                          behavior: str) -> None:
    """Headless `claude -p`, Bash not allowed: Claude Code fires PermissionRequest, mpmd
    holds it for the viewer, a WebSocket client answers; the command runs (or not)."""
    made = sandbox.project / "approved.txt"
    command = f"touch {made}"
    use_policy(sandbox, TOUCH_FROM_THE_VIEWER)
    script = Script(turns=[call("Bash", command=command, description="Make the file"),
                           say("Finished.")])

    async def session(api: ScriptedAPI) -> tuple[Headless, dict]:
        viewer = await Viewer.open(sandbox.mpmd_home)
        try:
            running = asyncio.create_task(asyncio.to_thread(sandbox.headless, api.url, "go"))
            held = asyncio.create_task(viewer.waiting(1))
            await asyncio.wait({running, held}, return_when=asyncio.FIRST_COMPLETED)
            if not held.done():
                held.cancel()
                raise AssertionError(f"the session ended and no request reached the viewer: "
                                     f"{(await running).tool_results()}")
            (request,) = held.result()
            assert not made.exists()  # held: nothing runs before the answer
            await viewer.answer(request["seq"], behavior)
            await viewer.waiting(0)
            assert viewer.errors == []
            return await running, request
        finally:
            await viewer.ws.close()

    with sandbox.daemon(), ScriptedAPI(script) as api:
        out, request = asyncio.run(session(api))
        journal = wait_for_session_end(sandbox)
    assert out.returncode == 0, out.stderr

    assert request["tool_name"] == "Bash" and request["detail"] == command
    assert request["rule"] == "touch-from-the-viewer"
    assert request["session_id"] == out.session_id
    word = "approved" if behavior == "allow" else "denied"
    assert hook_output(out, "PreToolUse") is None  # the rule is for PermissionRequest only
    assert hook_output(out, "PermissionRequest") == {"hookSpecificOutput": {
        "hookEventName": "PermissionRequest",
        "decision": {"behavior": behavior, "message": f"{word} from the mpmd viewer"}}}
    (result,) = out.tool_results()
    if behavior == "allow":
        assert made.exists()
        assert not result.get("is_error")
    else:
        assert not made.exists()
        assert result["is_error"] is True
        assert result["content"] == "denied from the mpmd viewer"

    (asked,) = [e for e in journal if e["event_type"] == "PermissionRequest"]
    assert asked["decision"]["action"] == "remote"
    assert asked["decision"]["rule"] == "touch-from-the-viewer"
    assert asked["seq"] == request["seq"]
    (answer,) = [e for e in journal if e["event_type"] == "RemoteAnswer"]
    assert answer["source"] == "daemon" and answer["session_id"] == out.session_id
    assert answer["payload"]["answer_to"] == asked["seq"]
    assert answer["payload"]["behavior"] == behavior
    assert answer["payload"]["answered_by"] == "viewer"
    assert answer["seq"] > asked["seq"]
    post = [e for e in journal if e["event_type"] == "PostToolUse"]
    assert len(post) == (1 if behavior == "allow" else 0)
    if post:
        assert post[0]["seq"] > answer["seq"]  # it ran after the answer
    assert_every_hook_journaled_once(out, journal)


@pytest.mark.skipif(not HAVE_BROWSER, reason="Playwright or /usr/bin/chromium is missing")
@pytest.mark.parametrize("button", ["approve", "deny"])
def test_remote_approval_answered_from_the_page(sandbox: Sandbox, page, button: str) -> None:
    """An interactive session in the default permission mode: Claude Code shows its prompt
    and fires PermissionRequest; the request appears on the page in Chromium, on the
    session's row; a click answers it, and the prompt in the terminal goes away."""
    from tests.browser import expect, open_viewer

    made = sandbox.project / "approved.txt"
    command = f"touch {made}"
    use_policy(sandbox, TOUCH_FROM_THE_VIEWER)
    script = Script(turns=[call("Bash", command=command, description="Make the file"),
                           say("All finished here.")])
    with sandbox.daemon(), ScriptedAPI(script) as api:
        terminal = Terminal(sandbox, api.url, "--permission-mode", "default")
        try:
            open_viewer(page, sandbox.mpmd_home)
            terminal.submit("go")
            approval = page.locator('[data-testid="approval"]')
            expect(approval).to_have_count(1)
            expect(approval.locator(".what")).to_have_text(f"Bash {command}")
            # Claude Code asks in the terminal too, while the hook waits for the page.
            terminal.wait_for("Do you want to proceed?")
            assert not made.exists()
            row = page.locator('[data-testid="session-row"]', has=approval)
            session_id = row.get_attribute("data-session-id")
            approval.locator(f'[data-testid="{button}"]').click()
            expect(approval).to_have_count(0)
            if button == "approve":
                terminal.wait_for("Allowed by PermissionRequest hook")
            else:
                terminal.wait_for("Denied by PermissionRequest hook")
            terminal.wait_for("All finished here.")
            wait_until(lambda: events_of(sandbox, "Stop"), "the turn's Stop is journaled")
            assert "Do you want to proceed?" not in terminal.screen()
        finally:
            terminal.close()
        journal = journal_events(sandbox.mpmd_home)

    behavior = "allow" if button == "approve" else "deny"
    assert made.exists() == (behavior == "allow")
    (asked,) = [e for e in journal if e["event_type"] == "PermissionRequest"]
    assert asked["session_id"] == session_id
    assert asked["payload"]["permission_mode"] == "default"
    assert asked["decision"]["rule"] == "touch-from-the-viewer"
    (answer,) = [e for e in journal if e["event_type"] == "RemoteAnswer"]
    assert answer["payload"]["answer_to"] == asked["seq"]
    assert answer["payload"]["behavior"] == behavior
    assert answer["payload"]["answered_by"] == "viewer"
    post = [e for e in journal if e["event_type"] == "PostToolUse"]
    assert [e["payload"]["tool_input"]["command"] for e in post] == (
        [command] if behavior == "allow" else [])
