"""What following 100 active transcripts costs the daemon at 100 hook events a second.

Issue 16's target: the transcript follower (mpmd.transcripts.follower) adds at most 5 % of
one core to the daemon's CPU at that load.

The load, the same in both configurations: ``--sessions`` sessions (100), each with its
transcript in a fake HOME's ``.claude/projects/<project>/<session>.jsonl`` (the follower's
default root: the daemon runs with that HOME), sending ``--rate`` hook events a second in
all (100, one a second each, round robin, on an open-loop schedule) to the daemon's socket
as the hook does (connect, frame, half-close, ack). Right before each event its session's
transcript grows by what Claude Code writes around that hook.

What it writes is replayed from the real CLI's transcripts in tests/fixtures/transcripts:
the session (``session.jsonl``: two Bash calls, one failing, an Agent call, a resumed second
prompt) and its subagent's (``subagent.jsonl``, written under
``<session>/subagents/agent-<id>.jsonl`` as the CLI does). The same session run by the real
CLI 2.1.328 with mpmd's hooks fired 23 hook events (5 of them the subagent's) for the
63 lines and 261,052 bytes of the two files: 2.7 lines and 11.4 kB a hook event. ``STEPS``
hands each of the 23 events the lines the CLI wrote before it (by the entries' times against
the hooks'), so every session replays that ratio and that rhythm. Each replay (a "cycle")
is a resumed run of the same session with fresh message ids, tool-use ids, prompt ids,
uuids and subagent id (same lengths: same bytes), entry times of when they are written,
and hook events that carry the matching ``tool_use_id``, ``prompt_id`` and ``agent_id``, so
the follower's backfill finds every key claimed, as with real hooks. The sessions start at
different steps of the cycle, so the big lines (attachments, a 38 KB api-request-shape, a
57 KB prompt snapshot) are spread over time.

Two configurations, each with a fresh daemon and MPMD_HOME, alternated ABBA over
``--rounds`` rounds (baseline, following, following, baseline, ...):

    baseline    MPMD_TRANSCRIPT_ROOTS names an empty folder: every transcript is outside
                the roots. The follower still reads the journal and learns of them, but
                reads none.
    following   the default roots: the follower reads every transcript as it grows.

Each run loads the daemon for ``--warmup`` seconds, then measures ``--seconds`` of load:
the daemon process's CPU time (user + system, all its threads, /proc/<pid>/stat) over the
window, divided by the window's wall time, in cores. The index worker's CPU (a process of
its own, which indexes the ModelUsage events too) and what other processes used are shown
beside it. After a following run, the benchmark waits until ``mpmd status --json`` counts a
ModelUsage for every distinct message id written (``transcripts.usage``) and checks the
journal: one ModelUsage per message id, one CostReport per cost-state line written. Each
event's time from connect to ack (what a hook waits for) is shown too: the follower's
passes share the daemon's interpreter with its event loop.

The figures are medians over rounds: the added CPU in % of one core (target <= 5) and as
a ratio to the baseline's CPU.

    .venv/bin/python benchmarks/transcripts.py [--rounds 3] [--seconds 25] [--quick]
        [--profile] [--source DIR]

``--source DIR`` runs the daemon from another copy of the mpmd package (both
configurations), for a before and an after on one machine.

``--profile`` adds one following run after the measured ones (py-spy costs the daemon CPU)
and prints the daemon's hot spots and the follower's own (its thread, and its events stored
on the loop). The last stdout line is one JSON object with all the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import _common as C
from ingest import Profiler, cpu_seconds, hot_spots

from mpm_hook import wire

ACK = wire.ACK_FRAME_BYTES
FIXTURES = C.ROOT / "tests" / "fixtures" / "transcripts"
PROJECTS = 10  # project folders the sessions are spread over

# What changes from one replay to the next: the session's uuid (kept per session), the other
# uuids (entries, prompts), message ids, tool-use ids, the subagent's id, and a cost-state's
# duration (its report's id is derived from its totals: a replay's must differ). An entry's
# time is the time it is written, as with the real CLI.
_TOKEN = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
                    rb"|msg_[0-9a-f]{24}|toolu_[0-9a-f]{24}|\ba[0-9a-f]{16}\b"
                    rb"|(?<=\"totalDuration\":)\d+"
                    rb"|(?<=\"timestamp\":\")\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")

# The session's 23 hook events, in the order the real CLI fires them for it, each with the
# lines of the main transcript ("main") or of the subagent's ("sub") written before it: a
# [start, end) range of the fixture's lines, placed by the entries' times against the hooks'
# in a run of the same session. An event about a tool call carries the id, name and input
# of the fixture line's first tool_use ("use"); a UserPromptSubmit, the promptId of its
# line ("prompt"); the subagent's own events ("sub"), its agent_id.
STEPS: list[dict] = [
    {"event": "SessionStart", "file": "main", "lines": (0, 0)},
    {"event": "UserPromptSubmit", "file": "main", "lines": (0, 8), "prompt": 2},
    {"event": "PreToolUse", "tool": "Bash", "file": "main", "lines": (8, 22), "use": 18},
    {"event": "PostToolUse", "tool": "Bash", "file": "main", "lines": (22, 22), "use": 18},
    {"event": "PreToolUse", "tool": "Bash", "file": "main", "lines": (22, 23), "use": 19},
    {"event": "PostToolUseFailure", "tool": "Bash", "file": "main", "lines": (23, 23),
     "use": 19},
    {"event": "PostToolBatch", "file": "main", "lines": (23, 25)},
    {"event": "PreToolUse", "tool": "Bash", "file": "main", "lines": (25, 30), "use": 27},
    {"event": "SubagentStart", "file": "sub", "lines": (0, 1), "sub": True},
    {"event": "PreToolUse", "tool": "Bash", "file": "sub", "lines": (1, 14), "use": 13,
     "sub": True},
    {"event": "PostToolUse", "tool": "Bash", "file": "sub", "lines": (14, 14), "use": 13,
     "sub": True},
    {"event": "PostToolBatch", "file": "sub", "lines": (14, 16), "sub": True},
    {"event": "SubagentStop", "file": "sub", "lines": (16, 20), "sub": True},
    {"event": "PostToolUse", "tool": "Bash", "file": "main", "lines": (30, 30), "use": 27},
    {"event": "PostToolBatch", "file": "main", "lines": (30, 31)},
    {"event": "MessageDisplay", "file": "main", "lines": (31, 33)},
    {"event": "Stop", "file": "main", "lines": (33, 34)},
    {"event": "SessionEnd", "file": "main", "lines": (34, 35)},  # the run's cost-state
    {"event": "SessionStart", "file": "main", "lines": (35, 35)},
    {"event": "UserPromptSubmit", "file": "main", "lines": (35, 38), "prompt": 37},
    {"event": "MessageDisplay", "file": "main", "lines": (38, 40)},
    {"event": "Stop", "file": "main", "lines": (40, 41)},
    {"event": "SessionEnd", "file": "main", "lines": (41, 43)},
]


_STAMP = re.compile(rb"\d{4}-\d\d-\d\dT.*Z")


def _iso_now() -> bytes:
    """Now as Claude Code writes an entry's time (UTC, milliseconds)."""
    now = time.time()
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
            + f".{int(now * 1000) % 1000:03d}Z").encode()


