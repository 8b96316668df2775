"""Conformance: dialogs that need the person, as the real Claude Code CLI signals them, and the
"needs you" the viewer's sessions table shows for them.

`mpmd install-hooks`, a real daemon, the pinned Claude Code in a terminal (tmux) against the
scripted API, its real hook processes, and a WebSocket client of the viewer.

What Claude Code 2.1.328 does here, as these tests found it:

* A dialog sends its ``Notification`` only once it has been on screen, untouched, for 6 s
  (the CLI checks every 6 s that 6 s have passed since the dialog opened and since the last
  key pressed; so 6 to 12 s). The payload holds ``message`` and ``notification_type``; these
  dialogs send no ``title``. Answering a dialog fires no hook of its own: what follows it
  does (the tool call it let run, ``ElicitationResult``, the next prompt).
* Auto mode (the default permission mode) cannot run its safety check against a stand-in
  API: the first tool call that needs the check (``ls /``; ``echo`` or a write in the project
  need none) opens the "Auto mode can't check actions in this session" dialog, which sends
  ``agent_needs_input`` "Auto mode can't check actions in this session and needs your
  choice". Enter (stay in auto mode) opens a permission prompt for the call *without* a
  PermissionRequest hook (its ``permission_prompt`` Notification, "Claude needs your
  permission", comes 6-12 s later if it is left open); yes runs the call (PostToolUse). Esc,
  or shift+Tab (leave for accept edits), ends the turn with no hook at all.
* An MCP server's ``elicitation/create`` (form mode) fires ``Elicitation`` at once
  (mcp_server_name, message, mode, requested_schema; no elicitation_id in form mode), then
  ``elicitation_dialog`` "Claude Code needs your input" 6 s later; the answer fires
  ``ElicitationResult`` (action, content), the tool's PostToolUse, and an informational
  Notification ``elicitation_response`` ('Elicitation response for server "elicit":
  accept').
* ``idle_prompt`` "Claude is waiting for your input" fires once a turn has ended (after its
  Stop) and nothing was typed for ``messageIdleNotifThresholdMs`` (default 60000). Claude
  Code reads that from ``~/.claude.json``, not from ``settings.json``.
* A question (the ``AskUserQuestion`` tool) is a permission prompt to Claude Code: it fires
  PermissionRequest at once and ``permission_prompt`` "Claude needs your permission" 6 s
  later (not tested here).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.claude import mcp_elicit
from tests.claude.api import Script, ScriptedAPI, call, say
from tests.claude.client import Sandbox, Terminal
from tests.utils import hook_events, status, wait_until

AUTO_MODE_CHOICE = "Auto mode can't check actions in this session and needs your choice"
ELICITATION = "Claude Code needs your input"
IDLE = "Claude is waiting for your input"
# A dialog's Notification comes 6 to 12 s after it opened.
DIALOG_TIMEOUT = 40
# Claude Code ignores a key that confirms a dialog when it comes within moments of the dialog
# appearing or of the last key typed (a guard against keys meant for something else: 0.6 to
# 1 s in 2.1.328; nothing on screen shows when it ends), so the test pauses as a person does.
GUARD_S = 1.2


def confirm(term: Terminal) -> None:
    """Enter, past Claude Code's guard on keys pressed too soon."""
    time.sleep(GUARD_S)  # nothing to await: the guard is a time, not a state on screen
    term.keys("Enter")


