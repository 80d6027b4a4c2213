"""R15: after an import, each resident with new invoices gets one e-mail listing them, when the town
sends alerts and the resident has not turned them off."""

from __future__ import annotations

import asyncio

from tests.invoices.helpers import (
    MANUAL_ROWS,
    activate_account,
    csv_bytes,
    import_file,
    manual_rows,
    outbox_count,
    resident,
    unique_email,
)
from tests.support.suite import Suite

ALERT_SUBJECT = "nouvelle"  # «4 nouvelles factures…», «Une nouvelle facture…»


async def test_each_resident_gets_one_email_per_import_listing_their_new_invoices(suite: Suite) -> None:
    town = await suite.create_town()
    marie, jean, lucie = unique_email("marie"), unique_email("jean"), unique_email("lucie")
    # Residents activated before the office knew them: the import links their debtors by e-mail.
    await activate_account(suite, town, marie)
    await activate_account(suite, town, jean)
    await activate_account(suite, town, lucie)  # no invoice for her in this file: no e-mail
    answer = await import_file(suite, town, csv_bytes(manual_rows(marie, jean)))
    assert answer["alerts"] == 2

    [to_marie] = await suite.wait_for_mail(marie, subject_contains=ALERT_SUBJECT)
    assert (
        to_marie.subject.strip() == f"4 nouvelles factures sur le portail des factures de {town.data['name']}"
    )
    text = to_marie.part("plain")
    for number in ("2015-001-001078", "2016-001-000096", "2016-001-000037", "2015-001-001205"):
        assert number in text
    assert (
        "- 2015-001-001078 du 02/09/2015 : 25,00\u00a0€, à régler avant le 31/08/2016 (FACTURATION)" in text
    )
    assert "Total : 77,00\u00a0€" in text
    assert town.public_url + "/" in text
    [to_jean] = await suite.wait_for_mail(jean, subject_contains=ALERT_SUBJECT)
    assert "2015-RS-00-8001516" in to_jean.part("plain")
    assert "2015-001-001078" not in to_jean.part("plain")

    # The same file again: nothing new, no e-mail. A new invoice: one more e-mail, with it alone.
    await import_file(suite, town, csv_bytes(manual_rows(marie, jean)))
    rows = [
        *manual_rows(marie, jean),
        MANUAL_ROWS[0]
        | {"number": "2026-001-000001", "issued_on": "2026-01-10", "due_on": "", "debtor_emails": marie},
    ]
    assert (await import_file(suite, town, csv_bytes(rows)))["alerts"] == 1
    mails = await suite.wait_for_mail(marie, subject_contains=ALERT_SUBJECT, count=2)
    assert mails[1].subject.strip().startswith("Une nouvelle facture")
    assert "2026-001-000001" in mails[1].part("plain")
    assert "2015-001-001078" not in mails[1].part("plain")
    await asyncio.sleep(0.5)
    assert len(suite.mail.to(marie)) == 2
    assert len(suite.mail.to(jean)) == 1
    assert suite.mail.to(lucie) == []


async def test_no_alert_when_the_town_sends_none(suite: Suite) -> None:
    town = await suite.create_town(alerts_enabled=False)
    marie = unique_email("marie")
    account = await activate_account(suite, town, marie)
    answer = await import_file(suite, town, csv_bytes(manual_rows(marie, unique_email("jean"))))
    assert answer["alerts"] == 0
    assert await outbox_count(suite, town, "invoices.resident_invoices_published") == 0
    _, prefs = await resident(suite, town.town_id, account, "GET", "/preferences")
    assert prefs == {"alerts_enabled": True, "town_alerts_enabled": False}
    await _control_alert_arrives(suite)
    assert suite.mail.to(marie) == []


async def test_no_alert_when_the_resident_turned_them_off(suite: Suite) -> None:
    town = await suite.create_town()
    marie, jean = unique_email("marie"), unique_email("jean")
    account = await activate_account(suite, town, marie)
    await activate_account(suite, town, jean)
    status, _ = await resident(
        suite, town.town_id, account, "PUT", "/preferences", json={"alerts_enabled": False}
    )
    assert status == 200
    answer = await import_file(suite, town, csv_bytes(manual_rows(marie, jean)))
    assert answer["alerts"] == 1
    await suite.wait_for_mail(jean, subject_contains=ALERT_SUBJECT)
    await asyncio.sleep(0.3)
    assert suite.mail.to(marie) == []
    _, body = await resident(suite, town.town_id, account, "GET", "/invoices")
    assert body["totals"]["count"] == 4, "she still sees her invoices"


async def test_resident_activated_after_the_import_sees_the_invoices_without_an_alert(suite: Suite) -> None:
    town = await suite.create_town()
    marie = unique_email("marie")
    await import_file(suite, town, csv_bytes(manual_rows(marie, unique_email("jean"))))
    account = await activate_account(suite, town, marie)
    _, body = await resident(suite, town.town_id, account, "GET", "/invoices")
    assert body["totals"]["count"] == 4
    await _control_alert_arrives(suite)
    assert suite.mail.to(marie) == []


async def _control_alert_arrives(suite: Suite) -> None:
    """An alert of another town that must arrive: once it has, a missing alert is truly missing."""
    town = await suite.create_town()
    control = unique_email("control")
    await activate_account(suite, town, control)
    await import_file(suite, town, csv_bytes(manual_rows(control, unique_email("x"))))
    await suite.wait_for_mail(control, subject_contains=ALERT_SUBJECT)