def _fresh(token: bytes) -> bytes:
    """A new id of the same shape (and length) as ``token``."""
    if token.isdigit():
        return token  # a duration: made unique per replay by the caller
    hexes = os.urandom(16).hex()
    if token.startswith(b"msg_") or token.startswith(b"toolu_"):
        prefix = token[: token.index(b"_") + 1]
        return prefix + hexes[:24].encode()
    if len(token) == 17:  # a subagent's id
        return b"a" + hexes[:16].encode()
    h = hexes.encode()
    return b"-".join([h[:8], h[8:12], h[12:16], h[16:20], h[20:32]])


class Template:
    """The fixture transcripts, each line cut into literal bytes and ids to replace."""

    def __init__(self) -> None:
        self.files = {name: [ln for ln in (FIXTURES / f"{fixture}.jsonl").read_bytes()
                             .split(b"\n") if ln.strip()]
                      for name, fixture in (("main", "session"), ("sub", "subagent"))}
        main, sub = self.files["main"], self.files["sub"]
        self.session_id = json.loads(main[0])["sessionId"].encode()
        self.agent_id = json.loads(sub[0])["agentId"].encode()
        self.parts = {name: [_TOKEN.split(ln) for ln in lines]
                      for name, lines in self.files.items()}
        self.tokens = {name: [_TOKEN.findall(ln) for ln in lines]
                       for name, lines in self.files.items()}
        self.hooks = [self._hook(step) for step in STEPS]
        # The steps must still fit the fixtures (a re-recorded fixture is mapped again).
        assert sum(hi - lo for s in STEPS if s["file"] == "main"
                   for lo, hi in [s["lines"]]) == len(main)
        assert sum(hi - lo for s in STEPS if s["file"] == "sub"
                   for lo, hi in [s["lines"]]) == len(sub)

    def _hook(self, step: dict) -> dict:
        """The fixture hook payload of the step's type, and the transcript ids it names."""
        payload = json.loads(C.fixture_payload(step["event"], step.get("tool")))
        lines = self.files[step["file"]]
        ids: dict[str, bytes] = {}
        if "use" in step:
            entry = json.loads(lines[step["use"]])
            use = next(b for b in entry["message"]["content"] if b["type"] == "tool_use")
            ids["tool_use_id"] = use["id"].encode()
            payload["tool_name"], payload["tool_input"] = use["name"], use["input"]
        if "prompt" in step:
            ids["prompt_id"] = json.loads(lines[step["prompt"]])["promptId"].encode()
        if step.get("sub") or "agent_id" in payload:
            ids["agent_id"] = self.agent_id
            payload.setdefault("agent_type", "general-purpose")
        return {"payload": payload, "ids": ids}

    def render(self, name: str, index: int, ids: dict[bytes, bytes], now: bytes) -> bytes:
        """A line of the fixture with this replay's ids; its times ``now``."""
        parts, tokens = self.parts[name][index], self.tokens[name][index]
        out = [parts[0]]
        for token, literal in zip(tokens, parts[1:], strict=True):
            out.append(ids.get(token, now))
            out.append(literal)
        return b"".join(out)


