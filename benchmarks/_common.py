"""What only the benchmarks need: their teardown, process spawning for timing, RSS, CPU
accounting, percentiles, Claude Code's http hook requests and the final JSON line.

The harness itself (a real daemon process, the fixture payloads, the environment, the CLI,
the journal, short temporary folders) is the tests' one, tests/utils.py, re-exported here.
A benchmark runs as ``python benchmarks/<name>.py``, which puts benchmarks/ on sys.path but
not the repository: this module adds it, so that ``tests`` imports.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Re-exported: the benchmarks name them C.Daemon, C.env_for...
from tests.utils import (  # noqa: F401
    ROOT,
    Daemon,
    clean_env,
    env_for,
    fixture_payload,
    fixture_payloads,
    journal_lines,
    mpmd_cli,
    short_tempdir,
)


def source_env(source: str | None) -> dict[str, str]:
    """The environment that makes ``python -m mpmd`` (or a script importing mpmd) run
    another copy of the package, a folder holding ``mpmd/`` (to measure a before and an
    after on one machine); nothing for this checkout. PYTHONSAFEPATH: ``-m`` would
    otherwise put the working folder ahead of PYTHONPATH."""
    if not source:
        return {}
    return {"PYTHONPATH": os.path.abspath(source), "PYTHONSAFEPATH": "1"}


def finish(daemon: Daemon, home: Path, keep: bool) -> None:
    """A benchmark's teardown: the daemon killed, its temporary MPMD_HOME gone unless kept."""
    daemon.kill9()
    if keep:
        print(f"kept {home}", file=sys.stderr)
    else:
        remove_home(home)


def remove_home(home: Path) -> None:
    shutil.rmtree(home, ignore_errors=True)


# ---- measuring ----------------------------------------------------------------------------
def rss_kb(pid: int) -> dict[str, int]:
    """VmRSS and its parts (RssAnon, RssFile, RssShmem) in KiB; ``ps`` where no /proc."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        out = subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True,
                             text=True, check=False).stdout.strip()
        return {"VmRSS": int(out)} if out else {}
    result = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
            result[key] = int(value.split()[0])
    return result


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation between closest ranks."""
    data = sorted(values)
    if not data:
        return float("nan")
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def summary_ms(samples_ns: list[int]) -> dict[str, float]:
    ms = [s / 1e6 for s in samples_ns]
    return {
        "n": len(ms),
        "median": statistics.median(ms),
        "p90": percentile(ms, 90),
        "p99": percentile(ms, 99),
        "min": min(ms),
    }


_now = time.perf_counter_ns


def _spin(seconds: float, out) -> None:  # noqa: ANN001 - a multiprocessing queue
    start = time.monotonic()
    cpu = time.process_time()
    while time.monotonic() - start < seconds:
        pass
    out.put(time.process_time() - cpu)


