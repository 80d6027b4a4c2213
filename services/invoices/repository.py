"""SQL of the invoices service. A unit of work carries one transaction and its repositories."""

from __future__ import annotations

import hashlib
import uuid

import asyncpg

from services.invoices.domain import Debtor, Regie, Town
from shared.plumbing.uow import Connection, UnitOfWork


class TownRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def by_slug(self, slug: str) -> Town | None:
        row = await self._conn.fetchrow("SELECT * FROM towns WHERE slug = $1", slug)
        return await self._load(row) if row else None

    async def by_id(self, town_id: uuid.UUID) -> Town | None:
        row = await self._conn.fetchrow("SELECT * FROM towns WHERE town_id = $1", town_id)
        return await self._load(row) if row else None

    async def by_host(self, host: str) -> Town | None:
        row = await self._conn.fetchrow(
            "SELECT t.* FROM towns t JOIN town_hosts h USING (town_id) WHERE h.host = $1", host
        )
        return await self._load(row) if row else None

    async def _load(self, row: asyncpg.Record) -> Town:
        hosts = await self._conn.fetch(
            "SELECT host FROM town_hosts WHERE town_id = $1 ORDER BY host", row["town_id"]
        )
        regies = await self._conn.fetch(
            "SELECT * FROM regies WHERE town_id = $1 ORDER BY code", row["town_id"]
        )
        return Town(
            town_id=row["town_id"],
            slug=row["slug"],
            name=row["name"],
            public_url=row["public_url"],
            hosts=tuple(h["host"] for h in hosts),
            contact_email=row["contact_email"],
            logo_url=row["logo_url"],
            alerts_enabled=row["alerts_enabled"],
            password_min_length=row["password_min_length"],
            regies=tuple(
                Regie(
                    regie_id=r["regie_id"],
                    code=r["code"],
                    name=r["name"],
                    payfip_client_number=r["payfip_client_number"],
                    payfip_mode=r["payfip_mode"],
                    online_payment_enabled=r["online_payment_enabled"],
                    grouped_payment_allowed=r["grouped_payment_allowed"],
                )
                for r in regies
            ),
        )

    async def host_owner(self, host: str) -> uuid.UUID | None:
        owner: uuid.UUID | None = await self._conn.fetchval(
            "SELECT town_id FROM town_hosts WHERE host = $1", host
        )
        return owner

    async def save(self, town: Town) -> None:
        """Insert or update a town with its hosts and régies (régies are matched by code, never deleted:
        invoices refer to them)."""
        await self._conn.execute(
            """
            INSERT INTO towns (town_id, slug, name, public_url, contact_email, logo_url, alerts_enabled,
                               password_min_length)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (town_id) DO UPDATE SET
                name = EXCLUDED.name, public_url = EXCLUDED.public_url, contact_email = EXCLUDED.contact_email,
                logo_url = EXCLUDED.logo_url, alerts_enabled = EXCLUDED.alerts_enabled,
                password_min_length = EXCLUDED.password_min_length, updated_at = now()
            """,
            town.town_id,
            town.slug,
            town.name,
            town.public_url,
            town.contact_email,
            town.logo_url,
            town.alerts_enabled,
            town.password_min_length,
        )
        await self._conn.execute("DELETE FROM town_hosts WHERE town_id = $1", town.town_id)
        await self._conn.executemany(
            "INSERT INTO town_hosts (host, town_id) VALUES ($1, $2)", [(h, town.town_id) for h in town.hosts]
        )
        for regie in town.regies:
            await self._conn.execute(
                """
                INSERT INTO regies (regie_id, town_id, code, name, payfip_client_number, payfip_mode,
                                    online_payment_enabled, grouped_payment_allowed)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                ON CONFLICT (town_id, code) DO UPDATE SET
                    name = EXCLUDED.name, payfip_client_number = EXCLUDED.payfip_client_number,
                    payfip_mode = EXCLUDED.payfip_mode, online_payment_enabled = EXCLUDED.online_payment_enabled,
                    grouped_payment_allowed = EXCLUDED.grouped_payment_allowed
                """,
                regie.regie_id,
                town.town_id,
                regie.code,
                regie.name,
                regie.payfip_client_number,
                regie.payfip_mode,
                regie.online_payment_enabled,
                regie.grouped_payment_allowed,
            )


def hash_api_key(raw_key: str) -> bytes:
    # Keys are 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(raw_key.encode()).digest()


class ApiKeyRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def add(self, town_id: uuid.UUID, raw_key: str, label: str) -> uuid.UUID:
        key_id = uuid.uuid4()
        await self._conn.execute(
            "INSERT INTO town_api_keys (key_id, town_id, key_hash, label) VALUES ($1, $2, $3, $4)",
            key_id,
            town_id,
            hash_api_key(raw_key),
            label,
        )
        return key_id

    async def town_of(self, raw_key: str) -> uuid.UUID | None:
        town_id: uuid.UUID | None = await self._conn.fetchval(
            "SELECT town_id FROM town_api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
            hash_api_key(raw_key),
        )
        return town_id

    async def revoke(self, town_id: uuid.UUID, key_id: uuid.UUID) -> bool:
        status: str = await self._conn.execute(
            "UPDATE town_api_keys SET revoked_at = now() WHERE key_id = $1 AND town_id = $2 AND revoked_at IS NULL",
            key_id,
            town_id,
        )
        return status.endswith(" 1")


class DebtorRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def by_reference(self, town_id: uuid.UUID, reference: str) -> Debtor | None:
        row = await self._conn.fetchrow(
            "SELECT * FROM debtors WHERE town_id = $1 AND reference = $2", town_id, reference
        )
        if row is None:
            return None
        emails = await self._conn.fetch(
            "SELECT email FROM debtor_emails WHERE debtor_id = $1 ORDER BY email", row["debtor_id"]
        )
        return Debtor(
            debtor_id=row["debtor_id"],
            town_id=row["town_id"],
            reference=row["reference"],
            name=row["name"],
            emails=tuple(e["email"] for e in emails),
        )

    async def save(self, debtor: Debtor) -> None:
        await self._conn.execute(
            """
            INSERT INTO debtors (debtor_id, town_id, reference, name) VALUES ($1, $2, $3, $4)
            ON CONFLICT (debtor_id) DO UPDATE SET name = EXCLUDED.name, updated_at = now()
            """,
            debtor.debtor_id,
            debtor.town_id,
            debtor.reference,
            debtor.name,
        )
        await self._conn.execute("DELETE FROM debtor_emails WHERE debtor_id = $1", debtor.debtor_id)
        await self._conn.executemany(
            "INSERT INTO debtor_emails (debtor_id, email) VALUES ($1, $2)",
            [(debtor.debtor_id, e) for e in debtor.emails],
        )


class InvoicesUnitOfWork(UnitOfWork):
    towns: TownRepository
    api_keys: ApiKeyRepository
    debtors: DebtorRepository

    def on_begin(self, conn: Connection) -> None:
        self.towns = TownRepository(conn)
        self.api_keys = ApiKeyRepository(conn)
        self.debtors = DebtorRepository(conn)
