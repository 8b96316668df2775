"""How long events take from the hook's start to the ring: a histogram the store keeps for
every event it takes (a bisect and two additions: prometheus_client's Histogram takes a lock
per observation). /metrics renders it (mpmd.serve.metrics), `mpmd status` its percentiles.
"""

from __future__ import annotations

import bisect

# Hook started -> event in the ring, in seconds: hooks run on Claude Code's critical path,
# so the interesting part is the first few milliseconds (interpreter start-up is ~10 ms).
LATENCY_BOUNDS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 5.0)
_BOUNDS_NS = [int(b * 1e9) for b in LATENCY_BOUNDS_S]


class LatencyHistogram:
    """Counts per bucket, kept by the store for every event it takes (a bisect and two
    additions: prometheus_client's Histogram takes a lock per observation)."""

    def __init__(self) -> None:
        self.counts = [0] * (len(_BOUNDS_NS) + 1)
        self.sum_ns = 0

    def observe_ns(self, delta_ns: int) -> None:
        delta_ns = max(delta_ns, 0)  # the hook's clock may be a little ahead of ours
        self.counts[bisect.bisect_left(_BOUNDS_NS, delta_ns)] += 1
        self.sum_ns += delta_ns

    def percentiles_ms(self, points: tuple[int, ...]) -> dict[str, float | None]:
        """For `mpmd status`: the bucket bound under which each percentile falls (None past
        the last bound, or with no events yet)."""
        total = sum(self.counts)
        out: dict[str, float | None] = {}
        for p in points:
            running, found = 0, None
            for bound, count in zip(LATENCY_BOUNDS_S, self.counts, strict=False):
                running += count
                if total and running >= total * p / 100:
                    found = bound * 1000
                    break
            out[f"p{p}"] = found
        return out
