"""Forwarders: copies of the journal's events to an OpenTelemetry Collector (OTLP/HTTP) or
a webhook, each following the journal from a cursor of its own (docs/scaling.md)."""

from mpmd.forward.runner import Forwarders, problems

__all__ = ["Forwarders", "problems"]
