"""Events per second through the daemon: Unix socket -> ring -> journal, journal on.

One real daemon (defaults: 64 MiB ring, journal fsync every 1 s) in a fresh MPMD_HOME, fed
the fixture payloads (all event types, cycled) in three runs:

    per_connection  like real hooks: connect, send one frame, wait for its ack, close;
                    ``--clients`` worker processes, each running one plain blocking socket
                    at a time (``--client-impl async`` keeps ``--concurrency`` connections
                    in flight per process instead: it measured slower here, its clients
                    taking more of the CPU the daemon needs)
    pipelined       one persistent connection, ``--window`` frames in flight, sent in
                    batches of ``--batch`` built once (fresh random ids patched in)
    rss_1m          pipelined again until the daemon has stored ``--rss-events`` in all,
                    then its RSS

First the same two runs go to ``benchmarks/floor_server.py`` (mpmd's socket server with a
store that keeps nothing): the transport floor the daemon's rates are compared with.

Then Claude Code's ``http`` hooks (``--mode http``, or both by default): ``--http-clients``
worker processes, each keeping ``--http-connections`` keep-alive connections to the
daemon's endpoint (mpmd.ingest.http_endpoint) with one POST in flight on each, as Claude Code posts
a hook and waits for its answer (the request head is the one the real CLI sends, captured
from 2.1.328). Its floor is ``benchmarks/http_floor.py``: the same endpoint over a store
that keeps nothing. ``--rounds`` rounds of four runs of ``--http-seconds``, their order
rotating every round (the machine's drifts hit all four): http into the daemon, http into
its floor, per_connection socket into the daemon, and into the socket floor; the figures
are the medians over rounds. Target: daemon CPU per http event <= 100 us.

The daemon's CPU time per stored event is reported too: unlike the rates, it hardly
depends on what else the machine runs meanwhile (also reported). Rates count acks with
status STORED per second of wall time; BUSY (ring full) and other statuses are counted
apart, never as stored. At the end the daemon is stopped with SIGTERM (which drains the
ring) and the journal's last seq must equal the STORED acks: ``lost``.

    .venv/bin/python benchmarks/ingest.py [--seconds 10] [--clients 2] [--profile]
        [--mode socket|http|both] [--rounds 3] [--http-seconds 5] [--source DIR]

``--profile`` samples the daemon with py-spy during each socket run (``pip install
py-spy``), and in an extra http run after the rounds (not one of the measured ones: py-spy
costs the daemon CPU), and prints its hot spots. The last stdout line is one JSON object
with all the figures.
"""

from __future__ import annotations

import argparse
import collections
import functools
import gzip
import itertools
import json
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import _common as C

from mpm_hook import wire

ACK = wire.ACK_FRAME_BYTES
STATUS_NAMES = {wire.STORED: "stored", wire.DUPLICATE: "duplicate", wire.BUSY: "busy",
                wire.REJECTED: "rejected"}


def _tally() -> dict[str, int]:
    return {"stored": 0, "duplicate": 0, "busy": 0, "rejected": 0, "errors": 0,
            "bad_acks": 0}


# ---- per connection: worker processes ------------------------------------------------------
def _ids(n: int = 4096):
    """An endless supply of fresh 16-byte ids, drawn from the OS in blocks."""
    while True:
        block = os.urandom(16 * n)
        for i in range(0, len(block), 16):
            yield block[i : i + 16]


def _worker_blocking(path: str, payloads: list[bytes], deadline: float,
                     concurrency: int) -> dict[str, int]:
    """One event at a time: connect, send, read the ack, close (what one hook does)."""
    tally = _tally()
    ids = _ids()
    cycle = itertools.cycle(payloads)
    encode = wire.encode_event
    monotonic = time.monotonic
    while monotonic() < deadline:
        event_id = next(ids)
        payload = next(cycle)
        frame = encode(event_id, time.time_ns(), payload, len(payload))
        try:
            ack = C.send_like_the_hook(path, frame, ACK)
        except OSError:
            tally["errors"] += 1
            continue
        _count_ack(tally, ack, event_id)
    return tally


def _count_ack(tally: dict[str, int], ack: bytes, event_id: bytes) -> None:
    try:
        acked_id, status, _seq = wire.decode_ack(ack)
    except ValueError:
        tally["bad_acks"] += 1
        return
    if acked_id != event_id:
        tally["bad_acks"] += 1
        return
    tally[STATUS_NAMES[status]] += 1


