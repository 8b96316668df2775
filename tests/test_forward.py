"""Forwarders (mpmd.forward): the pure parts (config, OTLP mapping, backoff, breaker,
cursor), a forwarder thread against a fake poster, and end to end: a real daemon, a real
OTLP/HTTP receiver decoding opentelemetry-proto messages and a webhook receiver checking
the HMAC, with every event checked by id across an outage and a restart."""

from __future__ import annotations

import gzip
import json
import os
import stat
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest

from mpmd import config
from mpmd.config import Settings
from mpmd.forward import config as fconfig
from mpmd.forward import cursor as fcursor
from mpmd.forward import otlp
from mpmd.forward.http import Outcome, classify, retry_after
from mpmd.forward.runner import Backoff, Breaker, Forwarder, Forwarders, problems
from mpmd.forward.webhook import DELIVERY_HEADER, SIGNATURE_HEADER, sign, verify
from mpmd.storage.journal import Journal
from tests.utils import Daemon, fixture_payloads, journal_events, send_events, status, wait_until

logs_service_pb2 = pytest.importorskip(
    "opentelemetry.proto.collector.logs.v1.logs_service_pb2")


# ---- config ----------------------------------------------------------------------------

def parse(tables: Any, tmp_path: Path) -> tuple[list[fconfig.ForwardConfig],
                                                list[fconfig.Invalid]]:
    return fconfig.parse(tables, tmp_path)


def test_config_parses_both_kinds_with_defaults(tmp_path):
    good, bad = parse([
        {"name": "team", "kind": "otlp", "url": "http://collector:4318/v1/logs",
         "headers": {"x-api-key": "k"}, "batch": 200, "resource": {"team": "a"}},
        {"name": "audit", "kind": "webhook", "url": "https://hooks.example/mpmd",
         "secret_file": "webhook.secret", "timeout_s": 3},
    ], tmp_path)
    assert bad == []
    team, audit = good
    assert (team.kind, team.batch, team.headers, team.breaker_failures) == \
        ("otlp", 200, {"x-api-key": "k"}, 0)
    assert team.resource == {"team": "a"}
    assert audit.secret_file == tmp_path / "webhook.secret"  # relative to the config folder
    assert audit.breaker_failures == 5 and audit.timeout_s == 3.0 and audit.batch == 500


@pytest.mark.parametrize(("table", "message"), [
    ({"kind": "otlp", "url": "http://c/v1/logs"}, "name: required"),
    ({"name": "a b", "kind": "otlp", "url": "http://c/"}, "name: required"),
    ({"name": "x", "kind": "kafka", "url": "http://c/"}, 'forward "x": kind: must be one of'),
    ({"name": "x", "kind": "otlp"}, 'forward "x": url: required'),
    ({"name": "x", "kind": "otlp", "url": "ftp://c/"}, 'forward "x": url: must be an http'),
    ({"name": "x", "kind": "otlp", "url": "http://c:99999/"}, 'forward "x": url:'),
    ({"name": "x", "kind": "otlp", "url": "http://c/", "bacth": 5}, 'forward "x": bacth: unknown'),
    ({"name": "x", "kind": "otlp", "url": "http://c/", "batch": 0}, 'forward "x": batch: must be'),
    ({"name": "x", "kind": "otlp", "url": "http://c/", "batch": True}, "batch: must be"),
    ({"name": "x", "kind": "otlp", "url": "http://c/", "timeout_s": "5"}, "timeout_s: must be"),
    ({"name": "x", "kind": "otlp", "url": "http://c/", "headers": {"a": 1}},
     "headers: must be a table of strings"),
    ({"name": "x", "kind": "otlp", "url": "http://c/", "headers": {"a b": "1"}},
     "headers: 'a b' is not a valid header"),
    ({"name": "x", "kind": "webhook", "url": "http://c/"}, 'forward "x": secret_file: required'),
    ({"name": "x", "kind": "otlp", "url": "http://c/", "secret_file": "s"},
     "secret_file: only a webhook"),
    ({"name": "x", "kind": "webhook", "url": "http://c/", "secret_file": "s",
      "resource": {}}, "resource: only for kind otlp"),
    ({"name": "x", "kind": "webhook", "url": "http://c/", "secret_file": "s",
      "compression": "gzip"}, "compression: only for kind otlp"),
    ({"name": "x", "kind": "otlp", "url": "http://c/", "compression": "zstd"},
     'compression: "gzip" or "none"'),
])
def test_config_errors_name_the_forwarder_and_the_key(tmp_path, table, message):
    good, bad = parse([table], tmp_path)
    assert good == []
    assert len(bad) == 1 and message in bad[0].error, bad[0].error


