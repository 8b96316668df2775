"""The control socket's requests and answers (mpmd.control.protocol): what one end sends
is what the other decodes, and anything else is refused with a reason."""

from __future__ import annotations

import socket
from pathlib import Path

import msgspec
import pytest

from mpmd import config
from mpmd.control import client, protocol
from mpmd.control.protocol import (
    Done,
    Failed,
    FollowRequest,
    Progress,
    ReindexRequest,
    ReplayRequest,
    Started,
    StatusRequest,
    StopRequest,
)
from tests.utils import Daemon, fixture_payloads, send_events, status, wait_until


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


@pytest.mark.parametrize("answer", [
    Started(total=12), Started(total=3, session_id="9f1c2b7e-4d3a"), Progress(done=5), Done(),
    Done(last_seq=41), Failed(error="rebuild failed: busy")])
def test_every_answer_comes_back_as_sent(answer: protocol.Answer) -> None:
    line = protocol.encode(answer)
    assert line.count(b"\n") == 1 and b'"answer"' in line
    assert protocol.decode_answer(line) == answer


def test_an_answer_of_no_known_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="answer"):
        protocol.decode_answer(b'{"answer": "maybe"}')
    with pytest.raises(ValueError, match="total"):
        protocol.decode_answer(b'{"answer": "started"}')


# ---- against a running daemon ----------------------------------------------------------------


def _raw(settings: config.Settings, line: bytes) -> list[bytes]:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(str(settings.control_path))
        sock.sendall(line)
        with sock.makefile("rb") as f:
            return f.read().splitlines()


def test_a_running_daemon_answers_in_typed_lines(home: Path, monkeypatch) -> None:
    monkeypatch.setenv("MPMD_HOME", str(home))
    with Daemon(home):
        send_events(home, fixture_payloads()[:5])
        wait_until(lambda: status(home)["index_last_seq"] == 5, "indexed")
        settings = config.load()
        # a request it does not know: one Failed line naming what is wrong, then closed
        (refused,) = _raw(settings, b'{"cmd": "shutdown"}\n')
        failed = protocol.decode_answer(refused)
        assert isinstance(failed, Failed) and "cmd" in failed.error
        # a streaming command: Started, Progress up to the total, then Done
        answers = list(client.answers(settings, ReindexRequest()))
        assert answers[0] == Started(total=5)
        steps = [a.done for a in answers[1:-1] if isinstance(a, Progress)]
        assert len(steps) == len(answers) - 2 and steps == sorted(steps) and steps[-1] == 5
        assert answers[-1] == Done(last_seq=5)
        # a replay of no such session fails with the index's reason, no Started before it
        (missing,) = client.answers(settings, ReplayRequest(session="no-such-session"))
        assert isinstance(missing, Failed) and "no session" in missing.error
