"""Prometheus metrics of one gateway process (its own registry)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "shoal_gateway_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.outcomes = Counter(
            "shoal_gateway_run_outcomes", "Run outcomes returned", ["outcome"], registry=r
        )
        self.queue_depth = Gauge(
            "shoal_gateway_queue_depth", "Runs waiting for a backend slot", registry=r
        )
        self.backend_latency = Histogram(
            "shoal_gateway_backend_seconds",
            "Backend POST runs latency",
            ["backend"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.ejections = Counter(
            "shoal_gateway_ejections", "Backend ejections", ["backend"], registry=r
        )
        self.retries = Counter(
            "shoal_gateway_retries", "Runs retried on another backend", ["reason"], registry=r
        )
        self.outstanding = Gauge(
            "shoal_gateway_backend_outstanding", "Runs in flight", ["backend"], registry=r
        )
        self.healthy = Gauge(
            "shoal_gateway_backend_healthy", "1 when the backend is live", ["backend"], registry=r
        )
        self.redis_up = Gauge(
            "shoal_gateway_redis_up", "1 while Redis answers (with --redis)", registry=r
        )
        self.connections = Gauge("shoal_gateway_connections", "Client connections open", registry=r)
        self.conn_refused = Counter(
            "shoal_gateway_connections_refused",
            "Client connections refused (over max_connections or the per-source limit)",
            registry=r,
        )
        self.head_timeouts = Counter(
            "shoal_gateway_head_timeouts",
            "Client connections closed without a complete request head (time or size)",
            registry=r,
        )
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: Any, *values: str) -> Any:
        """metric.labels(*values), remembered: labels() takes a lock and checks its
        arguments on every call, several times per proxied run."""
        key = (id(metric), values)
        c = self._children.get(key)
        if c is None:
            if len(self._children) > 10_000:  # label values a backend invents
                return metric.labels(*values)
            c = self._children[key] = metric.labels(*values)
        return c
