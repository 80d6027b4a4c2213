"""HTTP routes of the invoices service: parse, call a handler, answer JSON. Nothing else.

- `/admin/...`: the operations team (internal token): towns, régies, office API keys.
- `/towns/...`: questions other services ask (internal token): which town is this host?
- `/office/...`: the town's billing office, authenticated by its own API key (`Authorization: Bearer`).
"""

from __future__ import annotations

import uuid
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from services.invoices import handlers
from services.invoices.domain import Debtor, DomainError, Regie, Town, TownNotFound, normalise_host
from services.invoices.repository import InvoicesUnitOfWork
from shared.plumbing.openapi import ApiRoutes
from shared.plumbing.runtime import POOL
from shared.plumbing.web import ApiError, json_model, parse_json

routes = ApiRoutes(
    title="Le portail des factures: invoices service",
    security_schemes={"officeKey": {"type": "http", "scheme": "bearer"}},
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegieIn(_Strict):
    code: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=200)
    payfip_client_number: str = Field(pattern=r"^\d{6}$")
    payfip_mode: Literal["T", "X", "W"] = "T"
    online_payment_enabled: bool = True
    grouped_payment_allowed: bool = False


class TownIn(_Strict):
    name: str = Field(min_length=1, max_length=200)
    public_url: str = Field(min_length=8, max_length=300)
    hosts: list[str] = Field(default_factory=list, max_length=20)
    contact_email: str = Field(max_length=254)
    logo_url: str | None = Field(default=None, max_length=500)
    alerts_enabled: bool = True
    password_min_length: int = Field(default=8, ge=1, le=64)
    regies: list[RegieIn] = Field(default_factory=list, max_length=50)


class RegieOut(BaseModel):
    regie_id: uuid.UUID
    code: str
    name: str
    payfip_client_number: str
    payfip_mode: str
    online_payment_enabled: bool
    grouped_payment_allowed: bool


class TownOut(BaseModel):
    town_id: uuid.UUID
    slug: str
    name: str
    public_url: str
    hosts: list[str]
    contact_email: str
    logo_url: str | None
    alerts_enabled: bool
    password_min_length: int
    regies: list[RegieOut]

    @classmethod
    def of(cls, town: Town) -> TownOut:
        return cls(
            town_id=town.town_id,
            slug=town.slug,
            name=town.name,
            public_url=town.public_url,
            hosts=list(town.hosts),
            contact_email=town.contact_email,
            logo_url=town.logo_url,
            alerts_enabled=town.alerts_enabled,
            password_min_length=town.password_min_length,
            regies=[RegieOut(**r.__dict__) for r in town.regies],
        )


class ApiKeyIn(_Strict):
    label: str = Field(default="", max_length=100)


class ApiKeyOut(BaseModel):
    key_id: uuid.UUID
    api_key: str = Field(description="Shown once; only its hash is kept.")


class DebtorIn(_Strict):
    name: str = Field(min_length=1, max_length=200)
    emails: list[str] = Field(default_factory=list, max_length=10)


class DebtorOut(BaseModel):
    debtor_id: uuid.UUID
    reference: str
    name: str
    emails: list[str]


def uow(request: web.Request) -> InvoicesUnitOfWork:
    return InvoicesUnitOfWork(request.app[POOL], producer="invoices")


def domain_error(error: DomainError, status: int = 422) -> ApiError:
    return ApiError(status, error.code, error.message)


async def office_town(request: web.Request) -> uuid.UUID:
    """The town whose billing office holds the presented API key; every office query is scoped by it."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise ApiError(401, "unauthorized", "Clé d'API manquante (en-tête Authorization: Bearer).")
    async with uow(request) as work:
        town_id = await work.api_keys.town_of(key.strip())
    if town_id is None:
        raise ApiError(401, "unauthorized", "Clé d'API inconnue ou révoquée.")
    return town_id


@routes.route(
    "PUT",
    "/admin/towns/{slug}",
    summary="Create or update a town",
    body=TownIn,
    response=TownOut,
    errors=(404,),
    tags=["admin"],
)
async def put_town(request: web.Request) -> web.Response:
    body = await parse_json(request, TownIn)
    town = Town(
        slug=request.match_info["slug"],
        name=body.name,
        public_url=body.public_url,
        hosts=tuple(body.hosts),
        contact_email=body.contact_email,
        logo_url=body.logo_url,
        alerts_enabled=body.alerts_enabled,
        password_min_length=body.password_min_length,
        regies=tuple(Regie(**r.model_dump()) for r in body.regies),
    )
    try:
        async with uow(request) as work:
            saved = await handlers.configure_town(town, uow=work)
    except DomainError as error:
        raise domain_error(error) from None
    return json_model(TownOut.of(saved))


@routes.route(
    "POST",
    "/admin/towns/{slug}/api-keys",
    summary="Issue an API key to a town's billing office",
    body=ApiKeyIn,
    response=ApiKeyOut,
    status=201,
    errors=(404,),
    tags=["admin"],
)
async def post_api_key(request: web.Request) -> web.Response:
    body = await parse_json(request, ApiKeyIn)
    try:
        async with uow(request) as work:
            key_id, raw_key = await handlers.create_api_key(request.match_info["slug"], body.label, uow=work)
    except TownNotFound as error:
        raise domain_error(error, 404) from None
    return json_model(ApiKeyOut(key_id=key_id, api_key=raw_key), status=201)


@routes.route(
    "GET",
    "/towns/by-host/{host}",
    summary="The town served on a host name",
    response=TownOut,
    errors=(404,),
    tags=["internal"],
)
async def get_town_by_host(request: web.Request) -> web.Response:
    async with uow(request) as work:
        town = await work.towns.by_host(normalise_host(request.match_info["host"]))
    if town is None:
        raise ApiError(404, "town_not_found", "Aucune commune n'est servie à cette adresse.")
    return json_model(TownOut.of(town))


@routes.route(
    "PUT",
    "/office/debtors/{reference}",
    summary="Create or update a debtor and their e-mails",
    body=DebtorIn,
    response=DebtorOut,
    security="officeKey",
    tags=["office"],
)
async def put_debtor(request: web.Request) -> web.Response:
    town_id = await office_town(request)
    body = await parse_json(request, DebtorIn)
    debtor = Debtor(
        town_id=town_id, reference=request.match_info["reference"], name=body.name, emails=tuple(body.emails)
    )
    try:
        async with uow(request) as work:
            saved = await handlers.upsert_debtor(debtor, uow=work)
    except DomainError as error:
        raise domain_error(error) from None
    return json_model(
        DebtorOut(
            debtor_id=saved.debtor_id, reference=saved.reference, name=saved.name, emails=list(saved.emails)
        )
    )
