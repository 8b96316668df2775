"""Who may reach the viewer: a real daemon, and plain HTTP and WebSocket clients that break
one rule each (docs/viewer.md, "Who gets in")."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from tests.utils import Daemon, recv_http_message, short_tempdir, status

WS_HEADERS = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
}


class Viewer:
    def __init__(self, home: Path) -> None:
        self.home = home
        info = status(home)
        self.port = info["viewer_port"]
        self.token = (home / "viewer-token").read_text().strip()
        self.host = f"127.0.0.1:{self.port}"
        self.origin = f"http://127.0.0.1:{self.port}"

    def request(self, path: str, host: str | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """One raw HTTP/1.1 GET, exactly as written (no client fixes the path or Host);
        ``host=""`` sends no Host header at all."""
        host = self.host if host is None else host
        lines = [f"GET {path} HTTP/1.1"] + ([f"Host: {host}"] if host else [])
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            message = recv_http_message(sock)
        assert message is not None, f"the viewer closed without answering {path}"
        head, body, _ = message
        return int(head.split(b" ")[1]), head + b"\r\n\r\n" + body

    def status_code(self, path: str, **kw: object) -> int:
        return self.request(path, **kw)[0]  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def viewer() -> Iterator[Viewer]:
    home = short_tempdir()
    with Daemon(home):
        yield Viewer(home)
    shutil.rmtree(home, ignore_errors=True)


def test_the_api_needs_the_token(viewer: Viewer) -> None:
    good = {"Authorization": f"Bearer {viewer.token}"}
    assert viewer.status_code("/api/sessions") == 403
    assert viewer.status_code("/api/sessions", headers={"Authorization": "Bearer nope"}) == 403
    wrong_same_length = "0" * 64 if viewer.token != "0" * 64 else "1" * 64
    assert viewer.status_code(
        "/api/status", headers={"Authorization": f"Bearer {wrong_same_length}"}) == 403
    code, response = viewer.request("/api/sessions", headers=good)
    assert code == 200
    assert msgspec.json.decode(response.partition(b"\r\n\r\n")[2]) == {"sessions": []}
    assert viewer.status_code(f"/api/status?token={viewer.token}") == 200
    assert viewer.status_code(f"/api/nothing-here?token={viewer.token}") == 404


def test_api_status_does_not_hand_out_the_credentials(viewer: Viewer) -> None:
    _, response = viewer.request(f"/api/status?token={viewer.token}")
    assert viewer.token.encode() not in response.partition(b"\r\n\r\n")[2]


def test_the_websocket_needs_the_token(viewer: Viewer) -> None:
    assert viewer.status_code("/ws", headers=WS_HEADERS) == 403
    assert viewer.status_code("/ws?token=wrong", headers=WS_HEADERS) == 403
    assert viewer.status_code(f"/ws?token={viewer.token}", headers=WS_HEADERS) == 101


def test_a_foreign_origin_is_refused_even_with_the_token(viewer: Viewer) -> None:
    """Cross-site WebSocket hijacking: a page elsewhere opening a socket to us."""
    path = f"/ws?token={viewer.token}"
    for origin in ("http://evil.example", "http://127.0.0.1:1", "null",
                   f"https://127.0.0.1:{viewer.port}", f"http://127.0.0.1.evil:{viewer.port}"):
        assert viewer.status_code(path, headers={**WS_HEADERS, "Origin": origin}) == 403, origin
    for own in (viewer.origin, f"http://localhost:{viewer.port}"):
        assert viewer.status_code(path, headers={**WS_HEADERS, "Origin": own}) == 101
    assert viewer.status_code(f"/api/sessions?token={viewer.token}",
                              headers={"Origin": "http://evil.example"}) == 403


def test_a_foreign_host_is_refused_everywhere(viewer: Viewer) -> None:
    """DNS rebinding: evil.example resolving to 127.0.0.1 makes the browser send its name."""
    for host in (f"evil.example:{viewer.port}", "127.0.0.1", f"127.0.0.1:{viewer.port + 1}",
                 f"localhost.evil.example:{viewer.port}", ""):
        assert viewer.status_code("/", host=host) == 403, host
        assert viewer.status_code(f"/ws?token={viewer.token}", host=host,
                                  headers=WS_HEADERS) == 403, host
    assert viewer.status_code("/", host=f"localhost:{viewer.port}") == 200


@pytest.mark.parametrize("path", [
    "/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc%2fpasswd",
    "//etc/passwd", "/index.html/../../mpmd/config.py", "/webui/index.html", "/viewer-token",
    "/../viewer-token", "/.git/config", "/app.js%00.html", "/mpmd/serve/viewer.py",
])
def test_no_request_path_reaches_the_file_system(viewer: Viewer, path: str) -> None:
    code, response = viewer.request(path)
    assert code == 404
    assert viewer.token.encode() not in response
    assert b"root:" not in response


def test_the_page_is_served_with_a_strict_policy(viewer: Viewer) -> None:
    code, response = viewer.request("/")
    head = response.partition(b"\r\n\r\n")[0].decode().lower()
    assert code == 200
    names = [line.split(":")[0] for line in head.split("\r\n")[1:]]
    # Browsers refuse a response with two Content-Length headers outright.
    assert names.count("content-length") == 1 and names.count("content-type") == 1
    assert "content-security-policy: default-src 'self'" in head
    assert "frame-ancestors 'none'" in head
    assert "x-content-type-options: nosniff" in head


def test_refusals_are_counted(viewer: Viewer) -> None:
    before = status(viewer.home)["counters"]
    viewer.status_code("/api/sessions")
    viewer.status_code("/", host="evil.example")
    viewer.status_code(f"/api/sessions?token={viewer.token}",
                       headers={"Origin": "http://evil.example"})
    viewer.status_code("/nope")
    after = status(viewer.home)["counters"]
    for name in ("viewer_refused_token", "viewer_refused_host", "viewer_refused_origin",
                 "viewer_not_found"):
        assert after.get(name, 0) == before.get(name, 0) + 1, name


def test_the_token_file_is_owner_only_and_a_readable_one_is_replaced(home: Path) -> None:
    with Daemon(home):
        first = (home / "viewer-token").read_text().strip()
        assert stat.S_IMODE((home / "viewer-token").stat().st_mode) == 0o600
        assert len(first) == 64 and int(first, 16) >= 0
    with Daemon(home):  # kept across restarts: bookmarks keep working
        assert (home / "viewer-token").read_text().strip() == first
    os.chmod(home / "viewer-token", 0o644)
    with Daemon(home):
        second = (home / "viewer-token").read_text().strip()
        assert second != first
        assert stat.S_IMODE((home / "viewer-token").stat().st_mode) == 0o600
        assert status(home)["viewer_url"].endswith("#token=" + second)


def _listening_ports(count: int) -> tuple[int, list[socket.socket]]:
    """``count`` consecutive loopback ports, each held by a listening socket of ours."""
    for _ in range(50):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
        probe.close()
        if base + count > 65535:
            continue
        held: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
                s.listen()
            return base, held
        except OSError:
            for s in held:
                s.close()
    pytest.skip("no run of free consecutive ports found")


def test_a_taken_port_moves_the_viewer_to_the_next_free_one(home: Path) -> None:
    base, held = _listening_ports(1)
    try:
        with Daemon(home, MPMD_VIEWER_PORT=str(base)):
            info = status(home)
            assert base < info["viewer_port"] < base + 10
            assert info["viewer_url"].startswith(f"http://127.0.0.1:{info['viewer_port']}/#")
            assert f"port {base} was taken" in (home / "daemon-test.log").read_text()
    finally:
        for s in held:
            s.close()


def test_with_every_port_taken_the_daemon_runs_without_the_viewer(home: Path) -> None:
    from tests.utils import fixture_payloads, journal_events, run_hook

    base, held = _listening_ports(10)
    try:
        with Daemon(home, MPMD_VIEWER_PORT=str(base)) as daemon:
            info = status(home)
            assert info["viewer_url"] is None and "taken" in info["viewer_error"]
            assert run_hook(home, fixture_payloads()[0]).returncode == 0
            daemon.stop()
        assert len(journal_events(home)) == 1
    finally:
        for s in held:
            s.close()


def test_open_prints_the_url_and_status_keeps_the_token_off_the_terminal(viewer: Viewer) -> None:
    from tests.utils import mpmd_cli

    printed = mpmd_cli(viewer.home, "open", "--print")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.strip() == f"http://127.0.0.1:{viewer.port}/#token={viewer.token}"
    human = mpmd_cli(viewer.home, "status")
    assert f"http://127.0.0.1:{viewer.port}/" in human.stdout
    assert viewer.token not in human.stdout


def test_open_without_a_daemon_says_so(home: Path) -> None:
    from tests.utils import mpmd_cli

    result = mpmd_cli(home, "open", "--print")
    assert result.returncode == 1
    assert "not running" in result.stderr and "mpmd start" in result.stderr
