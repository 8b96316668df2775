"""The ring: a file-backed, memory-mapped circular buffer of opaque byte records.

The daemon appends one record per event (a JSON line) and only then acks the hook, so
whatever the ring holds must survive a ``kill -9`` of the daemon. It lives in a file mapped
with ``MAP_SHARED``: a store into the mapping is a store into the kernel's page cache, which
outlives the process. Several consumers (the journal writer, a WebSocket broadcaster,
forwarders) drain the ring independently, each from its own cursor persisted in the ring's
header. A record is never overwritten before every registered consumer has passed it: when
there is no room, :meth:`Ring.append` returns False and the daemon stops acking (hooks then
spool to disk).

:class:`Ring` is pure logic over any writable buffer (a ``bytearray`` in tests, an
``mmap.mmap`` in production) and does no I/O; :func:`open_ring_file` at the bottom of the
module maps a real file. A ring is single-writer and not thread-safe: one process (the
daemon) and one thread (its event loop) use it.

Layout (all integers little-endian; every field and every record 8-byte aligned)::

    header, HEADER_BYTES = 4096 bytes
        0   magic            8 bytes  b"MPMDRING" (written last by create)
        8   version          u32      1
        12  header size      u32      4096
        16  capacity         u64      size of the data area, a multiple of 8
        24  head             u64      logical position where the next record goes
        32  ring id          u64      random, chosen at create (see "checksums" below)
        40  reserved         24 bytes zero
        64  16 consumer slots of 48 bytes:
                +0   name    32 bytes utf-8, NUL-padded; first byte NUL = free slot
                +32  cursor  u64      logical position up to which this consumer is done
                +40  reserved u64
    data area, ``capacity`` bytes, starting at offset HEADER_BYTES

Positions are logical byte offsets that only grow; the physical offset of position ``p`` in
the data area is ``p % capacity``. A record is an 8-byte header (u32 length, u32 checksum)
followed by its data, padded to a multiple of 8 (the padding bytes are not significant). A
record never wraps: when it does not fit between its position and the end of the data area,
a padding marker (length 0xFFFFFFFF) is written there and the record starts the next lap.
Since positions and the capacity are multiples of 8, at least 8 bytes always remain before
the end of the data area, so a padding marker always fits.

Checksums: a record's checksum is ``crc32(ring_id_le8 + position_le8 + data)`` (a padding
marker's is the same with no data). Binding the checksum to the logical position and to the
ring's random id means stale bytes left by an earlier lap, or by an earlier ring in the same
file, can never pass for a record at the current position, which is what lets
:meth:`Ring.recover` find the true end of the data after a crash.

Crash safety: :meth:`Ring.append` writes the record (and any padding marker) first and
stores ``head`` last, with a single aligned 8-byte store, so a process killed mid-append
leaves the record invisible and the ring consistent. Cursors and ``head`` are always stored
that way too; a consumer slot is claimed by writing its cursor, then its name with the first
byte last (the slot stays free until that byte lands).
"""

from __future__ import annotations

import errno
import mmap
import os
import struct
import sys
import time
import zlib
from typing import Any, TypeAlias

from mpmd.errors import ConsumerSlotsFull, RingCorrupt

__all__ = [
    "DEFAULT_MAX_BYTES",
    "HEADER_BYTES",
    "MAGIC",
    "MAX_CONSUMERS",
    "MAX_NAME_BYTES",
    "MIN_CAPACITY",
    "PageReleaser",
    "RECORD_HEADER_BYTES",
    "VERSION",
    "ConsumerSlotsFull",
    "Ring",
    "RingCorrupt",
    "open_ring_file",
    "record_size",
]

MAGIC = b"MPMDRING"
VERSION = 1
HEADER_BYTES = 4096
MIN_CAPACITY = 4096
MAX_CONSUMERS = 16
MAX_NAME_BYTES = 32
RECORD_HEADER_BYTES = 8
DEFAULT_MAX_BYTES = 1024 * 1024  # default byte budget of one read()

# What the ring can live in (anything writable with the buffer protocol will do).
WritableBuffer: TypeAlias = bytearray | memoryview | mmap.mmap
# What a record can be given as.
BytesLike: TypeAlias = bytes | bytearray | memoryview

_PAD_MARKER = 0xFFFFFFFF
_MAX_POSITION = (1 << 63) - 1  # positions stay well inside u64; 2**63 bytes is never reached