def settings_of(folder: Path) -> Settings:
    """The settings of an MPMD_HOME ``folder``, its config.toml read as the daemon reads it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MPMD_HOME", str(folder))
        return config.load()


def forwarders_of(folder: Path) -> tuple[list, list]:
    return fconfig.from_settings(settings_of(folder))


def test_config_bad_table_leaves_the_others_and_duplicates_are_refused(tmp_path):
    (tmp_path / "config.toml").write_text(
        'ring_bytes = 67108864\n'
        '[[forward]]\nname = "a"\nkind = "otlp"\nurl = "http://u:pw@c:4318/v1/logs?k=1"\n'
        '[[forward]]\nname = "a"\nkind = "otlp"\nurl = "http://d/"\n'
        '[[forward]]\nname = "b"\nkind = "otlp"\nurl = "http://c/"\nbatch = -1\n')
    good, bad = forwarders_of(tmp_path)
    assert [g.name for g in good] == ["a"]
    assert good[0].safe_url == "http://c:4318/v1/logs"  # no password, no query
    assert [b.error for b in bad] == [
        'forward "a": name: another forwarder has that name already',
        'forward "b": batch: must be a whole number from 1 to 10000 (got -1)']
    assert forwarders_of(tmp_path / "nowhere") == ([], [])
    (tmp_path / "config.toml").write_text("forward = 3\n")
    assert "array of tables" in forwarders_of(tmp_path)[1][0].error


def test_secret_file_must_be_owner_only_and_not_empty(tmp_path):
    secret = tmp_path / "s"
    cfg = fconfig.parse_one({"name": "w", "kind": "webhook", "url": "http://c/",
                             "secret_file": str(secret)}, tmp_path)
    with pytest.raises(fconfig.ForwardConfigError, match="cannot read it"):
        fconfig.read_secret(cfg)
    secret.write_bytes(b"k3y\n")
    os.chmod(secret, 0o644)
    with pytest.raises(fconfig.ForwardConfigError, match="chmod 600"):
        fconfig.read_secret(cfg)
    os.chmod(secret, 0o600)
    assert fconfig.read_secret(cfg) == b"k3y"
    secret.write_bytes(b"\n")
    with pytest.raises(fconfig.ForwardConfigError, match="empty"):
        fconfig.read_secret(cfg)


# ---- the OTLP mapping ------------------------------------------------------------------

EVENT = {
    "seq": 42, "id": "0123456789abcdef0123456789abcdef", "event_type": "PreToolUse",
    "session_id": "s-1", "timestamp": "2026-11-21T10:00:00.123456Z",
    "received_at": "2026-11-21T10:00:00.200001Z", "source": "hook", "status": "ok",
    "cwd": "/home/dev/shop", "agent_id": "ag-1", "tool_name": "Write", "tool_use_id": "tu-1",
    "operation": "write", "risk": "medium", "risk_reason": "outside the project",
    "file_path": "/etc/hosts", "content_length": 12, "summary": "Writing /etc/hosts",
    "redactions": 1, "payload": {"tool_input": {"content": "é" * 10}},
    "decision": {"action": "deny", "rule": "no-etc", "rule_index": 1, "reason": "no"},
}


def test_attributes_have_the_documented_names():
    assert otlp.attributes(EVENT, 8192) == {
        "mpmd.event.id": EVENT["id"], "mpmd.event.seq": 42, "mpmd.event.type": "PreToolUse",
        "session.id": "s-1", "mpmd.agent.id": "ag-1", "mpmd.source": "hook",
        "mpmd.status": "ok", "mpmd.tool.name": "Write", "mpmd.tool.use_id": "tu-1",
        "mpmd.operation": "write", "mpmd.risk": "medium",
        "mpmd.risk.reason": "outside the project", "file.path": "/etc/hosts",
        "mpmd.cwd": "/home/dev/shop", "mpmd.content_length": 12, "mpmd.redactions": 1,
        "mpmd.decision.action": "deny", "mpmd.decision.rule": "no-etc",
        "mpmd.decision.reason": "no",
        "mpmd.payload": json.dumps(EVENT["payload"], ensure_ascii=False,
                                   separators=(",", ":")),
    }


def test_payload_is_cut_on_a_character_boundary_and_marked():
    attrs = otlp.attributes(EVENT, 40)  # "é" is two bytes: 40 falls inside one
    payload = attrs["mpmd.payload"]
    assert isinstance(payload, str) and len(payload.encode()) <= 40
    assert attrs["mpmd.payload.truncated"] is True
    raw = otlp.attributes({"seq": 1, "raw": "not json", "status": "malformed"}, 100)
    assert raw["mpmd.payload"] == "not json" and "mpmd.payload.truncated" not in raw
    assert "mpmd.payload" not in otlp.attributes(EVENT, 0)


@pytest.mark.parametrize(("change", "expected"), [
    ({"risk": "low", "decision": None, "event_type": "PostToolUse"}, otlp.INFO),
    ({"risk": "high", "decision": None}, otlp.WARN),
    ({"risk": "low", "decision": {"action": "deny"}}, otlp.WARN),
    ({"risk": "low", "decision": None, "event_type": "PermissionRequest"}, otlp.WARN),
    ({"event_type": "PostToolUseFailure"}, otlp.ERROR),
    ({"event_type": "StopFailure"}, otlp.ERROR),
    ({"risk": "low", "status": "malformed"}, otlp.ERROR),
])
def test_severity(change, expected):
    assert otlp.severity({**EVENT, **change}) == expected


def test_iso_timestamps_become_exact_nanoseconds():
    assert otlp.iso_ns("1970-01-01T00:00:01.000001Z") == 1_000_001_000
    assert otlp.iso_ns("2026-11-21T10:00:00.123456Z") % 1_000_000_000 == 123_456_000
    assert otlp.iso_ns("yesterday") == 0 and otlp.iso_ns(None) == 0


def test_request_carries_resource_scope_and_one_record_per_event(tmp_path):
    cfg = fconfig.parse_one({"name": "o", "kind": "otlp", "url": "http://c/",
                             "resource": {"deployment.environment": "dev"}}, tmp_path)
    sender = otlp.OtlpSender(cfg)
    lines = [msgspec.json.encode(EVENT), msgspec.json.encode({**EVENT, "seq": 43})]
    body, headers = sender.encode(lines)
    assert headers == {"Content-Encoding": "gzip"}  # the default
    body = gzip.decompress(body)
    plain = otlp.OtlpSender(fconfig.parse_one(
        {"name": "o", "kind": "otlp", "url": "http://c/", "compression": "none",
         "resource": {"deployment.environment": "dev"}}, tmp_path))
    assert plain.encode(lines)[1] == {}
    assert len(plain.encode(lines)[0]) == len(body)
    req = logs_service_pb2.ExportLogsServiceRequest.FromString(body)
    (rl,) = req.resource_logs
    resource = {kv.key: kv.value.string_value for kv in rl.resource.attributes}
    assert resource["service.name"] == "mpmd" and resource["deployment.environment"] == "dev"
    assert {"host.name", "user.name", "service.version"} <= resource.keys()
    (sl,) = rl.scope_logs
    assert sl.scope.name == "mpmd"
    first, second = sl.log_records
    assert first.time_unix_nano == otlp.iso_ns(EVENT["timestamp"])
    assert first.observed_time_unix_nano == otlp.iso_ns(EVENT["received_at"])
    assert (first.severity_number, first.severity_text) == (otlp.WARN, "WARN")
    assert first.body.string_value == "Writing /etc/hosts"
    assert [kv.value.int_value for kv in second.attributes if kv.key == "mpmd.event.seq"] \
        == [43]


def test_otlp_without_the_extra_is_an_error_that_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry.proto.collector.logs.v1.logs_service_pb2",
                        None)
    cfg = fconfig.parse_one({"name": "o", "kind": "otlp", "url": "http://c/"}, tmp_path)
    f = Forwarder(cfg, tmp_path, tmp_path / "journal", lambda: 0, Counter())
    st = f.status()
    assert st["state"] == "error" and "pip install 'mpmd[otel]'" in str(st["last_error"])


# ---- HTTP answers, backoff, breaker ------------------------------------------------------

def test_answers_are_classified():
    assert classify(503, "Unavailable", {"retry-after": "7"}, b"") == \
        Outcome("retry", "HTTP 503 Unavailable", 7.0)
    assert classify(429, "Too Many", {}, b"slow down").error == "HTTP 429 Too Many: slow down"
    assert classify(400, "Bad Request", {}, b"").kind == "refused"
    assert classify(413, "Too Large", {}, b"").kind == "refused"
    assert classify(401, "Unauthorized", {}, b"").kind == "config"
    assert classify(404, "Not Found", {}, b"").kind == "config"
    assert retry_after("Thu, 01 Jan 1970 00:00:30 GMT", now=10.0) == 20.0
    assert retry_after("99999") == 3600.0 and retry_after("soon") is None


def test_backoff_doubles_to_the_cap_with_jitter_and_honours_retry_after():
    high = Backoff(0.5, 4.0, rand=lambda: 1.0)
    assert [high.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    low = Backoff(0.5, 4.0, rand=lambda: 0.0)
    assert [low.next_delay() for _ in range(4)] == [0.25, 0.5, 1.0, 2.0]
    assert low.next_delay(retry_after=30.0) == 30.0
    low.reset()
    assert low.next_delay() == 0.25


def test_breaker_opens_cools_down_and_tries_once():
    now = [100.0]
    b = Breaker(3, 10.0, clock=lambda: now[0])
    for _ in range(2):
        assert b.allow()
        b.failure()
    assert b.state == "closed"
    b.failure()
    assert b.state == "open" and not b.allow() and b.remaining() == 10.0
    now[0] += 9.5
    assert not b.allow() and b.remaining() == 0.5
    now[0] += 0.5
    assert b.allow() and b.state == "half_open"
    b.failure()  # the trial failed: open again, a full cool-down
    assert b.state == "open" and b.remaining() == 10.0
    now[0] += 10
    assert b.allow()
    b.success()
    assert b.state == "closed" and b.failures == 0 and b.allow()
    never = Breaker(0, 1.0, clock=lambda: now[0])
    for _ in range(100):
        never.failure()
    assert never.allow()


# ---- the cursor ---------------------------------------------------------------------------

def test_cursor_is_written_atomically_and_owner_only(tmp_path, monkeypatch):
    path = fcursor.cursor_path(tmp_path, "team")
    assert fcursor.read_cursor(path) is None
    fcursor.write_cursor(path, 5)
    assert fcursor.read_cursor(path) == 5
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

    def broken_write(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", broken_write)
    with pytest.raises(OSError):
        fcursor.write_cursor(path, 6)
    monkeypatch.undo()
    assert fcursor.read_cursor(path) == 5  # the old value, whole
    assert sorted(p.name for p in path.parent.iterdir()) == ["team.cursor"]

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        fcursor.write_cursor(path, 7)
    monkeypatch.undo()
    assert fcursor.read_cursor(path) == 5
    path.write_text("12x\n")
    assert fcursor.read_cursor(path) is None  # damaged: from the start, never a loss


# ---- a forwarder thread against a fake poster --------------------------------------------

class FakePoster:
    """Answers 400 to any body holding b"poison", 503 to the first ``fail`` requests."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.bodies: list[bytes] = []
        self.lock = threading.Lock()

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str, dict[str, str],
                                                                 bytes]:
        with self.lock:
            if self.fail:
                self.fail -= 1
                return 503, "Unavailable", {"retry-after": "0"}, b""
            if b"poison" in body:
                return 400, "Bad Request", {}, b"no"
            self.bodies.append(body)
            return 200, "OK", {}, b""

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def seqs(self) -> list[int]:
        with self.lock:
            return [e["seq"] for b in self.bodies for e in json.loads(b)["events"]]


def journal_with(tmp_path: Path, seqs: range, poison: int | None = None) -> Path:
    directory = tmp_path / "journal"
    j = Journal(directory)
    j.append((s, msgspec.json.encode({"seq": s, "id": f"{s:032x}",
                                      "summary": "poison" if s == poison else "ok"}))
             for s in seqs)
    j.close()
    return directory


def webhook_forwarder(tmp_path: Path, journal_dir: Path, poster: FakePoster,
                      **options: Any) -> Forwarder:
    secret = tmp_path / "secret"
    secret.write_bytes(b"k")
    os.chmod(secret, 0o600)
    cfg = fconfig.parse_one({"name": "w", "kind": "webhook", "url": "http://c/",
                             "secret_file": str(secret), "linger_s": 0, "backoff_s": 0.001,
                             "max_backoff_s": 0.002, **options}, tmp_path)
    f = Forwarder(cfg, tmp_path, journal_dir, lambda: 100, Counter())
    f._poster = poster  # type: ignore[assignment]
    return f


def run_until(f: Forwarder, cursor: int) -> None:
    f.start()
    try:
        wait_until(lambda: f.cursor == cursor, f"the cursor reached {cursor}")
    finally:
        f.request_stop()
        f.join(10)


def test_a_refused_batch_is_split_until_only_the_poison_event_is_dropped(tmp_path):
    poster = FakePoster(fail=3)
    f = webhook_forwarder(tmp_path, journal_with(tmp_path, range(1, 101), poison=37),
                          poster, batch=16)
    run_until(f, 100)
    assert poster.seqs() == [s for s in range(1, 101) if s != 37]
    st = f.status()
    assert (st["delivered"], st["rejected"], st["failures"], st["skipped"]) == (99, 1, 3, 0)
    assert f.counters["forward_w_rejected"] == 1
    assert fcursor.read_cursor(f.cursor_file) == 100


