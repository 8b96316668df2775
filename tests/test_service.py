"""mpmd as a per-user service: the unit files and the plist (mpmd.service), `mpmd service`
(against stand-in systemctl / launchctl programs: a test must never enable anything on the
machine it runs on), the LISTEN_FDS protocol (mpmd.ingest.activation), and real socket activation
through systemd-socket-activate."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import plistlib
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mpmd.config import Settings
from mpmd.ingest import activation
from mpmd.ops import service
from tests.utils import (
    ROOT,
    Daemon,
    env_for,
    journal_events,
    mpmd_cli,
    run_hook,
    short_tempdir,
    spool_files,
    status,
    wait_until,
)

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")
needs_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None,
    reason="systemd-analyze is missing (Debian: apt-get install systemd)")
needs_socket_activate = pytest.mark.skipif(
    SOCKET_ACTIVATE is None or not sys.platform.startswith("linux"),
    reason="systemd-socket-activate is missing (Debian: apt-get install systemd)")


@pytest.fixture
def tmp() -> Iterator[Path]:
    path = short_tempdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def default_layout(python: str = sys.executable) -> service.Layout:
    return service.Layout(
        python=python, runtime_dir="/run/user/1000/mpmd",
        state_dir="/home/you/.local/state/mpmd", config_dir="/home/you/.config/mpmd",
        code=(python,))


def home_layout(home: str, python: str = sys.executable) -> service.Layout:
    return service.Layout(python=python, runtime_dir=home, state_dir=home, config_dir=home,
                          mpmd_home=home, code=(python,))


def unit_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


# ---- the templates ---------------------------------------------------------------------
def test_repository_copies_are_the_templates() -> None:
    """systemd/ and launchd/ hold exactly what the code renders for placeholders, so the
    docs and the installed files cannot drift apart."""
    for unit in service.repository_files(ROOT):
        assert unit.path.read_bytes() == unit.content, (
            f"{unit.path.relative_to(ROOT)} is out of date; regenerate the copies with: "
            ".venv/bin/python -c 'from pathlib import Path; from mpmd import service; "
            "[f.path.write_bytes(f.content) for f in service.repository_files(Path())]'")
    text = (ROOT / "systemd" / "mpmd.service").read_text()
    for field in ("@PYTHON@", "@FOLDERS@", "@EXEC_FOLDERS@", "@PRIVATE_TMP@", "@ENVIRONMENT@"):
        assert field in text
    assert "@SOCKET_PATH@" in (ROOT / "systemd" / "mpmd.socket").read_text()


def test_default_layout_units() -> None:
    layout = default_layout("/home/you/mpmd/.venv/bin/python")
    socket_unit = unit_lines(service.render_socket(layout))
    assert "ListenStream=%t/mpmd/mpmd.sock" in socket_unit  # where the hook looks
    for line in ("SocketMode=0600", "DirectoryMode=0700", "FileDescriptorName=mpmd",
                 "WantedBy=sockets.target"):
        assert line in socket_unit
    unit = unit_lines(service.render_service(layout))
    assert "ExecStart=/home/you/mpmd/.venv/bin/python -P -m mpmd start --foreground" in unit
    assert "Restart=on-failure" in unit
    for line in ("NoNewPrivileges=yes", "PrivateUsers=yes", "ProtectSystem=strict",
                 "ProtectHome=read-only", "PrivateTmp=yes", "UMask=0077",
                 "Requires=mpmd.socket mpmd-http.socket",
                 "Sockets=mpmd.socket mpmd-http.socket",
                 "Also=mpmd.socket mpmd-http.socket"):
        assert line in unit
    # The http endpoint's port, held by its own socket unit (its own FileDescriptorName=,
    # which a unit gives all its sockets alike), for the same service.
    http_unit = unit_lines(service.render_http_socket(layout))
    for line in ("ListenStream=127.0.0.1:7720", "FileDescriptorName=mpmd-http",
                 "Service=mpmd.service", "WantedBy=sockets.target"):
        assert line in http_unit
    assert [u.path.name for u in service.systemd_files(layout, Path("/u"))] == [
        "mpmd.service", "mpmd.socket", "mpmd-http.socket"]
    folders = "%t/mpmd /home/you/.local/state/mpmd /home/you/.config/mpmd"
    assert f"ExecStartPre=+mkdir -p {folders}" in unit
    assert "ReadWritePaths=" + " ".join("-" + f for f in folders.split()) in unit
    assert not any(ln.startswith("Environment=") for ln in unit)
    assert not any("@" in ln for ln in unit if not ln.startswith("SystemCallFilter="))


def test_mpmd_home_layout_units() -> None:
    """MPMD_HOME: the socket is an absolute path, the service gets the variable, and a
    folder under /tmp turns PrivateTmp off (the daemon must see the real /tmp)."""
    layout = home_layout("/tmp/a b%c")
    assert "ListenStream=/tmp/a b%%c/mpmd.sock" in unit_lines(service.render_socket(layout))
    unit = unit_lines(service.render_service(layout))
    assert 'Environment="MPMD_HOME=/tmp/a b%%c"' in unit
    assert 'ReadWritePaths=-"/tmp/a b%%c"' in unit
    assert 'ExecStartPre=+mkdir -p "/tmp/a b%%c"' in unit
    assert "PrivateTmp=no" in unit
    assert service.exec_arg("/opt/$x") == "/opt/$$x"


@pytest.mark.parametrize("port", [0, -1])
def test_a_port_that_cannot_be_held_gets_no_http_socket_unit(port: int) -> None:
    """http_port 0 (any free port) or -1 (off): there is no fixed port to hold."""
    layout = dataclasses.replace(default_layout(), http_port=port)
    assert [u.path.name for u in service.systemd_files(layout, Path("/u"))] == [
        "mpmd.service", "mpmd.socket"]
    assert "Requires=mpmd.socket" in unit_lines(service.render_service(layout))
    assert "Sockets" not in service.plist_data(layout)
    assert service.systemd_install_commands(False, http=False)[1] == [
        "systemctl", "--user", "enable", "--now", "mpmd.socket"]


def test_xdg_folders_are_passed_on() -> None:
    layout = service.Layout(python="/usr/bin/python3", runtime_dir="/run/user/1000/mpmd",
                            state_dir="/data/state/mpmd", config_dir="/data/config/mpmd",
                            xdg=(("XDG_STATE_HOME", "/data/state"),))
    assert 'Environment="XDG_STATE_HOME=/data/state"' in service.render_service(layout)


def test_unit_refuses_paths_it_cannot_spell() -> None:
    with pytest.raises(service.ServiceError, match="cannot carry"):
        service.render_service(home_layout('/tmp/quo"te'))


def run_verify(tmp: Path, layout: service.Layout) -> subprocess.CompletedProcess[str]:
    unit_dir = tmp / "units"
    for unit in service.systemd_files(layout, unit_dir):
        service.write(unit)
    runtime = tmp / "rt"  # user-mode verify wants a runtime folder of its own
    runtime.mkdir(mode=0o700, exist_ok=True)
    # Hermetic: no unit of the user running the tests (an installed mpmd.socket!) is read.
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env.update(XDG_RUNTIME_DIR=str(runtime), HOME=str(tmp), SYSTEMD_LOG_COLOR="0")
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--user", str(unit_dir / service.SOCKET_UNIT),
         str(unit_dir / service.HTTP_SOCKET_UNIT), str(unit_dir / service.SERVICE_UNIT)],
        capture_output=True, text=True, env=env, timeout=60)


@needs_analyze
@pytest.mark.parametrize("which", ["default", "mpmd_home"])
def test_systemd_analyze_verify(tmp: Path, which: str) -> None:
    """systemd-analyze verify exits 0 even for unknown keys or bad values (it only warns):
    a clean verdict is exit 0 and nothing said."""
    layout = default_layout() if which == "default" else home_layout(str(tmp / "my home"))
    result = run_verify(tmp, layout)
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


@needs_analyze
def test_systemd_analyze_verify_catches_mistakes(tmp: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: a misspelt value is only a warning (exit status 0)."""
    monkeypatch.setattr(service, "SERVICE_TEMPLATE", service.SERVICE_TEMPLATE.replace(
        "ProtectSystem=strict", "ProtectSystem=strictly"))
    result = run_verify(tmp, default_layout())
    assert result.returncode == 0
    assert "ProtectSystem" in result.stderr or "strictly" in result.stderr


