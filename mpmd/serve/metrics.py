"""The daemon's health in the Prometheus text format: `/metrics` on the viewer's server,
behind the viewer's token (docs/metrics.md: the metrics and a scrape configuration).

Nothing is instrumented on the hot path but one histogram: everything else is read at
scrape time from what the daemon counts and reports anyway (`Daemon.status()`), through a
custom collector, so a scrape every 15 s costs the daemon nothing in between.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from mpmd.counters import LINK_REFUSED_PREFIX, LINK_REFUSED_REASONS, REJECTED_PREFIX, Count
from mpmd.status import ForwarderState, NotifyState, Status, TranscriptsState
from mpmd.storage.latency import LATENCY_BOUNDS_S, LatencyHistogram

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
def latency_family(h: LatencyHistogram) -> HistogramMetricFamily:
    buckets, total = [], 0
    for bound, count in zip((*LATENCY_BOUNDS_S, None), h.counts, strict=True):
        total += count
        buckets.append(("+Inf" if bound is None else repr(bound), total))
    return HistogramMetricFamily(
        "mpmd_hook_to_ring_seconds",
        "From the hook's start (its timestamp) to the event stored in the ring.",
        buckets=buckets, sum_value=h.sum_ns / 1e9)


# (name, help) of counters read from the daemon's counters, by counter key.
_COUNTERS = {
    Count.EVENTS_TOTAL: ("mpmd_events_stored_total", "Events stored (acknowledged) since start."),
    Count.DUPLICATES: ("mpmd_events_duplicate_total", "Events sent again and recognised."),
    Count.BUSY: ("mpmd_events_busy_total", "Events answered BUSY (the hook spooled them)."),
    Count.CONNECTIONS_TOTAL: ("mpmd_connections_total", "Hook connections accepted."),
    Count.HTTP_REQUESTS: ("mpmd_http_requests_total",
                          "Requests to the http hooks endpoint (refused ones included)."),
    Count.HTTP_CONNECTIONS_TOTAL: ("mpmd_http_connections_total",
                                   "Connections to the http hooks endpoint."),
    Count.JOURNAL_ERRORS: ("mpmd_journal_errors_total", "Failed journal writes."),
    Count.INDEX_ERRORS: ("mpmd_index_errors_total", "Failed index batches or rebuilds."),
    Count.INDEX_WORKER_RESTARTS: ("mpmd_index_worker_restarts_total",
                                  "Times the index worker process was started again."),
    Count.VIEWER_LAGGED: ("mpmd_viewer_lagged_total",
                          "Times a viewer fell behind and was served from the journal."),
    Count.VIEWER_DROPPED_STALLED: ("mpmd_viewer_dropped_stalled_total",
                                   "Viewers dropped for taking nothing for too long."),
    Count.INTERNAL_ERRORS: ("mpmd_internal_errors_total", "Bugs caught without stopping."),
    Count.TASK_FAILURES: ("mpmd_task_failures_total",
                          "Times a background task failed and was started again."),
    Count.NOTIFY_WORKER_RESTARTS: ("mpmd_notify_worker_restarts_total",
                                   "Times the notifier process was started again."),
    Count.LINK_ACTIONS_TAKEN: ("mpmd_link_actions_total",
                               "Answers taken from notifications' Approve / Deny links."),
}


class DaemonCollector(Collector):
    def __init__(self, status: Callable[[], Status], latency: LatencyHistogram,
                 event_types: Counter[str]) -> None:
        self.status = status
        self.latency = latency
        self.event_types = event_types

    def collect(self) -> Iterator[Metric]:
        st = self.status()
        counters = st.counters
        by_type = CounterMetricFamily("mpmd_events", "Events seen, by event type.",
                                      labels=["event_type"])
        for kind, n in sorted(self.event_types.items()):
            by_type.add_metric([kind], n)
        yield by_type
        yield latency_family(self.latency)
        for key, (name, doc) in _COUNTERS.items():
            yield CounterMetricFamily(name.removesuffix("_total"), doc,
                                      value=counters.get(key, 0))
        rejected = CounterMetricFamily("mpmd_frames_rejected",
                                       "Frames or connections refused, by reason.",
                                       labels=["reason"])
        for counter, n in sorted(counters.items()):
            if counter.startswith(REJECTED_PREFIX):
                rejected.add_metric([counter.removeprefix(REJECTED_PREFIX)], n)
        yield rejected
        link_refused = CounterMetricFamily("mpmd_link_refused",
                                           "Approve / Deny links refused, by reason.",
                                           labels=["reason"])
        for reason in LINK_REFUSED_REASONS:
            link_refused.add_metric([reason], counters.get(LINK_REFUSED_PREFIX + reason, 0))
        yield link_refused
        refused = CounterMetricFamily("mpmd_http_refused",
                                      "Requests to the http hooks endpoint refused, by reason.",
                                      labels=["reason"])
        for reason, n in sorted(st.http_refused.items()):
            refused.add_metric([reason], n)
        yield refused
        yield from _forwarder_families(st.forward)
        if st.transcripts is not None:
            yield from _transcript_families(st.transcripts)
        if st.notify is not None:
            yield from _notify_families(st.notify)
        for name, doc, value in (
            ("mpmd_ring_used_bytes", "Bytes in the ring not yet taken by every consumer.",
             st.ring_used_bytes),
            ("mpmd_ring_capacity_bytes", "The ring's size.", st.ring_capacity_bytes),
            ("mpmd_journal_bytes", "The journal's bytes on disk.", st.journal_bytes),
            ("mpmd_journal_segments", "The journal's segment files.",
             st.journal_segments),
            ("mpmd_journal_last_seq", "The seq of the newest journaled event.",
             st.journal_last_seq),
            ("mpmd_spool_pending", "Spooled events waiting to be taken in.",
             st.spool_pending),
            ("mpmd_index_behind_events", "Journaled events the search index has not yet.",
             max(0, (st.journal_last_seq or 0) - (st.index_last_seq or 0))),
            ("mpmd_viewer_clients", "Connected viewers.", st.viewer_clients),
            ("mpmd_viewer_lagging_clients", "Viewers being served from the journal now.",
             st.viewer_lagging_clients),
            ("mpmd_remote_requests_waiting", "Permission requests held for the viewer.",
             st.remote_waiting),
            ("mpmd_connections_open", "Hook connections open.", st.connections_open),
            ("mpmd_http_connections_open", "Connections to the http hooks endpoint open.",
             st.http_connections_open),
            ("mpmd_uptime_seconds", "Seconds since the daemon started.", st.uptime_s),
        ):
            if value is not None:
                yield GaugeMetricFamily(name, doc, value=value)


_FORWARD_COUNTERS = (
    ("delivered", "Events a forwarder delivered."),
    ("failures", "Failed delivery attempts (each is retried)."),
    ("skipped", "Events retention deleted before a forwarder delivered them."),
    ("rejected", "Events a receiver refused for good (dropped after a split)."),
)
FORWARD_STATES = ("ok", "retrying", "open", "error")


def _forwarder_families(forward: dict[str, ForwarderState]) -> Iterator[Metric]:
    """Per forwarder (docs/scaling.md): its backlog, what it delivered, failed, skipped or
    had refused, and its state (1 for the state it is in)."""
    backlog = GaugeMetricFamily("mpmd_forward_backlog_events",
                                "Journaled events a forwarder has not delivered yet.",
                                labels=["forwarder"])
    counters = {key: CounterMetricFamily(f"mpmd_forward_{key}", doc, labels=["forwarder"])
                for key, doc in _FORWARD_COUNTERS}
    state = GaugeMetricFamily("mpmd_forward_state", "1 for the state a forwarder is in.",
                              labels=["forwarder", "state"])
    for name, f in sorted(forward.items()):
        if f.backlog is not None:
            backlog.add_metric([name], f.backlog)
        for key, family in counters.items():
            family.add_metric([name], getattr(f, key))
        for s in FORWARD_STATES:
            state.add_metric([name, s], 1 if f.state == s else 0)
    yield backlog
    yield from counters.values()
    yield state


_NOTIFY_COUNTERS = (
    ("sent", "Notifications a target took."),
    ("failures", "Failed attempts to notify a target (each is retried)."),
    ("dropped", "Notifications dropped from a target's full outbox."),
)
NOTIFY_STATES = ("ok", "retrying")


def _notify_families(n: NotifyState) -> Iterator[Metric]:
    """The notifier (docs/notify.md): per target what it sent, failed or dropped, what
    waits and its state; what was not sent and why; how far behind the journal it is."""
    labels = ["target"]
    counters = {key: CounterMetricFamily(f"mpmd_notify_{key}", doc, labels=labels)
                for key, doc in _NOTIFY_COUNTERS}
    queued = GaugeMetricFamily("mpmd_notify_queued", "Notifications waiting for a target.",
                               labels=labels)
    state = GaugeMetricFamily("mpmd_notify_state", "1 for the state a target is in.",
                              labels=["target", "state"])
    for name, t in sorted(n.targets.items()):
        for key, family in counters.items():
            family.add_metric([name], getattr(t, key))
        queued.add_metric([name], t.queued)
        for s in NOTIFY_STATES:
            state.add_metric([name, s], 1 if t.state == s else 0)
    yield from counters.values()
    yield queued
    yield state
    not_sent = CounterMetricFamily("mpmd_notify_not_sent",
                                   "Notices not sent: in quiet hours, read too late, or "
                                   "past a rule's backlog.", labels=["reason"])
    for reason in ("quiet", "stale", "dropped"):
        not_sent.add_metric([reason], n.counts.get(reason, 0))
    yield not_sent
    yield GaugeMetricFamily("mpmd_notify_backlog_events",
                            "Journaled events the notifier has not read yet.", value=n.backlog)
    yield GaugeMetricFamily("mpmd_notify_rules_invalid",
                            "[[notify]] tables that cannot be used.",
                            value=sum(1 for r in n.rules.values() if r.state != "ok"))


_TOKEN_KINDS = (("input", "input_tokens"), ("output", "output_tokens"),
                ("cache_read", "cache_read_tokens"), ("cache_write", "cache_write_tokens"))


def _transcript_families(t: TranscriptsState) -> Iterator[Metric]:
    """What the transcript follower read (docs/transcripts.md): tokens and cost by model,
    and how the following goes."""
    responses = CounterMetricFamily("mpmd_model_responses",
                                    "API responses read off transcripts, by model.",
                                    labels=["model"])
    tokens = CounterMetricFamily("mpmd_model_tokens", "Tokens of those responses, by model "
                                 "and kind (input, output, cache_read, cache_write).",
                                 labels=["model", "kind"])
    usd = CounterMetricFamily("mpmd_model_cost_usd", "mpmd's price of those responses in "
                              "US dollars, by model (responses with no price add nothing).",
                              labels=["model"])
    for model, m in sorted(t.models.items()):
        responses.add_metric([model], m.responses)
        for kind, key in _TOKEN_KINDS:
            tokens.add_metric([model, kind], getattr(m, key))
        usd.add_metric([model], m.cost_usd)
    yield responses
    yield tokens
    yield usd
    yield CounterMetricFamily("mpmd_transcript_backfilled",
                              "Prompts and tool calls no hook delivered, journaled from "
                              "their transcript.", value=t.backfilled)
    yield CounterMetricFamily("mpmd_transcript_late_hooks",
                              "Hook events that came after their call was backfilled.",
                              value=t.late_hooks)
    yield GaugeMetricFamily("mpmd_transcripts_followed", "Transcripts followed now.",
                            value=t.followed)
    yield GaugeMetricFamily("mpmd_transcripts_unread", "Transcripts named by hooks that "
                            "cannot be read (status: transcripts.problems).",
                            value=len(t.problems))


def registry(collector: DaemonCollector) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(collector)
    return reg


def exposition(reg: CollectorRegistry) -> bytes:
    return generate_latest(reg)