def test_events_retention_deleted_before_delivery_are_counted_as_skipped(tmp_path):
    journal_dir = journal_with(tmp_path, range(10, 21))  # 1-9 are gone
    fcursor.write_cursor(fcursor.cursor_path(tmp_path, "w"), 2)
    poster = FakePoster()
    f = webhook_forwarder(tmp_path, journal_dir, poster)
    run_until(f, 20)
    assert poster.seqs() == list(range(10, 21))
    assert f.skipped == 7 and f.counters["forward_w_skipped"] == 7


def test_a_new_forwarder_starts_at_the_journals_start_without_counting_skips(tmp_path):
    poster = FakePoster()
    f = webhook_forwarder(tmp_path, journal_with(tmp_path, range(10, 21)), poster)
    run_until(f, 20)
    assert poster.seqs() == list(range(10, 21)) and f.skipped == 0


# ---- end to end: receivers -------------------------------------------------------------

class Receiver:
    """An OTLP/HTTP logs receiver (kind "otlp", decoding ExportLogsServiceRequest) or a
    webhook receiver (kind "webhook", checking the HMAC) on 127.0.0.1, recording every
    event id that arrives, in order."""

    def __init__(self, kind: str, key: bytes = b"") -> None:
        self.kind = kind
        self.key = key
        self.lock = threading.Lock()
        self.batches: list[list[str]] = []  # ids of each recorded request
        self.records: dict[str, dict[str, Any]] = {}  # id -> attributes or event
        self.resources: list[dict[str, str]] = []
        self.problems: list[str] = []
        self.gzipped = 0  # requests that came gzip-compressed
        self.outage: int | None = None  # answer this status, recording nothing
        self.outage_requests = 0
        self.record_then_fail = 0  # record the next request(s), then answer 503
        self.failed_after_recording: list[list[str]] = []
        self.hold = False  # record the next request, then hold its answer
        self.holding = threading.Event()
        self.release = threading.Event()
        self.held: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                code = receiver.handle(self.path, dict(self.headers), body)
                if code == 0:  # held
                    receiver.release.wait(60)
                    code = 200
                reply = logs_service_pb2.ExportLogsServiceResponse().SerializeToString() \
                    if receiver.kind == "otlp" and code == 200 else b""
                try:
                    self.send_response(code)
                    self.send_header("Content-Length", str(len(reply)))
                    if code == 503:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    pass  # the forwarder gave up on this request (the daemon stopped)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/logs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            if self.outage is not None:
                self.outage_requests += 1
                return self.outage
            ids = self._decode(path, headers, body)
            if ids is None:
                return 400
            self.batches.append(ids)
            if self.record_then_fail:
                self.record_then_fail -= 1
                self.failed_after_recording.append(ids)
                return 503
            if self.hold:
                self.hold = False
                self.held = ids
                self.holding.set()
                return 0
            return 200

    def _decode(self, path: str, headers: dict[str, str], body: bytes) -> list[str] | None:
        ids: list[str] = []
        if self.kind == "otlp":
            if path != "/v1/logs" or headers.get("Content-Type") != "application/x-protobuf":
                self.problems.append(f"bad request {path} {headers}")
                return None
            if headers.get("Content-Encoding") == "gzip":  # the default: as a Collector does
                self.gzipped += 1
                body = gzip.decompress(body)
            req = logs_service_pb2.ExportLogsServiceRequest.FromString(body)
            for rl in req.resource_logs:
                self.resources.append({kv.key: kv.value.string_value
                                       for kv in rl.resource.attributes})
                for sl in rl.scope_logs:
                    for rec in sl.log_records:
                        attrs = {kv.key: getattr(kv.value, kv.value.WhichOneof("value"))
                                 for kv in rec.attributes}
                        attrs["_time"] = rec.time_unix_nano
                        attrs["_body"] = rec.body.string_value
                        ids.append(attrs["mpmd.event.id"])
                        self.records[attrs["mpmd.event.id"]] = attrs
            return ids
        if not verify(self.key, body, headers.get(SIGNATURE_HEADER, "")):
            self.problems.append("bad signature")
            return None
        events = json.loads(body)["events"]
        if headers.get(DELIVERY_HEADER) != f"{events[0]['seq']}-{events[-1]['seq']}":
            self.problems.append(f"bad delivery header {headers.get(DELIVERY_HEADER)}")
        for event in events:
            ids.append(event["id"])
            self.records[event["id"]] = event
        return ids

    def ids(self) -> list[str]:
        with self.lock:
            return [i for batch in self.batches for i in batch]

    def has_all(self, wanted: set[str]) -> bool:
        return wanted <= set(self.ids())


