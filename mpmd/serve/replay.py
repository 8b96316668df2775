"""`mpmd replay`: a past session re-emitted with its original timing, scaled.

To the viewers, each event goes out as a `replay` message (never an `events` one), between
`replay_start` and `replay_end`, so no page or client mistakes it for live; the sessions
table and the journal are not touched. Or to standard output, where the CLI sleeps itself.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import msgspec

from mpmd.history import index
from mpmd.serve.broadcast import Broadcaster, message

MAX_GAP_S = 10.0  # a quiet hour of the session does not make the replay wait an hour
_replay_ids = itertools.count(1)


class _Stamp(msgspec.Struct):
    timestamp: str = ""


_stamp_decoder = msgspec.json.Decoder(_Stamp)


def _seconds(line: bytes) -> float | None:
    try:
        return datetime.fromisoformat(_stamp_decoder.decode(line).timestamp).timestamp()
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
        return None


def schedule(lines: list[bytes], speed: float,
             max_gap_s: float = MAX_GAP_S) -> Iterator[tuple[float, bytes]]:
    """(wait before it, line): the gaps between the events' hook times, divided by
    ``speed``, each at most ``max_gap_s`` (after scaling)."""
    previous = None
    for line in lines:
        now = _seconds(line)
        wait = 0.0
        if now is not None and previous is not None:
            wait = min(max(now - previous, 0.0) / speed, max_gap_s)
        if now is not None:
            previous = now
        yield wait, line


def session_lines(index_path: Path, session: str) -> list[bytes]:
    """The lines of the session whose id starts with ``session``, from the search index;
    LookupError, saying why, when there is no index, no such session or several."""
    if not index_path.exists():
        raise LookupError("no search index yet")
    conn = index.connect_read_only(index_path)
    try:
        return index.session_lines(conn, session)
    finally:
        conn.close()


async def to_viewers(broadcaster: Broadcaster, session_id: str, lines: list[bytes],
                     speed: float, progress: Callable[[int], None]) -> int:
    """Replay ``lines`` to the connected viewers; returns the replay's id."""
    replay = next(_replay_ids)
    broadcaster.send_to_all(message("replay_start", replay=replay, session_id=session_id,
                                    speed=speed, events=len(lines)))
    for n, (wait, line) in enumerate(schedule(lines, speed), 1):
        if wait:
            await asyncio.sleep(wait)  # the replay's own timing: nothing to await instead
        broadcaster.send_to_all(b'{"type":"replay","replay":%d,"event":%s}' % (replay, line))
        progress(n)
    broadcaster.send_to_all(message("replay_end", replay=replay, session_id=session_id))
    return replay
