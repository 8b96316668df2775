"""What notifications cost hook ingestion, and how soon a "needs you" reaches you.

The issue's promise: delivery never slows ingestion. The notifier (mpmd.notify) is a process
of the daemon's own (``python -m mpmd.notify.worker``) that follows the journal, folds every
event into the sessions table, and sends with apprise; the daemon only wakes it (a line on a
pipe, at most every 20 ms). This benchmark measures what that leaves on the hook's path.

Two configurations, each with a fresh daemon and MPMD_HOME, alternated ABBA over
``--rounds`` rounds (baseline, notifying, notifying, baseline, ...):

    baseline    no [[notify]] table in config.toml: no notifier process.
    notifying   one rule, on = needs-you, tool-failed, turn-failed, stopped, ended,
                max_per_hour = 3600, its target an ntfy server on loopback (tests/receivers.py,
                a real HTTP server speaking ntfy's publish API, in a process of its own so
                that its requests do not share the benchmark's interpreter with the load's
                clock). The notifier folds every event and really sends.

The load, the same in both: the realistic payloads of tests/fixtures/claude-code-hooks.jsonl
(38, all 31 event types), each of ``--sessions`` sessions (4) going through them in order
under its own session id, the sessions taking turns; ``--rate`` events a second in all (200:
a busy machine with several sessions) on an open-loop schedule, each sent as the hook sends
it (connect, frame, half-close, ack) for ``--warmup`` seconds, then ``--seconds`` measured.
A cycle of the fixtures holds a PermissionRequest, a failed tool call, a Stop, a
StopFailure and a SessionEnd: every condition of the rule, each cycle of each session. The
rule's rate allows a message every pass of the notifier: about 20 messages a second here, a
stress far past what a person's rules send (max_per_hour is 60 by default).

Figures per run, over the measured window: the daemon process's CPU (user + system, all
threads, /proc/<pid>/stat) in cores, the notifier process's, the daemon's other workers'
(index, transcripts), the ntfy server's; each event's time from connect to ack (what a hook
waits for), p50 and p99; events a second achieved; errors; messages the ntfy server received.

Then, in each notifying run, once the notifier has caught up: ``--samples`` (20) times, a
fixture's PreToolUse + PermissionRequest pair of a fresh session (a new wait each time),
and the time from sending the PermissionRequest to the ntfy server receiving its message
("how soon a needs-you reaches you"). apprise opens a new HTTP connection for each send.

    .venv/bin/python benchmarks/notify.py [--rounds 3] [--seconds 20] [--rate 200]
        [--quick] [--profile] [--source DIR]

``--source DIR`` runs the daemon from another copy of the mpmd package (both
configurations), for a before and an after on one machine.

``--profile`` adds one notifying run after the measured ones, with py-spy on the daemon and
on the notifier (not measured: py-spy costs them CPU), and prints their hot spots. The last
stdout line is one JSON object with all the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import _common as C
from ingest import Profiler, cpu_seconds

from mpm_hook import wire
from tests.utils import wait_until

ACK = wire.ACK_FRAME_BYTES
CONDITIONS = ["needs-you", "tool-failed", "turn-failed", "stopped", "ended"]
TOPIC = "mpmd-bench"
SETTLE_S = 120.0  # the most to wait for the notifier to catch up after the load
SAMPLE_TIMEOUT_S = 30.0  # the most to wait for one needs-you message


# ---- the receiver, in a process of its own ----------------------------------------------
def _serve_ntfy(conn: Any) -> None:  # a multiprocessing connection
    """The child: an NtfyServer, and answers to the parent's questions about what came."""
    from tests.receivers import NtfyServer

    with NtfyServer() as ntfy:
        conn.send(ntfy.url(TOPIC))
        while True:
            try:
                request = conn.recv()
            except EOFError:
                return
            if request[0] == "count":
                conn.send(len(ntfy.received))
            elif request[0] == "wait":
                conn.send(_arrival(ntfy, *request[1:]))
            else:
                conn.send(None)
                return