# ---- the LaunchAgent -------------------------------------------------------------------
def test_plist_round_trip_and_keys() -> None:
    layout = default_layout("/Users/you/mpmd/.venv/bin/python")
    data = plistlib.loads(service.render_plist(layout))
    assert data == service.plist_data(layout)
    assert data["Label"] == service.LAUNCHD_LABEL
    assert data["ProgramArguments"] == ["/Users/you/mpmd/.venv/bin/python", "-P", "-m",
                                        "mpmd", "start", "--foreground", "--log-file"]
    assert data["RunAtLoad"] is True
    assert data["KeepAlive"] == {"SuccessfulExit": False}  # again after a crash, not a stop
    assert data["Umask"] == 0o077
    assert data["StandardErrorPath"] == "/home/you/.local/state/mpmd/log/launchd.log"
    assert "EnvironmentVariables" not in data
    # launchd holds the http endpoint's port; the daemon takes it by this name.
    assert data["Sockets"] == {"mpmd-http": {
        "SockNodeName": "127.0.0.1", "SockServiceName": "7720", "SockType": "stream",
        "SockFamily": "IPv4"}}
    with_home = plistlib.loads(service.render_plist(home_layout("/Users/you/mpmd-home")))
    assert with_home["EnvironmentVariables"] == {"MPMD_HOME": "/Users/you/mpmd-home"}


