"""Claude Code's `http` hooks straight into the daemon (mpmd.ingest.http_endpoint,
docs/security.md):
a real daemon, real TCP clients on loopback (one of them another local user), a real
WebSocket viewer answering a held request, and the real Claude Code CLI posting its hooks."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httptools
import pytest

from tests.remote import PERMISSION, decision_of, write_policy
from tests.test_remote_approval import Viewer, remote_answers
from tests.utils import (
    DENY_RM_RF,
    Daemon,
    fixture_payloads,
    hook_events,
    journal_events,
    run_hook,
    status,
    wait_until,
)

HTTP = {"MPMD_HTTP_PORT": "0"}  # any free port: tests must not take the default one


@dataclass
class Response:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class Client:
    """A keep-alive HTTP/1.1 client on one loopback connection; answers parsed by httptools
    (so pipelined answers are split where the server put them, not where we guess)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.done: list[Response] = []
        self.current = Response()
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False

    # httptools' callbacks
    def on_message_begin(self) -> None:
        self.current = Response()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.current.headers[name.decode().lower()] = value.decode()

    def on_headers_complete(self) -> None:
        self.current.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.current.body += body

    def on_message_complete(self) -> None:
        self.done.append(self.current)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, n: int = 1) -> list[Response]:
        """The next ``n`` answers."""
        while len(self.done) < n:
            data = self.sock.recv(65536)
            if not data:
                self.closed = True
                break
            self.parser.feed_data(data)
        got, self.done = self.done[:n], self.done[n:]
        assert len(got) == n, f"the connection closed after {len(got)} of {n} answers"
        return got

    def ends(self) -> bool:
        """True once the daemon has closed the connection (waits for it)."""
        while True:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                return True
            if not data:
                return True
            self.parser.feed_data(data)

    def post(self, body: bytes, token: str, **kw: object) -> Response:
        self.send(request(body, token, self.port, **kw))  # type: ignore[arg-type]
        return self.read(1)[0]

    def close(self) -> None:
        self.sock.close()


def request(body: bytes, token: str | None, port: int, *, method: str = "POST",
            path: str = "/hook", host: str | None = None,
            content_type: str | None = "application/json", extra: str = "",
            length: int | None = None) -> bytes:
    head = [f"{method} {path} HTTP/1.1", f"Host: {host or f'127.0.0.1:{port}'}"]
    if token is not None:
        head.append(f"Authorization: Bearer {token}")
    if content_type is not None:
        head.append(f"Content-Type: {content_type}")
    head.append(f"Content-Length: {len(body) if length is None else length}")
    return ("\r\n".join(head) + "\r\n" + extra + "\r\n").encode() + body


def endpoint(home: Path) -> tuple[int, str]:
    """(port, token) as install-hooks would read them from the state folder."""
    port = int((home / "http.port").read_text())
    assert status(home)["http_port"] == port
    return port, (home / "http.token").read_text().strip()


def refused(home: Path) -> dict[str, int]:
    return status(home)["http_refused"]


def http_events(home: Path) -> list[dict]:
    return [e for e in journal_events(home) if e["source"] == "http"]


# ---- the endpoint -------------------------------------------------------------------------
def test_events_posted_over_keep_alive_are_journaled_once_in_order(home: Path) -> None:
    payloads = fixture_payloads()
    with Daemon(home, **HTTP):
        port, token = endpoint(home)
        token_file = home / "http.token"
        assert token_file.stat().st_mode & 0o777 == 0o600 and len(token) == 64
        info = status(home)
        assert info["http_url"] == f"http://127.0.0.1:{port}/hook"
        assert info["http_error"] is None
        client = Client(port)
        half = len(payloads) // 2
        for body in payloads[:half]:  # one at a time, as Claude Code posts
            answer = client.post(body, token)
            assert (answer.status, answer.body) == (200, b"")
            assert answer.headers["keep-alive"] == "timeout=5"  # idle_timeout_s
            assert "access-control-allow-origin" not in answer.headers
        # Pipelined: sent together, answered one by one, in order.
        client.send(b"".join(request(body, token, port) for body in payloads[half:]))
        assert [a.status for a in client.read(len(payloads) - half)] == \
            [200] * (len(payloads) - half)
        wait_until(lambda: len(journal_events(home)) == len(payloads), "all journaled")
        events = journal_events(home)
        assert status(home)["counters"]["http_connections_total"] == 1
        client.close()
    assert [e["source"] for e in events] == ["http"] * len(payloads)
    assert [e["event_type"] for e in events] == \
        [json.loads(p)["hook_event_name"] for p in payloads]
    assert [e["seq"] for e in events] == list(range(1, len(payloads) + 1))
    assert len({e["id"] for e in events}) == len(payloads)
    assert all(e["status"] == "ok" for e in events)


