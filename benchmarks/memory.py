"""The daemon's memory under hostile load and after bursts: RSS (VmRSS, anonymous and
file-backed parts, peak) at each step.

One real daemon a scenario (defaults otherwise), in a fresh MPMD_HOME:

    partial     ``--connections`` connections each send all but the last bytes of a frame
                announcing ``--frame-mib`` MiB (8 MiB, the wire's ceiling) and stop: RSS
                while they hold them, the partial-frame counters, RSS idle after they close
    burst       ``--events`` fixture events pipelined on one connection (acks read
                meanwhile, stamped as they are sent): RSS right after, and idle
    spool       ``--events`` fixture events in spool files, as hooks leave them when the
                daemon is down or busy, drained at start and by the spool loop: RSS once
                the spool is empty, and idle
    permission  ``--events`` PermissionRequest events in 400 sessions, each for a tool of
                its own name: RSS after, and idle (what the sessions table keeps)

"Idle" is ``--idle-s`` (8 s) after the load: the daemon hands freed memory back once a
burst is over (mpmd.ingest.hook_socket.release_free_memory, at its next idle sweep).
``--source DIR``
runs the daemon from another copy of the mpmd package, for a before and an after.

    .venv/bin/python benchmarks/memory.py [--scenario partial,burst,spool,permission]
        [--events 200000] [--connections 100] [--source DIR]

The last stdout line is one JSON object with all the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

import _common as C

from mpm_hook import wire

SCENARIOS = ("partial", "burst", "spool", "permission")
ACK = wire.ACK_FRAME_BYTES


def mb(rss: dict[str, int]) -> dict[str, float]:
    return {key: round(kib / 1024, 1) for key, kib in rss.items()}


def show(step: str, rss: dict[str, float]) -> None:
    print(f"  {step:34} RSS {rss.get('VmRSS')} MB (anon {rss.get('RssAnon')}, file "
          f"{rss.get('RssFile')}), peak {rss.get('VmHWM')} MB")


def counters(home: Path) -> dict[str, int]:
    return json.loads(C.mpmd_cli(home, "status", "--json", timeout=120).stdout).get("counters", {})


def pipeline(path: str, payloads, n: int) -> int:  # noqa: ANN001 - an index -> payload
    """``n`` events on one connection, stamped in chunks as they go; STORED acks."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    acks = bytearray()

    def read() -> None:
        while len(acks) < n * ACK:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return
            acks.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    for start in range(0, n, 500):
        ts = time.time_ns()
        sock.sendall(b"".join(wire.encode_event(os.urandom(16), ts, p, len(p))
                              for p in map(payloads, range(start, min(n, start + 500)))))
    reader.join()
    sock.close()
    return bytes(acks[24::ACK]).count(wire.STORED)


def run(scenario: str, args: argparse.Namespace) -> dict[str, object]:
    fixtures = C.fixture_payloads()
    home = C.short_tempdir("mpmm-")
    out: dict[str, object] = {}
    if scenario == "spool":
        folder = home / "spool"
        folder.mkdir(mode=0o700)
        for i in range(args.events):
            payload = fixtures[i % len(fixtures)]
            event_id, ts = os.urandom(16), time.time_ns()
            (folder / f"{ts:020d}-{event_id.hex()}.frame").write_bytes(
                wire.encode_event(event_id, ts, payload, len(payload)))
    # The partial frames are held for as long as the scenario needs, not idled out.
    env = {"MPMD_IDLE_TIMEOUT_S": "120"} if scenario == "partial" else {}
    daemon = C.Daemon(home, log_name="daemon-bench.log", **C.source_env(args.source), **env)
    try:
        daemon.start(timeout=600)
        pid = daemon.pid
        path = str(home / "mpmd.sock")
        out["start"] = mb(C.rss_kb(pid))
        show("at start", out["start"])  # type: ignore[arg-type]
        if scenario == "partial":
            size = args.frame_mib << 20
            socks = []
            for _ in range(args.connections):
                body = b"\x95\x01\xc4\x10" + os.urandom(16) + b"x" * (size - 100)
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(60)
                sock.connect(path)
                sock.sendall(size.to_bytes(4, "big") + body)
                socks.append(sock)
            out["held"] = mb(C.rss_kb(pid))
            out["counters"] = {k: v for k, v in counters(home).items()
                               if k.startswith(("partial", "busy"))}
            show(f"{args.connections} unfinished {args.frame_mib} MiB frames",
                 out["held"])  # type: ignore[arg-type]
            print(f"  {'':34} {out['counters']}")
            for sock in socks:
                sock.close()
        elif scenario == "spool":
            start = time.monotonic()
            while json.loads(C.mpmd_cli(home, "status", "--json", timeout=120).stdout).get(
                    "spool_pending") != 0:
                time.sleep(1)  # the spool loop drains on its own schedule
            out["seconds"] = round(time.monotonic() - start, 1)
            out["after"] = mb(C.rss_kb(pid))
            show(f"{args.events:,} spooled events drained", out["after"])  # type: ignore
        else:
            if scenario == "burst":
                payloads = lambda i: fixtures[i % len(fixtures)]  # noqa: E731
            else:
                payloads = lambda i: json.dumps({  # noqa: E731
                    "hook_event_name": "PermissionRequest", "session_id": f"s{i % 400}",
                    "tool_name": f"Tool{i}", "tool_input": {"command": "z" * 150}}).encode()
            start = time.monotonic()
            out["stored"] = pipeline(path, payloads, args.events)
            out["seconds"] = round(time.monotonic() - start, 1)
            out["after"] = mb(C.rss_kb(pid))
            show(f"{out['stored']:,} events stored", out["after"])  # type: ignore[arg-type]
        time.sleep(args.idle_s)  # what the daemon keeps once idle: nothing to wait on
        out["idle"] = mb(C.rss_kb(pid))
        show(f"idle {args.idle_s:g} s later", out["idle"])  # type: ignore[arg-type]
        out["memory_trims"] = counters(home).get("memory_trims", 0)
        daemon.stop(timeout=120)
        return out
    finally:
        C.finish(daemon, home, keep=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", default=",".join(SCENARIOS),
                    help=f"comma-separated, of {', '.join(SCENARIOS)} (default: all)")
    ap.add_argument("--events", type=int, default=200_000, help="burst, spool, permission")
    ap.add_argument("--connections", type=int, default=100, help="partial")
    ap.add_argument("--frame-mib", type=int, default=8, help="partial: announced frame size")
    ap.add_argument("--idle-s", type=float, default=8.0, help="wait before the idle reading")
    ap.add_argument("--source", help="run the daemon from this copy of the mpmd package "
                                     "(a folder holding mpmd/), e.g. the code before a change")
    args = ap.parse_args()
    results = {}
    for scenario in args.scenario.split(","):
        print(f"memory: {scenario} (daemon from {args.source or 'this checkout'})")
        results[scenario] = run(scenario, args)
    C.emit_json({"bench": "memory", "source": args.source or "checkout", **results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
