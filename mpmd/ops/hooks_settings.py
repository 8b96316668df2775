"""Add and remove mpmd's hooks in a Claude Code settings file, and choose their transport.

Claude Code reads hooks from ``~/.claude/settings.json``, ``.claude/settings.json`` and
``.claude/settings.local.json``, in this shape::

    {"hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command",
                                                             "command": "...",
                                                             "timeout": 30}]}],
               "Stop": [{"hooks": [{"type": "http", "url": "http://127.0.0.1:7720/hook",
                                    "onFailure": "continue", "timeout": 10,
                                    "headers": {...}}]}]},
     "permissions": {...}, "model": "...", ...}

mpmd writes one of two kinds of entry per event (:func:`our_group`): a command entry (Claude
Code runs mpm-hook, which sends the event over the Unix socket, or spools it) or an http
entry (Claude Code POSTs the event to the daemon's endpoint itself, with the bearer token in
a header: docs/security.md). Events whose hooks Claude Code runs as commands only
(SessionStart, Setup: ``command_hooks_only`` in the catalogue, mpmd.model.events) always get the
command entry; next to http entries, SessionStart's starts the daemon when it finds none
(``--start-daemon``), since http hooks cannot spool. :func:`choose_transport` decides which
kind, from the installed Claude Code's version and the daemon's endpoint.

The file belongs to the user: we own only the hook entries that are ours (see
:func:`is_ours`: a command that runs our hook, or an http entry that posts to the daemon's
``/hook`` on 127.0.0.1) and touch nothing else. Every rule below follows from that:

* :func:`install` first removes every entry of ours it finds (stale paths left by an older
  install or a Python upgrade, the other transport's entries, another port or token,
  duplicates, entries sharing a group with the user's hooks, entries under events we no
  longer register), then adds exactly one group of ours per event, where the first entry
  of ours was (so an upgrade from command to http, and back, happens in place; a new event
  gets it at the end). An event that already holds exactly that group, and no other entry
  of ours, is left alone, so installing twice changes nothing.
* :func:`uninstall` removes every entry of ours, of both kinds, and nothing else.
* A group emptied by removing our entry is dropped, and so is an event key whose list we
  emptied, and (uninstall) the ``hooks`` key when we emptied it. Containers the user left
  empty themselves stay as they are.
* Both return a new dict and never mutate their argument.

The file I/O refuses to rewrite what it cannot parse, writes atomically, keeps the file's
permission bits (and owner, when running as root) and a one-deep backup, and writes through
a symlink instead of replacing it (dotfiles managers often link ``~/.claude/settings.json``).
A file that holds the http token is made owner-only (``private``: group and other bits
cleared, its backup too), since the token is written into it literally.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mpm_hook.hook import START_FLAG
from mpmd.durable import make_owner_only_folders, write_atomic
from mpmd.errors import SettingsError
from mpmd.model.events import CLAUDE_CODE_EVENTS
from mpmd.status import Status

# Every hook event Claude Code knows, in its own order, from the one catalogue (mpmd.model.events).
# Registering a name the running Claude Code does not know can make it warn about the settings
# file every session, so the CLI may pass a subset to install().
KNOWN_EVENTS: tuple[str, ...] = tuple(e.name for e in CLAUDE_CODE_EVENTS)

# Never registered (the catalogue says why: WorktreeCreate / WorktreeRemove hooks replace
# Claude Code's own git worktree handling): install() refuses them and removes any entry of
# ours found under them.
NEVER_INSTALLED: frozenset[str] = frozenset(e.name for e in CLAUDE_CODE_EVENTS if not e.installed)

INSTALLED_EVENTS: tuple[str, ...] = tuple(e.name for e in CLAUDE_CODE_EVENTS if e.installed)

# Events whose groups take a tool-name matcher; ours matches every tool.
TOOL_EVENTS: frozenset[str] = frozenset(e.name for e in CLAUDE_CODE_EVENTS if e.tool_matcher)

# Events whose hooks Claude Code runs only as commands (an http hook there never fires,
# checked with 2.1.328): they get the command entry whatever the transport.
COMMAND_ONLY_EVENTS: frozenset[str] = frozenset(
    e.name for e in CLAUDE_CODE_EVENTS if e.command_hooks_only)

# Our command always runs ``... python -I -S <dir>/mpm_hook --runtime ... --state ...`` or the
# ``mpm-hook`` console script; either name in a command marks the entry as ours.
MARKER = "mpm_hook"
CONSOLE_MARKER = "mpm-hook"
# An http entry is ours when it posts to the daemon's endpoint: /hook on 127.0.0.1, any port
# (an entry left with an older port is still ours, to replace). Exactly the form we write.
HTTP_URL_PREFIX = "http://127.0.0.1:"
HTTP_PATH = "/hook"

COMMAND = "command"
HTTP = "http"
TRANSPORTS = ("auto", HTTP, COMMAND)
# http hooks cannot spool while the daemon is down: with them, the SessionStart command
# starts the daemon when it finds none (mpm_hook.hook, START_FLAG), so that the session's
# http hooks find it.
STARTING_EVENT = "SessionStart"

BACKUP_SUFFIX = ".mpmd-backup"
NEW_FILE_MODE = 0o600


@dataclass(frozen=True)
class Changes:
    """What install()/uninstall() did, by event name, in the order the events were met.

    ``added``: events that had no entry of ours and now have one. ``updated``: events that
    had entries of ours and now have the one current group instead (stale path, duplicate,
    other timeout, the other transport, another port or token, shared group). ``removed``:
    events that no longer have any entry of ours. ``backup``: set by :func:`apply` to the
    backup it wrote, if any. ``made_private``: set by :func:`apply` to the file's mode
    before, when it made it owner-only.
    """

    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    backup: Path | None = None
    made_private: int | None = None

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


@dataclass(frozen=True)
class HttpHook:
    """Where our http entries post, and the token they send (written literally into the
    settings file: docs/security.md says why)."""

    port: int
    token: str

    def __post_init__(self) -> None:
        if isinstance(self.port, bool) or not isinstance(self.port, int) \
                or not 0 < self.port < 65536:
            raise ValueError("port must be a TCP port (1-65535)")
        if not isinstance(self.token, str) or not self.token or not all(
                c.isascii() and (c.isalnum() or c in "-._~+/=") for c in self.token):
            raise ValueError("token must be a non-empty bearer token (RFC 6750 token68)")

    @property
    def url(self) -> str:
        return http_url(self.port)

    @property
    def authorization(self) -> str:
        return f"Bearer {self.token}"


def http_url(port: int) -> str:
    return f"{HTTP_URL_PREFIX}{port}{HTTP_PATH}"


def url_port(url: Any) -> int | None:
    """The port of one of our endpoint URLs (``http://127.0.0.1:<port>/hook``), else None."""
    if not isinstance(url, str) or not url.startswith(HTTP_URL_PREFIX) \
            or not url.endswith(HTTP_PATH):
        return None
    digits = url[len(HTTP_URL_PREFIX):-len(HTTP_PATH)]
    if not digits.isascii() or not digits.isdigit() or len(digits) > 5:
        return None
    port = int(digits)
    return port if 0 < port < 65536 else None


# ---------------------------------------------------------------------------------------------
# Pure merge logic


def is_ours(hook_entry: Any) -> bool:
    """True iff this hook entry is mpmd's: a command entry (``{"type": "command",
    "command": ...}``) that runs our hook, or an http entry (``{"type": "http", "url":
    ...}``) that posts to the daemon's endpoint, ``http://127.0.0.1:<port>/hook``."""
    if not isinstance(hook_entry, Mapping):
        return False
    if hook_entry.get("type") == HTTP:
        return url_port(hook_entry.get("url")) is not None
    command = hook_entry.get("command")
    return isinstance(command, str) and (MARKER in command or CONSOLE_MARKER in command)


def entry_kind(hook_entry: Mapping[str, Any]) -> str:
    """``http`` or ``command``, for an entry of ours."""
    return HTTP if hook_entry.get("type") == HTTP else COMMAND


def entry_key(hook_entry: Mapping[str, Any]) -> str:
    """What tells two entries of ours apart: the command, or the url of an http entry."""
    return str(hook_entry["url"] if entry_kind(hook_entry) == HTTP else hook_entry["command"])


def entry_token(hook_entry: Mapping[str, Any]) -> str | None:
    """The bearer token an http entry sends: the Authorization header's value after
    ``Bearer `` (a ``$VAR`` included as written); None when it sends none."""
    headers = hook_entry.get("headers")
    if not isinstance(headers, Mapping):
        return None
    value = next((v for k, v in headers.items()
                  if isinstance(k, str) and k.lower() == "authorization"), None)
    if not isinstance(value, str) or not value.startswith("Bearer "):
        return None
    return value[len("Bearer "):].strip() or None


# Events whose hook may hold the call for a person's answer in the viewer (a policy `remote`
# rule waits up to 590 s, mpm_hook.policy_compile.MAX_TIMEOUT_S, and the hook 5 s more):
# Claude Code kills a hook at its timeout (checked with 2.1.328: cancelled at 10.0 s), which
# would cut every wait to the observer's timeout. The hook bounds its own waits; over http
# the daemon answers within the rule's limit, and Claude Code's timeout is the same 600 s.
HOLDING_EVENTS: frozenset[str] = frozenset({"PreToolUse", "PermissionRequest"})
HOLD_TIMEOUT_S = 600


def event_command(event: str, command: str, with_http: bool) -> str:
    """The command of our entry under ``event``: ``command``, and for SessionStart next to
    http entries, with the flag that makes it start a daemon it does not find."""
    if with_http and event == STARTING_EVENT and not command.endswith(" " + START_FLAG):
        return f"{command} {START_FLAG}"
    return command


def base_command(command: str) -> str:
    """``command`` without what :func:`event_command` adds."""
    return command.removesuffix(" " + START_FLAG)


# What Claude Code does when an http hook fails (refused, 4xx/5xx, no answer in time): with
# "continue" the tool call goes ahead as without the hook, with "block" it is denied
# (tests/test_claude_http_failures.py). mpmd down or slow must never deny a tool call.
HTTP_ON_FAILURE = "continue"


def our_group(event: str, command: str, timeout_s: int = 10,
              http: HttpHook | None = None) -> dict[str, Any]:
    """The one group install() puts under ``event``: the http entry when ``http`` is given
    and Claude Code runs http hooks for the event, else the command entry (SessionStart's
    starting the daemon when ``http`` is given: :func:`event_command`)."""
    if event in HOLDING_EVENTS:
        timeout_s = max(timeout_s, HOLD_TIMEOUT_S)
    entry: dict[str, Any]
    if http is not None and event not in COMMAND_ONLY_EVENTS:
        entry = {"type": HTTP, "url": http.url, "onFailure": HTTP_ON_FAILURE,
                 "timeout": timeout_s, "headers": {"Authorization": http.authorization}}
    else:
        entry = {"type": COMMAND, "command": event_command(event, command, http is not None),
                 "timeout": timeout_s}
    if event in TOOL_EVENTS:
        return {"matcher": "*", "hooks": [entry]}
    return {"hooks": [entry]}


def find_ours(settings: Mapping[str, Any]) -> dict[str, list[str]]:
    """Event -> the keys (:func:`entry_key`: command or url) of our entries under it, for
    events that have any."""
    return {event: [entry_key(h) for _g, h in found]
            for event, found in find_our_entries(settings).items()}


def find_our_entries(settings: Mapping[str, Any]
                     ) -> dict[str, list[tuple[Mapping[str, Any], Mapping[str, Any]]]]:
    """Event -> (group, entry) of each entry of ours under it, for events that have any."""
    found: dict[str, list[tuple[Mapping[str, Any], Mapping[str, Any]]]] = {}
    for event, groups in _event_lists(settings):
        pairs = [(g, h) for g in groups for h in _group_hooks(g) or () if is_ours(h)]
        if pairs:
            found[event] = pairs
    return found


def install(
    settings: Mapping[str, Any],
    command: str,
    events: Iterable[str] = INSTALLED_EVENTS,
    timeout_s: int = 10,
    *,
    http: HttpHook | None = None,
) -> tuple[dict[str, Any], Changes]:
    """A copy of ``settings`` with exactly one group of ours under each of ``events``.

    With ``http``, events Claude Code runs http hooks for get the http entry, the others
    (COMMAND_ONLY_EVENTS) the command entry; without, every event gets the command entry.
    Entries of ours under other events are removed. ``command`` must be recognisable by
    :func:`is_ours` (otherwise a second install could not find the first one), ``events``
    must be a subset of INSTALLED_EVENTS. Raises SettingsError if the ``hooks`` value, or the
    value of an event we must write to, is not of the JSON type Claude Code expects.
    """
    if not isinstance(settings, Mapping):
        raise TypeError("settings must be a dict")
    if not isinstance(command, str) or not is_ours({"command": command}):
        raise ValueError(f"hook command must contain {MARKER!r} or {CONSOLE_MARKER!r}")
    command = base_command(command)
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int) or timeout_s <= 0:
        raise ValueError("timeout_s must be a positive int")
    if http is not None and not isinstance(http, HttpHook):
        raise TypeError("http must be an HttpHook")
    if isinstance(events, str):
        raise TypeError("events must be an iterable of event names, not a string")
    wanted = tuple(dict.fromkeys(events))
    bad = [e for e in wanted if e not in INSTALLED_EVENTS]
    if bad:
        raise ValueError(f"cannot install hooks for events: {', '.join(bad)}")

    result = copy.deepcopy(dict(settings))
    hooks = result.get("hooks")
    if hooks is None:
        hooks = {}
    elif not isinstance(hooks, dict):
        raise SettingsError(f'"hooks" is a {type(hooks).__name__}, not an object')

    added: list[str] = []
    updated: list[str] = []
    removed: list[str] = []
    for event in list(hooks):
        groups = hooks[event]
        if not isinstance(groups, list):
            if event in wanted:
                raise SettingsError(f'"hooks.{event}" is a {type(groups).__name__}, not a list')
            continue  # nothing of ours can be in there
        stripped, n_ours, slot = _strip_ours(groups)
        if event in wanted:
            desired = our_group(event, command, timeout_s, http)
            if n_ours == 1 and desired in groups:
                continue  # up to date, and left where it is
            at = len(stripped) if slot is None else slot
            hooks[event] = stripped[:at] + [desired] + stripped[at:]
            (updated if n_ours else added).append(event)
        elif n_ours:
            if stripped:
                hooks[event] = stripped
            else:
                del hooks[event]
            removed.append(event)
    for event in wanted:
        if event not in hooks:
            hooks[event] = [our_group(event, command, timeout_s, http)]
            added.append(event)

    if hooks or result.get("hooks") is not None:
        result["hooks"] = hooks
    return result, Changes(tuple(added), tuple(updated), tuple(removed))


