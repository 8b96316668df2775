"""`mpmd doctor`: every check a user would otherwise do by hand, with its fix.

Two halves. :func:`gather` does all the I/O once (asks the daemon for its status, reads the
Claude Code settings files, stats folders, files and the commands' paths, probes the viewer
port) and returns a :class:`Facts` of plain data. The ``check_*`` functions are pure: each
takes the facts it needs and returns :class:`Check` objects (name, level, message, fix), so
each can be tested on plain data. A check that cannot run (no daemon to ask) says so with
the level SKIP instead of guessing; only FAIL makes ``mpmd doctor`` exit non-zero.

What install-hooks repairs: everything the hook checks flag in the file it is pointed at
(stale interpreter or script, other folders, duplicates within the file, entries under
events mpmd does not register, outdated entries; http entries with another port or token,
or in a file others can read; http entries where they cannot work, replaced by command
ones). An mpmd entry in a second settings file is
removed with uninstall-hooks on that file; the fixes say which.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import shlex
import shutil
import socket
import stat
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mpmd import config
from mpmd.counters import Count
from mpmd.model.events import CLAUDE_EVENT_TYPES
from mpmd.ops import hooks_settings
from mpmd.status import Status

OK = "OK"
WARN = "WARN"
FAIL = "FAIL"
SKIP = "SKIP"  # the check could not run (says why); counts as neither success nor failure
LEVELS = (OK, WARN, FAIL, SKIP)

RING_WARN_PERCENT = 80
SPOOL_WARN_COUNT = 1000  # a backlog this big takes a while to drain
SPOOL_STUCK_S = 300.0  # the daemon drains every few seconds: older files are not moving
INDEX_BEHIND_WARN = 10_000
NEARLY_FULL_BYTES = 100 * 1024 * 1024
VIEWER_PORT_TRIES = 10  # mpmd.serve.viewer.PORT_TRIES: the configured port, then the next nine

START = "mpmd start"
RESTART = "mpmd stop && mpmd start"


@dataclass(frozen=True)
class Check:
    name: str
    level: str  # OK, WARN, FAIL or SKIP
    message: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.level:<4} {self.name}: {self.message}"
        return f"{text} — fix: {self.fix}" if self.fix else text

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Facts: what gather() found, as plain data


@dataclass(frozen=True)
class SettingsFile:
    """One Claude Code settings file. ``data`` is None when the file is missing or unreadable
    (then ``error`` says why)."""

    scope: str  # "user", "project" or "local"
    path: str  # absolute
    display: str  # as shown to the user (~/..., or relative to the current folder)
    data: dict[str, Any] | None = None
    error: str | None = None
    mode: int | None = None  # its permission bits (through a symlink), when it exists


@dataclass(frozen=True)
class HookTarget:
    """What install-hooks would write now, and the folders this mpmd uses."""

    command: str
    runtime_dir: str
    state_dir: str


@dataclass(frozen=True)
class PathMode:
    """A file or folder of mpmd's that must be owner-only (``private``) or at least not
    writable by others (``no-write``: code and configuration)."""

    display: str
    kind: str  # "dir", "file" or "socket"
    mode: int  # st_mode & 0o7777
    uid: int
    rule: str = "private"  # or "no-write"
    tree: str = ""  # the hook copy it is part of, summed up as one problem


@dataclass(frozen=True)
class SpoolFacts:
    pending: int = 0
    oldest_age_s: float | None = None


@dataclass(frozen=True)
class DiskFacts:
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class PortProbe:
    port: int
    free: bool
    holder: str | None = None  # "pid 123 (nginx)" when it could be found
    error: str | None = None  # could not tell (e.g. a privileged port)


@dataclass(frozen=True)
class HookCopyFacts:
    exists: bool
    differs: tuple[str, ...] = ()  # file names whose bytes differ from the installed package


@dataclass(frozen=True)
class Facts:
    settings: config.Settings
    home: str  # the user's home, for ~ in messages
    uid: int
    installed_version: str
    status: Status | None  # the daemon's status, None if it did not answer
    hung: bool = False  # a daemon holds the lock but does not answer
    socket_kind: str = "missing"  # "socket", "missing" or "other"
    config_error: str | None = None
    modes: tuple[PathMode, ...] = ()
    settings_files: tuple[SettingsFile, ...] = ()
    target: HookTarget | None = None
    paths: Mapping[str, str] = field(default_factory=dict)  # see path_state()
    hook_copy: HookCopyFacts = HookCopyFacts(exists=False)
    spool: SpoolFacts = SpoolFacts()
    disk: DiskFacts | None = None
    journal_bytes: int = 0
    port_probe: PortProbe | None = None
    policy: Mapping[str, Any] | None = None  # mpmd.ops.policy.describe()
    forward_problems: tuple[str, ...] = ()  # mpmd.forward.runner.problems(): [[forward]]
    notify_problems: tuple[str, ...] = ()  # mpmd.notify.deliver.problems(): [[notify]]
    claude: hooks_settings.ClaudeCode | None = None  # the Claude Code found; None: not looked
    endpoint: hooks_settings.Endpoint | None = None  # the daemon's http endpoint


# ---------------------------------------------------------------------------------------------
# Small helpers


def tilde(path: str | os.PathLike[str], home: str) -> str:
    p = str(path)
    home = home.rstrip("/")
    if home and (p == home or p.startswith(home + "/")):
        return "~" + p[len(home):]
    return p


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def duration(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 90:
        return f"{s} s"
    if s < 90 * 60:
        return f"{round(s / 60)} min"
    if s < 48 * 3600:
        return f"{round(s / 3600)} h"
    return f"{round(s / 86400)} days"


def _names(items: Sequence[str], limit: int = 3) -> str:
    """'A', 'A and B', 'A, B and C', '5 events (A, B, C, ...)'."""
    items = list(items)
    if len(items) <= limit:
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
    return f"{len(items)} events ({', '.join(items[:limit])}, ...)"


def _ordered(events: Iterable[str]) -> list[str]:
    """Events in Claude Code's documented order, names it does not know after them."""
    rank = {e: i for i, e in enumerate(hooks_settings.KNOWN_EVENTS)}
    return sorted(events, key=lambda e: rank.get(e, len(rank)))


def _worst(levels: Iterable[str]) -> str:
    found = set(levels)
    for level in (FAIL, WARN):
        if level in found:
            return level
    return OK


def _quote(display: str) -> str:
    """Quote a path for a shell command, leaving a leading ~/ for the shell to expand."""
    if display.startswith("~/"):
        return "~/" + shlex.quote(display[2:])
    return shlex.quote(display)


# ---------------------------------------------------------------------------------------------
# The hook command


@dataclass(frozen=True)
class ParsedCommand:
    program: str  # the interpreter, or the console script (mpm-hook)
    script: str | None  # the hook script run by the interpreter; None for the console script
    runtime_dir: str | None
    state_dir: str | None


