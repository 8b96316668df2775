"""What hooks cost the real Claude Code: whole headless sessions of K tool calls, timed.

This is the number users feel: what a hook configuration adds to every tool call of a real
session. Each session is one `claude -p` process of the pinned CLI (``make claude-code``)
against the scripted Messages API on loopback (tests/claude/api.py): K tool calls, one a
turn, of mixed tools (Write, Read, Edit, Bash, Grep, Glob, ...) in the sandbox's project
folder, allowed with ``--allowedTools`` so nothing prompts, then a text answer. Six
configurations, each in a Sandbox of its own (own HOME, settings.json and project folder):

    none   settings.json without hooks
    true   a do-nothing command hook (`true`) on every event `mpmd install-hooks` registers
           (Claude Code's own floor for command hooks)
    http   a do-nothing `type: "http"` hook on the same events, to a loopback server that
           answers 200 with an empty body (the floor for http hooks; SessionStart and Setup
           keep their http entry, which Claude Code 2.1.328 never runs)
    python the interpreter install-hooks names, started bare (`<python> -I -S -c pass`) on
           the same events: the floor of any hook written in Python (info)
    mpmd   the settings `mpmd install-hooks --transport command` writes, with a real
           daemon running
    mpmd-http  mpmd over Claude Code's http hooks, with a real daemon of its own: the
           settings `mpmd install-hooks --transport http` writes once the daemon runs (http
           entries to its endpoint with its token on the same events, and mpmd's command
           hook for SessionStart and Setup, where Claude Code runs command hooks only)

The event list of the floors is read from the settings file install-hooks produced, only
the command replaced. Configurations alternate round by round (the first one rotates every
round), after a warm-up round; figures are medians over rounds: wall time of the whole
session process (start to exit, SessionEnd hooks included), overhead per tool call over
`none`, and mpmd's overhead as a ratio of each floor's. Whole sessions vary by a few hundred
ms, more than the floors add, so the run also reads Claude Code's stream as it comes and
times each hook from its `hook_started` line to its `hook_response` line: how long Claude
Code waited for one hook, a steadier figure to compare; and what a tool call waited for its
own hooks (PreToolUse, PostToolUse and PostToolBatch of a session, added up, over K).
Target (issue 14): mpmd-http's overhead per tool call <= 1.2 x the http floor's.

The run checks itself: every session ran its K tool calls without an error, every hook run
Claude Code reported ended in success, the http receiver got every POST, and each mpmd
daemon's journal holds every hook run Claude Code reported (plus one SessionEnd a session,
which Claude Code runs after the stream ends and does not report).

    .venv/bin/python benchmarks/claude_session.py [--calls 8] [--rounds 11] [--warmup 1]

Without the CLI it says so (naming `make claude-code`) and exits 0, or 1 under CI=true. The
last stdout line is one JSON object with all the figures. Timing is measured, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common as C

sys.path.insert(0, str(C.ROOT))

from tests.claude.api import Script, ScriptedAPI, Turn, call, say  # noqa: E402
from tests.claude.client import (  # noqa: E402
    INSTALL_COMMAND,
    PINNED_VERSION,
    Headless,
    Sandbox,
    claude_version,
    find_claude,
)
from tests.utils import Daemon, journal_events  # noqa: E402

CONFIGS = ("none", "true", "http", "python", "mpmd", "mpmd-http")
MPMDS = ("mpmd", "mpmd-http")  # the configurations with a daemon (and a journal to check)
# Claude Code 2.1.328 runs command hooks only for these: mpmd-http keeps its command hook.
COMMAND_ONLY = ("SessionStart", "Setup")
TOOL_CALL_HOOKS = ("PreToolUse", "PostToolUse", "PostToolBatch")
ALLOWED = ["Bash", "Read", "Write", "Edit", "Grep", "Glob"]
PROMPT = "Tidy up the notes file and look around the project."
NOTE = "notes.txt"
SESSION_TIMEOUT_S = 120


# ---- the loopback http hook receiver: 200, empty body ----------------------------------------
class _NoOp(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Claude Code's client expects

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        with self.server.lock:  # type: ignore[attr-defined]
            self.server.posts += 1  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def start_noop_server() -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NoOp)
    server.daemon_threads = True
    server.lock = threading.Lock()  # type: ignore[attr-defined]
    server.posts = 0  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, name="http-hook", daemon=True).start()
    return server


# ---- the session ------------------------------------------------------------------------------
def seed_project(project: Path) -> None:
    """The files the read-only calls look at."""
    (project / "src").mkdir(parents=True, exist_ok=True)
    (project / "src" / "app.py").write_text(
        "from src.util import greet\n\n\ndef main():\n    # TODO: read the name from argv\n"
        "    print(greet('world'))\n")
    (project / "src" / "util.py").write_text(
        "def greet(name):\n    # TODO: localise\n    return f'hello {name}'\n")
    (project / "README.md").write_text("# demo\n\nA tiny project for benchmark sessions.\n")


def reset_project(project: Path) -> None:
    """Every session starts alike: the note the session writes is not there yet."""
    with contextlib.suppress(FileNotFoundError):
        (project / NOTE).unlink()


def session_turns(project: Path, k: int) -> list[Turn]:
    """K tool calls, one a turn, then a text answer: Write, Read, Edit of a note, Bash,
    Grep, Glob, Read, Bash; past 8, Grep, Glob, Read, Bash, Edit over and over."""
    note = str(project / NOTE)
    version = 0

    def edit() -> Turn:  # each Edit replaces exactly what the one before it wrote
        nonlocal version
        version += 1
        return call("Edit", file_path=note, old_string=f"status: v{version - 1}",
                    new_string=f"status: v{version}")

    turns = [
        call("Write", file_path=note, content="status: v0\nowner: nobody\n"),
        call("Read", file_path=note),
        edit(),
        call("Bash", command="ls -la", description="List the project folder"),
        call("Grep", pattern="TODO", path=str(project), output_mode="content"),
        call("Glob", pattern="**/*.py", path=str(project)),
        call("Read", file_path=str(project / "src" / "app.py")),
        call("Bash", command="wc -l src/app.py src/util.py", description="Count lines"),
    ][:k]
    while len(turns) < k:
        kind = (len(turns) - 8) % 5
        turns.append(
            call("Grep", pattern="def ", path=str(project), output_mode="content") if kind == 0
            else call("Glob", pattern="*.md", path=str(project)) if kind == 1
            else call("Read", file_path=str(project / "src" / "util.py")) if kind == 2
            else call("Bash", command=f"echo step {len(turns) + 1}", description="Say the step")
            if kind == 3 else edit())
    return [*turns, say("All done.")]


def hooks_with(settings: dict[str, Any], make: Callable[[dict[str, Any]], dict[str, Any]],
               ) -> dict[str, Any]:
    """install-hooks' settings with every hook entry replaced by ``make(entry)``; matchers
    and event list kept."""
    out = json.loads(json.dumps(settings))
    for groups in out.get("hooks", {}).values():
        for group in groups:
            group["hooks"] = [make(entry) for entry in group.get("hooks", [])]
    return out


def install_hooks(sb: Sandbox, transport: str) -> str:
    """`mpmd install-hooks --transport <transport>` as a user runs it; what it said."""
    out = sb.mpmd("install-hooks", "--transport", transport)
    if out.returncode != 0:
        raise RuntimeError(f"install-hooks --transport {transport} failed: {out.stderr}")
    return out.stdout


def check_http_settings(settings: dict[str, Any], url: str) -> str:
    """What install-hooks --transport http wrote, checked: an http entry posting to the
    daemon's endpoint with a bearer token for every event but SessionStart and Setup, which
    keep the command hook. The entries' other fields and the events of each, for the report."""
    kinds: dict[str, list[str]] = {}
    for event, groups in settings.get("hooks", {}).items():
        for entry in (e for g in groups for e in g.get("hooks", [])):
            want = "command" if event in COMMAND_ONLY else "http"
            if entry.get("type") != want or (want == "http" and (
                    entry.get("url") != url or not str(
                        entry.get("headers", {}).get("Authorization", "")).startswith("Bearer "))):
                raise RuntimeError(f"install-hooks --transport http wrote for {event}: {entry}")
            if want == "http":
                rest = {k: v for k, v in entry.items() if k not in ("type", "url", "headers")}
                kinds.setdefault(json.dumps(rest, sort_keys=True), []).append(event)
    if not kinds:
        raise RuntimeError("install-hooks --transport http wrote no http entry")
    return "; ".join(f"{kind} on {len(evs) if len(evs) > 3 else ', '.join(evs)}"
                     + (" events" if len(evs) > 3 else "") for kind, evs in kinds.items())


