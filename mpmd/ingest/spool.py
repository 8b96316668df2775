"""Draining the spool: the events hooks wrote to disk when the daemon did not ack them.

Each file is one frame (mpm_hook.hook.spool). Files are taken in name order (hook time
first), put through the same Store as socket frames, and deleted only once the Store says
STORED or DUPLICATE, so a crash mid-drain re-reads the file and the id check makes the
second pass a no-op. A file that is not a valid frame moves to ``rejected/`` (kept aside,
counted). A hook's leftover temp file (killed between write and rename) is taken too once
it is old enough that no live hook can still be writing it.

A frame over ``max_frame_bytes`` but within the wire's ceiling (spooled before the limit was
lowered, by a hook that did not know it, or refused on the socket for it) is stored with
its payload cut to fit, as the hook would have cut it: never refused for its size alone.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from mpm_hook import wire
from mpmd.counters import Count
from mpmd.ingest.framing import FrameError, decode_one
from mpmd.model.events import EventFrame, StoredEventView

if TYPE_CHECKING:
    from mpmd.ingest.hook_socket import Rejects
    from mpmd.storage.store import Store

log = logging.getLogger("mpmd.ingest.spool")

STALE_TMP_S = 60.0
BATCH = 4096
# No hook writes a longer file; reading no more bounds what a stray file costs in memory.
_READ_MAX = wire.LENGTH_BYTES + wire.MAX_FRAME_BYTES + 1

_id_decoder = msgspec.json.Decoder(StoredEventView)


def pending(folder: Path) -> int:
    try:
        return sum(1 for e in os.scandir(folder) if e.name.endswith(".frame"))
    except FileNotFoundError:
        return 0


def _candidates(folder: Path, now: float) -> list[Path]:
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    files = []
    for entry in entries:
        if entry.name.endswith(".frame"):
            files.append(Path(entry.path))
        elif entry.name.endswith(".tmp"):
            try:
                if now - entry.stat().st_mtime > STALE_TMP_S:
                    files.append(Path(entry.path))
            except FileNotFoundError:
                pass
    files.sort(key=lambda p: p.name.lstrip("."))
    return files[:BATCH]


def ids_in_journal(lines: Iterable[bytes], wanted: set[str]) -> dict[str, int]:
    """hex id -> seq for the wanted ids found in the journal lines."""
    found: dict[str, int] = {}
    for line in lines:
        try:
            view = _id_decoder.decode(line)
        except msgspec.DecodeError:
            continue
        if view.id in wanted:
            found[view.id] = view.seq
            if len(found) == len(wanted):
                break
    return found


class SpoolDrainer:
    def __init__(self, folder: Path, store: Store, rejects: Rejects, journal_lines,
                 counters: Counter[str], max_frame_bytes: int = wire.MAX_FRAME_BYTES) -> None:
        self.folder = folder
        self.store = store
        self.rejects = rejects
        self.journal_lines = journal_lines  # callable: () -> iterable of journal lines
        self.counters = counters
        self.max_frame_bytes = max_frame_bytes

    def drain(self) -> int:
        """Put spooled events into the ring, oldest first; stops when the ring is full.
        Returns how many files were taken (stored, duplicate or rejected)."""
        taken = 0
        while True:
            files = _candidates(self.folder, time.time())
            if not files:
                return taken
            frames: list[tuple[Path, EventFrame]] = []
            for path in files:
                try:
                    with path.open("rb") as f:
                        data = f.read(_READ_MAX)
                except FileNotFoundError:
                    continue
                try:
                    frame = decode_one(data, wire.MAX_FRAME_BYTES)
                    if len(data) - wire.LENGTH_BYTES > self.max_frame_bytes:
                        frame = self._cut(frame, len(data) - wire.LENGTH_BYTES, path.name)
                    frames.append((path, frame))
                except FrameError as exc:
                    log.warning("spool file %s is not a valid frame (%s): kept aside",
                                path.name, exc)
                    self.rejects.keep("spool_" + exc.reason, data, name=path.name.lstrip("."))
                    path.unlink(missing_ok=True)
                    taken += 1
            self._mark_old_duplicates(frames)
            for path, frame in frames:
                status, _seq = self.store.put(frame, source="spool")
                if status == wire.BUSY:
                    return taken
                if status == wire.DUPLICATE:
                    self.counters[Count.SPOOL_DUPLICATES] += 1
                else:
                    self.counters[Count.SPOOL_DRAINED] += 1
                path.unlink(missing_ok=True)
                taken += 1
            if len(files) < BATCH:
                return taken

    def _cut(self, frame: EventFrame, body_bytes: int, name: str) -> EventFrame:
        """``frame`` with its payload cut to what the hook keeps under our limit; its
        decision (what the hook did) stays. FrameError when the rest of the frame alone
        passes the protocol's bound (no hook writes such a frame, and cutting the payload
        would not make it fit)."""
        if body_bytes - len(frame.payload) > wire.EVENT_OVERHEAD:
            raise FrameError("invalid", "more than a decision's room besides the payload")
        keep = wire.payload_limit(self.max_frame_bytes)
        log.info("spool file %s: a frame of %d bytes, over max_frame_bytes (%d): payload "
                 "cut to %d bytes", name, body_bytes, self.max_frame_bytes, keep)
        self.counters[Count.SPOOL_CUT] += 1
        # original_size stays: decode_body made sure it is at least the uncut payload's.
        return msgspec.structs.replace(frame, payload=frame.payload[:keep])

    def _mark_old_duplicates(self, frames: list[tuple[Path, EventFrame]]) -> None:
        """Ids older than the in-memory window are looked up in the journal (rare: only
        after a long outage), and found ones are added to the window as duplicates."""
        recent = self.store.recent
        old = {f.id.hex(): f for _p, f in frames
               if recent.get(f.id) is None and not recent.exact_for(f.ts_ns)}
        if not old:
            return
        log.info("checking %d old spooled events against the journal", len(old))
        for hex_id, seq in ids_in_journal(self.journal_lines(), set(old)).items():
            recent.add(bytes.fromhex(hex_id), seq, 0)
