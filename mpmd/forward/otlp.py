"""OTLP/HTTP (protobuf) logs: one LogRecord per stored event, to an OpenTelemetry Collector
(or anything speaking OTLP/HTTP) at ``/v1/logs``.

Needs the ``otel`` extra (``pip install 'mpmd[otel]'``: opentelemetry-proto and protobuf),
imported only when a forwarder of kind ``otlp`` starts; without it that forwarder is in
state ``error`` and says how to install it.

The attribute names are a stable interface, documented in docs/scaling.md.
"""

from __future__ import annotations

import getpass
import gzip
import importlib
import socket
from datetime import UTC, datetime
from typing import Any

import msgspec

from mpmd import __version__
from mpmd.errors import MissingExtra
from mpmd.forward.config import ForwardConfig
from mpmd.forward.http import Outcome

SCOPE = "mpmd"
INSTALL_HINT = "kind otlp needs the otel extra: pip install 'mpmd[otel]'"

# severity_number values of the OpenTelemetry log data model
INFO, WARN, ERROR = 9, 13, 17
_SEVERITY_TEXT = {INFO: "INFO", WARN: "WARN", ERROR: "ERROR"}
FAILURE_TYPES = frozenset({"PostToolUseFailure", "StopFailure"})
PERMISSION_TYPES = frozenset({"PermissionRequest", "PermissionDenied"})
BAD_STATUSES = frozenset({"malformed", "truncated", "schema_mismatch", "not_object", "empty"})

# stored event field -> attribute, for the plain strings and numbers
_STRING_ATTRS = (
    ("id", "mpmd.event.id"),
    ("event_type", "mpmd.event.type"),
    ("session_id", "session.id"),
    ("agent_id", "mpmd.agent.id"),
    ("source", "mpmd.source"),
    ("status", "mpmd.status"),
    ("error", "mpmd.error"),
    ("tool_name", "mpmd.tool.name"),
    ("tool_use_id", "mpmd.tool.use_id"),
    ("operation", "mpmd.operation"),
    ("risk", "mpmd.risk"),
    ("risk_reason", "mpmd.risk.reason"),
    ("file_path", "file.path"),
    ("cwd", "mpmd.cwd"),
)
_INT_ATTRS = (
    ("seq", "mpmd.event.seq"),
    ("content_length", "mpmd.content_length"),
    ("redactions", "mpmd.redactions"),
    ("original_size", "mpmd.original_size"),
)
_DECISION_ATTRS = (
    ("action", "mpmd.decision.action"),
    ("rule", "mpmd.decision.rule"),
    ("reason", "mpmd.decision.reason"),
)

_decoder = msgspec.json.Decoder(dict[str, Any])


def _proto() -> tuple[Any, Any, Any, Any]:
    try:
        return tuple(importlib.import_module(f"opentelemetry.proto.{name}") for name in (
            "collector.logs.v1.logs_service_pb2", "logs.v1.logs_pb2", "common.v1.common_pb2",
            "resource.v1.resource_pb2"))  # type: ignore[return-value]
    except ImportError as exc:
        raise MissingExtra(f"{INSTALL_HINT} ({exc})") from None


