"""Any payload bytes become one valid journal line (mpmd.model.record.build)."""

from __future__ import annotations

import msgspec
from hypothesis import example, given
from hypothesis import strategies as st

from mpmd.model import events, record
from mpmd.model.events import EventFrame
from tests.utils import fixture_payloads

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def line_for(payload: bytes) -> dict:
    frame = EventFrame(version=1, id=bytes(16), ts_ns=1_700_000_000_000_000_000,
                       payload=payload, original_size=len(payload))
    line = record.build(7, frame, 1_700_000_000_000_000_001)
    assert b"\n" not in line
    return msgspec.json.decode(line)  # raises if the journal line is not JSON


@given(st.binary(max_size=200))
@example(b"0\x00")  # a typed decode used to call this "JSON, not an object" and embed it
@example(b"[1, 2]\x00")
@example(b'{"hook_event_name": 5}\x00')
@example(b'"\x80"')  # a JSON string that is not UTF-8: UnicodeDecodeError, not DecodeError
@example(b'{"hook_event_name": "Stop", "x": "\xff"}')
def test_any_bytes_make_one_json_line(payload: bytes) -> None:
    stored = line_for(payload)
    assert stored["seq"] == 7
    assert stored["status"] in (events.OK, events.UNKNOWN_TYPE, events.SCHEMA_MISMATCH,
                                events.NOT_OBJECT, events.MALFORMED, events.EMPTY)


@given(_json_values, st.sampled_from([b"", b" ", b"\n", b"\x00", b"x", b"\t\r\n"]))
def test_json_values_with_anything_after_them(value: object, tail: bytes) -> None:
    payload = msgspec.json.encode(value) + tail
    stored = line_for(payload)
    if tail.strip():
        assert stored["status"] == events.MALFORMED
    elif not isinstance(value, dict):
        assert stored["status"] == events.NOT_OBJECT and stored["payload"] == value


def test_the_fixture_payloads_are_kept_whole() -> None:
    for payload in fixture_payloads():
        stored = line_for(payload)
        assert stored["status"] == events.OK
        original = msgspec.json.decode(payload)
        assert stored["event_type"] == original["hook_event_name"]