class Session:
    """One session replaying the template, a hook event at a time."""

    def __init__(self, template: Template, sid: str, path: Path, step: int,
                 written: dict) -> None:
        self.t = template
        self.sid = sid.encode()
        self.path = path
        self.step = step
        self.written = written  # message ids and cost states written, by all sessions
        self.ids: dict[bytes, bytes] = {}
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.sub_path: Path | None = None

    def _replay(self) -> None:
        """New ids for the next replay (the session's own stays)."""
        self.written["replays"] += 1
        serial = self.written["replays"]
        ids = {}
        for name in ("main", "sub"):
            for tokens in self.t.tokens[name]:
                for token in tokens:
                    if token not in ids and not _STAMP.fullmatch(token):
                        ids[token] = (str(serial * 100_000 + int(token)).encode()
                                      if token.isdigit() else _fresh(token))
        ids[self.t.session_id] = self.sid
        self.ids = ids
        folder = self.path.with_suffix("") / "subagents"
        self.sub_path = folder / f"agent-{ids[self.t.agent_id].decode()}.jsonl"

    def next_payload(self) -> bytes:
        """Append what Claude Code writes before this step's hook; the hook's payload."""
        if not self.ids or self.step == 0:
            self._replay()
        step = STEPS[self.step]
        hook = self.t.hooks[self.step]
        name = step["file"]
        lo, hi = step["lines"]
        if hi > lo:
            now = _iso_now()
            data = b"".join(self.t.render(name, i, self.ids, now) + b"\n"
                            for i in range(lo, hi))
            if name == "main":
                os.write(self.fd, data)
            else:
                assert self.sub_path is not None
                self.sub_path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.sub_path,
                             os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)
            for i in range(lo, hi):
                for token in self.t.tokens[name][i]:
                    if token.startswith(b"msg_"):
                        self.written["messages"].add(self.ids[token])
                if b'"type":"cost-state"' in self.t.files[name][i]:
                    self.written["cost_states"] += 1
            self.written["bytes"] += len(data)
            self.written["lines"] += hi - lo
        payload = dict(hook["payload"])
        payload["session_id"] = self.sid.decode()
        payload["transcript_path"] = str(self.path)
        for key, original in hook["ids"].items():
            payload[key] = self.ids[original].decode()
        if "agent_transcript_path" in payload:
            payload["agent_transcript_path"] = str(self.sub_path)
        self.step = (self.step + 1) % len(STEPS)
        return json.dumps(payload, separators=(",", ":")).encode()

    def close(self) -> None:
        os.close(self.fd)