def test_launchctl_command_lines() -> None:
    plist = Path("/Users/you/Library/LaunchAgents/local.mpmd.daemon.plist")
    assert service.launchd_install_commands(501, plist, loaded=False) == [
        ["launchctl", "bootstrap", "gui/501", str(plist)]]
    assert service.launchd_install_commands(501, plist, loaded=True) == [
        ["launchctl", "bootout", "gui/501/local.mpmd.daemon"],
        ["launchctl", "bootstrap", "gui/501", str(plist)]]
    assert service.launchd_uninstall_commands(501, loaded=True) == [
        ["launchctl", "bootout", "gui/501/local.mpmd.daemon"]]
    assert service.launchd_uninstall_commands(501, loaded=False) == []
    out = "gui/501/local.mpmd.daemon = {\n\tactive count = 1\n\tstate = running\n\tpid = 4242\n"
    assert service.parse_launchctl_print(out) == ("running", 4242)


# ---- `mpmd service`, against stand-in managers -----------------------------------------
STUB = """#!/bin/sh
echo "$(basename "$0") $*" >> "$STUB_LOG"
case "$*" in
  *"show --property=Version"*)
    if [ -n "$STUB_NO_MANAGER" ]; then echo "Failed to connect to bus: No medium found" >&2
    exit 1; fi; echo 252 ;;
  *is-active*) echo inactive; exit 3 ;;
  *is-enabled*) echo disabled; exit 1 ;;
  "print "*) if [ -n "$STUB_LOADED" ]; then printf '\\tstate = running\\n\\tpid = 77\\n';
             else echo "Could not find service" >&2; exit 113; fi ;;
esac
exit 0
"""


@pytest.fixture
def stubs(tmp: Path) -> dict[str, str]:
    """PATH with stand-in systemctl and launchctl that log their arguments, and a HOME and
    XDG_CONFIG_HOME of the test's own."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    for name in ("systemctl", "launchctl"):
        path = bin_dir / name
        path.write_text(STUB)
        path.chmod(0o755)
    (tmp / "home").mkdir()
    return {"PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(tmp / "user"), "XDG_CONFIG_HOME": str(tmp / "user" / "config"),
            "STUB_LOG": str(tmp / "calls.log")}


def calls(stubs: dict[str, str]) -> list[str]:
    path = Path(stubs["STUB_LOG"])
    lines = path.read_text().splitlines() if path.exists() else []
    # The probes (show/is-*) are how it looks; the rest is what it does.
    return [ln for ln in lines if not any(p in ln for p in (" show ", " is-", " print "))]


def test_install_without_a_user_manager(tmp: Path, stubs: dict[str, str]) -> None:
    home = tmp / "home"
    env = {**stubs, "STUB_NO_MANAGER": "1"}
    result = mpmd_cli(home, "service", "install", **env)
    assert result.returncode == 0, result.stderr
    unit_dir = tmp / "user" / "config" / "systemd" / "user"
    layout = service.current_layout(_settings_for(home), {"MPMD_HOME": str(home)})
    for unit in service.systemd_files(layout, unit_dir):
        assert unit.path.read_bytes() == unit.content
        assert f"wrote {unit.path}" in result.stdout
        assert unit.path.stat().st_mode & 0o777 == 0o644
    assert "systemctl --user is not usable here (Failed to connect to bus" in result.stdout
    assert "  systemctl --user enable --now mpmd.socket" in result.stdout
    assert calls(stubs) == []  # nothing but the probe was run

    status = mpmd_cli(home, "service", "status", **env)
    assert status.stdout.count("installed, up to date") == 3, status.stdout
    assert "daemon: not running" in status.stdout

    # A link as `systemctl --user enable` makes it: uninstall removes it without systemctl.
    wants = unit_dir / "sockets.target.wants"
    wants.mkdir()
    (wants / "mpmd.socket").symlink_to(unit_dir / "mpmd.socket")
    removed = mpmd_cli(home, "service", "uninstall", **env)
    assert removed.returncode == 0, removed.stderr
    assert sorted(p.name for p in unit_dir.rglob("*") if not p.is_dir()) == []
    assert ("systemctl --user disable --now mpmd.socket mpmd-http.socket mpmd.service"
            in removed.stdout)


def _settings_for(home: Path) -> Settings:
    return Settings(runtime_dir=home, state_dir=home, config_dir=home)


def test_install_and_uninstall_with_a_user_manager(tmp: Path, stubs: dict[str, str]) -> None:
    home = tmp / "home"
    result = mpmd_cli(home, "service", "install", **stubs)
    assert result.returncode == 0, result.stderr
    assert calls(stubs) == [
        "systemctl --user daemon-reload",
        "systemctl --user enable --now mpmd.socket mpmd-http.socket",
        "systemctl --user start mpmd.service",
    ]
    assert "ran systemctl --user enable --now mpmd.socket mpmd-http.socket" in result.stdout
    assert "mpmd-http.socket on 127.0.0.1:7720" in result.stdout
    again = mpmd_cli(home, "service", "install", **stubs)
    assert again.stdout.count("is up to date") == 3

    Path(stubs["STUB_LOG"]).unlink()
    removed = mpmd_cli(home, "service", "uninstall", **stubs)
    assert removed.returncode == 0, removed.stderr
    assert calls(stubs) == [
        "systemctl --user disable --now mpmd.socket mpmd-http.socket mpmd.service",
        "systemctl --user daemon-reload",
        "systemctl --user reset-failed mpmd.service mpmd.socket mpmd-http.socket",
    ]
    unit_dir = tmp / "user" / "config" / "systemd" / "user"
    assert not any(unit_dir.iterdir())


def test_install_stops_a_hand_started_daemon(tmp: Path, stubs: dict[str, str]) -> None:
    """A daemon from `mpmd start` would keep the lock and the socket path from the
    service's: install stops it (it drains first) before enabling the units."""
    home = tmp / "home"
    with Daemon(home) as daemon:
        result = mpmd_cli(home, "service", "install", **stubs)
        assert result.returncode == 0, result.stderr
        assert f"stopped the mpmd started by hand (pid {daemon.pid})" in result.stdout
        assert daemon.proc is not None
        assert daemon.proc.wait(60) == 0  # it exits by itself, cleanly (no signal from here)
    assert calls(stubs)[-1] == "systemctl --user start mpmd.service"


