"""Sans-I/O decoder for the byte stream a hook (or anything else) sends to the socket.

Feed it bytes as they arrive, in any chunking; it returns the complete event frames before
any error, and the error. The contract, fuzzed in tests/test_wire.py: for ANY input it
returns frames and at most one ``FrameError``, never raises, and never holds more than
``max_frame_bytes`` plus a length prefix of unparsed input (a length above the limit is
refused before its body is buffered). After an error the stream cannot be trusted: the
caller stores the frames that came before it and closes the connection.
"""

from __future__ import annotations

import struct

import msgspec

from mpm_hook import wire

DecisionValue = str | int | float | bool | None


class EventFrame(msgspec.Struct, array_like=True, frozen=True):
    """An event frame's body (see mpm_hook.wire for the layout). ``decision`` is the
    optional sixth element: what a policy rule decided (docs/protocol.md); frames without
    it, as every hook before policies wrote them, decode with None. Further trailing
    elements, from a newer hook, are ignored."""

    version: int
    id: bytes
    ts_ns: int
    payload: bytes
    original_size: int
    decision: dict[str, DecisionValue] | None = None


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
    def __init__(self, max_frame_bytes: int = wire.MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> tuple[list[EventFrame], FrameError | None]:
        buf = self._buf
        if buf:
            buf += data
            frames, error, start = self._frames(buf)
            if error is not None:
                buf.clear()
            else:
                del buf[:start]
            return frames, error
        # Nothing held back (the common case): decode straight from ``data`` and keep only
        # an incomplete tail.
        frames, error, start = self._frames(data)
        if error is None and start < len(data):
            buf += memoryview(data)[start:]
        return frames, error

    def _frames(self, buf: bytes | bytearray) -> tuple[list[EventFrame], FrameError | None, int]:
        """The complete frames at the start of ``buf``, an error, and where they end."""
        frames: list[EventFrame] = []
        start = 0
        end = len(buf)
        limit = self.max_frame_bytes
        with memoryview(buf) as view:  # released before the caller resizes ``buf``
            while end - start >= _PREFIX_BYTES:
                (size,) = _unpack_prefix(view, start)
                if size > limit:
                    error = FrameError("oversized", f"frame of {size} bytes, limit {limit}")
                    return frames, error, start
                body_start = start + _PREFIX_BYTES
                if end - body_start < size:
                    break
                start = body_start + size
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