def uninstall(settings: Mapping[str, Any]) -> tuple[dict[str, Any], Changes]:
    """A copy of ``settings`` without any entry of ours, command or http.

    The ``hooks`` key is dropped when removing our entries emptied it. Malformed ``hooks``
    values hold nothing we can recognise, so they are left alone (no error).
    """
    if not isinstance(settings, Mapping):
        raise TypeError("settings must be a dict")
    result = copy.deepcopy(dict(settings))
    hooks = result.get("hooks")
    removed: list[str] = []
    if isinstance(hooks, dict):
        for event in list(hooks):
            groups = hooks[event]
            if not isinstance(groups, list):
                continue
            stripped, n_ours, _slot = _strip_ours(groups)
            if not n_ours:
                continue
            if stripped:
                hooks[event] = stripped
            else:
                del hooks[event]
            removed.append(event)
        if removed and not hooks:
            del result["hooks"]
    return result, Changes(removed=tuple(removed))


def holds_token(settings: Mapping[str, Any]) -> bool:
    """Whether an http entry of ours in ``settings`` sends a literal token (not a $VAR)."""
    for found in find_our_entries(settings).values():
        for _group, entry in found:
            token = entry_token(entry) if entry_kind(entry) == HTTP else None
            if token is not None and "$" not in token:
                return True
    return False