def parse_command(command: str) -> ParsedCommand:
    """The parts of one of our hook commands; ValueError if it cannot be split.

    Forms: ``<python> -I -S <dir>/mpm_hook/__main__.py --runtime R --state S`` (what
    install-hooks writes), older ``<python> ... <dir>/mpm_hook``, and ``mpm-hook [...]``.
    Leading ``NAME=value`` assignments are skipped; ``MPMD_HOME=`` sets both folders, as
    it does for the hook.
    """
    tokens = shlex.split(command)
    home = None
    while tokens and "=" in tokens[0] and tokens[0].split("=", 1)[0].isidentifier():
        name, value = tokens.pop(0).split("=", 1)
        if name == "MPMD_HOME":
            home = value
    if not tokens:
        raise ValueError("empty command")
    program = tokens[0]
    script = None
    if hooks_settings.CONSOLE_MARKER not in os.path.basename(program):
        script = next((t for t in tokens[1:]
                       if hooks_settings.MARKER in t and not t.startswith("-")), None)
    runtime = state = None
    for i, token in enumerate(tokens[:-1]):
        if token == "--runtime":
            runtime = tokens[i + 1]
        elif token == "--state":
            state = tokens[i + 1]
    if home:
        runtime = state = home
    return ParsedCommand(program, script, runtime, state)


def command_paths(command: str) -> list[str]:
    """The paths gather() must look at for ``command`` (program, then script)."""
    try:
        parsed = parse_command(command)
    except ValueError:
        return []
    return [p for p in (parsed.program, parsed.script) if p]


def path_state(path: str) -> str:
    """'executable', 'file', 'dir', 'missing', or for a bare name (looked up on PATH)
    'executable' or 'missing'. I/O: used by gather()."""
    if "/" not in path:
        return "executable" if shutil.which(path) else "missing"
    try:
        st = os.stat(os.path.expanduser(path))
    except OSError:
        return "missing"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    return "executable" if os.access(os.path.expanduser(path), os.X_OK) else "file"


def _same_dir(a: str, b: str) -> bool:
    return os.path.normpath(os.path.expanduser(a)) == os.path.normpath(os.path.expanduser(b))


def command_problems(command: str, target: HookTarget, paths: Mapping[str, str],
                     home: str, single: bool) -> tuple[str, str]:
    """(level, predicate) for one command: ``single`` picks the verb's number ("runs" for
    one event, "run" for several). Level OK with an empty predicate when it is current."""
    s = "s" if single else ""
    try:
        parsed = parse_command(command)
    except ValueError as exc:
        return FAIL, f"run{s} a command that cannot be parsed ({exc})"
    missing, not_exec = [], []
    state = paths.get(parsed.program)
    if state == "missing":
        missing.append(parsed.program)
    elif state in ("file", "dir"):
        not_exec.append(parsed.program)
    if parsed.script and paths.get(parsed.script) == "missing":
        missing.append(parsed.script)
    shown = [tilde(p, home) for p in missing]
    if missing:
        where = "on PATH" if "/" not in missing[0] else ""
        if len(missing) == 1 and where:
            return FAIL, f"run{s} {shown[0]}, which is not on PATH"
        if len(missing) == 1:
            return FAIL, f"run{s} {shown[0]}, which does not exist"
        return FAIL, f"run{s} {shown[0]} and {shown[1]}, which do not exist"
    if not_exec:
        return FAIL, f"run{s} {tilde(not_exec[0], home)}, which is not an executable file"
    if parsed.runtime_dir is not None and parsed.state_dir is not None and not (
        _same_dir(parsed.runtime_dir, target.runtime_dir)
        and _same_dir(parsed.state_dir, target.state_dir)
    ):
        theirs = _folders(parsed.runtime_dir, parsed.state_dir, home)
        ours = _folders(target.runtime_dir, target.state_dir, home)
        return FAIL, f"send{s} events to {theirs}, not to this mpmd's {ours}"
    if hooks_settings.base_command(command) != target.command:  # SessionStart's flag: ok
        try:
            now = parse_command(target.command)
        except ValueError:
            now = None
        if parsed.script is None:
            why = f"console script {tilde(parsed.program, home)}"
        elif now is not None and parsed.program != now.program:
            why = f"interpreter {tilde(parsed.program, home)}, now {tilde(now.program, home)}"
        elif now is not None and parsed.script != now.script:
            why = f"hook {tilde(parsed.script or parsed.program, home)}, now " \
                  f"{tilde(now.script or now.program, home)}"
        else:
            why = "other options"
        return WARN, f"run{s} another hook command than install-hooks writes now ({why})"
    return OK, ""


def _folders(runtime: str, state: str, home: str) -> str:
    if _same_dir(runtime, state):
        return tilde(runtime, home)
    return f"{tilde(runtime, home)} + {tilde(state, home)}"


# ---------------------------------------------------------------------------------------------
# The checks (pure)


def check_config(error: str | None, sources: Mapping[str, str], home: str) -> Check:
    if error:
        shown = error.replace(home.rstrip("/") + "/", "~/") if home.rstrip("/") else error
        return Check("config", FAIL, f"{shown}; mpmd will not start with it "
                     "(doctor used the defaults)", "correct the value, or remove it")
    if not sources:
        return Check("config", OK, "all defaults")
    shown = ", ".join(f"{k} from {tilde(v, home)}" for k, v in sorted(sources.items()))
    return Check("config", OK, shown)


def check_daemon(status: Status | None, hung: bool, socket_kind: str,
                 installed_version: str, socket_display: str) -> Check:
    name = "daemon"
    if status is None or not status.running:
        if hung:
            return Check(name, FAIL, "an mpmd process holds the lock but does not answer "
                         "(hooks spool events to disk meanwhile)", RESTART + " (see the log)")
        return Check(name, FAIL, "not running (hooks spool events to disk until it starts)",
                     START)
    pid = status.pid
    up = status.uptime_s
    about = f"pid {pid}" + (f", up {duration(up)}" if up is not None else "")
    version = status.version
    if socket_kind != "socket":
        what = "is missing" if socket_kind == "missing" else "is not a socket"
        return Check(name, FAIL, f"running ({about}) but its socket {socket_display} {what}: "
                     "hooks cannot reach it", RESTART)
    if version and version != installed_version:
        return Check(name, WARN, f"reachable ({about}) but it runs mpmd {version}, and "
                     f"{installed_version} is installed", RESTART)
    return Check(name, OK, f"reachable ({about})")


