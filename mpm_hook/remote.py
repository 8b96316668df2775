"""Answers from the viewer to a permission request held open by the hook (docs/policy.md,
action ``remote``; the frame in docs/protocol.md). Builtins only, like mpm_hook.wire.

After its ack, a hook whose rule says ``remote`` keeps the connection open and waits for
one more frame from the daemon:

    answer (daemon -> hook)  [version, id, behavior, message]
        id        bin, 16 bytes: the id of the event it answers
        behavior  NONE (no answer: let Claude Code ask in the terminal), ALLOW or DENY
        message   str, shown to Claude with a deny (and journaled)

Fixed layout (the message as str 16), so the hook parses it by slicing. A daemon that goes
away, or no frame before the hook's own deadline, is NONE too.
"""

from mpm_hook import wire

NONE = 0
ALLOW = 1
DENY = 2
BEHAVIORS = {"none": NONE, "allow": ALLOW, "deny": DENY}
MAX_MESSAGE_BYTES = 4096
_HEAD = b"\x94\x01\xc4\x10"
_FIXED = len(_HEAD) + wire.ID_BYTES + 1 + 3  # head, id, behavior (fixint), str16 head


def encode_answer(event_id: bytes, behavior: int, message: str = "") -> bytes:
    if len(event_id) != wire.ID_BYTES:
        raise ValueError("event id must be 16 bytes")
    if behavior not in (NONE, ALLOW, DENY):
        raise ValueError(f"behavior must be NONE, ALLOW or DENY, not {behavior!r}")
    text = message.encode("utf-8")[:MAX_MESSAGE_BYTES]
    body = b"".join((_HEAD, event_id, bytes((behavior,)), b"\xda",
                     len(text).to_bytes(2, "big"), text))
    return len(body).to_bytes(wire.LENGTH_BYTES, "big") + body


def decode_answer(frame: bytes):
    """(id, behavior, message) from one whole answer frame, length prefix included;
    ValueError for anything else."""
    body = frame[wire.LENGTH_BYTES:]
    if (len(frame) < wire.LENGTH_BYTES + _FIXED
            or int.from_bytes(frame[:wire.LENGTH_BYTES], "big") != len(body)
            or body[:len(_HEAD)] != _HEAD or body[_FIXED - 3] != 0xDA):
        raise ValueError("not an answer frame")
    event_id = body[len(_HEAD):len(_HEAD) + wire.ID_BYTES]
    behavior = body[len(_HEAD) + wire.ID_BYTES]
    size = int.from_bytes(body[_FIXED - 2:_FIXED], "big")
    if behavior not in (NONE, ALLOW, DENY) or len(body) != _FIXED + size:
        raise ValueError("not an answer frame")
    return event_id, behavior, body[_FIXED:].decode("utf-8", "replace")


def read_answer(sock, event_id: bytes, deadline: float, monotonic):
    """(behavior, message) from the daemon before ``deadline`` (a ``monotonic()`` time);
    (NONE, why) when the daemon closes, the time runs out, or the frame is not right."""
    data = b""
    need = wire.LENGTH_BYTES
    try:
        while len(data) < need:
            remaining = deadline - monotonic()
            if remaining <= 0:
                return NONE, "no answer in time"
            sock.settimeout(remaining)
            chunk = sock.recv(max(need - len(data), 4096))
            if not chunk:
                return NONE, "the daemon went away"
            data += chunk
            if need == wire.LENGTH_BYTES and len(data) >= need:
                need += int.from_bytes(data[:wire.LENGTH_BYTES], "big")
                if need > wire.LENGTH_BYTES + _FIXED + MAX_MESSAGE_BYTES:
                    return NONE, "answer frame too long"
    except OSError:
        return NONE, "no answer in time"
    try:
        answered, behavior, message = decode_answer(data[:need])
    except ValueError:
        return NONE, "not an answer frame"
    if answered != event_id:
        return NONE, "an answer to another event"
    return behavior, message