def _worker_async(path: str, payloads: list[bytes], deadline: float,
                  concurrency: int) -> dict[str, int]:
    """``concurrency`` connections in flight on one event loop (uvloop when installed),
    each still one event per connection."""
    import asyncio

    loop: asyncio.AbstractEventLoop
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    tally = _tally()
    ids = _ids()
    cycle = itertools.cycle(payloads)
    encode = wire.encode_event

    class OneEvent(asyncio.Protocol):
        def __init__(self, frame: bytes, done: asyncio.Future[bytes]) -> None:
            self.frame = frame
            self.done = done
            self.buf = b""
            self.transport: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # type: ignore[assignment]
            transport.write(self.frame)  # type: ignore[attr-defined]
            transport.write_eof()  # type: ignore[attr-defined]  # as the hook does: all sent

        def data_received(self, data: bytes) -> None:
            self.buf += data
            if len(self.buf) >= ACK and not self.done.done():
                self.done.set_result(self.buf[:ACK])
                assert self.transport is not None
                self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            if not self.done.done():
                self.done.set_result(self.buf)

    async def lane() -> None:
        while time.monotonic() < deadline:
            event_id = next(ids)
            payload = next(cycle)
            frame = encode(event_id, time.time_ns(), payload, len(payload))
            done: asyncio.Future[bytes] = loop.create_future()
            try:
                await loop.create_unix_connection(functools.partial(OneEvent, frame, done),
                                                  path)
                ack = await done
            except OSError:
                tally["errors"] += 1
                continue
            _count_ack(tally, ack, event_id)

    async def all_lanes() -> None:
        await asyncio.gather(*(lane() for _ in range(concurrency)))

    try:
        loop.run_until_complete(all_lanes())
    finally:
        loop.close()
    return tally


WORKERS = {"blocking": _worker_blocking, "async": _worker_async}


def _worker_http(target: tuple[int, str], payloads: list[bytes], deadline: float,
                 concurrency: int) -> dict[str, int]:
    """``concurrency`` keep-alive connections to the http endpoint, one POST in flight on
    each (as Claude Code posts a hook and waits for its answer), fixtures cycled. A 200
    counts as stored (the endpoint answers once the event is in the ring); 503 as busy;
    other answers as rejected."""
    port, token = target
    requests = [C.http_hook_request(port, token, p) for p in payloads]
    turn = itertools.count()
    n_req = len(requests)
    tally = _tally()
    poll = select.epoll()
    conns: dict[int, tuple[socket.socket, C.HttpResponses]] = {}

    def drop(fd: int) -> None:
        sock, _ = conns.pop(fd)
        poll.unregister(fd)
        sock.close()

    for _ in range(concurrency):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conns[sock.fileno()] = (sock, C.HttpResponses())
        poll.register(sock.fileno(), select.EPOLLIN)
        sock.sendall(requests[next(turn) % n_req])
    monotonic = time.monotonic
    try:
        while conns:
            for fd, _mask in poll.poll(5.0):
                sock, answers = conns[fd]
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:  # closed with a request in flight
                    tally["errors"] += 1
                    drop(fd)
                    continue
                try:
                    got = answers.feed(data)
                except ValueError:
                    tally["bad_acks"] += 1
                    drop(fd)
                    continue
                for status, _body in got:
                    key = ("stored" if status == 200 else "busy" if status == 503
                           else "rejected")
                    tally[key] += 1
                if got:
                    if monotonic() < deadline:
                        sock.sendall(requests[next(turn) % n_req])
                    else:
                        drop(fd)
    finally:
        for fd in list(conns):
            drop(fd)
        poll.close()
    return tally


_RUNNERS: dict[str, Callable[..., dict[str, int]]] = {**WORKERS, "http": _worker_http}


def _worker_main(impl: str, path: str, payloads: list[bytes], seconds: float,
                 concurrency: int, go, results) -> None:  # noqa: ANN001 - mp primitives
    go.wait()
    start = time.monotonic()
    cpu0 = os.times()
    tally = _RUNNERS[impl](path, payloads, start + seconds, concurrency)
    cpu1 = os.times()
    tally["start"] = start  # type: ignore[assignment]
    tally["end"] = time.monotonic()  # type: ignore[assignment]
    tally["cpu_s"] = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)  # type: ignore
    results.put(tally)


def run_per_connection(path: str, payloads: list[bytes], args: argparse.Namespace, *,
                       seconds: float | None = None) -> dict[str, float]:
    return run_workers(args.client_impl, path, payloads, seconds or args.seconds,
                       args.clients, args.concurrency)


def run_http(target: tuple[int, str], payloads: list[bytes], args: argparse.Namespace, *,
             seconds: float | None = None) -> dict[str, float]:
    return run_workers("http", target, payloads, seconds or args.http_seconds,
                       args.http_clients, args.http_connections)


