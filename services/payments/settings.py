"""Settings of the payments service (environment prefix PAYMENTS_).

The defaults speak to the real PayFiP; the development runner and the tests point `PAYMENTS_PAYFIP_URL` at
the simulator. Time windows come from shared/design/payfip.md; the tests shorten them.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.payments.domain import TimePolicy
from services.payments.payfip import PRODUCTION_URL
from shared.plumbing.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMENTS_", extra="ignore", frozen=True)

    port: int = 8003
    database_url: str = "postgresql://postgres@127.0.0.1:5432/portail_payments"

    # PayFiP's web service and payment page (one host for the T, X and W modes).
    payfip_url: str = PRODUCTION_URL
    # Base of the payment page as the resident's browser reaches it, when it differs from the address this
    # service calls (docker-compose: the service calls `payfip-simulator:8010`, a browser `localhost:8010`).
    # None: the same as payfip_url, as with the real PayFiP.
    payfip_page_url: str | None = None
    payfip_timeout_seconds: float = Field(default=15.0, gt=0)
    # The invoices service, asked for the amounts due at the moment of payment.
    invoices_url: str = "http://127.0.0.1:8002"
    invoices_timeout_seconds: float = Field(default=10.0, gt=0)
    # Public base of the gateway that PayFiP's servers can reach: urlnotif is <base>/payfip/notification.
    public_notification_base: str = "http://127.0.0.1:8000"

    # The in-progress lock (R10): the manuals' two hours, ended early on a final non-paid result.
    lock_hours: float = Field(default=2.0, gt=0)
    # An idOp must reach the payment page within 15 minutes; an abandon is final after it, P1 means expired.
    operation_window_seconds: float = Field(default=900.0, gt=0)
    # P5 ("no result yet") past this age: the attempt is expired.
    give_up_hours: float = Field(default=2.0, gt=0)
    # PayFiP unreachable for this long after creation: the attempt is expired as unverifiable.
    unreachable_give_up_hours: float = Field(default=24.0, gt=0)

    # The reconciler (P3): first poll a few minutes after creation, then spaced out up to 30 minutes.
    reconcile_first_poll_seconds: float = Field(default=300.0, ge=0)
    reconcile_spacing_seconds: float = Field(default=300.0, gt=0)
    reconcile_max_spacing_seconds: float = Field(default=1800.0, gt=0)
    reconcile_interval_seconds: float = Field(default=30.0, gt=0)
    reconcile_batch_size: int = Field(default=20, ge=1)
    reconcile_concurrency: int = Field(default=5, ge=1)
    # A claimed attempt is left alone by other replicas for this long (longer than a PayFiP call).
    reconcile_claim_seconds: float = Field(default=120.0, gt=0)
    # An attempt still `created` after this long never got an idOp: it fails and releases its lock.
    stale_creation_seconds: float = Field(default=120.0, gt=0)

    def time_policy(self) -> TimePolicy:
        return TimePolicy(
            operation_window=timedelta(seconds=self.operation_window_seconds),
            lock_duration=timedelta(hours=self.lock_hours),
            give_up_after=timedelta(hours=self.give_up_hours),
            unreachable_give_up_after=timedelta(hours=self.unreachable_give_up_hours),
            first_poll_after=timedelta(seconds=self.reconcile_first_poll_seconds),
            poll_spacing=timedelta(seconds=self.reconcile_spacing_seconds),
            max_poll_spacing=timedelta(seconds=self.reconcile_max_spacing_seconds),
        )

    @property
    def notification_url(self) -> str:
        return self.public_notification_base.rstrip("/") + "/payfip/notification"
