"""The mpmd wire format: framing shared by the hook and the daemon, with no I/O.

A connection carries frames in both directions. Every frame is a 4-byte big-endian length
``N`` followed by ``N`` bytes of MessagePack (see docs/protocol.md for the full contract):

    event (hook -> daemon)  [version, id, ts_ns, payload, original_size(, decision)]
        version        1
        id             bin, 16 random bytes: the idempotency id, unique per event
        ts_ns          uint64, the hook's wall clock when it started, in ns since the epoch
        payload        bin, the bytes Claude Code wrote to the hook's stdin, untouched
        original_size  uint64, how many bytes stdin really had (> len(payload) when the
                       hook cut an oversized payload)
        decision       optional map, only when a policy rule decided the event: str keys,
                       str/int/float/bool/nil values, "action" always there (see
                       docs/protocol.md). Frames without it are the 5-element array as before.

    ack (daemon -> hook)    [version, id, status, seq]
        status         STORED, DUPLICATE, BUSY or REJECTED (below)
        seq            the event's sequence number when STORED or DUPLICATE, else 0

The hook cannot afford to import msgspec, so this module writes both frames by hand with
fixed-width MessagePack types (valid MessagePack that any decoder reads; the daemon decodes
event frames with msgspec). Acks have one fixed layout, so the hook parses them by slicing.
Only builtins are used here (and ``marshal``, which the interpreter has loaded anyway): the
hook runs with ``python -I -S``.
"""

import marshal

VERSION = 1
LENGTH_BYTES = 4
ID_BYTES = 16
# The wire's ceiling: no frame is ever larger, whatever max_frame_bytes says.
MAX_FRAME_BYTES = 8 * 1024 * 1024
# The lowest max_frame_bytes the daemon accepts: a payload that fits this fits any daemon,
# so only a longer one makes the hook look up the daemon's own limit.
MIN_FRAME_BYTES = 64 * 1024
# Room for everything in an event frame but the payload: 45 bytes, plus a decision.
EVENT_OVERHEAD = 4096
MAX_PAYLOAD_BYTES = MAX_FRAME_BYTES - EVENT_OVERHEAD
MIN_PAYLOAD_BYTES = MIN_FRAME_BYTES - EVENT_OVERHEAD
# The daemon's max_frame_bytes, as it publishes it for hooks in the state folder: the
# decimal number and a newline (the hook cannot afford to parse config.toml).
FRAME_LIMIT_NAME = "frame.limit"
# A decision map is at most this long (so a frame with a payload of payload_limit(L) bytes
# never passes L); its text values are cut to MAX_DECISION_TEXT bytes (at a character
# boundary).
MAX_DECISION_BYTES = EVENT_OVERHEAD - 64
MAX_DECISION_TEXT = 1024
MAX_DECISION_KEYS = 15

STORED = 0  # the event is in the ring: it will reach the journal
DUPLICATE = 1  # an event with this id was stored before: nothing to do
BUSY = 2  # the daemon cannot take it now (ring full, shutting down): spool it
REJECTED = 3  # the frame is invalid and never will be valid: keep it aside

ACK_BODY_BYTES = 30
ACK_FRAME_BYTES = LENGTH_BYTES + ACK_BODY_BYTES
_ACK_HEAD = b"\x94\x01\xc4\x10"
_ACK_PREFIX = b"\x00\x00\x00\x1e" + _ACK_HEAD  # the length prefix (30) and the array head


def payload_limit(max_frame_bytes: int) -> int:
    """How much of a payload an event frame within ``max_frame_bytes`` can carry, with
    room for a decision: what the hook (and the daemon, for a spooled frame) keeps."""
    return max_frame_bytes - EVENT_OVERHEAD


def parse_frame_limit(data: bytes) -> int:
    """The limit FRAME_LIMIT_NAME holds, within [MIN_FRAME_BYTES, MAX_FRAME_BYTES]; the
    ceiling when it holds no number (the daemon then cuts what still does not fit)."""
    try:
        limit = int(data)
    except ValueError:
        return MAX_FRAME_BYTES
    return min(max(limit, MIN_FRAME_BYTES), MAX_FRAME_BYTES)