def check_permissions(modes: Sequence[PathMode], uid: int) -> Check:
    """Owner-only folders and files. FAIL when group or others can read or write a private
    one, or write code/config; WARN when they can only enter a private folder."""
    name = "permissions"
    fails: list[str] = []
    warns: list[str] = []
    fixes: dict[str, list[str]] = {}
    writable: dict[str, list[PathMode]] = {}  # by tree: the hook copy's, said once
    for m in modes:
        other = m.mode & 0o077
        if m.tree and m.uid == uid and other & 0o022:
            writable.setdefault(m.tree, []).append(m)
            continue
        if m.uid != uid:
            fails.append(f"{m.display} belongs to uid {m.uid}, not to you")
            fixes.setdefault("chown", []).append(m.display)
            continue
        if m.rule == "no-write":
            if other & 0o022:
                fails.append(f"{m.display} is {m.mode:04o}: {_who(other & 0o022)} can change it")
                fixes.setdefault("go-w", []).append(m.display)
            continue
        if other & 0o066:
            verbs = [v for bits, v in ((0o044, "list" if m.kind == "dir" else "read"),
                                       (0o022, "change")) if other & bits]
            fails.append(f"{m.display} is {m.mode:04o}: {_who(other & 0o066)} can "
                         f"{' and '.join(verbs)} it")
            fixes.setdefault("700" if m.kind == "dir" else "600", []).append(m.display)
        elif other and m.kind == "dir":
            warns.append(f"{m.display} is {m.mode:04o}: {_who(other)} can open what is in "
                         "it by name")
            fixes.setdefault("700", []).append(m.display)
    for tree, found in writable.items():
        bits = 0
        for m in found:
            bits |= m.mode & 0o022
        who = _who(bits)
        counts = ((sum(m.kind != "dir" for m in found), "file"),
                  (sum(m.kind == "dir" for m in found), "folder"))
        what = " and ".join(f"{n} {noun}{'s' if n > 1 else ''}" for n, noun in counts if n)
        fails.append(f"{what} of the hook copy {tree} can be changed by {who} (e.g. "
                     f"{found[0].display} is {found[0].mode:04o})")
        fixes.setdefault("hook copy", []).append(tree)
    if not fails and not warns:
        if not modes:
            return Check(name, OK, "nothing to check yet (mpmd has not run here)")
        return Check(name, OK, f"owner-only ({len(modes)} paths checked)")
    problems = fails + warns
    message = "; ".join(problems[:3])
    if len(problems) > 3:
        message += f"; and {len(problems) - 3} more"
    commands = []
    for how, items in fixes.items():
        targets = " ".join(_quote(d) for d in items)
        if how == "hook copy":  # install-hooks makes it owner-only and says what it changed
            commands.append(f"mpmd install-hooks (or chmod -R go-w {targets})")
            continue
        commands.append(f"chown $USER {targets}" if how == "chown"
                        else f"chmod {how} {targets}")
    return Check(name, FAIL if fails else WARN, message, "; ".join(commands))


def _ours(f: SettingsFile) -> dict[str, list[str]]:
    """Event -> the keys of mpmd's entries in the file (commands, or urls of http entries)."""
    return hooks_settings.find_ours(f.data) if f.data is not None else {}


def _entries(f: SettingsFile) -> dict[str, list[tuple[Mapping[str, Any], Mapping[str, Any]]]]:
    """Event -> (group, entry) of mpmd's entries in the file."""
    return hooks_settings.find_our_entries(f.data) if f.data is not None else {}


def _who(bits: int) -> str:
    group, others = bits & 0o070, bits & 0o007
    return "group and others" if group and others else "group" if group else "others"


def _fix_for(f: SettingsFile, files: Sequence[SettingsFile]) -> str:
    """install-hooks for the user file. For another file: uninstall-hooks when the user file
    has mpmd entries (it is the one kept up to date, and one file is enough), else
    install-hooks --settings that file."""
    if f.scope == "user":
        return "mpmd install-hooks"
    user = next((u for u in files if u.scope == "user"), None)
    if user is not None and _ours(user):
        return f"mpmd uninstall-hooks --settings {_quote(f.display)}"
    return f"mpmd install-hooks --settings {_quote(f.display)}"


def check_hook_entries(files: Sequence[SettingsFile], target: HookTarget,
                       paths: Mapping[str, str], home: str,
                       endpoint: hooks_settings.Endpoint | None = None) -> list[Check]:
    """One Check per settings file that holds mpmd entries (or cannot be read), plus one
    when an event mpmd registers has no entry in any file. Command entries: the command
    (:func:`command_problems`); http entries: the port against the daemon's (``endpoint``),
    the token against its http.token, and the file's mode (it holds the token)."""
    name = "hook entries"
    checks: list[Check] = []
    any_ours = False
    covered: set[str] = set()
    for f in files:
        if f.error is not None:
            checks.append(Check(name, FAIL, f"{f.display}: {f.error}",
                                "correct the file by hand (install-hooks does not rewrite a "
                                "file it cannot read)"))
            continue
        found = _entries(f)
        if not found:
            continue
        any_ours = True
        covered.update(found)
        by_key: dict[str, list[str]] = {}
        for event, pairs in found.items():
            for key in dict.fromkeys(hooks_settings.entry_key(h) for _g, h in pairs):
                by_key.setdefault(key, []).append(event)
        levels, parts = [], []
        for key, events in by_key.items():
            single = len(events) == 1
            port = hooks_settings.url_port(key)
            if port is None:
                level, predicate = command_problems(key, target, paths, home, single)
            else:
                level, predicate = _port_problems(port, endpoint, single)
            if level != OK:
                levels.append(level)
                parts.append(f"{_names(_ordered(events))} {predicate}")
        level, predicate = _token_problems(found, endpoint)
        if level != OK:
            levels.append(level)
            parts.append(predicate)
        if f.mode is not None and f.mode & 0o077 and f.data is not None \
                and hooks_settings.holds_token(f.data):
            levels.append(FAIL)
            parts.append(f"it holds the http hooks' token and is {f.mode:04o}: "
                         f"{_who(f.mode & 0o077)} can read it")
        try:
            hooks_settings.install(f.data or {}, target.command)
        except hooks_settings.SettingsError as exc:
            checks.append(Check(name, FAIL, f"{f.display}: {exc} (install-hooks refuses it too)",
                                "correct the file by hand"))
            continue
        odd = _ordered(_unlike_install(found, target, endpoint))
        if odd:
            levels.append(WARN)
            parts.append(f"{_names(odd)} {'has an entry' if len(odd) == 1 else 'have entries'}"
                         " unlike the one install-hooks writes (timeout, matcher, headers, or a "
                         "group shared with your own hooks)")
        if not levels:
            count = len([e for e in found if e in hooks_settings.INSTALLED_EVENTS])
            checks.append(Check(name, OK, f"{f.display}: {count} events, "
                                f"{_current(found, endpoint)}"))
            continue
        fix = _fix_for(f, files)
        if fix.startswith("mpmd install-hooks") and _has_http(found):
            # the file has http entries: keep them (install-hooks' auto may choose command)
            fix = fix.replace("mpmd install-hooks", "mpmd install-hooks --transport http", 1)
        checks.append(Check(name, _worst(levels), f"{f.display}: " + "; ".join(parts), fix))
    if not any_ours:
        where = ", ".join(f.display for f in files)
        checks.append(Check(name, FAIL, f"mpmd's hook is in none of {where}: Claude Code "
                            "sends it nothing", "mpmd install-hooks"))
        return checks
    missing = [e for e in hooks_settings.INSTALLED_EVENTS if e not in covered]
    if missing:
        verb = "has" if len(missing) == 1 else "have"
        checks.append(Check(name, WARN, f"{_names(missing)} {verb} no mpmd entry in any "
                            "settings file (not recorded)", "mpmd install-hooks"))
    return checks


def _has_http(found: Mapping[str, Sequence[tuple[Any, Mapping[str, Any]]]]) -> bool:
    return any(hooks_settings.entry_kind(h) == hooks_settings.HTTP
               for pairs in found.values() for _g, h in pairs)