def test_bad_requests_are_answered_counted_and_never_stop_the_daemon(home: Path) -> None:
    limit = 64 * 1024
    env = {**HTTP, "MPMD_MAX_FRAME_BYTES": str(limit), "MPMD_IDLE_TIMEOUT_S": "0.5",
           "MPMD_MAX_CONNECTIONS": "6"}
    with Daemon(home, **env) as daemon:
        port, token = endpoint(home)
        idle = Client(port)  # says nothing at all: closed after the keep-alive time
        c = Client(port)

        def expect(data: bytes, code: int, reason: str) -> Response:
            c.send(data)
            (answer,) = c.read(1)
            assert answer.status == code, answer
            assert reason in answer.body.decode()
            assert not any(h.startswith("access-control-") for h in answer.headers)
            return answer

        # Not JSON: kept, as the socket path keeps it (the store marks it malformed).
        assert c.post(b"{not json", token).status == 200
        wait_until(lambda: journal_events(home), "the malformed event journaled")
        assert journal_events(home)[0]["status"] == "malformed"
        answer = expect(request(b"", token, port, method="GET"), 405, "only POST")
        assert answer.headers["allow"] == "POST"
        # A browser's preflight: refused, and no CORS header says yes.
        expect(request(b"", None, port, method="OPTIONS", content_type=None,
                       extra="Origin: https://evil.example\r\n"
                             "Access-Control-Request-Method: POST\r\n"), 405, "only POST")
        expect(request(b"{}", token, port, path="/"), 404, "/hook")
        expect(request(b"{}", token, port, content_type=None), 415, "application/json")
        expect(request(b"{}", token, port, content_type="text/plain"), 415, "application/json")
        # All on one connection so far: refusals keep it open.
        assert c.post(b'{"hook_event_name": "Stop"}', token).status == 200
        assert status(home)["counters"]["http_connections_total"] == 2

        # Over the limit: answered as soon as the headers say so, the body never read.
        big = Client(port)
        big.send(request(b"", token, port, length=limit + 1))
        (answer,) = big.read(1)
        assert answer.status == 413 and answer.headers["connection"] == "close"
        assert big.ends()
        chunked = Client(port)  # no length beforehand: cut off when it passes the limit
        chunked.send(f"POST /hook HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: "
                     f"Bearer {token}\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"x" * 16384
        for _ in range(limit // len(chunk) + 1):
            chunked.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        assert chunked.read(1)[0].status == 413

        slow = Client(port)  # a body that never finishes
        slow.send(request(b'{"hook_', token, port, length=100))
        (answer,) = slow.read(1)
        assert answer.status == 408 and slow.ends()
        garbage = Client(port)
        garbage.send(b"\x16\x03\x01 this is not HTTP\r\n\r\n")
        assert garbage.read(1)[0].status == 400 and garbage.ends()

        for gone in (big, chunked, slow, garbage):
            gone.close()
        assert idle.ends()  # idle past the keep-alive time (2 s here): closed, no answer
        wait_until(lambda: status(home)["http_connections_open"] == 0, "all closed")

        # max_connections (6): the one past it is answered at once, and closed.
        served = [Client(port) for _ in range(6)]
        for one in served:
            assert one.post(b'{"hook_event_name": "Stop"}', token).status == 200
        extra = Client(port)
        (answer,) = extra.read(1)
        assert answer.status == 503 and b"too many connections" in answer.body
        assert extra.ends()
        for one in served:
            one.close()
        assert daemon.proc is not None and daemon.proc.poll() is None
        counts = refused(home)
        wait_until(lambda: len(journal_events(home)) == 8, "the good events journaled")
        metrics = scrape_metrics(home)
    assert counts == {"method": 2, "path": 1, "content_type": 2, "too_large": 2,
                      "timeout": 1, "malformed": 1, "too_many_connections": 1}
    for reason, n in counts.items():
        assert f'mpmd_http_refused_total{{reason="{reason}"}} {float(n)}' in metrics


def scrape_metrics(home: Path) -> str:
    info = status(home)
    token = info["viewer_url"].split("#token=")[1]
    req = urllib.request.Request(f"http://127.0.0.1:{info['viewer_port']}/metrics",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as answer:
        return answer.read().decode()


def test_the_port_setting_off_taken_and_checked(home: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from mpmd import config

    for name in list(os.environ):
        if name.startswith("MPMD_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MPMD_HOME", str(home))
    for value, port in (("7720", 7720), ("0", 0), ("-1", -1), ("off", -1), ("OFF", -1)):
        monkeypatch.setenv("MPMD_HTTP_PORT", value)
        assert config.load().http_port == port
    for value in ("-2", "65536", "seven"):
        monkeypatch.setenv("MPMD_HTTP_PORT", value)
        with pytest.raises(config.ConfigError, match=r"http_port = .* \(from MPMD_HTTP_PORT\)"):
            config.load()
    monkeypatch.setenv("MPMD_HTTP_PORT", "7710")
    monkeypatch.setenv("MPMD_VIEWER_PORT", "7710")
    with pytest.raises(config.ConfigError, match="need a port each"):
        config.load()

    with Daemon(home, MPMD_HTTP_PORT="off"):
        info = status(home)
        assert info["http_url"] is None and info["http_error"] == "off (http_port = -1)"
        assert not (home / "http.port").exists()
    with socket.socket() as taken:  # someone else has the port: the daemon runs without it
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with Daemon(home, MPMD_HTTP_PORT=str(taken.getsockname()[1])):
            info = status(home)
            assert info["http_url"] is None and "cannot listen" in info["http_error"]
            assert info["running"] and not (home / "http.port").exists()


def test_the_owner_of_a_loopback_peer() -> None:
    from mpmd.ingest.peercred import PeerUnknown, TcpPeers, proc_net_uid

    peers = TcpPeers()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = socket.create_connection(listener.getsockname())
        ours, _ = listener.accept()
        addresses = (ours.getpeername(), ours.getsockname())
        assert peers.uid(socket.AF_INET, *addresses) == os.getuid()
        assert proc_net_uid(socket.AF_INET, *addresses) == os.getuid()
        # Our own end is not the peer: the lookup is by the pair, in the peer's direction.
        assert peers.uid(socket.AF_INET, addresses[1], addresses[0]) == os.getuid()
        client.close()  # the client closes first: its socket ends in TIME_WAIT, ownerless
        ours.close()

        def ownerless() -> bool:
            try:
                peers.uid(socket.AF_INET, *addresses)
            except PeerUnknown:
                return True
            return False

        wait_until(ownerless, "the peer's socket has no owner any more")
        with pytest.raises(PeerUnknown):
            proc_net_uid(socket.AF_INET, *addresses)
    peers.close()


# ---- who may post -------------------------------------------------------------------------
NOBODY_CLIENT = """
import http.client, sys
port, token = sys.stdin.read().split()
c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
c.request("POST", "/hook", '{"hook_event_name": "Stop"}',
          {"Content-Type": "application/json", "Authorization": "Bearer " + token})
r = c.getresponse()
print(r.status, r.read().decode().strip())
"""


def as_nobody() -> list[str] | None:
    """The command prefix that runs a process as `nobody`, or None when we cannot."""
    if os.geteuid() != 0:
        return None
    if shutil.which("setpriv"):
        return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    if shutil.which("runuser"):
        return ["runuser", "-u", "nobody", "--"]
    return None


def test_only_the_users_own_claude_code_may_post(home: Path) -> None:
    body = b'{"hook_event_name": "Stop"}'
    with Daemon(home, **HTTP):
        port, token = endpoint(home)
        c = Client(port)
        for data, code, reason in (
            (request(body, None, port), 401, "no credential"),
            (request(body, "0" * 64, port), 401, "wrong credential"),
            (request(body, token[:-1], port), 401, "wrong credential"),
            (request(body, token, port, extra="Origin: https://evil.example\r\n"), 403,
             "Origin"),
            (request(body, token, port, extra="Origin: null\r\n"), 403, "Origin"),
            (request(body, token, port, host=f"evil.example:{port}"), 421, "Host"),
            (request(body, token, port, host=f"127.0.0.1:{port + 1}"), 421, "Host"),
            (request(body, token, port, host="localhost"), 421, "Host"),
        ):
            c.send(data)
            (answer,) = c.read(1)
            assert (answer.status, reason in answer.body.decode()) == (code, True), answer
            if code == 401:
                assert answer.headers["www-authenticate"] == "Bearer"
        # The same request with the right credential and a loopback Host goes in.
        assert c.post(body, token, host=f"localhost:{port}").status == 200
        counts = refused(home)
        nobody = as_nobody()
        if nobody is not None:
            # Another local user, with the right token: refused for who it is.
            out = subprocess.run([*nobody, "/usr/bin/python3", "-I", "-c", NOBODY_CLIENT],
                                 input=f"{port} {token}", capture_output=True, text=True,
                                 timeout=60)
            assert out.returncode == 0, out.stderr
            assert out.stdout.startswith("403 the connection is not from a process of")
            assert refused(home)["foreign_uid"] == 1
        wait_until(lambda: len(journal_events(home)) == 1, "the one good event journaled")
    assert counts == {"token_missing": 1, "token_wrong": 2, "origin": 2, "host": 3}
    assert len(journal_events(home)) == 1  # nothing refused was kept
    if nobody is None:
        pytest.skip("not root (or no setpriv/runuser): the other-user case was not run")


# ---- decisions ------------------------------------------------------------------------------
DENY_AND_ALLOW = DENY_RM_RF + """
[[rule]]
name = "tests-may-run"
action = "allow"
events = ["PermissionRequest"]
tools = ["Bash"]
command = "npm test *"
"""


def test_the_policy_answers_as_the_command_hook_prints(home: Path) -> None:
    (home / "policy.toml").write_text(DENY_AND_ALLOW)
    pre = json.loads(fixture_payloads()[6])
    pre["tool_input"]["command"] = "rm -rf /home/dev/other"
    asked = json.loads(fixture_payloads()[7])
    asked["tool_input"]["command"] = "npm test -- auth"
    observed = json.loads(fixture_payloads()[6])  # npm test at PreToolUse: no rule matches
    with Daemon(home, **HTTP):
        port, token = endpoint(home)
        c = Client(port)
        for payload in (pre, asked, observed):
            body = json.dumps(payload).encode()
            answer = c.post(body, token)
            hook = run_hook(home, body, CLAUDE_PROJECT_DIR=payload["cwd"])
            assert hook.returncode == 0
            assert answer.status == 200
            assert answer.body == hook.stdout  # byte for byte what the command hook prints
            if answer.body:
                assert answer.headers["content-type"] == "application/json"
        wait_until(lambda: len(journal_events(home)) == 6, "both transports journaled")
    events = journal_events(home)
    by_source = {s: [e for e in events if e["source"] == s] for s in ("http", "hook")}
    assert [e.get("decision") for e in by_source["http"]] == \
        [e.get("decision") for e in by_source["hook"]]
    deny, allow, none = by_source["http"]
    assert deny["decision"]["action"] == "deny"
    assert deny["decision"]["rule"] == "no-rm-rf-outside-project"
    assert allow["decision"]["action"] == "allow" and none.get("decision") is None


def test_an_edited_policy_answers_the_next_post(home: Path) -> None:
    """Edited without `mpmd policy check`: the endpoint recompiles it when it finds the
    compiled form older than policy.toml, as the command hook does."""
    (home / "policy.toml").write_text('[[rule]]\naction = "deny"\ntools = "Read"\n'
                                      'reason = "one"')
    [read] = [p for p in fixture_payloads() if b'"Read"' in p and b'"PreToolUse"' in p]
    with Daemon(home, **HTTP):
        port, token = endpoint(home)
        c = Client(port)
        first = json.loads(c.post(read, token).body)["hookSpecificOutput"]
        (home / "policy.toml").write_text('[[rule]]\naction = "allow"\ntools = "Read"\n'
                                          'reason = "two, longer"')
        second = json.loads(c.post(read, token).body)["hookSpecificOutput"]
    assert (first["permissionDecision"], first["permissionDecisionReason"]) == ("deny", "one")
    assert (second["permissionDecision"], second["permissionDecisionReason"]) == (
        "allow", "two, longer")


def test_a_remote_rule_holds_the_request_until_a_viewer_answers(home: Path) -> None:
    write_policy(home)  # PermissionRequest for Bash: asked in the viewer
    body = json.dumps(PERMISSION).encode()
    with Daemon(home, **HTTP):
        port, token = endpoint(home)
        # No viewer open: no decision at once (Claude Code asks in the terminal).
        c = Client(port)
        assert (c.post(body, token).status, c.done) == (200, [])

        async def main() -> None:
            viewer = await Viewer.open(home)
            for behavior in ("allow", "deny"):
                held = asyncio.ensure_future(asyncio.to_thread(c.post, body, token))
                (waiting,) = await viewer.waiting(1)
                assert waiting["tool_name"] == "Bash" and "rm -rf" in waiting["detail"]
                assert not held.done()  # held open for the viewer
                await viewer.answer(waiting["seq"], behavior)
                answer = await held
                word = "approved" if behavior == "allow" else "denied"
                assert answer.status == 200
                assert json.loads(answer.body) == decision_of(behavior,
                                                              f"{word} from the mpmd viewer")
                await viewer.waiting(0)
            # The same connection goes on after a held request.
            assert c.post(b'{"hook_event_name": "Stop"}', token).status == 200
            # A client that gives up (Claude Code's own timeout) withdraws its request.
            gone = Client(port)
            gone.send(request(body, token, port))
            await viewer.waiting(1)
            gone.close()
            await viewer.waiting(0)
            await viewer.ws.close()

        asyncio.run(main())
        wait_until(lambda: len(remote_answers(home)) == 3, "the outcomes journaled")
        assert status(home)["counters"]["remote_withdrawn"] == 1

        # No answer within the rule's time limit: no decision (an empty 200).
        write_policy(home, timeout_s=0.5)

        async def unanswered() -> None:
            viewer = await Viewer.open(home)
            answer = await asyncio.to_thread(c.post, body, token)
            assert (answer.status, answer.body) == (200, b"")
            await viewer.ws.close()

        asyncio.run(unanswered())
        wait_until(lambda: len(remote_answers(home)) == 4, "the time-out journaled")
    answers = remote_answers(home)
    assert [a["payload"]["answered_by"] for a in answers] == \
        ["no-viewer", "viewer", "viewer", "timeout"]
    asked = [e for e in http_events(home) if e["event_type"] == "PermissionRequest"]
    assert len(asked) == 5 and all(e["decision"]["action"] == "remote" for e in asked)
    assert [a["payload"]["answer_to"] for a in answers] == \
        [e["seq"] for e in asked[:3]] + [asked[4]["seq"]]


def test_a_full_ring_spools_the_posted_event_and_still_answers_kept(home: Path) -> None:
    from tests.test_disk_full import (
        BIG,
        PREFILL,
        RING,
        SMALL,
        FileSizeLimit,
        daemon_status,
        prompt,
    )

    def counters() -> dict[str, int]:
        return daemon_status(home)["counters"]

    with Daemon(home, **SMALL, **HTTP) as daemon:
        port, token = endpoint(home)
        c = Client(port)
        for n in range(PREFILL):
            assert c.post(prompt(n), token).status == 200
        wait_until(lambda: daemon_status(home)["journal_last_seq"] == PREFILL,
                   "the first events journaled")
        disk = FileSizeLimit(home)
        disk.fill(daemon)  # journal writes fail: the ring fills, then the store says BUSY
        try:
            posted = PREFILL
            while not counters().get("http_spooled"):
                assert posted < PREFILL + 4 * RING // BIG, "the ring never filled"
                answer = c.post(prompt(posted), token)
                assert (answer.status, answer.body) == (200, b"")  # kept all the same
                posted += 1
            assert len(list((home / "spool").glob("*.frame"))) == 1  # the daemon spooled it
        finally:
            disk.free(daemon)
        wait_until(lambda: daemon_status(home)["journal_last_seq"] == posted
                   and not list((home / "spool").glob("*.frame")), "everything journaled")
    events = journal_events(home)
    markers = [e["payload"]["prompt"].split()[0] for e in events]
    assert sorted(markers) == sorted(f"marker-{n}" for n in range(posted))  # each once
    assert [e["source"] for e in events].count("spool") == 1


# ---- the real client ----------------------------------------------------------------------
def test_claude_code_posts_every_hook_it_starts_and_each_is_journaled_once() -> None:
    from tests.claude.api import Script, ScriptedAPI, call, calls, say, tool
    from tests.claude.client import Sandbox

    sb = Sandbox()
    try:
        sb.mpmd_home.mkdir(parents=True, exist_ok=True)
        (sb.mpmd_home / "policy.toml").write_text(DENY_AND_ALLOW)
        (sb.project / "notes.txt").write_text("hello\n")
        outside = sb.base / "outside"
        outside.mkdir()
        script = Script(turns=[
            call("Bash", command="echo one", description="Say one"),
            calls(tool("Bash", command="ls", description="List"),
                  tool("Read", file_path=str(sb.project / "notes.txt"))),
            call("Bash", command=f"rm -rf {outside}", description="Clean up"),
            say("Done."),
        ])
        with Daemon(sb.mpmd_home, HOME=str(sb.home), **HTTP), ScriptedAPI(script) as api:
            port, token = endpoint(sb.mpmd_home)
            entry = [{"hooks": [{
                "type": "http", "url": f"http://127.0.0.1:{port}/hook", "timeout": 30,
                "headers": {"Authorization": f"Bearer {token}"}}]}]
            events = ("PreToolUse", "PostToolUse", "PostToolBatch", "Stop", "UserPromptSubmit")
            sb.write_settings(lambda data: data.update(hooks={e: entry for e in events}))
            out = sb.headless(api.url, "Tidy up.", allowed_tools=["Bash", "Read"])
            assert out.returncode == 0, out.stderr
            started = Counter((h["hook_event"], h["hook_name"].partition(":")[2] or None)
                              for h in out.hooks_started)

            def journaled() -> Counter[tuple[str, str | None]]:
                return Counter((e["event_type"], e.get("tool_name")) for e in
                               http_events(sb.mpmd_home) if e["session_id"] == out.session_id)

            wait_until(lambda: journaled() == started, "every started hook journaled once")
            assert not any(r.get("outcome") == "error" for r in out.hook_responses)
            assert status(sb.mpmd_home)["http_refused"] == {}  # nothing of Claude Code's
        assert started[("PreToolUse", "Bash")] == 3 and started[("PostToolBatch", None)] >= 2
        assert outside.exists()  # the policy's deny, read from the http answer, held
        denied = [r for r in out.tool_results() if r.get("is_error")]
        assert len(denied) == 1
        assert "rm -rf of a path outside the project is not allowed" in str(denied[0])
        assert all(e["source"] == "http" for e in hook_events(sb.mpmd_home))
    finally:
        sb.cleanup()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
