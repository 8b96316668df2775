"""mpm_hook.remote: the answer frame the daemon writes to a hook that waits for the viewer."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpm_hook import remote, wire

ID = bytes(range(16))


@given(behavior=st.sampled_from([remote.NONE, remote.ALLOW, remote.DENY]), message=st.text())
def test_round_trip(behavior: int, message: str) -> None:
    frame = remote.encode_answer(ID, behavior, message)
    event_id, got, text = remote.decode_answer(frame)
    assert (event_id, got) == (ID, behavior)
    cut = message.encode()[:remote.MAX_MESSAGE_BYTES].decode("utf-8", "replace")
    assert text == cut


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_value_error(data: bytes) -> None:
    try:
        event_id, behavior, _ = remote.decode_answer(data)
    except ValueError:
        return
    assert len(event_id) == 16 and behavior in (remote.NONE, remote.ALLOW, remote.DENY)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        remote.encode_answer(b"short", remote.ALLOW)
    with pytest.raises(ValueError):
        remote.encode_answer(ID, 7)


def read(feed: list[bytes] | None, close: bool, timeout_s: float = 5.0) -> tuple[int, str]:
    """read_answer on a real socket pair, the daemon's side writing ``feed`` piece by piece
    (each after the reader has taken the previous one) and closing if ``close``."""
    hook_side, daemon_side = socket.socketpair()
    done = threading.Event()

    def daemon() -> None:
        for piece in feed or []:
            daemon_side.sendall(piece)
        if close:
            daemon_side.close()
        done.wait(30)

    thread = threading.Thread(target=daemon)
    thread.start()
    try:
        return remote.read_answer(hook_side, ID, time.monotonic() + timeout_s, time.monotonic)
    finally:
        done.set()
        thread.join()
        hook_side.close()
        if not close:
            daemon_side.close()


def test_read_answer_whole_or_in_pieces() -> None:
    frame = remote.encode_answer(ID, remote.DENY, "denied from the mpmd viewer")
    assert read([frame], close=True) == (remote.DENY, "denied from the mpmd viewer")
    pieces = [frame[:3], frame[3:10], frame[10:]]
    assert read(pieces, close=False) == (remote.DENY, "denied from the mpmd viewer")


def test_read_answer_without_an_answer_is_none() -> None:
    assert read([], close=True) == (remote.NONE, "the daemon went away")
    frame = remote.encode_answer(ID, remote.ALLOW)
    assert read([frame[:12]], close=True) == (remote.NONE, "the daemon went away")
    other = remote.encode_answer(bytes(16), remote.ALLOW)
    assert read([other], close=True) == (remote.NONE, "an answer to another event")
    assert read([wire.encode_ack(ID, wire.STORED, 1)], close=True)[0] == remote.NONE
    assert read([], close=False, timeout_s=0.2) == (remote.NONE, "no answer in time")
