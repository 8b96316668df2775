"""The daemon's counters, each named once (``Count``): a name mistyped where it is counted
is an AttributeError (and a mypy error), not a new counter that status, doctor and /metrics
never read. Plain string constants, not an Enum: counting is on the per-event path, where
an Enum member costs a slower lookup and a key that is not a plain str.

Counters that come in families (one per reason, source or forwarder) are named by the
functions below. Every counter is in ``Daemon.status().counters``; docs/metrics.md says
which /metrics exposes and how.
"""

from __future__ import annotations

from typing import Final


class Count:
    ACCEPT_ERRORS: Final = "accept_errors"
    BROADCAST_UNDECODABLE: Final = "broadcast_undecodable"
    BUSY: Final = "busy"
    BUSY_PARTIAL_BUDGET: Final = "busy_partial_budget"
    BUSY_STAMPED_BEFORE_WINDOW: Final = "busy_stamped_before_window"
    CLOSED_IDLE: Final = "closed_idle"
    CLOSED_PARTIAL_BUDGET: Final = "closed_partial_budget"
    CONNECTIONS_TOTAL: Final = "connections_total"
    DUPLICATES: Final = "duplicates"
    EVENTS_TOTAL: Final = "events_total"
    HTTP_CLOSED_IDLE: Final = "http_closed_idle"
    HTTP_CONNECTIONS_TOTAL: Final = "http_connections_total"
    HTTP_HELD: Final = "http_held"
    HTTP_PEER_UID_UNCHECKED: Final = "http_peer_uid_unchecked"
    HTTP_REQUESTS: Final = "http_requests"
    HTTP_SPOOLED: Final = "http_spooled"
    HTTP_TRUNCATED: Final = "http_truncated"
    INDEX_ERRORS: Final = "index_errors"
    INDEX_WORKER_RESTARTS: Final = "index_worker_restarts"
    INTERNAL_ERRORS: Final = "internal_errors"
    JOURNAL_BATCHES: Final = "journal_batches"
    JOURNAL_ERRORS: Final = "journal_errors"
    LINK_ACTIONS_TAKEN: Final = "link_actions_taken"
    MEMORY_TRIMS: Final = "memory_trims"
    NOTIFY_WORKER_RESTARTS: Final = "notify_worker_restarts"
    PARTIAL_BYTES_HELD: Final = "partial_bytes_held"
    PARTIAL_BYTES_PEAK: Final = "partial_bytes_peak"
    PAUSED_FOR_UNREAD_ACKS: Final = "paused_for_unread_acks"
    REJECTED_FOREIGN_UID: Final = "rejected_foreign_uid"
    REJECTED_TOO_MANY_CONNECTIONS: Final = "rejected_too_many_connections"
    REMOTE_ANSWERS_REFUSED: Final = "remote_answers_refused"
    REMOTE_REQUESTS: Final = "remote_requests"
    REMOTE_WITHDRAWN: Final = "remote_withdrawn"
    SPOOL_CUT: Final = "spool_cut"
    SPOOL_DRAINED: Final = "spool_drained"
    SPOOL_DUPLICATES: Final = "spool_duplicates"
    TASK_FAILURES: Final = "task_failures"
    TRANSCRIPT_WORKER_RESTARTS: Final = "transcript_worker_restarts"
    TURNS_YIELDED: Final = "turns_yielded"
    VIEWER_BAD_MESSAGES: Final = "viewer_bad_messages"
    VIEWER_BAD_REQUESTS: Final = "viewer_bad_requests"
    VIEWER_CONNECTIONS: Final = "viewer_connections"
    VIEWER_DROPPED_STALLED: Final = "viewer_dropped_stalled"
    VIEWER_FILES_SERVED: Final = "viewer_files_served"
    VIEWER_GAPS: Final = "viewer_gaps"
    VIEWER_INDEX_ERRORS: Final = "viewer_index_errors"
    VIEWER_LAGGED: Final = "viewer_lagged"
    VIEWER_METRICS_SCRAPES: Final = "viewer_metrics_scrapes"
    VIEWER_NOT_FOUND: Final = "viewer_not_found"
    VIEWER_REFUSED_HOST: Final = "viewer_refused_host"
    VIEWER_REFUSED_METHOD: Final = "viewer_refused_method"
    VIEWER_REFUSED_ORIGIN: Final = "viewer_refused_origin"
    VIEWER_REFUSED_TOKEN: Final = "viewer_refused_token"


def events_from(source: str) -> str:
    """Events stored, by where they came from (hook, http, spool, daemon)."""
    return f"events_{source}"


REJECTED_PREFIX = "rejected_"
HTTP_REFUSED_PREFIX = "http_refused_"


def rejected(reason: str) -> str:
    """Frames or connections of the hook socket refused, by reason."""
    return REJECTED_PREFIX + reason


def http_refused(reason: str) -> str:
    """Requests to the http endpoint refused, by reason (docs/security.md)."""
    return HTTP_REFUSED_PREFIX + reason


def remote_answers(answered_by: str) -> str:
    """Requests held for a viewer, by how they ended."""
    return f"remote_answers_{answered_by}"


LINK_REFUSED_PREFIX = "link_refused_"
LINK_REFUSED_REASONS = ("invalid", "expired", "used", "gone")


def link_refused(reason: str) -> str:
    """Requests to the viewer's /act/ links refused, by reason (invalid, expired, used,
    gone: mpmd.serve.viewer)."""
    return LINK_REFUSED_PREFIX + reason


def forward(name: str, key: str) -> str:
    """A forwarder's own counters (delivered, failures, skipped, rejected)."""
    return f"forward_{name}_{key}"
