"""The forwarders' settings: the ``[[forward]]`` tables of config.toml.

Each table is checked on its own. A table that is wrong does not stop the daemon nor the
other forwarders: it becomes a forwarder in state ``error`` whose ``last_error`` names the
table and the key (``mpmd status --json`` → ``forward``), the way an invalid policy does.

    [[forward]]
    name = "team-collector"       # [A-Za-z0-9_.-], unique; names the cursor file
    kind = "otlp"                 # or "webhook"
    url = "http://collector.example:4318/v1/logs"
    headers = { "x-api-key" = "..." }
    batch = 500
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mpmd.config import Settings, bounded_number
from mpmd.errors import ForwardConfigError

KINDS = ("otlp", "webhook")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_HEADER_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP token


@dataclass(frozen=True)
class ForwardConfig:
    name: str
    kind: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    batch: int = 500  # events a request at most
    linger_s: float = 0.5  # with fewer than `batch` events, wait this long for more
    timeout_s: float = 10.0  # one request: connect, send, answer
    backoff_s: float = 0.5  # the first retry's delay, doubled each failure (with jitter)
    max_backoff_s: float = 60.0
    breaker_failures: int = 0  # consecutive failures that open the breaker (0: none)
    breaker_cooldown_s: float = 60.0  # open this long, then one trial request
    payload_max_bytes: int = 8192  # otlp: mpmd.payload is cut to this many bytes
    compression: str = "gzip"  # otlp: "gzip" (Content-Encoding, ~5 us an event) or "none"
    resource: dict[str, str] = field(default_factory=dict)  # otlp: extra resource attributes
    secret_file: Path | None = None  # webhook: the HMAC-SHA256 key
    ca_file: Path | None = None  # https with a private CA

    @property
    def safe_url(self) -> str:
        return safe_url(self.url)


@dataclass(frozen=True)
class Invalid:
    """A table that could not be used, shown in the status as a forwarder in error."""

    name: str
    kind: str
    url: str
    error: str


# key: (type, low, high); type "str", "int", "float", "path", "table"
_KEYS: dict[str, tuple[str, float, float]] = {
    "name": ("str", 0, 0),
    "kind": ("str", 0, 0),
    "url": ("str", 0, 0),
    "headers": ("table", 0, 0),
    "resource": ("table", 0, 0),
    "batch": ("int", 1, 10_000),
    "linger_s": ("float", 0, 60),
    "timeout_s": ("float", 0.1, 600),
    "backoff_s": ("float", 0.001, 3600),
    "max_backoff_s": ("float", 0.001, 86_400),
    "breaker_failures": ("int", 0, 1_000_000),
    "breaker_cooldown_s": ("float", 0.001, 86_400),
    "payload_max_bytes": ("int", 0, 4 * 1024 * 1024),
    "compression": ("str", 0, 0),
    "secret_file": ("path", 0, 0),
    "ca_file": ("path", 0, 0),
}
_DEFAULT_BREAKER = {"otlp": 0, "webhook": 5}


def safe_url(url: str) -> str:
    """The URL without what may be a credential: user and password, query string."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "(unparsable URL)"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def from_settings(settings: Settings) -> tuple[list[ForwardConfig], list[Invalid]]:
    """The forwarders config.toml declares (read by mpmd.config.load): those usable, and
    those in error."""
    return parse(settings.forward_tables, settings.config_dir)


def parse(tables: Any, config_dir: Path) -> tuple[list[ForwardConfig], list[Invalid]]:
    if not isinstance(tables, list):
        return [], [Invalid("(config)", "", "", "forward must be an array of tables: "
                                                "write each forwarder as [[forward]]")]
    good: list[ForwardConfig] = []
    bad: list[Invalid] = []
    seen: set[str] = set()
    for i, table in enumerate(tables, 1):
        label = f"[[forward]] #{i}"
        raw_name = table.get("name") if isinstance(table, dict) else None
        name = raw_name if isinstance(raw_name, str) and _NAME_RE.match(raw_name) \
            else f"#{i}"
        try:
            if not isinstance(table, dict):
                raise ForwardConfigError(f"{label} is not a table")
            cfg = parse_one(table, config_dir, label)
            if cfg.name in seen:
                raise ForwardConfigError(f'forward "{cfg.name}": name: another forwarder '
                                         "has that name already")
            seen.add(cfg.name)
            good.append(cfg)
        except ForwardConfigError as exc:
            t = table if isinstance(table, dict) else {}
            bad.append(Invalid(name if name not in seen else f"{name}#{i}",
                               str(t.get("kind", "")), safe_url(str(t.get("url", ""))),
                               str(exc)))
    return good, bad


