"""The daemon's status, typed: one Struct that the daemon fills (``Daemon.status``), the control
socket sends, and `mpmd status`, `mpmd doctor`, /metrics and /api/status read.

Its JSON is what `mpmd status --json` prints (docs/operating.md): field names are the keys,
in this order. A daemon that is not running is described by the same Struct (``running``
false, and what the CLI can tell without it); a daemon of another version may send fields
this one does not know (ignored) or lack some (their defaults).
"""

from __future__ import annotations

import msgspec


class PolicyState(msgspec.Struct, kw_only=True):
    file: str
    state: str  # none | active | invalid | unknown
    rules: int = 0
    error: str | None = None


class ForwarderState(msgspec.Struct, kw_only=True):
    kind: str
    url: str
    cursor_seq: int | None = None
    backlog: int | None = None
    delivered: int = 0
    failures: int = 0
    skipped: int = 0
    rejected: int = 0
    state: str = "error"
    last_error: str | None = None
    last_delivery_at: float | None = None


class ModelUsageState(msgspec.Struct, kw_only=True):
    """One model's responses read off transcripts since the daemon started."""

    responses: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0  # of the priced responses


class TranscriptsState(msgspec.Struct, kw_only=True):
    """The transcript follower (mpmd.transcripts.follower): what it follows and has read."""

    worker_pid: int | None = None  # its process (mpmd.transcripts.worker)
    followed: int = 0  # transcripts followed now
    journal_seq: int = 0  # the last journal event it has looked at
    roots: list[str] = msgspec.field(default_factory=list)  # the folders it may read
    problems: dict[str, str] = msgspec.field(default_factory=dict)  # path -> why not read
    lines: int = 0
    bytes: int = 0
    usage: int = 0  # ModelUsage events made
    cost_reports: int = 0  # CostReport events made
    backfilled: int = 0  # prompts and tool calls no hook delivered, journaled from it
    late_hooks: int = 0  # hook events that came after their call was backfilled
    malformed: int = 0  # lines that were not entries as expected (passed over)
    outside_roots: int = 0  # transcripts named by hooks but outside the roots
    restarts: int = 0  # files found replaced or truncated, read again from the start
    dropped: int = 0  # transcripts no longer followed for want of room
    prices_error: str | None = None  # config.toml's [prices] refused, and why
    models: dict[str, ModelUsageState] = msgspec.field(default_factory=dict)


class NotifyTargetState(msgspec.Struct, kw_only=True):
    """One target of a notification rule (mpmd.notify.deliver.Target)."""

    url: str = ""  # schema and host only: the rest is often a secret
    state: str = "ok"  # ok, retrying
    queued: int = 0  # messages waiting in its outbox
    sent: int = 0
    failures: int = 0  # failed attempts since the notifier started
    dropped: int = 0  # messages dropped from a full outbox
    last_error: str | None = None
    last_sent_at: float | None = None


class NotifyRuleState(msgspec.Struct, kw_only=True):
    state: str = "ok"  # ok, error (the table cannot be used: error says why)
    on: list[str] = msgspec.field(default_factory=list)
    error: str | None = None


class NotifyState(msgspec.Struct, kw_only=True):
    """The notifier (mpmd.notify): its rules, its targets, how far it has read."""

    worker_pid: int | None = None  # its process (mpmd.notify.worker)
    running: bool = False
    cursor_seq: int = 0
    backlog: int = 0  # journal events it has not read yet
    last_error: str | None = None
    rules: dict[str, NotifyRuleState] = msgspec.field(default_factory=dict)
    targets: dict[str, NotifyTargetState] = msgspec.field(default_factory=dict)
    # Not sent, and why: quiet (in quiet hours), stale (read too late), dropped (past a
    # rule's backlog).
    counts: dict[str, int] = msgspec.field(default_factory=dict)


class TaskFailure(msgspec.Struct, kw_only=True):
    failures: int = 0
    last_error: str = ""
    at: str = ""


class Status(msgspec.Struct, kw_only=True):
    running: bool = False
    hung: bool = False  # not running: a process holds the lock but does not answer
    pid: int | None = None
    version: str | None = None
    socket: str | None = None
    journal_dir: str | None = None
    spool_dir: str | None = None
    events_total: int = 0
    next_seq: int | None = None
    journal_last_seq: int | None = None
    spool_pending: int = 0
    ring_used_bytes: int | None = None
    ring_capacity_bytes: int | None = None
    journal_bytes: int | None = None
    journal_segments: int | None = None
    hook_to_ring_ms: dict[str, float | None] = msgspec.field(default_factory=dict)
    index_path: str | None = None
    index_last_seq: int | None = None
    index_worker_pid: int | None = None
    connections_open: int = 0
    http_url: str | None = None
    http_port: int | None = None
    http_connections_open: int = 0
    http_refused: dict[str, int] = msgspec.field(default_factory=dict)
    http_error: str | None = None
    http_port_held: bool = False
    http_loss_risk: str | None = None
    remote_waiting: int = 0
    forward: dict[str, ForwarderState] = msgspec.field(default_factory=dict)
    policy: PolicyState | None = None
    transcripts: TranscriptsState | None = None
    notify: NotifyState | None = None  # None: no [[notify]] rule in config.toml
    viewer_url: str | None = None
    ws_url: str | None = None
    viewer_port: int | None = None
    viewer_clients: int = 0
    viewer_lagging_clients: int = 0
    viewer_error: str | None = None
    task_failures: dict[str, TaskFailure] = msgspec.field(default_factory=dict)
    uptime_s: float | None = None
    counters: dict[str, int] = msgspec.field(default_factory=dict)


_decoder = msgspec.json.Decoder(Status)


def decode_status(data: bytes | str) -> Status:
    """A status as the control socket sends it (msgspec.ValidationError, DecodeError)."""
    return _decoder.decode(data)
