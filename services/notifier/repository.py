"""SQL of the notifier: its copy of the towns, and the e-mails with their delivery state."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.notifier.domain import TownContact
from shared.plumbing.uow import Connection, UnitOfWork


@dataclass(frozen=True)
class RenderedEmail:
    event_id: uuid.UUID
    purpose: str
    town_id: uuid.UUID | None
    to_address: str
    reply_to: str | None
    subject: str
    # The whole message as sent (headers, text and HTML parts), composed by mime.compose.
    message: bytes
    sensitive: bool
    email_id: uuid.UUID


class TownDirectory:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def save(self, town: TownContact) -> None:
        await self._conn.execute(
            """
            INSERT INTO towns (town_id, name, public_url, contact_email, logo_url) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (town_id) DO UPDATE SET name = EXCLUDED.name, public_url = EXCLUDED.public_url,
                contact_email = EXCLUDED.contact_email, logo_url = EXCLUDED.logo_url, updated_at = now()
            """,
            town.town_id,
            town.name,
            town.public_url,
            town.contact_email,
            town.logo_url,
        )

    async def get(self, town_id: uuid.UUID) -> TownContact | None:
        row = await self._conn.fetchrow("SELECT * FROM towns WHERE town_id = $1", town_id)
        if row is None:
            return None
        return TownContact(
            row["town_id"], row["name"], row["public_url"], row["contact_email"], row["logo_url"]
        )


class EmailQueue:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def add(self, emails: list[RenderedEmail]) -> None:
        await self._conn.executemany(
            """
            INSERT INTO emails (email_id, event_id, purpose, town_id, to_address, reply_to, subject, message,
                                sensitive)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            ON CONFLICT (event_id, purpose) DO NOTHING
            """,
            [
                (
                    e.email_id,
                    e.event_id,
                    e.purpose,
                    e.town_id,
                    e.to_address,
                    e.reply_to,
                    e.subject,
                    e.message,
                    e.sensitive,
                )
                for e in emails
            ],
        )


class NotifierUnitOfWork(UnitOfWork):
    towns: TownDirectory
    emails: EmailQueue

    def on_begin(self, conn: Connection) -> None:
        self.towns = TownDirectory(conn)
        self.emails = EmailQueue(conn)


class DeliveryLedger:
    """The sender's side: claim one due e-mail at a time and record how its sending went.

    Each statement commits on its own: the claim must be durable before the SMTP conversation starts,
    so that a process killed mid-send leaves a trace ("sending") rather than a silent resend.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def claim_next(self) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._pool.fetchrow(
            """
            UPDATE emails SET state = 'sending', sending_since = now(), attempts = attempts + 1
            WHERE email_id = (
                SELECT email_id FROM emails
                WHERE state = 'queued' AND next_attempt_at <= now()
                ORDER BY next_attempt_at
                LIMIT 1
                FOR UPDATE SKIP LOCKED
            )
            RETURNING *
            """
        )
        return row

    async def mark_sent(self, email_id: uuid.UUID) -> None:
        await self._pool.execute(
            """
            UPDATE emails SET state = 'sent', sent_at = now(), sending_since = NULL, last_error = NULL,
                message = CASE WHEN sensitive THEN NULL ELSE message END
            WHERE email_id = $1
            """,
            email_id,
        )

    async def mark_retry(self, email_id: uuid.UUID, error: str, delay_seconds: float) -> None:
        await self._pool.execute(
            """
            UPDATE emails SET state = 'queued', sending_since = NULL, last_error = $2,
                next_attempt_at = now() + make_interval(secs => $3)
            WHERE email_id = $1
            """,
            email_id,
            error[:500],
            delay_seconds,
        )

    async def mark_failed(self, email_id: uuid.UUID, error: str) -> None:
        await self._pool.execute(
            "UPDATE emails SET state = 'failed', sending_since = NULL, last_error = $2 WHERE email_id = $1",
            email_id,
            error[:500],
        )

    async def mark_interrupted(self, older_than_seconds: float) -> int:
        status: str = await self._pool.execute(
            """
            UPDATE emails SET state = 'interrupted', sending_since = NULL,
                last_error = 'interrupted while sending: not sent again, so that it is never received twice'
            WHERE state = 'sending' AND sending_since < now() - make_interval(secs => $1)
            """,
            older_than_seconds,
        )
        return int(status.split()[-1])

    async def requeue(self, email_id: uuid.UUID) -> bool:
        """An operator's decision to send a failed or interrupted e-mail again."""
        status: str = await self._pool.execute(
            """
            UPDATE emails SET state = 'queued', next_attempt_at = now(), last_error = NULL
            WHERE email_id = $1 AND state IN ('failed', 'interrupted') AND NOT sensitive
            """,
            email_id,
        )
        return status.endswith(" 1")

    async def listing(self, *, to: str | None, state: str | None, limit: int) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            """
            SELECT email_id, event_id, purpose, town_id, to_address, subject, state, attempts, last_error,
                   created_at, sent_at
            FROM emails
            WHERE ($1::text IS NULL OR to_address = $1) AND ($2::text IS NULL OR state = $2)
            ORDER BY created_at DESC
            LIMIT $3
            """,
            to,
            state,
            limit,
        )
        return [dict(r) for r in rows]
