"""The payments service's own Prometheus series, in the process's registry (served at /metrics)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter


@dataclass(frozen=True)
class PaymentsMetrics:
    payfip_calls: Counter
    payments_settled: Counter
    incidents: Counter

    @classmethod
    def register(cls, registry: CollectorRegistry) -> PaymentsMetrics:
        return cls(
            payfip_calls=Counter(
                "portail_payfip_calls",
                "Calls to PayFiP's web service, by operation, outcome (ok, fault, unavailable) and fault code",
                ["operation", "outcome", "code"],
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
