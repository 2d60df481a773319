"""Prometheus metrics: requests, tokens, cost, latency and time-to-first-token, errors."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "modelbus_requests", "Requests handled", ["endpoint", "provider", "model", "status"], registry=r
        )
        self.errors = Counter(
            "modelbus_errors",
            "Failed requests",
            ["endpoint", "provider", "model", "http_status", "error_type"],
            registry=r,
        )
        self.tokens = Counter("modelbus_tokens", "Tokens metered", ["provider", "model", "kind"], registry=r)
        self.cost = Counter(
            "modelbus_cost_usd", "Cost billed in USD", ["provider", "model", "team"], registry=r
        )
        self.latency = Histogram(
            "modelbus_request_latency_seconds",
            "Whole-request latency",
            ["endpoint", "provider", "model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "modelbus_time_to_first_token_seconds",
            "Streams: time to the first token",
            ["provider", "model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("modelbus_requests_in_flight", "Requests being served", registry=r)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: Counter | Histogram, *labels: str) -> Any:
        """``metric.labels(*labels)``, memoized: label lookups are hot-path work."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def render(self) -> bytes:
        return generate_latest(self.registry)
