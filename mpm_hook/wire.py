"""The mpmd wire format: framing shared by the hook and the daemon, with no I/O.

A connection carries frames in both directions. Every frame is a 4-byte big-endian length
``N`` followed by ``N`` bytes of MessagePack (see docs/protocol.md for the full contract):

    event (hook -> daemon)  [version, id, ts_ns, payload, original_size]
        version        1
        id             bin, 16 random bytes: the idempotency id, unique per event
        ts_ns          uint64, the hook's wall clock when it started, in ns since the epoch
        payload        bin, the bytes Claude Code wrote to the hook's stdin, untouched
        original_size  uint64, how many bytes stdin really had (> len(payload) when the
                       hook cut an oversized payload)

    ack (daemon -> hook)    [version, id, status, seq]
        status         STORED, DUPLICATE, BUSY or REJECTED (below)
        seq            the event's sequence number when STORED or DUPLICATE, else 0

The hook cannot afford to import msgspec, so this module writes both frames by hand with
fixed-width MessagePack types (valid MessagePack that any decoder reads; the daemon decodes
event frames with msgspec). Acks have one fixed layout, so the hook parses them by slicing.
Only builtins are used here: the hook runs with ``python -I -S``.
"""

VERSION = 1
LENGTH_BYTES = 4
ID_BYTES = 16
# Frames larger than this are refused by the daemon; the hook cuts payloads to fit.
MAX_FRAME_BYTES = 8 * 1024 * 1024
# Room for everything in an event frame but the payload (45 bytes, rounded up).
EVENT_OVERHEAD = 64
MAX_PAYLOAD_BYTES = MAX_FRAME_BYTES - EVENT_OVERHEAD

STORED = 0  # the event is in the ring: it will reach the journal
DUPLICATE = 1  # an event with this id was stored before: nothing to do
BUSY = 2  # the daemon cannot take it now (ring full, shutting down): spool it
REJECTED = 3  # the frame is invalid and never will be valid: keep it aside

ACK_BODY_BYTES = 30
ACK_FRAME_BYTES = LENGTH_BYTES + ACK_BODY_BYTES
_ACK_HEAD = b"\x94\x01\xc4\x10"
_ACK_PREFIX = b"\x00\x00\x00\x1e" + _ACK_HEAD  # the length prefix (30) and the array head


def encode_event(event_id: bytes, ts_ns: int, payload: bytes, original_size: int) -> bytes:
    """One complete event frame (length prefix included)."""
    if len(event_id) != ID_BYTES:
        raise ValueError("event id must be 16 bytes")
    body = b"".join(
        (
            b"\x95\x01\xc4\x10",
            event_id,
            b"\xcf",
            ts_ns.to_bytes(8, "big"),
            b"\xc6",
            len(payload).to_bytes(4, "big"),
            payload,
            b"\xcf",
            original_size.to_bytes(8, "big"),
        )
    )
    return len(body).to_bytes(LENGTH_BYTES, "big") + body


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
