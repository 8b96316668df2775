"""mpmd as a per-user service: systemd user units on Linux, a LaunchAgent on macOS.

Everything here is pure except the few functions at the end that write files or run the
service manager (``write``, ``remove``, ``run``): the unit texts, the plist, where they go
and which commands enable them are computed from a :class:`Layout` (this installation's
interpreter and mpmd's folders), so tests check them without a service manager.

The unit templates are the strings below, with ``@FIELD@`` placeholders; the copies in the
repository (``systemd/``, ``launchd/``, where the docs point) are exactly what
:func:`repository_files` gives, which a test checks. A placeholder alone on its line
(``@ENVIRONMENT@``) stands for zero or more whole lines.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mpm_hook import paths
from mpmd.config import HTTP_OFF, Settings
from mpmd.durable import write_atomic
from mpmd.errors import ServiceError
from mpmd.ingest.activation import HTTP_FD_NAME, HTTP_HOST

SERVICE_UNIT = "mpmd.service"
SOCKET_UNIT = "mpmd.socket"
HTTP_SOCKET_UNIT = "mpmd-http.socket"  # the http endpoint's port (http_port), for the same service
LAUNCHD_LABEL = "local.mpmd.daemon"
RUNTIME_SPECIFIER = "%t/mpmd"  # the user's runtime folder, as systemd spells it
SYSTEMCTL = "systemctl"
LAUNCHCTL = "launchctl"
# Folders a private /tmp would hide from the daemon (PrivateTmp= covers both).
TMP_FOLDERS = ("/tmp", "/var/tmp")

SOCKET_TEMPLATE = """\
# mpmd's hook socket, for socket activation: systemd listens from login on and starts
# mpmd.service when the first hook event comes. Written by `mpmd service install`
# (docs/service.md); local changes go in a drop-in (`systemctl --user edit mpmd.socket`).
[Unit]
Description=mpmd hook socket (Claude Code hook events)

[Socket]
ListenStream=@SOCKET_PATH@
SocketMode=0600
DirectoryMode=0700
FileDescriptorName=mpmd
Backlog=1024
RemoveOnStop=yes

[Install]
WantedBy=sockets.target
"""

HTTP_SOCKET_TEMPLATE = """\
# The loopback port of mpmd's http endpoint, for socket activation: systemd holds it from
# login on, so a Claude Code http hook that comes while the daemon is stopped, crashed or
# restarting waits in the queue and starts mpmd.service. Written by `mpmd service install`
# (docs/service.md); local changes go in a drop-in (`systemctl --user edit mpmd-http.socket`).
[Unit]
Description=mpmd http hook endpoint (Claude Code http hooks)

[Socket]
ListenStream=127.0.0.1:@HTTP_PORT@
FileDescriptorName=mpmd-http
Service=mpmd.service
Backlog=1024
NoDelay=yes

[Install]
WantedBy=sockets.target
"""

SERVICE_TEMPLATE = """\
# mpmd, the Claude Code hook daemon, as a systemd user service; mpmd.socket (and
# mpmd-http.socket) start it on the first hook event. Written by `mpmd service install`
# (docs/service.md); local changes go in a drop-in (`systemctl --user edit mpmd.service`).
[Unit]
Description=mpmd: keeps every Claude Code hook event
Requires=@SOCKET_UNITS@
After=@SOCKET_UNITS@

[Service]
Type=exec
Sockets=@SOCKET_UNITS@
# The folders must exist before the sandbox below is set up ("+": outside the sandbox).
ExecStartPre=+mkdir -p @EXEC_FOLDERS@
ExecStart=@PYTHON@ -P -m mpmd start --foreground
@ENVIRONMENT@
Restart=on-failure
RestartSec=1
# SIGTERM to the daemon only: it stops its index worker itself, after the last write.
KillMode=mixed
UMask=0077

# Hardening: what each line does is in docs/service.md. A user manager can only set up the
# file system sandbox inside a user namespace: PrivateUsers= (implied since systemd 253).
NoNewPrivileges=yes
PrivateUsers=yes
ProtectSystem=strict
ProtectHome=read-only
ReadWritePaths=@FOLDERS@
PrivateTmp=@PRIVATE_TMP@
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service

