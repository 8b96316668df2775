""""Needs you" for a permission prompt of the real Claude Code, in a terminal.

An interactive session in the default permission mode, a Bash call the settings do not allow:
the viewer's sessions table (over the WebSocket, as the page gets it) shows the session as
needing the person while the prompt is on screen, naming the tool and its command, from the
PermissionRequest that fires as the prompt appears (not from the permission_prompt
Notification, which comes seconds later and names no tool). It clears when the prompt is
answered yes (the tool runs), no or Esc (Claude Code fires no hook then: mpmd reads the
answer off the transcript and journals PermissionAnswered), or when the session ends.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.claude.api import Script, ScriptedAPI, call, say
from tests.claude.client import Sandbox, Terminal, require_claude
from tests.claude.viewer import SessionsFeed
from tests.utils import hook_events, journal_events, status, wait_until

PROMPT = "Do you want to proceed?"
COMMAND = "touch made-by-bash.txt"


@pytest.fixture(params=["command", "http"])
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    require_claude()
    sb = Sandbox(request.param)
    yield sb
    sb.cleanup()


def _events(sb: Sandbox, kind: str) -> list[dict]:
    return [e for e in journal_events(sb.mpmd_home) if e["event_type"] == kind]


@pytest.mark.parametrize("answer", ["yes", "no", "esc", "session end"])
def test_a_permission_prompt_needs_you_until_it_is_answered(sandbox: Sandbox,
                                                            answer: str) -> None:
    sb = sandbox
    script = Script(turns=[call("Bash", command=COMMAND, description="Make a file"),
                           say("Made it.")])
    with sb.daemon(), ScriptedAPI(script) as api, \
            SessionsFeed(status(sb.mpmd_home)["ws_url"]) as feed:
        term = Terminal(sb, api.url, "--permission-mode", "default")
        try:
            term.submit("make the file")
            term.wait_for(PROMPT)

            def waiting() -> list[dict]:
                row = feed.row()
                return row["pending"] if row else []

            wait_until(waiting, "the session to need the person")
            (wait,) = waiting()
            # The viewer reads the ring; the journal may take its batch a moment later.
            wait_until(lambda: _events(sb, "PermissionRequest"), "the journal's request")
            (pre,) = _events(sb, "PreToolUse")
            (request,) = _events(sb, "PermissionRequest")
            # Named at once, from the PermissionRequest: the tool, its command, its call.
            assert wait["kind"] == "permission"
            assert wait["tool_name"] == "Bash" and wait["detail"] == COMMAND
            assert wait["seq"] == request["seq"] and wait["tool_use_id"] == pre["tool_use_id"]
            assert PROMPT in term.screen()  # still on screen: it is the prompt we name

            gone = lambda screen: PROMPT not in screen  # noqa: E731
            if answer == "yes":
                term.press_until("Enter", gone)  # on 1. Yes
                wait_until(lambda: (sb.project / "made-by-bash.txt").exists(), "the command")
            elif answer == "no":
                # A digit picks its answer; early on, while the prompt still ignores
                # answers, it only moves the selection, and Enter confirms it.
                screen = term.press_until("4", lambda screen: "\u276f 4. No" in screen
                                          or gone(screen))
                if not gone(screen):
                    term.press_until("Enter", gone)
            elif answer == "esc":
                term.press_until("Escape", gone)
            else:  # the terminal closes with the prompt open
                pid = subprocess.run(["tmux", "-S", term.socket, "list-panes", "-t", term.name,
                                      "-F", "#{pane_pid}"], capture_output=True, text=True,
                                     check=True).stdout.strip()
                os.kill(int(pid), 1)  # SIGHUP, as a closed terminal window sends
            wait_until(lambda: not waiting(), "the wait to clear")
        finally:
            term.close()
        kinds = [e["event_type"] for e in hook_events(sb.mpmd_home)]
        if answer == "yes":
            assert "PostToolUse" in kinds
        elif answer in ("no", "esc"):
            (answered,) = _events(sb, "PermissionAnswered")
            assert answered["source"] == "daemon"
            assert answered["tool_use_id"] == pre["tool_use_id"]
            assert answered["tool_name"] == "Bash"
            assert answered["payload"]["answer_to"] == request["seq"]
            assert "doesn't want to proceed" in answered["payload"]["message"]
            assert not (sb.project / "made-by-bash.txt").exists()
            # Claude Code itself fired nothing for the answer.
            assert not {"PostToolUse", "PostToolUseFailure", "PermissionDenied"} & set(kinds)
        else:
            assert kinds[-1] == "SessionEnd"
            assert feed.row()["ended_at"] is not None
            assert not (sb.project / "made-by-bash.txt").exists()
