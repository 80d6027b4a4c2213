"""A resident driving the portal over HTTP, as a browser without JavaScript would."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.support.http import browser_session
from tests.support.suite import Suite, TownHandle

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
LINK = re.compile(
    r"(https?://\S+/compte/(?:activation|nouveau-mot-de-passe|confirmer-adresse)/[A-Za-z0-9_-]+)"
)


@dataclass
class Page:
    status: int
    text: str
    headers: Any
    url: str

    @property
    def location(self) -> str:
        return str(self.headers.get("Location", ""))


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def link_in(text: str) -> str:
    match = LINK.search(text)
    assert match, f"no one-time link in: {text[:500]}"
    return match.group(1)


@dataclass
class Resident:
    suite: Suite
    town: TownHandle
    email: str
    password: str = field(default_factory=lambda: "une phrase " + secrets.token_hex(4))
    http: aiohttp.ClientSession = field(default_factory=browser_session)

    @property
    def base(self) -> str:
        return self.town.public_url

    async def close(self) -> None:
        await self.http.close()

    async def get(self, path: str, **kwargs: Any) -> Page:
        url = path if path.startswith("http") else self.base + path
        async with self.http.get(url, allow_redirects=False, **kwargs) as response:
            return Page(response.status, await response.text(), response.headers, str(response.url))

    async def post(self, path: str, data: dict[str, str], **kwargs: Any) -> Page:
        url = path if path.startswith("http") else self.base + path
        async with self.http.post(url, data=data, allow_redirects=False, **kwargs) as response:
            return Page(response.status, await response.text(), response.headers, str(response.url))

    async def submit(self, page_path: str, data: dict[str, str], action: str | None = None) -> Page:
        """Open the page holding the form, then post it with its CSRF token."""
        page = await self.get(page_path)
        assert page.status == 200, (page_path, page.status, page.text[:300])
        return await self.post(action or page_path, {"csrf_token": csrf_of(page.text), **data})

    async def request_activation(self) -> Page:
        return await self.submit("/activer", {"email": self.email})

    async def activate(self) -> None:
        """«Activer mon compte» → the e-mail → its link → «Enregistrer»."""
        before = len(self.suite.mail.to(self.email))
        answer = await self.request_activation()
        assert answer.status == 303, answer.text[:300]
        [mail] = (await self.suite.wait_for_mail(self.email, subject_contains="Activez", count=before + 1))[
            -1:
        ]
        url = link_in(mail.part("plain"))
        done = await self.submit(url, {"password": self.password})
        assert done.status == 303, done.text[:500]
        assert done.location == "/"

    async def log_in(self, *, remember: bool = False, password: str | None = None) -> Page:
        data = {"email": self.email, "password": password or self.password}
        if remember:
            data["souvenir"] = "oui"
        return await self.submit("/", data, action="/connexion")

    def cookie(self, name: str) -> str | None:
        for cookie in self.http.cookie_jar:
            if cookie.key == name:
                return cookie.value
        return None


async def known_debtor(suite: Suite, town: TownHandle, email: str, reference: str | None = None) -> None:
    """The billing office knows this address; wait until auth has learnt it from the event."""
    reference = reference or "D" + secrets.token_hex(3)
    await suite.call(
        "PUT",
        "invoices",
        f"/office/debtors/{reference}",
        json={"name": "RESIDENT Test", "emails": [email]},
        headers=town.office_headers,
        expect=200,
    )
    auth = await suite.db("auth")
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if await auth.fetchval(
                "SELECT EXISTS (SELECT 1 FROM known_emails WHERE town_id = $1 AND email = $2)"
                " AND EXISTS (SELECT 1 FROM towns WHERE town_id = $1)",
                town.town_id,
                email,
            ):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"auth never learnt {email}")
    finally:
        await auth.close()


def new_email(tag: str = "resident") -> str:
    return f"{tag}.{secrets.token_hex(4)}@example.org"
