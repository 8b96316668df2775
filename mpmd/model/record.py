"""Pure: one event frame -> one journal line (the stored event, JSON, no newline).

This is the daemon's per-event work, so it is written for the common case: a payload with
no secrets is embedded as the bytes Claude Code sent (msgspec.Raw, no re-encoding); only a
payload the redaction pre-check flags is decoded to objects and rewritten.
"""

from __future__ import annotations

import base64
import time

import msgspec

from mpmd.model import enrich, events, redact
from mpmd.model.events import EventFrame

_encoder = msgspec.json.Encoder()
_any_decoder = msgspec.json.Decoder()


class _IsoClock:
    """ISO 8601 UTC with microseconds; caches the formatted second (events come in bursts)."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""
        self._ns = -1
        self._text = ""

    def __call__(self, ns: int) -> str:
        if ns == self._ns:  # the frames of one read share their receive time
            return self._text
        second = ns // 1_000_000_000
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        self._ns = ns
        self._text = f"{self._prefix}.{ns // 1000 % 1_000_000:06d}Z"
        return self._text


# Hook time and receive time usually fall in different seconds than each other's last call:
# one cache each, or they would evict each other on every event.
_iso_hook = _IsoClock()
_iso_received = _IsoClock()


def _raw_fields(data: bytes, force_base64: bool = False) -> tuple[str, str, int]:
    """(raw, encoding, redactions) for payload bytes that are not a JSON value."""
    text = data.decode("utf-8", "surrogateescape")
    text, count = redact.redact_raw(text)
    if not force_base64:
        try:
            return text.encode("utf-8").decode("utf-8"), "utf-8", count
        except UnicodeEncodeError:
            pass  # lone surrogates: the bytes were not UTF-8
    encoded = text.encode("utf-8", "surrogateescape")
    return base64.b64encode(encoded).decode("ascii"), "base64", count


def _derived(text: str | None, needs_redaction: bool) -> str | None:
    """A text taken from the payload, redacted when the payload needs it. Without the
    pre-check's yes, no part of the payload holds anything to redact, so neither does this."""
    if needs_redaction and isinstance(text, str):
        return redact.redact_text(text)[0]
    return text


def _json_payload(raw: bytes, needs_redaction: bool) -> tuple[object, int]:
    """The payload to store and how many secrets were redacted in it."""
    if needs_redaction:
        return redact.redact_obj(_any_decoder.decode(raw))
    raw = raw.strip()
    # A JSON Lines record must be one line. Literal newlines can only be whitespace between
    # tokens here (inside strings JSON requires escapes, and the payload decoded), so
    # replacing them with spaces keeps the JSON valid and the same value.
    if b"\n" in raw or b"\r" in raw:
        raw = raw.replace(b"\r", b" ").replace(b"\n", b" ")
    return msgspec.Raw(raw), 0


def build(
    seq: int,
    frame: EventFrame,
    received_ns: int,
    source: str = "hook",
    max_bytes: int | None = None,
) -> bytes:
    """The stored event for ``frame`` as one JSON line (docs/events.md).

    ``max_bytes`` bounds the line: a payload that would escape past it (control characters
    escape six-fold) is stored as base64 instead, which the ring always has room for.
    """
    data = frame.payload
    event, status, error = events.parse_payload(data)
    original_size = None
    if frame.original_size > len(data):
        status = events.TRUNCATED
        original_size = frame.original_size
        # Cut by the hook, or by the spool drain for a daemon with a lower limit.
        error = (f"payload of {frame.original_size} bytes cut to {len(data)} to fit "
                 "max_frame_bytes")
        event = None

    # One pre-check over the raw bytes decides for the payload and for every text enrich
    # takes from it: when the bytes hold nothing secret-looking, neither does any part.
    needs_redaction = redact.needs_redaction(data)
    info = enrich.enrich(event, status, redact=needs_redaction)
    payload: object = None
    raw = raw_encoding = None
    if status in (events.OK, events.UNKNOWN_TYPE, events.SCHEMA_MISMATCH, events.NOT_OBJECT):
        payload, redactions = _json_payload(data, needs_redaction)
    elif status == events.EMPTY:
        redactions = 0
    else:
        raw, raw_encoding, redactions = _raw_fields(data)

    tool_name = getattr(event, "tool_name", None)
    tool_use_id = getattr(event, "tool_use_id", None)
    summary = info.summary
    if needs_redaction:
        # Each text taken from the payload is redacted as the payload is: the journal, the
        # index, the viewer and exports show these fields too. The summary once more as a
        # whole: enrich redacts its parts (and file_path), but joining them, or folding a
        # newline to a space, can make a secret of two halves.
        summary = redact.redact_text(summary)[0]
        if len(summary) > enrich.SUMMARY_MAX:  # a marker is longer than a short secret
            summary = summary[: enrich.SUMMARY_MAX - 1] + "…"
    stored = events.StoredEvent(
        seq=seq,
        id=frame.id.hex(),
        event_type=(
            _derived(events.event_type_of(event), needs_redaction) or status
            if event is not None else status
        ),
        session_id=_derived(event.session_id, needs_redaction) if event is not None else None,
        timestamp=_iso_hook(frame.ts_ns),
        received_at=_iso_received(received_ns),
        source=source,
        status=status,
        # The decoder's message may quote the payload, and is not covered by the pre-check:
        # always redacted (only events that are not ok have one).
        error=redact.redact_text(error)[0] if error else error,
        cwd=_derived(event.cwd, needs_redaction) if event is not None else None,
        agent_id=_derived(event.agent_id, needs_redaction) if event is not None else None,
        tool_name=_derived(tool_name, needs_redaction) if isinstance(tool_name, str) else None,
        tool_use_id=_derived(tool_use_id, needs_redaction),
        operation=info.operation,
        risk=info.risk,
        risk_reason=info.risk_reason,
        file_path=info.file_path,
        content_length=info.content_length,
        summary=summary,
        redactions=redactions,
        original_size=original_size,
        payload=payload,
        raw=raw,
        raw_encoding=raw_encoding,
    )
    line = _with_decision(_encoder.encode(stored), frame)
    if max_bytes is not None and len(line) > max_bytes:
        raw, raw_encoding, _ = _raw_fields(data, force_base64=True)
        stored = msgspec.structs.replace(stored, payload=None, raw=raw, raw_encoding=raw_encoding)
        line = _with_decision(_encoder.encode(stored), frame)
    return line


def unprocessable(seq: int, frame: EventFrame, received_ns: int, source: str,
                  failure: BaseException) -> bytes:
    """The line for a frame ``build`` failed on, a bug of ours: the event is stored all the
    same, its bytes kept (redacted, base64) and the failure named, so that one payload can
    neither be lost nor stop the task that met it (a spool file that failed every time
    would hold back every file after it)."""
    raw, raw_encoding, redactions = _raw_fields(frame.payload, force_base64=True)
    why = redact.redact_text(f"{type(failure).__name__}: {failure}")[0][:300]
    stored = events.StoredEvent(
        seq=seq, id=frame.id.hex(), event_type=events.MALFORMED,
        timestamp=_iso_hook(frame.ts_ns), received_at=_iso_received(received_ns),
        source=source, status=events.MALFORMED,
        error=f"mpmd could not process this payload ({why}); its bytes are in raw",
        operation="metadata", risk="low", summary=enrich.summary_for_status(events.MALFORMED),
        redactions=redactions, raw=raw, raw_encoding=raw_encoding,
        original_size=frame.original_size if frame.original_size > len(frame.payload)
        else None,
    )
    return _encoder.encode(stored)  # without the decision: it may be what failed


def _with_decision(line: bytes, frame: EventFrame) -> bytes:
    """The line with the frame's policy decision as its last key, ``decision`` (a policy
    rule decided this event: docs/events.md). The stored line is a JSON object, so the
    decision goes in before its closing brace; lines of undecided events are untouched."""
    if not frame.decision:
        return line
    return b"".join((line[:-1], b',"decision":', _encoder.encode(frame.decision), b"}"))