def _group_hooks(group: Any) -> list[Any] | None:
    if isinstance(group, Mapping) and isinstance(group.get("hooks"), list):
        return group["hooks"]
    return None


def _event_lists(settings: Mapping[str, Any]) -> Iterable[tuple[str, list[Any]]]:
    hooks = settings.get("hooks") if isinstance(settings, Mapping) else None
    if isinstance(hooks, Mapping):
        for event, groups in hooks.items():
            if isinstance(groups, list):
                yield event, groups


def _strip_ours(groups: list[Any]) -> tuple[list[Any], int, int | None]:
    """(groups without our entries, how many entries were removed, where our group goes).

    Untouched groups are the same objects; a group that loses entries is copied with its keys
    in their original order, and dropped if it loses all of them. The slot is the index in
    the result where the first entry of ours was: the position of its group when that group
    was ours alone, right after it when it was shared; None when there was none.
    """
    out: list[Any] = []
    count = 0
    slot: int | None = None
    for group in groups:
        entries = _group_hooks(group)
        if entries is not None:
            kept = [h for h in entries if not is_ours(h)]
            if len(kept) != len(entries):
                count += len(entries) - len(kept)
                if not kept:
                    if slot is None:
                        slot = len(out)
                    continue
                group = {**group, "hooks": kept}
                if slot is None:
                    slot = len(out) + 1
        out.append(group)
    return out, count, slot