def test_dry_run_writes_and_runs_nothing(tmp: Path, stubs: dict[str, str]) -> None:
    home = tmp / "home"
    result = mpmd_cli(home, "service", "install", "--dry-run", **stubs)
    assert result.returncode == 0, result.stderr
    assert "would write " in result.stdout and "    ExecStart=" in result.stdout
    assert "would run systemctl --user enable --now mpmd.socket" in result.stdout
    assert not (tmp / "user").exists()
    assert calls(stubs) == []


def test_launchd_install_and_uninstall(tmp: Path, stubs: dict[str, str]) -> None:
    """macOS, as far as it can be checked here: the plist written and the launchctl
    command lines run (by a stand-in launchctl)."""
    home = tmp / "home"
    result = mpmd_cli(home, "service", "install", "--manager", "launchd", **stubs)
    assert result.returncode == 0, result.stderr
    plist = tmp / "user" / "Library" / "LaunchAgents" / "local.mpmd.daemon.plist"
    data = plistlib.loads(plist.read_bytes())
    assert data["EnvironmentVariables"] == {"MPMD_HOME": str(home)}
    assert calls(stubs) == [f"launchctl bootstrap gui/{os.getuid()} {plist}"]

    Path(stubs["STUB_LOG"]).unlink()
    status = mpmd_cli(home, "service", "status", "--manager", "launchd", STUB_LOADED="1",
                      **stubs)
    assert "launchd: local.mpmd.daemon running (pid 77)" in status.stdout
    removed = mpmd_cli(home, "service", "uninstall", "--manager", "launchd", STUB_LOADED="1",
                       **stubs)
    assert removed.returncode == 0, removed.stderr
    assert calls(stubs) == [f"launchctl bootout gui/{os.getuid()}/local.mpmd.daemon"]
    assert not plist.exists()


# ---- the LISTEN_FDS protocol (mpmd.ingest.activation) -----------------------------------------
def test_parse_ignores_what_is_not_for_us() -> None:
    assert activation.parse({}, 42) == []
    env = {"LISTEN_PID": "41", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "mpmd"}
    assert activation.parse(env, 42) == []  # for our parent: not ours
    assert env == {}  # ... and gone, so our children do not take it either


