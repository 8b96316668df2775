"""`mpmd install-hooks --transport ...` with the real Claude Code CLI: a session's hooks reach
the daemon over http (and, asked for, as command hooks), each exactly once.

What Claude Code 2.1.328 does here, as these tests found it: http hooks are reported like
command hooks (``hook_started``, then ``hook_response`` with outcome ``success`` and the
HTTP status, 200, as its ``exit_code``); SessionStart runs only its command hook, every
other event posts; SessionEnd posts after the stream has ended. Two http entries with the
same url under one event are posted once (as identical commands run once).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from mpmd.ops.hooks_settings import COMMAND_ONLY_EVENTS, TOOL_EVENTS
from tests.claude.api import Script, ScriptedAPI, calls, say, tool
from tests.claude.client import Headless, Sandbox
from tests.utils import Daemon, hook_events, journal_events, status, wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def install_hooks(sb: Sandbox, transport: str, http_port: str) -> str:
    """`mpmd install-hooks --transport ...` as the user runs it, with the daemon's
    configuration (its http_port) and the Claude Code under test; what it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPMD_")}
    env.update(HOME=str(sb.home), MPMD_HOME=str(sb.mpmd_home), MPMD_HTTP_PORT=http_port,
               MPMD_CLAUDE=str(sb.claude))
    out = subprocess.run([sys.executable, "-m", "mpmd", "install-hooks", "--transport",
                          transport], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def hook_key(record: dict[str, Any]) -> tuple[str, str | None]:
    event = record["hook_event"]
    _, _, matched = record["hook_name"].partition(":")
    return event, (matched if event in TOOL_EVENTS else None)


def session(sb: Sandbox) -> Headless:
    """Two tool calls at once (Bash and Read), then an answer."""
    (sb.project / "notes.txt").write_text("hello\n")
    script = Script(turns=[
        calls(tool("Bash", command="echo hi", description="Say hi"),
              tool("Read", file_path=str(sb.project / "notes.txt"))),
        say("Done."),
    ])
    with ScriptedAPI(script) as api:
        out = sb.headless(api.url, "Say hi and read the notes.", allowed_tools=["Bash", "Read"])
    assert out.returncode == 0, out.stderr
    return out


def journaled_once(sb: Sandbox, out: Headless, over: str) -> list[dict[str, Any]]:
    """Every hook Claude Code reported starting is journaled exactly once, and SessionEnd
    (which it does not report); SessionStart by its command hook, the rest ``over``."""
    wait_until(lambda: any(e["event_type"] == "SessionEnd" for e in journal_events(sb.mpmd_home)),
               "SessionEnd was journaled")
    events = hook_events(sb.mpmd_home)
    assert {e["session_id"] for e in events} == {out.session_id}
    want = Counter(hook_key(h) for h in out.hooks_started) + Counter({("SessionEnd", None): 1})
    assert Counter((e["event_type"], e.get("tool_name")) for e in events) == want
    assert {"PreToolUse", "PostToolUse", "PostToolBatch", "Stop"} <= {e for e, _ in want}
    for e in events:
        assert e["status"] == "ok"
        assert e["source"] == ("hook" if e["event_type"] in COMMAND_ONLY_EVENTS else over), e
    responses = out.hook_responses
    assert len(responses) == len(out.hooks_started)
    assert all((r["outcome"], r["stdout"]) == ("success", "") for r in responses), responses
    return events


@pytest.mark.parametrize("transport", ["http", "command"])
def test_a_session_over_each_transport_is_journaled_once(transport: str) -> None:
    sb = Sandbox()
    try:
        sb.mpmd_home.mkdir(mode=0o700)
        # tests.utils.Daemon takes any free http port; install-hooks reads the one it got.
        with Daemon(sb.mpmd_home, HOME=str(sb.home)):
            port = status(sb.mpmd_home)["http_port"]
            printed = install_hooks(sb, transport, "0")
            assert printed.startswith(f"transport: {transport}, as asked (--transport "
                                      f"{transport})\n")
            settings = sb.settings_path.read_text()
            assert (f"http://127.0.0.1:{port}/hook" in settings) == (transport == "http")
            out = session(sb)
            journaled_once(sb, out, "http" if transport == "http" else "hook")
            info = status(sb.mpmd_home)
            assert info["http_refused"] == {}
            if transport == "http":
                assert {r["exit_code"] for r in out.hook_responses
                        if r["hook_event"] not in COMMAND_ONLY_EVENTS} == {200}
    finally:
        sb.cleanup()


def test_auto_chooses_http_for_this_claude_code() -> None:
    sb = Sandbox()
    try:
        sb.mpmd_home.mkdir(mode=0o700)
        port = str(free_port())
        with Daemon(sb.mpmd_home, HOME=str(sb.home), MPMD_HTTP_PORT=port):
            printed = install_hooks(sb, "auto", port)
            version = subprocess.run([str(sb.claude), "--version"], capture_output=True,
                                     text=True, timeout=60).stdout.split()[0]
            assert printed.startswith(
                f"transport: http (auto), because Claude Code {version} ({sb.claude}) takes "
                f"http hooks (2.1.63 and later), and mpmd's endpoint answers on "
                f"http://127.0.0.1:{port}/hook\n"), printed
            journaled_once(sb, session(sb), "http")
            assert status(sb.mpmd_home)["http_refused"] == {}
    finally:
        sb.cleanup()


def test_two_entries_with_the_same_url_post_once() -> None:
    """What doctor's duplicate check relies on: http entries of ours with the same url under
    one event (another timeout, too) are posted once, so doctor says WARN, not FAIL."""
    sb = Sandbox()
    try:
        sb.mpmd_home.mkdir(mode=0o700)
        with Daemon(sb.mpmd_home, HOME=str(sb.home)):
            install_hooks(sb, "http", "0")

            def doubled(data: dict[str, Any]) -> None:
                stop = data["hooks"]["Stop"]
                stop.append({"hooks": [{**stop[0]["hooks"][0], "timeout": 11}]})

            sb.write_settings(doubled)
            sb.settings_path.chmod(0o600)
            out = session(sb)
            events = journaled_once(sb, out, "http")
            assert [e["event_type"] for e in events].count("Stop") == 1
    finally:
        sb.cleanup()