# ---------------------------------------------------------------------------------------------
# Which transport: command hooks (a process per event, over the Unix socket; they spool when
# the daemon is down) or http hooks (Claude Code posts to the daemon itself, no process per
# event: docs/benchmarks.md; lost when nothing listens on the port)

# The first Claude Code that runs hooks of `type: "http"`; an older one does not know the type.
HTTP_HOOKS_SINCE = (2, 1, 63)
HTTP_HOOKS_SINCE_TEXT = ".".join(map(str, HTTP_HOOKS_SINCE))
# Where install-hooks and doctor look for the `claude` that runs the hooks, after
# MPMD_CLAUDE and PATH: the native installer's and the local npm install's places.
CLAUDE_PLACES = ("~/.local/bin/claude", "~/.claude/local/claude")
VERSION_TIMEOUT_S = 15.0


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    """(major, minor, patch) from ``claude --version`` ("2.1.328 (Claude Code)")."""
    words = (text or "").split()
    parts = words[0].split("-")[0].split(".") if words else []
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


@dataclass(frozen=True)
class ClaudeCode:
    """The Claude Code found (its path) and its version, or why there is none."""

    path: str | None = None
    version: str | None = None  # e.g. "2.1.328"
    error: str | None = None

    @property
    def takes_http(self) -> bool | None:
        """Whether it runs http hooks; None when its version is unknown."""
        version = parse_version(self.version)
        return None if version is None else version >= HTTP_HOOKS_SINCE

    def describe(self, home: str = "") -> str:
        where = _tilde(self.path, home) if self.path else "?"
        return f"Claude Code {self.version} ({where})" if self.version else \
            f"Claude Code's version is unknown: {self.error}"