def test_parse_ours() -> None:
    env = {"LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "other:mpmd", "PATH": "x"}
    assert activation.parse(env, 42) == [activation.Passed(3, "other"),
                                         activation.Passed(4, "mpmd")]
    assert env == {"PATH": "x"}
    assert activation.parse({"LISTEN_PID": "42", "LISTEN_FDS": "1"}, 42) == [
        activation.Passed(3, "unknown")]
    assert activation.parse({"LISTEN_PID": "42", "LISTEN_FDS": "0"}, 42) == []


@pytest.mark.parametrize("env, message", [
    ({"LISTEN_PID": "x", "LISTEN_FDS": "1"}, "not a pid"),
    ({"LISTEN_PID": "42", "LISTEN_FDS": "one"}, "not a number"),
    ({"LISTEN_PID": "42", "LISTEN_FDS": "-1"}, "out of range"),
    ({"LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "mpmd"}, "1 names for 2"),
])
def test_parse_refuses_nonsense(env: dict[str, str], message: str) -> None:
    with pytest.raises(activation.ActivationError, match=message):
        activation.parse(env, 42)
    assert env == {}


def listening(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(8)
    return sock


def test_check_listener(tmp: Path) -> None:
    path = tmp / "mpmd.sock"
    with listening(path) as good:
        assert activation.check_listener(good, path) is None
        link = tmp / "link"
        link.symlink_to(tmp, target_is_directory=True)
        assert activation.check_listener(good, link / "mpmd.sock") is None  # same file
        reason = activation.check_listener(good, tmp / "other.sock")
        assert reason is not None and "bound to" in reason and "other.sock" in reason
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as idle:
        idle.bind(str(tmp / "idle.sock"))
        assert "not listening" in str(activation.check_listener(idle, tmp / "idle.sock"))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as dgram:
        dgram.bind(str(tmp / "d.sock"))
        assert "not a stream socket" in str(activation.check_listener(dgram, tmp / "d.sock"))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(1)
        assert "not a Unix socket" in str(activation.check_listener(tcp, path))


def passed_as_fd(sock: socket.socket) -> int:
    """A descriptor for ``sock`` as a service manager would pass it (ours to take)."""
    return os.dup(sock.fileno())


def test_take_listener(tmp: Path) -> None:
    path = tmp / "mpmd.sock"
    with listening(path) as original:
        path.chmod(0o755)  # systemd-socket-activate follows its umask
        fd = passed_as_fd(original)
        os.set_inheritable(fd, True)
        env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "1", "LISTEN_FDNAMES": "mpmd"}
        taken = activation.take_listener(path, env, first_fd=fd)
        assert taken is not None and taken.fileno() == fd
        with taken:
            assert env == {}
            assert not taken.getblocking()
            assert not os.get_inheritable(fd)  # O_CLOEXEC: the index worker does not get it
            assert path.stat().st_mode & 0o777 == 0o600
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.connect(str(path))


def test_take_listener_refuses_a_wrong_socket(tmp: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    with listening(tmp / "elsewhere.sock") as wrong:
        fd = passed_as_fd(wrong)
        env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "1"}
        with caplog.at_level(logging.ERROR, logger="mpmd.ingest.activation"):
            assert activation.take_listener(tmp / "mpmd.sock", env, first_fd=fd) is None
        with pytest.raises(OSError):
            os.fstat(fd)  # closed: refused descriptors are not kept open
        assert "elsewhere.sock" in caplog.text and "binding our own" in caplog.text


def test_take_listener_without_activation(tmp: Path) -> None:
    assert activation.take_listener(tmp / "mpmd.sock", {}) is None


def tcp_listening(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, port))
    sock.listen(8)
    return sock


def passed_in_order(*socks: socket.socket) -> int:
    """Copies of ``socks`` on consecutive descriptors, as LISTEN_FDS numbers them; the
    first one's number."""
    first = 300
    for i, sock in enumerate(socks):
        os.dup2(sock.fileno(), first + i)
    return first


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_take_listeners_tells_the_two_apart_by_name(tmp: Path) -> None:
    path = tmp / "mpmd.sock"
    with tcp_listening() as tcp, listening(path) as unix:
        port = tcp.getsockname()[1]
        first = passed_in_order(tcp, unix)
        env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "2",
               "LISTEN_FDNAMES": "mpmd-http:mpmd"}
        got = activation.take_listeners(path, port, env, first_fd=first)
        assert got.hook is not None and got.hook.fileno() == first + 1
        assert got.http is not None and got.http.fileno() == first
        for sock in (got.hook, got.http):
            assert not sock.getblocking() and not sock.get_inheritable()
            sock.close()
        # Unnamed (systemd-socket-activate without --fdname): by their address family.
        first = passed_in_order(unix, tcp)
        env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "2"}
        got = activation.take_listeners(path, 0, env, first_fd=first)  # 0: any port
        assert got.hook is not None and got.hook.family == socket.AF_UNIX
        assert got.http is not None and got.http.getsockname()[1] == port
        got.hook.close()
        got.http.close()


@pytest.mark.parametrize("case", ["other port", "all addresses", "off", "not asked"])
def test_take_listeners_refuses_an_http_socket_it_must_not_serve(
        tmp: Path, case: str, caplog: pytest.LogCaptureFixture) -> None:
    """A port other than http_port (the unit is older than the setting), an address
    beyond loopback, the endpoint off: refused, closed, said why; the hook socket is
    still taken."""
    path = tmp / "mpmd.sock"
    host = "0.0.0.0" if case == "all addresses" else "127.0.0.1"
    with tcp_listening(host) as tcp, listening(path) as unix:
        port = tcp.getsockname()[1]
        wanted = {"other port": port + 1, "all addresses": port, "off": -1,
                  "not asked": None}[case]
        first = passed_in_order(unix, tcp)
        env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "2",
               "LISTEN_FDNAMES": "mpmd:mpmd-http"}
        with caplog.at_level(logging.ERROR, logger="mpmd.ingest.activation"):
            got = activation.take_listeners(path, wanted, env, first_fd=first)
        assert got.http is None and not is_open(first + 1)
        assert got.hook is not None
        got.hook.close()
        said = {"other port": f"bound to port {port}, but this daemon's http_port is "
                              f"{port + 1}",
                "all addresses": "127.0.0.1 only", "off": "http_port is off",
                "not asked": "takes no http socket"}[case]
        assert said in caplog.text


class FakeLaunchd:
    """libSystem's launch_activate_socket(3) and free(3), for launchd_sockets."""

    def __init__(self, sockets: dict[str, list[int]], error: int = 0) -> None:
        self.sockets = sockets
        self.error = error
        self.freed = 0
        self._keep: list[object] = []
        # Plain functions, as ctypes' are: the caller sets argtypes and restype on them.
        self.launch_activate_socket = lambda *a: self._activate(*a)
        self.free = lambda pointer: self._free(pointer)

    def _activate(self, name: bytes, fds_ref: object, count_ref: object) -> int:
        import ctypes

        if self.error:
            return self.error
        numbers = self.sockets.get(name.decode())
        if numbers is None:
            return errno.ENOENT
        array = (ctypes.c_int * len(numbers))(*numbers)
        self._keep.append(array)
        fds_ref._obj.contents = ctypes.c_int.from_buffer(array)  # type: ignore[attr-defined]
        count_ref._obj.value = len(numbers)  # type: ignore[attr-defined]
        return 0

    def _free(self, pointer: object) -> None:
        self.freed += 1


