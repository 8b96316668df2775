"""mpmd as a per-user service: the unit files and the plist (mpmd.service), `mpmd service`
(against stand-in systemctl / launchctl programs: a test must never enable anything on the
machine it runs on), the LISTEN_FDS protocol (mpmd.activation), and real socket activation
through systemd-socket-activate."""

from __future__ import annotations

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

from mpmd import activation, service
from mpmd.config import Settings
from tests.utils import (
    ROOT,
    Daemon,
    journal_events,
    mpmd_cli,
    run_hook,
    short_tempdir,
    spool_files,
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
                 "Requires=mpmd.socket"):
        assert line in unit
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
         str(unit_dir / service.SERVICE_UNIT)],
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
    assert status.stdout.count("installed, up to date") == 2, status.stdout
    assert "daemon: not running" in status.stdout

    # A link as `systemctl --user enable` makes it: uninstall removes it without systemctl.
    wants = unit_dir / "sockets.target.wants"
    wants.mkdir()
    (wants / "mpmd.socket").symlink_to(unit_dir / "mpmd.socket")
    removed = mpmd_cli(home, "service", "uninstall", **env)
    assert removed.returncode == 0, removed.stderr
    assert sorted(p.name for p in unit_dir.rglob("*") if not p.is_dir()) == []
    assert "systemctl --user disable --now mpmd.socket mpmd.service" in removed.stdout


def _settings_for(home: Path) -> Settings:
    return Settings(runtime_dir=home, state_dir=home, config_dir=home)


def test_install_and_uninstall_with_a_user_manager(tmp: Path, stubs: dict[str, str]) -> None:
    home = tmp / "home"
    result = mpmd_cli(home, "service", "install", **stubs)
    assert result.returncode == 0, result.stderr
    assert calls(stubs) == [
        "systemctl --user daemon-reload",
        "systemctl --user enable --now mpmd.socket",
        "systemctl --user start mpmd.service",
    ]
    assert "ran systemctl --user enable --now mpmd.socket" in result.stdout
    again = mpmd_cli(home, "service", "install", **stubs)
    assert again.stdout.count("is up to date") == 2

    Path(stubs["STUB_LOG"]).unlink()
    removed = mpmd_cli(home, "service", "uninstall", **stubs)
    assert removed.returncode == 0, removed.stderr
    assert calls(stubs) == [
        "systemctl --user disable --now mpmd.socket mpmd.service",
        "systemctl --user daemon-reload",
        "systemctl --user reset-failed mpmd.service mpmd.socket",
    ]
    assert not (tmp / "user" / "config" / "systemd" / "user" / "mpmd.service").exists()


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


# ---- the LISTEN_FDS protocol (mpmd.activation) -----------------------------------------
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
        with caplog.at_level(logging.ERROR, logger="mpmd.activation"):
            assert activation.take_listener(tmp / "mpmd.sock", env, first_fd=fd) is None
        with pytest.raises(OSError):
            os.fstat(fd)  # closed: refused descriptors are not kept open
        assert "elsewhere.sock" in caplog.text and "binding our own" in caplog.text


def test_take_listener_without_activation(tmp: Path) -> None:
    assert activation.take_listener(tmp / "mpmd.sock", {}) is None


# ---- real socket activation --------------------------------------------------------------
class Activation:
    """`systemd-socket-activate` listening on a path: it starts the daemon (in its own
    process: it execs) on the first connection, passing the socket by LISTEN_FDS. Used as
    a context manager, it ends with the daemon stopped by SIGTERM, cleanly (exit 0)."""

    def __init__(self, tmp: Path, listen: Path | None = None) -> None:
        self.home = tmp / "home"
        self.home.mkdir(mode=0o700)
        self.listen = listen or self.home / "mpmd.sock"
        self.log = tmp / "activate.log"
        assert SOCKET_ACTIVATE is not None
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}  # it passes only -E ones on
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [SOCKET_ACTIVATE, "-l", str(self.listen), "--fdname=mpmd",
                 "-E", f"MPMD_HOME={self.home}", "-E", "MPMD_VIEWER_PORT=0",
                 sys.executable, "-m", "mpmd", "start", "--foreground"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)

    def __enter__(self) -> Activation:
        wait_until(self.listen.exists, "systemd-socket-activate listens")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
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
