"""What one hook costs Claude Code, against the interpreter's own start-up, in one run.

The promise: the installed hook's median wall time is at most 1.3 x ``python3 -I -S -c
pass``, and at most 1.5 x with a 50-rule policy. Every row is a real process fed the
PreToolUse Bash fixture on a stdin pipe and timed around posix_spawn + waitpid; rows
alternate round-robin (the starting row rotates every round) so drifts of the machine hit
every row alike.

    phase 1, daemon up:   floor, hook, hook_policy, curl_jq, console_script (+ python3 on
                          PATH, info)
    phase 2, daemon down: floor, hook_spool (the fallback: spool file + fsync)

``hook_policy`` is the same command with a state folder holding a compiled 50-rule policy
(the shipped example's 10 rules, 39 more of every kind, and a last one that allows the
fixture's `npm test`: every rule is tried, and the decision is printed and journaled).

Then the daemon is started again (it drains the spool) and stopped, and the journal must
hold every run exactly once: each run's payload carries a unique tool_use_id of the
fixture's length, so ``lost`` and ``duplicated`` are exact.

    .venv/bin/python benchmarks/hook_cost.py [--rounds 200] [--warmup 5]

The last stdout line is one JSON object with all the figures. Timing is measured, never
asserted.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import _common as C

NOTE_SHELL = ("Claude Code runs the command string through a shell (sh -c); that costs the "
              "same for every hook, so rows here exec the command directly (shlex.split).")


# ---- a tiny webhook receiver for the curl | jq row -------------------------------------------
class _Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        with self.server.lock:  # type: ignore[attr-defined]
            self.server.bodies.append(body)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def start_receiver() -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.daemon_threads = True
    server.lock = threading.Lock()  # type: ignore[attr-defined]
    server.bodies = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, name="webhook", daemon=True).start()
    return server


# ---- payloads -------------------------------------------------------------------------------
class Payloads:
    """The fixture payload with a unique tool_use_id per run (same length as the original,
    so every run sends exactly the fixture's byte count)."""

    def __init__(self) -> None:
        self.template = C.fixture_payload("PreToolUse", "Bash")
        self.original_id = json.loads(self.template)["tool_use_id"]
        self.width = len(self.original_id)
        self.n = 0
        self.sent: dict[str, list[str]] = {}  # row -> markers

    def next(self, row: str) -> bytes:
        self.n += 1
        marker = f"bm{self.n:0{self.width - 2}d}"
        assert len(marker) == self.width
        self.sent.setdefault(row, []).append(marker)
        return self.template.replace(self.original_id.encode(), marker.encode(), 1)


# ---- the 50-rule policy ---------------------------------------------------------------------
DECIDING_RULE = "npm-tests-are-fine"


def policy_text(rules: int = 50) -> str:
    """The shipped example policy, then rules of every kind that do not match the fixture,
    then one that does (``DECIDING_RULE``): ``rules`` rules in all."""
    example = (C.ROOT / "mpmd" / "ops" / "policy_example.toml").read_text()
    kinds = [
        lambda i: (f'name = "deny-command-{i}"\naction = "deny"\ntools = ["Bash"]\n'
                   f'command = ["tool{i} *", "*/tool{i} *", "x{i}-[a-z]* --force*"]'),
        lambda i: (f'name = "deny-path-{i}"\naction = "deny"\ntools = ["Write", "Edit"]\n'
                   f'path = ["/etc/app{i}/**", "~/.config/app{i}/*.json"]'),
        lambda i: (f'name = "ask-tool-{i}"\naction = "ask"\nevents = ["PreToolUse"]\n'
                   f'tools = ["mcp__server{i}__*", "WebFetch"]\ncwd = "/srv/project{i}/**"'),
        lambda i: (f'name = "deny-options-{i}"\naction = "deny"\ntools = ["Bash"]\n'
                   f'command = "git{i} *"\noptions = ["f|force", "d"]\nproject = "outside"'),
    ]
    shipped = example.count("\n[[rule]]")
    extra = [f"[[rule]]\n{kinds[i % len(kinds)](i)}\n" for i in range(rules - shipped - 1)]
    extra.append(f'[[rule]]\nname = "{DECIDING_RULE}"\naction = "allow"\ntools = ["Bash"]\n'
                 'command = ["npm test", "npm test *"]\nproject = "inside"\n')
    return example + "\n" + "\n".join(extra)


def policy_state(home: Path) -> Path:
    """A state folder with the 50-rule policy compiled by `mpmd policy check` (the policy
    file beside it, as with MPMD_HOME)."""
    folder = C.short_tempdir("mpmp-")
    (folder / "policy.toml").write_text(policy_text())
    result = C.mpmd_cli(folder, "policy", "check", timeout=120)
    if result.returncode != 0 or "50 rules" not in result.stdout:
        raise RuntimeError(f"mpmd policy check failed: {result.stdout}{result.stderr}")
    return folder


# ---- rows -----------------------------------------------------------------------------------
def resolve(path: str) -> str:
    found = path if os.path.isabs(path) else shutil.which(path)
    if not found:
        raise FileNotFoundError(path)
    return found


def is_script(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"#!"


def python_on_path() -> tuple[str, str] | None:
    """(python3 as found on PATH, the interpreter binary it really runs), or None."""
    found = shutil.which("python3")
    if not found:
        return None
    real = subprocess.run([found, "-I", "-S", "-c", "import sys; print(sys.executable)"],
                          capture_output=True, text=True, check=False).stdout.strip()
    return found, real or found


def console_script() -> str | None:
    """The pip-generated ``mpm-hook`` wrapper next to this interpreter (not resolved through
    symlinks: a venv's python is a link to the base interpreter)."""
    candidate = Path(sys.executable).parent / "mpm-hook"
    if candidate.exists():
        return str(candidate)
    import sysconfig

    candidate = Path(sysconfig.get_path("scripts")) / "mpm-hook"
    return str(candidate) if candidate.exists() else None


def installed_command(home: Path) -> str:
    settings_file = home / "settings.json"
    result = C.mpmd_cli(home, "install-hooks", "--settings", str(settings_file),
                        "--transport", "command",  # the command hook is what is measured
                        timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"install-hooks failed: {result.stderr}")
    data = json.loads(settings_file.read_text())
    for group in data["hooks"]["PreToolUse"]:
        for hook in group["hooks"]:
            if "mpm_hook" in hook.get("command", "") or "mpm-hook" in hook.get("command", ""):
                return hook["command"]
    raise RuntimeError("install-hooks wrote no PreToolUse command of ours")


def flag_value(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv[:-1] else None


# ---- running --------------------------------------------------------------------------------
class Row:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], *,
                 marked_as: str | None = None, every: int = 1, info: bool = False) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.marked_as = marked_as or name  # which bucket its markers go to
        self.every = every  # run only every `every`-th round (costly info rows)
        self.info = info
        self.samples: list[int] = []
        self.failures = 0


def alternate(rows: list[Row], rounds: int, warmup: int, payloads: Payloads) -> None:
    for i in range(warmup):
        for row in rows:
            if i % row.every == 0:
                _, code = C.spawn_wait(row.argv, payloads.next(row.marked_as), row.env)
                row.failures += code != 0
    for r in range(rounds):
        k = r % len(rows)
        for row in rows[k:] + rows[:k]:
            if r % row.every:
                continue
            elapsed, code = C.spawn_wait(row.argv, payloads.next(row.marked_as), row.env)
            row.samples.append(elapsed)
            row.failures += code != 0


def import_times(argv: list[str], env: dict[str, str], payload: bytes) -> list[tuple[int, int,
                                                                                     str]]:
    """(self us, cumulative us, module) of one hook run under ``-X importtime``."""
    cmd = [argv[0], "-X", "importtime", *argv[1:]]
    result = subprocess.run(cmd, input=payload, capture_output=True, env=env, timeout=60,
                            check=False)
    rows = []
    for line in result.stderr.decode(errors="replace").splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line[len("import time:"):].split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue
        rows.append((int(parts[0]), int(parts[1]), parts[2].rstrip()))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=200, help="timed runs per row (default 200)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed runs per row first")
    ap.add_argument("--path-python-samples", type=int, default=40,
                    help="samples of the python3 found on PATH when it differs from the "
                         "hook's interpreter (info row; a pyenv shim costs ~100 ms a run)")
    ap.add_argument("--no-curl", action="store_true", help="skip the curl | jq row")
    ap.add_argument("--keep", action="store_true", help="keep the temporary MPMD_HOME")
    args = ap.parse_args()

    busy0, own0, wall0 = C.machine_busy_s(), C.own_tree_cpu_s(), time.monotonic()
    home = C.short_tempdir("mpmh-")
    daemon = C.Daemon(home, log_name="daemon-bench.log")
    receiver = None
    notes = [NOTE_SHELL]
    policy_home: Path | None = None
    try:
        daemon.start(timeout=60)
        command = installed_command(home)
        hook_argv = shlex.split(command)
        hook_argv[0] = resolve(hook_argv[0])
        interpreter = hook_argv[0]
        baked = (flag_value(hook_argv, "--runtime"), flag_value(hook_argv, "--state"))
        if baked == (str(home), str(home)):
            hook_env = C.clean_env()  # the command names the folders: no MPMD_HOME needed
        else:
            hook_env = C.env_for(home)
            notes.append(f"the command's --runtime/--state {baked} are not MPMD_HOME: "
                         "MPMD_HOME passed to the hook")
        payloads = Payloads()

        print("hook_cost: what one hook run costs, timed around posix_spawn + waitpid")
        print(f"  installed command (PreToolUse): {command}")
        print(f"  interpreter: {interpreter} -> {os.path.realpath(interpreter)}")
        print(f"  payload: PreToolUse Bash fixture, {len(payloads.template)} bytes on a stdin pipe")
        print(f"  rounds: {args.rounds} (+{args.warmup} warm-up), rows alternate round-robin")

        floor = Row("floor", [interpreter, "-I", "-S", "-c", "pass"], hook_env)
        rows = [floor, Row("hook", hook_argv, hook_env)]
        policy_argv: list[str] | None = None
        if baked == (str(home), str(home)):
            policy_home = policy_state(home)
            policy_argv = list(hook_argv)
            policy_argv[policy_argv.index("--state") + 1] = str(policy_home)
            rows.append(Row("hook_policy", policy_argv, hook_env))
        else:
            notes.append("hook_policy row skipped: MPMD_HOME is passed to the hook, so it "
                         "cannot be given another state folder")
        if not args.no_curl and shutil.which("curl") and shutil.which("jq") and shutil.which(
                "sh"):
            receiver = start_receiver()
            port = receiver.server_address[1]
            pipeline = ("jq -c . | curl -s -m 2 -X POST -H 'Content-Type: application/json' "
                        f"--data-binary @- http://127.0.0.1:{port}/events")
            rows.append(Row("curl_jq", [resolve("sh"), "-c", pipeline], C.clean_env()))
        else:
            notes.append("curl_jq row skipped: " + ("--no-curl" if args.no_curl
                                                    else "curl, jq or sh not found"))
        script = console_script()
        if script:
            rows.append(Row("console_script", [script, "--runtime", str(home),
                                               "--state", str(home)], hook_env))
        else:
            notes.append("console_script row skipped: no mpm-hook script next to python")
        on_path = python_on_path()
        if on_path and on_path[0] != interpreter:
            found, real = on_path
            if is_script(found):
                notes.append(f"python3 on PATH ({found}) is a script (a version-manager shim?)"
                             f" running {real}; info rows: both")
                rows.append(Row("path_python3_shim", [found, "-I", "-S", "-c", "pass"],
                                C.clean_env(), info=True,
                                every=max(1, args.rounds // max(1, args.path_python_samples))))
            if real != interpreter:
                rows.append(Row("path_python3", [real, "-I", "-S", "-c", "pass"],
                                C.clean_env(), info=True))

        # ---- phase 1: daemon up
        alternate(rows, args.rounds, args.warmup, payloads)
        imports = import_times(hook_argv, hook_env, payloads.next("importtime"))
        bare = {name.strip() for _s, _c, name in import_times(floor.argv, hook_env, b"")}
        policy_imports = []
        policy_printed = None
        if policy_argv is not None:
            policy_imports = import_times(policy_argv, hook_env, payloads.next("hook_policy"))
            printed = subprocess.run(policy_argv, input=payloads.next("hook_policy"),
                                     capture_output=True, env=hook_env, timeout=60,
                                     check=False).stdout
            policy_printed = json.loads(printed) if printed else None
        code = daemon.stop(timeout=120)
        if code != 0:
            notes.append(f"the daemon exited with {code} after SIGTERM")

        # ---- phase 2: daemon down, the spool fallback
        floor2 = Row("floor_daemon_down", floor.argv, hook_env)
        spool_row = Row("hook_spool", hook_argv, hook_env)
        alternate([floor2, spool_row], args.rounds, args.warmup, payloads)
        spool_dir = home / "spool"
        spooled_files = len(list(spool_dir.glob("*.frame"))) if spool_dir.exists() else 0

        # ---- drain: start again (the spool is taken in before it reports ready), stop
        daemon = C.Daemon(home, log_name="daemon-bench.log")
        daemon.start(timeout=60)
        daemon.stop(timeout=120)
        left_in_spool = len(list(spool_dir.glob("*.frame"))) if spool_dir.exists() else 0
        other_load = None  # CPU used by processes other than ours, in cores, on average
        busy1 = C.machine_busy_s()
        if busy0 is not None and busy1 is not None:
            ours = C.own_tree_cpu_s() - own0
            other_load = max(0.0, busy1 - busy0 - ours) / (time.monotonic() - wall0)
        lines = C.journal_lines(home)
        stored: Counter[str] = Counter()
        via_spool: set[str] = set()
        other = 0
        decided: dict[str, str] = {}  # marker -> the rule its stored decision names
        for line in lines:
            event = json.loads(line)
            marker = (event.get("payload") or {}).get("tool_use_id")
            if isinstance(marker, str) and marker.startswith("bm"):
                stored[marker] += 1
                if event.get("source") == "spool":
                    via_spool.add(marker)
                if event.get("decision"):
                    decided[marker] = event["decision"].get("rule")
            else:
                other += 1
        policy_runs = payloads.sent.get("hook_policy", [])
        decided_right = sum(1 for m in policy_runs if decided.get(m) == DECIDING_RULE)
        decided_wrongly = len(decided) - decided_right
        # Runs with the daemon up must have been acked, not spooled (a slow ack would make
        # the hook row time the fallback path instead).
        up_runs = [m for row in ("hook", "hook_policy", "console_script", "importtime")
                   for m in payloads.sent.get(row, [])]
        spooled_while_up = sum(1 for m in up_runs if m in via_spool)
        expected = [m for row in ("hook", "hook_policy", "console_script", "importtime",
                                  "hook_spool")
                    for m in payloads.sent.get(row, [])]
        lost = sum(1 for m in expected if stored[m] == 0)
        duplicated = sum(n - 1 for n in stored.values() if n > 1)
        unexpected = sum(n for m, n in stored.items() if m not in set(expected)) + other
        hook_log = home / "log" / "hook.log"
        hook_errors = len(hook_log.read_text().splitlines()) if hook_log.exists() else 0
        webhook_received = len(receiver.bodies) if receiver else None  # type: ignore[attr-defined]

        # ---- report
        stats = {row.name: C.summary_ms(row.samples) for row in [*rows, floor2, spool_row]}
        base = {row.name: stats["floor"]["median"] for row in rows}
        base.update({"floor_daemon_down": stats["floor_daemon_down"]["median"],
                     "hook_spool": stats["floor_daemon_down"]["median"]})
        print()
        print(f"  {'row':20} {'median':>8} {'p90':>8} {'p99':>8} {'min':>8} {'ratio':>7}"
              f"  {'n':>4}  fails")
        for row in [*rows, floor2, spool_row]:
            if row is floor2:
                print("  -- daemon stopped: the spool fallback --")
            s = stats[row.name]
            ratio = s["median"] / base[row.name]
            tag = "  (info)" if row.info else ""
            print(f"  {row.name:20} {s['median']:8.2f} {s['p90']:8.2f} {s['p99']:8.2f} "
                  f"{s['min']:8.2f} {ratio:7.2f}  {s['n']:4d}  {row.failures}{tag}")
        print("  (ms; ratio = median / floor median of the same phase; the promise is "
              "hook ratio <= 1.3, hook_policy <= 1.5)")
        hook_ratio = stats["hook"]["median"] / stats["floor"]["median"]
        print(f"  hook: {stats['hook']['median'] - stats['floor']['median']:+.2f} ms over the "
              f"floor, ratio {hook_ratio:.2f} "
              f"({'within' if hook_ratio <= 1.3 else 'ABOVE'} the 1.3 promise)")
        if "hook_policy" in stats:
            policy_ratio = stats["hook_policy"]["median"] / stats["floor"]["median"]
            over = stats["hook_policy"]["median"] - stats["hook"]["median"]
            print(f"  hook_policy (50 rules): {over:+.2f} ms over the hook, ratio "
                  f"{policy_ratio:.2f} "
                  f"({'within' if policy_ratio <= 1.5 else 'ABOVE'} the 1.5 target)")
        print()
        print("  top imports of one hook run by self time (-X importtime, us):")
        for self_us, cumulative, name in sorted(imports, reverse=True)[:10]:
            print(f"    {self_us:6d} self {cumulative:7d} cumulative  {name}")
        extra = [(s_us, name.strip()) for s_us, _c, name in imports if name.strip() not in bare]
        print(f"  imported by the hook beyond `-I -S -c pass` ({len(extra)} modules, "
              f"{sum(s_us for s_us, _ in extra)} us self in total): "
              + ", ".join(f"{name} {s_us}" for s_us, name in sorted(extra, reverse=True)))
        if policy_imports:
            extra = [(s_us, name.strip()) for s_us, _c, name in policy_imports
                     if name.strip() not in bare]
            print(f"  with the policy ({len(extra)} modules, {sum(s_us for s_us, _ in extra)} "
                  "us self in total): "
                  + ", ".join(f"{name} {s_us}" for s_us, name in sorted(extra, reverse=True)))
            print(f"  hook_policy printed: {json.dumps(policy_printed)}")
        print()
        print(f"  correctness: {len(expected)} events sent with the daemon up or spooled "
              f"({spooled_files} spool files while down, {left_in_spool} left after restart); "
              f"journal holds {sum(stored.values())} of them: lost {lost}, duplicated "
              f"{duplicated}, unexpected {unexpected}; spooled although the daemon was up "
              f"{spooled_while_up}; hook.log lines {hook_errors}")
        if policy_runs:
            print(f"  policy: {decided_right} of the {len(policy_runs)} hook_policy events "
                  f"journaled with the decision of rule {DECIDING_RULE}, {decided_wrongly} "
                  "other events with a decision")
        if receiver is not None:
            print(f"  webhook receiver got {webhook_received} POSTs")
        if other_load is not None:
            print(f"  other processes on the machine used {other_load:.2f} of "
                  f"{os.cpu_count()} cores on average during the run (noise for the rows)")
        for note in notes:
            print("  note: " + note)

        def ms(name: str) -> float | None:
            return round(stats[name]["median"], 3) if name in stats else None

        def ratio_of(name: str) -> float | None:
            return round(stats[name]["median"] / base[name], 3) if name in stats else None

        result = {
            "bench": "hook_cost",
            "rounds": args.rounds,
            "floor_ms": ms("floor"),
            "floor_p90_ms": round(stats["floor"]["p90"], 3),
            "hook_ms": ms("hook"),
            "hook_p90_ms": round(stats["hook"]["p90"], 3),
            "hook_p99_ms": round(stats["hook"]["p99"], 3),
            "hook_ratio": ratio_of("hook"),
            "hook_policy_ms": ms("hook_policy"),
            "hook_policy_p90_ms": round(stats["hook_policy"]["p90"], 3)
            if "hook_policy" in stats else None,
            "hook_policy_ratio": ratio_of("hook_policy"),
            "policy_rules": 50 if policy_argv is not None else None,
            "policy_printed": policy_printed,
            "policy_decided": decided_right,
            "policy_decided_wrongly": decided_wrongly,
            "floor_daemon_down_ms": ms("floor_daemon_down"),
            "hook_spool_ms": ms("hook_spool"),
            "hook_spool_ratio": ratio_of("hook_spool"),
            "curl_jq_ms": ms("curl_jq"),
            "curl_jq_ratio": ratio_of("curl_jq"),
            "console_script_ms": ms("console_script"),
            "console_script_ratio": ratio_of("console_script"),
            "path_python3_ms": ms("path_python3"),
            "path_python3_shim_ms": ms("path_python3_shim"),
            "other_load_cores": None if other_load is None else round(other_load, 2),
            "failures": sum(r.failures for r in [*rows, floor2, spool_row]),
            "events_expected": len(expected),
            "lost": lost,
            "duplicated": duplicated,
            "unexpected": unexpected,
            "spooled_while_up": spooled_while_up,
            "hook_log_lines": hook_errors,
        }
        C.emit_json(result)
        return 0
    finally:
        if receiver is not None:
            receiver.shutdown()
        C.finish(daemon, home, args.keep)
        if policy_home is not None and not args.keep:
            C.remove_home(policy_home)


if __name__ == "__main__":
    sys.exit(main())
