"""What the payment pages make of the services' answers, without any process: which message a payment's
state calls for, how the selection groups and adds up invoices, which ids a form may carry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.clients import Regie
from gateway.views.payments import (
    PaymentView,
    build_selection,
    duration_fr,
    outcome_of,
    pay_again_path,
    selected_ids,
)


def regie(code: str, *, grouped: bool = True, online: bool = True) -> Regie:
    return Regie(uuid.uuid4(), code, f"Régie {code}", "001964", online, grouped)


def line(number: str, regie_code: str, cents: int) -> dict[str, Any]:
    return {
        "invoice_id": str(uuid.uuid5(uuid.NAMESPACE_URL, number)),
        "number": number,
        "issued_on": "2015-10-06",
        "due_on": None,
        "amount_cents": cents,
        "object": "CANTINE",
        "state": "unpaid",
        "state_label": "à régler",
        "paid": False,
        "regie_code": regie_code,
        "regie_name": f"Régie {regie_code}",
    }


@pytest.mark.parametrize(
    ("state", "provisional", "outcome"),
    [
        ("paid", None, "paid"),
        ("refused", None, "refused"),
        ("abandoned", None, "abandoned"),
        ("expired", None, "expired"),
        ("mismatch", None, "mismatch"),
        ("failed_to_start", None, "not_started"),
        ("pending", None, "pending"),
        ("created", None, "pending"),
        ("pending", "A", "abandoning"),
    ],
)
def test_each_state_has_its_message(state: str, provisional: str | None, outcome: str) -> None:
    assert outcome_of(state, provisional) == outcome


def test_a_payment_is_read_from_the_services_answer() -> None:
    answer = {
        "payment_id": str(uuid.uuid4()),
        "idop": "cc0cb210-1cd4-11ea-8cca-0213ad91a103",
        "state": "paid",
        "state_label": "payé",
        "final": True,
        "reference": "G202611233MZK8Q1V0D",
        "grouped": True,
        "numcli": "001964",
        "regie": {"regie_id": str(uuid.uuid4()), "code": "CENTRALE", "name": "REGIE CENTRALISEE"},
        "amount_cents": 7040,
        "items": [
            {"invoice_id": "a", "number": "2015-009-000360", "amount_cents": 3840},
            {"invoice_id": "b", "number": "2016-001-000096", "amount_cents": 3200},
        ],
        "created_at": "2026-11-23T10:00:00Z",
        "locked_until": "2026-11-23T12:00:00+00:00",
        "lock_active": False,
        "started_at": "2026-11-23T10:00:01Z",
        "settled_at": "2026-11-23T10:03:00Z",
        "paid_at": "2026-11-23T10:02:00Z",
        "result_code": "P",
        "provisional_result": None,
        "authorisation_number": "112233445566-tip",
    }
    payment = PaymentView.from_json(answer)
    assert payment.outcome == "paid"
    assert payment.shown_at == datetime(2026, 11, 23, 10, 2, tzinfo=UTC)
    assert payment.retry_path == "/reglement/selection?facture=a&facture=b"
    assert pay_again_path(["a"]) == "/reglement/a"


def test_the_selection_groups_by_regie_and_adds_up_only_what_may_be_chosen() -> None:
    lines = [
        line("2015-009-000360", "CENTRALE", 3840),
        line("2016-001-000096", "CENTRALE", 3200),
        line("2016-001-000097", "CENTRALE", 1000),
        line("2015-RS-00-8001516", "EAU", 3750),
        line("2016-PER-1", "PERI", 1500),
        line("2016-FERME-1", "FERMEE", 900),
    ]
    ids = [row["invoice_id"] for row in lines]
    locked_until = datetime(2026, 11, 23, 12, tzinfo=UTC)
    selection = build_selection(
        lines,
        [regie("CENTRALE"), regie("EAU", grouped=False), regie("PERI"), regie("FERMEE", online=False)],
        # Chosen: two free invoices, a locked one, the water one (paid one by one) and a closed régie's.
        [ids[0], ids[1], ids[2], ids[3], ids[5]],
        {ids[2]: locked_until},
    )
    assert [(g.name, [r.number for r in g.rows]) for g in selection.groups] == [
        ("Régie CENTRALE", ["2015-009-000360", "2016-001-000096", "2016-001-000097"]),
        ("Régie PERI", ["2016-PER-1"]),
    ]
    assert (selection.count, selection.total_cents, selection.several_regies) == (2, 7040, False)
    locked = selection.groups[0].rows[2]
    assert (locked.selected, locked.locked_until) == (False, locked_until)
    assert selection.one_by_one == ["Régie EAU"]

    across = build_selection(lines, [regie("CENTRALE"), regie("PERI")], [ids[0], ids[4]], {})
    assert (across.count, across.total_cents, across.several_regies) == (2, 5340, True)


def test_only_well_formed_ids_are_taken_from_a_form_each_once() -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    assert selected_ids([first, second.upper(), first, "../../admin", "", 3, f" {second} "]) == [
        first,
        second,
    ]


@pytest.mark.parametrize(
    ("hours", "words"),
    [(2.0, "2 heures"), (1.0, "1 heure"), (0.5, "30 minutes"), (1.5, "90 minutes"), (0.01, "1 minute")],
)
def test_the_lock_duration_reads_as_french(hours: float, words: str) -> None:
    assert duration_fr(hours) == words