def parse_one(table: dict[str, Any], config_dir: Path, label: str = "[[forward]]"
              ) -> ForwardConfig:
    name = table.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ForwardConfigError(f"{label}: name: required, 1 to 64 letters, digits, "
                                 f"'_', '.' or '-' (got {name!r})")
    where = f'forward "{name}"'
    for key in table:
        if key not in _KEYS:
            raise ForwardConfigError(f"{where}: {key}: unknown key (known: "
                                     f"{', '.join(sorted(_KEYS))})")
    kind = table.get("kind")
    if kind not in KINDS:
        raise ForwardConfigError(f"{where}: kind: must be one of {', '.join(KINDS)} "
                                 f"(got {kind!r})")
    url = table.get("url")
    if not isinstance(url, str):
        raise ForwardConfigError(f"{where}: url: required, an http:// or https:// URL")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError as exc:
        raise ForwardConfigError(f"{where}: url: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ForwardConfigError(f"{where}: url: must be an http:// or https:// URL with a "
                                 f"host (got {safe_url(url)!r})")
    values: dict[str, Any] = {"name": name, "kind": kind, "url": url,
                              "breaker_failures": _DEFAULT_BREAKER[kind]}
    for key, value in table.items():
        if key in ("name", "kind", "url"):
            continue
        typ, low, high = _KEYS[key]
        values[key] = _check(where, key, typ, low, high, value, config_dir)
    if kind == "webhook" and values.get("secret_file") is None:
        raise ForwardConfigError(f"{where}: secret_file: required for a webhook (a file "
                                 "holding the HMAC-SHA256 key, readable by you only)")
    if kind != "webhook" and "secret_file" in values:
        raise ForwardConfigError(f"{where}: secret_file: only a webhook signs its requests")
    if kind != "otlp":
        for key in ("resource", "payload_max_bytes", "compression"):
            if key in values:
                raise ForwardConfigError(f"{where}: {key}: only for kind otlp")
    if values.get("compression", "gzip") not in ("gzip", "none"):
        raise ForwardConfigError(f'{where}: compression: "gzip" or "none", not '
                                 f'{values["compression"]!r}')
    return ForwardConfig(**values)


def _check(where: str, key: str, typ: str, low: float, high: float, value: Any,
           config_dir: Path) -> Any:
    if typ == "table":
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ForwardConfigError(f'{where}: {key}: must be a table of strings, '
                                     f'{key} = {{ "a" = "b" }}')
        if key == "headers":
            for k, v in value.items():
                if not _HEADER_RE.match(k) or "\n" in v or "\r" in v:
                    raise ForwardConfigError(f"{where}: headers: {k!r} is not a valid "
                                             "header (name or value)")
        return dict(value)
    if typ == "path":
        if not isinstance(value, str) or not value:
            raise ForwardConfigError(f"{where}: {key}: must be a file name")
        path = Path(os.path.expanduser(value))
        return path if path.is_absolute() else config_dir / path
    if typ == "str":
        if not isinstance(value, str):
            raise ForwardConfigError(f"{where}: {key}: must be a string")
        return value
    try:
        return bounded_number(value, typ == "int", low, high)
    except ValueError as exc:
        raise ForwardConfigError(f"{where}: {key}: {exc}") from None


def read_secret(cfg: ForwardConfig) -> bytes:
    """The webhook's key, from its file: owner-only, not empty. Errors never show it."""
    where = f'forward "{cfg.name}": secret_file'
    assert cfg.secret_file is not None
    try:
        st = os.stat(cfg.secret_file)
        data = cfg.secret_file.read_bytes()
    except OSError as exc:
        raise ForwardConfigError(f"{where}: cannot read it ({exc.strerror})") from None
    if st.st_mode & 0o077:
        raise ForwardConfigError(f"{where}: others can read it: chmod 600 it")
    key = data.strip()
    if not key:
        raise ForwardConfigError(f"{where}: it is empty")
    return key