_OFF_SLOTS = 64
_SLOT_BYTES = 48
_SLOT_CURSOR = 32
_IDX_HEAD = 24 // 8  # index of head in the header viewed as u64 words

_FIXED = struct.Struct("<8sIIQQQ")  # magic, version, header size, capacity, head, ring id
_REC = struct.Struct("<II")  # record header: length, checksum
_U64 = struct.Struct("<Q")

_rec_pack_into = _REC.pack_into
_rec_unpack_from = _REC.unpack_from
_u64_pack = _U64.pack
_crc32 = zlib.crc32


def record_size(length: int) -> int:
    """Bytes a record of ``length`` data bytes takes in the data area (header + padding).

    A record placed at the start of a new lap also costs the bytes skipped at the end of the
    previous one; :meth:`Ring.append` accounts for that.
    """
    return (length + RECORD_HEADER_BYTES + 7) & -8


def _slot_offset(slot: int) -> int:
    return _OFF_SLOTS + slot * _SLOT_BYTES


def _cursor_index(slot: int) -> int:
    return (_slot_offset(slot) + _SLOT_CURSOR) // 8


def _check_capacity(capacity: int) -> None:
    if not isinstance(capacity, int) or isinstance(capacity, bool):
        raise TypeError("capacity must be an int")
    if capacity < MIN_CAPACITY or capacity % 8:
        raise ValueError(
            f"ring capacity must be a multiple of 8 and at least {MIN_CAPACITY}, got {capacity}"
        )


def _encode_name(name: str) -> bytes:
    if not isinstance(name, str):
        raise TypeError("consumer name must be a str")
    raw = name.encode("utf-8")
    if not raw or len(raw) > MAX_NAME_BYTES or b"\0" in raw:
        raise ValueError(
            f"consumer name must be 1 to {MAX_NAME_BYTES} utf-8 bytes without NUL: {name!r}"
        )
    return raw


def _writable_view(buf: Any) -> memoryview:
    mv = memoryview(buf)
    if mv.readonly:
        mv.release()
        raise TypeError("the ring needs a writable buffer")
    if not mv.c_contiguous:
        mv.release()
        raise TypeError("the ring needs a contiguous buffer")
    if mv.format != "B" or mv.itemsize != 1 or mv.ndim != 1:
        mv = mv.cast("B")
    return mv


class _LEWords:
    """u64 little-endian words of a buffer, for the rare big-endian host.

    On little-endian hosts (all the daemon's targets) the header is viewed through
    ``memoryview.cast("Q")`` instead, whose item store is one aligned 8-byte store: a process
    killed in the middle cannot leave a half-written head or cursor. ``struct.pack_into``
    gives no such guarantee.
    """

    __slots__ = ("_mv",)

    def __init__(self, mv: memoryview) -> None:
        self._mv = mv

    def __getitem__(self, index: int) -> int:
        value: int = _U64.unpack_from(self._mv, index * 8)[0]
        return value

    def __setitem__(self, index: int, value: int) -> None:
        _U64.pack_into(self._mv, index * 8, value)

    def release(self) -> None:
        pass