def iso_ns(stamp: object) -> int:
    """Nanoseconds since the epoch of an ISO 8601 timestamp, exactly (no float); 0 if it
    is not one."""
    if not isinstance(stamp, str):
        return 0
    try:
        dt = datetime.fromisoformat(stamp)
    except ValueError:
        return 0
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return ((delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1000


def severity(event: dict[str, Any]) -> int:
    """ERROR for failures (a failed tool call or turn, a payload mpmd could not read as
    intended); WARN for permission events, denials by a rule and risk above low; INFO."""
    if event.get("event_type") in FAILURE_TYPES or event.get("status") in BAD_STATUSES:
        return ERROR
    decision = event.get("decision")
    if event.get("event_type") in PERMISSION_TYPES or event.get("risk") in ("medium", "high") \
            or (isinstance(decision, dict) and decision.get("action") == "deny"):
        return WARN
    return INFO


def cut_utf8(data: bytes, limit: int) -> bytes:
    """At most ``limit`` bytes of UTF-8 text, not cutting a character in two."""
    if len(data) <= limit:
        return data
    return data[:limit].decode("utf-8", "ignore").encode()


def attributes(event: dict[str, Any], payload_max_bytes: int) -> dict[str, str | int | bool]:
    """The attributes of an event's LogRecord, as plain values (the mapping's one place)."""
    out: dict[str, str | int | bool] = {}
    for key, name in _STRING_ATTRS:
        value = event.get(key)
        if isinstance(value, str) and value:
            out[name] = value
    for key, name in _INT_ATTRS:
        value = event.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            out[name] = value
    decision = event.get("decision")
    if isinstance(decision, dict):
        for key, name in _DECISION_ATTRS:
            value = decision.get(key)
            if isinstance(value, str) and value:
                out[name] = value
    if payload_max_bytes > 0:
        if "payload" in event:
            data = msgspec.json.encode(event["payload"])
        elif isinstance(event.get("raw"), str):
            data = event["raw"].encode()
        else:
            data = b""
        if data:
            cut = cut_utf8(data, payload_max_bytes)
            out["mpmd.payload"] = cut.decode()
            if len(cut) < len(data):
                out["mpmd.payload.truncated"] = True
    return out


def resource_attributes(cfg: ForwardConfig) -> dict[str, str]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = ""
    base = {"service.name": "mpmd", "service.version": __version__,
            "host.name": socket.gethostname(), "user.name": user}
    return {k: v for k, v in {**base, **cfg.resource}.items() if v}


class OtlpSender:
    content_type = "application/x-protobuf"

    def __init__(self, cfg: ForwardConfig) -> None:
        self.cfg = cfg
        (self._service, self._logs, self._common, self._resource) = _proto()
        self.resource = resource_attributes(cfg)

    def _value(self, value: str | int | bool) -> Any:
        any_value = self._common.AnyValue
        if isinstance(value, bool):
            return any_value(bool_value=value)
        if isinstance(value, int):
            return any_value(int_value=value)
        return any_value(string_value=value)

    def _kvs(self, attrs: dict[str, str | int | bool]) -> list[Any]:
        kv = self._common.KeyValue
        return [kv(key=k, value=self._value(v)) for k, v in attrs.items()]

    def record(self, line: bytes) -> Any:
        event = _decoder.decode(line)
        sev = severity(event)
        body = event.get("summary") or event.get("event_type") or ""
        return self._logs.LogRecord(
            time_unix_nano=iso_ns(event.get("timestamp")),
            observed_time_unix_nano=iso_ns(event.get("received_at")),
            severity_number=sev, severity_text=_SEVERITY_TEXT[sev],
            body=self._common.AnyValue(string_value=str(body)),
            attributes=self._kvs(attributes(event, self.cfg.payload_max_bytes)))

    def request(self, lines: list[bytes]) -> Any:
        return self._service.ExportLogsServiceRequest(resource_logs=[
            self._logs.ResourceLogs(
                resource=self._resource.Resource(attributes=self._kvs(dict(self.resource))),
                scope_logs=[self._logs.ScopeLogs(
                    scope=self._common.InstrumentationScope(name=SCOPE, version=__version__),
                    log_records=[self.record(line) for line in lines])])])

    def encode(self, lines: list[bytes]) -> tuple[bytes, dict[str, str]]:
        body = self.request(lines).SerializeToString()
        if self.cfg.compression == "gzip":
            # OTLP/HTTP receivers take gzip (the Collector's default): ~5 us an event
            # against the ~55 us of encoding, for a request 5-30x smaller.
            return gzip.compress(body, 6), {"Content-Encoding": "gzip"}
        return body, {}

    def accepted(self, body: bytes, count: int) -> Outcome:
        """A 2xx: delivered; a partial success's rejected records are counted, not sent
        again (the receiver said they cannot be taken)."""
        if not body:
            return Outcome("ok")
        try:
            resp = self._service.ExportLogsServiceResponse.FromString(body)
        except Exception:  # noqa: BLE001 (protobuf's DecodeError; 2xx is success anyway)
            return Outcome("ok")
        partial = resp.partial_success
        rejected = min(int(partial.rejected_log_records), count)
        return Outcome("ok", partial.error_message if rejected else "", rejected=rejected)
