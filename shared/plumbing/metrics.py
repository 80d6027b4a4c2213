"""Prometheus metrics of one process, in its own registry (no global state, several apps per test)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

Refresher = Callable[[], Awaitable[None]]


@dataclass
class Metrics:
    service: str
    registry: CollectorRegistry
    http_requests: Counter
    http_latency: Histogram
    events_published: Counter
    events_consumed: Counter
    events_failed: Counter
    outbox_backlog: Gauge
    outbox_oldest_age: Gauge
    dead_letter_depth: Gauge
    ready: Gauge
    # Gauges read from PostgreSQL or RabbitMQ are refreshed when Prometheus scrapes, not on a timer.
    refreshers: list[Refresher] = field(default_factory=list)

    async def render(self) -> bytes:
        for refresh in self.refreshers:
            # A scrape must still answer when the database or the broker is down.
            with contextlib.suppress(Exception):
                await refresh()
        return generate_latest(self.registry)


def create_metrics(service: str) -> Metrics:
    registry = CollectorRegistry()
    return Metrics(
        service=service,
        registry=registry,
        http_requests=Counter(
            "portail_http_requests", "HTTP requests handled", ["method", "route", "status"], registry=registry
        ),
        http_latency=Histogram(
            "portail_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        ),
        events_published=Counter(
            "portail_events_published", "Events published from the outbox", ["type"], registry=registry
        ),
        events_consumed=Counter(
            "portail_events_consumed",
            "Events consumed, by outcome (handled, duplicate)",
            ["type", "outcome"],
            registry=registry,
        ),
        events_failed=Counter(
            "portail_events_failed",
            "Event deliveries that failed, by fate (retried, dead_lettered)",
            ["type", "fate"],
            registry=registry,
        ),
        outbox_backlog=Gauge("portail_outbox_backlog", "Outbox rows not yet published", registry=registry),
        outbox_oldest_age=Gauge(
            "portail_outbox_oldest_pending_seconds",
            "How long the oldest unpublished outbox row has waited (0 when none waits)",
            registry=registry,
        ),
        dead_letter_depth=Gauge(
            "portail_dead_letter_depth",
            "Messages waiting in this service's dead-letter queue",
            registry=registry,
        ),
        ready=Gauge(
            "portail_ready",
            "1 when the readiness checks pass (what /readyz answers), 0 otherwise",
            registry=registry,
        ),
    )