def _arrival(ntfy: Any, text: str, seen: int, timeout: float) -> float | None:
    """time.monotonic() (the same clock in every process) when a message holding ``text``
    came, after the first ``seen``; None if none came within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            records = ntfy.wait_for(seen + 1, max(0.0, deadline - time.monotonic()))
        except AssertionError:
            return None
        arrived = time.monotonic()
        if any(text in r.message for r in records[seen:]):
            return arrived
        seen = len(records)


class Receiver:
    """tests.receivers.NtfyServer run in a child process: the ntfy requests' handling (its
    threads, its parsing) must not compete with the load's sending and timing for this
    interpreter, or it would be charged to the notifier."""

    def __init__(self) -> None:
        ctx = C.mp_context()
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve_ntfy, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.url: str = self.conn.recv()

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    def count(self) -> int:
        self.conn.send(("count",))
        return int(self.conn.recv())

    def arrival(self, text: str, seen: int, timeout: float) -> float | None:
        self.conn.send(("wait", text, seen, timeout))
        result = self.conn.recv()
        return None if result is None else float(result)

    def stop(self) -> None:
        try:
            self.conn.send(("stop",))
            self.conn.recv()
        except (OSError, EOFError):
            pass
        self.proc.join(15)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


# ---- the load ---------------------------------------------------------------------------
def with_session(payload: bytes, session_id: str) -> bytes:
    obj = json.loads(payload)
    obj["session_id"] = session_id
    return json.dumps(obj, separators=(",", ":")).encode()


def session_payloads(n: int) -> list[list[bytes]]:
    """The fixture payloads, in order, for each of ``n`` sessions (built once)."""
    fixtures = C.fixture_payloads()
    ids = [str(uuid.uuid4()) for _ in range(n)]
    return [[with_session(p, sid) for p in fixtures] for sid in ids]


def send(path: str, payload: bytes) -> tuple[bool, int]:
    """One event as the hook sends it: (stored, ns from connect to ack). OSError or
    ValueError when the socket or the ack fails."""
    event_id = os.urandom(16)
    frame = wire.encode_event(event_id, time.time_ns(), payload, len(payload))
    start = time.perf_counter_ns()
    ack = C.send_like_the_hook(path, frame, ACK)
    elapsed = time.perf_counter_ns() - start
    acked, status, _seq = wire.decode_ack(ack)
    return acked == event_id and status == wire.STORED, elapsed


def load(sessions: list[list[bytes]], path: str, rate: float, seconds: float,
         tally: dict[str, int], acks_ns: list[int] | None = None) -> None:
    """``rate`` events a second for ``seconds``, the sessions taking turns, each going
    through its payloads in order; open loop: a late event is sent at once, the schedule
    is not moved. Each event's time from connect to ack goes to ``acks_ns``."""
    start = time.monotonic()
    n = 0
    while True:
        due = start + n / rate
        if due >= start + seconds:
            return
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # the schedule: nothing to wait on
        k = tally["sent"]
        session = sessions[k % len(sessions)]
        payload = session[(k // len(sessions)) % len(session)]
        tally["sent"] += 1
        n += 1
        try:
            stored, elapsed = send(path, payload)
        except (OSError, ValueError):
            tally["errors"] += 1
            continue
        if acks_ns is not None:
            acks_ns.append(elapsed)
        if not stored:
            tally["not_stored"] += 1
        if time.monotonic() - due > 0.1:
            tally["late"] += 1  # sent or answered more than 100 ms after its time


# ---- one run ----------------------------------------------------------------------------
def status(home: Path) -> dict:
    return json.loads(C.mpmd_cli(home, "status", "--json", timeout=120).stdout)


def write_rule(home: Path, url: str) -> None:
    text = (f'[[notify]]\nname = "bench"\non = {json.dumps(CONDITIONS)}\n'
            f"targets = {json.dumps([url])}\nmax_per_hour = 3600\n")
    path = home / "config.toml"
    path.write_text(text)
    path.chmod(0o600)  # it holds the targets' secrets


def caught_up(home: Path) -> dict:
    """The notifier's status once it has read the whole journal and its target's outbox is
    empty (its status comes at most once a second)."""
    got: dict = {}

    def done() -> bool:
        got.update(status(home)["notify"])
        return got.get("backlog", 1) == 0 and bool(got.get("targets")) and \
            all(t["queued"] == 0 for t in got["targets"].values())

    wait_until(done, "the notifier to catch up", timeout=SETTLE_S)
    return got


def needs_you_delays(home: Path, receiver: Receiver, n: int) -> tuple[list[float], int]:
    """``n`` new waits, one after the other: ms from sending each PermissionRequest to its
    message at the ntfy server; and how many never came."""
    path = str(home / "mpmd.sock")
    pre = C.fixture_payload("PreToolUse", "Bash")
    ask = C.fixture_payload("PermissionRequest", "Bash")
    delays: list[float] = []
    missed = 0
    for _ in range(n):
        sid = str(uuid.uuid4())
        seen = receiver.count()
        send(path, with_session(pre, sid))
        asked = with_session(ask, sid)
        start = time.monotonic()
        send(path, asked)
        # The message names the session by its first 8 characters: "shop (1a2b3c4d) needs you"
        arrived = receiver.arrival(f"({sid[:8]}) needs you", seen, SAMPLE_TIMEOUT_S)
        if arrived is None:
            missed += 1
        else:
            delays.append((arrived - start) * 1000)
    return delays, missed


def run(config: str, args: argparse.Namespace, sessions: list[list[bytes]],
        profile: bool = False) -> dict:
    """One fresh daemon, the load, the figures over the measured window."""
    home = C.short_tempdir("mpmn-")
    receiver = Receiver() if config == "notifying" else None
    if receiver is not None:
        write_rule(home, receiver.url)
    daemon = C.Daemon(home, log_name="daemon-bench.log")
    daemon.env.update(C.source_env(args.source))
    out: dict = {"config": config}
    try:
        daemon.start(timeout=60)
        pid = daemon.pid
        info = status(home)
        notifier = (info.get("notify") or {}).get("worker_pid")
        if (notifier is None) != (config == "baseline"):
            raise RuntimeError(f"{config}: notifier process {notifier}")
        workers = [p for p in (info["index_worker_pid"],
                               info["transcripts"]["worker_pid"]) if p]
        path = str(home / "mpmd.sock")
        tally = {"sent": 0, "errors": 0, "not_stored": 0, "late": 0}
        load(sessions, path, args.rate, args.warmup, tally)
        profilers = {} if not profile or notifier is None else {
            name: Profiler(p, home / f"profile-{name}.txt", args.profile_rate)
            for name, p in (("daemon", pid), ("notifier", notifier))}
        received0 = receiver.count() if receiver else 0

        def cpu() -> dict[str, float]:
            return {"daemon": sum(cpu_seconds(pid)),
                    "notifier": sum(cpu_seconds(notifier)) if notifier else 0.0,
                    "workers": sum(sum(cpu_seconds(w)) for w in workers),
                    "receiver": sum(cpu_seconds(receiver.pid)) if receiver else 0.0,
                    "own": C.own_tree_cpu_s(), "busy": C.machine_busy_s() or 0.0}

        before, t0, sent0 = cpu(), time.monotonic(), tally["sent"]
        acks_ns: list[int] = []
        load(sessions, path, args.rate, args.seconds, tally, acks_ns)
        after, wall = cpu(), time.monotonic() - t0
        used = {k: (after[k] - before[k]) / wall for k in before}
        out.update({
            "wall_s": wall,
            "daemon_cores": used["daemon"],
            "notifier_cores": used["notifier"],
            "workers_cores": used["workers"],
            "receiver_cores": used["receiver"],
            "client_cores": used["own"],
            "other_cores": (None if not before["busy"] else max(0.0, used["busy"] - sum(
                used[k] for k in ("daemon", "notifier", "workers", "receiver", "own")))),
            "events_per_s": (tally["sent"] - sent0) / wall,
            "ack_ms": C.summary_ms(acks_ns),
            "received_in_window": (receiver.count() - received0) if receiver else 0,
        })
        out.update(tally)
        for name, profiler in profilers.items():
            out[f"hot_spots_{name}"] = profiler.stop()
        if receiver is not None:
            settle0 = time.monotonic()
            st = caught_up(home)
            out["settle_s"] = time.monotonic() - settle0
            target = next(iter(st["targets"].values()))
            out["target"] = {k: target[k] for k in ("sent", "failures", "dropped")}
            out["counts"] = st.get("counts", {})
            out["received"] = receiver.count()
            delays, missed = needs_you_delays(home, receiver, args.samples)
            out["needs_you_ms"] = delays
            out["needs_you_missed"] = missed
        daemon.stop(timeout=120)
        return out
    finally:
        if receiver is not None:
            receiver.stop()
        C.finish(daemon, home, args.keep)


def show(r: dict) -> None:
    other = "n/a" if r["other_cores"] is None else f"{r['other_cores']:.2f}"
    ack = r["ack_ms"]
    print(f"  {r['config']:9} daemon {100 * r['daemon_cores']:5.2f} % of a core, notifier "
          f"{100 * r['notifier_cores']:5.2f} %, index+transcripts workers "
          f"{100 * r['workers_cores']:5.2f} %, ntfy server {100 * r['receiver_cores']:4.1f} "
          f"%, benchmark {100 * r['client_cores']:4.1f} %, others {other} cores")
    print(f"            {r['events_per_s']:.1f} events/s, {r['errors']} errors, "
          f"{r['not_stored']} not stored, {r['late']} late; a hook's wait for its ack: "
          f"p50 {ack['median']:.2f} ms, p90 {ack['p90']:.2f}, p99 {ack['p99']:.2f}")
    if r["config"] == "notifying":
        t = r["target"]
        print(f"            ntfy received {r['received_in_window']} messages in the window "
              f"({r['received_in_window'] / r['wall_s']:.1f}/s), {r['received']} in all; "
              f"target sent {t['sent']}, failures {t['failures']}, dropped {t['dropped']}; "
              f"caught up {r['settle_s']:.1f} s after the load; not sent: "
              f"{r['counts'] or 'none'}")
        d = r["needs_you_ms"]
        if d:
            print(f"            needs you -> ntfy: median {statistics.median(d):.1f} ms, "
                  f"p90 {C.percentile(d, 90):.1f}, min {min(d):.1f}, max {max(d):.1f} "
                  f"({len(d)} samples, {r['needs_you_missed']} missed)")
        else:
            print(f"            needs you -> ntfy: none arrived ({r['needs_you_missed']} "
                  "missed)")


def med(runs: list[dict], key: str, sub: str | None = None) -> float:
    return statistics.median(r[key][sub] if sub else r[key] for r in runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="runs of each configuration (3)")
    ap.add_argument("--rate", type=float, default=200.0,
                    help="hook events a second, all sessions together (200)")
    ap.add_argument("--sessions", type=int, default=4, help="sessions taking turns (4)")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured load a run (20)")
    ap.add_argument("--warmup", type=float, default=5.0, help="load before measuring (5)")
    ap.add_argument("--samples", type=int, default=20,
                    help="needs-you deliveries timed in each notifying run (20)")
    ap.add_argument("--quick", action="store_true", help="1 round of 5 s, 5 samples")
    ap.add_argument("--profile", action="store_true",
                    help="one more notifying run with py-spy on the daemon and the notifier "
                         "(not measured)")
    ap.add_argument("--profile-rate", type=int, default=100, help="py-spy samples a second")
    ap.add_argument("--source", help="run the daemon from this copy of the mpmd package "
                                     "(a folder holding mpmd/), e.g. the code after a change")
    ap.add_argument("--keep", action="store_true", help="keep the temporary MPMD_HOMEs")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.warmup, args.samples = 1, 5.0, 2.0, 5
    if args.rounds < 1 or args.sessions < 1 or args.rate <= 0 or args.samples < 1:
        ap.error("--rounds, --sessions, --rate and --samples must be positive")

    sessions = session_payloads(args.sessions)
    print(f"notify: {args.rate:g} hook events/s, {args.sessions} sessions going through the "
          f"{len(sessions[0])} fixture payloads; {args.rounds} rounds, ABBA, of "
          f"{args.warmup:g} s warm-up + {args.seconds:g} s measured, a fresh daemon each run; "
          f"{args.samples} needs-you deliveries timed a notifying run "
          f"(load average {os.getloadavg()[0]:.2f})")
    runs: dict[str, list[dict]] = {"baseline": [], "notifying": []}
    for r in range(args.rounds):
        order = ("baseline", "notifying") if r % 2 == 0 else ("notifying", "baseline")
        for config in order:
            result = run(config, args, sessions)
            runs[config].append(result)
            show(result)
    profile = run("notifying", args, sessions, profile=True) if args.profile else None

    base, note = runs["baseline"], runs["notifying"]
    cpu = {c: med(rs, "daemon_cores") for c, rs in runs.items()}
    added = cpu["notifying"] - cpu["baseline"]
    paired = statistics.median(n["daemon_cores"] - b["daemon_cores"]
                               for n, b in zip(note, base, strict=True))
    notifier = med(note, "notifier_cores")
    p50 = {c: med(rs, "ack_ms", "median") for c, rs in runs.items()}
    p99 = {c: med(rs, "ack_ms", "p99") for c, rs in runs.items()}
    delays = [d for r in note for d in r["needs_you_ms"]]
    missed = sum(r["needs_you_missed"] for r in note)
    others = [r["other_cores"] for rs in runs.values() for r in rs
              if r["other_cores"] is not None]
    errors = sum(r["errors"] + r["not_stored"] for rs in runs.values() for r in rs)
    print("\n  medians over runs: baseline / notifying")
    print(f"  daemon CPU: {100 * cpu['baseline']:.2f} / {100 * cpu['notifying']:.2f} % of a "
          f"core: the notifier adds {100 * added:+.2f} % of a core to the daemon (paired by "
          f"round {100 * paired:+.2f} %); the notifier process itself "
          f"{100 * notifier:.2f} % of a core")
    print(f"  a hook's wait for its ack: p50 {p50['baseline']:.2f} / {p50['notifying']:.2f} "
          f"ms ({p50['notifying'] / p50['baseline']:.2f} x), p99 {p99['baseline']:.2f} / "
          f"{p99['notifying']:.2f} ms ({p99['notifying'] / p99['baseline']:.2f} x)")
    print(f"  events/s {med(base, 'events_per_s'):.1f} / {med(note, 'events_per_s'):.1f}; "
          f"{errors} errors in all; ntfy received {med(note, 'received_in_window'):.0f} "
          f"messages in a window (median); other processes "
          f"{statistics.median(others) if others else 0:.2f} cores")
    if delays:
        print(f"  needs you -> ntfy, all {len(delays)} samples: median "
              f"{statistics.median(delays):.1f} ms, p90 {C.percentile(delays, 90):.1f} ms "
              f"({missed} missed)")
    if profile is not None:
        print(f"\n  py-spy, one more notifying run (not measured): daemon "
              f"{100 * profile['daemon_cores']:.1f} %, notifier "
              f"{100 * profile['notifier_cores']:.1f} % of a core under the profiler")
        for name in ("daemon", "notifier"):
            print(f"  the {name}:")
            for ln in profile[f"hot_spots_{name}"]:
                print("    " + ln)

    C.emit_json({
        "bench": "notify", "source": args.source or "checkout", "rate": args.rate,
        "sessions": args.sessions, "rounds": args.rounds, "seconds": args.seconds,
        "baseline_daemon_cores": round(cpu["baseline"], 4),
        "notifying_daemon_cores": round(cpu["notifying"], 4),
        "baseline_daemon_cores_rounds": [round(r["daemon_cores"], 4) for r in base],
        "notifying_daemon_cores_rounds": [round(r["daemon_cores"], 4) for r in note],
        "added_pct_of_core": round(100 * added, 2),
        "added_pct_of_core_paired": round(100 * paired, 2),
        "notifier_cores": round(notifier, 4),
        "notifier_cores_rounds": [round(r["notifier_cores"], 4) for r in note],
        **{f"ack_p50_ms_{c}": round(v, 3) for c, v in p50.items()},
        **{f"ack_p99_ms_{c}": round(v, 3) for c, v in p99.items()},
        "ack_p50_ratio": round(p50["notifying"] / p50["baseline"], 3),
        "ack_p99_ratio": round(p99["notifying"] / p99["baseline"], 3),
        **{f"ack_p99_ms_rounds_{c}": [round(r["ack_ms"]["p99"], 3) for r in rs]
           for c, rs in runs.items()},
        "events_per_s": round(med([r for rs in runs.values() for r in rs],
                                  "events_per_s"), 1),
        "errors": errors,
        "late": sum(r["late"] for rs in runs.values() for r in rs),
        "received_per_run": [r["received_in_window"] for r in note],
        "dropped": sum(r["target"]["dropped"] for r in note),
        "needs_you_ms_median": round(statistics.median(delays), 1) if delays else None,
        "needs_you_ms_p90": round(C.percentile(delays, 90), 1) if delays else None,
        "needs_you_samples": len(delays),
        "needs_you_missed": missed,
        "other_load_cores": round(statistics.median(others), 2) if others else None,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
