"""Which events the notifier reacts to: the towns' settings, and every event that asks for an e-mail."""

from __future__ import annotations

import functools

from services.notifier import handlers
from services.notifier.domain import BUILDERS
from services.notifier.rendering import EmailRenderer
from shared.contracts import events
from shared.plumbing.inbox import Subscription


def subscriptions(renderer: EmailRenderer) -> list[Subscription]:
    queue_emails = functools.partial(handlers.queue_emails, renderer=renderer)
    return [
        Subscription(events.TownConfigured, handlers.record_town),
        *(Subscription(model, queue_emails) for model in BUILDERS),
    ]