[Install]
WantedBy=default.target
Also=@SOCKET_UNITS@
"""

_PLACEHOLDER = re.compile(r"@([A-Z_]+)@")


# ---- what gets written --------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """What the unit files depend on: this installation and the folders it uses."""

    python: str  # the interpreter of this installation (a virtualenv's, unresolved)
    runtime_dir: str
    state_dir: str
    config_dir: str
    mpmd_home: str | None = None  # MPMD_HOME, when set: one folder for everything
    # XDG_STATE_HOME / XDG_CONFIG_HOME when this shell sets them: the service is given the
    # same, so the daemon resolves the folders the hooks were told (`mpmd install-hooks`).
    xdg: tuple[tuple[str, str], ...] = ()
    code: tuple[str, ...] = ()  # where the interpreter and mpmd live (PrivateTmp check)
    # The http endpoint's port, which mpmd-http.socket (launchd: Sockets) holds; 0 (any
    # free port) and -1 (off) cannot be held: no http socket unit then.
    http_port: int = 7720

    @property
    def socket_path(self) -> str:
        return paths.socket_path(self.runtime_dir)

    @property
    def holds_http(self) -> bool:
        """Whether the service manager holds the http port (a fixed port to hold)."""
        return self.http_port > 0

    @property
    def socket_units(self) -> tuple[str, ...]:
        return (SOCKET_UNIT, HTTP_SOCKET_UNIT) if self.holds_http else (SOCKET_UNIT,)


def current_layout(settings: Settings, environ: Mapping[str, str] | None = None,
                   python: str | None = None) -> Layout:
    env = os.environ if environ is None else environ
    python = python if python is not None else sys.executable
    if not python:
        raise ServiceError("cannot tell which Python runs mpmd (sys.executable is empty)")
    import mpmd

    home = env.get(paths.HOME_ENV) or None
    xdg = () if home else tuple(
        (name, env[name]) for name in ("XDG_STATE_HOME", "XDG_CONFIG_HOME") if env.get(name))
    return Layout(
        python=python,
        runtime_dir=str(settings.runtime_dir),
        state_dir=str(settings.state_dir),
        config_dir=str(settings.config_dir),
        mpmd_home=home,
        xdg=xdg,
        code=(python, sys.prefix, str(Path(mpmd.__file__).parent)),
        http_port=settings.http_port,
    )


def placeholder_layout() -> Layout:
    """The layout whose rendering is the template itself (the repository's copies; the
    plist shows its optional EnvironmentVariables too)."""
    return Layout(python="@PYTHON@", runtime_dir="@RUNTIME_DIR@", state_dir="@STATE_DIR@",
                  config_dir="@CONFIG_DIR@", mpmd_home="@MPMD_HOME@")


def _check_path(value: str) -> str:
    """Unit files cannot spell every path; refuse the few they cannot carry (a double
    quote, a backslash, control characters) rather than write a unit that means
    something else."""
    bad = sorted({c for c in value if c in '"\\' or ord(c) < 32 or ord(c) == 127})
    if bad:
        raise ServiceError(f"{value!r} contains {''.join(bad)!r}, which a systemd unit "
                           "cannot carry safely: move mpmd's folders (MPMD_HOME) or the "
                           "virtualenv to a plainer path")
    return value


def _specifiers(value: str) -> str:
    return value.replace("%", "%%")


def _quoted(value: str) -> str:
    return f'"{value}"' if any(c in value for c in " \t'") else value


def exec_arg(value: str) -> str:
    """One argument of an Exec*= line: specifiers (%) and variables ($) escaped, quoted
    when it has blanks or quotes."""
    return _quoted(_specifiers(_check_path(value)).replace("$", "$$"))


def path_arg(value: str) -> str:
    """One path of ReadWritePaths= (specifiers expanded, quotes removed, no $ expansion)."""
    return _quoted(_specifiers(_check_path(value)))


def uses_runtime_specifier(layout: Layout) -> bool:
    """The default layout's runtime folder is the user's runtime folder + /mpmd, which
    systemd spells %t/mpmd: the units then follow XDG_RUNTIME_DIR as the daemon does."""
    return layout.mpmd_home is None


def folders(layout: Layout) -> list[str]:
    """The folders the service writes (the runtime folder as %t/mpmd in the default
    layout; the others are escaped when written into a unit)."""
    runtime = RUNTIME_SPECIFIER if uses_runtime_specifier(layout) else layout.runtime_dir
    out: list[str] = []
    for folder in (runtime, layout.state_dir, layout.config_dir):
        if folder not in out:
            out.append(folder)
    return out


def private_tmp_ok(layout: Layout) -> bool:
    """PrivateTmp= gives the service its own /tmp and /var/tmp: wrong when the daemon's
    folders, its interpreter or mpmd itself live there (e.g. MPMD_HOME=/tmp/...)."""
    for path in (layout.runtime_dir, layout.state_dir, layout.config_dir, *layout.code):
        for tmp in TMP_FOLDERS:
            if path == tmp or path.startswith(tmp + "/"):
                return False
    return True


def _environment_lines(layout: Layout) -> list[str]:
    pairs = list(layout.xdg)
    if layout.mpmd_home is not None:
        pairs.append((paths.HOME_ENV, layout.mpmd_home))
    return [f'Environment="{name}={_specifiers(_check_path(value))}"' for name, value in pairs]


def _fill(template: str, fields: Mapping[str, str], lines: Mapping[str, list[str]]) -> str:
    out: list[str] = []
    for line in template.splitlines(keepends=True):
        whole = _PLACEHOLDER.fullmatch(line.strip())
        if whole and whole.group(1) in lines:
            out.extend(f"{text}\n" for text in lines[whole.group(1)])
            continue
        out.append(_PLACEHOLDER.sub(lambda m: fields[m.group(1)], line))
    return "".join(out)


def render_socket(layout: Layout) -> str:
    if layout == placeholder_layout():
        return SOCKET_TEMPLATE
    if uses_runtime_specifier(layout):
        listen = f"{RUNTIME_SPECIFIER}/{paths.SOCKET_NAME}"
    else:
        listen = _specifiers(_check_path(layout.socket_path))
    return _fill(SOCKET_TEMPLATE, {"SOCKET_PATH": listen}, {})


def render_http_socket(layout: Layout) -> str:
    if layout == placeholder_layout():
        return HTTP_SOCKET_TEMPLATE
    return _fill(HTTP_SOCKET_TEMPLATE, {"HTTP_PORT": str(layout.http_port)}, {})


def render_service(layout: Layout) -> str:
    if layout == placeholder_layout():
        return SERVICE_TEMPLATE
    fields = {
        "SOCKET_UNITS": " ".join(layout.socket_units),
        "PYTHON": exec_arg(layout.python),
        "EXEC_FOLDERS": " ".join(f if f == RUNTIME_SPECIFIER else exec_arg(f)
                                 for f in folders(layout)),
        # "-": a missing folder does not stop the sandbox's set-up (ExecStartPre makes it).
        "FOLDERS": " ".join("-" + (f if f == RUNTIME_SPECIFIER else path_arg(f))
                            for f in folders(layout)),
        "PRIVATE_TMP": "yes" if private_tmp_ok(layout) else "no",
    }
    return _fill(SERVICE_TEMPLATE, fields, {"ENVIRONMENT": _environment_lines(layout)})


def plist_data(layout: Layout) -> dict[str, object]:
    """The LaunchAgent: started at login, started again when it fails (not after `mpmd
    stop`, which exits 0), logging to the state folder. launchd holds the http endpoint's
    port (``Sockets``: a connection starts the daemon when it is not running; the daemon
    takes the socket with launch_activate_socket(3)); the hook socket stays the daemon's
    own: see docs/service.md."""
    log_file = paths.join(layout.state_dir, paths.LOG_NAME, "launchd.log")
    data: dict[str, object] = {
        "Label": LAUNCHD_LABEL,
        "ProgramArguments": [layout.python, "-P", "-m", "mpmd", "start", "--foreground",
                             "--log-file"],
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ProcessType": "Standard",
        "Umask": 0o077,
        "StandardOutPath": log_file,
        "StandardErrorPath": log_file,
    }
    if layout.holds_http:
        data["Sockets"] = {HTTP_FD_NAME: {
            "SockNodeName": "127.0.0.1",
            "SockServiceName": "@HTTP_PORT@" if layout == placeholder_layout()
            else str(layout.http_port),
            "SockType": "stream",
            "SockFamily": "IPv4",
        }}
    if layout.mpmd_home is not None:
        data["EnvironmentVariables"] = {paths.HOME_ENV: layout.mpmd_home}
    return data


def render_plist(layout: Layout) -> bytes:
    import plistlib  # not at the top: every `mpmd` command imports this module

    return plistlib.dumps(plist_data(layout), sort_keys=False)


@dataclass(frozen=True)
class UnitFile:
    path: Path
    content: bytes


def systemd_unit_dir(environ: Mapping[str, str], home: Path) -> Path:
    """Where systemd looks for a user's own units: $XDG_CONFIG_HOME/systemd/user."""
    base = environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    return Path(base) / "systemd" / "user"