def test_launchd_passes_the_http_socket_by_its_name() -> None:
    with tcp_listening() as tcp:
        port = tcp.getsockname()[1]
        lib = FakeLaunchd({"mpmd-http": [os.dup(tcp.fileno())]})
        got = activation.take_launchd_http(port, lib)
        assert got is not None and got.getsockname() == tcp.getsockname()
        assert not got.getblocking() and lib.freed == 1
        got.close()
        wrong = FakeLaunchd({"mpmd-http": [os.dup(tcp.fileno())]})
        fd = wrong.sockets["mpmd-http"][0]
        assert activation.take_launchd_http(port + 1, wrong) is None  # the plist is older
        assert not is_open(fd)
    assert activation.take_launchd_http(7720, FakeLaunchd({})) is None  # no such entry
    assert activation.take_launchd_http(7720, FakeLaunchd({}, errno.ESRCH)) is None


# ---- real socket activation --------------------------------------------------------------
# The service manager's part, as mpmd.service's Restart=on-failure: start the daemon again
# when it fails or is killed (not after a clean stop), holding the passed sockets meanwhile.
# systemd-socket-activate execs this shell on the first connection (its pid is then
# LISTEN_PID); each daemon is told its own pid (the inner shell's, which it execs into).
SUPERVISOR = (
    'while :; do sh -c \'LISTEN_PID=$$ exec "$0" "$@"\' "$0" "$@" && exit 0; sleep 0.2; '
    'done')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Activation:
    """`systemd-socket-activate` listening on a path (and, with ``http_port``, on
    127.0.0.1:http_port, as mpmd-http.socket): it starts the daemon (in its own process:
    it execs) on the first connection to either, passing the sockets by LISTEN_FDS. With
    ``supervise``, a shell between them starts the daemon again when it dies, as systemd
    does (Restart=on-failure). Used as a context manager, it ends with the daemon stopped
    by SIGTERM, cleanly (exit 0)."""

    def __init__(self, tmp: Path, listen: Path | None = None, http_port: int | None = None,
                 supervise: bool = False, home: Path | None = None) -> None:
        self.home = home or tmp / "home"
        self.home.mkdir(mode=0o700, exist_ok=True)
        self.listen = listen or self.home / "mpmd.sock"
        self.http_port = http_port
        self.log = tmp / "activate.log"
        assert SOCKET_ACTIVATE is not None
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}  # it passes only -E ones on
        listen_args = ["-l", str(self.listen), "--fdname=mpmd"]
        if http_port is not None:
            listen_args = ["-l", str(self.listen), "-l", f"127.0.0.1:{http_port}",
                           "--fdname=mpmd:mpmd-http"]
        port = str(http_port) if http_port is not None else "0"
        daemon = [sys.executable, "-m", "mpmd", "start", "--foreground"]
        if supervise:
            daemon = ["sh", "-c", SUPERVISOR, *daemon]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [SOCKET_ACTIVATE, *listen_args,
                 "-E", f"MPMD_HOME={self.home}", "-E", "MPMD_VIEWER_PORT=0",
                 "-E", f"MPMD_HTTP_PORT={port}", *daemon],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)

    def __enter__(self) -> Activation:
        wait_until(self.listen.exists, "systemd-socket-activate listens")
        return self

    def daemon_pid(self) -> int | None:
        try:
            return int((self.home / "mpmd.pid").read_text())
        except (OSError, ValueError):
            return None

    def supervising(self) -> bool:
        """The shell runs (systemd-socket-activate exec'd it): a daemon runs or starts."""
        try:
            return Path(f"/proc/{self.proc.pid}/cmdline").read_bytes().startswith(b"sh\0")
        except OSError:
            return False

    def __exit__(self, *exc: object) -> None:
        pid = self.daemon_pid()
        if pid is None and self.supervising():  # a test that failed while one was starting
            with contextlib.suppress(AssertionError):
                wait_until(lambda: self.daemon_pid() is not None, "the daemon's pid", 10)
            pid = self.daemon_pid()
        if pid is not None and self.proc.pid != pid:  # supervised: the daemon, then the shell
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        elif self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(30)
        if not exc[0]:
            assert code == 0, self.log.read_text()


PAYLOAD = b'{"hook_event_name": "SessionStart", "session_id": "activated-1", "source": "startup"}'


def journaled(home: Path) -> list[dict]:
    return [e for e in journal_events(home) if e.get("session_id") == "activated-1"]


