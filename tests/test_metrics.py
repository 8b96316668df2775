"""/metrics: the Prometheus text format, from a real daemon, read back with
prometheus_client's own parser."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from mpmd.serve.metrics import latency_family
from mpmd.storage.latency import LATENCY_BOUNDS_S, LatencyHistogram
from tests.utils import (
    Daemon,
    fixture_payloads,
    journal_events,
    run_hook,
    send_events,
    status,
    wait_until,
)


def scrape(home: Path, token: str | None = "right") -> tuple[int, str]:
    info = status(home)
    real = info["viewer_url"].split("#token=")[1]
    headers = {} if token is None else {
        "Authorization": f"Bearer {real if token == 'right' else token}"}
    request = urllib.request.Request(f"http://127.0.0.1:{info['viewer_port']}/metrics",
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_the_histogram_buckets_and_percentiles() -> None:
    h = LatencyHistogram()
    assert h.percentiles_ms((50, 99)) == {"p50": None, "p99": None}
    for ms in (0.5, 0.5, 3, 3, 3, 40, 7000):
        h.observe_ns(int(ms * 1e6))
    h.observe_ns(-5)  # a hook clock a little ahead: counted as 0
    family = latency_family(h)
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}
    assert buckets["0.001"] == 3 and buckets["0.005"] == 6 and buckets["0.05"] == 7
    assert buckets["5.0"] == 7 and buckets["+Inf"] == 8
    assert len(buckets) == len(LATENCY_BOUNDS_S) + 1
    assert h.percentiles_ms((50, 99)) == {"p50": 5.0, "p99": None}  # p99 past the last bound


def test_metrics_from_a_real_daemon(home: Path) -> None:
    with Daemon(home):
        for payload in fixture_payloads()[:3]:
            assert run_hook(home, payload).returncode == 0
        send_events(home, fixture_payloads())
        with socket.socket(socket.AF_UNIX) as s:  # a stream that breaks the wire contract
            s.connect(str(home / "mpmd.sock"))
            s.sendall(b"\x00\x00\x00\x05hello")
        wait_until(lambda: status(home)["counters"].get("rejected_invalid", 0) == 1
                   and status(home)["index_last_seq"] == 41, "rejected, and all indexed")

        assert scrape(home, token=None)[0] == 403
        assert scrape(home, token="wrong")[0] == 403
        code, text = scrape(home)
        assert code == 200, text
        got = samples(text)

        stored = journal_events(home)
        by_type = Counter(e["event_type"] for e in stored)
        for kind, n in by_type.items():
            assert got[("mpmd_events_total", (("event_type", kind),))] == n
        assert got[("mpmd_events_stored_total", ())] == len(stored) == 41
        assert got[("mpmd_hook_to_ring_seconds_count", ())] == 41
        assert got[("mpmd_hook_to_ring_seconds_bucket", (("le", "+Inf"),))] == 41
        assert got[("mpmd_frames_rejected_total", (("reason", "invalid"),))] == 1
        assert got[("mpmd_journal_last_seq", ())] == 41
        assert got[("mpmd_index_behind_events", ())] == 0
        assert got[("mpmd_spool_pending", ())] == 0
        assert got[("mpmd_ring_capacity_bytes", ())] > 0
        info = status(home)
        assert info["hook_to_ring_ms"]["p50"] is not None
        assert json.dumps(info)  # the status that feeds it stays plain JSON


def test_status_shows_the_latency_in_short(home: Path) -> None:
    from tests.utils import mpmd_cli

    with Daemon(home):
        assert "hook to ring               no events yet" in mpmd_cli(home, "status").stdout
        send_events(home, fixture_payloads())
        line = next(x for x in mpmd_cli(home, "status").stdout.splitlines()
                    if "hook to ring" in x)
        assert "p50 ≤ " in line and "/metrics" in line, line


def test_a_forwarder_that_cannot_deliver_shows_its_backlog(home: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    secret = home / "webhook.secret"
    secret.write_text("s3cret")
    secret.chmod(0o600)
    (home / "config.toml").write_text(
        f'[[forward]]\nname = "audit"\nkind = "webhook"\nurl = "http://127.0.0.1:{port}/"\n'
        'secret_file = "webhook.secret"\n')
    with Daemon(home):
        send_events(home, fixture_payloads())
        wait_until(lambda: status(home)["forward"]["audit"]["failures"] > 0, "a failed try")
        got = samples(scrape(home)[1])
        assert got[("mpmd_forward_backlog_events", (("forwarder", "audit"),))] == 38
        assert got[("mpmd_forward_delivered_total", (("forwarder", "audit"),))] == 0
        assert got[("mpmd_forward_failures_total", (("forwarder", "audit"),))] >= 1
        states = {state: got[("mpmd_forward_state", (("forwarder", "audit"), ("state", state)))]
                  for state in ("ok", "retrying", "open", "error")}
        assert sum(states.values()) == 1 and states["ok"] == 0
        from tests.utils import mpmd_cli

        line = next(x for x in mpmd_cli(home, "status").stdout.splitlines()
                    if x.strip().startswith("forwarders"))
        assert "audit" in line and "38 behind" in line, line


def test_every_counter_is_named_once_and_as_it_reads() -> None:
    from mpmd.counters import Count

    names = {k: v for k, v in vars(Count).items() if k.isupper()}
    assert all(value == name.lower() for name, value in names.items()), names
    assert len(set(names.values())) == len(names)
