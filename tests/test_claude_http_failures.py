"""What the real Claude Code does when mpmd's http endpoint fails it, and the `timeout` and
`onFailure` mpmd's http entries get because of it: a PreToolUse or PermissionRequest must
never be denied because mpmd is down or slow.

The settings are written by hand here (http entries pointing at a loopback server this test
controls, which refuses, hangs, or answers 5xx or 4xx, or at a real daemon that was
stopped), with the values `mpmd install-hooks` is to write (ENTRY below). Observed with
2.1.328, headless and in a terminal:

* a refused connection, a 5xx, a 4xx: the hook is reported as an error (`outcome` "error",
  "connect ECONNREFUSED ...", "HTTP 500 from ...") and, with `onFailure` "continue" (the
  default), the tool goes ahead as if there were no hook; with "block", the tool call is
  denied ("blocking because onFailure is \"block\"") — so mpmd's entries say "continue";
* no answer within `timeout`: the hook is cancelled (`outcome` "cancelled") and the tool
  goes ahead ("continue"; "block" denies it). Claude Code waits for PreToolUse before it
  runs the tool or shows a permission prompt, so a hung endpoint stalls each tool call for
  the whole `timeout`; PermissionRequest does not hold the prompt: it shows at once, and
  the person's answer goes through while the hook still waits.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.claude.api import Script, ScriptedAPI, call, say
from tests.claude.client import Headless, Sandbox, Terminal, require_claude
from tests.utils import Daemon, recv_http_message

# What mpmd's http entries say (install-hooks writes them; docs/protocol.md, "When the
# endpoint fails"): PreToolUse and PermissionRequest wait as long as a policy `remote`
# rule may hold them (590 s at most, and the answer's way back), every other event 10 s;
# a failure never blocks.
HOLD_TIMEOUT_S = 600
OBSERVE_TIMEOUT_S = 10
ON_FAILURE = "continue"
EVENTS = ("UserPromptSubmit", "PreToolUse", "PermissionRequest", "PostToolUse",
          "PostToolBatch", "Stop")
PROMPT = "Do you want to proceed?"
COMMAND = "touch made-by-bash.txt"


def entry(url: str, event: str, token: str = "t" * 64,
          timeout: float | None = None) -> dict[str, Any]:
    hold = event in ("PreToolUse", "PermissionRequest")
    return {"type": "http", "url": url, "onFailure": ON_FAILURE,
            "timeout": timeout or (HOLD_TIMEOUT_S if hold else OBSERVE_TIMEOUT_S),
            "headers": {"Authorization": f"Bearer {token}"}}


def settings_for(sb: Sandbox, url: str, events: tuple[str, ...] = EVENTS,
                 timeout: float | None = None, on_failure: str = ON_FAILURE) -> None:
    def update(data: dict[str, Any]) -> None:
        hooks = {}
        for event in events:
            one = {**entry(url, event, timeout=timeout), "onFailure": on_failure}
            group: dict[str, Any] = {"hooks": [one]}
            if event in ("PreToolUse", "PermissionRequest", "PostToolUse"):
                group["matcher"] = "*"
            hooks[event] = [group]
        data["hooks"] = hooks
    sb.write_settings(update)


class Endpoint:
    """A loopback server standing in for a broken mpmd: ``refuse`` (nothing listens on
    the port), ``hang`` (reads the request, never answers), or an HTTP status to answer
    with (``500``, ``503``, ``401``)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests: list[str] = []
        self.release = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        if mode == "refuse":
            self.sock.close()  # the port is free again: a connection is refused
            return
        self.sock.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while (message := recv_http_message(conn, data)) is not None:
                _head, body, data = message
                try:  # a late or odd post must not kill the thread: it is recorded as is
                    self.requests.append(json.loads(body).get("hook_event_name"))
                except (ValueError, AttributeError):
                    self.requests.append(None)
                if self.mode == "hang":
                    self.release.wait()
                    return
                text = f"mpmd stand-in: {self.mode}\n".encode()
                conn.sendall(b"HTTP/1.1 %s Failing\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: %d\r\n\r\n" % (self.mode.encode(), len(text))
                             + text)

    def close(self) -> None:
        self.release.set()
        # shutdown first: closing a socket another thread is blocked in accept() on leaves
        # it listening (the blocked call holds it) and its port taken by a dead server.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    require_claude()
    sb = Sandbox()
    yield sb
    sb.cleanup()


def failing_endpoint(sb: Sandbox, mode: str) -> tuple[str, Endpoint | None]:
    """The URL to point the entries at, for ``mode``; "daemon stopped" is a real mpmd that
    ran (its port and token are what install-hooks read) and was stopped."""
    if mode == "daemon stopped":
        sb.mpmd_home.mkdir(mode=0o700, exist_ok=True)
        with Daemon(sb.mpmd_home, HOME=str(sb.home)) as daemon:
            port = int((sb.mpmd_home / "http.port").read_text())
            assert daemon.stop() == 0  # as `mpmd stop` does: it drains and exits
        return f"http://127.0.0.1:{port}/hook", None
    endpoint = Endpoint(mode)
    return endpoint.url, endpoint


