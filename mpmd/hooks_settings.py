"""Add and remove mpmd's hook in a Claude Code settings file.

Claude Code reads hooks from ``~/.claude/settings.json``, ``.claude/settings.json`` and
``.claude/settings.local.json``, in this shape::

    {"hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command",
                                                             "command": "...",
                                                             "timeout": 30}]}],
               "Stop": [{"hooks": [{"type": "command", "command": "..."}]}]},
     "permissions": {...}, "model": "...", ...}

The file belongs to the user: we own only the hook entries whose command is ours (see
:func:`is_ours`) and touch nothing else. Every rule below follows from that:

* :func:`install` first removes every entry of ours it finds (stale paths left by an older
  install or a Python upgrade, duplicates, entries sharing a group with the user's hooks,
  entries under events we no longer register), then adds exactly one group of ours per
  event. An event that already holds exactly that group, and no other entry of ours, is left
  alone, so installing twice changes nothing.
* :func:`uninstall` removes every entry of ours and nothing else.
* A group emptied by removing our entry is dropped, and so is an event key whose list we
  emptied, and (uninstall) the ``hooks`` key when we emptied it. Containers the user left
  empty themselves stay as they are.
* Both return a new dict and never mutate their argument.

The file I/O refuses to rewrite what it cannot parse, writes atomically, keeps the file's
permission bits (and owner, when running as root) and a one-deep backup, and writes through
a symlink instead of replacing it (dotfiles managers often link ``~/.claude/settings.json``).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mpmd.durable import fsync_dir, make_owner_only_folders
from mpmd.events import CLAUDE_CODE_EVENTS

# Every hook event Claude Code knows, in its own order, from the one catalogue (mpmd.events).
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

# Our command always runs ``... python -I -S <dir>/mpm_hook --runtime ... --state ...`` or the
# ``mpm-hook`` console script; either name in a command marks the entry as ours.
MARKER = "mpm_hook"
CONSOLE_MARKER = "mpm-hook"

BACKUP_SUFFIX = ".mpmd-backup"
NEW_FILE_MODE = 0o600


class SettingsError(ValueError):
    """A settings file we cannot read or must not rewrite."""


@dataclass(frozen=True)
class Changes:
    """What install()/uninstall() did, by event name, in the order the events were met.

    ``added``: events that had no entry of ours and now have one. ``updated``: events that
    had entries of ours and now have the one current group instead (stale path, duplicate,
    other timeout, shared group). ``removed``: events that no longer have any entry of ours.
    ``backup``: set by :func:`apply` to the backup it wrote, if any.
    """

    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    backup: Path | None = None

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


# ---------------------------------------------------------------------------------------------
# Pure merge logic


def is_ours(hook_entry: Any) -> bool:
    """True iff this hook entry (``{"type": "command", "command": ...}``) runs our hook."""
    if not isinstance(hook_entry, Mapping):
        return False
    command = hook_entry.get("command")
    return isinstance(command, str) and (MARKER in command or CONSOLE_MARKER in command)


# Events whose hook may hold the call for a person's answer in the viewer (a policy `remote`
# rule waits up to 590 s, mpm_hook.policy_compile.MAX_TIMEOUT_S, and the hook 5 s more):
# Claude Code kills a hook at its timeout (checked with 2.1.328: cancelled at 10.0 s), which
# would cut every wait to the observer's timeout. The hook bounds its own waits.
HOLDING_EVENTS: frozenset[str] = frozenset({"PreToolUse", "PermissionRequest"})
HOLD_TIMEOUT_S = 600


def our_group(event: str, command: str, timeout_s: int = 10) -> dict[str, Any]:
    """The one group install() puts under ``event``."""
    if event in HOLDING_EVENTS:
        timeout_s = max(timeout_s, HOLD_TIMEOUT_S)
    entry = {"type": "command", "command": command, "timeout": timeout_s}
    if event in TOOL_EVENTS:
        return {"matcher": "*", "hooks": [entry]}
    return {"hooks": [entry]}


def find_ours(settings: Mapping[str, Any]) -> dict[str, list[str]]:
    """Event -> the commands of our entries under it, for events that have any."""
    found: dict[str, list[str]] = {}
    for event, groups in _event_lists(settings):
        commands = [h["command"] for g in groups for h in _group_hooks(g) or () if is_ours(h)]
        if commands:
            found[event] = commands
    return found


def install(
    settings: Mapping[str, Any],
    command: str,
    events: Iterable[str] = INSTALLED_EVENTS,
    timeout_s: int = 10,
) -> tuple[dict[str, Any], Changes]:
    """A copy of ``settings`` with exactly one group of ours under each of ``events``.

    Entries of ours under other events are removed. ``command`` must be recognisable by
    :func:`is_ours` (otherwise a second install could not find the first one), ``events``
    must be a subset of INSTALLED_EVENTS. Raises SettingsError if the ``hooks`` value, or the
    value of an event we must write to, is not of the JSON type Claude Code expects.
    """
    if not isinstance(settings, Mapping):
        raise TypeError("settings must be a dict")
    if not isinstance(command, str) or not is_ours({"command": command}):
        raise ValueError(f"hook command must contain {MARKER!r} or {CONSOLE_MARKER!r}")
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int) or timeout_s <= 0:
        raise ValueError("timeout_s must be a positive int")
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
        stripped, n_ours = _strip_ours(groups)
        if event in wanted:
            desired = our_group(event, command, timeout_s)
            if n_ours == 1 and desired in groups:
                continue  # up to date, and left where it is
            hooks[event] = stripped + [desired]
            (updated if n_ours else added).append(event)
        elif n_ours:
            if stripped:
                hooks[event] = stripped
            else:
                del hooks[event]
            removed.append(event)
    for event in wanted:
        if event not in hooks:
            hooks[event] = [our_group(event, command, timeout_s)]
            added.append(event)

    if hooks or result.get("hooks") is not None:
        result["hooks"] = hooks
    return result, Changes(tuple(added), tuple(updated), tuple(removed))


def uninstall(settings: Mapping[str, Any]) -> tuple[dict[str, Any], Changes]:
    """A copy of ``settings`` without any entry of ours.

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
            stripped, n_ours = _strip_ours(groups)
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


