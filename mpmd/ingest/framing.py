"""Sans-I/O decoder for the byte stream a hook (or anything else) sends to the socket.

Feed it bytes as they arrive, in any chunking; it returns the complete event frames before
any error, and the error. The contract, fuzzed in tests/test_wire.py: for ANY input it
returns frames and at most one ``FrameError``, never raises, and never holds more than
``max_frame_bytes`` plus a length prefix of unparsed input (a length above the limit is
refused before its body is buffered), besides the complete frames a call limited in frames
left for the next one (which the caller then feeds ``b""``). After an error the stream
cannot be trusted: the caller stores the frames that came before it and closes the
connection.
"""

from __future__ import annotations

import struct

import msgspec

from mpm_hook import wire
from mpmd.model.events import EventFrame


class FrameError(Exception):
    """The stream broke the wire contract. ``reason`` is a counter key:

    - ``oversized``: a length prefix above the limit
    - ``invalid``: a body that is not a well-formed event frame (a decision included)
    - ``version``: a frame of a wire version this daemon does not speak
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


_body_decoder = msgspec.msgpack.Decoder(EventFrame)
_PREFIX_BYTES = wire.LENGTH_BYTES
_unpack_prefix = struct.Struct(">I").unpack_from
_MAX_TS_NS = 1 << 63
# An event frame's first bytes as the hook writes them: the length prefix, the array head,
# the version, the id's bin 8 header and the id. A frame refused before its end is answered
# by this id (FrameDecoder.refuse).
_ID_HEAD = b"\x01\xc4\x10"
REFUSE_AFTER = _PREFIX_BYTES + 4 + wire.ID_BYTES


def decode_body(body: bytes | memoryview) -> EventFrame:
    """One frame body -> EventFrame, or FrameError."""
    try:
        frame = _body_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FrameError("invalid", str(exc)) from None
    if frame.version != wire.VERSION:
        raise FrameError("version", f"wire version {frame.version}, expected {wire.VERSION}")
    if len(frame.id) != wire.ID_BYTES:
        raise FrameError("invalid", f"id of {len(frame.id)} bytes, expected {wire.ID_BYTES}")
    if not 0 <= frame.ts_ns < _MAX_TS_NS:
        raise FrameError("invalid", "timestamp out of range")
    if not len(frame.payload) <= frame.original_size < _MAX_TS_NS:
        raise FrameError("invalid", "original_size smaller than the payload")
    decision = frame.decision
    if decision is not None and (
        not isinstance(decision.get("action"), str)
        or len(decision) > wire.MAX_DECISION_KEYS
        or any(len(key) > 31 for key in decision)
    ):
        raise FrameError("invalid", "a decision needs a str action and at most 15 short keys")
    return frame


class FrameDecoder:
    """``feed`` takes bytes as they arrive and returns the complete frames among them, at
    most ``max_frames`` (and ``max_bytes`` of frames, at least one frame) a call: the rest
    stays buffered for the next call, ``ready`` saying whether a complete frame waits there.
    An incomplete frame is held until its last byte comes, or until ``refuse`` drops it
    and the rest of it is skipped as it arrives."""

    def __init__(self, max_frame_bytes: int = wire.MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()
        self._skip = 0  # bytes of a refused frame still to come, dropped as they arrive
        self.ready = False  # a complete frame waits in the buffer
        self.taken = 0  # bytes of the frames the last call returned

    @property
    def buffered(self) -> int:
        return len(self._buf)

    @property
    def holding(self) -> int:
        """What this decoder holds or will hold: its buffer, or, when that is the start of
        one incomplete frame whose id has come (REFUSE_AFTER bytes), the whole frame as its
        length prefix announces it, which is what the buffer grows to."""
        buf = self._buf
        if self.ready or len(buf) < REFUSE_AFTER:
            return len(buf)
        return _PREFIX_BYTES + _unpack_prefix(buf, 0)[0]

    def refuse(self) -> bytes | None:
        """Drop the incomplete frame this decoder holds (REFUSE_AFTER bytes of it at least,
        and nothing else) and skip the rest of it as it comes. Returns its id, so that the
        sender can be told BUSY in its place, or None where the frame does not start as
        mpm_hook.wire writes it (the caller then cannot answer for it in order)."""
        buf = self._buf
        assert not self.ready and len(buf) >= REFUSE_AFTER, "refuse needs an incomplete frame"
        self._skip = _PREFIX_BYTES + _unpack_prefix(buf, 0)[0] - len(buf)
        head = bytes(buf[:REFUSE_AFTER])
        buf.clear()
        if head[4] in (0x95, 0x96) and head[5:8] == _ID_HEAD:
            return head[8:REFUSE_AFTER]
        return None

    def feed(self, data: bytes, max_frames: int = 1 << 62,
             max_bytes: int = 1 << 62) -> tuple[list[EventFrame], FrameError | None]:
        if self._skip:
            if len(data) <= self._skip:
                self._skip -= len(data)
                return [], None
            data = memoryview(data)[self._skip :]  # type: ignore[assignment]
            self._skip = 0
        buf = self._buf
        if buf:
            buf += data
            frames, error, start = self._frames(buf, max_frames, max_bytes)
            if error is not None:
                buf.clear()
            else:
                del buf[:start]
            return frames, error
        # Nothing held back (the common case): decode straight from ``data`` and keep only
        # what is left of it.
        frames, error, start = self._frames(data, max_frames, max_bytes)
        if error is None and start < len(data):
            buf += memoryview(data)[start:]
        return frames, error

    def _frames(self, buf: bytes | bytearray, max_frames: int, max_bytes: int,
                ) -> tuple[list[EventFrame], FrameError | None, int]:
        """The complete frames at the start of ``buf`` (within the limits), an error, and
        where they end; sets ``ready``."""
        frames: list[EventFrame] = []
        start = 0
        end = len(buf)
        limit = self.max_frame_bytes
        self.ready = False
        self.taken = 0
        with memoryview(buf) as view:  # released before the caller resizes ``buf``
            while end - start >= _PREFIX_BYTES:
                (size,) = _unpack_prefix(view, start)
                if size > limit:
                    error = FrameError("oversized", f"frame of {size} bytes, limit {limit}")
                    return frames, error, start
                body_start = start + _PREFIX_BYTES
                if end - body_start < size:
                    break
                if len(frames) >= max_frames or start >= max_bytes:
                    self.ready = True  # this frame is complete: the next call takes it
                    break
                start = body_start + size
                self.taken = start
                # The body's view is released here, whatever happens: an error's traceback
                # would otherwise keep it, and with it an export of ``buf``, which then
                # cannot be resized (BufferError).
                with view[body_start:start] as body:
                    try:
                        frames.append(decode_body(body))
                    except FrameError as exc:
                        return frames, exc.with_traceback(None), start
        return frames, None, start


def decode_one(data: bytes, max_frame_bytes: int = wire.MAX_FRAME_BYTES) -> EventFrame:
    """Exactly one complete frame (a spool file), or FrameError."""
    decoder = FrameDecoder(max_frame_bytes)
    frames, error = decoder.feed(data)
    if error is not None:
        raise error
    if len(frames) != 1 or decoder.buffered:
        raise FrameError("invalid", f"expected one whole frame, got {len(frames)} and "
                         f"{decoder.buffered} stray bytes")
    return frames[0]