def run_workers(impl: str, target: object, payloads: list[bytes], seconds: float,
                clients: int, concurrency: int) -> dict[str, float]:
    ctx = C.mp_context()
    go = ctx.Event()
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker_main, args=(impl, target, payloads, seconds,
                                                    concurrency, go, results), daemon=True)
             for _ in range(clients)]
    for p in procs:
        p.start()
    time.sleep(0.2)  # let them all reach go.wait()
    go.set()
    tallies = [results.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join(30)
    total = _tally()
    for t in tallies:
        for key in total:
            total[key] += t[key]
    wall = max(t["end"] for t in tallies) - min(t["start"] for t in tallies)
    return {**total, "wall_s": wall, "client_cpu_s": sum(t["cpu_s"] for t in tallies)}


# ---- pipelined: one connection, a window of frames -----------------------------------------
class Batch:
    """``size`` event frames back to back, built once; each send patches in fresh ids."""

    def __init__(self, payloads: list[bytes], size: int, start: int = 0) -> None:
        ts = time.time_ns()
        frames, offsets, at = [], [], 0
        for i in range(size):
            payload = payloads[(start + i) % len(payloads)]
            frame = wire.encode_event(bytes(16), ts, payload, len(payload))
            offsets.append(at + 8)  # 4-byte length, then 0x95 0x01 0xc4 0x10, then the id
            frames.append(frame)
            at += len(frame)
        self.blob = bytearray(b"".join(frames))
        self.offsets = offsets
        self.size = size

    def fresh(self) -> bytes:
        """New ids and the current time patched in; returns the ids, concatenated.

        A hook stamps its event just before sending it; a stale stamp would also be
        unrealistic for the daemon (its ISO clock caches the current second)."""
        ids = os.urandom(16 * self.size)
        ts = time.time_ns().to_bytes(8, "big")
        blob = self.blob
        for k, off in enumerate(self.offsets):
            blob[off : off + 16] = ids[16 * k : 16 * k + 16]
            blob[off + 17 : off + 25] = ts  # after the id: 0xcf, then the 8-byte ts_ns
        return ids


def run_pipelined(path: str, payloads: list[bytes], args: argparse.Namespace, *,
                  seconds: float | None = None, events: int | None = None,
                  every: int = 0, on_progress=None) -> dict[str, float]:  # noqa: ANN001
    """Until ``seconds`` have passed or ``events`` acks came back (whichever is given);
    ``on_progress(acks so far)`` is called about every ``every`` acks."""
    batch_size = args.batch
    in_flight = max(1, args.window // batch_size)
    batches = [Batch(payloads, batch_size, start=i * batch_size) for i in range(in_flight)]
    tally = _tally()
    acks = bytearray(batch_size * ACK)
    view = memoryview(acks)
    pending: collections.deque[bytes] = collections.deque()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    cpu0 = os.times()
    start = time.monotonic()
    deadline = start + seconds if seconds is not None else float("inf")
    budget = events if events is not None else 1 << 62
    sent = 0
    turn = 0

    def send_one() -> None:
        nonlocal sent, turn
        batch = batches[turn % in_flight]
        turn += 1
        pending.append(batch.fresh())
        sock.sendall(batch.blob)
        sent += batch_size

    try:
        for _ in range(in_flight):
            if sent < budget:
                send_one()
        while pending:
            C.recv_exactly(sock, view)
            ids = pending.popleft()
            statuses = acks[24::ACK]
            tally["stored"] += statuses.count(wire.STORED)
            tally["duplicate"] += statuses.count(wire.DUPLICATE)
            tally["busy"] += statuses.count(wire.BUSY)
            tally["rejected"] += statuses.count(wire.REJECTED)
            acked = b"".join(acks[k * ACK + 8 : k * ACK + 24] for k in range(batch_size))
            if acked != ids:
                tally["bad_acks"] += sum(acked[16 * k : 16 * k + 16] != ids[16 * k : 16 * k + 16]
                                         for k in range(batch_size))
            if on_progress is not None and every:
                done = sent - batch_size * len(pending)
                if done // every != (done - batch_size) // every:
                    on_progress(done)
            if time.monotonic() < deadline and sent < budget:
                send_one()
    finally:
        sock.close()
    end = time.monotonic()
    cpu1 = os.times()
    return {**tally, "wall_s": end - start,
            "client_cpu_s": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)}


# ---- the daemon side -----------------------------------------------------------------------
def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU time of a process (all its threads), from /proc; 0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


class Profiler:
    """py-spy attached to the daemon for one run; hot spots by self and total time."""

    def __init__(self, pid: int, out: Path, rate: int, native: bool = False) -> None:
        self.out = out
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.proc = subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
             "--nolineno", "--output", str(out), *(["--native"] if native else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        time.sleep(0.5)  # attach before the load starts

    def stop(self) -> list[str]:
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        if not self.out.exists():
            return [f"py-spy wrote no profile: {err.decode(errors='replace').strip()[-300:]}"]
        return hot_spots(self.out.read_text())


def _short(frame: str) -> str:
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "/mpmd/", "/mpm_hook/", "python3.11/"):
        if marker in where:
            where = where.rpartition(marker)[2]
            if marker in ("/mpmd/", "/mpm_hook/"):
                where = marker.strip("/") + "/" + where
            break
    return f"{name} ({where})"


_TRUNK_WHERE = ("click/", "<frozen runpy>", "mpmd/__main__.py", "threading.py",
                "concurrent/futures/thread.py", "asyncio/base_events.py", "asyncio/runners.py")
_TRUNK_FRAMES = ("start (mpmd/cli/main.py)", "run (mpmd/daemon/wiring.py)",
                 "_run (asyncio/events.py)")


def _trunk(frame: str) -> bool:
    """Frames on (nearly) every stack: the way into the event loop, not where time goes."""
    where = frame.rpartition(" (")[2]
    return frame in _TRUNK_FRAMES or any(where.startswith(w) for w in _TRUNK_WHERE)


def hot_spots(collapsed: str, top: int = 15) -> list[str]:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";") if f and not f.startswith("process ")
                  and not f.startswith("thread ")]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    if not total:
        return ["no samples"]
    lines = [f"{total} samples (active time only)", "self time:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines.append("total time (function and its callees), start-up and event-loop frames "
                 "left out:")
    shown = 0
    for f, n in inclusive.most_common():
        if _trunk(f):
            continue
        lines.append(f"  {100 * n / total:5.1f}%  {f}")
        shown += 1
        if shown >= top:
            break
    return lines


