"""Who is logged in: the resident's session, resolved by the auth service from the session cookie.

The auth issue fills this in (session and remember-me cookies, resolution, login/logout); pages rely only
on `ACCOUNT` and `login_required`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Account:
    account_id: uuid.UUID
    town_id: uuid.UUID
    email: str
    session_id: str


ACCOUNT = web.RequestKey("account", Account)


def current_account(request: web.Request) -> Account | None:
    return request.get(ACCOUNT)


def login_required(handler: Handler) -> Handler:
    """Pages with personal data: anonymous visitors go to the login page, then come back."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        if current_account(request) is None:
            raise web.HTTPSeeOther(f"/?suite={quote(request.path_qs, safe='')}")
        return await handler(request)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped
