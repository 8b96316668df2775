"""The wire format: what the hook writes by hand, msgspec reads; fuzzing the decoder."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mpm_hook import wire
from mpmd.ingest.framing import FrameDecoder, FrameError, decode_one
from mpmd.model.events import EventFrame
from tests.utils import examples

ids = st.binary(min_size=16, max_size=16)
timestamps = st.integers(min_value=0, max_value=(1 << 63) - 1)


@given(ids, timestamps, st.binary(max_size=4096), st.integers(0, 1 << 20))
def test_event_frame_round_trips_through_msgspec(event_id, ts, payload, extra):
    frame = wire.encode_event(event_id, ts, payload, len(payload) + extra)
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    decoded = decode_one(frame)
    assert decoded == EventFrame(1, event_id, ts, payload, len(payload) + extra)
    # Plain msgspec (any MessagePack reader) sees the documented array.
    assert msgspec.msgpack.decode(frame[4:]) == [1, event_id, ts, payload, len(payload) + extra]


_decision_values = st.one_of(st.text(max_size=1500), st.integers(-(1 << 63), (1 << 63) - 1),
                             st.floats(allow_nan=False), st.booleans(), st.none())
decisions = st.dictionaries(st.text(min_size=1, max_size=10).filter(
    lambda k: len(k.encode()) < 32 and k != "action"), _decision_values, max_size=14).flatmap(
    lambda rest: st.text(max_size=20).map(lambda action: {"action": action, **rest}))


def _cut(value: object) -> object:
    """A decision's value as the frame carries it: text cut to MAX_DECISION_TEXT bytes."""
    if isinstance(value, str):
        data = value.encode("utf-8", "replace")[:wire.MAX_DECISION_TEXT]
        return data.decode("utf-8", "ignore")
    return value


@given(ids, timestamps, st.binary(max_size=512), decisions)
def test_event_frame_with_a_decision_round_trips(event_id, ts, payload, decision):
    frame = wire.encode_event(event_id, ts, payload, len(payload), decision)
    decoded = decode_one(frame)
    expected = {k: _cut(v) for k, v in decision.items()}
    assert decoded == EventFrame(1, event_id, ts, payload, len(payload), expected)
    # Any MessagePack reader sees a sixth element, a map.
    assert msgspec.msgpack.decode(frame[4:])[5] == expected


def test_frames_without_a_decision_are_the_five_element_array_as_before():
    frame = wire.encode_event(b"a" * 16, 1, b"{}", 2)
    assert frame[4] == 0x95 and decode_one(frame).decision is None
    assert wire.encode_event(b"a" * 16, 1, b"{}", 2, None) == frame


def test_trailing_elements_of_a_newer_hook_are_ignored():
    body = msgspec.msgpack.encode([1, b"a" * 16, 1, b"{}", 2, {"action": "deny"}, "future"])
    assert decode_one(len(body).to_bytes(4, "big") + body).decision == {"action": "deny"}


@pytest.mark.parametrize("decision", [
    {"rule": "x"},  # no action
    {"action": 3},
    {"action": "deny", "nested": [1]},
    {"action": "deny", "x" * 40: 1},
    {"action": "deny", **{f"k{i}": i for i in range(20)}},
])
def test_a_malformed_decision_is_an_invalid_frame(decision):
    body = msgspec.msgpack.encode([1, b"a" * 16, 1, b"{}", 2, decision])
    with pytest.raises(FrameError) as caught:
        decode_one(len(body).to_bytes(4, "big") + body)
    assert caught.value.reason == "invalid"


@pytest.mark.parametrize("decision", [
    {}, {"": "x"}, {"k" * 32: 1}, {"action": [1]}, {"action": b"deny"}, {"action": 1 << 63},
    {f"k{i}": i for i in range(16)},
    {"action": "x" * 1024, **{f"k{i}": "x" * 1024 for i in range(14)}},  # > 4032 bytes
])
def test_encode_decision_refuses_what_the_daemon_would(decision):
    with pytest.raises(ValueError):
        wire.encode_decision(decision)


@given(ids, st.sampled_from([wire.STORED, wire.DUPLICATE, wire.BUSY, wire.REJECTED]),
       st.integers(0, (1 << 64) - 1))
def test_ack_round_trip_and_is_msgpack(event_id, status, seq):
    ack = wire.encode_ack(event_id, status, seq)
    assert len(ack) == wire.ACK_FRAME_BYTES
    assert wire.decode_ack(ack) == (event_id, status, seq)
    assert msgspec.msgpack.decode(ack[4:]) == [1, event_id, status, seq]


@given(st.binary(max_size=64))
def test_decode_ack_rejects_anything_else(data):
    try:
        event_id, status, seq = wire.decode_ack(data)
    except ValueError:
        return
    assert wire.encode_ack(event_id, status, seq) == data


def test_event_id_must_be_16_bytes():
    with pytest.raises(ValueError):
        wire.encode_event(b"short", 0, b"{}", 2)


@settings(max_examples=examples(400))
@given(st.lists(st.binary(max_size=200), max_size=20), st.integers(16, 512))
# A bad frame decoded from the buffered tail: its error's traceback used to keep a view of
# the buffer, which then could not be cleared (BufferError instead of FrameError).
@example([b"\x00", b"\x00\x00\x00"], 16)
def test_any_bytes_give_frames_or_one_documented_error(chunks, limit):
    decoder = FrameDecoder(max_frame_bytes=limit)
    for chunk in chunks:
        frames, error = decoder.feed(chunk)
        assert all(isinstance(f, EventFrame) for f in frames)
        # Memory stays bounded by one frame plus its length prefix.
        assert decoder.buffered <= limit + 4
        if error is not None:
            assert isinstance(error, FrameError)
            assert error.reason in {"oversized", "invalid", "version"}
            return


@given(st.lists(st.tuples(ids, timestamps, st.binary(max_size=300)), min_size=1, max_size=8),
       st.data())
def test_frames_survive_any_chunking(events, data):
    stream = b"".join(wire.encode_event(i, t, p, len(p)) for i, t, p in events)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = FrameDecoder()
    got = []
    last = 0
    for cut in [*cuts, len(stream)]:
        frames, error = decoder.feed(stream[last:cut])
        assert error is None
        got.extend(frames)
        last = cut
    assert [(f.id, f.ts_ns, f.payload) for f in got] == events
    assert decoder.buffered == 0


def test_valid_frames_before_a_broken_one_are_kept():
    good = wire.encode_event(b"a" * 16, 1, b"{}", 2)
    frames, error = FrameDecoder().feed(good + b"\x00\x00\x00\x02\xc1\xc1")
    assert len(frames) == 1 and error is not None and error.reason == "invalid"


def test_oversized_length_is_refused_before_buffering():
    decoder = FrameDecoder(max_frame_bytes=1024)
    frames, error = decoder.feed((10_000).to_bytes(4, "big") + b"x" * 100)
    assert frames == [] and error is not None and error.reason == "oversized"
    assert decoder.buffered == 0


def test_unknown_version_is_refused():
    body = msgspec.msgpack.encode([2, b"a" * 16, 1, b"{}", 2])
    _frames, error = FrameDecoder().feed(len(body).to_bytes(4, "big") + body)
    assert error is not None and error.reason == "version"


def test_decode_one_wants_exactly_one_frame():
    good = wire.encode_event(b"a" * 16, 1, b"{}", 2)
    assert decode_one(good).payload == b"{}"
    for bad in (good + good, good[:-1], b""):
        with pytest.raises(FrameError):
            decode_one(bad)
