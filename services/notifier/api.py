"""HTTP routes of the notifier: what operators need to see and to unblock e-mails."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field

from services.notifier.repository import DeliveryLedger
from shared.plumbing.openapi import ApiRoutes
from shared.plumbing.runtime import POOL
from shared.plumbing.web import ApiError, json_model, parse_query

routes = ApiRoutes(title="Le portail des factures: notifier")


class EmailQuery(BaseModel):
    to: str | None = Field(default=None, max_length=254)
    state: Literal["queued", "sending", "sent", "failed", "interrupted"] | None = None
    limit: int = Field(default=50, ge=1, le=500)


class EmailOut(BaseModel):
    email_id: uuid.UUID
    event_id: uuid.UUID
    purpose: str
    town_id: uuid.UUID | None
    to_address: str
    subject: str
    state: str
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


class EmailList(BaseModel):
    emails: list[EmailOut]


class Requeued(BaseModel):
    email_id: uuid.UUID
    state: str


@routes.route(
    "GET",
    "/emails",
    summary="E-mails and their delivery state, newest first",
    query=EmailQuery,
    response=EmailList,
)
async def list_emails(request: web.Request) -> web.Response:
    query = parse_query(request, EmailQuery)
    rows = await DeliveryLedger(request.app[POOL]).listing(to=query.to, state=query.state, limit=query.limit)
    return json_model(EmailList(emails=[EmailOut(**row) for row in rows]))


@routes.route(
    "POST",
    "/emails/{email_id}/requeue",
    summary="Send a failed or interrupted e-mail again",
    response=Requeued,
    errors=(404, 409),
)
async def requeue_email(request: web.Request) -> web.Response:
    try:
        email_id = uuid.UUID(request.match_info["email_id"])
    except ValueError:
        raise ApiError(404, "email_not_found", "E-mail introuvable.") from None
    if not await DeliveryLedger(request.app[POOL]).requeue(email_id):
        raise ApiError(
            409,
            "email_not_requeueable",
            "Seul un e-mail en échec ou interrompu, sans lien à usage unique, peut être renvoyé.",
        )
    return json_model(Requeued(email_id=email_id, state="queued"))
