"""Use cases of the invoices service: one verb each, coordinating the domain and the repositories."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import replace

from services.invoices.domain import (
    Debtor,
    InvalidTownSettings,
    Town,
    TownNotFound,
    validated_debtor,
    validated_town,
)
from services.invoices.repository import InvoicesUnitOfWork
from shared.contracts import events


def town_configured_event(town: Town) -> events.TownConfigured:
    return events.TownConfigured(
        town_id=town.town_id,
        slug=town.slug,
        name=town.name,
        public_url=town.public_url,
        hosts=list(town.hosts),
        contact_email=town.contact_email,
        logo_url=town.logo_url,
        alerts_enabled=town.alerts_enabled,
        password_min_length=town.password_min_length,
        regies=[
            events.TownRegie(
                regie_id=r.regie_id,
                code=r.code,
                name=r.name,
                payfip_client_number=r.payfip_client_number,
                payfip_mode=r.payfip_mode,
                online_payment_enabled=r.online_payment_enabled,
                grouped_payment_allowed=r.grouped_payment_allowed,
            )
            for r in town.regies
        ],
    )


async def configure_town(town: Town, *, uow: InvoicesUnitOfWork) -> Town:
    """Create or update a town by its slug, keeping its id and its régies' ids; tell the other services."""
    town = validated_town(town)
    existing = await uow.towns.by_slug(town.slug)
    if existing is not None:
        regies = tuple(
            replace(r, regie_id=old.regie_id) if (old := existing.regie(r.code)) else r for r in town.regies
        )
        # Régies are never removed (invoices point at them): the ones not given are kept as they were.
        kept = tuple(r for r in existing.regies if town.regie(r.code) is None)
        town = replace(town, town_id=existing.town_id, regies=regies + kept)
    for host in town.hosts:
        owner = await uow.towns.host_owner(host)
        if owner is not None and owner != town.town_id:
            raise InvalidTownSettings(f"Le nom d'hôte {host} appartient déjà à une autre commune.")
    await uow.towns.save(town)
    saved = await uow.towns.by_id(town.town_id)
    assert saved is not None
    await uow.publish(town_configured_event(saved))
    return saved


async def create_api_key(slug: str, label: str, *, uow: InvoicesUnitOfWork) -> tuple[uuid.UUID, str]:
    """A new key for a town's billing office; the raw key is returned once and never stored."""
    town = await uow.towns.by_slug(slug)
    if town is None:
        raise TownNotFound(f"Commune inconnue : {slug}")
    raw_key = "pf_" + secrets.token_urlsafe(32)
    key_id = await uow.api_keys.add(town.town_id, raw_key, label)
    return key_id, raw_key


async def upsert_debtor(debtor: Debtor, *, uow: InvoicesUnitOfWork) -> Debtor:
    """Create or update a debtor by its reference; publish the full set of its e-mail addresses."""
    debtor = validated_debtor(debtor)
    existing = await uow.debtors.by_reference(debtor.town_id, debtor.reference)
    if existing is not None:
        if existing.name == debtor.name and existing.emails == debtor.emails:
            return existing  # nothing changed: no event, so re-sending the same data is a no-op
        debtor = replace(debtor, debtor_id=existing.debtor_id)
    await uow.debtors.save(debtor)
    await uow.publish(
        events.DebtorUpserted(
            town_id=debtor.town_id,
            debtor_id=debtor.debtor_id,
            reference=debtor.reference,
            name=debtor.name,
            emails=list(debtor.emails),
        )
    )
    return debtor
