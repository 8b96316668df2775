"""A hook's ack latency while another client pipelines a burst, against the same without.

One real daemon (defaults: 64 MiB ring, journal on) in a fresh MPMD_HOME. Two
configurations, alternated ``--rounds`` times in ABBA order (quiet, burst, burst, quiet,
...) so that drifts of a shared machine hit both:

    quiet   only the probe: one hook-like event every ``--interval-ms`` (connect, send the
            frame, half-close, read the 34-byte ack, close: what mpm_hook does), timed from
            just before connect to the ack read, on CLOCK_MONOTONIC
    burst   the same probe while another process pipelines fixture events on one connection
            as fast as the daemon takes them: one thread sends batches of ``--batch``
            frames back to back, another reads the acks

The probe sends the PreToolUse Bash fixture with a fresh id each time; the burst cycles all
38 fixture payloads. Per configuration: the probe's median, p99 and max ack latency, probes
without a STORED ack (errors), and the burst's events/s (what fairness costs the burster).
``--source DIR`` runs the daemon from another copy of the ``mpmd`` package (PYTHONPATH), to
measure a before and an after on the same machine.

    .venv/bin/python benchmarks/fairness.py [--seconds 5] [--rounds 4] [--source DIR]

The last stdout line is one JSON object with all the figures. Timing is measured, never
asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import threading
import time
from typing import NamedTuple

import _common as C
import ingest

from mpm_hook import wire

ACK = wire.ACK_FRAME_BYTES


def _burst_main(path: str, payloads: list[bytes], args: argparse.Namespace, go, stop,
                results) -> None:  # noqa: ANN001 - multiprocessing primitives
    """Pipeline until ``stop`` is set: one thread sends batches back to back, another reads
    the acks, so the daemon always has frames waiting on this connection (unlike
    benchmarks/ingest.py's client, which waits for a window's acks). The tally of ack
    statuses and the wall time go to ``results``."""
    batches = [ingest.Batch(payloads, args.batch, start=i * args.batch) for i in range(4)]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    tally = ingest._tally()
    sent = 0

    def read_acks() -> None:
        pending = bytearray()
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return
            pending += chunk
            whole = len(pending) - len(pending) % ACK
            statuses = pending[24:whole:ACK]
            tally["stored"] += statuses.count(wire.STORED)
            tally["duplicate"] += statuses.count(wire.DUPLICATE)
            tally["busy"] += statuses.count(wire.BUSY)
            tally["rejected"] += statuses.count(wire.REJECTED)
            del pending[:whole]

    reader = threading.Thread(target=read_acks)
    reader.start()
    go.wait()
    start = time.monotonic()
    try:
        while not stop.is_set():
            batch = batches[sent // args.batch % len(batches)]
            batch.fresh()
            sock.sendall(batch.blob)
            sent += args.batch
        sock.shutdown(socket.SHUT_WR)  # the daemon acks what it has, then closes
    except OSError:
        tally["errors"] += 1
    reader.join()
    sock.close()
    results.put({**tally, "sent": sent, "wall_s": time.monotonic() - start})


def probe(path: str, payload: bytes) -> tuple[int, bool]:
    """One hook-like event: (ns from connect to ack, stored)."""
    event_id = os.urandom(16)
    frame = wire.encode_event(event_id, time.time_ns(), payload, len(payload))
    start = time.monotonic_ns()
    try:
        ack = C.send_like_the_hook(path, frame, ACK)
    except OSError:
        return time.monotonic_ns() - start, False
    elapsed = time.monotonic_ns() - start
    try:
        acked_id, status, _seq = wire.decode_ack(ack)
    except ValueError:
        return elapsed, False
    return elapsed, acked_id == event_id and status == wire.STORED


class Round(NamedTuple):
    samples: list[int]  # ns from connect to ack, one a probe
    errors: int  # probes without a STORED ack
    burst: dict[str, float]  # the burst's tally and wall time; empty for a quiet round


def run_round(path: str, payloads: list[bytes], probe_payload: bytes,
              args: argparse.Namespace, burst: bool) -> Round:
    ctx = C.mp_context()
    go, stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = None
    if burst:
        proc = ctx.Process(target=_burst_main, args=(path, payloads, args, go, stop, results),
                           daemon=True)
        proc.start()
        go.set()
        time.sleep(0.3)  # let the burst reach its pace before the first probe
    samples: list[int] = []
    errors = 0
    interval_ns = int(args.interval_ms * 1e6)
    deadline = time.monotonic_ns() + int(args.seconds * 1e9)
    due = time.monotonic_ns()
    while due < deadline:
        elapsed, stored = probe(path, probe_payload)
        samples.append(elapsed)
        errors += not stored
        due += interval_ns
        pause = due - time.monotonic_ns()
        if pause > 0:
            time.sleep(pause / 1e9)  # an open-loop schedule: a probe every interval
    tally: dict[str, float] = {}
    if proc is not None:
        stop.set()
        tally = results.get(timeout=120)
        proc.join(30)
    return Round(samples, errors, tally)


def summary(samples_ns: list[int]) -> dict[str, float]:
    ms = [s / 1e6 for s in samples_ns]
    return {"n": len(ms), "median": statistics.median(ms), "p99": C.percentile(ms, 99),
            "max": max(ms)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5, help="per round (default 5)")
    ap.add_argument("--rounds", type=int, default=4,
                    help="rounds of each configuration, ABBA order (default 4)")
    ap.add_argument("--interval-ms", type=float, default=10, help="probe interval (10 ms)")
    ap.add_argument("--batch", type=int, default=256, help="burst frames per send")
    ap.add_argument("--source", help="run the daemon from this copy of the mpmd package "
                                     "(a folder holding mpmd/), e.g. the code before a change")
    ap.add_argument("--keep", action="store_true", help="keep the temporary MPMD_HOME")
    args = ap.parse_args()

    payloads = C.fixture_payloads()
    probe_payload = C.fixture_payload("PreToolUse", "Bash")
    home = C.short_tempdir("mpmf-")
    daemon = C.Daemon(home, log_name="daemon-bench.log", **C.source_env(args.source))
    try:
        daemon.start(timeout=60)
        path = str(home / "mpmd.sock")
        print("fairness: a hook's ack latency (connect -> ack) with and without another "
              "client pipelining")
        print(f"  daemon pid {daemon.pid} from {args.source or 'this checkout'}; probe "
              f"every {args.interval_ms:g} ms, {args.seconds:g} s a round; burst: one "
              f"connection, batches of {args.batch} sent back to back, acks read meanwhile")
        order = []
        for r in range(args.rounds):
            order += ["quiet", "burst"] if r % 2 == 0 else ["burst", "quiet"]
        collected: dict[str, list[int]] = {"quiet": [], "burst": []}
        errors = {"quiet": 0, "burst": 0}
        burst_stored, burst_wall, burst_busy = 0, 0.0, 0
        per_round = []
        worker = json.loads(C.mpmd_cli(home, "status", "--json",
                                       timeout=120).stdout)["index_worker_pid"]
        busy0, own0 = C.machine_busy_s(), C.own_tree_cpu_s()
        ours0 = sum(ingest.cpu_seconds(daemon.pid)) + sum(ingest.cpu_seconds(worker))
        wall0 = time.monotonic()
        for name in order:
            result = run_round(path, payloads, probe_payload, args, name == "burst")
            collected[name] += result.samples
            errors[name] += result.errors
            line = summary(result.samples)
            extra = ""
            if result.burst:
                burst_stored += int(result.burst["stored"])
                burst_busy += int(result.burst["busy"])
                burst_wall += result.burst["wall_s"]
                rate = result.burst["stored"] / max(1e-9, result.burst["wall_s"])
                extra = f"; burst {rate:,.0f} events/s"
                line["burst_events_per_s"] = rate
            per_round.append({"config": name, **line})
            print(f"  {name:5}  median {line['median']:7.2f} ms  p99 {line['p99']:7.2f} ms  "
                  f"max {line['max']:7.2f} ms  ({line['n']} probes){extra}")
        wall = time.monotonic() - wall0
        busy1, own1 = C.machine_busy_s(), C.own_tree_cpu_s()
        ours = (sum(ingest.cpu_seconds(daemon.pid)) + sum(ingest.cpu_seconds(worker)) - ours0
                + own1 - own0)
        other = (max(0.0, busy1 - busy0 - ours) / wall
                 if busy0 is not None and busy1 is not None else None)
        figures = {name: summary(s) for name, s in collected.items()}
        burst_rate = burst_stored / max(1e-9, burst_wall)
        print("  pooled:")
        for name, f in figures.items():
            print(f"  {name:5}  median {f['median']:7.2f} ms  p99 {f['p99']:7.2f} ms  "
                  f"max {f['max']:7.2f} ms  ({f['n']} probes, {errors[name]} without a "
                  "STORED ack)")
        print(f"  burst: {burst_rate:,.0f} events/s stored ({burst_stored:,} in "
              f"{burst_wall:.1f} s, busy {burst_busy:,})")
        if other is not None:
            print(f"  other processes used {other:.2f} cores meanwhile")
        st = json.loads(C.mpmd_cli(home, "status", "--json", timeout=120).stdout)
        rss = C.rss_kb(daemon.pid)
        counters = st.get("counters", {})
        print(f"  daemon RSS {rss.get('VmRSS', 0) / 1024:.1f} MB; counters "
              + ", ".join(f"{k} {v}" for k, v in sorted(counters.items())
                          if k.startswith(("busy", "turns", "partial", "paused"))))
        code = daemon.stop(timeout=120)
        C.emit_json({
            "bench": "fairness",
            "source": args.source or "checkout",
            **{f"{name}_{k}_ms": round(v, 3) for name, f in figures.items()
               for k, v in f.items() if k != "n"},
            "quiet_probes": figures["quiet"]["n"],
            "burst_probes": figures["burst"]["n"],
            "probe_errors": errors["quiet"] + errors["burst"],
            "burst_events_per_s": round(burst_rate),
            "burst_busy": burst_busy,
            "other_load_cores": None if other is None else round(other, 2),
            "turns_yielded": counters.get("turns_yielded", 0),
            "p99_burst_over_quiet": round(figures["burst"]["p99"]
                                          / max(1e-9, figures["quiet"]["p99"]), 2),
            "rounds": per_round,
            "daemon_exit": code,
        })
        return 0
    finally:
        C.finish(daemon, home, args.keep)


if __name__ == "__main__":
    sys.exit(main())