# ---- one configuration ---------------------------------------------------------------------
class Config:
    """One hook configuration: a Sandbox of its own, its scripted API, its samples."""

    def __init__(self, name: str, claude: Path, k: int) -> None:
        self.name = name
        self.k = k
        self.sandbox = Sandbox(claude=claude)
        seed_project(self.sandbox.project)
        self.api = ScriptedAPI(Script(turns=session_turns(self.sandbox.project, k)))
        self.api_running = False
        self.walls: list[float] = []  # ms, measured rounds only
        self.inside: list[float] = []  # ms, Claude Code's own duration_ms of the session
        self.hooks: list[Counter[str]] = []  # hook_started records by event, measured rounds
        self.sessions = 0  # all sessions, warm-up included
        self.hooks_started = 0  # all sessions
        self.hooks_failed = 0  # hook_response records whose outcome is not success
        self.waits: list[float] = []  # ms, each hook run (measured rounds), by the stream
        self.waited: list[float] = []  # ms, those of a session added up
        self.call_waited: list[float] = []  # ms, a session's tool-call hooks added up
        self.event_waits: dict[str, list[float]] = {}  # ms, each hook run, by event
        self.failures: list[str] = []

    def session(self) -> tuple[float, Headless, list[tuple[str, float]]]:
        """One `claude -p` session as Sandbox.headless runs it, its stdout read as it comes:
        (wall ms from start to exit, what it printed, (event, ms) from each hook_started to
        its hook_response line: how long Claude Code waited for each hook, by its stream)."""
        sb = self.sandbox
        cmd = [str(sb.claude), "-p", PROMPT, "--output-format", "stream-json", "--verbose",
               "--include-hook-events", "--allowedTools", " ".join(ALLOWED)]
        messages: list[dict[str, Any]] = []
        started: dict[str, tuple[str, float]] = {}
        waits: list[tuple[str, float]] = []
        with tempfile.TemporaryFile() as err:
            start = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=sb.project, env=sb.env(self.api.url),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=err)
            watchdog = threading.Timer(SESSION_TIMEOUT_S, proc.kill)
            watchdog.start()
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    now = time.perf_counter()
                    try:
                        msg = json.loads(line)
                    except ValueError:
                        continue  # not a message (the CLI may print warnings)
                    messages.append(msg)
                    kind = msg.get("subtype") if msg.get("type") == "system" else None
                    if kind == "hook_started":
                        started[msg.get("hook_id")] = (msg.get("hook_event", "?"), now)
                    elif kind == "hook_response" and msg.get("hook_id") in started:
                        event, t0 = started.pop(msg["hook_id"])
                        waits.append((event, (now - t0) * 1000))
                code = proc.wait()
                wall = (time.perf_counter() - start) * 1000
            finally:
                watchdog.cancel()
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            err.seek(0)
            stderr = err.read().decode(errors="replace")
        return wall, Headless(code, messages, stderr), waits

    def run(self, measured: bool) -> None:
        reset_project(self.sandbox.project)
        wall, out, waits = self.session()
        self.sessions += 1
        self.hooks_started += len(out.hooks_started)
        self.hooks_failed += sum(1 for h in out.hook_responses if h.get("outcome") != "success")
        results = out.tool_results()
        errors = [r for r in results if r.get("is_error")]
        if out.returncode != 0 or len(results) != self.k or errors:
            self.failures.append(
                f"exit {out.returncode}, {len(results)} tool results, {len(errors)} errors"
                + "".join(f"; {str(e.get('content'))[:120]}" for e in errors[:3])
                + (f"; stderr: {out.stderr.strip()[:200]}" if out.returncode else ""))
        if measured:
            self.walls.append(wall)
            with contextlib.suppress(StopIteration, KeyError, TypeError, ValueError):
                self.inside.append(float(out.result["duration_ms"]))
            self.hooks.append(Counter(h.get("hook_event", "?") for h in out.hooks_started))
            self.waits += [ms for _event, ms in waits]
            self.waited.append(sum(ms for _event, ms in waits))
            self.call_waited.append(sum(ms for event, ms in waits if event in TOOL_CALL_HOOKS))
            for event, ms in waits:
                self.event_waits.setdefault(event, []).append(ms)

    def start_api(self) -> None:
        self.api.__enter__()
        self.api_running = True

    def stop_api(self) -> None:
        if self.api_running:  # (shutdown() of a server never started would wait forever)
            self.api.__exit__(None, None, None)
            self.api_running = False


