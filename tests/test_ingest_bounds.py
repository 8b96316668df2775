"""Bounds of the socket side under hostile load (issue 12, defects 8 and 9).

Memory: what connections hold between reads (unfinished frames, at their announced size)
stays within ``max_partial_bytes`` across all of them; a frame that does not fit is
answered BUSY (the hook spools it, the spool drain stores it) and the connection goes on.
Fairness: a connection is served at most ``FRAMES_PER_TURN`` frames a turn, so a hook's
frame is stored after at most a turn of each connection that pipelines, not after all they
sent. Real daemon processes, real sockets; no timing is asserted.
"""

from __future__ import annotations

import os
import random
import select
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpm_hook import wire
from mpmd.ingest.framing import REFUSE_AFTER, FrameDecoder
from mpmd.ingest.hook_socket import FRAMES_PER_TURN
from tests.utils import (
    Daemon,
    examples,
    journal_events,
    run_hook,
    send_events,
    spool_files,
    status,
    wait_until,
)

ACK = wire.ACK_FRAME_BYTES
KiB = 1024
MiB = 1024 * KiB


def prompt(size: int, tag: str = "") -> bytes:
    """A UserPromptSubmit payload of about ``size`` bytes whose prompt starts with ``tag``."""
    head = b'{"hook_event_name": "UserPromptSubmit", "session_id": "bounds", "prompt": "'
    body = tag.encode() + b" " + b"x" * max(0, size - len(head) - len(tag) - 3)
    return head + body + b'"}'


def event(payload: bytes) -> tuple[bytes, bytes]:
    """(id, frame) of one event, as the hook writes it."""
    event_id = os.urandom(16)
    return event_id, wire.encode_event(event_id, time.time_ns(), payload, len(payload))


