"""How soon the viewer says a session needs you, after the real Claude Code shows a prompt.

Each round is one interactive session of the pinned CLI (``make claude-code``) in tmux, in
the default permission mode, against the scripted Messages API (tests/claude/api.py), with
`mpmd install-hooks` and a real daemon: the model calls Bash, Claude Code shows its
permission prompt. One thread polls the terminal's screen for the prompt, another the
sessions table a WebSocket viewer receives for the session's `pending` entry (both every
few ms); the figure is the time from the prompt on screen to the row saying so. Negative
when the row came first (the PermissionRequest hook fires as the prompt is drawn).

    .venv/bin/python benchmarks/needs_you.py [--rounds 7]

Prints each round, the median and the spread, and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.claude.api import Script, ScriptedAPI, call, say  # noqa: E402
from tests.claude.client import Sandbox, Terminal, find_claude  # noqa: E402
from tests.claude.viewer import SessionsFeed  # noqa: E402
from tests.utils import Daemon, status  # noqa: E402

PROMPT = "Do you want to proceed?"
POLL_S = 0.003


def one_round() -> float:
    sb = Sandbox()
    try:
        sb.install_hooks()
        script = Script(turns=[call("Bash", command="touch x.txt", description="Make a file"),
                               say("Done.")])
        with Daemon(sb.mpmd_home, HOME=str(sb.home), MPMD_VIEWER_PORT="0"), \
                ScriptedAPI(script) as api, \
                SessionsFeed(status(sb.mpmd_home)["ws_url"]) as feed:
            term = Terminal(sb, api.url, "--permission-mode", "default")
            try:
                term.submit("make the file")
                seen: dict[str, float] = {}

                def watch_row() -> None:
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline:
                        row = feed.row()
                        if row and row["pending"]:
                            seen["row"] = time.monotonic()
                            return
                        time.sleep(POLL_S)

                watcher = threading.Thread(target=watch_row)
                watcher.start()
                deadline = time.monotonic() + 60
                while PROMPT not in term.screen():
                    if time.monotonic() > deadline:
                        raise RuntimeError("the prompt never showed")
                seen["screen"] = time.monotonic()
                watcher.join()
                if "row" not in seen:
                    raise RuntimeError("the session never showed as needing you")
                return (seen["row"] - seen["screen"]) * 1000
            finally:
                term.close()
    finally:
        sb.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if find_claude() is None:
        print("Claude Code is not installed: run `make claude-code` (or set MPMD_CLAUDE)")
        return 0
    delays = []
    for n in range(args.rounds):
        delays.append(one_round())
        print(f"round {n + 1}: needs you {delays[-1]:+.0f} ms after the prompt showed")
    median = statistics.median(delays)
    print(f"median {median:+.0f} ms, min {min(delays):+.0f}, max {max(delays):+.0f} "
          f"({args.rounds} sessions)")
    print(json.dumps({"benchmark": "needs_you", "rounds": args.rounds,
                      "median_ms": round(median, 1), "min_ms": round(min(delays), 1),
                      "max_ms": round(max(delays), 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
