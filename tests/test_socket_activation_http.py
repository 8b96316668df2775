"""Nothing lost over http when the daemon dies in the middle of a real Claude Code session:
the service manager holds the endpoint's port (real `systemd-socket-activate`, as
mpmd-http.socket holds it, with a shell that starts the daemon again as systemd's
Restart=on-failure does), so the hooks that come while the daemon is dead wait in the
kernel's queue and are answered by the next daemon.

The session kills the daemon itself (a Bash call `kill -9` of its pid, twice): every hook
Claude Code reports as delivered (its `hook_response` with outcome "success") is journaled,
and nothing is journaled twice.

What a kill -9 can still cost: Claude Code keeps its connection to the daemon open between
hooks (keep-alive). When the daemon dies the kernel closes it, and a hook Claude Code sends
before it has noticed goes down the dead connection: "read ECONNRESET", reported as a hook
error (not delivered, not kept; 2 runs in 6 here, for the hook right after the kill). A hook
sent once Claude Code has seen the close opens a new connection, which waits in the queue.
The first kill below gives Claude Code that moment (the session is idle for half a second
after it, as it is between most hooks); the second does not.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from tests.claude.api import Script, ScriptedAPI, call, calls, say, tool
from tests.claude.client import Sandbox
from tests.test_claude_http_failures import entry
from tests.test_service import TOKEN, Activation, free_port, needs_socket_activate
from tests.utils import journal_events, wait_until

EVENTS = ("UserPromptSubmit", "PreToolUse", "PostToolUse", "PostToolBatch", "Stop",
          "Notification", "MessageDisplay", "SessionEnd")


def key(event: dict[str, Any]) -> tuple[str, str | None]:
    return str(event["event_type"]), event.get("tool_name")


@needs_socket_activate
def test_kill_9_in_the_middle_of_a_session_loses_nothing_delivered() -> None:
    sb = Sandbox()
    try:
        home = sb.mpmd_home
        home.mkdir(mode=0o700)
        (home / "http.token").write_text(TOKEN + "\n")
        (home / "http.token").chmod(0o600)
        port = free_port()
        url = f"http://127.0.0.1:{port}/hook"

        def hooks(data: dict[str, Any]) -> None:
            data["hooks"] = {e: [{"hooks": [entry(url, e, TOKEN)]}] for e in EVENTS}

        sb.write_settings(hooks)
        kill = f"kill -9 $(cat {home}/mpmd.pid)"
        idle_kill = kill + "; sleep 0.5"  # the session idle a moment after it
        script = Script(turns=[
            call("Bash", command="echo one", description="One"),
            call("Bash", command=idle_kill, description="Kill mpmd"),
            calls(tool("Bash", command="echo two", description="Two"),
                  tool("Bash", command="echo three", description="Three")),
            call("Bash", command=kill + " # again", description="Kill mpmd again"),
            call("Bash", command="echo four", description="Four"),
            say("Done."),
        ])
        with Activation(sb.base, http_port=port, supervise=True, home=home) as act, \
                ScriptedAPI(script) as api:
            out = sb.headless(api.url, "Go.", allowed_tools=["Bash"])
            assert out.returncode == 0, out.stderr
            # The session went on through both kills: every tool call ran.
            assert [r.get("is_error") for r in out.tool_results()] == [False] * 6
            wait_until(lambda: any(e["event_type"] == "SessionEnd" for e in journal_events(
                home) if e.get("session_id") == out.session_id), "SessionEnd is journaled")
            ours = [e for e in journal_events(home) if e.get("session_id") == out.session_id]
            starts = act.log.read_text().count("http endpoint on the socket passed by")
        assert starts == 3  # the first hook started it, each kill -9 started it again
        delivered = Counter((r["hook_event"], r["hook_name"].partition(":")[2] or None)
                            for r in out.hook_responses if r["outcome"] == "success")
        journaled = Counter(key(e) for e in ours)
        missing = delivered - journaled
        assert not missing, f"delivered but not journaled: {missing}"
        # Exactly once: no payload twice (each tool call's events carry its tool_use_id).
        payloads = Counter(json.dumps(e["payload"], sort_keys=True) for e in ours)
        assert max(payloads.values()) == 1
        assert all(e["source"] == "http" for e in ours)
        # The hook right after the first kill waited in the queue for the new daemon, and
        # was delivered and kept.
        after_idle_kill = [e for e in ours if e["event_type"] == "PostToolUse"
                           and e["payload"]["tool_input"]["command"] == idle_kill]
        assert len(after_idle_kill) == 1
        # What failed is at most the one hook sent down the dead connection after the
        # second kill (see above): reported by Claude Code as an error.
        failed = [r for r in out.hook_responses if r["outcome"] != "success"]
        assert len(failed) <= 1, failed
        assert all("ECONNRESET" in r["stderr"] or "socket hang up" in r["stderr"]
                   for r in failed), failed
        assert sum(delivered.values()) + len(failed) == len(out.hook_responses) >= 20
    finally:
        sb.cleanup()
