"""Which events the invoices service reacts to, and the handler for each."""

from __future__ import annotations

from services.invoices import handlers
from shared.contracts import events
from shared.plumbing.inbox import Subscription

SUBSCRIPTIONS: list[Subscription] = [
    Subscription(events.AccountActivated, handlers.record_account_activation),
    Subscription(events.EmailChanged, handlers.record_email_change),
    Subscription(events.PaymentSucceeded, handlers.mark_invoices_paid_online),
]
