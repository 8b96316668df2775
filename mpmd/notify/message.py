"""Pure: the words of a notification, and the per-channel form apprise sends.

A message names the project, the session, what it waits for (the tool and its command or
path, already redacted in the journal, redacted again here), how long it has waited, and a
link that opens the session in the viewer. A held request's message carries Approve and
Deny links (mpmd.serve.links): as ntfy actions (buttons that POST) for ntfy, as links in
the text elsewhere.
"""

from __future__ import annotations

import hashlib
from urllib.parse import quote

import msgspec

from mpmd.model.redact import redact_text
from mpmd.notify import rules as R
from mpmd.notify.conditions import MAX_GROUP_LINES, Notice
from mpmd.serve import links

MAX_TITLE = 200
MAX_BODY = 4000
LINK_LIFETIME_S = 3600.0  # an action link lives as long as its request, and this at most
NTFY_SCHEMAS = ("ntfy", "ntfys")
WORTH_SAYING_S = 10.0  # a wait shorter than this is not worth a "waiting 3 s"


class Message(msgspec.Struct, kw_only=True):
    """One notification for one rule's targets."""

    id: str  # the same for the same notices (named in the log when it is dropped)
    rule: str
    title: str
    body: str
    click: str | None = None  # the viewer's page of the session
    actions: list[tuple[str, str]] = msgspec.field(default_factory=list)  # (label, url)
    tags: list[str] = msgspec.field(default_factory=list)
    priority: str = "default"  # ntfy's: min, low, default, high, max
    kind: str = "info"  # apprise's notify type: info, success, warning, failure


def duration(seconds: float) -> str:
    """ "45 s", "3 min", "2 h 5 min" """
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


def _where(n: Notice) -> str:
    project = n.project or "a session"
    return f"{project} ({(n.session_id or '?')[:8]})"


def _what(n: Notice) -> str:
    if n.tool_name and n.detail:
        return f"{n.tool_name}: {n.detail}"
    return n.tool_name or n.detail or ""


def _line(n: Notice, now: float) -> str:
    """One notice in a sentence."""
    where = _where(n)
    what = _what(n)
    waited = now - n.since if n.since else 0.0
    if n.phase == "resolved":
        after = f" after {duration(waited)}" if waited >= WORTH_SAYING_S else ""
        return f"{where} no longer needs you: {n.resolution}{after}" + (
            f" ({what})" if what else "")
    if n.condition == R.NEEDS_YOU:
        waiting = f", waiting {duration(waited)}" if waited >= WORTH_SAYING_S else ""
        return f"{where} needs you{waiting}" + (f": {what}" if what else "")
    if n.condition == R.TOOL_FAILED:
        return f"{where}: {n.tool_name or 'a tool'} failed" + (
            f": {n.detail}" if n.detail else "")
    if n.condition == R.TURN_FAILED:
        return f"{where}: the turn failed" + (f": {n.detail}" if n.detail else "")
    if n.condition == R.STOPPED:
        return f"{where} finished its turn" + (f": {n.detail}" if n.detail else "")
    if n.condition == R.ENDED:
        return f"{where} ended" + (f" ({n.detail})" if n.detail else "")
    if n.condition == R.IDLE:
        return f"{where} has been idle for {duration(now - n.since)}"
    if n.condition == R.COST:
        return f"{where} has cost ${n.cost_usd or 0:.2f}"
    return f"{where}: {n.condition}"


_TITLES = {R.NEEDS_YOU: "needs you", R.TOOL_FAILED: "a tool failed",
           R.TURN_FAILED: "a turn failed", R.STOPPED: "finished its turn",
           R.ENDED: "session ended", R.IDLE: "idle", R.COST: "cost budget passed"}


# A grouped message's title counts its notices: "mpmd: 2 need you, 3 tool calls failed".
_COUNTED = {R.NEEDS_YOU: "need you", R.TOOL_FAILED: "tool calls failed",
            R.TURN_FAILED: "turns failed", R.STOPPED: "turns finished",
            R.ENDED: "sessions ended", R.IDLE: "sessions idle", R.COST: "over budget"}


def session_link(base_url: str, session_id: str | None) -> str | None:
    if not session_id:
        return None
    return f"{base_url.rstrip('/')}/#session={quote(session_id, safe='')}"


def render(rule: R.Rule, notices: list[Notice], now: float, base_url: str,
           key: bytes | None, links_url: str | None = None) -> Message:
    """One message for ``notices`` (one notice, or a group). ``base_url`` is the viewer's
    (the session link: the whole viewer answers its loopback Host only); ``links_url`` where
    the Approve / Deny links point (viewer_public_url, through the user's tunnel), by
    default the viewer's."""
    links_url = links_url or base_url
    first = notices[0]
    ident = hashlib.sha256("\n".join([rule.name] + [f"{n.phase}:{n.key}" for n in notices])
                           .encode()).hexdigest()[:32]
    if len(notices) == 1:
        n = first
        if n.phase == "resolved":
            title = f"✓ {n.project or 'session'}: no longer needs you"
        else:
            title = f"{n.project or 'session'}: {_TITLES.get(n.condition, n.condition)}"
        lines = [_line(n, now)]
    else:
        counts: dict[str, int] = {}
        for n in notices:
            label = "resolved" if n.phase == "resolved" else _COUNTED.get(n.condition, "")
            counts[label] = counts.get(label, 0) + 1
        title = "mpmd: " + ", ".join(f"{c} {label}" for label, c in counts.items())
        lines = [f"• {_line(n, now)}" for n in notices[:MAX_GROUP_LINES]]
        if len(notices) > MAX_GROUP_LINES:
            lines.append(f"… and {len(notices) - MAX_GROUP_LINES} more")
    sessions = {n.session_id for n in notices}
    click = session_link(base_url, first.session_id) if len(sessions) == 1 else \
        base_url.rstrip("/") + "/"
    actions: list[tuple[str, str]] = []
    if len(notices) == 1 and rule.actions and key is not None and first.phase == "open" \
            and first.held is not None and first.held_seq is not None:
        expires = int(min(first.held.expires_at, now + LINK_LIFETIME_S))
        if expires > now:
            for label, answer in (("Approve", "allow"), ("Deny", "deny")):
                token = links.sign(key, links.Action(first.held_seq,
                                                     bytes.fromhex(first.held.event_id),
                                                     answer, expires))
                actions.append((label, f"{links_url.rstrip('/')}/act/{token}"))
            lines.append(f"Answer within {duration(expires - now)}.")
    if click:
        lines.append(f"Open: {click}")
    resolved = all(n.phase == "resolved" for n in notices)
    needs_you = any(n.condition == R.NEEDS_YOU and n.phase == "open" for n in notices)
    failed = any(n.condition in (R.TOOL_FAILED, R.TURN_FAILED) for n in notices)
    body = redact_text("\n".join(lines))[0][:MAX_BODY]
    return Message(
        id=ident, rule=rule.name, title=redact_text(title)[0][:MAX_TITLE], body=body,
        click=click, actions=actions,
        tags=["white_check_mark"] if resolved else ["bell"] if needs_you else
        ["x"] if failed else [],
        priority="high" if needs_you else "default",
        kind="success" if resolved else "warning" if needs_you else
        "failure" if failed else "info")


def for_target(message: Message, url: str) -> tuple[str, str]:
    """(the apprise URL, the body) for one target: ntfy gets the session link as its click
    and the answers as buttons (ntfy's http actions, which POST); any other channel gets
    them as links in the text (a GET there only asks to confirm: chat apps fetch links to
    preview them)."""
    schema = url.partition("://")[0].lower()
    if schema in NTFY_SCHEMAS:
        params: dict[str, str] = {"priority": message.priority}
        if message.click:
            params["click"] = message.click
        if message.tags:
            params["tags"] = ",".join(message.tags)
        if message.actions:
            params["actions"] = "; ".join(
                f"http, {label}, {target}, method=POST, clear=true"
                for label, target in message.actions)
        # apprise splits a URL's query at "&" and ";" and decodes each value twice: encoded
        # twice, an action's ";" and "%" come through as they are.
        sep = "&" if "?" in url else "?"
        query = "&".join(f"{k}={quote(quote(v, safe=''), safe='')}" for k, v in params.items())
        return url + sep + query, message.body
    body = message.body
    if message.actions:
        body += "\n" + "\n".join(f"{label}: {target}" for label, target in message.actions)
    return url, body
