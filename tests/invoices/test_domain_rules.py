"""The invoices' rules without I/O: which actions apply and why not, declarations, messages, payments."""

from __future__ import annotations

from datetime import date

import pytest

from services.invoices.domain import (
    InvalidContactMessage,
    InvalidDeclaration,
    Verdict,
    declaration_verdict,
    download_verdict,
    online_payment_outcome,
    online_payment_verdict,
    pdf_file_name,
    validated_contact_message,
    validated_declaration_comment,
    validated_paid_on,
)


@pytest.mark.parametrize(
    ("state", "amount", "online", "expected"),
    [
        ("unpaid", 2500, True, Verdict(True)),
        ("paid_online", 2500, True, Verdict(False, "paid")),
        ("paid_elsewhere", 2500, True, Verdict(False, "paid")),
        ("cancelled", 2500, True, Verdict(False, "cancelled")),
        ("declared", 2500, True, Verdict(False, "declared")),
        ("unpaid", 2500, False, Verdict(False, "regie_closed")),
        ("unpaid", 99, True, Verdict(False, "amount_out_of_bounds")),
        ("unpaid", 100, True, Verdict(True)),
        ("unpaid", 10_000_000, True, Verdict(True)),
        ("unpaid", 10_000_001, True, Verdict(False, "amount_out_of_bounds")),
        ("paid_online", 50, False, Verdict(False, "paid")),  # the state speaks first
    ],
)
def test_online_payment_verdict(state: str, amount: int, online: bool, expected: Verdict) -> None:
    assert online_payment_verdict(state, amount, regie_online=online) == expected


def test_reasons_come_with_french_messages() -> None:
    verdict = online_payment_verdict("unpaid", 50, regie_online=True)
    assert verdict.message == "Le paiement en ligne n'accepte que les montants de 1,00 € à 100 000,00 €."
    assert Verdict(True).message is None


def test_declaration_applies_to_an_unpaid_invoice_only() -> None:
    assert declaration_verdict("unpaid").allowed
    assert [
        declaration_verdict(s).reason for s in ("paid_online", "paid_elsewhere", "cancelled", "declared")
    ] == [
        "paid",
        "paid",
        "cancelled",
        "declared",
    ]


def test_download_needs_a_pdf_or_the_right_to_draw_one() -> None:
    assert download_verdict(has_pdf=False, can_generate=True).allowed
    assert download_verdict(has_pdf=True, can_generate=False).allowed
    assert download_verdict(has_pdf=False, can_generate=False) == Verdict(False, "no_pdf")


def test_pdf_file_name_is_safe() -> None:
    assert pdf_file_name("2015-001-001078") == "facture-2015-001-001078.pdf"
    assert pdf_file_name('a"b/../c') == "facture-a_b_.._c.pdf"


def test_paid_on_is_neither_in_the_future_nor_ancient() -> None:
    today = date(2026, 11, 23)
    assert validated_paid_on(today, today=today) == today
    with pytest.raises(InvalidDeclaration, match="futur"):
        validated_paid_on(date(2026, 11, 24), today=today)
    with pytest.raises(InvalidDeclaration, match="ancienne"):
        validated_paid_on(date(1999, 12, 31), today=today)
    with pytest.raises(InvalidDeclaration, match="500"):
        validated_declaration_comment("x" * 501)


def test_contact_message_lengths_and_a_subject_on_one_line() -> None:
    assert validated_contact_message("  Objet ", " Bonjour\r\nMerci ") == ("Objet", "Bonjour\nMerci")
    for subject, body, words in [
        ("", "x", "obligatoire"),
        ("x", " ", "vide"),
        ("x" * 151, "x", "150"),
        ("x", "x" * 5001, "5000"),
        ("a\nBcc: x@y.fr", "x", "une ligne"),
        ("x", "a\x00b", "invalides"),
    ]:
        with pytest.raises(InvalidContactMessage, match=words):
            validated_contact_message(subject, body)


def test_an_online_payment_settles_only_an_invoice_still_to_pay() -> None:
    assert online_payment_outcome("unpaid") == "settle"
    assert online_payment_outcome("declared") == "settle"
    assert online_payment_outcome("paid_online") == "paid_twice_online"
    assert online_payment_outcome("paid_elsewhere") == "paid_online_after_paid_elsewhere"
    assert online_payment_outcome("cancelled") == "paid_online_after_cancellation"
