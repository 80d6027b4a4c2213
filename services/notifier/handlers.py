"""Use cases of the notifier: keep the towns' details, and queue the e-mails events ask for."""

from __future__ import annotations

from services.notifier.domain import TownContact, emails_for
from services.notifier.rendering import EmailRenderer
from services.notifier.repository import NotifierUnitOfWork
from shared.contracts import Envelope, EventPayload, events


class TownNotKnownYet(Exception):
    """The town's settings have not arrived yet (events are not ordered): retry the event later."""


async def record_town(event: events.TownConfigured, _envelope: Envelope, uow: NotifierUnitOfWork) -> None:
    await uow.towns.save(
        TownContact(event.town_id, event.name, event.public_url, event.contact_email, event.logo_url)
    )


async def queue_emails(
    event: EventPayload, envelope: Envelope, uow: NotifierUnitOfWork, *, renderer: EmailRenderer
) -> None:
    """Render the e-mails an event asks for and queue them in this transaction (one per purpose)."""
    town_id = envelope.town_id
    town = await uow.towns.get(town_id) if town_id else None
    if town is None:
        raise TownNotKnownYet(f"town {town_id} not known yet")
    rendered = [renderer.render(spec, town, event_id=envelope.event_id) for spec in emails_for(event, town)]
    await uow.emails.add(rendered)