def new_written() -> dict:
    return {"messages": set(), "replays": 0, "cost_states": 0, "bytes": 0, "lines": 0}


def sessions_in(template: Template, projects: Path, n: int, written: dict) -> list[Session]:
    out = []
    for i in range(n):
        folder = projects / f"-home-dev-project-{i % PROJECTS}"
        folder.mkdir(parents=True, exist_ok=True)
        sid = _fresh(template.session_id).decode()
        # Spread over the cycle: the big lines do not all come in the same second.
        out.append(Session(template, sid, folder / f"{sid}.jsonl", i % len(STEPS), written))
    return out


def load(sessions: list[Session], path: str, rate: float, seconds: float,
         tally: dict[str, int], acks_ns: list[int] | None = None) -> None:
    """``rate`` hook events a second for ``seconds``, round robin over the sessions, each
    on schedule (open loop: a late one is sent at once, the schedule is not moved). Each
    event's time from connect to its ack goes to ``acks_ns``: what a hook waits for."""
    start = time.monotonic()
    n = 0
    while True:
        due = start + n / rate
        if due >= start + seconds:
            return
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # the schedule: nothing to wait on
        session = sessions[tally["sent"] % len(sessions)]
        payload = session.next_payload()
        event_id = os.urandom(16)
        frame = wire.encode_event(event_id, time.time_ns(), payload, len(payload))
        tally["sent"] += 1
        n += 1
        sent_ns = time.perf_counter_ns()
        try:
            ack = C.send_like_the_hook(path, frame, ACK)
            acked, status, _seq = wire.decode_ack(ack)
        except (OSError, ValueError):
            tally["errors"] += 1
            continue
        if acks_ns is not None:
            acks_ns.append(time.perf_counter_ns() - sent_ns)
        if acked != event_id or status != wire.STORED:
            tally["not_stored"] += 1
        if time.monotonic() - due > 0.1:
            tally["late"] += 1  # sent or answered more than 100 ms after its time


def status(home: Path) -> dict:
    return json.loads(C.mpmd_cli(home, "status", "--json", timeout=120).stdout)


def py_spy() -> str | None:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return exe if os.access(exe, os.X_OK) else None


def follower_tid(pid: int) -> int | None:
    """The OS thread id of the "transcripts" thread of ``pid`` (the follower's process), as
    ``py-spy dump`` names it (Python does not name its threads for the OS); None without
    py-spy."""
    exe = py_spy()
    if exe is None:
        return None
    out = subprocess.run([exe, "dump", "--pid", str(pid)], capture_output=True, text=True,
                         timeout=60, check=False).stdout
    found = re.search(r'^Thread (\d+) \(\w+\): "transcripts"$', out, re.MULTILINE)
    return int(found.group(1)) if found else None


