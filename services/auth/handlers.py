"""Use cases of the auth service."""

from __future__ import annotations

from services.auth.repository import AuthUnitOfWork
from shared.contracts import Envelope, events


async def record_town(event: events.TownConfigured, _envelope: Envelope, uow: AuthUnitOfWork) -> None:
    await uow.towns.save(event.town_id, event.slug, event.name, event.public_url, event.password_min_length)


async def record_known_emails(event: events.DebtorUpserted, _envelope: Envelope, uow: AuthUnitOfWork) -> None:
    """The office's current set of e-mails for a debtor replaces the previous one."""
    await uow.known_emails.replace_for_debtor(event.town_id, event.debtor_id, event.emails)