@dataclass(frozen=True)
class Endpoint:
    """What is known of the daemon's http endpoint (http_ingest)."""

    configured_port: int  # http_port of this configuration: -1 off, 0 any free port
    running: bool = False  # the daemon answered on its control socket
    # Running: where it listens (None: it has no endpoint). Not running: the port it last
    # published in http.port, if any.
    port: int | None = None
    error: str | None = None  # running without an endpoint: why (its http_error)
    token: str | None = None  # http.token, when it holds a token

    @property
    def expected_port(self) -> int | None:
        """Where http hooks must post: the running daemon's port; with none running, the
        configured one (port 0: the last published)."""
        if self.running:
            return self.port
        if self.configured_port < 0:
            return None
        return self.configured_port or self.port

    @property
    def unavailable(self) -> str | None:
        """Why no http hook can reach the daemon, or None."""
        if self.running and self.port is None:
            return f"the daemon runs without its http endpoint ({self.error or 'not reported'})"
        if not self.running and self.configured_port < 0:
            return "the daemon's http endpoint is off (http_port = -1)"
        if self.expected_port is None:
            return ("http_port = 0 (any free port) and no daemon has published its port yet "
                    "(http.port): start mpmd first")
        return None


@dataclass(frozen=True)
class Choice:
    """What install-hooks writes: ``transport`` (http or command), why, the port of the http
    entries, notes to print; ``error`` when the transport asked for cannot be used."""

    transport: str
    why: str
    port: int | None = None
    notes: tuple[str, ...] = ()
    error: str | None = None
    endpoint: Endpoint | None = None  # what the choice was made from


