"""One HTTP client per service, made in the app's cleanup context, and the cache of towns by host."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from gateway.settings import Settings
from shared.plumbing.http_client import ServiceClient, ServiceError


@dataclass(frozen=True)
class Regie:
    regie_id: uuid.UUID
    code: str
    name: str
    payfip_client_number: str
    online_payment_enabled: bool
    grouped_payment_allowed: bool


@dataclass(frozen=True)
class Town:
    town_id: uuid.UUID
    slug: str
    name: str
    public_url: str
    contact_email: str
    logo_url: str | None
    alerts_enabled: bool
    password_min_length: int
    regies: tuple[Regie, ...]

    @property
    def logo_path(self) -> str | None:
        """The town's logo when the portal serves it itself (a path such as /static/img/…): pages load
        nothing from another origin (the CSP allows images from the portal only), so a logo elsewhere is
        not shown and the generic town hall is."""
        logo = self.logo_url or ""
        return logo if logo.startswith("/") and not logo.startswith("//") and "\\" not in logo else None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Town:
        return cls(
            town_id=uuid.UUID(data["town_id"]),
            slug=data["slug"],
            name=data["name"],
            public_url=data["public_url"],
            contact_email=data["contact_email"],
            logo_url=data.get("logo_url"),
            alerts_enabled=data["alerts_enabled"],
            password_min_length=data["password_min_length"],
            regies=tuple(
                Regie(
                    regie_id=uuid.UUID(r["regie_id"]),
                    code=r["code"],
                    name=r["name"],
                    payfip_client_number=r["payfip_client_number"],
                    online_payment_enabled=r["online_payment_enabled"],
                    grouped_payment_allowed=r["grouped_payment_allowed"],
                )
                for r in data.get("regies", [])
            ),
        )


@dataclass
class Services:
    auth: ServiceClient
    invoices: ServiceClient
    payments: ServiceClient


class TownCache:
    """Towns by host name, asked of the invoices service and kept a few seconds (every page needs one)."""

    def __init__(self, invoices: ServiceClient, ttl_seconds: float) -> None:
        self._invoices = invoices
        self._ttl = ttl_seconds
        self._entries: dict[str, tuple[float, Town | None]] = {}

    async def by_host(self, host: str) -> Town | None:
        now = time.monotonic()
        cached = self._entries.get(host)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            town: Town | None = Town.from_json(await self._invoices.get(f"/towns/by-host/{host}"))
        except ServiceError as error:
            if error.status != 404:
                raise
            town = None
        # An unknown host is remembered briefly too, so a scan of random hosts costs one call each.
        self._entries[host] = (now + (self._ttl if town else min(self._ttl, 5.0)), town)
        return town


SERVICES = web.AppKey("services", Services)
TOWNS = web.AppKey("towns", TownCache)


def clients_ctx(settings: Settings) -> Any:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        token = settings.internal_token.get_secret_value() if settings.internal_token else None
        connector = aiohttp.TCPConnector(limit=200, limit_per_host=100, keepalive_timeout=30)
        async with aiohttp.ClientSession(connector=connector, raise_for_status=False) as session:
            timeout = settings.service_timeout_seconds
            services = Services(
                auth=ServiceClient(
                    session,
                    service="auth",
                    base_url=settings.auth_url,
                    internal_token=token,
                    timeout_seconds=timeout,
                ),
                invoices=ServiceClient(
                    session,
                    service="invoices",
                    base_url=settings.invoices_url,
                    internal_token=token,
                    timeout_seconds=timeout,
                ),
                payments=ServiceClient(
                    session,
                    service="payments",
                    base_url=settings.payments_url,
                    internal_token=token,
                    timeout_seconds=timeout,
                ),
            )
            app[SERVICES] = services
            app[TOWNS] = TownCache(services.invoices, settings.town_cache_seconds)
            yield

    return ctx