def thread_cpu_s(pid: int, tid: int | None) -> float:
    """CPU seconds (user + system) of one thread of ``pid``; 0 when unknown."""
    if tid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(config: str, args: argparse.Namespace, template: Template,
        profile: bool = False) -> dict:
    """One fresh daemon, the load, the CPU over the measured window."""
    home = C.short_tempdir("mpmt-")
    fake_home = home / "home"
    projects = fake_home / ".claude" / "projects"
    projects.mkdir(parents=True)
    env = {"HOME": str(fake_home), "CLAUDE_CONFIG_DIR": ""}
    if config == "baseline":
        (home / "no-transcripts").mkdir()
        env["MPMD_TRANSCRIPT_ROOTS"] = str(home / "no-transcripts")
    daemon = C.Daemon(home, log_name="daemon-bench.log", **C.source_env(args.source), **env)
    written = new_written()
    sessions = sessions_in(template, projects, args.sessions, written)
    out: dict = {"config": config}
    try:
        daemon.start(timeout=60)
        pid = daemon.pid
        info = status(home)
        worker = info["index_worker_pid"]
        # The follower runs in a process of the daemon's own (mpmd.transcripts.worker): its
        # CPU is counted with the daemon's, and its thread is found there.
        tpid = info["transcripts"]["worker_pid"]
        tid = follower_tid(tpid)
        path = str(home / "mpmd.sock")
        tally = {"sent": 0, "errors": 0, "not_stored": 0, "late": 0}
        load(sessions, path, args.rate, args.warmup, tally)
        batches0 = status(home)["counters"].get("journal_batches", 0)
        profiler = Profiler(pid, home / "profile.txt", args.profile_rate) if profile else None
        cpu0, wcpu0, tcpu0 = cpu_seconds(pid), cpu_seconds(worker), thread_cpu_s(tpid, tid)
        fcpu0 = cpu_seconds(tpid)
        busy0, own0, t0, sent0 = C.machine_busy_s(), C.own_tree_cpu_s(), time.monotonic(), \
            tally["sent"]
        acks_ns: list[int] = []
        load(sessions, path, args.rate, args.seconds, tally, acks_ns)
        wall = time.monotonic() - t0
        cpu1, wcpu1, tcpu1 = cpu_seconds(pid), cpu_seconds(worker), thread_cpu_s(tpid, tid)
        fcpu1 = cpu_seconds(tpid)
        busy1, own1 = C.machine_busy_s(), C.own_tree_cpu_s()
        batches1 = status(home)["counters"].get("journal_batches", 0)
        follower_s = sum(fcpu1) - sum(fcpu0)
        daemon_s = sum(cpu1) - sum(cpu0) + follower_s
        worker_s = sum(wcpu1) - sum(wcpu0)
        out.update({
            "wall_s": wall,
            "daemon_cores": daemon_s / wall,
            "daemon_sys_cores": (cpu1[1] - cpu0[1] + fcpu1[1] - fcpu0[1]) / wall,
            "follower_process_cores": follower_s / wall,
            # the follower's thread alone (its events' storing runs on the loop: not in it)
            "thread_cores": None if tid is None else (tcpu1 - tcpu0) / wall,
            # each one wakes the follower (at most one pass each)
            "journal_batches_per_s": (batches1 - batches0) / wall,
            "worker_cores": worker_s / wall,
            "client_cores": (own1 - own0) / wall,
            "other_cores": (None if busy0 is None or busy1 is None else
                            max(0.0, busy1 - busy0 - daemon_s - worker_s - (own1 - own0))
                            / wall),
            "events_per_s": (tally["sent"] - sent0) / wall,
            "ack_ms": C.summary_ms(acks_ns),
        })
        if profiler is not None:
            out["hot_spots"] = profiler.stop()
            raw = (home / "profile.txt").read_text() if (home / "profile.txt").exists() else ""
            # py-spy counts a thread blocked on a lock as busy: those stacks are waits
            busy = [ln for ln in raw.splitlines() if ln.rpartition(" ")[2].isdigit()
                    and not ln.rpartition(";")[2].startswith(("Condition.wait", "Event.wait"))]
            mine = [ln for ln in busy
                    if "transcripts/follower.py" in ln or "_store_from_thread" in ln]
            out["follower_hot_spots"] = hot_spots("\n".join(mine), top=25)
            total = sum(int(ln.rpartition(" ")[2]) for ln in busy)
            own = sum(int(ln.rpartition(" ")[2]) for ln in mine)
            out["follower_share_of_samples"] = own / total if total else None
        out.update(tally)
        out.update({"messages_written": len(written["messages"]),
                    "cost_states_written": written["cost_states"],
                    "transcript_bytes_written": written["bytes"],
                    "transcript_lines_written": written["lines"]})
        if config == "following":
            out.update(check(home, written, args.settle_s))
        else:
            st = status(home)["transcripts"]
            out["transcripts"] = {k: st.get(k) for k in ("followed", "usage", "outside_roots")}
        daemon.stop(timeout=120)
        return out
    finally:
        for s in sessions:
            s.close()
        C.finish(daemon, home, args.keep)


