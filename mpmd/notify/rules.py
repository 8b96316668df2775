"""Notification rules: the ``[[notify]]`` tables of config.toml (docs/notify.md).

Each table is checked on its own, like a forwarder's: one that is wrong does not stop the
daemon nor the other rules; it is shown in error (``mpmd status``, ``mpmd doctor``) with
the table and the key it is about.

    [[notify]]
    name = "phone"                      # [A-Za-z0-9_.-], unique
    on = ["needs-you", "turn-failed"]   # conditions (CONDITIONS)
    targets = ["ntfy://ntfy.sh/my-secret-topic"]   # apprise URLs
    projects = ["mpmd", "work-*"]       # globs on the project (cwd's last part) or the cwd
    quiet_hours = "22:00-07:00"         # local time: nothing is sent, a lasting condition
                                        # is sent when they end if it still lasts
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any

from mpmd.config import Settings, bounded_number

# What a rule can watch for. Lasting conditions (needs-you, idle) have a start and an end,
# and a follow-up when they end; the others are one event each.
NEEDS_YOU = "needs-you"  # a permission prompt, a question, a dialog, a held remote request
TOOL_FAILED = "tool-failed"  # a tool call failed (PostToolUseFailure, not an interrupt)
TURN_FAILED = "turn-failed"  # a turn ended on an API error (StopFailure)
STOPPED = "stopped"  # a turn finished: Claude waits for the next prompt (Stop)
ENDED = "ended"  # the session ended (SessionEnd)
IDLE = "idle"  # no event for idle_minutes in a session that has not ended
COST = "cost"  # the session's cost passed budget_usd
CONDITIONS = (NEEDS_YOU, TOOL_FAILED, TURN_FAILED, STOPPED, ENDED, IDLE, COST)
LASTING = frozenset({NEEDS_YOU, IDLE})

MAX_RULES = 100
MAX_TARGETS = 20  # a rule's
MAX_URL_CHARS = 2048
MAX_PATTERNS = 100  # a rule's projects or sessions
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_HOURS_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


class RuleError(Exception):
    """A [[notify]] table that cannot be used; the message names the table and the key."""


@dataclass(frozen=True)
class Rule:
    name: str
    on: tuple[str, ...]
    targets: tuple[str, ...]
    projects: tuple[str, ...] = ()  # empty: every project
    sessions: tuple[str, ...] = ()  # session id prefixes; empty: every session
    quiet_hours: tuple[int, int] | None = None  # minutes of the day: [start, end)
    idle_minutes: float = 10.0
    budget_usd: float | None = None
    after_s: float = 0.0  # a lasting condition must last this long to be sent
    follow_up: bool = True  # say when a lasting condition that was sent ends
    actions: bool = True  # Approve / Deny links for a held remote request
    max_per_hour: int = 60  # messages this rule sends an hour, at most

    def wants(self, condition: str) -> bool:
        return condition in self.on

    def covers(self, session_id: str | None, project: str | None, cwd: str | None) -> bool:
        """Does this rule watch that session?"""
        if self.sessions and not (session_id and any(session_id.startswith(p)
                                                     for p in self.sessions)):
            return False
        if self.projects:
            names = [n for n in (project, cwd) if n]
            return any(fnmatch.fnmatchcase(n, p) for p in self.projects for n in names)
        return True

    def quiet(self, minute_of_day: int) -> bool:
        if self.quiet_hours is None:
            return False
        start, end = self.quiet_hours
        if start <= end:
            return start <= minute_of_day < end
        return minute_of_day >= start or minute_of_day < end  # across midnight


@dataclass(frozen=True)
class Invalid:
    """A table that could not be used: shown in status and doctor as a rule in error."""

    name: str
    error: str


# key: (type, low, high)
_KEYS: dict[str, tuple[str, float, float]] = {
    "name": ("str", 0, 0),
    "on": ("list", 1, len(CONDITIONS)),
    "targets": ("list", 1, MAX_TARGETS),
    "projects": ("list", 0, MAX_PATTERNS),
    "sessions": ("list", 0, MAX_PATTERNS),
    "quiet_hours": ("str", 0, 0),
    "idle_minutes": ("float", 1, 1440),
    "budget_usd": ("float", 0.01, 1_000_000),
    "after_s": ("float", 0, 3600),
    "follow_up": ("bool", 0, 0),
    "actions": ("bool", 0, 0),
    "max_per_hour": ("int", 1, 3600),
}


def from_settings(settings: Settings) -> tuple[list[Rule], list[Invalid]]:
    return parse(settings.notify_tables)


def actions_wanted(settings: Settings) -> bool:
    """Does a usable rule send Approve / Deny links? Then a held request waits for its
    answer even with no viewer open (mpmd.serve.approvals)."""
    good, _bad = from_settings(settings)
    return any(r.actions and r.wants(NEEDS_YOU) for r in good)


def parse(tables: Any) -> tuple[list[Rule], list[Invalid]]:
    if not isinstance(tables, list):
        return [], [Invalid("(config)", "notify must be an array of tables: write each "
                                        "rule as [[notify]]")]
    good: list[Rule] = []
    bad: list[Invalid] = []
    seen: set[str] = set()
    for i, table in enumerate(tables, 1):
        label = f"[[notify]] #{i}"
        raw = table.get("name") if isinstance(table, dict) else None
        name = raw if isinstance(raw, str) and _NAME_RE.match(raw) else f"#{i}"
        try:
            if i > MAX_RULES:
                raise RuleError(f"{label}: more than {MAX_RULES} rules; this one is ignored")
            if not isinstance(table, dict):
                raise RuleError(f"{label} is not a table")
            rule = parse_one(table, label)
            if rule.name in seen:
                raise RuleError(f'notify "{rule.name}": name: another rule has that name')
            seen.add(rule.name)
            good.append(rule)
        except RuleError as exc:
            bad.append(Invalid(name if name not in seen else f"{name}#{i}", str(exc)))
    return good, bad


def parse_one(table: dict[str, Any], label: str = "[[notify]]") -> Rule:
    name = table.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise RuleError(f"{label}: name: required, 1 to 64 letters, digits, '_', '.' or '-' "
                        f"(got {name!r})")
    where = f'notify "{name}"'
    values: dict[str, Any] = {"name": name}
    for key, value in table.items():
        if key not in _KEYS:
            raise RuleError(f"{where}: {key}: unknown key (known: {', '.join(sorted(_KEYS))})")
        if key != "name":
            values[key] = _check(where, key, value)
    if "targets" not in values:
        raise RuleError(f"{where}: targets: required, a list of apprise URLs "
                        '(e.g. ["ntfy://ntfy.sh/your-topic"])')
    values.setdefault("on", (NEEDS_YOU,))
    for condition in values["on"]:
        if condition not in CONDITIONS:
            raise RuleError(f"{where}: on: {condition!r} is not a condition (known: "
                            f"{', '.join(CONDITIONS)})")
    if COST in values["on"] and "budget_usd" not in values:
        raise RuleError(f'{where}: budget_usd: required with "cost" (the dollars a session '
                        "may cost before you are told)")
    for url in values["targets"]:
        if len(url) > MAX_URL_CHARS or "://" not in url:
            raise RuleError(f"{where}: targets: {safe_target(url)!r} is not an apprise URL "
                            f"(schema://..., at most {MAX_URL_CHARS} characters)")
    return Rule(**values)


def _check(where: str, key: str, value: Any) -> Any:
    typ, low, high = _KEYS[key]
    if typ == "list":
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value) \
                or not low <= len(value) <= high:
            raise RuleError(f"{where}: {key}: must be a list of {low:g} to {high:g} "
                            "non-empty strings")
        return tuple(value)
    if typ == "bool":
        if not isinstance(value, bool):
            raise RuleError(f"{where}: {key}: must be true or false")
        return value
    if typ == "str":
        if not isinstance(value, str):
            raise RuleError(f"{where}: {key}: must be a string")
        match = _HOURS_RE.match(value)
        if match is None:
            raise RuleError(f'{where}: quiet_hours: must be "HH:MM-HH:MM" in local time, '
                            f'e.g. "22:00-07:00" (got {value!r})')
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        return (h1 * 60 + m1, h2 * 60 + m2)
    try:
        return bounded_number(value, typ == "int", low, high)
    except ValueError as exc:
        raise RuleError(f"{where}: {key}: {exc}") from None


def safe_target(url: str) -> str:
    """A target URL fit to show: its schema and host only (the rest is often a secret:
    a topic, a token, a webhook's key)."""
    schema, sep, rest = url.partition("://")
    if not sep:
        return "(not a URL)"
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1].split("?", 1)[0]
    return f"{schema[:20]}://{host[:100]}/…" if host else f"{schema[:20]}://…"


def target_names(rule: Rule) -> list[str]:
    """Names for a rule's targets in status and metrics: ``rule#1``, ``rule#2``..."""
    return [f"{rule.name}#{i}" for i in range(1, len(rule.targets) + 1)]