class Ring:
    """A circular buffer of byte records over a writable buffer (see the module docstring).

    Build one with :meth:`create` (format a fresh ring) or :meth:`open` (attach to an
    existing one). The ring keeps memoryviews of the buffer: call :meth:`close` before
    closing an ``mmap`` it was built on. ``note`` collects human-readable remarks about
    repairs (set by :meth:`recover` and :func:`open_ring_file`), None when there were none.
    """

    __slots__ = (
        "_cap",
        "_cursors",
        "_head",
        "_lo",
        "_max_record",
        "_mv",
        "_seed0",
        "_slots",
        "_words",
        "note",
    )

    def __init__(self) -> None:
        raise TypeError("use Ring.create() or Ring.open()")

    # -- construction -------------------------------------------------------------------

    @classmethod
    def create(cls, buf: WritableBuffer, capacity: int, *, head: int = 0) -> Ring:
        """Format a fresh, empty ring with no consumers in ``buf`` and return it.

        ``len(buf)`` must be at least ``HEADER_BYTES + capacity``; ``capacity`` a multiple of
        8, at least MIN_CAPACITY. ``head`` is the logical position to start from (a
        multiple of 8): passing the head of a previous ring keeps positions increasing
        across a re-creation. Anything in the data area is ignored (a new random ring id
        makes old records unreadable). The magic is written last, so a buffer whose
        formatting was interrupted fails :meth:`open`.
        """
        _check_capacity(capacity)
        if not isinstance(head, int) or head < 0 or head % 8 or head > _MAX_POSITION:
            raise ValueError(f"head must be a non-negative multiple of 8, got {head!r}")
        mv = _writable_view(buf)
        if len(mv) < HEADER_BYTES + capacity:
            size = len(mv)
            mv.release()
            raise ValueError(
                f"buffer of {size} bytes is too small for a ring of capacity {capacity} "
                f"(needs {HEADER_BYTES + capacity})"
            )
        ring_id = int.from_bytes(os.urandom(8), "little")
        mv[:HEADER_BYTES] = bytes(HEADER_BYTES)
        _FIXED.pack_into(mv, 0, bytes(8), VERSION, HEADER_BYTES, capacity, head, ring_id)
        mv[0:8] = MAGIC
        ring = cls.__new__(cls)
        ring._setup(mv, capacity, head, ring_id, {}, {})
        return ring

    @classmethod
    def open(cls, buf: WritableBuffer) -> Ring:
        """Attach to the ring already formatted in ``buf``.

        Validates the magic, version, header size, capacity (against ``len(buf)``), head and
        every consumer slot (name, cursor aligned, ``cursor <= head`` and
        ``head - cursor <= capacity``) and raises :class:`RingCorrupt` saying what is wrong.
        Records are not checked here: after a crash, call :meth:`recover`.
        """
        mv = _writable_view(buf)
        try:
            capacity, head, ring_id, slots, cursors = cls._validate(mv)
        except RingCorrupt:
            mv.release()
            raise
        ring = cls.__new__(cls)
        ring._setup(mv, capacity, head, ring_id, slots, cursors)
        return ring

    @staticmethod
    def _validate(
        mv: memoryview,
    ) -> tuple[int, int, int, dict[str, int], dict[str, int]]:
        if len(mv) < HEADER_BYTES:
            raise RingCorrupt(
                f"buffer of {len(mv)} bytes is smaller than the {HEADER_BYTES}-byte ring header"
            )
        magic, version, header_size, capacity, head, ring_id = _FIXED.unpack_from(mv, 0)
        if magic != MAGIC:
            raise RingCorrupt(f"not a ring: magic is {magic!r}, expected {MAGIC!r}")
        if version != VERSION:
            raise RingCorrupt(f"unsupported ring format version {version} (expected {VERSION})")
        if header_size != HEADER_BYTES:
            raise RingCorrupt(f"ring header size is {header_size}, expected {HEADER_BYTES}")
        if capacity < MIN_CAPACITY or capacity % 8:
            raise RingCorrupt(f"invalid ring capacity {capacity}")
        if len(mv) < HEADER_BYTES + capacity:
            raise RingCorrupt(
                f"ring of capacity {capacity} needs {HEADER_BYTES + capacity} bytes, "
                f"the buffer has {len(mv)} (truncated file?)"
            )
        if head % 8 or head > _MAX_POSITION:
            raise RingCorrupt(f"invalid ring head {head}")
        slots: dict[str, int] = {}
        cursors: dict[str, int] = {}
        for slot in range(MAX_CONSUMERS):
            off = _slot_offset(slot)
            raw = bytes(mv[off : off + MAX_NAME_BYTES])
            if raw[0] == 0:
                continue
            raw = raw.rstrip(b"\0")
            try:
                if b"\0" in raw:
                    raise UnicodeError
                name = raw.decode("utf-8")
            except UnicodeError:
                raise RingCorrupt(f"consumer slot {slot} has an invalid name {raw!r}") from None
            if name in slots:
                raise RingCorrupt(f"consumer {name!r} appears in two slots")
            (cursor,) = _U64.unpack_from(mv, off + _SLOT_CURSOR)
            if cursor % 8 or cursor > head or head - cursor > capacity:
                raise RingCorrupt(
                    f"consumer {name!r} has cursor {cursor}, invalid for head {head} "
                    f"and capacity {capacity}"
                )
            slots[name] = slot
            cursors[name] = cursor
        return capacity, head, ring_id, slots, cursors

    def _setup(
        self,
        mv: memoryview,
        capacity: int,
        head: int,
        ring_id: int,
        slots: dict[str, int],
        cursors: dict[str, int],
    ) -> None:
        self._mv = mv
        # Header words: u64 items, stored and loaded whole (see _LEWords).
        self._words: Any = (
            mv[:HEADER_BYTES].cast("Q") if sys.byteorder == "little" else _LEWords(mv)
        )
        self._cap = capacity
        self._head = head
        self._max_record = capacity // 4
        self._seed0 = _crc32(_u64_pack(ring_id))
        self._slots = slots
        self._cursors = cursors
        self._lo = min(cursors.values()) if cursors else None
        self.note: str | None = None

    def close(self) -> None:
        """Release the ring's views of the buffer (the buffer itself is not closed).

        Needed before ``mmap.close()``, which refuses while views exist. The ring is
        unusable afterwards. Idempotent.
        """
        self._words.release()
        self._mv.release()

    def __enter__(self) -> Ring:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Ring capacity={self._cap} head={self._head} consumers={self._cursors!r}>"

    # -- state --------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """Size of the data area in bytes."""
        return self._cap

    @property
    def head(self) -> int:
        """Logical position where the next record will be written."""
        return self._head

    @property
    def max_record_bytes(self) -> int:
        """Largest record :meth:`append` accepts (``capacity // 4``)."""
        return self._max_record

    @property
    def low(self) -> int:
        """The lowest consumer cursor (head when there is none): every byte before it is
        done for every consumer."""
        return self._head if self._lo is None else self._lo

    @property
    def used_bytes(self) -> int:
        """Bytes retained for the slowest consumer (``head - min(cursors)``), 0 if none."""
        lo = self._lo
        return 0 if lo is None else self._head - lo

    @property
    def free_bytes(self) -> int:
        """``capacity - used_bytes``. A record needs ``record_size(len)`` of it, plus the
        rest of the current lap when it does not fit there."""
        return self._cap - self.used_bytes

    @property
    def consumers(self) -> dict[str, int]:
        """A copy of {consumer name: cursor}."""
        return dict(self._cursors)

    def lag(self, name: str) -> int:
        """Bytes between ``name``'s cursor and head (KeyError if unknown)."""
        return self._head - self._cursors[name]

    def _add_note(self, text: str) -> None:
        self.note = text if self.note is None else f"{self.note}; {text}"

    # -- consumers ----------------------------------------------------------------------

    def add_consumer(self, name: str) -> None:
        """Register ``name`` with its cursor at the current head (it sees only records
        appended from now on). No-op if it exists. Raises ValueError for a name that is
        empty, longer than MAX_NAME_BYTES utf-8 bytes or contains NUL, and
        :class:`ConsumerSlotsFull` when MAX_CONSUMERS consumers exist."""
        raw = _encode_name(name)
        if name in self._slots:
            return
        used = set(self._slots.values())
        slot = next((s for s in range(MAX_CONSUMERS) if s not in used), None)
        if slot is None:
            raise ConsumerSlotsFull(f"all {MAX_CONSUMERS} ring consumer slots are in use")
        head = self._head
        off = _slot_offset(slot)
        self._words[_cursor_index(slot)] = head
        padded = raw.ljust(MAX_NAME_BYTES, b"\0")
        self._mv[off + 1 : off + MAX_NAME_BYTES] = padded[1:]
        self._mv[off] = padded[0]  # the slot becomes used only now
        self._slots[name] = slot
        self._cursors[name] = head
        self._lo = head if self._lo is None else min(self._lo, head)

    def remove_consumer(self, name: str) -> bool:
        """Unregister ``name``, releasing whatever it held back. False if it did not exist."""
        slot = self._slots.pop(name, None)
        if slot is None:
            return False
        del self._cursors[name]
        off = _slot_offset(slot)
        self._mv[off] = 0  # free from this store on
        self._mv[off + 1 : off + MAX_NAME_BYTES] = bytes(MAX_NAME_BYTES - 1)
        self._words[_cursor_index(slot)] = 0
        self._lo = min(self._cursors.values()) if self._cursors else None
        return True

    # -- records ------------------------------------------------------------------------

    def append(self, data: BytesLike) -> bool:
        """Store one record; True if stored, False if there is not enough room.

        Room is what the slowest consumer has passed: the record (``record_size(len)``
        bytes, plus the end of the current lap when it must start the next one) must fit
        without reaching any unread byte. With no consumer registered nothing is retained
        and this always succeeds. Raises ValueError if ``len(data) > max_record_bytes``.
        """
        if type(data) is not bytes:
            data = memoryview(data).cast("B")
        n = len(data)
        if n > self._max_record:
            raise ValueError(
                f"record of {n} bytes exceeds the ring's limit of {self._max_record} "
                f"(capacity // 4)"
            )
        head = self._head
        cap = self._cap
        lo = self._lo
        if lo is None:
            lo = head
        phys = head % cap
        room = cap - phys
        total = (n + 15) & -8
        mv = self._mv
        if total > room:
            # Does not fit before the end of the data area: pad and start the next lap.
            if head + room + total - lo > cap:
                return False
            _rec_pack_into(
                mv, HEADER_BYTES + phys, _PAD_MARKER, _crc32(_u64_pack(head), self._seed0)
            )
            head += room
            off = HEADER_BYTES
        else:
            if head + total - lo > cap:
                return False
            off = HEADER_BYTES + phys
        _rec_pack_into(mv, off, n, _crc32(data, _crc32(_u64_pack(head), self._seed0)))
        mv[off + 8 : off + 8 + n] = data
        head += total
        self._words[_IDX_HEAD] = head  # publish: the record is visible from this store on
        self._head = head
        return True

    def read(
        self, name: str, max_records: int = 1024, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> list[tuple[int, bytes]]:
        """The records after ``name``'s cursor, oldest first, as (end position, data).

        The end position is the logical position just after the record: pass it to
        :meth:`commit` once the record is processed. The cursor does not move. At most
        ``max_records`` records, and at most ``max_bytes`` data bytes except that one
        record is always returned when any is pending (however large). Every record's
        checksum is verified: a damaged record raises :class:`RingCorrupt`, but the good
        records before it are returned first (the next call raises). Recovery is
        :meth:`recover`. KeyError if ``name`` is not a consumer.
        """
        pos = self._cursors[name]
        head = self._head
        out: list[tuple[int, bytes]] = []
        if pos >= head or max_records <= 0:
            return out
        mv = self._mv
        cap = self._cap
        seed0 = self._seed0
        nbytes = 0
        while pos < head:
            phys = pos % cap
            off = HEADER_BYTES + phys
            n, crc = _rec_unpack_from(mv, off)
            seed = _crc32(_u64_pack(pos), seed0)
            if n == _PAD_MARKER:
                if crc != seed:
                    return self._damaged(out, name, pos, "bad padding marker")
                pos += cap - phys
                continue
            total = (n + 15) & -8
            end = pos + total
            if total > cap - phys or end > head:
                return self._damaged(out, name, pos, f"impossible record length {n}")
            if out and nbytes + n > max_bytes:
                break
            start = off + 8
            data = mv[start : start + n]
            if _crc32(data, seed) != crc:
                return self._damaged(out, name, pos, "checksum mismatch")
            out.append((end, data.tobytes()))
            pos = end
            nbytes += n
            if len(out) >= max_records:
                break
        return out

    def _damaged(
        self, out: list[tuple[int, bytes]], name: str, pos: int, why: str
    ) -> list[tuple[int, bytes]]:
        if out:
            return out
        raise RingCorrupt(f"ring record at position {pos} (consumer {name!r}): {why}")

    def commit(self, name: str, pos: int) -> None:
        """Persist ``name``'s cursor at ``pos``: everything before it is done for ``name``.

        ``pos`` must be an end position returned by :meth:`read` (or the current cursor):
        ValueError if it is before the cursor, after head or not 8-aligned, KeyError if
        ``name`` is not a consumer.
        """
        cursor = self._cursors[name]
        if pos == cursor:
            return
        if pos < cursor or pos > self._head or pos & 7:
            raise ValueError(
                f"cannot commit consumer {name!r} at {pos}: cursor is {cursor}, "
                f"head is {self._head}"
            )
        self._words[_cursor_index(self._slots[name])] = pos
        self._cursors[name] = pos
        if cursor == self._lo:
            self._lo = min(self._cursors.values())

    # -- recovery -----------------------------------------------------------------------

    def _entry_at(self, pos: int, limit: int) -> tuple[int, bool] | None:
        """(end position, is a record) of the valid entry at ``pos`` ending at or before
        ``limit``, or None if there is none."""
        cap = self._cap
        phys = pos % cap
        room = cap - phys
        off = HEADER_BYTES + phys
        n, crc = _rec_unpack_from(self._mv, off)
        seed = _crc32(_u64_pack(pos), self._seed0)
        if n == _PAD_MARKER:
            end = pos + room
            return (end, False) if crc == seed and end <= limit else None
        total = (n + 15) & -8
        end = pos + total
        if total > room or end > limit:
            return None
        if _crc32(self._mv[off + 8 : off + 8 + n], seed) != crc:
            return None
        return end, True

    def recover(self) -> int:
        """Check every retained record; cut the ring at the first bad one. Returns the
        number of records pending for the slowest consumer.

        Call once after :meth:`open` following a crash (idempotent, so calling it on every
        start is fine). Walks from the lowest cursor to head verifying each record's
        header and checksum. At the first damaged record, head is moved back to where it
        starts: that record and everything after it are dropped (there is no reliable way
        to resynchronise past damage). Cursors beyond the new head are moved back to it,
        and a cursor that does not fall on a record boundary is moved forward to the next
        one. Each repair is described in :attr:`note`. Cursors are stored before head, so
        a crash during recovery leaves a ring that opens.
        """
        head = self._head
        lo = self._lo if self._lo is not None else head
        pending = sorted({c for c in self._cursors.values() if c > lo})
        moved: dict[int, int] = {}
        i = 0
        pos = lo
        count = 0
        while True:
            while i < len(pending) and pending[i] <= pos:
                if pending[i] != pos:
                    moved[pending[i]] = pos
                i += 1
            if pos >= head:
                break
            entry = self._entry_at(pos, head)
            if entry is None:
                break
            pos, is_record = entry
            count += is_record
        for cursor in pending[i:]:
            moved[cursor] = pos
        if moved:
            for name, cursor in self._cursors.items():
                if cursor in moved:
                    new = moved[cursor]
                    self._words[_cursor_index(self._slots[name])] = new
                    self._cursors[name] = new
            self._lo = min(self._cursors.values())
        if pos != head:
            self._words[_IDX_HEAD] = pos
            self._head = pos
            self._add_note(
                f"ring: damaged record at position {pos}; dropped the {head - pos} bytes "
                f"from there to the old head"
            )
        if moved:
            names = sorted(n for n, c in self._cursors.items() if c in moved.values())
            self._add_note(f"ring: moved cursor(s) of {', '.join(names)} to a record boundary")
        return count


# -- files --------------------------------------------------------------------------------

RELEASE_CHUNK = 1024 * 1024


class PageReleaser:
    """Hands the pages of ring data that every consumer has passed back to the kernel.

    Without it the daemon's resident set grows by the whole mapped ring (64 MiB by default)
    once the ring has gone round once, though only the unread part is ever needed again.
    ``MADV_DONTNEED`` on a ``MAP_SHARED`` file mapping drops this process's page-table
    entries only: the data stays in the file and the page cache, and touching the page again
    faults it back in. Call it after each commit; it works in chunks of ``chunk`` bytes.
    """

    def __init__(self, ring: Ring, mm: mmap.mmap, chunk: int = RELEASE_CHUNK) -> None:
        self._ring = ring
        self._mm = mm
        self._chunk = chunk
        self._done = ring.low
        self._advice = getattr(mmap, "MADV_DONTNEED", None) if hasattr(mm, "madvise") else None

    def __call__(self) -> int:
        """Release what was passed since the last call; returns the bytes released."""
        lo = self._ring.low
        if self._advice is None or lo - self._done < self._chunk:
            return 0
        cap = self._ring.capacity
        page = mmap.PAGESIZE
        released = 0
        pos = self._done
        while pos < lo:
            phys = pos % cap
            n = min(lo - pos, cap - phys)
            start = -(-(HEADER_BYTES + phys) // page) * page  # whole pages inside the range
            end = (HEADER_BYTES + phys + n) // page * page
            if end > start:
                self._mm.madvise(self._advice, start, end - start)
                released += end - start
            pos += n
        self._done = lo
        return released



def _reserve(fd: int, size: int) -> None:
    """Allocate the file's blocks now: a store into a mapped hole of a full file system
    would kill the daemon with SIGBUS instead of failing here with OSError(ENOSPC)."""
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is not None:
        try:
            fallocate(fd, 0, size)
            return
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
    # No fallocate (macOS) or not supported by this file system: write the zeros.
    chunk = bytes(1024 * 1024)
    offset = 0
    while offset < size:
        offset += os.pwrite(fd, chunk[: min(len(chunk), size - offset)], offset)


def _open_fd(path: str) -> int:
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    if hasattr(os, "fchmod"):
        try:
            os.fchmod(fd, 0o600)  # also tightens a file created by someone more lenient
        except OSError:
            os.close(fd)
            raise
    return fd


def _format(
    fd: int, capacity: int, head: int = 0, consumers: tuple[str, ...] = ()
) -> tuple[Ring, mmap.mmap]:
    size = HEADER_BYTES + capacity
    os.ftruncate(fd, 0)
    os.ftruncate(fd, size)
    _reserve(fd, size)
    mm = mmap.mmap(fd, size)
    ring = Ring.create(mm, capacity, head=head)
    for name in consumers:
        ring.add_consumer(name)
    return ring, mm


def _move_aside(path: str) -> str:
    base = f"{path}.corrupt-{int(time.time())}"
    target = base
    n = 0
    while os.path.lexists(target):
        n += 1
        target = f"{base}-{n}"
    os.rename(path, target)
    return target


def open_ring_file(path: str | os.PathLike[str], capacity: int) -> tuple[Ring, mmap.mmap]:
    """Map the ring file at ``path``, creating or repairing it so that this never fails
    for a bad file (only for an OSError such as a full disk or a missing directory).

    * No file (or an empty one): it is created owner-only (0600), sized
      ``HEADER_BYTES + capacity`` with its blocks allocated, and formatted.
    * A valid ring: it is opened and :meth:`Ring.recover` is run (so the returned ring is
      verified). If its capacity differs from ``capacity``: when no consumer has unread
      records it is re-created at the new capacity, keeping its consumers and head
      position; otherwise it is kept at its existing capacity.
    * A file that is not a valid ring (garbage, truncated, wrong magic or version) is
      renamed to ``<path>.corrupt-<unix time>`` and a fresh ring is created.

    Everything but the plain cases is described in ``ring.note`` (None otherwise) for the
    caller to log. Returns ``(ring, mm)``; the caller owns both and closes them in this
    order: ``ring.close(); mm.close()``. No ``mm.flush()`` is needed for the ring to
    survive the death of the process: the mapping is MAP_SHARED, so every store is already
    in the kernel's page cache and reaches the file without help. flush (msync) only
    matters against a crash of the whole machine, which the journal's fsync covers.

    Only one process may use the file at a time (the daemon's single-instance lock
    guarantees it); nothing here locks it.
    """
    _check_capacity(capacity)
    path = os.fspath(path)
    notes: list[str] = []
    fd = _open_fd(path)
    try:
        size = os.fstat(fd).st_size
        if size > 0:
            mm = mmap.mmap(fd, size)
            try:
                ring = Ring.open(mm)
            except RingCorrupt as exc:
                mm.close()
                os.close(fd)
                fd = -1
                aside = _move_aside(path)
                notes.append(
                    f"ring file was invalid ({exc}); moved it to {aside} and started fresh"
                )
                fd = _open_fd(path)
            else:
                ring.recover()
                if ring.capacity == capacity:
                    return ring, mm
                if ring.used_bytes == 0:
                    head, names = ring.head, tuple(ring.consumers)
                    old = ring.capacity
                    if ring.note:
                        notes.append(ring.note)
                    ring.close()
                    mm.close()
                    ring, mm = _format(fd, capacity, head, names)
                    notes.insert(0, f"ring re-created with capacity {capacity} (was {old})")
                    ring.note = "; ".join(notes)
                    return ring, mm
                ring._add_note(
                    f"ring kept at its capacity {ring.capacity} instead of {capacity}: "
                    f"{ring.used_bytes} bytes are still unread"
                )
                return ring, mm
        ring, mm = _format(fd, capacity)
        ring.note = "; ".join(notes) or None
        return ring, mm
    finally:
        if fd >= 0:
            os.close(fd)
