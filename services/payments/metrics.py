"""The payments service's own Prometheus series, in the process's registry (served at /metrics)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass(frozen=True)
class PaymentsMetrics:
    payfip_calls: Counter
    payfip_call_duration: Histogram
    payments_settled: Counter
    incidents: Counter

    @classmethod
    def register(cls, registry: CollectorRegistry) -> PaymentsMetrics:
        return cls(
            payfip_calls=Counter(
                "portail_payfip_calls",
                "Calls to PayFiP's web service, by operation and outcome: ok, refused (PayFiP's own fault, "
                "P5 included), timeout, error (transport, HTTP 5xx, unreadable answer)",
                ["operation", "outcome"],
                registry=registry,
            ),
            payfip_call_duration=Histogram(
                "portail_payfip_call_duration_seconds",
                "Duration of calls to PayFiP's web service",
                ["operation"],
                buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
                registry=registry,
            ),
            payments_settled=Counter(
                "portail_payments_settled",
                "Attempts that reached a final state, by state and by what settled them",
                ["state", "trigger"],
                registry=registry,
            ),
            incidents=Counter(
                "portail_payments_incidents",
                "Incidents flagged for the billing office, by kind",
                ["kind"],
                registry=registry,
            ),
        )

    def observe_call(self, operation: str, outcome: str, error: str | None, duration_ms: float) -> None:
        """Count a PayFiP call under the outcomes the alerts know (the fault code stays in the call log)."""
        if outcome == "fault":
            label = "refused"
        elif outcome == "unavailable":
            label = "timeout" if error and "timeout" in error.lower() else "error"
        else:
            label = "ok"
        self.payfip_calls.labels(operation, label).inc()
        self.payfip_call_duration.labels(operation).observe(duration_ms / 1000)