def _current(found: Mapping[str, Sequence[tuple[Any, Mapping[str, Any]]]],
             endpoint: hooks_settings.Endpoint | None) -> str:
    """'current command', or for a file with http entries, how many of each."""
    http = {e for e, pairs in found.items()
            if any(hooks_settings.entry_kind(h) == hooks_settings.HTTP for _g, h in pairs)}
    if not http:
        return "current command"
    ports = {hooks_settings.url_port(h.get("url")) for e in http for _g, h in found[e]
             if hooks_settings.entry_kind(h) == hooks_settings.HTTP}
    where = ", ".join(f"127.0.0.1:{p}" for p in sorted(p for p in ports if p))
    return (f"{len(http)} over http to {where}, {len(set(found) - http)} by the current "
            "command")


def _port_problems(port: int, endpoint: hooks_settings.Endpoint | None,
                   single: bool) -> tuple[str, str]:
    """(level, predicate) for http entries posting to ``port``. An endpoint that is off or
    not listening is the transport check's."""
    s = "s" if single else ""
    expected = endpoint.expected_port if endpoint is not None else None
    if endpoint is None or expected is None or port == expected:
        return OK, ""
    if endpoint.running:
        return FAIL, (f"post{s} to 127.0.0.1:{port}, but mpmd listens on {expected} "
                      "(http.port): Claude Code's http hooks reach something else, or nothing")
    return FAIL, (f"post{s} to 127.0.0.1:{port}, but mpmd's http_port is {expected} "
                  "(mpmd is not running)")


def _token_problems(found: Mapping[str, Sequence[tuple[Any, Mapping[str, Any]]]],
                    endpoint: hooks_settings.Endpoint | None) -> tuple[str, str]:
    """(level, text) for the tokens the http entries send, against the daemon's."""
    none, wrong = [], []
    for event, pairs in found.items():
        for _g, h in pairs:
            if hooks_settings.entry_kind(h) != hooks_settings.HTTP:
                continue
            token = hooks_settings.entry_token(h)
            if token is None:
                none.append(event)
            elif "$" not in token and endpoint is not None and endpoint.token is not None \
                    and token != endpoint.token:
                wrong.append(event)
    texts = []
    for events, what in ((none, "no token (Authorization: Bearer ...)"),
                         (wrong, "a token that is not the daemon's (http.token)")):
        if events:
            events = list(dict.fromkeys(_ordered(events)))
            texts.append(f"{_names(events)} send{'s' if len(events) == 1 else ''} {what}")
    if not texts:
        return OK, ""
    return FAIL, "; ".join(texts) + ": the daemon refuses them (401) and nothing is recorded"


def _unlike_install(found: Mapping[str, Sequence[tuple[Any, Mapping[str, Any]]]],
                    target: HookTarget, endpoint: hooks_settings.Endpoint | None) -> list[str]:
    """Events whose one entry of ours is current (this command; this endpoint's port and
    token) but sits in a group other than the one install-hooks writes (for SessionStart
    in a file with http entries, the command that starts the daemon)."""
    odd = []
    with_http = _has_http(found)
    for event, pairs in found.items():
        if len(pairs) != 1 or event not in hooks_settings.INSTALLED_EVENTS:
            continue
        group, entry = pairs[0]
        http = None
        if hooks_settings.entry_kind(entry) == hooks_settings.HTTP:
            if event in hooks_settings.COMMAND_ONLY_EVENTS:
                continue  # the transport check says it never runs
            port = hooks_settings.url_port(entry.get("url"))
            expected = endpoint.expected_port if endpoint is not None else None
            token = hooks_settings.entry_token(entry)
            if port is None or (expected is not None and port != expected) or token is None:
                continue  # said already
            own = endpoint.token if endpoint is not None and endpoint.token else None
            if own is not None and "$" not in token and token != own:
                continue  # said already
            try:
                http = hooks_settings.HttpHook(port, own or token)
            except ValueError:  # a $VAR token: not what install-hooks writes
                odd.append(event)
                continue
        elif hooks_settings.base_command(hooks_settings.entry_key(entry)) != target.command:
            continue  # said already
        command = hooks_settings.event_command(event, target.command, with_http)
        if group != hooks_settings.our_group(event, command, http=http):
            odd.append(event)
    return odd


def check_transport(files: Sequence[SettingsFile], claude: hooks_settings.ClaudeCode | None,
                    endpoint: hooks_settings.Endpoint | None,
                    status: Status | None = None, home: str = "") -> Check:
    """The kind of mpmd's entries (command or http) against what works: the installed Claude
    Code's version, the daemon's endpoint, the events Claude Code runs http hooks for."""
    name = "hook transport"
    http: set[str] = set()
    command: set[str] = set()
    for f in files:
        for event, pairs in _entries(f).items():
            for _g, h in pairs:
                is_http = hooks_settings.entry_kind(h) == hooks_settings.HTTP
                (http if is_http else command).add(event)
    if not http and not command:
        return Check(name, SKIP, "no mpmd entries to check")
    about = claude.describe(home) if claude is not None else "Claude Code was not looked for"
    if not http:
        text = f"command hooks for {len(command)} events"
        if claude is not None and claude.takes_http and endpoint is not None \
                and not endpoint.unavailable:
            text += (f"; {about} takes http hooks as well, which spare it a process per "
                     "event (mpmd install-hooks --transport http)")
        return Check(name, OK, text)
    fails: list[str] = []
    warns: list[str] = []
    shown = _names(_ordered(http))
    verb = "has" if len(http) == 1 else "have"
    if claude is not None and claude.takes_http is False:
        fails.append(f"{shown} {verb} http entries, but {about} predates http hooks "
                     f"({hooks_settings.HTTP_HOOKS_SINCE_TEXT}): not recorded")
    if endpoint is not None and endpoint.unavailable:
        fails.append(f"{shown} {verb} http entries, but {endpoint.unavailable}: not recorded")
    never = _ordered(http & hooks_settings.COMMAND_ONLY_EVENTS)
    if never:
        which = "has an http entry" if len(never) == 1 else "have http entries"
        fails.append(f"{_names(never)} {which}, which Claude Code never runs (it runs command "
                     "hooks only there): not recorded")
    risk = status.http_loss_risk if status is not None and status.running else None
    if risk:
        warns.append(risk)
    if fails:
        return Check(name, FAIL, "; ".join(fails + warns),
                     "mpmd install-hooks (it chooses command hooks where http ones cannot work)")
    if warns:
        return Check(name, WARN, "; ".join(warns), "mpmd service install")
    text = f"http hooks for {len(http)} events"
    if command:
        text += f", command hooks for {_names(_ordered(command))}"
    if claude is not None and claude.takes_http:
        text += f" ({about} takes http hooks)"
    elif claude is not None:
        text += f" (could not check that Claude Code takes http hooks: {claude.error})"
    return Check(name, OK, text)


