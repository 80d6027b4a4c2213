"""SQL of the payments service. A unit of work carries one transaction and its repositories.

Every query that returns a resident's data takes the town and the account and filters on both.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.payments.domain import (
    NON_FINAL_STATES,
    Attempt,
    ConfirmedResult,
    IncidentKind,
    PaymentItem,
    PaymentPlan,
    PaymentState,
)
from shared.plumbing.uow import Connection, UnitOfWork

_NON_FINAL = [state.value for state in NON_FINAL_STATES]
# Which replica made a PayFiP call, in the calls log.
CALLER = f"{socket.gethostname()}:{os.getpid()}"
# Closures a declaration's answer can never undo.
TERMINAL_CLOSURES = ("cancelled", "paid_online", "paid_elsewhere")


@dataclass(frozen=True)
class TownInfo:
    town_id: uuid.UUID
    name: str
    public_url: str


@dataclass(frozen=True)
class PaymentRecord:
    """An attempt as stored, with its items and its PayFiP operation."""

    payment_id: uuid.UUID
    town_id: uuid.UUID
    account_id: uuid.UUID
    email: str
    regie_id: uuid.UUID
    regie_code: str
    regie_name: str
    numcli: str
    saisie: str
    refdet: str
    grouped: bool
    exer: str
    label: str
    amount_cents: int
    state: PaymentState
    created_at: datetime
    locked_until: datetime
    started_at: datetime | None
    settled_at: datetime | None
    result_code: str | None
    provisional_result: str | None
    authorisation_number: str | None
    paid_at: datetime | None
    idop: str | None
    polls: int
    next_poll_at: datetime | None
    start_error_code: str | None
    items: tuple[PaymentItem, ...]
    # What PayFiP was sent (None before the operation exists): answers are compared with these.
    sent_numcli: str | None = None
    sent_refdet: str | None = None
    sent_montant: int | None = None

    def attempt(self) -> Attempt:
        return Attempt(
            payment_id=self.payment_id,
            state=self.state,
            created_at=self.created_at,
            locked_until=self.locked_until,
            idop=self.idop,
            numcli=self.sent_numcli or self.numcli,
            refdet=self.sent_refdet or self.refdet,
            amount_cents=self.sent_montant if self.sent_montant is not None else self.amount_cents,
            polls=self.polls,
            provisional_result=self.provisional_result,
        )


@dataclass(frozen=True)
class InvoiceLock:
    invoice_id: uuid.UUID
    number: str
    payment_id: uuid.UUID
    account_id: uuid.UUID
    locked_until: datetime


@dataclass(frozen=True)
class Closure:
    invoice_id: uuid.UUID
    status: str
    payment_id: uuid.UUID | None


@dataclass(frozen=True)
class Incident:
    incident_id: uuid.UUID
    town_id: uuid.UUID
    payment_id: uuid.UUID
    idop: str | None
    kind: str
    details: dict[str, Any]
    created_at: datetime


_SELECT_ATTEMPT = """
    SELECT a.*, o.idop, o.numcli AS sent_numcli, o.refdet AS sent_refdet, o.montant AS sent_montant
    FROM payment_attempts a LEFT JOIN payfip_operations o USING (payment_id)
"""


class TownRepository:
    """Payments' copy of each town's settings, kept from invoices.town_configured."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def save(
        self,
        town_id: uuid.UUID,
        name: str,
        public_url: str,
        regies: list[dict[str, Any]],
        configured_at: datetime,
    ) -> None:
        await self._conn.execute(
            """
            INSERT INTO towns (town_id, name, public_url, regies, configured_at) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (town_id) DO UPDATE SET name = EXCLUDED.name, public_url = EXCLUDED.public_url,
                regies = EXCLUDED.regies, configured_at = EXCLUDED.configured_at, updated_at = now()
            WHERE towns.configured_at <= EXCLUDED.configured_at
            """,
            town_id,
            name,
            public_url,
            regies,
            configured_at,
        )

    async def get(self, town_id: uuid.UUID) -> TownInfo | None:
        row = await self._conn.fetchrow(
            "SELECT town_id, name, public_url FROM towns WHERE town_id = $1", town_id
        )
        return TownInfo(row["town_id"], row["name"], row["public_url"]) if row else None


class AttemptRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    # --- starting ---------------------------------------------------------------------------------

    async def insert(self, plan: PaymentPlan) -> None:
        await self._conn.execute(
            """
            INSERT INTO payment_attempts (payment_id, town_id, account_id, email, regie_id, regie_code,
                regie_name, numcli, saisie, refdet, grouped, exer, label, amount_cents, state, created_at,
                locked_until)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'created', $15, $16)
            """,
            plan.payment_id,
            plan.town_id,
            plan.account_id,
            plan.email,
            plan.regie.regie_id,
            plan.regie.code,
            plan.regie.name,
            plan.regie.payfip_client_number,
            plan.regie.payfip_mode,
            plan.reference,
            plan.grouped,
            plan.exer,
            plan.label,
            plan.amount_cents,
            plan.created_at,
            plan.locked_until,
        )
        await self._conn.executemany(
            "INSERT INTO payment_items (payment_id, position, invoice_id, number, amount_cents)"
            " VALUES ($1, $2, $3, $4, $5)",
            [
                (plan.payment_id, position, item.invoice_id, item.number, item.amount_cents)
                for position, item in enumerate(plan.items)
            ],
        )

    async def take_locks(self, plan: PaymentPlan) -> set[uuid.UUID]:
        """Lock each invoice for this attempt unless a lock that has not ended holds it; the invoices
        locked now. A concurrent start on the same invoice waits on the row, then sees the new lock."""
        taken: set[uuid.UUID] = set()
        # Always in the same order, so two grouped starts sharing invoices cannot deadlock.
        for item in sorted(plan.items, key=lambda i: i.invoice_id):
            got = await self._conn.fetchval(
                """
                INSERT INTO invoice_locks (invoice_id, town_id, payment_id, number, locked_until)
                VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (invoice_id) DO UPDATE SET town_id = EXCLUDED.town_id,
                    payment_id = EXCLUDED.payment_id, number = EXCLUDED.number,
                    locked_until = EXCLUDED.locked_until
                WHERE invoice_locks.locked_until <= $6
                RETURNING invoice_id
                """,
                item.invoice_id,
                plan.town_id,
                plan.payment_id,
                item.number,
                plan.locked_until,
                plan.created_at,
            )
            if got is not None:
                taken.add(got)
        return taken

    async def active_locks(
        self, town_id: uuid.UUID, invoice_ids: Sequence[uuid.UUID], now: datetime
    ) -> list[InvoiceLock]:
        rows = await self._conn.fetch(
            """
            SELECT l.invoice_id, l.number, l.payment_id, a.account_id, l.locked_until
            FROM invoice_locks l JOIN payment_attempts a USING (payment_id)
            WHERE l.town_id = $1 AND l.invoice_id = ANY($2::uuid[]) AND l.locked_until > $3
            ORDER BY l.invoice_id
            """,
            town_id,
            list(invoice_ids),
            now,
        )
        return [InvoiceLock(**dict(row)) for row in rows]

    async def mark_started(
        self,
        payment_id: uuid.UUID,
        idop: str,
        *,
        sent: dict[str, Any],
        started_at: datetime,
        first_poll_at: datetime,
    ) -> bool:
        """The attempt got its idOp; False if it had meanwhile been failed (stale creation)."""
        updated = await self._conn.fetchval(
            """
            UPDATE payment_attempts SET state = 'pending', started_at = $2, next_poll_at = $3
            WHERE payment_id = $1 AND state = 'created'
            RETURNING true
            """,
            payment_id,
            started_at,
            first_poll_at,
        )
        if not updated:
            return False
        await self._conn.execute(
            """
            INSERT INTO payfip_operations (idop, payment_id, numcli, refdet, montant, exer, saisie, objet,
                urlnotif, urlredirect, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            """,
            idop,
            payment_id,
            sent["numcli"],
            sent["refdet"],
            sent["montant"],
            sent["exer"],
            sent["saisie"],
            sent["objet"],
            sent["urlnotif"],
            sent["urlredirect"],
            started_at,
        )
        return True

    async def mark_failed_to_start(
        self, payment_id: uuid.UUID, *, code: str, error: str, now: datetime
    ) -> bool:
        updated = await self._conn.fetchval(
            """
            UPDATE payment_attempts SET state = 'failed_to_start', settled_at = $2, start_error_code = $3,
                start_error = $4, next_poll_at = NULL
            WHERE payment_id = $1 AND state = 'created'
            RETURNING true
            """,
            payment_id,
            now,
            code,
            error[:500],
        )
        await self.release_locks(payment_id)
        return bool(updated)

    async def fail_stale_creations(self, cutoff: datetime, now: datetime) -> list[uuid.UUID]:
        """Attempts left `created` (their process died, or the answer was lost): never sent to PayFiP's
        page, so they fail and free their invoices. SKIP LOCKED: replicas share the sweep."""
        rows = await self._conn.fetch(
            """
            WITH stale AS (
                SELECT payment_id FROM payment_attempts
                WHERE state = 'created' AND created_at < $1
                FOR UPDATE SKIP LOCKED
            )
            UPDATE payment_attempts a SET state = 'failed_to_start', settled_at = $2,
                start_error_code = 'stale', start_error = 'no idOp was stored in time', next_poll_at = NULL
            FROM stale WHERE a.payment_id = stale.payment_id
            RETURNING a.payment_id
            """,
            cutoff,
            now,
        )
        failed = [row["payment_id"] for row in rows]
        if failed:
            await self._conn.execute("DELETE FROM invoice_locks WHERE payment_id = ANY($1::uuid[])", failed)
        return failed

    async def release_locks(self, payment_id: uuid.UUID) -> None:
        await self._conn.execute("DELETE FROM invoice_locks WHERE payment_id = $1", payment_id)

    async def shorten_locks(self, payment_id: uuid.UUID, until: datetime) -> None:
        await self._conn.execute(
            "UPDATE invoice_locks SET locked_until = least(locked_until, $2) WHERE payment_id = $1",
            payment_id,
            until,
        )

    # --- reading ----------------------------------------------------------------------------------

    async def get(
        self, town_id: uuid.UUID, account_id: uuid.UUID, payment_id: uuid.UUID
    ) -> PaymentRecord | None:
        row = await self._conn.fetchrow(
            _SELECT_ATTEMPT + " WHERE a.payment_id = $1 AND a.town_id = $2 AND a.account_id = $3",
            payment_id,
            town_id,
            account_id,
        )
        return (await self._with_items([row]))[0] if row else None

    async def by_idop(self, idop: str, *, for_update: bool = False) -> PaymentRecord | None:
        query = _SELECT_ATTEMPT + " WHERE o.idop = $1"
        if for_update:
            query += " FOR UPDATE OF a"
        row = await self._conn.fetchrow(query, idop)
        return (await self._with_items([row]))[0] if row else None

    async def idop_belongs_to(self, idop: str, town_id: uuid.UUID, account_id: uuid.UUID) -> bool:
        found = await self._conn.fetchval(
            """
            SELECT true FROM payfip_operations o JOIN payment_attempts a USING (payment_id)
            WHERE o.idop = $1 AND a.town_id = $2 AND a.account_id = $3
            """,
            idop,
            town_id,
            account_id,
        )
        return bool(found)

    async def list_for_account(
        self, town_id: uuid.UUID, account_id: uuid.UUID, *, limit: int, offset: int
    ) -> tuple[list[PaymentRecord], int]:
        """«Mes règlements»: attempts that reached PayFiP, newest first."""
        rows = await self._conn.fetch(
            _SELECT_ATTEMPT
            + """
            WHERE a.town_id = $1 AND a.account_id = $2 AND a.state NOT IN ('created', 'failed_to_start')
            ORDER BY a.created_at DESC, a.payment_id
            LIMIT $3 OFFSET $4
            """,
            town_id,
            account_id,
            limit,
            offset,
        )
        total: int = await self._conn.fetchval(
            "SELECT count(*) FROM payment_attempts WHERE town_id = $1 AND account_id = $2"
            " AND state NOT IN ('created', 'failed_to_start')",
            town_id,
            account_id,
        )
        return await self._with_items(rows), total

    async def _with_items(self, rows: Sequence[asyncpg.Record]) -> list[PaymentRecord]:
        ids = [row["payment_id"] for row in rows]
        items: dict[uuid.UUID, list[PaymentItem]] = {payment_id: [] for payment_id in ids}
        if ids:
            for item in await self._conn.fetch(
                "SELECT payment_id, invoice_id, number, amount_cents FROM payment_items"
                " WHERE payment_id = ANY($1::uuid[]) ORDER BY payment_id, position",
                ids,
            ):
                items[item["payment_id"]].append(
                    PaymentItem(item["invoice_id"], item["number"], item["amount_cents"])
                )
        return [_record(row, tuple(items[row["payment_id"]])) for row in rows]

    # --- settling ---------------------------------------------------------------------------------

    async def finalize(
        self,
        payment_id: uuid.UUID,
        state: PaymentState,
        *,
        result: ConfirmedResult | None,
        now: datetime,
        trigger: str,
        count_poll: bool,
    ) -> bool:
        """The guarded transition: non-final → final, once. False if another path got there first."""
        updated = await self._conn.fetchval(
            """
            UPDATE payment_attempts SET state = $2, settled_at = $3, settled_by = $4,
                result_code = coalesce($5, result_code), authorisation_number = $6, paid_at = $7,
                provisional_result = NULL, next_poll_at = NULL, polls = polls + $8, last_poll_error = NULL
            WHERE payment_id = $1 AND state = ANY($9::text[])
            RETURNING true
            """,
            payment_id,
            state.value,
            now,
            trigger,
            result.resultrans if result else None,
            result.numauto if result else None,
            (result.transaction_time or now) if result and state is PaymentState.PAID else None,
            1 if count_poll else 0,
            _NON_FINAL,
        )
        return bool(updated)

    async def keep_pending(
        self,
        payment_id: uuid.UUID,
        *,
        next_poll_at: datetime | None,
        provisional_result: str | None,
        locked_until: datetime | None,
        count_poll: bool,
        error: str | None,
    ) -> None:
        await self._conn.execute(
            """
            UPDATE payment_attempts SET next_poll_at = coalesce($2, next_poll_at),
                provisional_result = $3, locked_until = coalesce($4, locked_until),
                polls = polls + $5, last_poll_error = $6
            WHERE payment_id = $1 AND state = ANY($7::text[])
            """,
            payment_id,
            next_poll_at,
            provisional_result,
            locked_until,
            1 if count_poll else 0,
            error[:500] if error else None,
            _NON_FINAL,
        )
        if locked_until is not None:
            await self.shorten_locks(payment_id, locked_until)

    async def claim_due(self, now: datetime, *, limit: int, claim_until: datetime) -> list[str]:
        """idOps of pending attempts due for a poll, claimed until `claim_until`: other replicas skip the
        locked rows now and find them not due afterwards, so no two replicas poll one attempt at once."""
        rows = await self._conn.fetch(
            """
            WITH due AS (
                SELECT payment_id FROM payment_attempts
                WHERE state = 'pending' AND next_poll_at <= $1
                ORDER BY next_poll_at
                LIMIT $2
                FOR UPDATE SKIP LOCKED
            )
            UPDATE payment_attempts a SET next_poll_at = $3
            FROM due, payfip_operations o
            WHERE a.payment_id = due.payment_id AND o.payment_id = a.payment_id
            RETURNING o.idop
            """,
            now,
            limit,
            claim_until,
        )
        return [row["idop"] for row in rows]


