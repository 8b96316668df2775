"""The journal: the source of truth, as rotating JSON Lines segment files.

One event per line, so that a user can read the journal with ``jq`` and ``grep`` and a
crash can cost at most the line being written. Every line is a JSON object whose text
starts exactly with ``{"seq":<decimal int>,`` (the daemon encodes it that way), and seq is
a gapless increasing integer; readers rely on the prefix to find a line's seq without
decoding the line (:func:`line_seq`).

Layout of the directory::

    0000000000000001-20250101.jsonl.gz   closed, compressed
    0000000000041234-20250102.jsonl.gz
    0000000000093012-20250103.jsonl      the active segment (the last one, plain)

A segment is named after the seq of its first line and the UTC day it was opened, zero
padded so that sorting names sorts by seq. Only the last segment is ever written; the
others are "closed" and may be gzipped by :meth:`Journal.compress_closed` and deleted by
:meth:`Journal.enforce_retention`, both of which may run in a worker thread while the event
loop thread keeps appending.

Crash safety rests on three rules:

* appends go straight to the file descriptor with ``os.write`` (no user-space buffer), so
  what :meth:`Journal.append` has returned survives the death of the process; fsync
  (:meth:`Journal.maybe_sync`) is what protects against the death of the machine;
* a torn last line (the daemon killed in the middle of a write) is cut at open, and
  readers never yield a line that has no newline yet;
* a segment is compressed to a temporary name, fsynced, then renamed, and only then is
  the plain file unlinked: at every instant at least one complete copy exists.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import msgspec

from mpmd.durable import fsync_dir

__all__ = ["Journal", "SegmentInfo", "line_seq"]

log = logging.getLogger("mpmd.storage.journal")

MIB = 1024 * 1024
DAY_SECONDS = 86400

_PREFIX = b'{"seq":'
_PREFIX_LEN = len(_PREFIX)
_NAME_RE = re.compile(r"^(\d{16})-(\d{8})\.jsonl(\.gz)?$")
_TMP_SUFFIX = ".tmp"
_READ_CHUNK = 1 * MIB  # forward reads: big enough to amortise syscalls and splits
_TAIL_CHUNK = 64 * 1024  # backward reads: read_last usually needs a few KiB
_GZIP_LEVEL = 6  # gzip's default of 9 costs much more CPU for a few percent of size


class _SeqOnly(msgspec.Struct):
    """The fallback decoder's target: msgspec skips every other field without building it."""

    seq: int


_seq_decoder = msgspec.json.Decoder(_SeqOnly)


def line_seq(line: bytes) -> int:
    """The seq of one journal line (without its newline).

    The fast path slices the digits out of the ``{"seq":N,`` prefix the daemon always
    writes, which is several times cheaper than decoding the line; anything else (a
    hand-edited line, another key order) is decoded with msgspec. Raises ValueError when the
    line is not a JSON object with an integer ``seq``.
    """
    if line.startswith(_PREFIX):
        end = line.find(b",", _PREFIX_LEN, _PREFIX_LEN + 21)
        if end > _PREFIX_LEN:
            digits = line[_PREFIX_LEN:end]
            # isdigit() rejects what int() would also accept: signs, spaces, "1_000".
            if digits.isdigit():
                return int(digits)
    try:
        return _seq_decoder.decode(line).seq
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise ValueError(f"not a journal line: {exc}") from None


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """One segment file as it is on disk at the time of the call."""

    name: str
    path: Path
    first_seq: int
    day: str  # YYYYMMDD, the UTC day the segment was opened
    size: int  # bytes on disk (compressed size for a .jsonl.gz)
    compressed: bool
    active: bool  # the segment appends go to; never compressed nor deleted


@dataclass(frozen=True, slots=True)
class _Seg:
    """A segment found by a directory scan; `base` is the name without ``.gz``."""

    base: str
    first_seq: int
    day: str
    compressed: bool

    @property
    def name(self) -> str:
        return self.base + ".gz" if self.compressed else self.base


