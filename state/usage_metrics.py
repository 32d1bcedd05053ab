"""Prometheus metrics fed from usage records, on a per-app CollectorRegistry."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from state.usage import RecorderStats, RequestRecord, UsageRecorder

PREFIX = "ollama2openai"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)
KNOWN_ENDPOINTS = frozenset(
    {
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/models",
        "/v1/responses",
        "/v1/responses/{id}",
        "/v1/responses/{id}/input_items",
        "/v1/messages",
        "/v1/messages/count_tokens",
    }
)
_NAME = re.compile(r"[a-z][a-z0-9_.]{0,39}")


def endpoint_label(endpoint: str) -> str:
    """A bounded label for an endpoint: client-typed unknown paths must not add series."""
    if endpoint in KNOWN_ENDPOINTS:
        return endpoint
    if endpoint.startswith("/v1/models/"):
        return "/v1/models/{id}"
    if _NAME.fullmatch(endpoint):  # a name set by the pipeline, e.g. "chat.completions"
        return endpoint
    return "other"


def model_label(rec: RequestRecord) -> str:
    """The resolved model; a name the gateway never resolved is client text, so `unknown`."""
    return rec.ollama_model or "unknown"


class Children:
    """A metric's labelled children, cached by label values.

    prometheus_client's labels() validates the values and takes a lock on every call; this
    lookup is a plain dict get once a label tuple has been seen. Only for metrics that are
    never cleared (a cleared metric would leave stale children here).
    """

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self._cache: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        """The child for these label values."""
        child = self._cache.get(values)
        if child is None:
            child = self._cache[values] = self.metric.labels(*values)
        return child


class UsageMetrics:
    """Request counters and histograms, in-flight gauge and upstream gauges for one app."""

    def __init__(self) -> None:
        # A registry per app: tests build many apps, and the global one would collide.
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            f"{PREFIX}_requests",
            "API requests by key, model, endpoint and HTTP status.",
            ["key", "model", "endpoint", "status"],
            registry=r,
        )
        self.cancelled = Counter(
            f"{PREFIX}_requests_cancelled",
            "API requests whose client disconnected before the end.",
            ["endpoint"],
            registry=r,
        )
        self.tokens = Counter(
            f"{PREFIX}_tokens",
            "Tokens by key, model and type (prompt, completion).",
            ["key", "model", "type"],
            registry=r,
        )
        self.latency = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Total request latency.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            f"{PREFIX}_time_to_first_token_seconds",
            "Time to the first generated token.",
            ["endpoint"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            f"{PREFIX}_requests_in_flight", "API requests being handled.", ["endpoint"], registry=r
        )
        self.upstream_up = Gauge(
            f"{PREFIX}_upstream_up", "1 if Ollama answered the last check, else 0.", registry=r
        )
        self.loaded_models = Gauge(
            f"{PREFIX}_upstream_loaded_models", "Models loaded in Ollama (/api/ps).", registry=r
        )
        self.model_loaded = Gauge(
            f"{PREFIX}_upstream_model_loaded",
            "1 for each model loaded in Ollama.",
            ["model"],
            registry=r,
        )
        self.model_vram = Gauge(
            f"{PREFIX}_upstream_model_vram_bytes",
            "VRAM used by a loaded model.",
            ["model"],
            registry=r,
        )
        self.upstream_up.set(0)
        self.requests_for = Children(self.requests)
        self.cancelled_for = Children(self.cancelled)
        self.tokens_for = Children(self.tokens)
        self.latency_for = Children(self.latency)
        self.ttft_for = Children(self.ttft)
        self.in_flight_for = Children(self.in_flight)
        for endpoint in KNOWN_ENDPOINTS:  # expose 0 before the first request
            self.in_flight_for(endpoint)

    def observe(self, rec: RequestRecord) -> None:
        """Count one finished request (a UsageRecorder listener)."""
        key = rec.key_name or "none"
        model = model_label(rec)
        endpoint = endpoint_label(rec.endpoint)
        self.requests_for(key, model, endpoint, str(rec.status)).inc()
        if rec.cancelled:
            self.cancelled_for(endpoint).inc()
        if rec.prompt_tokens:
            self.tokens_for(key, model, "prompt").inc(rec.prompt_tokens)
        if rec.completion_tokens:
            self.tokens_for(key, model, "completion").inc(rec.completion_tokens)
        self.latency_for(endpoint).observe(max(rec.latency_ms, 0.0) / 1000.0)
        if rec.ttft_ms is not None:
            self.ttft_for(endpoint).observe(max(rec.ttft_ms, 0.0) / 1000.0)

    def set_upstream(self, up: bool, models: list[dict[str, Any]] | None) -> None:
        """Record the result of an upstream check (models from /api/ps, None if unknown)."""
        self.upstream_up.set(1 if up else 0)
        self.model_loaded.clear()
        self.model_vram.clear()
        models = models or []
        self.loaded_models.set(len(models))
        for m in models:
            name = str(m.get("name") or m.get("model") or "")
            if not name:
                continue
            self.model_loaded.labels(name).set(1)
            vram = m.get("size_vram")
            if isinstance(vram, int | float) and not isinstance(vram, bool):
                self.model_vram.labels(name).set(vram)

    def watch_recorder(self, recorder: UsageRecorder) -> None:
        """Feed from the recorder and export its own health counters."""
        recorder.add_listener(self.observe)
        self.registry.register(_RecorderCollector(recorder))

    def exposition(self) -> bytes:
        """The Prometheus text format of everything registered."""
        return generate_latest(self.registry)


class _RecorderCollector(Collector):
    """Exports the usage recorder's counters at scrape time."""

    def __init__(self, recorder: UsageRecorder) -> None:
        self.recorder = recorder

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """Yield the recorder metrics."""
        stats: RecorderStats = self.recorder.stats
        yield CounterMetricFamily(
            f"{PREFIX}_usage_recorder_errors",
            "Failed usage database writes (disk full, database locked).",
            stats.write_errors,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_usage_recorder_dropped",
            "Usage records given up on (queue full or database unavailable).",
            stats.dropped,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_usage_records_written", "Usage records stored.", stats.written
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_usage_recorder_queue",
            "Usage records waiting to be written.",
            self.recorder.queued,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_usage_db_available",
            "1 if the usage database is open.",
            1 if self.recorder.available else 0,
        )


class TTLCache:
    """A single cached value with an expiry time."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.value: Any = None
        self.expires = 0.0

    def get(self) -> Any:
        """The value if fresh, else None."""
        return self.value if time.monotonic() < self.expires else None

    def put(self, value: Any) -> None:
        """Store a value for ttl seconds."""
        self.value = value
        self.expires = time.monotonic() + self.ttl