class Viewer:
    """A WebSocket client of the viewer, reading in a thread: every session row it was sent,
    in order, so a test can look at the table as it stood right after a given event."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ws.send(json.dumps({"type": "subscribe"}))
        self.rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for raw in self.ws:
                message = json.loads(raw)
                if message["type"] == "sessions":
                    with self._lock:
                        self.rows += message["sessions"]
        except ConnectionClosed:
            pass

    def row_at(self, event: dict[str, Any]) -> dict[str, Any]:
        """The first row of the event's session the viewer received with ``event`` folded
        in: the table as it stood then."""
        sid, seq = event["session_id"], event["seq"]
        found: list[dict[str, Any]] = []

        def there() -> bool:
            with self._lock:
                found[:] = [r for r in self.rows
                            if r["session_id"] == sid and r["last_seq"] >= seq][:1]
            return bool(found)

        wait_until(there, f"the viewer has the row of {sid} with event {seq} "
                          f"({event['event_type']})")
        return found[0]

    def close(self) -> None:
        self.ws.close()
        self._thread.join(10)


@dataclass
class Setup:
    sb: Sandbox
    viewer: Viewer

    def events(self) -> list[dict[str, Any]]:
        return hook_events(self.sb.mpmd_home)

    def wait_for_type(self, kind: str, nth: int = 1, timeout: float = 30,
                      **fields: Any) -> dict[str, Any]:
        """The ``nth`` event of that type whose payload has those fields."""
        def matches(e: dict[str, Any]) -> bool:
            return e["event_type"] == kind and all(
                e["payload"].get(k) == v for k, v in fields.items())

        wait_until(lambda: sum(map(matches, self.events())) >= nth,
                   f"the journal holds {nth} {kind} {fields or ''}", timeout)
        return [e for e in self.events() if matches(e)][nth - 1]


@pytest.fixture(params=["command", "http"])
def setup(request: pytest.FixtureRequest) -> Iterator[Setup]:
    sb = Sandbox(request.param)
    try:
        with sb.daemon(), \
                connect(status(sb.mpmd_home)["ws_url"], compression=None, max_size=None) as ws:
            viewer = Viewer(ws)
            try:
                yield Setup(sb, viewer)
            finally:
                viewer.close()
    finally:
        sb.cleanup()


def waits(row: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """What the row says the session needs the person for: (kind, message, type)."""
    return [(w["kind"], w["message"], w["notification_type"]) for w in row["pending"]]


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_type"] for e in events]


def test_the_auto_mode_dialog_needs_you_until_the_call_it_held_runs(setup: Setup) -> None:
    sb = setup.sb
    script = Script(turns=[call("Bash", command="ls /", description="List the root folder"),
                           say("Listed.")])
    with ScriptedAPI(script) as api:
        term = Terminal(sb, api.url)
        try:
            term.submit("list the root folder")
            term.wait_for("Enter to stay in auto mode")
            note = setup.wait_for_type("Notification", timeout=DIALOG_TIMEOUT)
            assert note["payload"]["notification_type"] == "agent_needs_input"
            assert note["payload"]["message"] == AUTO_MODE_CHOICE
            assert ("input", AUTO_MODE_CHOICE, "agent_needs_input") in waits(
                setup.viewer.row_at(note))

            term.keys("Enter")  # stay in auto mode: this call then asks for approval
            term.wait_for("so this one needs your approval")
            term.keys("Down")
            term.wait_for("❯ Yes")
            confirm(term)
            ran = setup.wait_for_type("PostToolUse")
            assert ran["payload"]["tool_input"]["command"] == "ls /"
            assert setup.viewer.row_at(ran)["pending"] == []
            setup.wait_for_type("Stop")
        finally:
            term.close()
    # Neither the answer to the dialog nor the approval prompt it led to fired a hook.
    # (MessageDisplay is left out: Claude Code does not wait for that hook.)
    seen = [k for k in kinds(setup.events()) if k != "MessageDisplay"]
    assert seen[seen.index("PreToolUse"):seen.index("PostToolUse")] == [
        "PreToolUse", "Notification"]


def test_an_mcp_elicitation_needs_you_until_it_is_answered(setup: Setup) -> None:
    sb = setup.sb
    config = sb.base / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"elicit": {
        "command": sys.executable, "args": [str(Path(mcp_elicit.__file__).resolve())]}}}))
    script = Script(turns=[call("mcp__elicit__ask"), say("Named.")])
    with ScriptedAPI(script) as api:
        term = Terminal(sb, api.url, "--mcp-config", str(config),
                        "--allowedTools", "mcp__elicit__ask")
        try:
            term.submit("name the release")
            term.wait_for("Release name")
            asked = setup.wait_for_type("Elicitation")
            assert {k: asked["payload"].get(k) for k in
                    ("mcp_server_name", "message", "mode", "requested_schema")} == {
                "mcp_server_name": "elicit", "message": mcp_elicit.QUESTION, "mode": "form",
                "requested_schema": mcp_elicit.SCHEMA}
            # Needs you at once, with the server's question, from the Elicitation event.
            assert waits(setup.viewer.row_at(asked)) == [
                ("input", mcp_elicit.QUESTION, "elicitation_dialog")]
            note = setup.wait_for_type("Notification", timeout=DIALOG_TIMEOUT,
                                       notification_type="elicitation_dialog")
            assert note["payload"]["message"] == ELICITATION
            # Claude Code's notification, 6 s later, joins that wait.
            assert waits(setup.viewer.row_at(note)) == [
                ("input", mcp_elicit.QUESTION, "elicitation_dialog")]

            term.type("Aurora")
            term.wait_for("Release name: Aurora")
            confirm(term)  # from the field to the buttons
            term.wait_for("❯ Accept")
            confirm(term)
            answered = setup.wait_for_type("ElicitationResult")
            assert (answered["payload"]["action"], answered["payload"]["content"]) == (
                "accept", {"name": "Aurora"})
            assert setup.viewer.row_at(answered)["pending"] == []
            # Claude Code says so in a Notification too: information, nobody is needed.
            told = setup.wait_for_type("Notification", notification_type="elicitation_response")
            assert "accept" in told["payload"]["message"]
            assert setup.viewer.row_at(told)["pending"] == []
            ran = setup.wait_for_type("PostToolUse")
            assert "Aurora" in json.dumps(ran["payload"]["tool_response"])
            setup.wait_for_type("Stop")
        finally:
            term.close()


def test_the_idle_prompt_needs_you_until_the_next_prompt(setup: Setup) -> None:
    sb = setup.sb
    config = json.loads((sb.home / ".claude.json").read_text())
    config["messageIdleNotifThresholdMs"] = 1000  # read from here; settings.json has no say
    (sb.home / ".claude.json").write_text(json.dumps(config))
    with ScriptedAPI(Script(turns=[say("Hello there."), say("Hello again.")])) as api:
        term = Terminal(sb, api.url)
        try:
            term.submit("hi")
            stop = setup.wait_for_type("Stop")
            note = setup.wait_for_type("Notification", timeout=DIALOG_TIMEOUT)
            assert (note["payload"]["notification_type"], note["payload"]["message"]) == (
                "idle_prompt", IDLE)
            assert note["seq"] > stop["seq"]  # the idle wait starts once the turn is over
            assert ("input", IDLE, "idle_prompt") in waits(setup.viewer.row_at(note))

            term.type("hi again")
            term.keys("Enter")
            again = setup.wait_for_type("UserPromptSubmit", nth=2)
            assert setup.viewer.row_at(again)["pending"] == []
            setup.wait_for_type("Stop", nth=2)
        finally:
            term.close()