def machine_busy_s() -> float | None:
    """CPU seconds all CPUs spent busy since boot (/proc/stat), None where unavailable."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_tree_cpu_s() -> float:
    """CPU seconds of this process and of its children already waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def mp_context() -> Any:
    """fork where there is one (workers start at once and share the parent's imports)."""
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def parallel_capacity(seconds: float = 0.5) -> tuple[int, float]:
    """(CPUs the OS shows, cores' worth of CPU time that many busy processes really get).

    Below the CPU count when other load shares the machine (or a VM's vCPUs deliver less
    than they show): clients and daemon then share less, which a throughput figure needs."""
    n = os.cpu_count() or 1
    ctx = mp_context()
    out = ctx.Queue()
    procs = [ctx.Process(target=_spin, args=(seconds, out)) for _ in range(n)]
    for p in procs:
        p.start()
    total = sum(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(30)
    return n, total / seconds


def spawn_wait(argv: list[str], stdin_data: bytes, env: dict[str, str]) -> tuple[int, int]:
    """Run ``argv`` (argv[0] an absolute path) with ``stdin_data`` on a pipe as its stdin and
    stdout/stderr on /dev/null; (wall time in ns of spawn + wait, exit status).

    The pipe is filled and closed before the clock starts (the data fits the pipe buffer),
    so every row pays exactly posix_spawn (vfork + exec) + the child's life + waitpid.
    """
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, stdin_data)
    finally:
        os.close(write_fd)
    actions = [
        (os.POSIX_SPAWN_DUP2, read_fd, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ]
    try:
        start = _now()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
        _, status = os.waitpid(pid, 0)
        elapsed = _now() - start
    finally:
        os.close(read_fd)
    return elapsed, os.waitstatus_to_exitcode(status)




def send_like_the_hook(path: str, frame: bytes, ack_bytes: int) -> bytes:
    """One event the way the hook sends it: connect, send, half-close, read the ack (what
    arrived of it: short if the daemon closed early), close. OSError if the socket fails."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        sock.sendall(frame)
        sock.shutdown(socket.SHUT_WR)
        ack = b""
        while len(ack) < ack_bytes:
            chunk = sock.recv(ack_bytes - len(ack))
            if not chunk:
                break
            ack += chunk
        return ack
    finally:
        sock.close()


def recv_exactly(sock: socket.socket, view: memoryview) -> None:
    """Fill ``view`` from ``sock`` (a batch of acks); ConnectionError if it closes first."""
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if not n:
            raise ConnectionError("the daemon closed the connection")
        got += n


# ---- Claude Code's http hooks ------------------------------------------------------------------
# The request head Claude Code 2.1.328 (axios in Node) sends for a hook of `type: "http"`,
# header for header, in its order (captured from the real CLI); only the token, the length
# and the port vary.
_AXIOS_HEAD = ("POST /hook HTTP/1.1\r\nAccept: application/json, text/plain, */*\r\n"
               "Content-Type: application/json\r\nAuthorization: Bearer {token}\r\n"
               "User-Agent: axios/1.15.2\r\nContent-Length: {length}\r\n"
               "Accept-Encoding: gzip, compress, deflate, br\r\nHost: 127.0.0.1:{port}\r\n"
               "Connection: keep-alive\r\n\r\n")


def http_hook_request(port: int, token: str, payload: bytes) -> bytes:
    """One hook's POST as Claude Code sends it to the daemon's endpoint."""
    return _AXIOS_HEAD.format(token=token, length=len(payload), port=port).encode() + payload


def http_endpoint(home: Path, timeout: float = 10) -> tuple[int, str]:
    """(port, token) of the http endpoint of the daemon in ``home`` (``http.port`` and
    ``http.token`` in its state folder, which MPMD_HOME is); the port file appears once it
    listens."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(FileNotFoundError, ValueError):
            port = int((home / "http.port").read_text())
            return port, (home / "http.token").read_text().strip()
        if time.monotonic() > deadline:
            raise RuntimeError(f"no http endpoint in {home} (http.port missing)")
        time.sleep(0.05)  # written by another process


class HttpResponses:
    """The answers on one keep-alive connection, parsed as they come (the endpoint always
    sends Content-Length): ``feed(data)`` returns the complete ones, (status, body)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self.buf
        buf += data
        out: list[tuple[int, bytes]] = []
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return out
            head = bytes(buf[:end]).lower()
            at = head.find(b"\r\ncontent-length:")
            length = 0 if at < 0 else int(head[at + 17:].split(b"\r\n", 1)[0])
            if len(buf) < end + 4 + length:
                return out
            status = int(head[9:12])
            if status == 100:  # 100 Continue: not the answer
                del buf[:end + 4]
                continue
            out.append((status, bytes(buf[end + 4:end + 4 + length])))
            del buf[:end + 4 + length]


class HttpHookClient:
    """One keep-alive connection to the endpoint, one request at a time, as Claude Code
    posts one hook and waits for its answer."""

    def __init__(self, port: int, timeout: float = 30) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as Node does
        self.responses = HttpResponses()

    def post(self, request: bytes) -> tuple[int, bytes]:
        """Send one request, return its answer; ConnectionError if the endpoint closed."""
        self.sock.sendall(request)
        while True:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the endpoint closed the connection")
            got = self.responses.feed(data)
            if got:
                return got[0]

    def close(self) -> None:
        self.sock.close()


def emit_json(obj: dict) -> None:
    """The one machine-readable line; always the last line on stdout."""
    sys.stdout.flush()
    print(json.dumps(obj, separators=(", ", ": ")), flush=True)