def check_duplicates(files: Sequence[SettingsFile]) -> Check:
    """More than one mpmd entry for an event, in one file or across files. Different commands
    or urls, or a command and an http entry, all run (each event stored once per working
    entry): FAIL. Identical commands, or http entries with the same url: WARN (Claude Code's
    hooks reference says identical commands run once, and 2.1.328 posts once per url, but
    the copies drift apart at the next upgrade of one of them)."""
    name = "duplicate entries"
    per_event: dict[str, list[tuple[SettingsFile, str]]] = {}
    for f in files:
        for event, commands in _ours(f).items():
            per_event.setdefault(event, []).extend((f, c) for c in commands)
    groups: dict[tuple[str, str], list[str]] = {}
    fixes: list[str] = []
    level = OK
    for event, found in per_event.items():
        if len(found) < 2:
            continue
        counts: dict[str, int] = {}
        for f, _ in found:
            counts[f.display] = counts.get(f.display, 0) + 1
        where = " and ".join(d if n == 1 else f"{d} ×{n}" for d, n in counts.items())
        differ = len({c for _, c in found}) > 1
        groups.setdefault((where, _duplicate_kind(found, differ)), []).append(event)
        level = _worst((level, FAIL if differ else WARN))
        by_display = {f.display: f for f, _ in found}
        for display, n in counts.items():
            if n > 1 or (len(counts) > 1 and by_display[display].scope != "user"):
                fixes.append(_fix_for(by_display[display], files))
    if level == OK:
        return Check(name, OK, "none (one mpmd entry per event)")
    parts = []
    for (where, kind), events in groups.items():
        n = len(per_event[events[0]])
        verb = "has" if len(events) == 1 else "have"
        parts.append(f"{_names(_ordered(events))} {verb} {n} mpmd entries ({where}; {kind})")
    return Check(name, level, "; ".join(parts), "; ".join(dict.fromkeys(fixes)))


def _duplicate_kind(found: Sequence[tuple[SettingsFile, str]], differ: bool) -> str:
    kinds = {"http" if hooks_settings.url_port(c) is not None else "command" for _, c in found}
    if not differ:  # Claude Code runs them once (2.1.328 posts once per url)
        return "the same endpoint" if kinds == {"http"} else "the same command"
    what = "different commands" if kinds == {"command"} else "different endpoints" \
        if kinds == {"http"} else "a command and an http entry"
    return f"{what}: each event is stored once per working one"


def check_event_names(files: Sequence[SettingsFile],
                      registered: Sequence[str] = hooks_settings.INSTALLED_EVENTS,
                      known: Sequence[str] = hooks_settings.KNOWN_EVENTS,
                      documented: frozenset[str] = CLAUDE_EVENT_TYPES) -> Check:
    """mpmd's entries only under the documented event names it registers."""
    name = "event names"
    fails: list[str] = []
    warns: list[str] = []
    fixes: list[str] = []
    odd_own = sorted(set(registered) - documented)
    if odd_own or set(known) != documented:
        warns.append(f"mpmd's own list of event names differs from the {len(documented)} "
                     "documented ones "
                     f"({', '.join(sorted(set(known) ^ documented)) or ', '.join(odd_own)})")
    for f in files:
        for event in _ours(f):
            if event in registered:
                continue
            if event in hooks_settings.NEVER_INSTALLED:
                fails.append(f"{f.display} has an mpmd entry under {event}: a hook there "
                             "replaces Claude Code's own git worktree handling")
            elif event not in documented:
                warns.append(f"{f.display} has an mpmd entry under {event}, which is not one "
                             f"of the {len(documented)} documented event types (Claude Code "
                             "may warn about it every session)")
            else:
                warns.append(f"{f.display} has an mpmd entry under {event}, which mpmd no "
                             "longer registers")
            fixes.append(_fix_for(f, files))
    if fails or warns:
        return Check(name, FAIL if fails else WARN, "; ".join(fails + warns),
                     "; ".join(dict.fromkeys(fixes)) or "report it: this is mpmd's mistake")
    skipped = [e for e in _ordered(sorted(documented)) if e not in registered]
    return Check(name, OK, f"mpmd registers {len(registered)} of the {len(documented)} "
                 f"documented event types (not {', '.join(skipped)}) and nothing else")


def check_hook_copy(facts: HookCopyFacts, display: str) -> Check:
    name = "hook copy"
    if not facts.exists:
        return Check(name, WARN, f"{display} does not exist yet (made by install-hooks and "
                     "mpmd start)", "mpmd install-hooks")
    if facts.differs:
        return Check(name, WARN, f"{display} is older than the installed mpmd "
                     f"({', '.join(facts.differs)} differ{'s' if len(facts.differs) == 1 else ''})",
                     "mpmd install-hooks (mpmd start refreshes it too)")
    return Check(name, OK, f"{display} matches the installed mpmd")


def check_spool(spool: SpoolFacts, running: bool, log: str = "the log") -> Check:
    name = "spool backlog"
    n = spool.pending
    if n == 0:
        return Check(name, OK, "empty")
    events = "1 event" if n == 1 else f"{n} events"
    age = f", oldest {duration(spool.oldest_age_s)} old" if spool.oldest_age_s is not None else ""
    if not running:
        return Check(name, WARN, f"{events} waiting{age} (taken in when mpmd starts)", START)
    if spool.oldest_age_s is not None and spool.oldest_age_s > SPOOL_STUCK_S:
        return Check(name, FAIL, f"{events} waiting{age}, not taken in although mpmd runs "
                     "(ring full, or the journal cannot write?)",
                     f"see {log}; check ring usage and journal disk space")
    if n > SPOOL_WARN_COUNT:
        return Check(name, WARN, f"{events} waiting{age}: being taken in",
                     f"none needed if it shrinks; otherwise see {log}")
    return Check(name, OK, f"{events} waiting{age}, being taken in")


def check_ring(status: Status | None, log: str = "the log") -> Check:
    name = "ring usage"
    if status is None or not status.running:
        return Check(name, SKIP, "mpmd is not running")
    used = status.ring_used_bytes
    capacity = status.ring_capacity_bytes
    if used is None or capacity is None or capacity <= 0:
        return Check(name, SKIP, "not checked: the daemon did not report it")
    percent = 100 * used / capacity
    text = f"{percent:.0f} % used ({size(used)} of {size(capacity)})"
    if percent > RING_WARN_PERCENT:
        return Check(name, WARN, f"{text}: the journal is not keeping up; when it is full, "
                     "hooks spool to disk", f"see {log} and the journal disk space check; a "
                     "bigger ring: ring_bytes in config.toml")
    return Check(name, OK, text)


def check_tasks(status: Status | None, log: str = "the log") -> Check:
    """The daemon's background tasks (journal, spool, broadcast, maintenance) are started
    again when they fail; a failure is a bug worth reporting, and a repeating one means
    what that task keeps (the journal, the viewers) lags."""
    name = "background tasks"
    if status is None or not status.running:
        return Check(name, SKIP, "mpmd is not running")
    failed = status.task_failures
    if not failed:
        return Check(name, OK, "none has failed since start")
    told = "; ".join(f"{task} failed {info.failures} times (last: "
                     f"{info.last_error}, {info.at})"
                     for task, info in sorted(failed.items()))
    return Check(name, WARN, f"{told}; each was started again",
                 f"see {log} for the traceback and please report it; {RESTART} clears it")


