"""What the invoice pages' tests share: a town whose billing office imported invoices, and a resident who
activated an account with an address the import gave a debtor, then logged in through the gateway."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tests.invoices.helpers import csv_bytes, import_file, invoice_ids_by_number, office
from tests.support.resident import Resident
from tests.support.suite import Suite, TownHandle
from tests.support.waiting import eventually
from tools.demo_data import CENTRAL_REGIE, WATER_REGIE

# The suite's towns have two régies; these tests also need one closed to online payment.
CLOSED_WATER_REGIES: list[dict[str, Any]] = [CENTRAL_REGIE, WATER_REGIE | {"online_payment_enabled": False}]


async def _fetchval(suite: Suite, service: str, sql: str, *args: Any) -> Any:
    conn = await suite.db(service)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


@dataclass
class Household:
    """A logged-in resident, their account id (for calls as another service would make them) and the
    town's invoices by number."""

    resident: Resident
    account_id: uuid.UUID
    ids: dict[str, uuid.UUID]

    @property
    def town(self) -> TownHandle:
        return self.resident.town


async def publish(suite: Suite, town: TownHandle, rows: Sequence[Mapping[str, str]]) -> Any:
    """The billing office imports these rows (CSV through the office API)."""
    return await import_file(suite, town, csv_bytes(rows))


async def activated_resident(suite: Suite, town: TownHandle, email: str) -> tuple[Resident, uuid.UUID]:
    """Activate the account of an address the office already imported; wait until the invoices service
    has linked the account to its debtors. Returns the resident (not logged in) and the account id."""
    await eventually(
        lambda: _fetchval(
            suite,
            "auth",
            "SELECT EXISTS (SELECT 1 FROM known_emails WHERE town_id = $1 AND email = $2)",
            town.town_id,
            email,
        ),
        what=f"auth learnt {email}",
    )
    resident = Resident(suite, town, email)
    await resident.activate()
    account_id = await eventually(
        lambda: _fetchval(
            suite,
            "invoices",
            "SELECT account_id FROM accounts WHERE town_id = $1 AND email = $2",
            town.town_id,
            email,
        ),
        what=f"the invoices service recorded the account of {email}",
    )
    return resident, account_id


async def logged_in_resident(suite: Suite, town: TownHandle, email: str) -> Household:
    """An activated resident, logged in through the gateway's login form."""
    resident, account_id = await activated_resident(suite, town, email)
    landing = await resident.log_in()
    assert landing.status == 303, landing.text[:300]
    assert landing.location == "/factures", "after login the resident lands on «Mes factures»"
    return Household(resident, account_id, await invoice_ids_by_number(suite, town))


async def office_action(suite: Suite, town: TownHandle, number: str, action: str, body: Any) -> None:
    status, answer = await office(suite, town, "POST", f"/office/invoices/{number}/{action}", json=body)
    assert status == 200, answer


async def start_payment(suite: Suite, household: Household, number: str) -> Any:
    """The resident starts paying an invoice on PayFiP (the simulator): the payments service locks it.
    Retried while the payments service has not yet learnt the new town from its event."""
    path = f"/towns/{household.town.town_id}/accounts/{household.account_id}/payments"
    body = {"invoice_ids": [str(household.ids[number])], "email": household.resident.email}

    async def started() -> Any:
        status, answer = await suite.call("POST", "payments", path, json=body)
        if status == 201:
            return answer
        assert status in (404, 409, 503), (status, answer)
        return None

    return await eventually(started, what=f"a payment of {number} started")