def _strip_ours(groups: list[Any]) -> tuple[list[Any], int]:
    """(groups without our entries, how many entries were removed).

    Untouched groups are the same objects; a group that loses entries is copied with its keys
    in their original order, and dropped if it loses all of them.
    """
    out: list[Any] = []
    count = 0
    for group in groups:
        entries = _group_hooks(group)
        if entries is not None:
            kept = [h for h in entries if not is_ours(h)]
            if len(kept) != len(entries):
                count += len(entries) - len(kept)
                if not kept:
                    continue
                group = {**group, "hooks": kept}
        out.append(group)
    return out, count


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
    newline through a temp file in the same folder (fsync, then os.replace), keeps the
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
) -> Changes:
    """Load ``path``, run ``fn`` (install or uninstall) on it, save only if it changed.

    ``fn`` is e.g. ``uninstall`` or ``lambda s: install(s, command)``. The returned Changes
    carries the backup path, if one was written. Raises SettingsError if the file cannot be
    parsed, has the wrong shape, or was modified by someone else while we worked on it.
    """
    p = Path(path)
    settings, raw = _read(p)
    try:
        new, changes = fn(settings)
    except SettingsError as e:
        raise SettingsError(f"{p}: {e}") from None
    if not changes.changed:
        return changes
    return replace(changes, backup=_save(p, new, backup=backup, expected=raw))


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


def _save(path: Path, data: Mapping[str, Any], *, backup: bool, expected: Any) -> Path | None:
    """save_settings(); ``expected`` is the bytes apply() read (None: it did not exist), or
    _UNCHECKED to skip the check that nobody changed the file meanwhile."""
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
        _atomic_write(Path(os.path.realpath(backup_path)), current, st)
    _atomic_write(target, text.encode("utf-8"), st)
    return backup_path


def _atomic_write(target: Path, content: bytes, like: os.stat_result | None) -> None:
    """Replace ``target`` with ``content``, with the mode (and owner) of ``like``."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), (like.st_mode & 0o7777) if like else NEW_FILE_MODE)
            if like is not None and (like.st_uid, like.st_gid) != (os.geteuid(), os.getegid()):
                # e.g. run with sudo on a user's file: leave it theirs
                with contextlib.suppress(PermissionError):
                    os.fchown(f.fileno(), like.st_uid, like.st_gid)
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)
