"""What redaction costs a large payload the pre-check flags, and what the line builder
costs it: the sparse path (the full rules tried only where a secret can start) against the
full pass over every character, measured in the same run, alternating.

    python benchmarks/redact.py [--rounds N]

Texts: log-like lines with a few real secrets spread through them and a name that
makes the pre-check say yes; 20 KB, 1 MB and 8 MiB (the largest frame). Prints medians
(ms) and the full/sparse ratio, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from functools import partial

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mpmd.model import (
    record,  # noqa: E402
    redact,
)
from mpmd.model.events import EventFrame  # noqa: E402

SECRETS = ("AKIAQWERTYUIOPASDFGH", "ghp_" + "A1b2C3d4E5" * 4,
           "xoxb-1234567890-abcdefghijklmnop", "password=hunter2hunter2")
SIZES = {"20KB": 20_000, "1MB": 1_000_000, "8MiB": 8 << 20}


def text_of(size: int, secrets: int, seed: int) -> str:
    rng = random.Random(seed)
    lines = []
    total = 0
    while total < size:
        line = f"{rng.randrange(10**6):06d} INFO worker-{rng.randrange(64)} handled request " \
               f"/api/v1/items/{rng.randrange(10**9)} in {rng.random():.3f}s"
        lines.append(line)
        total += len(line) + 1
    for i in range(secrets):
        lines[rng.randrange(len(lines))] += " " + SECRETS[i % len(SECRETS)]
    return "\n".join(lines)


def median_ms(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    for name, size in SIZES.items():
        text = text_of(size, 5, 1)
        payload = json.dumps({"hook_event_name": "PostToolUse", "session_id": "s",
                              "tool_name": "Bash", "tool_response": {"stdout": text}}).encode()
        frame = EventFrame(version=1, id=bytes(16), ts_ns=time.time_ns(), payload=payload,
                           original_size=len(payload))
        rounds = args.rounds if size < 1 << 20 else max(1, args.rounds // 2)
        sparse, full, build = [], [], []
        for _ in range(rounds):  # alternating: the machine's noise falls on both alike
            sparse.append(median_ms(partial(redact._redact_text, text), 1))
            full.append(median_ms(partial(redact._redact_text_full, text), 1))
            build.append(median_ms(partial(record.build, 1, frame, time.time_ns()), 1))
        row = {"sparse_ms": round(statistics.median(sparse), 2),
               "full_ms": round(statistics.median(full), 2),
               "build_ms": round(statistics.median(build), 2)}
        row["ratio"] = round(row["full_ms"] / row["sparse_ms"], 1)
        results[name] = row
        print(f"{name:>5}: redact_text sparse {row['sparse_ms']:9.2f} ms, full pass "
              f"{row['full_ms']:9.2f} ms ({row['ratio']}x); record.build "
              f"{row['build_ms']:9.2f} ms")
    print(json.dumps({"benchmark": "redact", "results": results}))


if __name__ == "__main__":
    main()
