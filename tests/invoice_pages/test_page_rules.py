"""The pages' pure rules: pagination links, the PDF's file name, dates typed by residents, the
declaration form's checks, when grouped payment is offered, and which reason an action shows."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from gateway.clients import Regie, Town
from gateway.views.invoices import (
    PAYMENTS_UNKNOWN,
    InvoiceList,
    InvoicePage,
    Lock,
    PageLink,
    declaration_errors,
    grouped_payment_possible,
    invoice_actions,
    page_links,
    parse_day,
    safe_pdf_name,
)


def test_pagination_shows_first_last_and_neighbours() -> None:
    assert [link.number for link in page_links(1, 3)] == [1, 2, 3]
    assert [link.number for link in page_links(6, 12)] == [1, None, 5, 6, 7, None, 12]
    assert [link.number for link in page_links(1, 12)] == [1, 2, None, 12]
    assert page_links(6, 12)[3] == PageLink(6, current=True)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("facture-2015-001-001078.pdf", "facture-2015-001-001078.pdf"),
        ('facture-"; evil.pdf', "facture-___evil.pdf"),
        ("../../etc/passwd", "etc_passwd.pdf"),
        ("facture-é\r\nX-Header: 1.pdf", "facture-___X-Header__1.pdf"),
        (None, "facture.pdf"),
        ("", "facture.pdf"),
    ],
)
def test_the_pdf_file_name_keeps_only_safe_characters(given: str | None, expected: str) -> None:
    assert safe_pdf_name(given) == expected


def test_dates_are_read_from_a_date_field_or_typed_the_french_way() -> None:
    assert parse_day("2015-10-20") == date(2015, 10, 20)
    assert parse_day(" 20/10/2015 ") == date(2015, 10, 20)
    for wrong in ("31/02/2026", "2015-13-01", "hier", "20-10-2015", ""):
        assert parse_day(wrong) is None, wrong


def test_the_declaration_form_checks_each_field() -> None:
    today = date(2026, 11, 23)
    good = {"method": "transfer", "paid_on": "2026-11-23", "comment": ""}
    assert declaration_errors(good, today) == {}
    assert set(declaration_errors(good | {"method": "bitcoin"}, today)) == {"method"}
    assert declaration_errors(good | {"paid_on": "2026-11-24"}, today) == {
        "paid_on": "La date du règlement ne peut pas être dans le futur."
    }
    assert declaration_errors(good | {"paid_on": "01/01/1999"}, today) == {
        "paid_on": "La date du règlement est trop ancienne."
    }
    assert set(declaration_errors(good | {"comment": "x" * 501}, today)) == {"comment"}
    assert declaration_errors(good | {"comment": " " + "x" * 500 + " "}, today) == {}


def _town(*, grouped: bool) -> Town:
    regie = Regie(uuid.uuid4(), "CENTRALE", "REGIE CENTRALISEE", "001964", True, grouped)
    water = Regie(uuid.uuid4(), "EAU", "Régie de l'eau", "010203", True, False)
    return Town(uuid.uuid4(), "t", "T", "http://t", "f@t", None, True, 8, (regie, water))


def _listing(regies: list[str], *, unpaid: int | None = None, pages: int = 1) -> InvoiceList:
    line = {
        "number": "1",
        "issued_on": "2015-09-02",
        "due_on": None,
        "amount_cents": 2500,
        "object": "FACTURATION",
        "state": "unpaid",
        "state_label": "à régler",
        "paid": False,
    }
    return InvoiceList.model_validate(
        {
            "invoices": [line | {"invoice_id": str(uuid.uuid4()), "regie_code": r} for r in regies],
            "page": {
                "page": 1,
                "page_count": pages,
                "total_count": 50,
                "has_previous": False,
                "has_next": pages > 1,
            },
            "totals": {
                "count": 50,
                "unpaid_count": len(regies) if unpaid is None else unpaid,
                "unpaid_cents": 0,
            },
        }
    )


def test_grouped_payment_needs_two_unpaid_invoices_of_a_grouping_regie() -> None:
    assert grouped_payment_possible(_town(grouped=True), _listing(["CENTRALE", "CENTRALE"]))
    assert not grouped_payment_possible(_town(grouped=True), _listing(["CENTRALE", "EAU"]))
    assert not grouped_payment_possible(_town(grouped=False), _listing(["CENTRALE", "CENTRALE"]))
    assert not grouped_payment_possible(_town(grouped=True), _listing(["EAU", "EAU"]))
    # Beyond one page the other unpaid invoices are not in hand: offered when they may exist.
    assert grouped_payment_possible(_town(grouped=True), _listing(["CENTRALE"], unpaid=2, pages=2))


def _page(**actions: dict[str, object]) -> InvoicePage:
    allowed = {"allowed": True, "reason": None, "message": None}
    return InvoicePage.model_validate(
        {
            "invoice": {
                "invoice_id": str(uuid.uuid4()),
                "number": "2015-001-001078",
                "issued_on": "2015-09-02",
                "due_on": None,
                "amount_cents": 2500,
                "object": "FACTURATION",
                "state": "unpaid",
                "state_label": "à régler",
                "paid": False,
                "payfip_reference": "2015001001078",
                "regie": {"code": "CENTRALE", "name": "REGIE CENTRALISEE"},
                "debtor": {"name": "DUPONT Marie"},
                "cancel_reason": None,
                "settled_at": None,
                "declaration": None,
            },
            "actions": {"download": allowed, "pay_online": allowed, "declare": allowed} | actions,
        }
    )


def test_each_action_shows_the_services_reason_then_the_lock_then_an_unknown_lock() -> None:
    no_pdf = {
        "allowed": False,
        "reason": "no_pdf",
        "message": "Le service de facturation n'a pas fourni de document pour cette facture.",
    }
    download, pay, declare = invoice_actions(_page(download=no_pdf), "none")
    assert (download.href, download.reason) == (None, no_pdf["message"])
    assert pay.href is not None
    assert declare.href is not None

    lock = Lock(invoice_id=uuid.uuid4(), own=False, locked_until=datetime(2026, 11, 23, 14, 42, tzinfo=UTC))
    _, pay, _ = invoice_actions(_page(), lock)
    assert pay.href is None
    assert pay.reason == (
        "Un paiement en ligne de cette facture est en cours de vérification : une nouvelle tentative sera "
        "possible après le 23/11/2026 à 15:42."
    )
    _, pay, _ = invoice_actions(_page(), "unknown")
    assert (pay.href, pay.reason) == (None, PAYMENTS_UNKNOWN)

    paid = {"allowed": False, "reason": "paid", "message": "Cette facture est déjà réglée."}
    _, pay, _ = invoice_actions(_page(pay_online=paid), lock)
    assert pay.reason == "Cette facture est déjà réglée.", "the invoice's own reason comes first"