def encode_event(
    event_id: bytes, ts_ns: int, payload: bytes, original_size: int, decision=None
) -> bytes:
    """One complete event frame (length prefix included); with ``decision`` (a dict, see
    encode_decision) the array has a sixth element, else it is the 5-element frame."""
    if len(event_id) != ID_BYTES:
        raise ValueError("event id must be 16 bytes")
    tail = b"" if decision is None else encode_decision(decision)
    body = b"".join(
        (
            b"\x96\x01\xc4\x10" if tail else b"\x95\x01\xc4\x10",
            event_id,
            b"\xcf",
            ts_ns.to_bytes(8, "big"),
            b"\xc6",
            len(payload).to_bytes(4, "big"),
            payload,
            b"\xcf",
            original_size.to_bytes(8, "big"),
            tail,
        )
    )
    return len(body).to_bytes(LENGTH_BYTES, "big") + body


def encode_decision(decision) -> bytes:
    """A decision dict as a MessagePack map: 1 to MAX_DECISION_KEYS str keys (1-31 bytes)
    with str, int, float, bool or None values; text values cut to MAX_DECISION_TEXT bytes.
    ValueError for anything else, or when it would pass MAX_DECISION_BYTES."""
    if not 0 < len(decision) <= MAX_DECISION_KEYS:
        raise ValueError("a decision has 1 to 15 keys")
    parts = [bytes((0x80 | len(decision),))]
    for key, value in decision.items():
        name = key.encode("utf-8")
        if not 0 < len(name) < 32:
            raise ValueError("decision keys are 1 to 31 bytes")
        parts.append(bytes((0xA0 | len(name),)))
        parts.append(name)
        kind = value.__class__
        if value is None:
            parts.append(b"\xc0")
        elif kind is bool:
            parts.append(b"\xc3" if value else b"\xc2")
        elif kind is int:
            if not -(1 << 63) <= value < 1 << 63:
                raise ValueError("decision int beyond 64 bits")
            parts.append(b"\xd3" + value.to_bytes(8, "big", signed=True))
        elif kind is float:
            # marshal writes a float as its 8 IEEE 754 bytes, little-endian, last (no struct).
            parts.append(b"\xcb" + marshal.dumps(value)[-8:][::-1])
        elif kind is str:
            text = value.encode("utf-8", "replace")  # a lone surrogate becomes "?"
            if len(text) > MAX_DECISION_TEXT:
                text = text[:MAX_DECISION_TEXT].decode("utf-8", "ignore").encode("utf-8")
            parts.append(b"\xda" + len(text).to_bytes(2, "big"))
            parts.append(text)
        else:
            raise ValueError(f"decision value of type {kind.__name__}")
    encoded = b"".join(parts)
    if len(encoded) > MAX_DECISION_BYTES:
        raise ValueError("decision too long")
    return encoded


def encode_ack(event_id: bytes, status: int, seq: int) -> bytes:
    """One complete ack frame; always exactly ACK_FRAME_BYTES long."""
    return b"".join(
        (_ACK_PREFIX, event_id, status.to_bytes(1, "big"), b"\xcf", seq.to_bytes(8, "big"))
    )


def decode_ack(frame: bytes) -> tuple[bytes, int, int]:
    """(id, status, seq) from exactly one ack frame; ValueError for anything else."""
    if (
        len(frame) != ACK_FRAME_BYTES
        or frame[:LENGTH_BYTES] != ACK_BODY_BYTES.to_bytes(LENGTH_BYTES, "big")
        or frame[4:8] != _ACK_HEAD
        or frame[24] > REJECTED
        or frame[25] != 0xCF
    ):
        raise ValueError("not an mpmd ack frame")
    return frame[8:24], frame[24], int.from_bytes(frame[26:34], "big")
