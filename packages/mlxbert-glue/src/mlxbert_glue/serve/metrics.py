"""Prometheus metrics of one server (its own registry, so several apps can live in one
process): requests, errors, latency, batch sizes and tokens, queue depth, cache."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from .batcher import BatchStats

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
TOKEN_BUCKETS = (16, 64, 256, 1024, 4096, 16384, 65536)
#: route label of each path; anything else is "other" (keeps the label set small)
ROUTES = {
    "/predict": "predict",
    "/embed": "embed",
    "/v1/embeddings": "openai_embeddings",
    "/tokenize": "tokenize",
    "/health": "health",
    "/info": "info",
    "/metrics": "metrics",
    "/docs": "docs",
    "/openapi.json": "docs",
}


def route_label(path: str) -> str:
    return ROUTES.get(path, "other")


class Metrics:
    """The server's metrics; ``render()`` is the ``/metrics`` body."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "mlxbert_requests", "HTTP requests answered, by route and status code",
            ["route", "status"], registry=r,
        )  # fmt: skip
        self.errors = Counter(
            "mlxbert_errors", "Requests answered with an error, by route and kind",
            ["route", "kind"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "mlxbert_request_duration_seconds", "Time from request to response, by route",
            ["route"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.in_flight = Gauge("mlxbert_requests_in_flight", "Requests being answered", registry=r)
        self.queue_depth = Gauge("mlxbert_queue_depth", "Inputs waiting for the model", registry=r)
        self.forward_inputs = Gauge(
            "mlxbert_forward_inputs", "Inputs in the forward now running (0: the model is idle)",
            registry=r,
        )  # fmt: skip
        self.taken = Histogram(
            "mlxbert_batch_taken", "Inputs the worker took from the queue at once (they run "
            "sorted by length, in one or more forwards)",
            ["model", "op"], buckets=BATCH_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "mlxbert_batch_size", "Inputs (texts or pairs) per forward, by model and operation",
            ["model", "op"], buckets=BATCH_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_tokens = Histogram(
            "mlxbert_batch_tokens",
            "Tokens computed per forward (inputs x longest; a packing model's real tokens)",
            ["model", "op"], buckets=TOKEN_BUCKETS, registry=r,
        )  # fmt: skip
        self.forward_seconds = Histogram(
            "mlxbert_forward_duration_seconds", "Time of one batch on the model worker",
            ["model", "op"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.inputs = Counter(
            "mlxbert_inputs", "Inputs computed by the model (cache hits excluded)",
            ["model", "op"], registry=r,
        )  # fmt: skip
        self.cache_hits = Counter(
            "mlxbert_cache_hits", "Inputs answered from the response cache", registry=r
        )
        self.cache_misses = Counter(
            "mlxbert_cache_misses", "Inputs looked up in the cache and not found", registry=r
        )
        self.cache_entries = Gauge(
            "mlxbert_cache_entries", "Answers held in the response cache", registry=r
        )
        self.cancelled = Counter(
            "mlxbert_cancelled_inputs",
            "Queued inputs dropped before the model ran them, by reason",
            ["reason"], registry=r,
        )  # fmt: skip

    def observe_batch(self, stats: BatchStats) -> None:
        """Called by the model worker after each forward."""
        model, op = str(stats.key[0]), str(stats.key[1])
        self.batch_size.labels(model, op).observe(stats.size)
        self.batch_tokens.labels(model, op).observe(stats.tokens)
        self.forward_seconds.labels(model, op).observe(stats.seconds)
        if not stats.failed:
            self.inputs.labels(model, op).inc(stats.size)

    def observe_take(self, key: tuple, size: int) -> None:
        """Called by the model worker for each batch it takes from the queue."""
        self.taken.labels(str(key[0]), str(key[1])).observe(size)

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["ROUTES", "Metrics", "route_label"]