def duplicates(ids: list[str]) -> Counter[str]:
    return Counter({i: n - 1 for i, n in Counter(ids).items() if n > 1})


def marked(n: int, tag: str) -> list[bytes]:
    return [json.dumps({"session_id": f"s-{tag}", "hook_event_name": "UserPromptSubmit",
                        "cwd": "/home/dev/shop", "prompt": f"{tag}-{i}"}).encode()
            for i in range(n)]


def write_config(home: Path, kind: str, url: str, **extra: Any) -> None:
    lines = ["[[forward]]", 'name = "fw"', f'kind = "{kind}"', f'url = "{url}"',
             "batch = 10", "linger_s = 0", "backoff_s = 0.01", "max_backoff_s = 0.05",
             "breaker_cooldown_s = 0.05"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    (home / "config.toml").write_text("\n".join(lines) + "\n")


def journal_ids(home: Path) -> set[str]:
    return {e["id"] for e in journal_events(home)}


def all_arrive(home: Path, receiver: Receiver, seqs: list[int], what: str) -> None:
    """Wait until the journal holds the events just acked, then until the receiver has
    every event of the journal."""
    wait_until(lambda: len(journal_events(home)) >= max(seqs), "the events are journaled")
    wanted = journal_ids(home)
    wait_until(lambda: receiver.has_all(wanted), what)


def forward_state(home: Path) -> dict[str, Any]:
    return status(home)["forward"]["fw"]


@pytest.fixture(params=["otlp", "webhook"])
def receiver(request, home):
    key = b""
    if request.param == "webhook":
        key = os.urandom(32).hex().encode()
        (home / "webhook.secret").write_bytes(key + b"\n")
        os.chmod(home / "webhook.secret", 0o600)
    r = Receiver(request.param, key)
    extra = {"secret_file": "webhook.secret", "breaker_failures": 2} \
        if request.param == "webhook" else {}
    write_config(home, request.param, r.url, **extra)
    yield r
    r.close()


def test_every_event_arrives_exactly_by_id_across_an_outage_and_a_restart(home, receiver):
    daemon = Daemon(home, NO_PROXY="*").start()
    try:
        # Steady: every event once, nothing twice.
        seqs = send_events(home, fixture_payloads())
        all_arrive(home, receiver, seqs, "the fixture events arrived")
        wait_until(lambda: forward_state(home)["backlog"] == 0, "the backlog is 0")
        assert receiver.ids() and set(receiver.ids()) == journal_ids(home)
        assert duplicates(receiver.ids()) == Counter()
        st = forward_state(home)
        assert (st["state"], st["delivered"], st["cursor_seq"], st["failures"]) == \
            ("ok", len(fixture_payloads()), len(fixture_payloads()), 0)
        assert st["url"] == receiver.url
        check_content(home, receiver)

        # An outage: the receiver answers 503 (and the webhook's breaker opens).
        receiver.outage = 503
        seqs = send_events(home, marked(25, "outage"))
        wait_until(lambda: forward_state(home)["failures"] >= 3, "failures in the outage")
        st = forward_state(home)
        assert st["state"] == ("open" if receiver.kind == "webhook" else "retrying")
        assert st["backlog"] > 0 and "503" in st["last_error"]
        receiver.outage = None
        all_arrive(home, receiver, seqs, "the outage's events arrived")
        assert set(receiver.ids()) == journal_ids(home)
        assert duplicates(receiver.ids()) == Counter()  # nothing was taken during the outage

        # An answer lost after the receiver took the batch: that batch comes again.
        receiver.record_then_fail = 1
        seqs = send_events(home, marked(15, "lost-answer"))
        all_arrive(home, receiver, seqs, "the events arrived")
        (lost,) = receiver.failed_after_recording
        assert duplicates(receiver.ids()) == Counter(dict.fromkeys(lost, 1))

        # A restart while a batch is in flight: that batch, and only it, comes again.
        before = receiver.ids()
        receiver.hold = True
        send_events(home, marked(30, "restart"))
        assert receiver.holding.wait(30), "no batch came to be held"
        assert daemon.stop() == 0  # does not wait for the held answer
        receiver.release.set()
        daemon = Daemon(home, NO_PROXY="*").start()
        seqs = send_events(home, marked(12, "after-restart"))
        all_arrive(home, receiver, seqs, "every event arrived")
        assert set(receiver.ids()) == journal_ids(home)
        since = receiver.ids()[len(before):]
        assert duplicates(since) == Counter(dict.fromkeys(receiver.held, 1))
        assert receiver.problems == []
        # OTLP requests are gzipped by default (a Collector takes them so); webhooks not.
        assert (receiver.gzipped > 0) == (receiver.kind == "otlp")
        wait_until(lambda: forward_state(home)["backlog"] == 0, "the backlog is 0")
    finally:
        daemon.stop()


def check_content(home: Path, receiver: Receiver) -> None:
    for event in journal_events(home):
        got = receiver.records[event["id"]]
        if receiver.kind == "webhook":
            assert got == event  # the stored event, as it is in the journal
            continue
        assert got["mpmd.event.seq"] == event["seq"]
        assert got["mpmd.event.type"] == event["event_type"]
        assert got.get("session.id") == event.get("session_id")
        assert got.get("mpmd.tool.name") == event.get("tool_name")
        assert got["_time"] == otlp.iso_ns(event["timestamp"])
        assert got["_body"] == event.get("summary", event["event_type"])
    if receiver.kind == "otlp":
        assert {r["service.name"] for r in receiver.resources} == {"mpmd"}


def test_a_forwarder_that_is_down_does_not_hold_up_ingestion(home):
    write_config(home, "otlp", "http://127.0.0.1:9/v1/logs")  # nothing listens there
    with Daemon(home, NO_PROXY="*"):
        seqs = send_events(home, marked(600, "down"))  # every one acked STORED
        assert len(seqs) == 600
        wait_until(lambda: forward_state(home)["failures"] >= 2, "failed attempts")
        st = forward_state(home)
        assert st["backlog"] == 600 and st["cursor_seq"] == 0 and st["delivered"] == 0
        assert st["state"] == "retrying"


def test_an_invalid_forwarder_is_reported_and_the_daemon_runs(home):
    (home / "config.toml").write_text(
        '[[forward]]\nname = "bad"\nkind = "webhook"\nurl = "http://127.0.0.1:9/"\n')
    with Daemon(home):
        send_events(home, marked(3, "x"))
        st = status(home)["forward"]["bad"]
        assert st["state"] == "error" and "secret_file: required" in st["last_error"]
        assert status(home)["events_total"] == 3


def test_problems_for_doctor(tmp_path, monkeypatch):
    (tmp_path / "config.toml").write_text(
        '[[forward]]\nname = "w"\nkind = "webhook"\nurl = "http://c/"\n'
        'secret_file = "missing"\n'
        '[[forward]]\nname = "o"\nkind = "otlp"\nurl = "http://c/"\n'
        '[[forward]]\nname = "x"\nkind = "otlp"\n')
    monkeypatch.setitem(sys.modules, "opentelemetry.proto.collector.logs.v1.logs_service_pb2",
                        None)
    found = problems(settings_of(tmp_path))
    assert found[0] == 'forward "x": url: required, an http:// or https:// URL'
    assert "secret_file: cannot read it" in found[1] and "mpmd[otel]" in found[2]
    assert problems(settings_of(tmp_path / "none")) == []


def test_forwarders_object_without_config(tmp_path):
    settings = Settings(runtime_dir=tmp_path, state_dir=tmp_path, config_dir=tmp_path)
    f = Forwarders(settings, lambda: 0, Counter())
    assert f.status() == {}
    assert sign(b"k", b"body") == \
        "sha256=" + __import__("hmac").new(b"k", b"body", "sha256").hexdigest()
