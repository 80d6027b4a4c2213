"""A resident never sees, downloads or acts on another resident's invoice or another town's, whatever id
is put in the URL: the French 404 page, never their data, never a 500."""

from __future__ import annotations

import uuid

from tests.invoice_pages.support import Household, logged_in_resident, publish
from tests.invoices.helpers import manual_rows, office, unique_email
from tests.support.resident import csrf_of
from tests.support.suite import Suite

DECLARATION = {"method": "cheque", "paid_on": "2015-10-20"}


async def attempts(household: Household, invoice: str) -> list[tuple[str, int, str]]:
    """Every invoice route of the gateway tried with this id: (what, status, body)."""
    resident = household.resident
    token = csrf_of((await resident.get("/contact")).text)
    found = []
    for path in (f"/factures/{invoice}", f"/factures/{invoice}/pdf", f"/factures/{invoice}/declarer"):
        async with resident.http.get(resident.base + path, allow_redirects=False) as response:
            found.append((f"GET {path}", response.status, (await response.read()).decode("latin-1")))
    posted = await resident.post(f"/factures/{invoice}/declarer", {"csrf_token": token, **DECLARATION})
    found.append((f"POST /factures/{invoice}/declarer", posted.status, posted.text))
    return found


async def test_foreign_and_malformed_invoice_ids_answer_the_french_404_on_every_route(suite: Suite) -> None:
    town_a, town_b = await suite.create_town(), await suite.create_town()
    marie, jean, paul = unique_email("marie"), unique_email("jean"), unique_email("paul")
    await publish(suite, town_a, manual_rows(marie, jean))
    await publish(suite, town_b, [row | {"number": "B" + row["number"]} for row in manual_rows(paul, jean)])
    households = [
        await logged_in_resident(suite, town_a, marie),
        await logged_in_resident(suite, town_a, jean),
        await logged_in_resident(suite, town_b, paul),
    ]
    her, him, other_town = households
    try:
        cases = [
            ("Jean's invoice, same town", her, str(him.ids["2015-009-000360"]), "2015-009-000360"),
            ("Paul's invoice, other town", her, str(other_town.ids["B2015-001-001078"]), "B2015-001-001078"),
            (
                "Marie's invoice, asked by Paul in his town",
                other_town,
                str(her.ids["2015-001-001078"]),
                "2015-001-001078",
            ),
            ("Marie's invoice, asked by Jean", him, str(her.ids["2016-001-000096"]), "2016-001-000096"),
            ("an unknown id", her, str(uuid.uuid4()), None),
            ("not an id", her, "1%20OR%201=1", None),
            ("not an id either", her, "2015-001-001078", None),
        ]
        for what, household, invoice, number in cases:
            for route, status, body in await attempts(household, invoice):
                assert status == 404, (what, route, status, body[:300])
                assert "Page introuvable" in body, (what, route)
                if number is not None:
                    assert number not in body, (what, route, "the invoice's data leaked")
        for town in (town_a, town_b):
            _, declared = await office(suite, town, "GET", "/office/declarations")
            assert declared["declarations"] == [], "no declaration was recorded on anyone's invoice"

        # The owners still reach their own invoices.
        assert (await her.resident.get(f"/factures/{her.ids['2015-001-001078']}")).status == 200
        assert (
            await other_town.resident.get(f"/factures/{other_town.ids['B2015-001-001078']}")
        ).status == 200
    finally:
        for household in households:
            await household.resident.close()
