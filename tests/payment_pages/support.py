"""What the payment pages' tests share: a resident whose account is linked to the debtor of invoices the
billing office imported, driving the portal like a browser without JavaScript, and the PayFiP simulator
driven like a payer on its page or through its control API. Everything runs in the session's real
processes (`suite`): invoices, payments, auth, notifier, gateway and the simulator."""

from __future__ import annotations

import html
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import aiohttp

from tests.invoices.helpers import csv_bytes, import_file, invoice_ids_by_number
from tests.support.resident import Page, Resident, csrf_of, known_debtor
from tests.support.suite import Suite, TownHandle
from tests.support.waiting import eventually
from tools.demo_data import CENTRAL_REGIE, WATER_REGIE

T = TypeVar("T")

# The régies of `suite.create_town()` (CENTRALE allows grouped payment, EAU does not), plus a second
# régie that allows it too, so that invoices of two régies that each allow it can be chosen together.
REGIES = [
    CENTRAL_REGIE,
    WATER_REGIE,
    CENTRAL_REGIE | {"code": "PERISCOLAIRE", "name": "Régie périscolaire"},
]

# The resident's invoices (régie, amount): the manual's payment screen (37,50 €, client 001964) and
# selection (38,40 €), another of the same régie, one of each other régie.
ROWS: list[dict[str, str]] = [
    {"number": "2015-RS-00-8001516", "issued_on": "12/10/2015", "amount": "37,50", "regie": "CENTRALE"},
    {"number": "2015-009-000360", "issued_on": "06/10/2015", "amount": "38,40", "regie": "CENTRALE"},
    {"number": "2016-001-000096", "issued_on": "19/10/2015", "amount": "32,00", "regie": "CENTRALE"},
    {"number": "2016-EAU-000001", "issued_on": "01/10/2015", "amount": "12,00", "regie": "EAU"},
    {"number": "2016-PER-000001", "issued_on": "02/10/2015", "amount": "15,00", "regie": "PERISCOLAIRE"},
]
ONE = "2015-RS-00-8001516"
TWO = ("2015-009-000360", "2016-001-000096")


def text_of(page: str) -> str:
    """The page as a person reads it: no tags, entities decoded, runs of spaces folded."""
    without_tags = re.sub(r"<script\b.*?</script>|<[^>]+>", " ", page, flags=re.S)
    text = html.unescape(without_tags).replace("\u00a0", " ").replace("\u202f", " ")
    return re.sub(r"\s+", " ", text).strip()


@dataclass
class Payer:
    """A resident of a fresh town, logged in, with the invoices of ROWS (and `more`) in their name."""

    suite: Suite
    town: TownHandle
    resident: Resident
    account_id: uuid.UUID
    invoices: dict[str, uuid.UUID]
    debtor_reference: str
    simulator: aiohttp.ClientSession = field(default_factory=aiohttp.ClientSession)

    @property
    def email(self) -> str:
        return self.resident.email

    async def close(self) -> None:
        await self.resident.close()
        await self.simulator.close()

    # --- the portal, as the resident's browser --------------------------------------------------------

    async def get(self, path: str) -> Page:
        return await self.resident.get(path)

    async def post(self, path: str, fields: list[tuple[str, str]]) -> Page:
        """Post a form (fields may repeat, as ticked boxes do) without following the answer."""
        async with self.resident.http.post(
            self.resident.base + path, data=fields, allow_redirects=False
        ) as response:
            return Page(response.status, await response.text(), response.headers, str(response.url))

    async def post_form(
        self, page_path: str, action: str, data: dict[str, str] | list[tuple[str, str]]
    ) -> Page:
        """Open the page holding the form, then post it with its CSRF token."""
        page = await self.resident.get(page_path)
        assert page.status == 200, (page_path, page.status, text_of(page.text)[:300])
        fields = list(data.items()) if isinstance(data, dict) else list(data)
        return await self.post(action, [("csrf_token", csrf_of(page.text)), *fields])

    async def leave_for_payfip(self, *numbers: str) -> str:
        """«Payer sur PayFiP» (one invoice) or «Payer les factures sélectionnées»: PayFiP's page address."""
        if len(numbers) == 1:
            path = f"/reglement/{self.invoices[numbers[0]]}"
            answer = await self.post_form(path, path, {})
        else:
            chosen = [("facture", str(self.invoices[n])) for n in numbers]
            answer = await self.post_form(
                "/reglement/selection", "/reglement/selection", [*chosen, ("action", "payer")]
            )
        assert answer.status == 303, (answer.status, text_of(answer.text)[:500])
        return answer.location

    # --- PayFiP's page, as the same browser -----------------------------------------------------------

    async def choose_on_payfip(self, page_url: str, choice: str) -> str:
        """Open PayFiP's page and press one of its buttons (P, V, R, Z, A): where it sends the browser."""
        async with self.resident.http.get(page_url, allow_redirects=False) as page:
            assert page.status == 200, await page.text()
            body = await page.text()
        action = re.search(r'<form method="post" action="([^"]+)"', body)
        assert action, body[:500]
        idop = idop_of(page_url)
        async with self.resident.http.post(
            html.unescape(action.group(1)), data={"idop": idop, "choix": choice}, allow_redirects=False
        ) as chosen:
            assert chosen.status == 303, await chosen.text()
            return str(chosen.headers["Location"])

    # --- the simulator's control API --------------------------------------------------------------------

    async def control(self, method: str, path: str, body: Any = None, *, expect: int = 200) -> Any:
        async with self.simulator.request(
            method, self.suite.url("payfip") + "/_control" + path, json=body
        ) as response:
            answer = await response.json()
            assert response.status == expect, answer
            return answer

    async def operation(self, idop: str) -> Any:
        return await self.control("GET", f"/operations/{idop}")

    # --- what the services know -------------------------------------------------------------------------

    async def invoice(self, number: str) -> Any:
        _, body = await self.suite.call(
            "GET",
            "invoices",
            f"/towns/{self.town.town_id}/accounts/{self.account_id}/invoices/{self.invoices[number]}",
            expect=200,
        )
        return body["invoice"]

    async def wait_paid(self, *numbers: str) -> None:
        for number in numbers:

            async def paid(number: str = number) -> bool:
                return bool((await self.invoice(number))["state"] == "paid_online")

            await eventually(paid, what=f"invoice {number} paid online in the invoices service")

    async def payments(self) -> list[Any]:
        _, body = await self.suite.call(
            "GET", "payments", f"/towns/{self.town.town_id}/accounts/{self.account_id}/payments", expect=200
        )
        found: list[Any] = body["payments"]
        return found

    async def locks(self, *numbers: str) -> list[Any]:
        _, body = await self.suite.call(
            "POST",
            "payments",
            f"/towns/{self.town.town_id}/accounts/{self.account_id}/locks",
            json={"invoice_ids": [str(self.invoices[n]) for n in numbers]},
            expect=200,
        )
        found: list[Any] = body["locks"]
        return found


