"""What the control socket takes: one request a connection, one JSON line, ``cmd`` naming
it. The CLI builds these (mpmd.control.client), the daemon decodes them
(mpmd.control.server); a line that is not one of them is answered ``{"error": ...}``.

    status                  -> one line: mpmd.status.Status
    stop                    -> {"ok": true}, then the daemon shuts down gracefully
    follow (after)          -> every journal line with seq > after, as they are written
    reindex                 -> {"total": N}, {"indexed": n} as it goes, then
                               {"done": true, "last_seq": N} or {"error": "..."}
    replay (session, speed) -> {"total": N}, {"sent": n} as it goes, then {"done": true}
"""

from __future__ import annotations

import msgspec


class StatusRequest(msgspec.Struct, tag="status", tag_field="cmd", forbid_unknown_fields=True):
    pass


class StopRequest(msgspec.Struct, tag="stop", tag_field="cmd", forbid_unknown_fields=True):
    pass


class FollowRequest(msgspec.Struct, tag="follow", tag_field="cmd", forbid_unknown_fields=True):
    after: int | None = None  # None: from the journal's newest event on


class ReindexRequest(msgspec.Struct, tag="reindex", tag_field="cmd",
                     forbid_unknown_fields=True):
    pass


class ReplayRequest(msgspec.Struct, tag="replay", tag_field="cmd", forbid_unknown_fields=True):
    session: str
    speed: float = 1.0


Request = StatusRequest | StopRequest | FollowRequest | ReindexRequest | ReplayRequest

_decoder = msgspec.json.Decoder(Request)
_encoder = msgspec.json.Encoder()


def decode(line: bytes) -> Request:
    """The request on ``line`` (msgspec.ValidationError or DecodeError, both ValueErrors,
    name what is wrong with it)."""
    return _decoder.decode(line)


def encode(request: Request) -> bytes:
    """``request`` as the line the daemon reads."""
    return _encoder.encode(request) + b"\n"
