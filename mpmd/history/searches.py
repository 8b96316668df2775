"""Saved searches: named queries (`mpmd query @failures`), shared by the CLI and the viewer.

Presets ship with mpmd; the user's own live in `searches.toml` in the config folder
(`[searches]`, one `name = "query"` each) and win over a preset of the same name.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from mpmd.durable import write_atomic
from mpmd.errors import SearchError
from mpmd.history import query

FILE_NAME = "searches.toml"
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
PRESETS: dict[str, str] = {
    "high-risk": "risk:high",
    "failures": "type:PostToolUseFailure OR type:StopFailure",
    "permission-waits": "type:PermissionRequest OR type:PermissionDenied "
                        "OR (type:Notification permission)",
    "subagents": "type:SubagentStart OR type:SubagentStop",
    "writes-outside-project": "op:write scope:outside",
}


def _path(config_dir: Path) -> Path:
    return config_dir / FILE_NAME


def own(config_dir: Path) -> dict[str, str]:
    """The user's saved searches (a file that does not parse is an error, not ignored)."""
    path = _path(config_dir)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SearchError(f"{path}: {exc}") from None
    table = data.get("searches", {})
    if not isinstance(table, dict):
        raise SearchError(f"{path}: [searches] must be a table of name = \"query\"")
    return {str(k): str(v) for k, v in table.items() if isinstance(v, str)}


def all_searches(config_dir: Path) -> dict[str, str]:
    return {**PRESETS, **own(config_dir)}


def expand(text: str, config_dir: Path) -> str:
    """``@name`` becomes its query; anything else is returned as it is."""
    stripped = text.strip()
    if not stripped.startswith("@"):
        return text
    name = stripped[1:]
    found = all_searches(config_dir)
    if name not in found:
        raise SearchError(f"no saved search {name!r}; saved: {', '.join(sorted(found))}")
    return found[name]


def _write(config_dir: Path, searches: dict[str, str]) -> None:
    config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = _path(config_dir)
    body = "# mpmd saved searches: mpmd query @name (docs/query.md)\n[searches]\n" + "".join(
        f"{name} = {json.dumps(text, ensure_ascii=False)}\n" for name, text in
        sorted(searches.items()))
    write_atomic(path, body.encode())


def save(config_dir: Path, name: str, text: str) -> None:
    if not NAME.fullmatch(name):
        raise SearchError(f"a search name is letters, digits, - and _ (not {name!r})")
    try:
        query.parse(text)
    except query.QueryError as exc:
        raise SearchError(f"bad query: {exc}") from None
    _write(config_dir, {**own(config_dir), name: text})


def delete(config_dir: Path, name: str) -> bool:
    mine = own(config_dir)
    if name not in mine:
        return False
    del mine[name]
    _write(config_dir, mine)
    return True