def connect(home: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(60)  # a bound on the test, not what it measures
    sock.connect(str(home / "mpmd.sock"))
    return sock


def read_acks(sock: socket.socket, n: int) -> list[tuple[bytes, int, int]]:
    data = b""
    while len(data) < n * ACK:
        chunk = sock.recv(n * ACK - len(data))
        assert chunk, "the daemon closed the connection"
        data += chunk
    return [wire.decode_ack(data[k : k + ACK]) for k in range(0, len(data), ACK)]


def counters(home: Path) -> dict[str, int]:
    return status(home)["counters"]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# ---- memory ------------------------------------------------------------------------------
def test_unfinished_frames_stay_within_the_budget_and_every_event_is_stored(home):
    budget = 1 * MiB
    with Daemon(home, MPMD_MAX_PARTIAL_BYTES=str(budget)) as daemon:
        # Eight connections send most of a 400 KiB frame and stop, as a hostile peer
        # would; two such frames fit the budget, not three.
        stalled = []
        for n in range(8):
            event_id, frame = event(prompt(400 * KiB, f"stalled-{n}"))
            sock = connect(home)
            sock.sendall(frame[: 300 * KiB])
            stalled.append((sock, event_id, frame, f"stalled-{n}"))
        wait_until(lambda: counters(home).get("busy_partial_budget", 0) >= 6,
                   "the frames that do not fit are refused")
        # Each refused frame was answered BUSY, by its id, before the status reply.
        readable, _, _ = select.select([s[0] for s in stalled], [], [], 0)
        assert len(readable) == counters(home)["busy_partial_budget"] == 6
        refused = [s for s in stalled if s[0] in readable]
        kept = [s for s in stalled if s[0] not in readable]
        for sock, event_id, _frame, _tag in refused:
            assert read_acks(sock, 1) == [(event_id, wire.BUSY, 0)]
        info = counters(home)
        assert 0 < info["partial_bytes_held"] <= info["partial_bytes_peak"] <= budget

        # While the budget is taken, hooks still get their events stored: a small one at
        # once, one too big for what is left through the spool.
        assert run_hook(home, prompt(2 * KiB, "small-hook")).returncode == 0
        assert spool_files(home) == []
        assert run_hook(home, prompt(600 * KiB, "big-hook")).returncode == 0
        wait_until(lambda: status(home)["spool_pending"] == 0, "the spool drains")

        # A refused frame's connection goes on: the rest of that frame is read and dropped,
        # the next frame is stored.
        sock, _event_id, frame, _tag = refused[0]
        next_id, next_frame = event(prompt(1 * KiB, "after-refusal"))
        sock.sendall(frame[300 * KiB :] + next_frame)
        assert read_acks(sock, 1)[0][:2] == (next_id, wire.STORED)

        # A frame kept within the budget is stored once it is complete.
        sock, event_id, frame, kept_tag = kept[0]
        sock.sendall(frame[300 * KiB :])
        assert read_acks(sock, 1)[0][:2] == (event_id, wire.STORED)

        for sock, *_rest in stalled:
            sock.close()
        wait_until(lambda: counters(home).get("partial_bytes_held") == 0,
                   "closed connections give their share back")
        info = counters(home)
        assert info["partial_bytes_peak"] <= budget
        assert info["busy"] == info["busy_partial_budget"] == 7  # with the big hook's
        daemon.stop()
    prompts = sorted(e["payload"]["prompt"].split()[0] for e in journal_events(home))
    assert prompts == sorted(["small-hook", "big-hook", "after-refusal", kept_tag])


def test_many_unfinished_frames_do_not_grow_the_daemon_past_its_budget(home):
    budget = 8 * MiB
    with Daemon(home, MPMD_MAX_PARTIAL_BYTES=str(budget)) as daemon:
        before = rss_kib(daemon.pid)
        socks = []
        for n in range(24):  # 24 x 4 MiB announced and sent but for the last bytes: 96 MiB
            _event_id, frame = event(prompt(4 * MiB, f"big-{n}"))
            sock = connect(home)
            sock.sendall(frame[:-100])
            socks.append(sock)
        wait_until(lambda: counters(home).get("busy_partial_budget", 0) >= 24 - 2,
                   "frames past the budget are refused")
        grown_mib = (rss_kib(daemon.pid) - before) / 1024
        info = counters(home)
        for sock in socks:
            sock.close()
        assert info["partial_bytes_peak"] <= budget
        assert grown_mib < 40, f"the daemon grew by {grown_mib:.0f} MiB"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_mix_of_frames_is_answered_in_order_within_the_budget(home, seed):
    """Connections at once, sending frames of any size, some stopping within their last
    frame: every frame gets at most one ack, in order, STORED or BUSY, every complete one
    exactly one; the STORED ones are in the journal, the BUSY ones not; the budget is never
    passed."""
    rnd = random.Random(seed)
    budget = rnd.choice([256 * KiB, 1 * MiB, 3 * MiB])
    sizes = [100, 2 * KiB, 60 * KiB, 300 * KiB, 900 * KiB]
    scripts = []
    for n in range(rnd.randint(6, 12)):
        frames = [event(prompt(rnd.choice(sizes), f"c{n}f{k}"))
                  for k in range(rnd.randint(1, 8))]
        last = len(frames[-1][1])
        # Some stop within their last frame, after its id: held, or refused.
        stop = REFUSE_AFTER + rnd.randrange(last - REFUSE_AFTER) if rnd.random() < 0.4 \
            else None
        scripts.append((frames, stop))
    stalled = [n for n, (_f, stop) in enumerate(scripts) if stop is not None]
    all_sent = threading.Barrier(len(stalled) + 1)
    answers: dict[int, list[tuple[bytes, int, int]]] = {}

    def run(n: int) -> None:
        frames, stop = scripts[n]
        sock = connect(home)
        blob = b"".join(f for _i, f in frames)
        got = []
        if stop is None:
            sock.sendall(blob)
        else:
            sock.sendall(blob[: len(blob) - len(frames[-1][1]) + stop])
            got = read_acks(sock, len(frames) - 1)
            all_sent.wait()  # every stalled frame is held or refused alongside the others
        sock.shutdown(socket.SHUT_WR)
        rest = b""
        while chunk := sock.recv(1 << 16):
            rest += chunk
        sock.close()
        answers[n] = got + [wire.decode_ack(rest[k : k + ACK])
                            for k in range(0, len(rest), ACK)]

    with Daemon(home, MPMD_MAX_PARTIAL_BYTES=str(budget)) as daemon:
        threads = [threading.Thread(target=run, args=(n,)) for n in range(len(scripts))]
        for t in threads:
            t.start()
        all_sent.wait()
        for t in threads:
            t.join()
        assert len(answers) == len(scripts), "a connection failed"
        info = counters(home)
        daemon.stop()
    assert 0 < info["partial_bytes_peak"] <= budget
    stored, busy = set(), set()
    for n, (frames, stop) in enumerate(scripts):
        got = answers[n]
        ids = [i for i, _f in frames]
        assert [a[0] for a in got] == ids[: len(got)], "at most one ack a frame, in order"
        assert len(got) >= len(frames) - (stop is not None)
        for event_id, state, _seq in got:
            assert state in (wire.STORED, wire.BUSY)
            (stored if state == wire.STORED else busy).add(event_id.hex())
    journaled = [e["id"] for e in journal_events(home)]
    assert len(journaled) == len(set(journaled))
    assert stored == set(journaled)
    assert len(busy) == info.get("busy_partial_budget", 0) == info.get("busy", 0)


def test_memory_goes_back_to_the_system_after_a_burst(home):
    if not sys.platform.startswith("linux"):
        pytest.skip("malloc_trim is glibc's")
    with Daemon(home, MPMD_IDLE_TIMEOUT_S="0.4"):  # the sweep that notices: every 0.2 s
        send_events(home, [prompt(500, f"burst-{k}") for k in range(1500)])
        wait_until(lambda: counters(home).get("memory_trims", 0) == 1,
                   "the daemon trims its heap once the burst is over")


# ---- fairness ----------------------------------------------------------------------------
def _burst(home: Path, n: int, payload: bytes) -> tuple[socket.socket, list[bytes], bytes]:
    """A connection with ``n`` small frames to pipeline: (socket, ids, the frames)."""
    ids = [os.urandom(16) for _ in range(n)]
    ts = time.time_ns()
    blob = b"".join(wire.encode_event(i, ts, payload, len(payload)) for i in ids)
    return connect(home), ids, blob


def _fill(sock: socket.socket, blob: bytes) -> int:
    """Send what the socket takes without blocking (the daemon is stopped): how much."""
    sock.setblocking(False)
    sent = 0
    try:
        while sent < len(blob):
            sent += sock.send(blob[sent : sent + 64 * KiB])
    except BlockingIOError:
        pass
    sock.settimeout(60)
    return sent


def _pipeline_rest(sock: socket.socket, blob: bytes, sent: int, n: int,
                   out: dict[str, object]) -> threading.Thread:
    """Send the rest of ``blob`` and read ``n`` acks meanwhile, in threads."""
    def send() -> None:
        sock.sendall(blob[sent:])

    def receive() -> None:
        out["acks"] = read_acks(sock, n)

    sender = threading.Thread(target=send)
    receiver = threading.Thread(target=receive)
    sender.start()
    receiver.start()

    def both() -> None:
        sender.join()
        receiver.join()

    joined = threading.Thread(target=both)
    joined.start()
    return joined


@pytest.mark.parametrize("bursts,hooks", [(1, 1), (3, 4)])
def test_a_hook_is_stored_after_a_turn_of_each_pipelining_connection(home, bursts, hooks):
    """Connections with thousands of frames waiting, and hooks that connect behind them
    while the daemon is stopped: once it runs again, each hook's frame is stored after at
    most a turn or two of each burst, not after everything they had sent."""
    tiny = b'{"hook_event_name": "Stop", "session_id": "burst"}'
    n = 20_000
    with Daemon(home) as daemon:
        daemon.signal(signal.SIGSTOP)
        try:
            conns = [_burst(home, n, tiny) for _ in range(bursts)]
            queued = [_fill(sock, blob) for sock, _ids, blob in conns]
            frame_bytes = len(conns[0][2]) // n
            assert min(queued) // frame_bytes > 8 * FRAMES_PER_TURN, "enough queued"
            probes = []
            for k in range(hooks):
                event_id, frame = event(prompt(300, f"hook-{k}"))
                sock = connect(home)
                sock.sendall(frame)
                sock.shutdown(socket.SHUT_WR)
                probes.append((sock, event_id))
        finally:
            daemon.signal(signal.SIGCONT)
        results: list[dict[str, object]] = [{} for _ in conns]
        waits = [_pipeline_rest(sock, blob, sent, n, out)
                 for (sock, _ids, blob), sent, out in zip(conns, queued, results, strict=True)]
        hook_seqs = []
        for sock, event_id in probes:
            [(acked, state, seq)] = read_acks(sock, 1)
            assert (acked, state) == (event_id, wire.STORED)
            hook_seqs.append(seq)
            sock.close()
        for w in waits:
            w.join()
        for (sock, ids, _blob), out in zip(conns, results, strict=True):
            acks = out["acks"]
            assert [a[0] for a in acks] == ids  # type: ignore[union-attr]
            assert {a[1] for a in acks} == {wire.STORED}  # type: ignore[union-attr]
            sock.close()
    burst_seqs = sorted(a[2] for out in results for a in out["acks"])  # type: ignore[union-attr]
    for seq in hook_seqs:
        before = sum(1 for s in burst_seqs if s < seq)
        # Before the bound, one wake-up stored a whole read or four of each burst first
        # (thousands of these frames).
        assert before <= 2 * bursts * FRAMES_PER_TURN, (before, seq)


# ---- the decoder's side of both ---------------------------------------------------------
frames_st = st.lists(st.tuples(st.binary(min_size=16, max_size=16), st.binary(max_size=300)),
                     min_size=1, max_size=12)


@settings(max_examples=examples(200))
@given(frames_st, st.data())
def test_frames_come_out_in_order_whatever_the_turn_limits(events, data):
    stream = b"".join(wire.encode_event(i, 1, p, len(p)) for i, p in events)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    decoder = FrameDecoder()
    got = []
    last = 0
    for cut in [*cuts, len(stream)]:
        chunk = stream[last:cut]
        last = cut
        was_ready = False
        while True:
            frames, error = decoder.feed(chunk, data.draw(st.integers(1, 4)),
                                         data.draw(st.integers(1, 2000)))
            assert error is None
            assert frames or not was_ready, "a ready decoder gives a frame"
            got += frames
            chunk = b""
            was_ready = decoder.ready
            if not was_ready:
                break
        # What it holds is at least what it has; an unfinished frame counts whole.
        assert decoder.holding >= decoder.buffered
    assert [(f.id, f.payload) for f in got] == events
    assert decoder.buffered == 0


@settings(max_examples=examples(200))
@given(frames_st, st.integers(0, 11), st.integers(0, 1 << 30), st.data())
def test_a_refused_frame_is_skipped_and_the_stream_goes_on(events, which, cut, data):
    which %= len(events)
    frames = [wire.encode_event(i, 1, p, len(p)) for i, p in events]
    refused = frames[which]
    upto = b"".join(frames[:which])
    keep = REFUSE_AFTER + cut % (len(refused) - REFUSE_AFTER)  # the refused frame's start
    decoder = FrameDecoder()
    got, error = decoder.feed(upto + refused[:keep])
    assert error is None and not decoder.ready
    assert decoder.holding == len(refused) and decoder.buffered == keep
    assert decoder.refuse() == events[which][0]
    assert decoder.buffered == 0
    rest = refused[keep:] + b"".join(frames[which + 1 :])
    pieces = sorted(data.draw(st.lists(st.integers(0, len(rest)), max_size=5)))
    last = 0
    for piece in [*pieces, len(rest)]:
        more, error = decoder.feed(rest[last:piece])
        assert error is None
        got += more
        last = piece
    expected = events[:which] + events[which + 1 :]
    assert [(f.id, f.payload) for f in got] == expected


def test_a_frame_not_in_the_hooks_layout_is_refused_without_an_id():
    # Any MessagePack encoder starts an event frame as the hook does.
    body = msgspec.msgpack.encode([1, b"i" * 16, 1, b"x" * 100, 100])
    frame = len(body).to_bytes(4, "big") + body
    decoder = FrameDecoder()
    assert decoder.feed(frame[:40]) == ([], None)
    assert decoder.refuse() == b"i" * 16
    # An array 16 head: the id is not where the hook puts it.
    other = b"\x00\x00\x01\x00" + b"\xdc\x00\x05" + b"\x01" * 40
    decoder = FrameDecoder()
    assert decoder.feed(other) == ([], None)
    assert decoder.refuse() is None
