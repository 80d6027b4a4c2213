"""Two payments replicas reconcile side by side: each attempt is polled by one of them at a time."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

from tests.payments.conftest import FIRST_POLL, PaymentsWorld


async def test_two_replicas_share_the_polls_and_never_poll_one_attempt_at_the_same_time(
    world: PaymentsWorld,
) -> None:
    town = await world.town()
    account = world.account()
    started = [
        await world.started(town, account, [world.invoices.add_invoice(town, account)]) for _ in range(12)
    ]
    # Nobody pays: PayFiP answers P5 and the reconcilers keep asking, spaced out.
    await asyncio.sleep(FIRST_POLL + 3)

    calls = await world.rows(
        """
        SELECT payment_id, caller, called_at, called_at + duration_ms * interval '1 millisecond' AS ended_at
        FROM payfip_calls
        WHERE trigger = 'reconciler' AND payment_id = ANY($1::uuid[])
        ORDER BY payment_id, called_at
        """,
        [p["payment_id"] for p in started],
    )
    assert len({c["payment_id"] for c in calls}) == 12, "every attempt was polled"
    assert len({c["caller"] for c in calls}) == 2, "both replicas took a share"
    for previous, following in itertools.pairwise(calls):
        if previous["payment_id"] == following["payment_id"]:
            assert following["called_at"] >= previous["ended_at"] - timedelta(milliseconds=1), (
                previous,
                following,
            )
    states = await world.rows(
        "SELECT DISTINCT state FROM payment_attempts WHERE payment_id = ANY($1::uuid[])",
        [p["payment_id"] for p in started],
    )
    assert [s["state"] for s in states] == ["pending"]
