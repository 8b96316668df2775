"""An id stored before is never stored again, however many events came since (issue 12,
defect 7).

The daemon remembers the last 65,536 ids (mpmd.storage.dedup.RecentIds). A frame stamped before the
oldest id it still remembers cannot be told apart from memory: it is answered BUSY, the
hook spools it, and the spool drain looks it up in the journal. So every retry path (the
hook sends once, then spools the same frame) gets an exact answer whatever the id's age.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from mpm_hook import hook, wire
from mpmd.storage.dedup import RecentIds
from tests.utils import (
    Daemon,
    journal_events,
    send_events,
    send_frame,
    spool_files,
    status,
    wait_until,
)

# Enough newer events to push an id out of the window (its capacity and its slack).
PAST_THE_WINDOW = RecentIds().capacity * 9 // 8 + 1000


def payload(n: int) -> bytes:
    return json.dumps({"hook_event_name": "UserPromptSubmit", "session_id": "idem",
                       "prompt": f"p{n}"}).encode()


def send_one(home: Path, frame: bytes) -> tuple[int, int]:
    _id, state, seq = send_frame(home, frame)
    return state, seq


def test_an_id_far_older_than_the_window_is_never_stored_twice(home):
    event_id, ts_ns = os.urandom(16), time.time_ns()
    first = wire.encode_event(event_id, ts_ns, payload(0), len(payload(0)))
    # A new event stamped as long ago: not in the journal, so it must be stored once.
    late_id = os.urandom(16)
    late = wire.encode_event(late_id, ts_ns, payload(-1), len(payload(-1)))
    with Daemon(home):
        state, seq = send_one(home, first)
        assert state == wire.STORED
        assert send_one(home, first) == (wire.DUPLICATE, seq)  # inside the window
        send_events(home, [payload(n) for n in range(1, PAST_THE_WINDOW)], window=2048)

        # The same frame again, as a hook's retry would carry it: the window no longer
        # knows the id, and the old daemon stored it a second time here.
        assert send_one(home, first)[0] == wire.BUSY
        assert send_one(home, late)[0] == wire.BUSY
        # What the hook does with BUSY: spool the frame; the drain checks the journal.
        hook.spool(str(home / "spool"), first, event_id, ts_ns)
        hook.spool(str(home / "spool"), late, late_id, ts_ns)
        wait_until(lambda: not spool_files(home), "the spool is drained")
        counters = status(home)["counters"]
        assert counters["spool_duplicates"] == 1
        assert counters["spool_drained"] == 1
        assert counters["busy_stamped_before_window"] == 2
    ids = [e["id"] for e in journal_events(home)]
    assert ids.count(event_id.hex()) == 1
    assert ids.count(late_id.hex()) == 1
    assert len(ids) == len(set(ids)) == PAST_THE_WINDOW + 1
