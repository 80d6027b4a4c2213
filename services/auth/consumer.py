"""Which events the auth service reacts to, and the handler for each."""

from __future__ import annotations

from services.auth import handlers
from shared.contracts import events
from shared.plumbing.inbox import Subscription

SUBSCRIPTIONS: list[Subscription] = [
    Subscription(events.TownConfigured, handlers.record_town),
    Subscription(events.DebtorUpserted, handlers.record_known_emails),
]