def idop_of(url: str) -> str:
    [idop] = parse_qs(urlsplit(url).query)["idop"]
    return idop


async def new_town(suite: Suite) -> TownHandle:
    """A town of its own: the régies of `suite.create_town()` and a third one."""
    return await suite.create_town(regies=REGIES)


async def imported_debtor(
    suite: Suite, town: TownHandle, email: str, *, tag: str = "payeur"
) -> tuple[str, dict[str, str]]:
    """The billing office imports ROWS for a new debtor whose address is `email`, and auth has learnt the
    address (so that it can be activated). Returns the debtor's reference and the imported number of
    each of ROWS' numbers."""
    reference = "D" + secrets.token_hex(4).upper()
    suffix = secrets.token_hex(2).upper()
    rows = [
        row
        | {
            # Numbers are unique per town: each payer of a town gets their own.
            "number": row["number"] if tag == "payeur" else f"{row['number']}-{suffix}",
            "due_on": "",
            "object": "CANTINE SCOLAIRE",
            "debtor_reference": reference,
            "debtor_name": "DUPONT Marie",
            "debtor_emails": email,
        }
        for row in ROWS
    ]
    await import_file(suite, town, csv_bytes(rows))
    await known_debtor(suite, town, email, reference)
    return reference, {original["number"]: row["number"] for original, row in zip(ROWS, rows, strict=True)}


async def linked_account(suite: Suite, town: TownHandle, email: str) -> uuid.UUID:
    """Once the account of `email` is activated: its id, when the invoices service has linked it to the
    debtor of ROWS (its «Mes factures» shows them all)."""
    auth = await suite.db("auth")
    try:
        account_id: uuid.UUID = await auth.fetchval(
            "SELECT account_id FROM accounts WHERE town_id = $1 AND email = $2", town.town_id, email
        )
    finally:
        await auth.close()
    assert account_id is not None, f"no activated account for {email}"

    async def linked() -> bool:
        status, body = await suite.call(
            "GET", "invoices", f"/towns/{town.town_id}/accounts/{account_id}/invoices"
        )
        return status == 200 and len(body["invoices"]) == len(ROWS)

    await eventually(linked, what="the invoices service linked the account to its debtor")
    return account_id


async def payer_in(suite: Suite, town: TownHandle, *, tag: str = "payeur") -> Payer:
    """Import ROWS for a new debtor whose address is the resident's, activate the account through the
    real e-mail link, log in: the account is linked to the debtor, as for a real resident."""
    email = f"{tag}.{secrets.token_hex(4)}@example.org"
    reference, numbers = await imported_debtor(suite, town, email, tag=tag)
    resident = Resident(suite, town, email)
    await resident.activate()
    logged_in = await resident.log_in()
    assert logged_in.status == 303, text_of(logged_in.text)[:300]
    account_id = await linked_account(suite, town, email)
    all_ids = await invoice_ids_by_number(suite, town)
    invoices = {original: all_ids[number] for original, number in numbers.items()}
    return Payer(suite, town, resident, account_id, invoices, reference)


@asynccontextmanager
async def payer(suite: Suite) -> AsyncIterator[Payer]:
    town = await new_town(suite)
    found = await payer_in(suite, town)
    try:
        yield found
    finally:
        await found.close()


async def count(suite: Suite, service: str, query: str, *args: Any) -> int:
    conn = await suite.db(service)
    try:
        value: int = await conn.fetchval(query, *args)
        return value
    finally:
        await conn.close()