def launch_agents_dir(home: Path) -> Path:
    return home / "Library" / "LaunchAgents"


def systemd_files(layout: Layout, unit_dir: Path) -> list[UnitFile]:
    files = [UnitFile(unit_dir / SERVICE_UNIT, render_service(layout).encode()),
             UnitFile(unit_dir / SOCKET_UNIT, render_socket(layout).encode())]
    if layout.holds_http:
        files.append(UnitFile(unit_dir / HTTP_SOCKET_UNIT, render_http_socket(layout).encode()))
    return files


def launchd_files(layout: Layout, agents_dir: Path) -> list[UnitFile]:
    return [UnitFile(agents_dir / f"{LAUNCHD_LABEL}.plist", render_plist(layout))]


def repository_files(root: Path) -> list[UnitFile]:
    """The templates as the repository keeps them (``systemd/``, ``launchd/``)."""
    layout = placeholder_layout()
    return [*systemd_files(layout, root / "systemd"), *launchd_files(layout, root / "launchd")]


# ---- what is lost while the daemon is down ----------------------------------------------
def installed_units(environ: Mapping[str, str] | None = None,
                    home: Path | None = None) -> list[Path]:
    """The service files of ours found in the places `mpmd service install` writes them
    (systemd's socket units, launchd's plist): a service manager owns the daemon."""
    env = os.environ if environ is None else environ
    home = Path(env.get("HOME") or Path.home()) if home is None else home
    unit_dir = systemd_unit_dir(env, home)
    candidates = [unit_dir / SOCKET_UNIT, unit_dir / HTTP_SOCKET_UNIT,
                  launch_agents_dir(home) / f"{LAUNCHD_LABEL}.plist"]
    return [path for path in candidates if path.exists()]


