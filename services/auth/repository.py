"""SQL of the auth service."""

from __future__ import annotations

import uuid

from shared.plumbing.uow import Connection, UnitOfWork


class TownDirectory:
    """Auth's copy of each town's settings, kept from invoices.town_configured."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def save(
        self, town_id: uuid.UUID, slug: str, name: str, public_url: str, password_min_length: int
    ) -> None:
        await self._conn.execute(
            """
            INSERT INTO towns (town_id, slug, name, public_url, password_min_length)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (town_id) DO UPDATE SET slug = EXCLUDED.slug, name = EXCLUDED.name,
                public_url = EXCLUDED.public_url, password_min_length = EXCLUDED.password_min_length,
                updated_at = now()
            """,
            town_id,
            slug,
            name,
            public_url,
            password_min_length,
        )


class KnownEmails:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def replace_for_debtor(self, town_id: uuid.UUID, debtor_id: uuid.UUID, emails: list[str]) -> None:
        await self._conn.execute(
            "DELETE FROM known_emails WHERE town_id = $1 AND debtor_id = $2", town_id, debtor_id
        )
        await self._conn.executemany(
            "INSERT INTO known_emails (town_id, debtor_id, email) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            [(town_id, debtor_id, email) for email in emails],
        )

    async def is_known(self, town_id: uuid.UUID, email: str) -> bool:
        return bool(
            await self._conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM known_emails WHERE town_id = $1 AND email = $2)", town_id, email
            )
        )


class AuthUnitOfWork(UnitOfWork):
    towns: TownDirectory
    known_emails: KnownEmails

    def on_begin(self, conn: Connection) -> None:
        self.towns = TownDirectory(conn)
        self.known_emails = KnownEmails(conn)
