"""The daemon's counters, each named once (``Count``): a name mistyped where it is counted
is an AttributeError, not a new counter that status, doctor and /metrics never read.

Counters that come in families (one per reason, source or forwarder) are named by the
functions below. Every counter is in ``Daemon.status().counters``; docs/metrics.md says
which /metrics exposes and how.
"""

from __future__ import annotations

from enum import StrEnum


class Count(StrEnum):
    ACCEPT_ERRORS = "accept_errors"
    BROADCAST_UNDECODABLE = "broadcast_undecodable"
    BUSY = "busy"
    BUSY_PARTIAL_BUDGET = "busy_partial_budget"
    BUSY_STAMPED_BEFORE_WINDOW = "busy_stamped_before_window"
    CLOSED_IDLE = "closed_idle"
    CLOSED_PARTIAL_BUDGET = "closed_partial_budget"
    CONNECTIONS_TOTAL = "connections_total"
    DUPLICATES = "duplicates"
    EVENTS_TOTAL = "events_total"
    HTTP_CLOSED_IDLE = "http_closed_idle"
    HTTP_CONNECTIONS_TOTAL = "http_connections_total"
    HTTP_HELD = "http_held"
    HTTP_PEER_UID_UNCHECKED = "http_peer_uid_unchecked"
    HTTP_REQUESTS = "http_requests"
    HTTP_SPOOLED = "http_spooled"
    HTTP_TRUNCATED = "http_truncated"
    INDEX_ERRORS = "index_errors"
    INDEX_WORKER_RESTARTS = "index_worker_restarts"
    INTERNAL_ERRORS = "internal_errors"
    JOURNAL_BATCHES = "journal_batches"
    JOURNAL_ERRORS = "journal_errors"
    MEMORY_TRIMS = "memory_trims"
    PARTIAL_BYTES_HELD = "partial_bytes_held"
    PARTIAL_BYTES_PEAK = "partial_bytes_peak"
    PAUSED_FOR_UNREAD_ACKS = "paused_for_unread_acks"
    REJECTED_FOREIGN_UID = "rejected_foreign_uid"
    REJECTED_TOO_MANY_CONNECTIONS = "rejected_too_many_connections"
    REMOTE_ANSWERS_REFUSED = "remote_answers_refused"
    REMOTE_REQUESTS = "remote_requests"
    REMOTE_WITHDRAWN = "remote_withdrawn"
    SPOOL_CUT = "spool_cut"
    SPOOL_DRAINED = "spool_drained"
    SPOOL_DUPLICATES = "spool_duplicates"
    TASK_FAILURES = "task_failures"
    TURNS_YIELDED = "turns_yielded"
    VIEWER_BAD_MESSAGES = "viewer_bad_messages"
    VIEWER_BAD_REQUESTS = "viewer_bad_requests"
    VIEWER_CONNECTIONS = "viewer_connections"
    VIEWER_DROPPED_STALLED = "viewer_dropped_stalled"
    VIEWER_FILES_SERVED = "viewer_files_served"
    VIEWER_GAPS = "viewer_gaps"
    VIEWER_INDEX_ERRORS = "viewer_index_errors"
    VIEWER_LAGGED = "viewer_lagged"
    VIEWER_METRICS_SCRAPES = "viewer_metrics_scrapes"
    VIEWER_NOT_FOUND = "viewer_not_found"
    VIEWER_REFUSED_HOST = "viewer_refused_host"
    VIEWER_REFUSED_METHOD = "viewer_refused_method"
    VIEWER_REFUSED_ORIGIN = "viewer_refused_origin"
    VIEWER_REFUSED_TOKEN = "viewer_refused_token"


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


def forward(name: str, key: str) -> str:
    """A forwarder's own counters (delivered, failures, skipped, rejected)."""
    return f"forward_{name}_{key}"
