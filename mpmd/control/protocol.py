"""What the control socket takes and answers: one request a connection, one JSON line,
``cmd`` naming it; answers are JSON lines too, ``answer`` naming them. The CLI builds the
requests and decodes the answers (mpmd.control.client), the daemon the other way round
(mpmd.control.server). A request line that is not one of these is answered Failed.

    status                  -> one line: mpmd.status.Status
    stop                    -> Done, then the daemon shuts down gracefully
    follow (after)          -> every journal line with seq > after, as they are written
                               (event records, not answers: what `mpmd tail` prints)
    reindex                 -> Started(total), Progress(done) as it goes, then
                               Done(last_seq) or Failed(error)
    replay (session, speed) -> Started(total, session_id), Progress(done) as it goes, then
                               Done or Failed(error)
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


class Started(msgspec.Struct, tag="started", tag_field="answer"):
    total: int  # the steps to come: events to index, or to replay
    session_id: str | None = None  # a replay's session, its id written out


class Progress(msgspec.Struct, tag="progress", tag_field="answer"):
    done: int  # steps done so far, of Started's total


class Done(msgspec.Struct, tag="done", tag_field="answer"):
    last_seq: int | None = None  # a reindex's: the last event the index holds


class Failed(msgspec.Struct, tag="failed", tag_field="answer"):
    error: str


Answer = Started | Progress | Done | Failed

_decoder = msgspec.json.Decoder(Request)
_answers = msgspec.json.Decoder(Answer)
_encoder = msgspec.json.Encoder()


def decode(line: bytes) -> Request:
    """The request on ``line`` (msgspec.ValidationError or DecodeError, both ValueErrors,
    name what is wrong with it)."""
    return _decoder.decode(line)


def encode(message: Request | Answer) -> bytes:
    """A request or an answer as the line the other end reads."""
    return _encoder.encode(message) + b"\n"


def decode_answer(line: bytes) -> Answer:
    """The answer on ``line`` (a ValueError, msgspec's, when it is not one)."""
    return _answers.decode(line)