def _utc_day(ts: float) -> tuple[str, float, float]:
    """The UTC day of `ts` as YYYYMMDD, with the bounds [start, end) of that day."""
    start = (int(ts) // DAY_SECONDS) * DAY_SECONDS
    return time.strftime("%Y%m%d", time.gmtime(start)), float(start), float(start + DAY_SECONDS)


def _split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Complete lines out of a stream of chunks; a last piece with no newline is dropped.

    Dropping it is what makes it safe to read the active segment while it is appended to
    (a reader may see half of a write) and a torn segment that was never repaired.
    """
    rest = b""
    for chunk in chunks:
        if rest:
            chunk = rest + chunk
        lines = chunk.split(b"\n")
        rest = lines.pop()
        yield from lines


def _read_chunks(f: BinaryIO) -> Iterator[bytes]:
    while chunk := f.read(_READ_CHUNK):
        yield chunk


def _reverse_lines(fd: int, size: int) -> Iterator[bytes]:
    """Complete lines of a plain file, last first, reading blocks from the end backwards.

    Whatever follows the last newline (a torn or in-progress line) is skipped.
    """
    pos = size
    rest = b""  # the start of a line whose beginning is in an earlier block
    seen_newline = False
    while pos > 0:
        step = min(_TAIL_CHUNK, pos)
        pos -= step
        block = os.pread(fd, step, pos) + rest
        parts = block.split(b"\n")
        rest = parts[0]
        tail = parts[1:]
        if not seen_newline:
            if not tail:
                continue  # no newline yet: everything so far is the torn tail
            tail.pop()  # what follows the last newline
            seen_newline = True
        yield from reversed(tail)
    if seen_newline and rest:
        yield rest


def _last_newline_end(fd: int, size: int) -> int:
    """The length the file should have: up to and including its last newline (0 if none)."""
    pos = size
    while pos > 0:
        step = min(_TAIL_CHUNK, pos)
        pos -= step
        i = os.pread(fd, step, pos).rfind(b"\n")
        if i >= 0:
            return pos + i + 1
    return 0


class Journal:
    """Appends events to rotating JSON Lines segments and reads them back.

    Threading: :meth:`append`, :meth:`rotate`, :meth:`maybe_sync`, :meth:`sync` and
    :meth:`close` belong to one thread (the daemon's journal consumer). :meth:`compress_closed`
    and :meth:`enforce_retention` may run in another thread at the same time: they never touch
    the active segment, which they learn under ``_lock``, and they are serialised with each
    other by ``_maintenance_lock`` so retention cannot delete a file that is being compressed.
    The readers (:meth:`read_from`, :meth:`read_last`, :meth:`segments`) take no lock: they
    tolerate files that disappear or get compressed under them.

    `clock` gives wall-clock seconds since the epoch (injectable for tests). It decides the
    UTC day of a segment, the age of a segment for retention, and when
    :meth:`maybe_sync` is due; a clock that jumps backwards only causes an early fsync.
    A retention limit of None disables that limit.
    """

    def __init__(
        self,
        directory: Path,
        *,
        segment_max_bytes: int = 64 * MIB,
        retention_days: float | None = 30,
        retention_max_bytes: int | None = 1024 * MIB,
        fsync_interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        read_only: bool = False,
    ) -> None:
        """``read_only``: for readers other than the daemon (``mpmd tail``, tests). It never
        repairs, removes or opens a file for writing, so it is safe while the daemon writes:
        a torn or in-progress last line is simply not read."""
        if segment_max_bytes <= 0:
            raise ValueError("segment_max_bytes must be positive")
        self.directory = Path(directory)
        self.segment_max_bytes = segment_max_bytes
        self.retention_days = retention_days
        self.retention_max_bytes = retention_max_bytes
        self.fsync_interval_s = fsync_interval_s
        self._clock = clock

        self._lock = threading.Lock()  # guards the active segment's identity and fd
        self._maintenance_lock = threading.Lock()  # compress_closed vs enforce_retention
        self._fd: int | None = None
        self._active: _Seg | None = None
        self._active_size = 0
        self._last_seq = 0
        self._closed = False
        self._dirty = False  # written since the last fsync
        self._last_sync = clock()
        self._today, self._day_start, self._day_end = _utc_day(self._last_sync)
        self.read_only = read_only

        if read_only:
            self._last_seq = self._find_last_seq(self._scan())
        else:
            self._open()

    # -- opening -----------------------------------------------------------------------

    def _open(self) -> None:
        if not self.directory.is_dir():
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.directory, 0o700)  # mkdir's mode is filtered by the umask
        self._remove_leftovers()
        segs = self._scan()
        if segs and not segs[-1].compressed:
            last = segs[-1]
            if self._repair_tail(last):
                self._active = last
                self._active_size = (self.directory / last.base).stat().st_size
                self._fd = os.open(self.directory / last.base, os.O_WRONLY | os.O_APPEND)
            else:
                segs.pop()  # it held no complete line and was removed
        self._last_seq = self._find_last_seq(segs)

    def _remove_leftovers(self) -> None:
        """Undo what a crash in the middle of :meth:`compress_closed` can leave behind.

        A ``.tmp`` file is an unfinished gzip: removed. A segment present both as ``.jsonl``
        and ``.jsonl.gz`` means the crash came between the rename and the unlink; since the
        temporary file is fsynced before the rename, the ``.gz`` is in fact complete, but the
        ``.jsonl`` is *certainly* complete (it is only ever unlinked, never modified after it
        is closed) and keeping it costs only a second compression, so the ``.gz`` goes.
        """
        for entry in os.scandir(self.directory):
            name = entry.name
            if name.endswith(".jsonl.gz" + _TMP_SUFFIX) and _NAME_RE.match(
                name[: -len(_TMP_SUFFIX)]
            ):
                log.warning("removing unfinished compression %s", name)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
            elif _NAME_RE.match(name) and name.endswith(".gz"):
                plain = self.directory / name[:-3]
                if plain.exists():
                    log.warning(
                        "%s exists both plain and gzipped: keeping the plain file", plain.name
                    )
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)

    def _repair_tail(self, seg: _Seg) -> bool:
        """Cut a torn last line off the active segment; False (and the file removed) if empty.

        An empty segment can only be the trace of a crash between its creation and its first
        write; removing it keeps the invariant that a segment's name gives its first line's
        seq, which is what lets :meth:`read_from` skip segments without opening them.
        """
        path = self.directory / seg.base
        fd = os.open(path, os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            keep = _last_newline_end(fd, size)
            if keep != size:
                log.warning(
                    "%s ends with a torn line: cutting %d bytes (written when the daemon died)",
                    seg.base,
                    size - keep,
                )
                os.ftruncate(fd, keep)
                os.fsync(fd)
        finally:
            os.close(fd)
        if keep == 0:
            log.warning("removing %s: it holds no complete line", seg.base)
            os.unlink(path)
            fsync_dir(self.directory)
            return False
        return True

    def _find_last_seq(self, segs: list[_Seg]) -> int:
        """The seq of the last parseable line, looking back through segments if needed."""
        for seg in reversed(segs):
            for line in self._tail_lines(seg, 1):
                return line_seq(line)
        return 0

    def _check_writable(self) -> None:
        if self.read_only:
            raise ValueError("this Journal was opened read-only")

    # -- scanning ----------------------------------------------------------------------

    def _scan(self) -> list[_Seg]:
        """The segments on disk, in seq order.

        When a segment is seen both plain and gzipped (a compression between its rename and
        its unlink) the plain one is listed: readers fall back to the ``.gz`` if it vanishes.
        """
        found: dict[str, _Seg] = {}
        if not self.directory.is_dir():
            return []  # a read-only reader of a journal not created yet
        for entry in os.scandir(self.directory):
            m = _NAME_RE.match(entry.name)
            if m is None:
                continue
            compressed = m[3] is not None
            base = entry.name[:-3] if compressed else entry.name
            prev = found.get(base)
            if prev is None or prev.compressed:
                found[base] = _Seg(base, int(m[1]), m[2], compressed)
        return sorted(found.values(), key=lambda s: (s.first_seq, s.day))

    # -- writing -----------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """The seq of the last line written (0 for an empty journal)."""
        return self._last_seq

    def append(self, records: Iterable[tuple[int, bytes]]) -> int:
        """Write each record's line (which must not contain a newline); return how many.

        Records whose seq is <= :attr:`last_seq` are skipped: after a crash the daemon may
        hand back records the journal already has, and skipping them is what keeps the
        journal free of duplicates. Each run of lines that fits in the active segment goes
        out in one ``os.write``; nothing is kept in user space, so a ``kill -9`` after this
        returns loses nothing. Rotates first when the UTC day has changed since the active
        segment was opened, and between lines when the next one would take the segment past
        ``segment_max_bytes`` (a line larger than that gets a segment of its own).

        If a write fails, the partial write is truncated away and the error propagates;
        lines written before it (by an earlier chunk of this call) stay, and :attr:`last_seq`
        says which, so the caller can simply retry with the same records.
        """
        self._check_writable()
        if self._closed:
            raise ValueError("journal is closed")
        now = self._clock()
        if not self._day_start <= now < self._day_end:
            self._today, self._day_start, self._day_end = _utc_day(now)
        if self._active is not None and self._active.day != self._today:
            self.rotate()

        limit = self.segment_max_bytes
        last = self._last_seq
        size = self._active_size
        parts: list[bytes] = []
        pending = 0  # bytes in parts, newlines included
        first = 0  # seq of parts[0]
        written = 0
        gaps = 0
        for seq, line in records:
            if seq <= last:
                continue
            if seq != last + 1 and last:
                gaps += 1
            n = len(line) + 1
            if size + pending + n > limit and size + pending > 0:
                if parts:
                    self._write(parts, first, last)
                    written += len(parts)
                    parts = []
                    pending = 0
                self.rotate()
                size = 0
            if not parts:
                first = seq
            parts.append(line)
            pending += n
            last = seq
        if parts:
            self._write(parts, first, last)
            written += len(parts)
        if gaps:
            log.warning("append: %d gap(s) in seq (events lost upstream?)", gaps)
        return written

    def _write(self, lines: list[bytes], first_seq: int, last_seq: int) -> None:
        if self._fd is None:
            self._open_segment(first_seq)
        fd = self._fd
        assert fd is not None
        data = b"\n".join(lines) + b"\n"
        before = self._active_size
        try:
            view = memoryview(data)
            done = 0
            while done < len(data):  # a regular file may take less than asked (ENOSPC, signals)
                done += os.write(fd, view[done:])
        except BaseException:
            # Leave no torn line behind for the next append to glue onto.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, before)
            raise
        self._active_size = before + len(data)
        self._last_seq = last_seq
        self._dirty = True

    def _open_segment(self, first_seq: int) -> None:
        seg = _Seg(f"{first_seq:016d}-{self._today}.jsonl", first_seq, self._today, False)
        # O_EXCL: an existing file of that name means another writer or a corrupt journal.
        fd = os.open(
            self.directory / seg.base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600
        )
        fsync_dir(self.directory)
        with self._lock:
            self._fd = fd
            self._active = seg
            self._active_size = 0

    def rotate(self) -> None:
        """Close the active segment (fsynced); the next append opens a new one."""
        self._check_writable()
        with self._lock:
            fd, self._fd = self._fd, None
            self._active = None
            self._active_size = 0
        if fd is not None:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self._dirty = False
            self._last_sync = self._clock()

    def maybe_sync(self) -> bool:
        """fsync the active segment if there were writes and fsync_interval_s has passed.

        Returns whether it synced. Cheap when nothing is due: the daemon calls it after
        every batch.
        """
        if not self._dirty:
            return False
        now = self._clock()
        if now - self._last_sync < self.fsync_interval_s and now >= self._last_sync:
            return False
        self.sync()
        return True

    def sync(self) -> None:
        """fsync the active segment now."""
        if self._fd is not None:
            os.fsync(self._fd)
        self._dirty = False
        self._last_sync = self._clock()

    def close(self) -> None:
        """fsync and close the active segment (which stays the active one at next open)."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            fd, self._fd = self._fd, None
            self._active = None
        if fd is not None:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- maintenance (may run in a worker thread) -------------------------------------

    def _closed_segments(self) -> tuple[list[_Seg], list[_Seg]]:
        """(all segments, those that may be compressed or deleted).

        The newest segment is protected even when it is not active (after :meth:`rotate`,
        before the next append): it is what tells the next open where seq stands.
        """
        with self._lock:
            active = self._active.base if self._active is not None else None
            segs = self._scan()
        closed = [s for s in segs[:-1] if s.base != active]
        return segs, closed

    def compress_closed(self) -> int:
        """gzip every closed plain segment; return how many were compressed.

        Each goes to ``<name>.jsonl.gz.tmp``, is fsynced, keeps the plain file's mtime (so
        that retention still sees the age of the newest event), is renamed to
        ``<name>.jsonl.gz``, and only then is the plain file unlinked.
        """
        self._check_writable()
        count = 0
        with self._maintenance_lock:
            _, closed = self._closed_segments()
            for seg in closed:
                if not seg.compressed and self._compress(seg):
                    count += 1
        return count

    def _compress(self, seg: _Seg) -> bool:
        src = self.directory / seg.base
        gz = self.directory / (seg.base + ".gz")
        tmp = self.directory / (seg.base + ".gz" + _TMP_SUFFIX)
        try:
            fin = open(src, "rb")  # noqa: SIM115 - closed below, with the output
        except FileNotFoundError:
            return False
        try:
            st = os.fstat(fin.fileno())
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "wb") as raw:
                with gzip.GzipFile(
                    filename=seg.base,
                    mode="wb",
                    fileobj=raw,
                    compresslevel=_GZIP_LEVEL,
                    mtime=int(st.st_mtime),
                ) as gzf:
                    for chunk in _read_chunks(fin):
                        gzf.write(chunk)
                raw.flush()
                os.fsync(raw.fileno())
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
            os.rename(tmp, gz)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        finally:
            fin.close()
        fsync_dir(self.directory)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(src)
        fsync_dir(self.directory)
        log.debug("compressed %s (%d -> %d bytes)", seg.base, st.st_size, gz.stat().st_size)
        return True

    def enforce_retention(self) -> int:
        """Delete old closed segments; return how many were deleted.

        First those whose newest event is older than retention_days (the file's mtime is
        the time of its last write, and compression preserves it), then the oldest ones
        while the journal is larger than retention_max_bytes. The active segment, and the
        newest segment in any case, are never deleted, so the journal may stay above
        retention_max_bytes when the active segment alone is that big.
        """
        self._check_writable()
        deleted = 0
        with self._maintenance_lock:
            segs, closed = self._closed_segments()
            sizes: dict[str, int] = {}
            mtimes: dict[str, float] = {}
            for seg in segs:
                try:
                    st = os.stat(self.directory / seg.name)
                except FileNotFoundError:
                    continue
                sizes[seg.base] = st.st_size
                mtimes[seg.base] = st.st_mtime
            total = sum(sizes.values())
            now = self._clock()
            survivors = []
            for seg in closed:
                if seg.base not in sizes:
                    continue
                if (
                    self.retention_days is not None
                    and now - mtimes[seg.base] > self.retention_days * DAY_SECONDS
                ):
                    reason = f"older than {self.retention_days:g} days"
                    if self._delete(seg, sizes[seg.base], reason):
                        total -= sizes[seg.base]
                        deleted += 1
                else:
                    survivors.append(seg)
            limit = self.retention_max_bytes
            for seg in survivors:
                if limit is None or total <= limit:
                    break
                if self._delete(seg, sizes[seg.base], f"journal above {limit} bytes"):
                    deleted += 1
                total -= sizes[seg.base]  # gone either way
            if deleted:
                fsync_dir(self.directory)
        return deleted

    def _delete(self, seg: _Seg, size: int, reason: str) -> bool:
        try:
            os.unlink(self.directory / seg.name)
        except FileNotFoundError:
            return False
        log.info("retention: deleted %s (%d bytes): %s", seg.name, size, reason)
        return True

    # -- reading -----------------------------------------------------------------------

    def _open_segment_for_read(self, seg: _Seg) -> tuple[BinaryIO, bool] | None:
        """An open file for `seg` and whether it is gzipped, or None if it is gone.

        A plain segment that vanished was most likely compressed meanwhile: try the ``.gz``.
        """
        if not seg.compressed:
            try:
                return open(self.directory / seg.base, "rb"), False  # noqa: SIM115
            except FileNotFoundError:
                pass
        try:
            return open(self.directory / (seg.base + ".gz"), "rb"), True  # noqa: SIM115
        except FileNotFoundError:
            return None

    def _iter_lines(self, seg: _Seg) -> Iterator[bytes]:
        """Every complete line of a segment, in order; nothing if it was deleted."""
        opened = self._open_segment_for_read(seg)
        if opened is None:
            log.debug("%s disappeared while reading (retention?)", seg.base)
            return
        f, compressed = opened
        with f:
            if not compressed:
                yield from _split_lines(_read_chunks(f))
                return
            try:
                with gzip.GzipFile(fileobj=f, mode="rb") as gzf:
                    yield from _split_lines(_read_chunks(gzf))  # type: ignore[arg-type]
            except (OSError, EOFError) as exc:  # BadGzipFile is an OSError
                log.warning("%s.gz is damaged, read up to the damage: %s", seg.base, exc)

    def read_from(self, seq: int) -> Iterator[bytes]:
        """Lines (without newline) with seq >= `seq`, in order, over all segments.

        Segments that end before `seq` (the next one starts at or before it) are not opened.
        The segment list is taken when iteration starts; the active segment is read up to
        where it is when the reader gets there. Lines come out strictly increasing in seq;
        a line that does not parse is skipped with a warning.
        """
        segs = self._scan()
        start = 0
        for i, seg in enumerate(segs):
            if seg.first_seq <= seq:
                start = i
            else:
                break
        cursor = seq
        i = start
        while i < len(segs):
            seg = segs[i]
            for line in self._iter_lines(seg):
                try:
                    s = line_seq(line)
                except ValueError:
                    log.warning("%s: skipping a line that is not an event: %.80r", seg.base, line)
                    continue
                if s >= cursor:
                    cursor = s + 1
                    yield line
            i += 1
            if i < len(segs) and segs[i].first_seq > cursor:
                # A directory scan is not atomic: a segment renamed to .gz while it ran can
                # be in it under neither name. Segments follow on in seq, so a hole says so.
                segs[i:i] = [s for s in self._scan() if cursor <= s.first_seq < segs[i].first_seq]

    def _tail_lines(self, seg: _Seg, n: int) -> list[bytes]:
        """The last `n` parseable lines of a segment, in order.

        A plain file is read backwards from its end; a gzip stream cannot be, so it is
        decompressed through a bounded deque.
        """
        if n <= 0:
            return []
        opened = self._open_segment_for_read(seg)
        if opened is None:
            return []
        f, compressed = opened
        with f:
            if not compressed:
                out: list[bytes] = []
                for line in _reverse_lines(f.fileno(), os.fstat(f.fileno()).st_size):
                    if _parses(line):
                        out.append(line)
                        if len(out) == n:
                            break
                out.reverse()
                return out
            tail: deque[bytes] = deque(maxlen=n)
            try:
                with gzip.GzipFile(fileobj=f, mode="rb") as gzf:
                    tail.extend(
                        ln
                        for ln in _split_lines(_read_chunks(gzf))  # type: ignore[arg-type]
                        if _parses(ln)
                    )
            except (OSError, EOFError) as exc:
                log.warning("%s.gz is damaged, read up to the damage: %s", seg.base, exc)
            return list(tail)

    def read_last(self, n: int) -> list[bytes]:
        """The last `n` lines of the journal, oldest first (for ``mpmd tail -n``).

        Reads the end of the active segment backwards and goes to earlier segments only
        when it holds fewer than `n` lines.
        """
        if n <= 0:
            return []
        out: list[bytes] = []
        for seg in reversed(self._scan()):
            out[:0] = self._tail_lines(seg, n - len(out))
            if len(out) >= n:
                break
        return out

    # -- introspection -----------------------------------------------------------------

    def segments(self) -> list[SegmentInfo]:
        """The segments on disk, oldest first, with their current sizes."""
        with self._lock:
            active = self._active.base if self._active is not None else None
        infos = []
        for seg in self._scan():
            path = self.directory / seg.name
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                if seg.compressed:
                    continue  # deleted by retention since the scan
                # Compressed since the scan (the .gz is renamed in before the plain file
                # goes): leaving it out would make a follower skip it.
                seg = _Seg(seg.base, seg.first_seq, seg.day, True)
                path = self.directory / seg.name
                try:
                    size = path.stat().st_size
                except FileNotFoundError:
                    continue
            infos.append(
                SegmentInfo(
                    seg.name, path, seg.first_seq, seg.day, size, seg.compressed, seg.base == active
                )
            )
        return infos

    @property
    def total_bytes(self) -> int:
        """Bytes on disk over all segments (compressed ones at their compressed size)."""
        return sum(s.size for s in self.segments())

    @property
    def first_seq(self) -> int | None:
        """The seq of the oldest retained line, or None for an empty journal."""
        segs = self._scan()
        return segs[0].first_seq if segs else None


def _parses(line: bytes) -> bool:
    try:
        line_seq(line)
    except ValueError:
        log.warning("skipping a line that is not an event: %.80r", line)
        return False
    return True
