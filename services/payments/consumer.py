"""Which events the payments service reacts to, and the handler for each."""

from __future__ import annotations

from shared.plumbing.inbox import Subscription

SUBSCRIPTIONS: list[Subscription] = []