@needs_socket_activate
def test_socket_activation_starts_the_daemon_on_the_first_hook(tmp: Path) -> None:
    with Activation(tmp) as act:
        home = act.home
        assert not (home / "mpmd.pid").exists()  # nothing started yet
        hook = run_hook(home, PAYLOAD)  # the first connection starts the daemon
        assert hook.returncode == 0 and hook.stdout == b"", hook
        wait_until(lambda: journaled(home), "the event is journaled")
        # Had the daemon taken longer than the hook's 1 s, the hook spooled a copy too:
        # it is drained and recognised as the same event.
        wait_until(lambda: not spool_files(home), "the spool is empty")
        assert len(journaled(home)) == 1
        # (the pid file is written once start-up is over: a hook may be journaled before)
        wait_until(lambda: (home / "mpmd.pid").exists(), "the pid file")
        assert int((home / "mpmd.pid").read_text()) == act.proc.pid  # it exec'd the daemon
        assert "listening on the socket passed by the service manager" in act.log.read_text()
    # The socket file belongs to the service manager: the daemon leaves it in place.
    assert act.listen.exists()
    assert not (home / "control.sock").exists() and not (home / "mpmd.pid").exists()


@needs_socket_activate
def test_mpmd_start_goes_through_a_listening_socket_unit(tmp: Path) -> None:
    """With the unit's socket listening, `mpmd start` starts the daemon through it instead
    of putting a socket of its own in place of the unit's."""
    with Activation(tmp) as act:
        started = mpmd_cli(act.home, "start")
        assert started.returncode == 0, started.stderr
        assert f"mpmd started by its socket unit (pid {act.proc.pid})" in started.stdout
        assert int((act.home / "mpmd.pid").read_text()) == act.proc.pid
    assert act.listen.exists()  # still the unit's


TOKEN = "ab" * 32  # http.token made beforehand, as Claude Code's settings name it


def post(port: int, body: bytes, timeout: float = 30) -> int:
    """One http hook as Claude Code posts it; the status (it waits in the kernel's queue
    while no daemon accepts)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/hook", body, {"Content-Type": "application/json",
                                             "Authorization": f"Bearer {TOKEN}"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def prepared_home(tmp: Path) -> Path:
    home = tmp / "home"
    home.mkdir(mode=0o700)
    token = home / "http.token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    return home


def posted(home: Path) -> list[str]:
    return [str(e.get("session_id")) for e in journal_events(home) if e["source"] == "http"]


@needs_socket_activate
def test_socket_activation_holds_the_http_port(tmp: Path) -> None:
    """The http port held as mpmd-http.socket holds it: a hook posted while no daemon runs
    starts it and is kept; once the daemon is killed, the next one waits in the queue
    until the manager has started it again, and is kept too."""
    port = free_port()
    home = prepared_home(tmp)
    with Activation(tmp, http_port=port, supervise=True, home=home) as act:
        assert act.daemon_pid() is None  # nothing started yet
        assert post(port, b'{"hook_event_name": "Stop", "session_id": "http-1"}') == 200
        wait_until(lambda: act.daemon_pid() is not None, "the daemon wrote its pid")
        first = act.daemon_pid()
        assert first is not None
        info = status(home)
        assert info["http_port"] == port and info["http_port_held"] is True
        assert info["http_loss_risk"] is None
        log = act.log.read_text()
        assert "http endpoint on the socket passed by the service manager" in log
        assert "listening on the socket passed by the service manager" in log
        os.kill(first, signal.SIGKILL)
        assert post(port, b'{"hook_event_name": "Stop", "session_id": "http-2"}') == 200
        # Answered by a daemon started again (it writes its pid file a moment later).
        wait_until(lambda: act.daemon_pid() not in (None, first), "a new daemon runs")
        wait_until(lambda: sorted(posted(home)) == ["http-1", "http-2"], "both kept, once")
    assert post_refused(port)  # the manager gone: nothing holds the port any more


def post_refused(port: int) -> bool:
    try:
        post(port, b"{}", timeout=5)
    except ConnectionRefusedError:
        return True
    return False


def test_a_daemon_started_by_hand_says_http_hooks_would_be_lost(tmp: Path) -> None:
    """No service manager holds the port: status says what a stopped daemon loses."""
    home = prepared_home(tmp)
    with Daemon(home, MPMD_HTTP_PORT=str(free_port()), HOME=str(tmp),
                XDG_CONFIG_HOME=str(tmp / "config")):
        info = status(home)
        assert info["http_port_held"] is False
        assert "no service manager holds 127.0.0.1:" in info["http_loss_risk"]
        assert "their events are lost" in info["http_loss_risk"]


@needs_socket_activate
def test_socket_activation_with_a_wrong_socket_binds_its_own(tmp: Path) -> None:
    elsewhere = tmp / "elsewhere.sock"
    with Activation(tmp, listen=elsewhere) as act:
        home = act.home
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as trigger:
            trigger.connect(str(elsewhere))
        wait_until(lambda: (home / "mpmd.pid").exists(), "the daemon is up")
        text = act.log.read_text()
        assert "refused: it is bound to" in text and str(elsewhere) in text
        hook = run_hook(home, PAYLOAD)
        assert hook.returncode == 0
        wait_until(lambda: journaled(home), "the event is journaled")
        assert not spool_files(home)  # its own socket answered at once
    assert not (home / "mpmd.sock").exists()  # its own socket: removed as usual


# ---- without a service: the SessionStart hook starts the daemon ---------------------------
SESSION_START = (b'{"hook_event_name": "SessionStart", "session_id": "started-%d", '
                 b'"source": "startup"}')


def start_hook(home: Path, n: int = 1, *flags: str,
               **env: str) -> subprocess.Popen[bytes]:
    """A SessionStart command hook as install-hooks writes it with --start-daemon, in an
    environment of its own (HOME: no service file of the machine's user is seen)."""
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", str(ROOT / "mpm_hook" / "__main__.py"), *flags],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=env_for(home, HOME=str(home), XDG_CONFIG_HOME=str(home / "config"),
                    MPMD_VIEWER_PORT="0", MPMD_HTTP_PORT="0", **env))
    return fed(proc, SESSION_START % n)