def median_counter(counters: list[Counter[str]]) -> dict[str, float]:
    names = sorted({name for c in counters for name in c}, key=lambda n: -sum(
        c.get(n, 0) for c in counters))
    return {name: statistics.median(c.get(name, 0) for c in counters) for name in names}


def skip(why: str) -> int:
    """No CLI: say so, and how to get it; a failure only under CI=true."""
    print(f"claude_session: skipped: {why}")
    C.emit_json({"bench": "claude_session", "skipped": why})
    return 1 if os.environ.get("CI", "").lower() in ("1", "true", "yes") else 0


def wait_for_journal(home: Path, sessions: int, timeout: float = 15) -> list[dict[str, Any]]:
    """The journal once it holds every session's SessionEnd (the last hook of a session, run
    as Claude Code exits), or as it is after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        events = journal_events(home)
        ended = sum(1 for e in events
                    if (e.get("payload") or {}).get("hook_event_name") == "SessionEnd")
        if ended >= sessions or time.monotonic() > deadline:
            return events
        time.sleep(0.05)  # the daemon's journal, another process: polled


def process_cpu_s(pid: int) -> float:
    """CPU seconds of a running process (user + system), from /proc; 0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def key(name: str) -> str:
    """A configuration's name as a JSON key prefix (mpmd-http -> mpmd_http)."""
    return name.replace("-", "_")


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=8, help="tool calls per session (K)")
    ap.add_argument("--rounds", type=int, default=11, help="measured rounds")
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured rounds first")
    ap.add_argument("--keep", action="store_true", help="keep the sandboxes")
    args = ap.parse_args()
    if args.calls < 1 or args.rounds < 1 or args.warmup < 0:
        ap.error("--calls and --rounds must be at least 1, --warmup at least 0")

    claude = find_claude()
    if claude is None:
        return skip(f"MPMD_CLAUDE={os.environ['MPMD_CLAUDE']} is not an executable file"
                    if os.environ.get("MPMD_CLAUDE") else
                    f"Claude Code {PINNED_VERSION} is not installed; run `{INSTALL_COMMAND}`")

    busy0, own0, wall0 = C.machine_busy_s(), C.own_tree_cpu_s(), time.monotonic()
    configs: dict[str, Config] = {}
    daemons: dict[str, Daemon] = {}
    receiver: http.server.ThreadingHTTPServer | None = None
    try:
        for name in CONFIGS:
            configs[name] = Config(name, claude, args.calls)
        # mpmd and mpmd-http: install-hooks as a user runs it, and a real daemon each (any
        # free viewer and http port).
        for name in MPMDS:
            sb = configs[name].sandbox
            sb.mpmd_home.mkdir(mode=0o700, parents=True, exist_ok=True)
            daemons[name] = Daemon(sb.mpmd_home, HOME=str(sb.home), MPMD_VIEWER_PORT="0",
                                   MPMD_HTTP_PORT="0")
            daemons[name].start()
        mpmd_sb, http_sb = configs["mpmd"].sandbox, configs["mpmd-http"].sandbox
        install_hooks(mpmd_sb, "command")
        installed = json.loads(mpmd_sb.settings_path.read_text())
        said = install_hooks(http_sb, "http")  # asks the running daemon its port and token
        http_port, _token = C.http_endpoint(http_sb.mpmd_home)
        mpmd_url = f"http://127.0.0.1:{http_port}/hook"
        http_entries = check_http_settings(json.loads(http_sb.settings_path.read_text()),
                                         mpmd_url)
        events = list(installed.get("hooks", {}))
        command = next(e["command"] for groups in installed["hooks"].values()
                       for g in groups for e in g["hooks"] if e.get("type") == "command")
        interpreter = shlex.split(command)[0]
        receiver = start_noop_server()
        url = f"http://127.0.0.1:{receiver.server_address[1]}/"
        python_floor = f"{shlex.quote(interpreter)} -I -S -c pass"
        settings: dict[str, dict[str, Any]] = {
            "none": {k: v for k, v in installed.items() if k != "hooks"},
            "true": hooks_with(installed, lambda e: dict(e, command="true")),
            "http": hooks_with(installed, lambda e: {"type": "http", "url": url, "timeout": 10}),
            "python": hooks_with(installed, lambda e: dict(e, command=python_floor)),
        }
        for name, data in settings.items():
            configs[name].sandbox.settings_path.parent.mkdir(parents=True, exist_ok=True)
            configs[name].sandbox.settings_path.write_text(json.dumps(data, indent=2))
        for cfg in configs.values():
            cfg.start_api()

        version = claude_version(claude)
        tools = [b["name"] for t in configs["none"].api.script.turns for b in t.blocks
                 if b["type"] == "tool_use"]
        print(f"claude_session: whole `claude -p` sessions of {args.calls} tool calls against "
              "the scripted API, wall time from start to exit")
        print(f"  Claude Code {version}; hooks on the {len(events)} events `mpmd install-hooks` "
              "registers")
        print(f"  mpmd's hook command: {command}")
        print(f"  mpmd-http: `mpmd install-hooks --transport http`: http hooks to {mpmd_url} "
              f"(Authorization: Bearer <http.token>; {http_entries}), "
              f"{' and '.join(COMMAND_ONLY)}: mpmd's command hook; it said:")
        for line in said.splitlines():
            if line.startswith(("transport:", "  note:")):
                print(f"    {line.strip()}")
        print(f"  python: `{python_floor}` on the same events (the bare interpreter, info)")
        print(f"  tools, one a turn: {', '.join(tools)}")
        print(f"  rounds: {args.rounds} (+{args.warmup} warm-up), configurations alternate, the "
              "first one rotating every round")

        order = list(CONFIGS)
        for r in range(args.warmup + args.rounds):
            shift = r % len(order)
            for name in order[shift:] + order[:shift]:
                configs[name].run(measured=r >= args.warmup)

        # Every hook run of mpmd's sessions journaled: those Claude Code reported starting,
        # plus one SessionEnd a session (it fires after the stream ends: not reported).
        journal: dict[str, list[dict[str, Any]]] = {}
        journal_expected: dict[str, int] = {}
        for name in MPMDS:
            cfg = configs[name]
            journal[name] = wait_for_journal(cfg.sandbox.mpmd_home, cfg.sessions)
            journal_expected[name] = cfg.hooks_started + cfg.sessions
        other_load = None  # CPU used by processes other than ours, in cores, on average
        busy1 = C.machine_busy_s()
        if busy0 is not None and busy1 is not None:
            ours = (C.own_tree_cpu_s() - own0
                    + sum(process_cpu_s(d.proc.pid) for d in daemons.values() if d.proc))
            other_load = max(0.0, busy1 - busy0 - ours) / (time.monotonic() - wall0)

        # ---- report
        med = {n: statistics.median(c.walls) for n, c in configs.items()}
        over = {n: med[n] - med["none"] for n in CONFIGS}
        per_call = {n: over[n] / args.calls for n in CONFIGS}
        # the same round's difference, then its median (a drift of the machine cancels out)
        paired = {n: statistics.median(a - b for a, b in zip(
            configs[n].walls, configs["none"].walls, strict=True)) for n in CONFIGS}
        hooks = {n: median_counter(c.hooks) for n, c in configs.items()}
        runs = {n: sum(h.values()) for n, h in hooks.items()}
        waited = {n: statistics.median(c.waited) for n, c in configs.items()}
        wait = {n: statistics.median(c.waits) if c.waits else None for n, c in configs.items()}
        # what a tool call waited for its three hooks: a session's, added up, over K
        call_wait = {n: statistics.median(c.call_waited) / args.calls
                     if any(c.call_waited) else None for n, c in configs.items()}
        print()
        print(f"  {'config':9} {'median':>7} {'p25':>7} {'p75':>7} {'over':>7} {'paired':>7} "
              f"{'/call':>6} {'hooks':>5} {'waited':>7} {'/hook':>6} {'call':>6}  fails")
        for n in CONFIGS:
            w = configs[n].walls
            each = f"{wait[n]:6.1f}" if wait[n] is not None else f"{'':6}"
            calls = f"{call_wait[n]:6.1f}" if call_wait[n] is not None else f"{'':6}"
            tag = "  (info)" if n == "python" else ""
            print(f"  {n:9} {med[n]:7.0f} {C.percentile(w, 25):7.0f} {C.percentile(w, 75):7.0f} "
                  f"{over[n]:+7.0f} {paired[n]:+7.0f} {per_call[n]:6.1f} {runs[n]:5g} "
                  f"{waited[n]:7.0f} {each} {calls}  "
                  f"{len(configs[n].failures) + configs[n].hooks_failed}{tag}")
        print("  ms. median, p25, p75: a whole session, start to exit. over: median - none's "
              "median; paired: median of each round's difference to none; /call: over / K.\n"
              "  hooks: hook runs Claude Code reports starting a session (SessionEnd, run after "
              "the stream, is not reported). waited: what a session waited for them, from each "
              "hook_started line of Claude Code's stream to its hook_response line, added up "
              "(median); /hook: the median of one; call: what a tool call waited for its "
              f"{', '.join(TOOL_CALL_HOOKS)} (a session's, added up, / K; median). fails: "
              "failed sessions + hook runs without success.")

        def ratio(a: dict[str, Any], x: str, y: str) -> float | None:
            if a[x] is None or a[y] is None or a[y] <= 0:
                return None  # a floor lost in the noise (or not measured)
            return float(a[x]) / float(a[y])

        def times(value: float | None) -> str:
            return "n/a (the floor is within the noise)" if value is None else f"{value:.2f} x"

        print(f"  mpmd adds {per_call['mpmd']:.1f} ms a tool call ({over['mpmd']:+.0f} ms a "
              f"session); floors: `true` {per_call['true']:.1f} ms, http "
              f"{per_call['http']:.1f} ms, bare python {per_call['python']:.1f} ms a call")
        for floor in ("true", "http", "python"):
            print(f"    mpmd / {floor:6}: session overhead {times(ratio(over, 'mpmd', floor))}, "
                  f"wait for one hook {times(ratio(wait, 'mpmd', floor))}")
        print(f"  mpmd-http adds {per_call['mpmd-http']:.1f} ms a tool call "
              f"({over['mpmd-http']:+.0f} ms a session; a tool call waits "
              f"{call_wait['mpmd-http'] or 0:.1f} ms for its hooks, one hook "
              f"{wait['mpmd-http'] or 0:.1f} ms); the http floor {per_call['http']:.1f} ms "
              f"({call_wait['http'] or 0:.1f} ms waited, {wait['http'] or 0:.1f} ms a hook)")
        target = ratio(call_wait, "mpmd-http", "http")
        print(f"    mpmd-http / http: session overhead "
              f"{times(ratio(over, 'mpmd-http', 'http'))}, a tool call's wait for its hooks "
              f"{times(target)} (target <= 1.2: "
              f"{'n/a' if target is None else 'met' if target <= 1.2 else 'NOT met'}), "
              f"wait for one hook {times(ratio(wait, 'mpmd-http', 'http'))}")
        print(f"    mpmd-http / mpmd: session overhead "
              f"{times(ratio(over, 'mpmd-http', 'mpmd'))}, a tool call's wait "
              f"{times(ratio(call_wait, 'mpmd-http', 'mpmd'))}")
        for n in ("mpmd", "mpmd-http", "http"):
            print(f"  hook runs a session, {n}: "
                  + ", ".join(f"{e} {v:g}" for e, v in hooks[n].items()))
        for n in ("mpmd", "mpmd-http", "http"):
            ew = configs[n].event_waits
            print(f"  wait for one hook by event (median ms), {n}: "
                  + ", ".join(f"{e} {statistics.median(ew[e]):.1f}" for e in sorted(
                      ew, key=lambda e: -len(ew[e]))))
        print(f"  http hook receiver: {receiver.posts} POSTs "  # type: ignore[attr-defined]
              f"in {configs['http'].sessions} sessions (SessionStart and Setup never run http "
              "hooks; SessionEnd does)")
        for n in MPMDS:
            by_event = Counter((e.get("payload") or {}).get("hook_event_name", "?")
                               for e in journal[n])
            by_source = Counter(e.get("source", "?") for e in journal[n])
            print(f"  {n} journal: {len(journal[n])} events, {journal_expected[n]} expected "
                  f"({configs[n].hooks_started} reported started + {configs[n].sessions} "
                  f"SessionEnd); by source: "
                  + ", ".join(f"{s} {v}" for s, v in by_source.most_common()) + "; "
                  + ", ".join(f"{e} {v}" for e, v in by_event.most_common()))
        for n, cfg in configs.items():
            for failure in cfg.failures[:3]:
                print(f"  FAILED session ({n}): {failure}")
        if other_load is not None:
            print(f"  other processes on the machine used {other_load:.2f} of "
                  f"{os.cpu_count()} cores on average during the run (noise for the rows)")

        def rounded(value: float | None, digits: int = 2) -> float | int | None:
            if value is None:
                return None
            return int(value) if float(value).is_integer() else round(value, digits)

        result: dict[str, Any] = {
            "bench": "claude_session",
            "claude_version": version,
            "calls": args.calls,
            "rounds": args.rounds,
            "events": len(events),
        }
        for n in CONFIGS:
            w = configs[n].walls
            k = key(n)
            result[f"{k}_ms"] = round(med[n], 1)
            result[f"{k}_p25_ms"] = round(C.percentile(w, 25), 1)
            result[f"{k}_p75_ms"] = round(C.percentile(w, 75), 1)
            result[f"{k}_inside_ms"] = (round(statistics.median(configs[n].inside), 1)
                                        if configs[n].inside else None)
            if n != "none":
                result[f"{k}_over_ms"] = round(over[n], 1)
                result[f"{k}_paired_over_ms"] = round(paired[n], 1)
                result[f"{k}_per_call_ms"] = round(per_call[n], 2)
                result[f"{k}_hook_runs"] = rounded(runs[n], 1)
                result[f"{k}_waited_ms"] = round(waited[n], 1)
                result[f"{k}_hook_wait_ms"] = rounded(wait[n])
                result[f"{k}_call_wait_ms"] = rounded(call_wait[n])
                result[f"{k}_session_start_wait_ms"] = rounded(
                    statistics.median(configs[n].event_waits["SessionStart"])
                    if configs[n].event_waits.get("SessionStart") else None)
        for floor in ("true", "http", "python"):
            result[f"mpmd_vs_{floor}"] = rounded(ratio(over, "mpmd", floor))
            result[f"mpmd_vs_{floor}_hook_wait"] = rounded(ratio(wait, "mpmd", floor))
        result.update({
            "mpmd_http_vs_http": rounded(ratio(over, "mpmd-http", "http")),
            "mpmd_http_vs_http_call_wait": rounded(target),
            "mpmd_http_vs_http_hook_wait": rounded(ratio(wait, "mpmd-http", "http")),
            "mpmd_http_call_wait_target_met": None if target is None else target <= 1.2,
            "mpmd_http_vs_mpmd": rounded(ratio(over, "mpmd-http", "mpmd")),
            "mpmd_http_vs_mpmd_call_wait": rounded(ratio(call_wait, "mpmd-http", "mpmd")),
            "http_posts": receiver.posts,  # type: ignore[attr-defined]
            "journaled": len(journal["mpmd"]),
            "journal_expected": journal_expected["mpmd"],
            "mpmd_http_journaled": len(journal["mpmd-http"]),
            "mpmd_http_journal_expected": journal_expected["mpmd-http"],
            "failed_sessions": sum(len(c.failures) for c in configs.values()),
            "failed_hooks": sum(c.hooks_failed for c in configs.values()),
            "other_load_cores": None if other_load is None else round(other_load, 2),
        })
        C.emit_json(result)
        return 0
    finally:
        for cfg in configs.values():
            cfg.stop_api()
        if receiver is not None:
            receiver.shutdown()
        for daemon in daemons.values():
            if daemon.proc is not None:
                daemon.stop()
        for cfg in configs.values():
            if args.keep:
                print(f"kept {cfg.sandbox.base}", file=sys.stderr)
            else:
                cfg.sandbox.cleanup()


if __name__ == "__main__":
    sys.exit(main())
