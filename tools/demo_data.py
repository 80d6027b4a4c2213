"""The demo town «Mairie de Démonstration» and its residents, from the user manuals."""

from __future__ import annotations

from typing import Any

DEMO_SLUG = "demo"
DEMO_HOST = "demo.localhost"

# The manual's régies: the central one, open to grouped payment, and the water régie, which is not.
CENTRAL_REGIE: dict[str, Any] = {
    "code": "CENTRALE",
    "name": "REGIE CENTRALISEE",
    "payfip_client_number": "001964",
    "payfip_mode": "T",
    "online_payment_enabled": True,
    "grouped_payment_allowed": True,
}
WATER_REGIE: dict[str, Any] = {
    "code": "EAU",
    "name": "Régie de l'eau",
    "payfip_client_number": "010203",
    "payfip_mode": "T",
    "online_payment_enabled": True,
    "grouped_payment_allowed": False,
}


def demo_town(public_url: str) -> dict[str, Any]:
    return {
        "name": "Mairie de Démonstration",
        "public_url": public_url,
        "hosts": [DEMO_HOST],
        "contact_email": "factures@demo.localhost",
        "logo_url": None,
        "alerts_enabled": True,
        "password_min_length": 8,
        "regies": [dict(CENTRAL_REGIE), dict(WATER_REGIE)],
    }


# Debtors: reference → (name, e-mails). Marie Dupont has the invoices of the manual's table.
DEMO_DEBTORS: dict[str, tuple[str, list[str]]] = {
    "D0001": ("DUPONT Marie", ["marie.dupont@example.org"]),
    "D0002": ("MARTIN Jean", ["jean.martin@example.org", "jean.martin@travail.example.org"]),
    "D0003": ("BERNARD Lucie", ["lucie.bernard@example.org"]),
}

# The invoices of the manuals (number, date, due date, amount in cents, object, régie, debtor).
DEMO_INVOICES: list[dict[str, Any]] = [
    {
        "number": "2015-001-001078",
        "issued_on": "2015-09-02",
        "due_on": "2016-08-31",
        "amount_cents": 2500,
        "object": "FACTURATION",
        "regie": "CENTRALE",
        "debtor": "D0001",
    },
    {
        "number": "2016-001-000096",
        "issued_on": "2015-10-19",
        "due_on": "2015-10-30",
        "amount_cents": 3200,
        "object": "FACTURATION",
        "regie": "CENTRALE",
        "debtor": "D0001",
    },
    {
        "number": "2016-001-000037",
        "issued_on": "2015-10-01",
        "due_on": "2015-10-15",
        "amount_cents": 1000,
        "object": "FACTURATION",
        "regie": "CENTRALE",
        "debtor": "D0001",
    },
    {
        "number": "2015-001-001205",
        "issued_on": "2015-09-01",
        "due_on": "2015-09-30",
        "amount_cents": 1000,
        "object": "FACTURATION",
        "regie": "CENTRALE",
        "debtor": "D0001",
    },
    {
        "number": "2015-009-000360",
        "issued_on": "2015-10-06",
        "due_on": "2015-11-06",
        "amount_cents": 3840,
        "object": "CANTINE SCOLAIRE",
        "regie": "CENTRALE",
        "debtor": "D0002",
    },
    {
        "number": "2015-RS-00-8001516",
        "issued_on": "2015-10-12",
        "due_on": "2015-11-12",
        "amount_cents": 3750,
        "object": "EAU ET ASSAINISSEMENT",
        "regie": "EAU",
        "debtor": "D0002",
    },
    {
        "number": "2026-002-000114",
        "issued_on": "2026-10-05",
        "due_on": "2026-11-30",
        "amount_cents": 4620,
        "object": "CANTINE OCTOBRE 2026",
        "regie": "CENTRALE",
        "debtor": "D0002",
    },
    {
        "number": "2026-002-000187",
        "issued_on": "2026-11-04",
        "due_on": "2026-12-31",
        "amount_cents": 2890,
        "object": "GARDERIE OCTOBRE 2026",
        "regie": "CENTRALE",
        "debtor": "D0003",
    },
]

# Settled at the town hall's counter: «Mes factures» shows Marie Dupont a paid (yellow) row.
DEMO_PAID_ELSEWHERE: tuple[str, ...] = ("2015-001-001205",)