def choose_transport(requested: str, claude: ClaudeCode, endpoint: Endpoint, *,
                     shared_file: str | None = None, home: str = "") -> Choice:
    """The transport for ``requested`` (auto, http or command). Pure.

    ``auto`` takes http only when everything says it works now: the Claude Code found takes
    http hooks, and the daemon runs with its endpoint on the fixed port the configuration
    names (so it is there again after a restart). Anything unknown
    gives command hooks, which work with every Claude Code and spool while the daemon is
    down. ``http`` is refused when it cannot work (an older Claude Code, no endpoint, a
    project's shared settings file, which would carry the token into the repository) and
    written with a note when it merely may not (version unknown, daemon not running, port
    0). ``shared_file``: the settings file's name when it is such a shared file.
    """
    if requested not in TRANSPORTS:
        raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}")
    if requested == COMMAND:
        return Choice(COMMAND, "asked for", endpoint=endpoint)
    blocking: list[str] = []
    doubts: list[tuple[str, str]] = []  # (why auto does not take http, what would)
    notes: list[str] = []
    takes = claude.takes_http
    if takes is False:
        blocking.append(f"{claude.describe(home)} predates http hooks "
                        f"({HTTP_HOOKS_SINCE_TEXT})")
    elif takes is None:
        doubts.append((f"{claude.describe(home)}; command hooks work with every version, "
                       f"http hooks need {HTTP_HOOKS_SINCE_TEXT} or later",
                       f"--transport http if the Claude Code you run is "
                       f"{HTTP_HOOKS_SINCE_TEXT} or later (or MPMD_CLAUDE=<its path>)"))
    if endpoint.unavailable:
        blocking.append(endpoint.unavailable)
    if shared_file:
        blocking.append(f"{shared_file} is a project's shared settings file (usually "
                        "committed): the token would go wherever it goes; use "
                        "~/.claude/settings.json or .claude/settings.local.json")
    if endpoint.running and endpoint.port is not None and endpoint.token is None:
        blocking.append("the daemon's token (http.token in the state folder) cannot be read")
    port = endpoint.expected_port
    if not blocking:
        if not endpoint.running:
            doubts.append(("mpmd is not running, so its http endpoint could not be checked "
                           "(command hooks spool while it is down; http hooks that find no "
                           "daemon are lost)",
                           "run install-hooks again once mpmd runs (mpmd start)"))
            notes.append(f"mpmd is not running: until it listens on 127.0.0.1:{port}, "
                         "Claude Code reports each http hook as failed and the event is "
                         "lost (mpmd start, or mpmd service install)")
        if endpoint.configured_port == 0:
            doubts.append(("http_port = 0: the daemon's port changes each time it starts",
                           "set a fixed http_port (config.toml), restart mpmd"))
            notes.append(f"http_port = 0: the port ({port}) changes each time the daemon "
                         "starts; run install-hooks again then, or set a fixed http_port")
        elif endpoint.running and port != endpoint.configured_port:
            doubts.append((f"the daemon listens on {port}, but http_port says "
                           f"{endpoint.configured_port}: it moves at its next start",
                           "restart mpmd (mpmd stop && mpmd start), then run install-hooks "
                           "again"))
            notes.append(f"the daemon listens on {port}, and http_port says "
                         f"{endpoint.configured_port}: after a restart it moves, and "
                         "install-hooks must run again")
        if takes is None:
            notes.append(f"could not check Claude Code's version ({claude.error}): http "
                         f"hooks need {HTTP_HOOKS_SINCE_TEXT} or later")
    if requested == HTTP:
        if blocking:
            return Choice(HTTP, "asked for", error="; ".join(blocking), endpoint=endpoint)
        return Choice(HTTP, "asked for", port, tuple(notes), endpoint=endpoint)
    if blocking:
        return Choice(COMMAND, blocking[0], endpoint=endpoint)
    if doubts:
        return Choice(COMMAND, doubts[0][0], notes=tuple(f"for http hooks: {hint}"
                                                          for _why, hint in doubts),
                      endpoint=endpoint)
    return Choice(HTTP, f"{claude.describe(home)} takes http hooks ({HTTP_HOOKS_SINCE_TEXT} "
                  f"and later), and mpmd's endpoint answers on {http_url(port or 0)}",
                  port, tuple(notes), endpoint=endpoint)


def shared_project_file(path: str | os.PathLike[str], home: str | None = None) -> bool:
    """Whether ``path`` is a project's ``.claude/settings.json`` (shared, usually committed),
    not the user's own ``~/.claude/settings.json``."""
    p = Path(os.path.abspath(os.path.expanduser(path)))
    if p.name != "settings.json" or p.parent.name != ".claude":
        return False
    home = home if home is not None else os.path.expanduser("~")
    return os.path.realpath(p.parent) != os.path.realpath(os.path.join(home, ".claude"))