def check_transcripts(status: Status | None) -> Check:
    """The transcript follower (docs/transcripts.md): the transcripts it was told of but
    cannot read, and a [prices] table it refused. Neither stops anything: tokens and cost
    of those sessions are missing, or priced by the shipped table."""
    name = "transcripts"
    if status is None or not status.running:
        return Check(name, SKIP, "mpmd is not running")
    t = status.transcripts
    if t is None:
        return Check(name, SKIP, "this daemon does not follow transcripts")
    if t.prices_error:
        return Check(name, WARN, f"[prices] in config.toml not used: {t.prices_error}",
                     "fix the table (docs/transcripts.md, Cost); the shipped prices are used")
    if t.problems:
        shown = "; ".join(f"{path}: {why}" for path, why in sorted(t.problems.items())[:3])
        more = f" (and {len(t.problems) - 3} more)" if len(t.problems) > 3 else ""
        return Check(name, WARN, f"{len(t.problems)} not read: {shown}{more}",
                     "a transcript outside the folders mpmd reads is skipped on purpose; "
                     "set transcript_roots to add its folder (docs/transcripts.md)")
    return Check(name, OK, f"following {t.followed}; {t.usage} responses and "
                 f"{t.cost_reports} cost reports read")


def check_disk(disk: DiskFacts | None, journal_bytes: int, retention_bytes: int | None,
               segment_bytes: int, journal_errors: int = 0, log: str = "the log") -> Check:
    """Free space on the journal's filesystem against what the journal may still grow by
    before retention trims it (its limit plus one segment)."""
    name = "journal disk space"
    if disk is None:
        return Check(name, SKIP, "not checked: cannot read the journal's filesystem")
    free = disk.free_bytes
    if free < NEARLY_FULL_BYTES:
        return Check(name, FAIL, f"only {size(free)} free on the journal's filesystem: at a "
                     "full disk the journal stops and hooks spool (to the same disk)",
                     "free space, or lower retention_bytes in config.toml")
    text = f"{size(free)} free, journal {size(journal_bytes)}"
    if journal_errors:
        return Check(name, WARN, f"{text}, but {journal_errors} journal write errors since "
                     "mpmd started", f"see {log}")
    if retention_bytes is None or retention_bytes <= 0:
        return Check(name, WARN, f"{text}; no size limit: the journal grows until the disk "
                     "is full", "set retention_bytes in config.toml")
    room = max(0, retention_bytes + segment_bytes - journal_bytes)
    if free < room:
        return Check(name, WARN, f"{text}: it may grow by {size(room)} before retention "
                     f"trims it (limit {size(retention_bytes)})",
                     f"free space, or retention_bytes below {size(journal_bytes + free)} "
                     "in config.toml")
    return Check(name, OK, f"{text} (limit {size(retention_bytes)})")


def check_retention(retention_days: float | None, retention_bytes: int | None) -> Check:
    name = "retention"
    days = retention_days if retention_days and retention_days > 0 else None
    limit = retention_bytes if retention_bytes and retention_bytes > 0 else None
    if days is None and limit is None:
        return Check(name, WARN, "no limit: closed journal segments are never deleted",
                     "set retention_days or retention_bytes in config.toml")
    parts = []
    if days is not None:
        parts.append(f"older than {days:g} days")
    if limit is not None:
        parts.append(f"past {size(limit)} in all")
    return Check(name, OK, "closed segments deleted when " + " or ".join(parts))


def check_index(status: Status | None, log: str = "the log") -> Check:
    name = "search index"
    if status is None or not status.running:
        return Check(name, SKIP, "mpmd is not running")
    behind = max(0, (status.journal_last_seq or 0) - (status.index_last_seq or 0))
    where = "up to date" if not behind else f"{behind} events behind the journal"
    pid = status.index_worker_pid
    if pid is None:
        restarts = status.counters.get(Count.INDEX_WORKER_RESTARTS, 0)
        return Check(name, FAIL, f"{where}; its worker is not running (restarted "
                     f"{restarts} times): searches miss new events",
                     f"see {log}; {RESTART} starts it again, mpmd reindex rebuilds the index")
    if behind > INDEX_BEHIND_WARN:
        return Check(name, WARN, f"{where} (worker pid {pid}): searches miss recent events "
                     "until it catches up", f"none needed if it shrinks; otherwise see {log}")
    return Check(name, OK, f"{where} (worker pid {pid})")


def check_viewer(configured: int, status: Status | None,
                 probe: PortProbe | None) -> Check:
    name = "viewer port"
    running = status is not None and status.running
    holder = f" by {probe.holder}" if probe and probe.holder else " by another process"
    if running and status is not None:
        port = status.viewer_port
        if not status.viewer_url or port is None:
            return Check(name, WARN, f"the viewer is not available: "
                         f"{status.viewer_error or 'not started'}",
                         "set viewer_port in config.toml to a free port, then " + RESTART)
        if configured == 0:
            return Check(name, OK, f"any free port (now 127.0.0.1:{port})")
        if port == configured:
            return Check(name, OK, f"127.0.0.1:{port}")
        if probe is not None and not probe.free and probe.error is None:
            return Check(name, WARN, f"port {configured} is taken{holder}: the viewer is on "
                         f"{port} instead (mpmd open knows)",
                         "free the port, or set viewer_port in config.toml")
        return Check(name, WARN, f"the viewer is on {port}: port {configured} was taken when "
                     "mpmd started", f"{RESTART} to move it back to {configured}")
    if configured == 0:
        return Check(name, OK, "any free port (mpmd is not running)")
    if probe is None or probe.error is not None:
        why = probe.error if probe is not None else "not probed"
        return Check(name, SKIP, f"cannot tell whether port {configured} is free ({why})")
    if probe.free:
        return Check(name, OK, f"port {configured} is free for the viewer")
    last = min(65535, configured + VIEWER_PORT_TRIES - 1)
    return Check(name, WARN, f"port {configured} is taken{holder}: the viewer will take the "
                 f"next free one up to {last}", "free the port, or set viewer_port in "
                 "config.toml")


def check_policy(policy: Mapping[str, Any] | None, home: str) -> Check:
    """The permission policy (docs/policy.md): none (observe only), active, or invalid."""
    name = "policy"
    if policy is None:
        return Check(name, SKIP, "could not be read")
    where = tilde(str(policy.get("file", "policy.toml")), home)
    state = policy.get("state")
    if state == "active":
        return Check(name, OK, f"{policy.get('rules', 0)} rules in {where}")
    if state == "none":
        return Check(name, OK, "none: mpmd only observes (no decisions)")
    return Check(name, FAIL, f"{where} is {state}, so the hooks only observe: "
                 f"{policy.get('error')}", "mpmd policy check (it names the rule and field)")


FORWARD_BACKLOG_WARN = 10_000


def check_forwarders(problems: Sequence[str], status: Status | None) -> Check:
    """The forwarders of config.toml (docs/scaling.md): their configuration, and with the
    daemon running, their state and backlog."""
    name = "forwarders"
    if problems:
        return Check(name, FAIL, "; ".join(problems),
                     "correct the [[forward]] table named, then restart mpmd")
    if status is None:
        return Check(name, SKIP, "mpmd is not running")
    forward = status.forward
    if not forward:
        return Check(name, OK, "none configured")
    behind = [f"{n} ({f.state}: {f.last_error or 'backlog ' + str(f.backlog)})"
              for n, f in sorted(forward.items())
              if f.state != "ok" or (f.backlog or 0) > FORWARD_BACKLOG_WARN]
    if behind:
        return Check(name, WARN, "not keeping up: " + "; ".join(behind),
                     "check the receiver; nothing is lost while the journal keeps the events")
    return Check(name, OK, ", ".join(f"{n} up to date" if not f.backlog
                                     else f"{n} {f.backlog} behind"
                                     for n, f in sorted(forward.items())))