def count_journal_lines(journal_dir: Path) -> int:
    lines = 0
    for path in sorted(journal_dir.iterdir()):
        if path.name.endswith(".jsonl"):
            opener = open
        elif path.name.endswith(".jsonl.gz"):
            opener = gzip.open  # type: ignore[assignment]
        else:
            continue
        with opener(path, "rb") as f:
            while chunk := f.read(1 << 20):
                lines += chunk.count(b"\n")
    return lines


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())


def mb(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


class Floor:
    """A floor server process: ``benchmarks/floor_server.py`` (mpmd's socket server) or
    ``benchmarks/http_floor.py`` (mpmd's http endpoint), each over a store that keeps
    nothing. ``target``: the socket's path, or (port, token)."""

    def __init__(self, kind: str, home: Path, args: argparse.Namespace) -> None:
        script = "floor_server.py" if kind == "socket" else "http_floor.py"
        where = home / ("floor.sock" if kind == "socket" else "http-floor")
        read_fd, write_fd = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name(script)), str(where), str(write_fd)],
            pass_fds=(write_fd,), env=C.clean_env(**C.source_env(args.source)),
        )
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as ready:
            line = ready.readline()
        if not line.startswith(b"ready"):
            self.stop()
            raise RuntimeError(f"the {kind} floor server did not start")
        self.target: object = str(where)
        if kind == "http":
            self.target = (int(line.split()[1]), (where / "http.token").read_text().strip())

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(30)


