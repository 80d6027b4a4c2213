"""`scripts/dev`'s seed, run against the test suite's processes: the demo town's invoices go through the
real import API, and Marie Dupont has a paid row in «Mes factures»."""

from __future__ import annotations

import uuid

from shared.contracts import events
from tests.invoices.helpers import resident
from tests.support.service_outbox import publish_through_service_outbox
from tests.support.suite import Suite
from tests.support.waiting import eventually
from tools.demo_data import DEMO_INVOICES
from tools.seed import seed_demo


async def test_demo_seed_imports_the_manual_invoices_and_one_paid_row_twice_over(suite: Suite) -> None:
    public_url = f"http://demo.localhost:{suite.config.ports['gateway']}"
    first = await seed_demo(suite.url("invoices"), suite.config.internal_token, public_url)
    assert first["import"]["rows"] == len(DEMO_INVOICES)
    again = await seed_demo(suite.url("invoices"), suite.config.internal_token, public_url)
    assert (again["import"]["created"], again["import"]["updated"]) == (0, 0)

    town_id = uuid.UUID(first["town"]["town_id"])
    account = uuid.uuid4()
    await publish_through_service_outbox(
        suite,
        "auth",
        events.AccountActivated(town_id=town_id, account_id=account, email="marie.dupont@example.org"),
    )

    async def listed() -> bool:
        status, body = await resident(suite, town_id, account, "GET", "/invoices")
        return status == 200 and body["totals"]["count"] == 4

    await eventually(listed, what="Marie Dupont sees the manual's four invoices")
    _, body = await resident(suite, town_id, account, "GET", "/invoices")
    assert [(i["number"], i["paid"], i["state_label"]) for i in body["invoices"]] == [
        ("2016-001-000096", False, "à régler"),
        ("2016-001-000037", False, "à régler"),
        ("2015-001-001078", False, "à régler"),
        ("2015-001-001205", True, "réglée"),
    ]
    async with suite._admin.get(
        suite.url("invoices")
        + f"/towns/{town_id}/accounts/{account}/invoices/{body['invoices'][0]['invoice_id']}/pdf",
        headers=suite.admin_headers,
    ) as response:
        assert response.status == 200
        assert (await response.read()).startswith(b"%PDF-")