def find_claude(environ: Mapping[str, str] | None = None, home: str | None = None) -> ClaudeCode:
    """The `claude` that runs the hooks and its version (``claude --version``): the one
    MPMD_CLAUDE names, else the first of PATH, ~/.local/bin/claude, ~/.claude/local/claude."""
    import shutil
    import subprocess

    env = os.environ if environ is None else environ
    home = home if home is not None else os.path.expanduser("~")
    override = env.get("MPMD_CLAUDE")
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            return ClaudeCode(override, error=f"MPMD_CLAUDE={override} is not an executable file")
        path: str | None = override
    else:
        path = shutil.which("claude", path=env.get("PATH", os.defpath))
        for place in CLAUDE_PLACES:
            if path is None:
                candidate = os.path.join(home, place[2:])
                if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                    path = candidate
        if path is None:
            return ClaudeCode(error="claude is not on PATH, nor in "
                              f"{' or '.join(os.path.dirname(p) for p in CLAUDE_PLACES)} "
                              "(MPMD_CLAUDE may name it)")
    assert path is not None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, timeout=VERSION_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return ClaudeCode(path, error=f"`{_tilde(path, home)} --version` failed: {exc}")
    version = parse_version(out.stdout)
    if out.returncode != 0 or version is None:
        said = (out.stdout.strip() or out.stderr.strip())[:100]
        return ClaudeCode(path, error=f"`{_tilde(path, home)} --version` said {said!r} "
                          f"(exit {out.returncode})")
    return ClaudeCode(path, ".".join(map(str, version)))


def read_endpoint(settings: Any, status: Status | None) -> Endpoint:
    """The endpoint from the daemon's status (None: it did not answer) and the files it
    publishes in the state folder. ``settings``: mpmd.config.Settings."""
    running = status is not None and status.running
    port: int | None = None
    error = None
    if running and status is not None:
        reported = status.http_port
        if status.http_url and reported is not None and reported > 0:
            port = reported
        else:
            error = status.http_error or "this daemon reports none"
    else:
        try:
            text = Path(settings.http_port_path).read_text().strip()
            port = int(text) if text.isascii() and text.isdigit() and 0 < int(text) < 65536 \
                else None
        except (OSError, ValueError):
            port = None
    return Endpoint(settings.http_port, running, port, error,
                    read_token(settings.http_token_path))


def read_token(path: str | os.PathLike[str]) -> str | None:
    """The token in ``path`` (http.token), or None when there is none."""
    try:
        token = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    try:
        HttpHook(1, token)
    except ValueError:
        return None
    return token


def _tilde(path: str | None, home: str) -> str:
    p = str(path)
    home = home.rstrip("/")
    if home and (p == home or p.startswith(home + "/")):
        return "~" + p[len(home):]
    return p


# ---------------------------------------------------------------------------------------------
# File I/O


