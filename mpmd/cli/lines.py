"""Stored events as the terminal shows them, one readable line each (`mpmd tail`,
`mpmd query`)."""

from __future__ import annotations

import msgspec

from mpmd.model.events import StoredEventView

_view = msgspec.json.Decoder(StoredEventView)


def format_line(line: bytes, with_date: bool = False) -> str | None:
    try:
        ev = _view.decode(line)
    except msgspec.DecodeError:
        return None
    from datetime import datetime

    shape = "%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S"
    try:
        local = datetime.fromisoformat(ev.timestamp).astimezone().strftime(shape)
    except ValueError:
        local = ev.timestamp[:19].replace("T", " ") if with_date else ev.timestamp[11:19]
    session = (ev.session_id or "-")[:8]
    mark = {"high": "!! ", "medium": "!  "}.get(ev.risk, "   ")
    return f"{local} {session:8} {mark}{ev.event_type:20} {ev.summary}"


def matches(line: bytes, session: str | None, types: tuple[str, ...]) -> bool:
    if not session and not types:
        return True
    try:
        ev = _view.decode(line)
    except msgspec.DecodeError:
        return False
    if session and not (ev.session_id or "").startswith(session):
        return False
    return not types or ev.event_type in types