def measure_floor(floor: Floor, payloads: list[bytes],
                  args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """The same two runs against benchmarks/floor_server.py: mpmd's socket server with a
    store that keeps nothing. The baseline the daemon's rates are compared with."""
    path = str(floor.target)
    print("  floor: mpmd's socket server with a store that keeps nothing, same clients")
    out: dict[str, dict[str, float]] = {}
    for name, run, kw in (("per_connection", run_per_connection, {}),
                          ("pipelined", run_pipelined, {"seconds": args.seconds})):
        cpu0 = cpu_seconds(floor.pid)
        result = run(path, payloads, args, **kw)
        result["cpu_s"] = sum(cpu_seconds(floor.pid)) - sum(cpu0)
        result["events_per_s"] = result["stored"] / result["wall_s"]
        out[name] = result
        print(f"  floor {name:15} {result['events_per_s']:10,.0f} events/s  (server CPU "
              f"{1e6 * result['cpu_s'] / max(1, result['stored']):.0f} us an event)")
    return out


HTTP_RUNS = ("http", "http_floor", "socket", "socket_floor")
HTTP_RUN_NAMES = {"http": "http into the daemon", "http_floor": "http into its floor",
                  "socket": "socket into the daemon", "socket_floor": "socket into its floor"}


def gzipped_segments(journal_dir: Path) -> int:
    return sum(1 for p in journal_dir.iterdir() if p.name.endswith(".jsonl.gz"))


def measure_http(daemon_pid: int, worker_pid: int, socket_path: str,
                 http_target: tuple[int, str], floors: dict[str, Floor],
                 payloads: list[bytes], args: argparse.Namespace,
                 journal_dir: Path) -> dict[str, object]:
    """``--rounds`` rounds of the four runs (their order rotating a step each round); the
    server's CPU per event and the rate of every run, and their medians.

    The daemon gzips closed journal segments every 60 s, in a thread of its own process
    (1-2 s of CPU for a 64 MiB segment): a daemon run during which that happened is marked
    and left out of the medians (unless every run of its kind was hit)."""
    runs = {
        "http": (run_http, http_target, daemon_pid),
        "http_floor": (run_http, floors["http"].target, floors["http"].pid),
        "socket": (run_per_connection, socket_path, daemon_pid),
        "socket_floor": (run_per_connection, floors["socket"].target, floors["socket"].pid),
    }
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in HTTP_RUNS}
    servers = [daemon_pid, worker_pid, floors["http"].pid, floors["socket"].pid]
    busy0, own0 = C.machine_busy_s(), C.own_tree_cpu_s()
    cpu_start = sum(sum(cpu_seconds(pid)) for pid in servers)
    wall0 = time.monotonic()
    print(f"  http: {args.http_clients} processes x {args.http_connections} keep-alive "
          f"connections, one POST in flight on each; socket: {args.clients} processes x "
          f"{args.concurrency} ({args.client_impl}), one event per connection; "
          f"{args.rounds} rounds of 4 runs of {args.http_seconds:g} s, order rotating")
    for r in range(args.rounds):
        order = list(HTTP_RUNS[r % 4:] + HTTP_RUNS[:r % 4])
        cells = []
        for name in order:
            run, target, pid = runs[name]
            gz0 = gzipped_segments(journal_dir)
            cpu0, wcpu0 = cpu_seconds(pid), cpu_seconds(worker_pid)
            result = run(target, payloads, args, seconds=args.http_seconds)  # type: ignore
            cpu1, wcpu1 = cpu_seconds(pid), cpu_seconds(worker_pid)
            result["gzip"] = pid == daemon_pid and gzipped_segments(journal_dir) != gz0
            result["cpu_s"] = sum(cpu1) - sum(cpu0)
            result["sys_s"] = cpu1[1] - cpu0[1]
            result["worker_cpu_s"] = (sum(wcpu1) - sum(wcpu0)) if pid == daemon_pid else 0.0
            result["us_per_event"] = 1e6 * result["cpu_s"] / max(1, result["stored"])
            result["events_per_s"] = result["stored"] / result["wall_s"]
            samples[name].append(result)
            bad = int(result["busy"] + result["rejected"] + result["errors"]
                      + result["bad_acks"])
            cells.append(f"{name} {result['us_per_event']:.0f} us, "
                         f"{result['events_per_s']:,.0f}/s" + (f" ({bad} not 200)" if bad
                                                                 else "")
                         + (" (gzip: left out)" if result["gzip"] else ""))
        print(f"  round {r + 1}: " + "; ".join(cells))
    busy1 = C.machine_busy_s()
    other = None
    if busy0 is not None and busy1 is not None:
        ours = (C.own_tree_cpu_s() - own0
                + sum(sum(cpu_seconds(pid)) for pid in servers) - cpu_start)
        other = max(0.0, busy1 - busy0 - ours) / (time.monotonic() - wall0)

    def kept(name: str) -> list[dict[str, float]]:
        return [s for s in samples[name] if not s["gzip"]] or samples[name]

    def med(name: str, key: str) -> float:
        return statistics.median(s[key] for s in kept(name))

    def paired(a: str, b: str) -> float:
        pairs = list(zip(samples[a], samples[b], strict=True))
        clean = [(x, y) for x, y in pairs if not (x["gzip"] or y["gzip"])] or pairs
        return statistics.median(x["us_per_event"] / y["us_per_event"] for x, y in clean)

    out: dict[str, object] = {"samples": samples, "other_load_cores": other}
    for name in HTTP_RUNS:
        out[name] = {k: med(name, k) for k in ("us_per_event", "events_per_s", "cpu_s",
                                                 "sys_s", "wall_s", "client_cpu_s",
                                                 "worker_cpu_s")}
        out[name]["stored"] = sum(s["stored"] for s in samples[name])  # type: ignore
        out[name]["not_200"] = sum(s["busy"] + s["rejected"] + s["errors"]  # type: ignore
                                   + s["bad_acks"] for s in samples[name])
    # the same round's ratio, then its median (a drift of the machine cancels out)
    out["http_vs_socket"] = paired("http", "socket")
    out["http_vs_floor"] = paired("http", "http_floor")
    out["socket_vs_floor"] = paired("socket", "socket_floor")
    out["gzip_runs"] = sum(s["gzip"] for name in HTTP_RUNS for s in samples[name])
    print(f"\n  {'medians of ' + str(args.rounds) + ' rounds':26} {'CPU/event':>10} "
          f"{'kernel':>7} {'events/s':>10} {'server CPU':>10} {'clients':>8}")
    for name in HTTP_RUNS:
        f = out[name]  # type: ignore[assignment]
        print(f"  {HTTP_RUN_NAMES[name]:26} {f['us_per_event']:8.0f} us "  # type: ignore
              f"{100 * f['sys_s'] / max(1e-9, f['cpu_s']):6.0f}% "  # type: ignore
              f"{f['events_per_s']:10,.0f} {100 * f['cpu_s'] / f['wall_s']:9.0f}% "  # type: ignore
              f"{100 * f['client_cpu_s'] / f['wall_s']:7.0f}%")  # type: ignore
    us = out["http"]["us_per_event"]  # type: ignore[index]
    print(f"  daemon CPU per http event: {us:.0f} us (target <= 100 us: "
          f"{'met' if us <= 100 else 'NOT met'}); per socket event (one connection each) "
          f"{out['socket']['us_per_event']:.0f} us: http / socket "  # type: ignore[index]
          f"{out['http_vs_socket']:.2f} (median of the rounds' ratios); daemon / floor: http "
          f"{out['http_vs_floor']:.2f}, socket {out['socket_vs_floor']:.2f}")
    if other is not None:
        print(f"  other processes used {other:.2f} cores on average during the rounds")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("socket", "http", "both"), default="both",
                    help="socket: the socket runs (per_connection, pipelined, rss_1m); "
                         "http: the alternated http/socket rounds; both (default)")
    ap.add_argument("--seconds", type=float, default=10, help="per mode (default 10)")
    ap.add_argument("--clients", type=int, default=2, help="per_connection worker processes")
    ap.add_argument("--client-impl", choices=sorted(WORKERS), default="blocking",
                    help="per_connection worker: blocking (default: one plain socket at a "
                         "time; measured faster here, it leaves more CPU to the daemon) or "
                         "async (--concurrency connections in flight per process, uvloop)")
    ap.add_argument("--concurrency", type=int, default=8,
                    help="connections in flight per async worker (default 8)")
    ap.add_argument("--window", type=int, default=512, help="pipelined frames in flight")
    ap.add_argument("--batch", type=int, default=256, help="pipelined frames per send")
    ap.add_argument("--rss-events", type=int, default=1_000_000,
                    help="events stored in all before the rss_1m reading (default 1,000,000)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="http mode: rounds of the four runs (default 3)")
    ap.add_argument("--http-seconds", type=float, default=5,
                    help="http mode: seconds of each run of a round (default 5)")
    ap.add_argument("--http-clients", type=int, default=2,
                    help="http mode: client processes (default 2)")
    ap.add_argument("--http-connections", type=int, default=4,
                    help="http mode: keep-alive connections per process (default 4)")
    ap.add_argument("--profile", action="store_true", help="sample the daemon with py-spy")
    ap.add_argument("--profile-rate", type=int, default=100, help="py-spy samples per second")
    ap.add_argument("--profile-native", action="store_true",
                    help="py-spy --native: C frames too (uvloop, msgspec, syscalls)")
    ap.add_argument("--source", help="run the daemon (and the floor) from this copy of the "
                                     "mpmd package, a folder holding mpmd/ (a before/after)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary MPMD_HOME")
    args = ap.parse_args()
    if args.client_impl == "blocking":
        args.concurrency = 1
    if args.rounds < 1 or args.http_clients < 1 or args.http_connections < 1:
        ap.error("--rounds, --http-clients and --http-connections must be at least 1")
    socket_mode = args.mode in ("socket", "both")
    http_mode = args.mode in ("http", "both")

    payloads = C.fixture_payloads()
    home = C.short_tempdir("mpmi-")
    daemon = C.Daemon(home, log_name="daemon-bench.log", **C.source_env(args.source))
    figures: dict[str, dict[str, float]] = {}
    profiles: dict[str, list[str]] = {}
    floors: dict[str, Floor] = {}
    floor: dict[str, dict[str, float]] = {}
    http: dict[str, object] = {}
    try:
        print("ingest: events/s through socket -> ring -> journal (journal on, defaults: "
              "64 MiB ring, fsync every 1 s)" + (", and http -> ring -> journal"
                                                 if http_mode else ""))
        floors["socket"] = Floor("socket", home, args)
        if http_mode:
            floors["http"] = Floor("http", home, args)
        if socket_mode:
            floor = measure_floor(floors["socket"], payloads, args)
        daemon.start(timeout=60)
        pid = daemon.pid
        path = str(home / "mpmd.sock")
        rss_start = C.rss_kb(pid)
        # The search index's worker process: its CPU and memory are shown beside the
        # daemon's (the daemon's own figures are what the RSS target is about).
        worker = json.loads(C.mpmd_cli(home, "status", "--json",
                                       timeout=120).stdout)["index_worker_pid"]
        cpus, capacity = C.parallel_capacity()
        print(f"  machine: {cpus} CPUs shown; {cpus} busy processes got {capacity:.2f} cores' "
              f"worth of CPU time together just now (load average {load_average()})")
        print(f"  payloads: {len(payloads)} fixture payloads cycled, "
              f"{sum(map(len, payloads)) / len(payloads):.0f} bytes on average; "
              f"daemon pid {pid}, RSS at start {mb(rss_start.get('VmRSS'))} MB")

        def measured(name: str, run, **kw) -> None:  # noqa: ANN001
            profiler = (Profiler(pid, home / f"profile-{name}.txt", args.profile_rate,
                                 args.profile_native) if args.profile else None)
            cpu0, wcpu0 = cpu_seconds(pid), cpu_seconds(worker)
            busy0, own0 = C.machine_busy_s(), os.times()
            result = run(path, payloads, args, **kw)
            cpu1, wcpu1 = cpu_seconds(pid), cpu_seconds(worker)
            result["worker_cpu_s"] = sum(wcpu1) - sum(wcpu0)
            result["daemon_cpu_s"] = sum(cpu1) - sum(cpu0)
            result["daemon_sys_s"] = cpu1[1] - cpu0[1]
            busy1, own1 = C.machine_busy_s(), os.times()
            if busy0 is not None and busy1 is not None:
                ours = (result["daemon_cpu_s"] + result["worker_cpu_s"] + (own1.user - own0.user)
                        + (own1.system - own0.system))
                if name == "per_connection":  # workers' CPU; the parent only waited
                    ours += result["client_cpu_s"]
                result["other_cpu_s"] = max(0.0, busy1 - busy0 - ours)
            result["rss"] = C.rss_kb(pid)  # type: ignore[assignment]
            result["worker_rss"] = C.rss_kb(worker)  # type: ignore[assignment]
            if profiler is not None:
                profiles[name] = profiler.stop()
            figures[name] = result
            rate = result["stored"] / result["wall_s"]
            result["events_per_s"] = rate
            rss = result["rss"]
            print(f"  {name:15} {rate:10,.0f} events/s  ({result['stored']:,} stored in "
                  f"{result['wall_s']:.1f} s; busy {result['busy']}, duplicate "
                  f"{result['duplicate']}, rejected {result['rejected']}, errors "
                  f"{result['errors']}, bad acks {result['bad_acks']})")
            print(f"  {'':15} daemon CPU {100 * result['daemon_cpu_s'] / result['wall_s']:.0f}%"
                  f" of a core ({100 * result['daemon_sys_s'] / result['wall_s']:.0f}% in the "
                  f"kernel, {1e6 * result['daemon_cpu_s'] / max(1, result['stored']):.0f} us "
                  f"an event), clients {100 * result['client_cpu_s'] / result['wall_s']:.0f}%;"
                  f" other processes {100 * result.get('other_cpu_s', 0) / result['wall_s']:.0f}%;"
                  f" daemon RSS {mb(rss.get('VmRSS'))} MB (anon {mb(rss.get('RssAnon'))}, "
                  f"file {mb(rss.get('RssFile'))}, shmem {mb(rss.get('RssShmem'))}), "
                  f"peak {mb(rss.get('VmHWM'))} MB")
            st = json.loads(C.mpmd_cli(home, "status", "--json", timeout=120).stdout)
            print(f"  {'':15} index worker CPU "
                  f"{100 * result['worker_cpu_s'] / result['wall_s']:.0f}% of a core, RSS "
                  f"{mb(result['worker_rss'].get('VmRSS'))} MB; index at seq "  # type: ignore
                  f"{st['index_last_seq']:,} of the journal's {st['journal_last_seq']:,}")

        if socket_mode:
            impl = (f"{args.clients} processes x {args.concurrency} connections in flight "
                    f"({args.client_impl})")
            print(f"  per_connection: {impl}, one event per connection")
            measured("per_connection", run_per_connection)
            print(f"  pipelined: one connection, {args.window} frames in flight, "
                  f"batches of {args.batch}")
            measured("pipelined", run_pipelined, seconds=args.seconds)
        http_stored = 0
        if http_mode:
            http_target = C.http_endpoint(home)
            print(f"\n  http mode: the daemon's endpoint on 127.0.0.1:{http_target[0]}, its "
                  "floor (benchmarks/http_floor.py: the same endpoint, a store that keeps "
                  "nothing) on "
                  f"127.0.0.1:{floors['http'].target[0]}")  # type: ignore[index]
            http = measure_http(pid, worker, path, http_target, floors, payloads, args,
                                home / "journal")
            samples: dict[str, list[dict[str, float]]] = http["samples"]  # type: ignore
            http_stored = int(sum(run["stored"] for name in ("http", "socket")
                                  for run in samples[name]))
            st = json.loads(C.mpmd_cli(home, "status", "--json", timeout=120).stdout)
            http["status"] = {k: st.get(k) for k in ("http_refused", "http_connections_open")}
            http["spooled"] = st.get("counters", {}).get("http_spooled", 0)
            print(f"  daemon status: http_refused {st.get('http_refused')}, spooled by the "
                  f"endpoint {http['spooled']}")
            if args.profile:
                print(f"  profiling one more http run ({args.http_seconds:g} s, not one of "
                      "the measured ones)")
                profiler = Profiler(pid, home / "profile-http.txt", args.profile_rate,
                                    args.profile_native)
                extra = run_http(http_target, payloads, args)
                profiles["http"] = profiler.stop()
                http_stored += int(extra["stored"])
        if socket_mode:
            stored_so_far = sum(int(f["stored"]) for f in figures.values()) + http_stored
            remaining = max(0, args.rss_events - stored_so_far)
            print(f"  rss_1m: pipelined until {args.rss_events:,} stored in all "
                  f"({remaining:,} more)")
            series: list[tuple[int, dict[str, int]]] = []
            if remaining:
                step = max(args.batch, args.rss_events // 10)
                measured("rss_1m", run_pipelined, events=remaining, every=step,
                         on_progress=lambda n: series.append((stored_so_far + n,
                                                              C.rss_kb(pid))))
                print("  {:>15} RSS along the way (MB, total/anon/file): ".format("")
                      + ", ".join(f"{n // 1000}k {mb(r.get('VmRSS'))}/{mb(r.get('RssAnon'))}"
                                  f"/{mb(r.get('RssFile'))}" for n, r in series))
            else:
                figures["rss_1m"] = {**_tally(), "wall_s": 0.0, "client_cpu_s": 0.0,
                                     "daemon_cpu_s": 0.0, "daemon_sys_s": 0.0,
                                     "events_per_s": 0.0, "rss": C.rss_kb(pid),  # type: ignore
                                     "worker_rss": C.rss_kb(worker)}  # type: ignore
            for name in ("per_connection", "pipelined"):
                ratio = figures[name]["events_per_s"] / max(1.0, floor[name]["events_per_s"])
                figures[name]["vs_floor"] = ratio
                print(f"  {name:15} mpmd reaches {ratio:.2f} x the transport floor's rate "
                      f"({floor[name]['events_per_s']:,.0f} events/s)")
        stored_acks = sum(int(f["stored"]) for f in figures.values()) + http_stored

        # ---- journal caught up? SIGTERM drains the ring into the journal first
        t0 = time.monotonic()
        code = daemon.stop(timeout=120)
        stop_s = time.monotonic() - t0
        from mpmd.storage.journal import Journal

        journal = Journal(home / "journal", read_only=True)
        try:
            last_seq = journal.last_seq
            first_seq = journal.first_seq
        finally:
            journal.close()
        lines = count_journal_lines(home / "journal")
        segments = [p.name for p in (home / "journal").iterdir() if ".jsonl" in p.name]
        compressed = sum(name.endswith(".gz") for name in segments)
        journal_mb = sum(p.stat().st_size for p in (home / "journal").iterdir()) / 2**20
        lost = max(0, stored_acks - last_seq)
        log_lines = daemon.read_log().splitlines()
        warnings = [ln for ln in log_lines if " WARNING " in ln or " ERROR " in ln]
        print(f"  journal: last seq {last_seq:,}, {lines:,} lines from seq {first_seq}, "
              f"STORED acks and http 200s {stored_acks:,}: lost {lost}; daemon exit code "
              f"{code} after SIGTERM ({stop_s:.1f} s to drain and stop); {len(warnings)} "
              "warnings/errors in its log")
        print(f"  journal on disk: {len(segments)} segments ({compressed} gzipped by the "
              f"daemon's maintenance, first run 60 s after start), {journal_mb:.0f} MiB")
        for ln in warnings[:5]:
            print("    " + ln[:200])
        if lines != last_seq - (first_seq or 1) + 1:
            print("  note: journal line count does not match its seq range (retention?)")
        for name, lines_ in profiles.items():
            print(f"\n  py-spy profile of the daemon, {name}:")
            for ln in lines_:
                print("    " + ln)

        result: dict[str, object] = {"bench": "ingest", "mode": args.mode}
        if socket_mode:
            result.update({
                "per_connection_events_per_s": round(figures["per_connection"]["events_per_s"]),
                "pipelined_events_per_s": round(figures["pipelined"]["events_per_s"]),
                "rss_1m_events_per_s": round(figures["rss_1m"]["events_per_s"]),
                "rss_mb_after_1m": mb(figures["rss_1m"]["rss"].get("VmRSS")),  # type: ignore
                "rss_anon_mb_after_1m": mb(
                    figures["rss_1m"]["rss"].get("RssAnon")),  # type: ignore
                "index_worker_rss_mb_after_1m": mb(
                    figures["rss_1m"]["worker_rss"].get("VmRSS")),  # type: ignore
                "rss_file_mb_after_1m": mb(
                    figures["rss_1m"]["rss"].get("RssFile")),  # type: ignore
                "rss_mb_per_connection": mb(
                    figures["per_connection"]["rss"].get("VmRSS")),  # type: ignore
                "rss_mb_pipelined": mb(figures["pipelined"]["rss"].get("VmRSS")),  # type: ignore
                "daemon_cpu_per_connection": round(figures["per_connection"]["daemon_cpu_s"]
                                                   / figures["per_connection"]["wall_s"], 2),
                "daemon_cpu_pipelined": round(figures["pipelined"]["daemon_cpu_s"]
                                              / figures["pipelined"]["wall_s"], 2),
                # Daemon CPU per stored event: what the rates would be per daemon core with
                # the machine to itself (the rates above depend on what else runs meanwhile).
                **{f"daemon_us_per_event_{name}": round(1e6 * f["daemon_cpu_s"] / f["stored"], 1)
                   if f["stored"] else None for name, f in figures.items()},
                **{f"floor_{name}_events_per_s": round(f["events_per_s"])
                   for name, f in floor.items()},
                **{f"floor_us_per_event_{name}": round(1e6 * f["cpu_s"] / max(1, f["stored"]), 1)
                   for name, f in floor.items()},
                "per_connection_vs_floor": round(figures["per_connection"]["vs_floor"], 2),
                "pipelined_vs_floor": round(figures["pipelined"]["vs_floor"], 2),
            })
        if http_mode:
            h = {name: http[name] for name in HTTP_RUNS}
            result.update({
                "http_rounds": args.rounds,
                "http_seconds": args.http_seconds,
                "http_clients": args.http_clients,
                "http_connections": args.http_connections,
                # medians over the rounds; us: server CPU per event (daemon or floor)
                **{f"{name}_us_per_event": round(f["us_per_event"], 1)  # type: ignore
                   for name, f in h.items()},
                **{f"{name}_events_per_s": round(f["events_per_s"])  # type: ignore
                   for name, f in h.items()},
                **{f"{name}_us_per_event_rounds": [round(s["us_per_event"], 1) for s in
                                                   http["samples"][name]]  # type: ignore
                   for name in HTTP_RUNS},
                "http_vs_socket_cpu": round(http["http_vs_socket"], 2),  # type: ignore
                "http_vs_floor_cpu": round(http["http_vs_floor"], 2),  # type: ignore
                "socket_vs_floor_cpu": round(http["socket_vs_floor"], 2),  # type: ignore
                "http_target_met": h["http"]["us_per_event"] <= 100,  # type: ignore
                "http_not_200": sum(int(f["not_200"]) for f in h.values()),  # type: ignore
                "http_gzip_runs_left_out": http["gzip_runs"],
                "http_refused": http["status"]["http_refused"],  # type: ignore[index]
                "http_spooled": http["spooled"],
                "http_other_load_cores": (None if http["other_load_cores"] is None else
                                          round(http["other_load_cores"], 2)),  # type: ignore
            })
        result.update({
            "cpus": cpus,
            "parallel_capacity_cores": round(capacity, 2),
            "other_load_cores": round(sum(f.get("other_cpu_s", 0) for f in figures.values())
                                      / max(1e-9, sum(f["wall_s"] for f in figures.values())),
                                      2) if figures else None,
            "clients": args.clients,
            "client_impl": args.client_impl,
            "concurrency": args.concurrency,
            "seconds": args.seconds,
            "events_stored": stored_acks,
            "busy": sum(int(f["busy"]) for f in figures.values()),
            "errors": sum(int(f["errors"]) + int(f["bad_acks"]) for f in figures.values()),
            "journal_last_seq": last_seq,
            "lost": lost,
        })
        C.emit_json(result)
        return 0
    finally:
        for f in floors.values():
            f.stop()
        C.finish(daemon, home, args.keep)


if __name__ == "__main__":
    sys.exit(main())