def port_listens(port: int, timeout_s: float = 0.5) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port`` (a service manager
    holding it while the daemon is down)."""
    import socket

    try:
        with socket.create_connection((HTTP_HOST, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def http_loss_risk(settings: Settings, *, running: bool, held: bool | None = None,
                   environ: Mapping[str, str] | None = None) -> str | None:
    """Why Claude Code's http hooks would lose events while the daemon is down, or None
    when nothing would be lost (a service manager holds the port, or there is no http
    endpoint). ``running``: asked by the daemon itself, ``held`` then says whether it serves
    a socket a service manager passed; asked while it is down, whether something accepts
    on the port is tried (a held port queues the hooks and starts the daemon)."""
    port = settings.http_port
    if port == HTTP_OFF:
        return None
    if port == 0:
        return ("http_port is 0 (any free port): no service manager can hold it, so while "
                "the daemon is down Claude Code's http hooks fail and their events are lost "
                "(set a fixed http_port)")
    if not running:
        held = port_listens(port)
        if held:
            return None
        return (f"mpmd is not running and nothing holds 127.0.0.1:{port}: Claude Code's http "
                "hooks fail now (connection refused) and their events are lost until the "
                "daemon runs again (the SessionStart hook starts it when the next session "
                "starts; `mpmd service install` makes the service manager hold the port)")
    if held:
        return None
    units = installed_units(environ)
    if units:
        return (f"a service is installed ({', '.join(p.name for p in units)}) but this daemon "
                f"was not passed 127.0.0.1:{port} (started by hand, or the service files "
                "predate the http socket: run `mpmd service install` again): while it is "
                "down, Claude Code's http hooks fail and their events are lost")
    return (f"no service manager holds 127.0.0.1:{port}: while the daemon is down (`mpmd "
            "stop`, a crash, a restart), Claude Code's http hooks fail at once (connection "
            "refused) and their events are lost; the SessionStart hook starts the daemon "
            "again only when the next session starts. `mpmd service install` makes the "
            "service manager hold the port")


# ---- the service managers' commands (pure: argv lists) -----------------------------------
def systemctl(*args: str) -> list[str]:
    return [SYSTEMCTL, "--user", *args]


def systemd_install_commands(restart: bool, http: bool = True) -> list[list[str]]:
    """Load the units, enable the socket and start it (from then on, and at every login,
    the first hook event starts the daemon), then start the daemon; ``restart`` when units
    that were running changed (restarting the socket restarts the service with it)."""
    sockets = (SOCKET_UNIT, HTTP_SOCKET_UNIT) if http else (SOCKET_UNIT,)
    commands = [systemctl("daemon-reload"), systemctl("enable", "--now", *sockets)]
    if restart:
        commands.append(systemctl("restart", *sockets))
    return [*commands, systemctl("start", SERVICE_UNIT)]


def systemd_uninstall_commands() -> list[list[str]]:
    """Every unit of ours, the http socket's included (one not installed is no error for
    `disable`: it says so and goes on)."""
    return [systemctl("disable", "--now", SOCKET_UNIT, HTTP_SOCKET_UNIT, SERVICE_UNIT)]


def launchd_domain(uid: int) -> str:
    return f"gui/{uid}"


def launchd_target(uid: int) -> str:
    return f"{launchd_domain(uid)}/{LAUNCHD_LABEL}"


def launchd_install_commands(uid: int, plist: Path, loaded: bool) -> list[list[str]]:
    """bootstrap loads the agent (RunAtLoad starts it); one already loaded is booted out
    first, or bootstrap refuses ("service already loaded") and the old definition stays."""
    commands = [[LAUNCHCTL, "bootout", launchd_target(uid)]] if loaded else []
    return [*commands, [LAUNCHCTL, "bootstrap", launchd_domain(uid), str(plist)]]


def launchd_uninstall_commands(uid: int, loaded: bool) -> list[list[str]]:
    return [[LAUNCHCTL, "bootout", launchd_target(uid)]] if loaded else []


def shell_line(argv: Sequence[str]) -> str:
    import shlex

    return " ".join(shlex.quote(a) for a in argv)


# ---- effects ------------------------------------------------------------------------------
def current_content(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def write(unit: UnitFile) -> bool:
    """Write ``unit`` atomically (0644: service managers read these); False when it
    already had exactly this content."""
    if current_content(unit.path) == unit.content:
        return False
    unit.path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(unit.path, unit.content, mode=0o644)
    return True


def remove(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def enablement_links(unit_dir: Path) -> list[Path]:
    """The symlinks `systemctl --user enable` made for our units (``*.wants/``), found
    without systemctl, for removing them when it cannot run."""
    links: list[Path] = []
    with contextlib.suppress(OSError):
        for wants in unit_dir.glob("*.wants"):
            for name in (SERVICE_UNIT, SOCKET_UNIT, HTTP_SOCKET_UNIT):
                link = wants / name
                if link.is_symlink():
                    links.append(link)
    return links


@dataclass(frozen=True)
class Ran:
    argv: list[str]
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run(argv: list[str], timeout: float = 90.0) -> Ran:
    """Run a service manager command; a missing program is returncode 127, like a shell."""
    if shutil.which(argv[0]) is None:
        return Ran(argv, 127, f"{argv[0]}: command not found")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Ran(argv, 124, f"no answer within {timeout:.0f} s")
    return Ran(argv, done.returncode, (done.stdout + done.stderr).strip())


def systemctl_usable() -> tuple[bool, str]:
    """Whether a user service manager answers (not in most containers, nor over a plain
    `su`); when not, why, in systemctl's words."""
    ran = run(systemctl("show", "--property=Version", "--value"), timeout=15)
    return ran.ok, ran.output or f"exit status {ran.returncode}"