def check(home: Path, written: dict, timeout: float) -> dict:
    """Wait for a ModelUsage per message id written; then what the journal holds."""
    want = len(written["messages"])
    start = time.monotonic()
    while True:
        st = status(home)["transcripts"]
        if st.get("usage", 0) >= want or time.monotonic() - start > timeout:
            break
        time.sleep(0.5)  # the follower's own schedule: nothing to wait on
    settled = time.monotonic() - start
    usage_ids: list[str] = []
    cost_reports = 0
    for line in C.journal_lines(home):
        if b'"ModelUsage"' in line or b'"CostReport"' in line:
            event = json.loads(line)
            if event["event_type"] == "ModelUsage":
                usage_ids.append(event["payload"]["message_id"])
            elif event["event_type"] == "CostReport":
                cost_reports += 1
    backfilled = st.get("backfilled", 0)
    ok = (sorted(usage_ids) == sorted(m.decode() for m in written["messages"])
          and cost_reports == written["cost_states"] and not backfilled)
    return {"usage_status": st.get("usage"), "usage_journaled": len(usage_ids),
            "usage_distinct": len(set(usage_ids)), "cost_reports_journaled": cost_reports,
            "settle_s": settled, "correct": ok,
            "transcripts": {k: st.get(k) for k in ("followed", "usage", "cost_reports",
                                                   "lines", "bytes", "backfilled",
                                                   "malformed", "restarts", "problems")}}


