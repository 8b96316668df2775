"""The control socket's requests (mpmd.control.protocol): what the CLI sends is what the
daemon decodes, and anything else is refused with a reason."""

from __future__ import annotations

import msgspec
import pytest

from mpmd.control import protocol
from mpmd.control.protocol import (
    FollowRequest,
    ReindexRequest,
    ReplayRequest,
    StatusRequest,
    StopRequest,
)


@pytest.mark.parametrize("request_", [
    StatusRequest(), StopRequest(), FollowRequest(), FollowRequest(after=41), ReindexRequest(),
    ReplayRequest(session="9f1c2b7e", speed=4.0)])
def test_every_request_comes_back_as_sent(request_: protocol.Request) -> None:
    line = protocol.encode(request_)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert protocol.decode(line) == request_


def test_the_line_names_the_command() -> None:
    assert protocol.decode(b'{"cmd": "follow", "after": 3}\n') == FollowRequest(after=3)
    assert protocol.decode(b'{"cmd": "replay", "session": "s"}') == ReplayRequest(session="s")


@pytest.mark.parametrize(("line", "why"), [
    (b'{"cmd": "shutdown"}', "cmd"),  # no such command
    (b'{"after": 3}', "cmd"),  # no command at all
    (b'{"cmd": "follow", "after": "3"}', "after"),  # wrong type
    (b'{"cmd": "stop", "force": true}', "force"),  # a field the command does not take
    (b'{"cmd": "replay"}', "session"),  # a field it needs
    (b"[1, 2]", "object"),
    (b"not json", "JSON"),
    (b"", "truncated"),  # the client went away before it said anything
])
def test_anything_else_is_refused_with_its_reason(line: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why) as caught:
        protocol.decode(line)
    assert isinstance(caught.value, msgspec.MsgspecError)