def systemd_states() -> dict[str, tuple[str, str]]:
    """unit -> (is-enabled, is-active), as systemctl --user says them ("not-found" for a
    unit it does not know)."""
    states: dict[str, tuple[str, str]] = {}
    for unit in (SOCKET_UNIT, HTTP_SOCKET_UNIT, SERVICE_UNIT):
        words = []
        for verb in ("is-enabled", "is-active"):
            ran = run(systemctl(verb, unit), timeout=15)
            last = ran.output.splitlines()[-1] if ran.output else "unknown"
            words.append("not-found" if "No such file" in last else last)
        states[unit] = (words[0], words[1])
    return states


def systemd_failure(unit: str = SERVICE_UNIT) -> str:
    """Why ``unit`` failed, in systemd's terms (result and exit status)."""
    ran = run(systemctl("show", "--property=Result", "--property=ExecMainStatus", unit),
              timeout=15)
    return ", ".join(ran.output.split()) if ran.ok else ran.output


@dataclass(frozen=True)
class LaunchdState:
    loaded: bool
    state: str  # what `launchctl print` says ("running", "not running", ...)
    pid: int | None


def parse_launchctl_print(output: str) -> tuple[str, int | None]:
    found = dict(re.findall(r"^\s*(state|pid) = (\S+)", output, re.MULTILINE))
    pid = found.get("pid", "")
    return found.get("state", "unknown"), int(pid) if pid.isdigit() else None


def launchd_state(uid: int) -> LaunchdState:
    ran = run([LAUNCHCTL, "print", launchd_target(uid)], timeout=15)
    if not ran.ok:
        return LaunchdState(False, "not loaded", None)
    return LaunchdState(True, *parse_launchctl_print(ran.output))