def check_notify(problems: Sequence[str], status: Status | None) -> Check:
    """The notification rules of config.toml (docs/notify.md): their tables and targets,
    and with the daemon running, each target's state."""
    name = "notifications"
    if problems:
        return Check(name, FAIL, "; ".join(problems),
                     "correct the [[notify]] table named (docs/notify.md), then restart mpmd")
    if status is None:
        return Check(name, SKIP, "mpmd is not running")
    n = status.notify
    if n is None:
        return Check(name, OK, "none configured (mpmd notify init)")
    failing = [f"{t_name} ({t.url}): {t.last_error or t.state}, {t.queued} waiting"
               for t_name, t in sorted(n.targets.items()) if t.state != "ok"]
    dropped = [f"{t_name} dropped {t.dropped}" for t_name, t in sorted(n.targets.items())
               if t.dropped]
    if not n.running and n.worker_pid is None:
        return Check(name, FAIL, f"the notifier is not running ({n.last_error or 'see the log'})",
                     "see the log; the daemon starts it again")
    if failing or dropped:
        return Check(name, WARN, "; ".join(failing + dropped),
                     "check the target (mpmd notify test); what waits is sent once it answers")
    return Check(name, OK, f"{len(n.rules)} rules, {len(n.targets)} targets, "
                           f"{sum(t.sent for t in n.targets.values())} sent")


def run_checks(facts: Facts) -> list[Check]:
    s = facts.settings
    home = facts.home
    status = facts.status
    running = status is not None and status.running
    log = tilde(s.log_path, home)
    checks = [
        check_config(facts.config_error, s.sources, home),
        check_daemon(status, facts.hung, facts.socket_kind, facts.installed_version,
                     tilde(s.socket_path, home)),
        check_permissions(facts.modes, facts.uid),
    ]
    if facts.target is not None:
        checks += check_hook_entries(facts.settings_files, facts.target, facts.paths, home,
                                     facts.endpoint)
        checks.append(check_duplicates(facts.settings_files))
        checks.append(check_event_names(facts.settings_files))
        checks.append(check_transport(facts.settings_files, facts.claude, facts.endpoint,
                                      status, home))
    checks.append(check_hook_copy(facts.hook_copy, tilde(s.hook_copy_dir / "mpm_hook", home)))
    errors = status.counters.get(Count.JOURNAL_ERRORS, 0) if status is not None else 0
    journal_bytes = status.journal_bytes if running and status is not None else None
    checks += [
        check_spool(facts.spool, running, log),
        check_ring(status, log),
        check_tasks(status, log),
        check_transcripts(status),
        check_disk(facts.disk, int(journal_bytes if isinstance(journal_bytes, int)
                                   else facts.journal_bytes),
                   s.retention_bytes, s.segment_bytes, errors, log),
        check_retention(s.retention_days, s.retention_bytes),
        check_index(status, log),
        check_viewer(s.viewer_port, status, facts.port_probe),
        check_policy(facts.policy, home),
        check_forwarders(facts.forward_problems, status if running else None),
        check_notify(facts.notify_problems, status if running else None),
    ]
    return checks


# ---------------------------------------------------------------------------------------------
# Gathering the facts (all the I/O)


def settings_files(user_file: Path, project_dir: Path) -> list[tuple[str, Path]]:
    """(scope, path) of the files Claude Code reads hooks from, user file first. The project
    files are left out when they are the user file (a project in the home folder)."""
    project = project_dir / ".claude"
    found = [("user", user_file)]
    for scope, path in (("project", project / "settings.json"),
                        ("local", project / "settings.local.json")):
        if os.path.realpath(path) != os.path.realpath(user_file):
            found.append((scope, path))
    return found


def _display(path: Path, home: str, cwd: Path) -> str:
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return tilde(path, home)


def read_settings_file(scope: str, path: Path, display: str) -> SettingsFile:
    try:
        if not path.exists():
            return SettingsFile(scope, str(path), display)
        data = hooks_settings.load_settings(path)
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except hooks_settings.SettingsError as exc:
        text = str(exc)
        if text.startswith(str(path)):
            text = text[len(str(path)):].lstrip(":").strip()
        return SettingsFile(scope, str(path), display, error=f"cannot read it: {text}")
    except OSError as exc:
        return SettingsFile(scope, str(path), display, error=f"cannot read it: {exc}")
    return SettingsFile(scope, str(path), display, data=data, mode=mode)


def _mode(path: Path, display: str, rule: str, follow: bool = True) -> PathMode | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode) and not follow:
        return None  # a link's own mode means nothing, and chmod would change its target
    if stat.S_ISLNK(st.st_mode):
        try:
            st = os.stat(path)
        except OSError:
            return None
    kind = "dir" if stat.S_ISDIR(st.st_mode) else \
        "socket" if stat.S_ISSOCK(st.st_mode) else "file"
    return PathMode(display, kind, stat.S_IMODE(st.st_mode), st.st_uid, rule)


def gather_modes(s: config.Settings, home: str) -> list[PathMode]:
    """The folders and files that must be owner-only (or not writable by others)."""
    return [m for _path, m in _own_modes(s, home)]


def _own_modes(s: config.Settings, home: str | None = None) -> list[tuple[Path, PathMode]]:
    from mpmd.serve import access

    home = home if home is not None else os.path.expanduser("~")
    private_dirs = [s.runtime_dir, s.state_dir, s.journal_dir, s.spool_dir, s.log_dir,
                    s.rejected_dir]
    private_files = [s.socket_path, s.control_path, s.ring_path, s.lock_path,
                     s.state_dir / access.TOKEN_FILE_NAME, s.index_path,
                     Path(f"{s.index_path}-wal"), Path(f"{s.index_path}-shm"), s.log_path,
                     s.log_dir / "hook.log"]
    with contextlib.suppress(OSError):
        private_files += sorted(p for p in s.journal_dir.iterdir() if p.is_file())
    no_write = [s.config_dir, s.config_path, s.config_dir / "policy.toml", s.hook_copy_dir,
                s.hook_copy_dir / "mpm_hook"]
    # What Claude Code runs at every event: one file others can change is theirs to run.
    hook_copy: list[Path] = []
    for folder in (s.hook_copy_dir / "mpm_hook", s.hook_copy_dir / "mpm_hook" / "__pycache__"):
        with contextlib.suppress(OSError):
            hook_copy += sorted(folder.iterdir())
    tree = tilde(s.hook_copy_dir, home)
    seen: dict[str, tuple[Path, PathMode]] = {}
    for paths_, rule in ((private_dirs, "private"), (private_files, "private"),
                         (no_write, "no-write")):
        for path in paths_:
            key = os.path.normpath(path)
            if key in seen:
                continue  # MPMD_HOME: the same folder in two roles keeps the stricter rule
            m = _mode(path, tilde(path, home), rule)
            if m is not None:
                seen[key] = (Path(path), m)
    for path in hook_copy:
        key = os.path.normpath(path)
        m = _mode(path, tilde(path, home), "no-write", follow=False)
        if m is not None and key not in seen:
            seen[key] = (path, dataclasses.replace(m, tree=tree))
    return list(seen.values())