def show(r: dict) -> None:
    other = "n/a" if r["other_cores"] is None else f"{r['other_cores']:.2f}"
    line = (f"  {r['config']:9} daemon {100 * r['daemon_cores']:5.2f} % of a core "
            f"(system {100 * r['daemon_sys_cores']:4.2f}), index worker "
            f"{100 * r['worker_cores']:4.2f} %, benchmark {100 * r['client_cores']:4.1f} %, "
            f"others {other} cores; {r['events_per_s']:.1f} events/s, "
            f"{r['errors']} errors, {r['not_stored']} not stored, {r['late']} late")
    print(line)
    ack = r["ack_ms"]
    print(f"            a hook's wait for its ack: median {ack['median']:.2f} ms, p99 "
          f"{ack['p99']:.2f} ms")
    thread = ("n/a (no py-spy)" if r["thread_cores"] is None
              else f"{100 * r['thread_cores']:.2f} % of a core")
    print(f"            the follower's thread {thread}; {r['journal_batches_per_s']:.0f} "
          "journal batches/s (each wakes the follower)")
    if r["config"] == "following":
        t = r["transcripts"]
        print(f"            followed {t['followed']}, read {t['lines']:,} lines "
              f"{t['bytes'] / 2**20:.1f} MiB; ModelUsage {r['usage_journaled']:,} journaled "
              f"({r['usage_distinct']:,} distinct) for {r['messages_written']:,} message ids "
              f"written, CostReport {r['cost_reports_journaled']} for "
              f"{r['cost_states_written']} cost-states, {r['settle_s']:.1f} s to settle: "
              f"{'correct' if r['correct'] else 'WRONG'}")
    else:
        t = r["transcripts"]
        print(f"            followed {t['followed']}, outside the roots {t['outside_roots']}, "
              f"ModelUsage {t['usage']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=100, help="transcripts followed (100)")
    ap.add_argument("--rate", type=float, default=100.0,
                    help="hook events a second, all sessions together (100)")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each configuration (3)")
    ap.add_argument("--seconds", type=float, default=25.0, help="measured load a run (25)")
    ap.add_argument("--warmup", type=float, default=3.0, help="load before measuring (3)")
    ap.add_argument("--settle-s", type=float, default=60.0,
                    help="the most to wait for the follower to catch up after a run")
    ap.add_argument("--quick", action="store_true", help="1 round of 8 s each")
    ap.add_argument("--profile", action="store_true",
                    help="one more following run under py-spy, its hot spots (not measured)")
    ap.add_argument("--profile-rate", type=int, default=100, help="py-spy samples a second")
    ap.add_argument("--source", help="run the daemon from this copy of the mpmd package "
                                     "(a folder holding mpmd/), e.g. the code after a change")
    ap.add_argument("--keep", action="store_true", help="keep the temporary MPMD_HOMEs")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.warmup = 1, 8.0, 2.0
    if args.rounds < 1 or args.sessions < 1 or args.rate <= 0:
        ap.error("--rounds, --sessions and --rate must be positive")

    template = Template()
    main_lines, sub_lines = len(template.files["main"]), len(template.files["sub"])
    size = sum(len(ln) + 1 for lines in template.files.values() for ln in lines)
    print(f"transcripts: {args.sessions} sessions, {args.rate:g} hook events/s in all; a "
          f"replay of the fixture session is {len(STEPS)} hook events, "
          f"{main_lines} + {sub_lines} transcript lines, {size:,} bytes: "
          f"{(main_lines + sub_lines) / len(STEPS):.2f} lines and "
          f"{size / len(STEPS) / 1000:.1f} KB a hook event")
    print(f"  {args.rounds} rounds, ABBA, of {args.warmup:g} s warm-up + {args.seconds:g} s "
          f"measured, a fresh daemon each run (load average {os.getloadavg()[0]:.2f})")
    runs: dict[str, list[dict]] = {"baseline": [], "following": []}
    for r in range(args.rounds):
        order = ("baseline", "following") if r % 2 == 0 else ("following", "baseline")
        for config in order:
            result = run(config, args, template)
            runs[config].append(result)
            show(result)
    profile = run("following", args, template, profile=True) if args.profile else None

    base = [r["daemon_cores"] for r in runs["baseline"]]
    follow = [r["daemon_cores"] for r in runs["following"]]
    b_med, f_med = statistics.median(base), statistics.median(follow)
    added = f_med - b_med
    ratio = f_med / b_med if b_med else float("nan")
    # Paired by round (the two runs next to each other): less exposed to the machine's drift.
    paired = statistics.median(f - b for f, b in zip(follow, base, strict=True))
    correct = all(r["correct"] for r in runs["following"])
    others = [r["other_cores"] for rs in runs.values() for r in rs
              if r["other_cores"] is not None]
    met = added <= 0.05
    print(f"\n  daemon CPU, medians: baseline {100 * b_med:.2f} % of a core, following "
          f"{100 * f_med:.2f} %")
    print(f"  added by following {args.sessions} transcripts: {100 * added:+.2f} % of a core "
          f"(paired by round: {100 * paired:+.2f} %), {ratio:.2f} x the baseline's CPU; "
          f"target <= 5 % of a core: {'met' if met else 'NOT met'}")
    print(f"  index worker, medians: baseline "
          f"{100 * statistics.median(r['worker_cores'] for r in runs['baseline']):.2f} %, "
          f"following "
          f"{100 * statistics.median(r['worker_cores'] for r in runs['following']):.2f} % "
          f"of a core; other processes {statistics.median(others) if others else 0:.2f} cores")
    threads = {c: [r["thread_cores"] for r in rs if r["thread_cores"] is not None]
               for c, rs in runs.items()}
    if all(threads.values()):
        print(f"  the follower's thread alone, medians: baseline "
              f"{100 * statistics.median(threads['baseline']):.2f} %, following "
              f"{100 * statistics.median(threads['following']):.2f} % of a core")
    acks = {c: (statistics.median(r["ack_ms"]["median"] for r in rs),
                statistics.median(r["ack_ms"]["p99"] for r in rs)) for c, rs in runs.items()}
    print(f"  a hook's wait for its ack, medians over runs: baseline {acks['baseline'][0]:.2f} "
          f"ms (p99 {acks['baseline'][1]:.2f}), following {acks['following'][0]:.2f} ms "
          f"(p99 {acks['following'][1]:.2f})")
    print(f"  correctness: {'every' if correct else 'NOT every'} following run journaled one "
          "ModelUsage per message id written and one CostReport per cost-state")
    if profile is not None:
        print(f"\n  py-spy, one more following run (not measured): daemon "
              f"{100 * profile['daemon_cores']:.1f} % of a core under the profiler; the "
              f"follower's stacks are {100 * (profile['follower_share_of_samples'] or 0):.1f} "
              "% of the daemon's samples")
        print("  the daemon:")
        for ln in profile["hot_spots"]:
            print("    " + ln)
        print("  the follower (its thread, and its events stored on the loop):")
        for ln in profile["follower_hot_spots"]:
            print("    " + ln)

    C.emit_json({
        "bench": "transcripts", "source": args.source or "checkout",
        "sessions": args.sessions, "rate": args.rate, "rounds": args.rounds,
        "seconds": args.seconds,
        "lines_per_event": round((main_lines + sub_lines) / len(STEPS), 2),
        "bytes_per_event": round(size / len(STEPS)),
        "baseline_daemon_cores": round(b_med, 4),
        "following_daemon_cores": round(f_med, 4),
        "baseline_daemon_cores_rounds": [round(x, 4) for x in base],
        "following_daemon_cores_rounds": [round(x, 4) for x in follow],
        "added_pct_of_core": round(100 * added, 2),
        "added_pct_of_core_paired": round(100 * paired, 2),
        "ratio_to_baseline": round(ratio, 2),
        "target": "added CPU <= 5 % of one core",
        "target_met": met,
        "correct": correct,
        "followed": [r["transcripts"]["followed"] for r in runs["following"]],
        **{f"thread_cores_{c}": round(statistics.median(t), 4) if t else None
           for c, t in threads.items()},
        **{f"ack_ms_{c}": round(a[0], 3) for c, a in acks.items()},
        **{f"ack_p99_ms_{c}": round(a[1], 3) for c, a in acks.items()},
        "journal_batches_per_s": round(statistics.median(
            r["journal_batches_per_s"] for rs in runs.values() for r in rs)),
        "worker_cores_baseline": round(statistics.median(
            r["worker_cores"] for r in runs["baseline"]), 4),
        "worker_cores_following": round(statistics.median(
            r["worker_cores"] for r in runs["following"]), 4),
        "other_load_cores": round(statistics.median(others), 2) if others else None,
        "events_per_s": round(statistics.median(
            r["events_per_s"] for rs in runs.values() for r in rs), 1),
        "errors": sum(r["errors"] + r["not_stored"] for rs in runs.values() for r in rs),
        "profile_follower_share": (None if profile is None else
                                   profile["follower_share_of_samples"]),
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
