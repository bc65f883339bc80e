"""``GET /metrics``: Prometheus text, from the server's own counters and from the engine's.

The server counts requests, latency, in-flight requests, the tokens its requests generated and
wasted, samples and aborted samples, and clients that went away. The engine's own counts
(``engine.stats`` and ``engine.unfinished()``) are read at scrape time, so a process watching
the server can check an abort claim from the engine itself: after a client disconnects,
``ponder_engine_generated_tokens_total`` stops growing and ``ponder_engine_unfinished_requests``
returns to 0.

    metrics = Metrics(lambda: engine)
    metrics.render()   # bytes in the Prometheus text format
"""

from __future__ import annotations

from typing import Any, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

__all__ = ["Metrics", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class _EngineCollector:
    """The engine's own counters, read when scraped."""

    def __init__(self, engine: Callable[[], Any]) -> None:
        self.engine = engine

    def collect(self):
        engine = self.engine()
        if engine is None:
            return
        stats = engine.stats
        for name, value, doc in (
            ("ponder_engine_generated_tokens", stats.generated_tokens,
             "Every token the engine decoded (its own count, aborted requests included)."),
            ("ponder_engine_requests", stats.requests, "Engine requests started (one per sample stream)."),
            ("ponder_engine_aborted_requests", stats.aborted_requests, "Engine requests that ended by abort."),
            ("ponder_engine_tokens_after_abort", stats.tokens_after_abort,
             "Tokens the engine decoded for a request after its abort was asked for."),
        ):
            family = CounterMetricFamily(name, doc)
            family.add_metric([], value)
            yield family
        unfinished = GaugeMetricFamily("ponder_engine_unfinished_requests",
                                       "Requests still running inside the engine (0 once every abort took effect).")
        unfinished.add_metric([], engine.unfinished())
        yield unfinished


class Metrics:
    """Every metric of one server (a private registry, so several servers can live in one process)."""

    def __init__(self, engine: Callable[[], Any]) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("ponder_requests", "Requests answered, by endpoint and HTTP status.",
                                ["endpoint", "status"], registry=r)
        self.in_flight = Gauge("ponder_requests_in_flight", "Generation requests being worked on now.", registry=r)
        self.latency = Histogram("ponder_request_latency_seconds", "Seconds from request to the last byte.",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.generated = Counter("ponder_generated_tokens",
                                 "Tokens generated for requests (usage.completion_tokens; cancelled requests "
                                 "count what they had streamed).", registry=r)
        self.wasted = Counter("ponder_wasted_tokens", "Tokens decoded for samples after their abort.", registry=r)
        self.samples = Counter("ponder_samples", "Samples started by controllers.", registry=r)
        self.aborted = Counter("ponder_aborted_samples", "Samples a controller (or a disconnect) aborted.",
                               registry=r)
        self.disconnects = Counter("ponder_client_disconnects",
                                   "Requests whose client went away before the answer; their samples were aborted.",
                                   registry=r)
        r.register(_EngineCollector(engine))

    def finished(self, usage: dict[str, Any]) -> None:
        """Count a request that was answered."""
        ponder = usage.get("ponder", {})
        self.generated.inc(usage.get("completion_tokens", 0))
        self.wasted.inc(ponder.get("wasted_tokens", 0))
        self.samples.inc(ponder.get("samples", 0))
        self.aborted.inc(ponder.get("aborted", 0))

    def disconnected(self, partial: dict[str, int]) -> None:
        """Count a request whose client left: every sample it had was aborted."""
        self.disconnects.inc()
        self.generated.inc(partial.get("tokens", 0))
        self.samples.inc(partial.get("samples", 0))
        self.aborted.inc(partial.get("aborted", 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)