def load_settings(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The settings in ``path``: {} if it is missing or blank.

    Raises SettingsError (naming the file, and the line and column for a syntax error) when
    the file is not a JSON object, is not UTF-8, or has a duplicate key: rewriting such a file
    would lose part of it, so we never do.
    """
    return _read(Path(path))[0]


def save_settings(
    path: str | os.PathLike[str], data: Mapping[str, Any], *, backup: bool = True
) -> Path | None:
    """Write ``data`` to ``path`` atomically; return the backup's path, or None if none.

    This always writes: callers check ``Changes.changed`` first (as :func:`apply` does) so
    an unchanged file keeps its bytes and mtime. Writes JSON with indent=2 and a trailing
    newline whole or not at all (mpmd.durable.write_atomic), keeps the
    existing file's permission bits (a new file gets 0o600) and creates missing parent
    folders (0700). If ``backup`` and the file exists, its current bytes are first copied to
    ``<name>.mpmd-backup`` next to it (a single backup, overwritten each time). A symlink is
    written through: its target is replaced and the link stays.
    """
    return _save(Path(path), data, backup=backup, expected=_UNCHECKED)


def apply(
    path: str | os.PathLike[str],
    fn: Callable[[dict[str, Any]], tuple[dict[str, Any], Changes]],
    *,
    backup: bool = True,
    private: bool = False,
) -> Changes:
    """Load ``path``, run ``fn`` (install or uninstall) on it, save only if it changed.

    ``fn`` is e.g. ``uninstall`` or ``lambda s: install(s, command)``. The returned Changes
    carries the backup path, if one was written. When the result holds the http token
    literally (:func:`holds_token`), or with ``private``, the file and its backup lose their
    group and other permission bits, also when nothing else changes; ``made_private`` then
    says the mode the file had. Raises SettingsError
    if the file cannot be parsed, has the wrong shape, or was modified by someone else while
    we worked on it.
    """
    p = Path(path)
    settings, raw = _read(p)
    try:
        new, changes = fn(settings)
    except SettingsError as e:
        raise SettingsError(f"{p}: {e}") from None
    private = private or holds_token(new)
    if not changes.changed:
        if private and raw is not None:
            return replace(changes, made_private=_make_private(p))
        return changes
    before = _mode_of(p) if private else None
    saved = _save(p, new, backup=backup, expected=raw, private=private)
    loose = before is not None and before & 0o077
    return replace(changes, backup=saved, made_private=before if loose else None)


def _mode_of(path: Path) -> int | None:
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return None


def _make_private(path: Path) -> int | None:
    """Clear the group and other bits of ``path`` (through a symlink) and of its backup;
    the file's mode before when it changed, else None."""
    before = None
    for target in (path, path.with_name(path.name + BACKUP_SUFFIX)):
        mode = _mode_of(target)
        if mode is not None and mode & 0o077:
            os.chmod(os.path.realpath(target), mode & ~0o077)
            if target == path:
                before = mode
    return before


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKey(key)
        obj[key] = value
    return obj


class _DuplicateKey(Exception):
    pass


def _read(path: Path) -> tuple[dict[str, Any], bytes | None]:
    """(settings, the file's raw bytes or None when it does not exist)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}, None
    except OSError as e:
        raise SettingsError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SettingsError(f"{path}: not UTF-8 (byte {e.start}); not touching it") from None
    if not text.strip():
        return {}, raw
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise SettingsError(
            f"{path}:{e.lineno}:{e.colno}: invalid JSON ({e.msg}); not touching it"
        ) from None
    except _DuplicateKey as e:
        raise SettingsError(
            f"{path}: duplicate key {e.args[0]!r} in an object; not touching it"
        ) from None
    except ValueError as e:  # NaN / Infinity
        raise SettingsError(f"{path}: invalid JSON ({e}); not touching it") from None
    if not isinstance(data, dict):
        raise SettingsError(
            f"{path}: top level is a JSON {type(data).__name__}, not an object; not touching it"
        )
    return data, raw


_UNCHECKED: Any = object()


def _save(path: Path, data: Mapping[str, Any], *, backup: bool, expected: Any,
          private: bool = False) -> Path | None:
    """save_settings(); ``expected`` is the bytes apply() read (None: it did not exist), or
    _UNCHECKED to skip the check that nobody changed the file meanwhile. ``private``: the
    file and the backup get no group or other permission bits."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    # Write through a symlink: replacing the link itself would cut it from its target.
    target = Path(os.path.realpath(path))
    # ~/.claude holds the settings, which say what runs at every event: a new one is 0700.
    make_owner_only_folders(target.parent)
    try:
        st: os.stat_result | None = os.stat(target)
        current: bytes | None = target.read_bytes()
    except FileNotFoundError:
        st, current = None, None
    if expected is not _UNCHECKED and current != expected:
        raise SettingsError(f"{path}: changed while we were editing it; nothing written")

    backup_path = None
    if backup and current is not None:
        backup_path = path.with_name(path.name + BACKUP_SUFFIX)
        _write_like(Path(os.path.realpath(backup_path)), current, st, private)
    _write_like(target, text.encode("utf-8"), st, private)
    return backup_path


def _write_like(target: Path, content: bytes, like: os.stat_result | None,
                private: bool = False) -> None:
    """Replace ``target`` with ``content``, with the mode and owner of ``like`` (a file of
    another user, edited with sudo, stays theirs), less the group and other bits when
    ``private``."""
    mode = (like.st_mode & 0o7777) if like else NEW_FILE_MODE
    write_atomic(target, content, mode=mode & ~0o077 if private else mode,
                 owner=(like.st_uid, like.st_gid) if like is not None else None)