def repair_modes(s: config.Settings) -> list[str]:
    """Make mpmd's own folders and files owner-only again (what the permissions check
    flags; `mpmd install-hooks` calls it). Only files of this user; returns what changed."""
    changed = []
    for path, m in _own_modes(s):
        if m.uid != os.getuid():
            continue  # not ours to change: the check says so, with a chown
        # private: nothing for group or others (0755 -> 0700, 0644 -> 0600); no-write:
        # nobody else may write (code and configuration others could change).
        new = m.mode & ~0o077 if m.rule == "private" else m.mode & ~0o022
        if new != m.mode:
            with contextlib.suppress(OSError):
                os.chmod(path, new)
                changed.append(f"{m.display} {m.mode:04o} -> {new:04o}")
    return changed


def gather_spool(folder: Path, now: float) -> SpoolFacts:
    pending, oldest = 0, None
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return SpoolFacts()
    for entry in entries:
        if entry.name.endswith(".frame"):
            pending += 1
            with contextlib.suppress(OSError):
                mtime = entry.stat().st_mtime
                oldest = mtime if oldest is None else min(oldest, mtime)
    return SpoolFacts(pending, None if oldest is None else max(0.0, now - oldest))


def gather_disk(folder: Path) -> DiskFacts | None:
    path = folder
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return DiskFacts(st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize)


def journal_size(folder: Path) -> int:
    total = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if ".jsonl" in entry.name:
                with contextlib.suppress(OSError):
                    total += entry.stat().st_size
    return total


def gather_hook_copy(copy_dir: Path, source_dir: Path) -> HookCopyFacts:
    if not (copy_dir / "__main__.py").is_file():
        return HookCopyFacts(exists=False)
    differs = []
    for path in sorted(copy_dir.glob("*.py")):
        source = source_dir / path.name
        try:
            if source.is_file() and source.read_bytes() != path.read_bytes():
                differs.append(path.name)
        except OSError:
            differs.append(path.name)
    return HookCopyFacts(exists=True, differs=tuple(differs))


def probe_port(port: int) -> PortProbe:
    """Whether 127.0.0.1:port could be listened on now (as the viewer would)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return PortProbe(port, free=False, holder=port_holder(port))
        return PortProbe(port, free=False, error=exc.strerror or str(exc))
    finally:
        sock.close()
    return PortProbe(port, free=True)


# Local addresses in /proc/net/tcp{,6} whose listener keeps 127.0.0.1:port from the viewer:
# 127.0.0.1, 0.0.0.0, ::, and ::ffff:127.0.0.1 (32-bit words in host order, as the kernel
# prints them; little-endian here).
_LOOPBACK_CLASHES = frozenset({"0100007F", "00000000", "0" * 32,
                               "0000000000000000FFFF00000100007F"})


def port_holder(port: int) -> str | None:
    """'pid N (name)' of the process listening on ``port``, where /proc shows it (Linux, and
    only processes whose descriptors we may read); None otherwise."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) <= 9 or fields[3] != "0A":  # 0A: LISTEN
                continue
            address, _, hex_port = fields[1].partition(":")
            if int(hex_port, 16) == port and address in _LOOPBACK_CLASHES:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    comm = Path(f"/proc/{pid}/comm").read_text().strip()
                    return f"pid {pid} ({comm})"
            except OSError:
                continue
    return None


def _socket_kind(path: Path) -> str:
    try:
        return "socket" if stat.S_ISSOCK(os.stat(path).st_mode) else "other"
    except OSError:
        return "missing"


def ask_status(s: config.Settings) -> tuple[Status | None, bool]:
    from mpmd.control import client

    try:
        answer = client.status(s)
        if answer.running:
            return answer, False
    except (client.NotRunning, OSError, ValueError):
        pass
    return None, client.lock_holder(s)


def gather(s: config.Settings, *, user_file: Path, project_dir: Path, hook_command: str,
           config_error: str | None = None, home: str | None = None,
           cwd: Path | None = None) -> Facts:
    """Everything the checks need, read once. ``hook_command`` is what install-hooks would
    write now (mpmd.ops.hook_install.hook_command)."""
    import mpm_hook
    from mpmd import __version__

    home = home if home is not None else os.path.expanduser("~")
    cwd = cwd if cwd is not None else Path.cwd()
    status, hung = ask_status(s)
    files = tuple(
        read_settings_file(scope, path, tilde(path, home) if scope == "user"
                           else _display(path.absolute(), home, cwd))
        for scope, path in settings_files(user_file, project_dir.absolute())
    )
    wanted = {p for f in files for cmds in _ours(f).values() for c in cmds
              if hooks_settings.url_port(c) is None for p in command_paths(c)}
    running = status is not None
    probe = None
    if s.viewer_port and not (running and status and status.viewer_port == s.viewer_port):
        probe = probe_port(s.viewer_port)
    return Facts(
        settings=s,
        home=home,
        uid=os.getuid(),
        installed_version=__version__,
        status=status,
        hung=hung,
        socket_kind=_socket_kind(s.socket_path),
        config_error=config_error,
        modes=tuple(gather_modes(s, home)),
        settings_files=files,
        target=HookTarget(hook_command, str(s.runtime_dir), str(s.state_dir)),
        paths={p: path_state(p) for p in sorted(wanted)},
        hook_copy=gather_hook_copy(s.hook_copy_dir / "mpm_hook",
                                   Path(mpm_hook.__file__).parent),
        spool=gather_spool(s.spool_dir, time.time()),
        disk=gather_disk(s.journal_dir),
        journal_bytes=journal_size(s.journal_dir),
        port_probe=probe,
        policy=_policy(s),
        forward_problems=tuple(_forward_problems(s)),
        notify_problems=tuple(_notify_problems(s)),
        claude=hooks_settings.find_claude(home=home),
        endpoint=hooks_settings.read_endpoint(s, status),
    )


def _forward_problems(s: config.Settings) -> list[str]:
    from mpmd.forward.runner import problems

    return problems(s)


def _notify_problems(s: config.Settings) -> list[str]:
    from mpmd.notify.deliver import problems

    return problems(s)


def _policy(s: config.Settings) -> Mapping[str, Any] | None:
    from mpmd.ops.policy import describe

    return describe(s)  # compiles a changed policy.toml, as the daemon would


def default_settings() -> config.Settings:
    """Settings with every tunable at its default, for when config.load() refuses the
    configuration (doctor still checks the rest)."""
    runtime_dir, state_dir = config.default_dirs()
    return config.Settings(runtime_dir=Path(runtime_dir), state_dir=Path(state_dir),
                           config_dir=Path(config.default_config_dir()))


def summary(checks: Sequence[Check]) -> str:
    counts = {level: sum(1 for c in checks if c.level == level) for level in LEVELS}
    if not counts[FAIL] and not counts[WARN]:
        return f"all {counts[OK]} checks OK" + (f" ({counts[SKIP]} skipped)"
                                                 if counts[SKIP] else "")
    parts = [f"{counts[level]} {level}" for level in (FAIL, WARN, SKIP) if counts[level]]
    return f"{', '.join(parts)} of {len(checks)} checks"