def _record(row: asyncpg.Record, items: tuple[PaymentItem, ...]) -> PaymentRecord:
    return PaymentRecord(
        payment_id=row["payment_id"],
        town_id=row["town_id"],
        account_id=row["account_id"],
        email=row["email"],
        regie_id=row["regie_id"],
        regie_code=row["regie_code"],
        regie_name=row["regie_name"],
        numcli=row["numcli"],
        saisie=row["saisie"],
        refdet=row["refdet"],
        grouped=row["grouped"],
        exer=row["exer"],
        label=row["label"],
        amount_cents=row["amount_cents"],
        state=PaymentState(row["state"]),
        created_at=row["created_at"],
        locked_until=row["locked_until"],
        started_at=row["started_at"],
        settled_at=row["settled_at"],
        result_code=row["result_code"],
        provisional_result=row["provisional_result"],
        authorisation_number=row["authorisation_number"],
        paid_at=row["paid_at"],
        idop=row["idop"],
        polls=row["polls"],
        next_poll_at=row["next_poll_at"],
        start_error_code=row["start_error_code"],
        items=items,
        sent_numcli=row["sent_numcli"],
        sent_refdet=row["sent_refdet"],
        sent_montant=row["sent_montant"],
    )


class ClosureRepository:
    """What the invoices service said about invoices closing (and a rejected declaration reopening)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def record(
        self,
        invoice_id: uuid.UUID,
        town_id: uuid.UUID,
        status: str,
        changed_at: datetime,
        payment_id: uuid.UUID | None = None,
    ) -> None:
        """Newest fact wins; a terminal closure (cancelled, paid) is never undone by a declaration's fate."""
        await self._conn.execute(
            """
            INSERT INTO invoice_closures (invoice_id, town_id, status, payment_id, changed_at)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (invoice_id) DO UPDATE SET status = EXCLUDED.status,
                payment_id = EXCLUDED.payment_id, changed_at = EXCLUDED.changed_at
            WHERE (EXCLUDED.status = ANY($6::text[])
                   AND (invoice_closures.status <> ALL($6::text[])
                        OR invoice_closures.changed_at <= EXCLUDED.changed_at))
               OR (EXCLUDED.status <> ALL($6::text[])
                   AND invoice_closures.status <> ALL($6::text[])
                   AND invoice_closures.changed_at <= EXCLUDED.changed_at)
            """,
            invoice_id,
            town_id,
            status,
            payment_id,
            changed_at,
            list(TERMINAL_CLOSURES),
        )

    async def closed_among(self, town_id: uuid.UUID, invoice_ids: Sequence[uuid.UUID]) -> list[Closure]:
        rows = await self._conn.fetch(
            "SELECT invoice_id, status, payment_id FROM invoice_closures"
            " WHERE town_id = $1 AND invoice_id = ANY($2::uuid[]) AND status <> 'open' ORDER BY invoice_id",
            town_id,
            list(invoice_ids),
        )
        return [Closure(row["invoice_id"], row["status"], row["payment_id"]) for row in rows]


class IncidentRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def add(
        self,
        *,
        town_id: uuid.UUID,
        payment_id: uuid.UUID,
        idop: str | None,
        kind: IncidentKind,
        details: dict[str, Any],
        now: datetime,
    ) -> bool:
        """One incident per attempt and kind: repeated notifications do not pile up copies."""
        inserted = await self._conn.fetchval(
            """
            INSERT INTO incidents (incident_id, town_id, payment_id, idop, kind, details, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (payment_id, kind) DO NOTHING
            RETURNING true
            """,
            uuid.uuid4(),
            town_id,
            payment_id,
            idop,
            kind.value,
            details,
            now,
        )
        return bool(inserted)

    async def for_town(self, town_id: uuid.UUID, *, limit: int) -> list[Incident]:
        rows = await self._conn.fetch(
            "SELECT incident_id, town_id, payment_id, idop, kind, details, created_at FROM incidents"
            " WHERE town_id = $1 ORDER BY created_at DESC LIMIT $2",
            town_id,
            limit,
        )
        return [Incident(**dict(row)) for row in rows]


class CallLog:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def add(
        self,
        *,
        operation: str,
        payment_id: uuid.UUID | None,
        idop: str | None,
        trigger: str,
        outcome: str,
        code: str | None,
        http_status: int | None,
        called_at: datetime,
        duration_ms: int,
        error: str | None,
    ) -> None:
        await self._conn.execute(
            """
            INSERT INTO payfip_calls (operation, payment_id, idop, trigger, caller, outcome, code, http_status,
                duration_ms, error, called_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            """,
            operation,
            payment_id,
            idop,
            trigger,
            CALLER,
            outcome,
            code,
            http_status,
            duration_ms,
            error[:500] if error else None,
            called_at,
        )


class PaymentsUnitOfWork(UnitOfWork):
    towns: TownRepository
    attempts: AttemptRepository
    closures: ClosureRepository
    incidents: IncidentRepository
    calls: CallLog

    def on_begin(self, conn: Connection) -> None:
        self.towns = TownRepository(conn)
        self.attempts = AttemptRepository(conn)
        self.closures = ClosureRepository(conn)
        self.incidents = IncidentRepository(conn)
        self.calls = CallLog(conn)
