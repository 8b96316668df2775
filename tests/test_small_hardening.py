"""Issue 12's smaller defects: HTTP methods, nesting of client messages, duplicate headers,
refused folders at start, modes under any umask, the runtime folder without
XDG_RUNTIME_DIR. Real daemon processes and real connections where behaviour is end to end."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from mpmd import config
from mpmd.ops import doctor as dr
from tests.utils import Daemon, env_for, iter_files, mpmd_cli, short_tempdir, status

NOBODY = 65534
WS_HEADERS = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
}


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# ---- the viewer over raw HTTP ---------------------------------------------------------------


class Raw:
    """Requests written byte for byte (no client fixes the method, the path or the headers);
    the viewer answers and closes, so a response is everything up to EOF."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = status(home)["viewer_port"]
        self.token = (home / "viewer-token").read_text().strip()
        self.host = f"127.0.0.1:{self.port}"

    def send(self, method: str, path: str,
             headers: list[tuple[str, str]] | None = None) -> tuple[int, dict[str, str], bytes]:
        lines = [f"{method} {path} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in (headers if headers is not None
                                           else [("Host", self.host)])]
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status_line, *fields = head.decode("latin-1").split("\r\n")
        found: dict[str, str] = {}
        for field in fields:
            name, _, value = field.partition(":")
            found[name.strip().lower()] = value.strip()
        return int(status_line.split(" ")[1]), found, body


@pytest.fixture(scope="module")
def raw() -> Iterator[Raw]:
    home = short_tempdir()
    with Daemon(home):
        yield Raw(home)
    shutil.rmtree(home, ignore_errors=True)


def _paths(raw: Raw) -> list[tuple[str, list[tuple[str, str]]]]:
    """Every kind of route, each as a GET would reach it (token, WebSocket headers)."""
    host = [("Host", raw.host)]
    return [
        ("/", host),
        ("/app.js", host),
        ("/no-such-file", host),
        ("/api/status", host),  # no token
        (f"/api/status?token={raw.token}", host),
        (f"/api/sessions?token={raw.token}", host),
        (f"/api/events?q=x&token={raw.token}", host),
        (f"/metrics?token={raw.token}", host),
        (f"/ws?token={raw.token}", host + list(WS_HEADERS.items())),
    ]


@pytest.mark.parametrize("method", ["DELETE", "POST", "PUT", "PATCH", "OPTIONS", "TRACE",
                                    "PROPFIND", "get"])
def test_every_method_but_get_and_head_is_refused_on_every_path(raw: Raw, method: str) -> None:
    for path, headers in _paths(raw):
        code, fields, body = raw.send(method, path, headers)
        assert code == 405, (method, path)
        assert fields["allow"] == "GET, HEAD", path
        assert raw.token.encode() not in body and b"events_total" not in body
    assert status(raw.home)["counters"].get("viewer_refused_method", 0) > 0
    assert "Traceback" not in (raw.home / "daemon-test.log").read_text()