def bash_session(sb: Sandbox, url: str, **kw: Any) -> Headless:
    script = Script(turns=[call("Bash", command=COMMAND, description="Make a file"),
                           say("Made it.")])
    with ScriptedAPI(script) as api:
        return sb.headless(api.url, "make the file", **kw)


def outcomes(out: Headless, event: str) -> list[str]:
    return [r["outcome"] for r in out.hook_responses if r["hook_event"] == event]


# ---- headless ------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["refuse", "daemon stopped", "500", "503", "401", "hang"])
def test_a_failing_endpoint_never_stops_a_tool(sandbox: Sandbox, mode: str) -> None:
    sb = sandbox
    url, endpoint = failing_endpoint(sb, mode)
    try:
        if mode == "hang":  # past `timeout`: a short one, or the test would wait 600 s
            settings_for(sb, url, ("PreToolUse", "PermissionRequest"), timeout=2)
        else:
            settings_for(sb, url)
        out = bash_session(sb, url, allowed_tools=["Bash"])
    finally:
        if endpoint is not None:
            endpoint.close()
    assert out.returncode == 0, out.stderr
    assert (sb.project / "made-by-bash.txt").exists()  # the tool ran
    assert [r.get("is_error") for r in out.tool_results()] == [False]
    assert outcomes(out, "PreToolUse") == ["cancelled" if mode == "hang" else "error"]
    if endpoint is not None and mode != "refuse":
        assert "PreToolUse" in endpoint.requests  # it was asked, and failed
    if mode not in ("hang", "refuse", "daemon stopped"):
        said = next(r for r in out.hook_responses if r["hook_event"] == "PreToolUse")
        assert f"HTTP {mode} from {url}" in said["stderr"]


def test_a_failing_permission_request_leaves_claude_codes_own_answer(
        sandbox: Sandbox) -> None:
    """Headless, a tool the settings do not allow: the PermissionRequest hook fails, and
    the call ends as it ends without any hook (Claude Code's own "needs approval")."""
    sb = sandbox
    endpoint = Endpoint("500")
    try:
        settings_for(sb, endpoint.url)
        out = bash_session(sb, endpoint.url)
    finally:
        endpoint.close()
    assert outcomes(out, "PermissionRequest") == ["error"]
    [result] = out.tool_results()
    assert result["is_error"] and "needs approval" in str(result["content"])
    assert "onFailure" not in str(result["content"])


def test_on_failure_block_would_deny_the_tool(sandbox: Sandbox) -> None:
    """Why the entries say "continue": with "block", mpmd being down denies every tool."""
    sb = sandbox
    endpoint = Endpoint("refuse")
    settings_for(sb, endpoint.url, ("PreToolUse",), on_failure="block")
    out = bash_session(sb, endpoint.url, allowed_tools=["Bash"])
    assert not (sb.project / "made-by-bash.txt").exists()
    [result] = out.tool_results()
    assert result["is_error"] and 'blocking because onFailure is "block"' in str(result)


# ---- in a terminal ---------------------------------------------------------------------------
def answer_yes_in_terminal(sb: Sandbox) -> Path:
    """An interactive session whose Bash call is not allowed: the prompt shows, "yes" is
    pressed; the file the tool makes."""
    script = Script(turns=[call("Bash", command=COMMAND, description="Make a file"),
                           say("Made it.")])
    made = sb.project / "made-by-bash.txt"
    with ScriptedAPI(script) as api:
        term = Terminal(sb, api.url, "--permission-mode", "default")
        try:
            term.submit("make the file")
            term.wait_for(PROMPT)
            # A dialog ignores keys for a moment after it opens.
            term.press_until("Enter", lambda screen: PROMPT not in screen)
            term.wait_for("Made it.")
        finally:
            term.close()
    return made


@pytest.mark.parametrize("mode", ["refuse", "500", "401", "hang"])
def test_the_permission_prompt_shows_and_is_answered_whatever_the_endpoint_does(
        sandbox: Sandbox, mode: str) -> None:
    """PermissionRequest with mpmd's 600 s timeout: refused, failing or hung, the prompt
    is there at once and the person's yes runs the tool (a hung hook does not hold it)."""
    sb = sandbox
    endpoint = Endpoint(mode)
    try:
        settings_for(sb, endpoint.url, ("PermissionRequest",))
        assert answer_yes_in_terminal(sb).exists()
        if mode != "refuse":
            assert endpoint.requests == ["PermissionRequest"]
    finally:
        endpoint.close()


def test_a_hung_pre_tool_use_holds_the_prompt_until_its_timeout(sandbox: Sandbox) -> None:
    """PreToolUse is waited for before the prompt: a hung endpoint holds each tool call
    for the entry's whole `timeout` (2 s here), then the call goes on as without it."""
    sb = sandbox
    endpoint = Endpoint("hang")
    try:
        settings_for(sb, endpoint.url, ("PreToolUse",), timeout=2)
        assert answer_yes_in_terminal(sb).exists()
        assert endpoint.requests == ["PreToolUse"]
    finally:
        endpoint.close()