def fed(proc: subprocess.Popen[bytes], payload: bytes) -> subprocess.Popen[bytes]:
    """The payload on the hook's stdin, which is then closed, as Claude Code does."""
    assert proc.stdin is not None
    proc.stdin.write(payload)
    proc.stdin.close()
    proc.stdin = None  # communicate() reads the output only
    return proc


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, bytes, bytes]:
    """Exit status and output once the hook exited and its pipes closed (a daemon that
    kept one open would keep Claude Code waiting: communicate() would not return)."""
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


def started_sessions(home: Path) -> list[str]:
    return sorted(str(e.get("session_id")) for e in journal_events(home)
                  if str(e.get("session_id")).startswith("started-"))


def start_processes(home: Path) -> list[int]:
    """Processes of `python -m mpm_hook.start` for this home (a daemon the hook started,
    or one that stopped because another was first)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"mpm_hook.start" in argv and os.fsencode(home) in argv:
            found.append(int(entry.name))
    return found


@pytest.fixture
def started(tmp: Path) -> Iterator[Path]:
    """An MPMD_HOME whose daemon, if a hook started one, is stopped afterwards."""
    home = tmp / "h"
    home.mkdir(mode=0o700)
    yield home
    mpmd_cli(home, "stop")
    for pid in start_processes(home):  # a test that failed half-way
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_session_start_starts_the_daemon_detached_and_ready(started: Path) -> None:
    home = started
    code, out, _err = finish(start_hook(home, 1, "--start-daemon"))
    assert code == 0 and out == b""
    # Ready when the hook returns: the session's http hooks find it at once.
    assert status(home)["running"]
    pid = int((home / "mpmd.pid").read_text())
    assert start_processes(home) == [pid]
    assert os.getsid(pid) != os.getsid(0)  # its own session: not Claude Code's
    wait_until(lambda: started_sessions(home) == ["started-1"], "the spooled event is kept")
    assert "SessionStart found no daemon and started one: started" in (
        home / "log" / "hook.log").read_text()
    # The next session's hook finds it running: delivered, nothing started.
    code, _out, _err = finish(start_hook(home, 2, "--start-daemon"))
    assert code == 0
    wait_until(lambda: started_sessions(home) == ["started-1", "started-2"], "kept")
    assert int((home / "mpmd.pid").read_text()) == pid
    assert (home / "log" / "hook.log").read_text().count("started one") == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_two_session_starts_at_once_start_one_daemon(started: Path) -> None:
    """Two sessions starting together: both hooks may start one; the daemon's lock lets
    one run, the other stops at once. Both events are kept, once."""
    home = started
    hooks = [start_hook(home, n, "--start-daemon") for n in (1, 2)]
    assert [finish(h)[0] for h in hooks] == [0, 0]
    assert status(home)["running"]
    pid = int((home / "mpmd.pid").read_text())
    wait_until(lambda: start_processes(home) == [pid], "only the one daemon is left")
    wait_until(lambda: started_sessions(home) == ["started-1", "started-2"], "both kept")
    assert not spool_files(home)


@pytest.mark.parametrize("case", ["no flag", "another event", "service installed"])
def test_the_hook_starts_nothing_when_it_must_not(started: Path, case: str) -> None:
    home = started
    if case == "service installed":  # the socket unit is the user's (stopped on purpose?)
        unit = home / "config" / "systemd" / "user" / "mpmd.socket"
        unit.parent.mkdir(parents=True)
        unit.write_text("[Socket]\n")
    flags = () if case == "no flag" else ("--start-daemon",)
    if case != "another event":
        proc = start_hook(home, 1, *flags)
    else:
        payload = b'{"hook_event_name": "Stop", "session_id": "started-1"}'
        proc = fed(subprocess.Popen(
            [sys.executable, "-I", "-S", str(ROOT / "mpm_hook" / "__main__.py"), *flags],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env_for(home, HOME=str(home), XDG_CONFIG_HOME=str(home / "config"))), payload)
    assert finish(proc)[0] == 0
    assert len(spool_files(home)) == 1  # kept on disk, as always
    assert not (home / "mpmd.pid").exists() and not start_processes(home)
    log = (home / "log" / "hook.log").read_text() if (home / "log" / "hook.log").exists() \
        else ""
    if case == "service installed":
        assert "not started: a service manager owns it" in log
    else:
        assert "started one" not in log