def test_a_request_with_a_body_is_not_served(raw: Raw) -> None:
    """The library refuses to read a body before our checks run: no answer at all (the one
    method case that gets no 405), and certainly not the API's."""
    for extra in (("Content-Length", "5"), ("Transfer-Encoding", "chunked")):
        with socket.create_connection(("127.0.0.1", raw.port), timeout=10) as sock:
            sock.sendall((f"POST /api/status?token={raw.token} HTTP/1.1\r\nHost: {raw.host}"
                          f"\r\n{extra[0]}: {extra[1]}\r\n\r\nhello").encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        assert data == b"", extra


def test_head_answers_like_get_without_a_body(raw: Raw) -> None:
    for path, headers in _paths(raw):
        if path.startswith("/ws"):
            continue
        get_code, get_fields, get_body = raw.send("GET", path, headers)
        code, fields, body = raw.send("HEAD", path, headers)
        assert (code, body) == (get_code, b""), path
        assert fields["content-type"] == get_fields["content-type"], path
        if not path.startswith(("/api/status", "/metrics")):  # those change between calls
            assert fields["content-length"] == str(len(get_body)), path
    # HEAD cannot open a WebSocket: it is answered as a GET without Upgrade would be.
    code, fields, body = raw.send("HEAD", f"/ws?token={raw.token}",
                                  [("Host", raw.host), *WS_HEADERS.items()])
    assert (code, body) == (426, b"") and fields["upgrade"] == "websocket"


@pytest.mark.parametrize("name,values", [
    ("Host", ["{host}", "{host}"]),
    ("Host", ["{host}", "evil.example"]),
    ("Origin", ["http://{host}", "http://{host}"]),
    ("Origin", ["http://{host}", "http://evil.example"]),
    ("Authorization", ["Bearer {token}", "Bearer {token}"]),
])
def test_a_repeated_host_origin_or_authorization_is_a_400_with_the_reason(
        raw: Raw, name: str, values: list[str]) -> None:
    filled = [v.format(host=raw.host, token=raw.token) for v in values]
    headers = ([] if name == "Host" else [("Host", raw.host)]) + [(name, v) for v in filled]
    for path in ("/", f"/api/status?token={raw.token}", f"/ws?token={raw.token}"):
        extra = list(WS_HEADERS.items()) if path.startswith("/ws") else []
        code, _fields, body = raw.send("GET", path, headers + extra)
        assert code == 400, path
        assert f"more than one {name} header".encode() in body
    log = (raw.home / "daemon-test.log").read_text()
    assert "Traceback" not in log and "process_request failed" not in log


# ---- client messages over a real WebSocket ---------------------------------------------------


def test_a_deeply_nested_message_gets_an_error_and_the_connection_stays_open(
        raw: Raw) -> None:
    deep = 5_000
    messages = [
        # The tag after the nested value: the decoder must skip it to find the type.
        '{"x": ' + "[" * deep + "]" * deep + ', "type": "subscribe"}',
        '{"after": ' + '{"a": ' * deep + "1" + "}" * deep + ', "type": "subscribe"}',
        "[" * deep + "]" * deep,
        '{"type": "subscribe", "sessions": ' + "[" * deep + "]" * deep + "}",
    ]

    async def main() -> None:
        async with connect(status(raw.home)["ws_url"], compression=None) as ws:
            assert json.loads(await ws.recv())["type"] == "hello"
            for text in messages:
                await ws.send(text)
                reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
                assert reply["type"] == "error", reply
                assert "nested" in reply["message"] or "Expected" in reply["message"]
            await ws.send(json.dumps({"type": "subscribe"}))
            kinds = []
            while "live" not in kinds:
                kinds.append(json.loads(await asyncio.wait_for(ws.recv(), 30))["type"])

    asyncio.run(main())
    log = (raw.home / "daemon-test.log").read_text()
    assert "Traceback" not in log and "internal error" not in log


# ---- refused folders at start ----------------------------------------------------------------


def _start(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    try:
        return mpmd_cli(home, "start", *args, MPMD_VIEWER_PORT="0", timeout=30, **env)
    finally:
        mpmd_cli(home, "stop")  # in case it was not refused


def _assert_refused(result: subprocess.CompletedProcess[str], path: Path, fix: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and fix in lines[0], lines[0]


@pytest.fixture
def place() -> Iterator[Path]:
    """A folder to put a state folder in (a home of its own would be it)."""
    path = short_tempdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a folder another user's needs root")
@pytest.mark.parametrize("args", [(), ("--foreground",)])
def test_a_state_folder_of_another_user_is_refused_in_one_line(place: Path,
                                                               args: tuple[str, ...]) -> None:
    home = place / "state"
    home.mkdir(mode=0o700)
    os.chown(home, NOBODY, NOBODY)
    result = _start(home, *args)
    _assert_refused(result, home, "chown")
    assert "uid 65534" in result.stderr
    assert sorted(p.name for p in home.iterdir()) == []  # nothing written into it


@pytest.mark.parametrize("args", [(), ("--foreground",)])
def test_a_file_where_the_state_folder_should_be_is_refused(place: Path,
                                                            args: tuple[str, ...]) -> None:
    home = place / "state"
    home.write_text("not a folder\n")
    _assert_refused(_start(home, *args), home, "mv ")
    assert home.read_text() == "not a folder\n"


@pytest.mark.parametrize("owner", [None, NOBODY])
def test_a_symlink_planted_where_a_folder_should_be_is_refused(place: Path,
                                                               owner: int | None) -> None:
    elsewhere = place / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    home = place / "state"
    home.symlink_to(elsewhere)
    if owner is not None:
        if os.geteuid() != 0:
            pytest.skip("a symlink of another user needs root")
        os.lchown(home, owner, owner)
        os.chown(elsewhere, owner, owner)
    _assert_refused(_start(home), home, "rm ")
    _assert_refused(_start(home, "--foreground"), home, "rm ")
    assert list(elsewhere.iterdir()) == []


def test_a_symlink_planted_inside_the_state_folder_is_refused(home: Path, place: Path) -> None:
    os.chmod(home, 0o700)
    (home / "journal").symlink_to(place)
    _assert_refused(_start(home), home / "journal", "rm ")
    assert list(place.iterdir()) == []


def test_a_folder_others_may_write_is_made_owner_only_and_used(home: Path) -> None:
    """Ours, so tightened rather than refused (what start has always done)."""
    os.chmod(home, 0o777)
    result = _start(home)
    try:
        assert result.returncode == 0, result.stderr
        assert _mode(home) == 0o700
    finally:
        mpmd_cli(home, "stop")


def test_the_daemon_itself_refuses_in_one_line(place: Path) -> None:
    """Its own start-up, whoever started it: a ConfigError with the path and the fix."""
    from mpmd.daemon import wiring

    home = place / "state"
    home.write_text("")
    settings = config.Settings(runtime_dir=home, state_dir=home, config_dir=home)
    with pytest.raises(config.ConfigError) as refused:
        asyncio.run(wiring.serve(settings))
    assert str(home) in str(refused.value) and "\n" not in str(refused.value)


# ---- modes under any umask ------------------------------------------------------------------


def _umask_0() -> None:
    os.umask(0)


def test_under_umask_0_every_file_mpmd_writes_is_owner_only(home: Path) -> None:
    env = env_for(home, MPMD_VIEWER_PORT="0")

    def run(*args: str) -> None:
        result = subprocess.run([sys.executable, "-m", "mpmd", *args], env=env, text=True,
                                capture_output=True, timeout=60, preexec_fn=_umask_0)
        assert result.returncode == 0, result.stderr

    run("install-hooks", "--settings", str(home / "claude" / "settings.json"))
    run("start")
    try:
        hook = home / "hook" / "mpm_hook"
        assert (hook / "__pycache__").is_dir()
        loose = {str(p.relative_to(home)): oct(_mode(p)) for p in [*iter_files(home), home,
                                                                   *home.rglob("*")]
                 if _mode(p) & 0o077 and not p.is_symlink()}
        assert loose == {}, loose
    finally:
        run("stop")


def test_doctor_flags_a_writable_hook_copy_and_install_hooks_repairs_it(home: Path) -> None:
    settings_file = str(home / "claude" / "settings.json")
    assert mpmd_cli(home, "install-hooks", "--settings", settings_file).returncode == 0
    copy = home / "hook" / "mpm_hook"
    os.chmod(copy / "hook.py", 0o666)
    os.chmod(copy / "__pycache__", 0o777)
    report = json.loads(mpmd_cli(home, "doctor", "--json", "--project", str(home)).stdout)
    (perm,) = [c for c in report["checks"] if c["name"] == "permissions"]
    assert perm["level"] == "FAIL", perm
    assert perm["message"].startswith(f"1 file and 1 folder of the hook copy {home}/hook can "
                                      "be changed by group and others (e.g. ")
    assert "mpmd install-hooks" in perm["fix"]

    repaired = mpmd_cli(home, "install-hooks", "--settings", settings_file)
    assert repaired.returncode == 0, repaired.stderr
    assert "owner-only again" in repaired.stdout and "hook.py" in repaired.stdout
    assert _mode(copy / "hook.py") == 0o600 and _mode(copy / "__pycache__") == 0o700
    report = json.loads(mpmd_cli(home, "doctor", "--json", "--project", str(home)).stdout)
    (perm,) = [c for c in report["checks"] if c["name"] == "permissions"]
    assert perm["level"] == "OK", perm


def test_the_permissions_check_sums_up_the_hook_copy() -> None:
    tree = "~/.local/state/mpmd/hook"
    modes = [dr.PathMode(f"{tree}/mpm_hook/{n}.py", "file", 0o666, 1000, "no-write", tree)
             for n in ("hook", "wire", "paths")]
    modes.append(dr.PathMode(f"{tree}/mpm_hook/files.py", "file", 0o644, 1000, "no-write",
                             tree))
    check = dr.check_permissions(modes, 1000)
    assert check.level == dr.FAIL
    assert check.message == (f"3 files of the hook copy {tree} can be changed by group and "
                             f"others (e.g. {tree}/mpm_hook/hook.py is 0666)")
    assert check.fix == f"mpmd install-hooks (or chmod -R go-w {tree})"


# ---- the runtime folder without XDG_RUNTIME_DIR ----------------------------------------------


def _system_runtime_base_usable() -> bool:
    try:
        st = os.lstat(f"/run/user/{os.geteuid()}")
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077


def _plain_env(user_home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MPMD_", "XDG_"))}
    return {**env, "HOME": str(user_home), "MPMD_VIEWER_PORT": "0", **extra}


@pytest.mark.skipif(_system_runtime_base_usable(),
                    reason="/run/user/<uid> exists: mpmd uses it, there is no fallback")
def test_without_xdg_runtime_dir_start_says_where_once_and_warns_nothing(place: Path) -> None:
    env = _plain_env(place)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mpmd", *args], env=env, text=True,
                              capture_output=True, timeout=60)

    state = place / ".local" / "state" / "mpmd"
    started = run("start")
    try:
        assert started.returncode == 0, started.stderr
        assert "Warning" not in started.stderr and "Traceback" not in started.stderr
        notes = started.stderr.strip().splitlines()
        assert len(notes) == 1 and "XDG_RUNTIME_DIR is not set" in notes[0], notes
        assert str(state / "run") in notes[0]
        assert (state / "run" / "mpmd.sock").is_socket()
        assert _mode(state / "run") == 0o700
        shown = run("status")
        assert shown.returncode == 0 and shown.stderr == "", shown.stderr
        assert str(state / "run" / "mpmd.sock") in shown.stdout
        log = (state / "log" / "mpmd.log").read_text()
        assert log.count("XDG_RUNTIME_DIR is not set") == 1
        assert "RuntimeDirWarning" not in log
    finally:
        assert run("stop").returncode == 0


def test_the_runtime_folder_follows_a_usable_xdg_runtime_dir(place: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    for name in ("MPMD_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(place))
    monkeypatch.setattr(config, "SYSTEM_RUNTIME_BASE", str(place / "no-such-run-user"))
    xdg = place / "xdg"
    xdg.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(xdg))
    assert config.default_dirs()[0] == str(xdg / "mpmd")
    assert config.runtime_dir_note() is None

    state = place / ".local" / "state" / "mpmd"
    for problem, make in (("is not a folder of yours alone (mode 0755)",
                           lambda: os.chmod(xdg, 0o755)),
                          ("is not a folder", lambda: (xdg.rmdir(), xdg.write_text("")))):
        make()
        assert config.default_dirs() == (str(state / "run"), str(state))
        note = config.runtime_dir_note()
        assert note is not None and f"XDG_RUNTIME_DIR ({xdg}) {problem}" in note, note
        assert str(state / "run") in note and "\n" not in note
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    system = place / "run-user"
    system.mkdir(mode=0o700)
    monkeypatch.setattr(config, "SYSTEM_RUNTIME_BASE", str(system))
    assert config.default_dirs()[0] == str(system / "mpmd")  # what logind would have named
    assert config.runtime_dir_note() is None
