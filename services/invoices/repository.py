"""SQL of the invoices service. A unit of work carries one transaction and its repositories."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg

from services.invoices.domain import (
    Account,
    ContactMessage,
    Debtor,
    Declaration,
    Incident,
    Invoice,
    Regie,
    SettlementLine,
    Town,
)
from services.invoices.import_format import ImportDebtor, ImportRow
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

    async def relink_accounts(self, town_id: uuid.UUID, debtor_ids: list[uuid.UUID]) -> tuple[int, int]:
        """Debtors imported or changed: link them to the accounts whose e-mail they carry (the resident
        proved owning that address at activation), and unlink the accounts whose address the office took
        off (neither the address that made the link nor the account's current one is the debtor's any
        more). Returns (linked, unlinked)."""
        if not debtor_ids:
            return 0, 0
        linked: str = await self._conn.execute(
            """
            INSERT INTO account_debtors (account_id, debtor_id, town_id, linked_email)
            SELECT a.account_id, e.debtor_id, a.town_id, e.email
            FROM debtor_emails e
            JOIN debtors d ON d.debtor_id = e.debtor_id
            JOIN accounts a ON a.town_id = d.town_id AND a.email = e.email
            WHERE d.town_id = $1 AND e.debtor_id = ANY($2::uuid[])
            ON CONFLICT DO NOTHING
            """,
            town_id,
            debtor_ids,
        )
        unlinked: str = await self._conn.execute(
            """
            DELETE FROM account_debtors l USING accounts a
            WHERE l.town_id = $1 AND l.debtor_id = ANY($2::uuid[]) AND l.linked_email IS NOT NULL
              AND a.account_id = l.account_id
              AND NOT EXISTS (
                  SELECT 1 FROM debtor_emails e
                  WHERE e.debtor_id = l.debtor_id AND e.email IN (l.linked_email, a.email)
              )
            """,
            town_id,
            debtor_ids,
        )
        return int(linked.split()[-1]), int(unlinked.split()[-1])


# --- invoices --------------------------------------------------------------------------------------

_INVOICE_SELECT = """
    SELECT i.invoice_id, i.town_id, i.number, i.issued_on, i.due_on, i.amount_cents, i.object, i.state,
           i.payfip_reference, i.payfip_year, i.cancel_reason, i.settled_at, i.created_at, i.updated_at,
           i.debtor_id, d.reference AS debtor_reference, d.name AS debtor_name,
           r.regie_id, r.code AS regie_code, r.name AS regie_name, r.payfip_client_number, r.payfip_mode,
           r.online_payment_enabled, r.grouped_payment_allowed,
           p.source AS pdf_source
    FROM invoices i
    JOIN regies r ON r.regie_id = i.regie_id
    JOIN debtors d ON d.debtor_id = i.debtor_id
    LEFT JOIN invoice_pdfs p ON p.invoice_id = i.invoice_id
"""

# The only way a resident reaches an invoice: through a debtor linked to their account, in their town.
_RESIDENT_SCOPE = """
    i.town_id = $1 AND EXISTS (
        SELECT 1 FROM account_debtors l
        WHERE l.account_id = $2 AND l.town_id = $1 AND l.debtor_id = i.debtor_id
    )
"""

_NEWEST_FIRST = "ORDER BY i.issued_on DESC, i.number DESC"


def _invoice(row: asyncpg.Record) -> Invoice:
    return Invoice(
        invoice_id=row["invoice_id"],
        town_id=row["town_id"],
        number=row["number"],
        issued_on=row["issued_on"],
        due_on=row["due_on"],
        amount_cents=row["amount_cents"],
        object=row["object"],
        state=row["state"],
        payfip_reference=row["payfip_reference"],
        payfip_year=row["payfip_year"],
        regie=Regie(
            regie_id=row["regie_id"],
            code=row["regie_code"],
            name=row["regie_name"],
            payfip_client_number=row["payfip_client_number"],
            payfip_mode=row["payfip_mode"],
            online_payment_enabled=row["online_payment_enabled"],
            grouped_payment_allowed=row["grouped_payment_allowed"],
        ),
        debtor_id=row["debtor_id"],
        debtor_reference=row["debtor_reference"],
        debtor_name=row["debtor_name"],
        cancel_reason=row["cancel_reason"],
        settled_at=row["settled_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        pdf_source=row["pdf_source"],
    )


@dataclass(frozen=True)
class ResidentTotals:
    count: int
    unpaid_count: int
    unpaid_cents: int


class InvoiceRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    # Residents: always town AND account.

    async def of_account(
        self, town_id: uuid.UUID, account_id: uuid.UUID, *, limit: int, offset: int
    ) -> list[Invoice]:
        rows = await self._conn.fetch(
            f"{_INVOICE_SELECT} WHERE {_RESIDENT_SCOPE} {_NEWEST_FIRST}, i.invoice_id LIMIT $3 OFFSET $4",
            town_id,
            account_id,
            limit,
            offset,
        )
        return [_invoice(r) for r in rows]

    async def totals_of_account(self, town_id: uuid.UUID, account_id: uuid.UUID) -> ResidentTotals:
        row = await self._conn.fetchrow(
            f"""
            SELECT count(*) AS count,
                   count(*) FILTER (WHERE i.state = 'unpaid') AS unpaid_count,
                   coalesce(sum(i.amount_cents) FILTER (WHERE i.state = 'unpaid'), 0) AS unpaid_cents
            FROM invoices i WHERE {_RESIDENT_SCOPE}
            """,
            town_id,
            account_id,
        )
        return ResidentTotals(row["count"], row["unpaid_count"], int(row["unpaid_cents"]))

    async def of_account_by_id(
        self, town_id: uuid.UUID, account_id: uuid.UUID, invoice_id: uuid.UUID, *, lock: bool = False
    ) -> Invoice | None:
        row = await self._conn.fetchrow(
            f"{_INVOICE_SELECT} WHERE {_RESIDENT_SCOPE} AND i.invoice_id = $3"
            + (" FOR UPDATE OF i" if lock else ""),
            town_id,
            account_id,
            invoice_id,
        )
        return _invoice(row) if row else None

    async def of_account_by_ids(
        self, town_id: uuid.UUID, account_id: uuid.UUID, invoice_ids: list[uuid.UUID]
    ) -> list[Invoice]:
        rows = await self._conn.fetch(
            f"{_INVOICE_SELECT} WHERE {_RESIDENT_SCOPE} AND i.invoice_id = ANY($3::uuid[])",
            town_id,
            account_id,
            invoice_ids,
        )
        return [_invoice(r) for r in rows]

    # The office and the consumers: always town.

    async def by_number(self, town_id: uuid.UUID, number: str, *, lock: bool = False) -> Invoice | None:
        row = await self._conn.fetchrow(
            f"{_INVOICE_SELECT} WHERE i.town_id = $1 AND i.number = $2"
            + (" FOR UPDATE OF i" if lock else ""),
            town_id,
            number,
        )
        return _invoice(row) if row else None

    async def by_id(self, town_id: uuid.UUID, invoice_id: uuid.UUID, *, lock: bool = False) -> Invoice | None:
        row = await self._conn.fetchrow(
            f"{_INVOICE_SELECT} WHERE i.town_id = $1 AND i.invoice_id = $2"
            + (" FOR UPDATE OF i" if lock else ""),
            town_id,
            invoice_id,
        )
        return _invoice(row) if row else None

    async def of_town(
        self,
        town_id: uuid.UUID,
        *,
        state: str | None,
        number: str | None,
        debtor_reference: str | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Invoice], int]:
        where = """
            i.town_id = $1 AND ($2::text IS NULL OR i.state = $2) AND ($3::text IS NULL OR i.number = $3)
            AND ($4::text IS NULL OR d.reference = $4)
        """
        rows = await self._conn.fetch(
            f"{_INVOICE_SELECT} WHERE {where} {_NEWEST_FIRST}, i.invoice_id LIMIT $5 OFFSET $6",
            town_id,
            state,
            number,
            debtor_reference,
            limit,
            offset,
        )
        total: int = await self._conn.fetchval(
            f"SELECT count(*) FROM invoices i JOIN debtors d ON d.debtor_id = i.debtor_id WHERE {where}",
            town_id,
            state,
            number,
            debtor_reference,
        )
        return [_invoice(r) for r in rows], total

    async def set_state(
        self,
        invoice_id: uuid.UUID,
        state: str,
        *,
        settled_at: datetime | None = None,
        cancel_reason: str | None = None,
    ) -> None:
        await self._conn.execute(
            """
            UPDATE invoices SET state = $2, settled_at = $3, cancel_reason = $4, updated_at = now()
            WHERE invoice_id = $1
            """,
            invoice_id,
            state,
            settled_at,
            cancel_reason,
        )


# --- PDFs --------------------------------------------------------------------------------------------


class PdfRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def content(self, invoice_id: uuid.UUID) -> bytes | None:
        content: bytes | None = await self._conn.fetchval(
            "SELECT content FROM invoice_pdfs WHERE invoice_id = $1", invoice_id
        )
        return content

    async def store(self, town_id: uuid.UUID, invoice_id: uuid.UUID, content: bytes, *, source: str) -> bool:
        """Keep a PDF. An office PDF replaces anything; a generated one never replaces an office one
        (two first downloads at once both draw it: the second simply finds it there). True if stored."""
        digest = hashlib.sha256(content).hexdigest()
        if source == "office":
            status: str = await self._conn.execute(
                """
                INSERT INTO invoice_pdfs (invoice_id, town_id, source, content, sha256)
                VALUES ($1, $2, 'office', $3, $4)
                ON CONFLICT (invoice_id) DO UPDATE SET
                    source = 'office', content = EXCLUDED.content, sha256 = EXCLUDED.sha256, created_at = now()
                WHERE invoice_pdfs.source <> 'office' OR invoice_pdfs.sha256 <> EXCLUDED.sha256
                """,
                invoice_id,
                town_id,
                content,
                digest,
            )
        else:
            status = await self._conn.execute(
                """
                INSERT INTO invoice_pdfs (invoice_id, town_id, source, content, sha256)
                VALUES ($1, $2, 'generated', $3, $4) ON CONFLICT (invoice_id) DO NOTHING
                """,
                invoice_id,
                town_id,
                content,
                digest,
            )
        return status.endswith(" 1")

    async def forget_generated(self, invoice_ids: list[uuid.UUID]) -> None:
        """A re-import changed these invoices: their drawn PDFs tell the old data."""
        if invoice_ids:
            await self._conn.execute(
                "DELETE FROM invoice_pdfs WHERE invoice_id = ANY($1::uuid[]) AND source = 'generated'",
                invoice_ids,
            )


# --- imports -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpsertedInvoices:
    created: list[asyncpg.Record]
    updated_ids: list[uuid.UUID]
    skipped_paid_numbers: list[str]


@dataclass(frozen=True)
class ImportCounts:
    rows: int
    created: int
    updated: int
    unchanged: int
    skipped_paid: int
    debtors_changed: int
    pdfs_stored: int
    alerts: int


@dataclass(frozen=True)
class ImportRecord:
    import_id: uuid.UUID
    source: str
    checksum: str
    encoding: str
    counts: ImportCounts
    created_at: datetime


class ImportRepository:
    """Set-based import: COPY into temporary staging tables, then one statement per table."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def lock_town(self, town_id: uuid.UUID) -> None:
        """One import at a time per town (two at once would fight over the same numbers)."""
        await self._conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text, 4))", town_id)

    async def begin(
        self, import_id: uuid.UUID, town_id: uuid.UUID, source: str, checksum: str, encoding: str
    ) -> None:
        await self._conn.execute(
            """
            INSERT INTO imports (import_id, town_id, source, checksum, encoding, row_count, created_count,
                                 updated_count, unchanged_count, skipped_paid_count, debtors_changed_count,
                                 pdfs_stored_count, alerts_count)
            VALUES ($1, $2, $3, $4, $5, 0, 0, 0, 0, 0, 0, 0, 0)
            """,
            import_id,
            town_id,
            source,
            checksum,
            encoding,
        )

    async def finish(self, import_id: uuid.UUID, counts: ImportCounts) -> None:
        await self._conn.execute(
            """
            UPDATE imports SET row_count = $2, created_count = $3, updated_count = $4, unchanged_count = $5,
                skipped_paid_count = $6, debtors_changed_count = $7, pdfs_stored_count = $8, alerts_count = $9
            WHERE import_id = $1
            """,
            import_id,
            counts.rows,
            counts.created,
            counts.updated,
            counts.unchanged,
            counts.skipped_paid,
            counts.debtors_changed,
            counts.pdfs_stored,
            counts.alerts,
        )

    async def stage(
        self, rows: Sequence[ImportRow], debtors: Sequence[ImportDebtor], regie_ids: dict[str, uuid.UUID]
    ) -> None:
        await self._conn.execute(
            """
            CREATE TEMPORARY TABLE import_rows (
                line integer NOT NULL, number text NOT NULL, issued_on date NOT NULL, due_on date,
                amount_cents bigint NOT NULL, object text NOT NULL, regie_id uuid NOT NULL,
                debtor_reference text NOT NULL, payfip_reference text NOT NULL, payfip_year integer NOT NULL
            ) ON COMMIT DROP;
            CREATE TEMPORARY TABLE import_debtors (
                reference text NOT NULL, name text NOT NULL, emails text[] NOT NULL
            ) ON COMMIT DROP;
            """
        )
        await self._conn.copy_records_to_table(
            "import_rows",
            records=[
                (
                    r.line,
                    r.number,
                    r.issued_on,
                    r.due_on,
                    r.amount_cents,
                    r.object,
                    regie_ids[r.regie_code],
                    r.debtor_reference,
                    r.payfip_reference,
                    r.payfip_year,
                )
                for r in rows
            ],
        )
        await self._conn.copy_records_to_table(
            "import_debtors", records=[(d.reference, d.name, list(d.emails)) for d in debtors]
        )
        # Temporary tables are never analysed by autovacuum: without this the planner guesses badly.
        await self._conn.execute("ANALYZE import_rows; ANALYZE import_debtors")

    async def upsert_debtors(self, town_id: uuid.UUID) -> list[Debtor]:
        """Create new debtors, rename renamed ones, replace changed e-mail sets; return those that changed
        (with their full current data, for the events auth needs)."""
        renamed_or_new = await self._conn.fetch(
            """
            INSERT INTO debtors AS d (debtor_id, town_id, reference, name)
            SELECT gen_random_uuid(), $1, reference, name FROM import_debtors
            ON CONFLICT (town_id, reference) DO UPDATE SET name = EXCLUDED.name, updated_at = now()
                WHERE d.name IS DISTINCT FROM EXCLUDED.name
            RETURNING d.debtor_id
            """,
            town_id,
        )
        # E-mail sets compared as sets (both sides are deduplicated), so their order never matters.
        emails_changed = await self._conn.fetch(
            """
            WITH wanted AS (
                SELECT d.debtor_id, i.emails FROM import_debtors i
                JOIN debtors d ON d.town_id = $1 AND d.reference = i.reference
            ), current AS (
                SELECT e.debtor_id, array_agg(e.email) AS emails FROM debtor_emails e
                WHERE e.debtor_id IN (SELECT debtor_id FROM wanted) GROUP BY e.debtor_id
            )
            SELECT w.debtor_id FROM wanted w LEFT JOIN current c USING (debtor_id)
            WHERE NOT (w.emails @> coalesce(c.emails, '{}') AND coalesce(c.emails, '{}') @> w.emails)
            """,
            town_id,
        )
        email_ids = [r["debtor_id"] for r in emails_changed]
        if email_ids:
            await self._conn.execute("DELETE FROM debtor_emails WHERE debtor_id = ANY($1::uuid[])", email_ids)
            await self._conn.execute(
                """
                INSERT INTO debtor_emails (debtor_id, email)
                SELECT d.debtor_id, unnest(i.emails) FROM import_debtors i
                JOIN debtors d ON d.town_id = $1 AND d.reference = i.reference
                WHERE d.debtor_id = ANY($2::uuid[])
                """,
                town_id,
                email_ids,
            )
        changed_ids = list({r["debtor_id"] for r in renamed_or_new} | set(email_ids))
        if not changed_ids:
            return []
        rows = await self._conn.fetch(
            """
            SELECT d.debtor_id, d.reference, i.name, i.emails FROM import_debtors i
            JOIN debtors d ON d.town_id = $1 AND d.reference = i.reference
            WHERE d.debtor_id = ANY($2::uuid[]) ORDER BY d.reference
            """,
            town_id,
            changed_ids,
        )
        return [
            Debtor(
                debtor_id=r["debtor_id"],
                town_id=town_id,
                reference=r["reference"],
                name=r["name"],
                emails=tuple(sorted(r["emails"])),
            )
            for r in rows
        ]

    async def upsert_invoices(self, town_id: uuid.UUID, import_id: uuid.UUID) -> UpsertedInvoices:
        """One INSERT … ON CONFLICT for the whole file. A row that differs from its invoice updates it,
        unless the invoice is paid (the office cannot rewrite money received); a cancelled or declared
        invoice takes the new data and keeps its state."""
        upserted = await self._conn.fetch(
            """
            INSERT INTO invoices AS inv (invoice_id, town_id, number, debtor_id, regie_id, issued_on, due_on,
                                         amount_cents, object, payfip_reference, payfip_year,
                                         created_import_id, updated_import_id)
            SELECT gen_random_uuid(), $1, r.number, d.debtor_id, r.regie_id, r.issued_on, r.due_on,
                   r.amount_cents, r.object, r.payfip_reference, r.payfip_year, $2, $2
            FROM import_rows r JOIN debtors d ON d.town_id = $1 AND d.reference = r.debtor_reference
            ON CONFLICT (town_id, number) DO UPDATE SET
                debtor_id = EXCLUDED.debtor_id, regie_id = EXCLUDED.regie_id, issued_on = EXCLUDED.issued_on,
                due_on = EXCLUDED.due_on, amount_cents = EXCLUDED.amount_cents, object = EXCLUDED.object,
                payfip_reference = EXCLUDED.payfip_reference, payfip_year = EXCLUDED.payfip_year,
                updated_import_id = EXCLUDED.updated_import_id, updated_at = now()
            WHERE inv.state NOT IN ('paid_online', 'paid_elsewhere')
              AND (inv.debtor_id, inv.regie_id, inv.issued_on, inv.due_on, inv.amount_cents, inv.object,
                   inv.payfip_reference, inv.payfip_year)
                  IS DISTINCT FROM
                  (EXCLUDED.debtor_id, EXCLUDED.regie_id, EXCLUDED.issued_on, EXCLUDED.due_on,
                   EXCLUDED.amount_cents, EXCLUDED.object, EXCLUDED.payfip_reference, EXCLUDED.payfip_year)
            RETURNING inv.invoice_id, inv.number, inv.debtor_id, inv.amount_cents, inv.issued_on, inv.due_on,
                      inv.object, (inv.xmax = 0) AS created
            """,
            town_id,
            import_id,
        )
        skipped = await self._conn.fetch(
            """
            SELECT r.number FROM import_rows r
            JOIN debtors d ON d.town_id = $1 AND d.reference = r.debtor_reference
            JOIN invoices inv ON inv.town_id = $1 AND inv.number = r.number
            WHERE inv.state IN ('paid_online', 'paid_elsewhere')
              AND (inv.debtor_id, inv.regie_id, inv.issued_on, inv.due_on, inv.amount_cents, inv.object,
                   inv.payfip_reference, inv.payfip_year)
                  IS DISTINCT FROM
                  (d.debtor_id, r.regie_id, r.issued_on, r.due_on, r.amount_cents, r.object,
                   r.payfip_reference, r.payfip_year)
            ORDER BY r.line
            """,
            town_id,
        )
        return UpsertedInvoices(
            created=[r for r in upserted if r["created"]],
            updated_ids=[r["invoice_id"] for r in upserted if not r["created"]],
            skipped_paid_numbers=[r["number"] for r in skipped],
        )

    async def store_office_pdfs(self, town_id: uuid.UUID, pdfs: dict[str, bytes]) -> int:
        """PDFs of a zip, by invoice number; an identical PDF already there is left alone."""
        if not pdfs:
            return 0
        await self._conn.execute(
            "CREATE TEMPORARY TABLE import_pdfs (number text NOT NULL, content bytea NOT NULL,"
            " sha256 text NOT NULL) ON COMMIT DROP"
        )
        await self._conn.copy_records_to_table(
            "import_pdfs",
            records=[
                (number, content, hashlib.sha256(content).hexdigest()) for number, content in pdfs.items()
            ],
        )
        status: str = await self._conn.execute(
            """
            INSERT INTO invoice_pdfs AS p (invoice_id, town_id, source, content, sha256)
            SELECT i.invoice_id, $1, 'office', s.content, s.sha256
            FROM import_pdfs s JOIN invoices i ON i.town_id = $1 AND i.number = s.number
            ON CONFLICT (invoice_id) DO UPDATE SET
                source = 'office', content = EXCLUDED.content, sha256 = EXCLUDED.sha256, created_at = now()
            WHERE p.source <> 'office' OR p.sha256 <> EXCLUDED.sha256
            """,
            town_id,
        )
        return int(status.split()[-1])

    async def alert_recipients(
        self, town_id: uuid.UUID, invoice_ids: list[uuid.UUID]
    ) -> list[asyncpg.Record]:
        """(account, new invoice) pairs for the residents who want alerts: one row per invoice each
        account sees, newest first."""
        if not invoice_ids:
            return []
        rows: list[asyncpg.Record] = await self._conn.fetch(
            """
            SELECT a.account_id, a.email, i.invoice_id, i.number, i.amount_cents, i.issued_on, i.due_on,
                   i.object
            FROM invoices i
            JOIN account_debtors l ON l.debtor_id = i.debtor_id AND l.town_id = $1
            JOIN accounts a ON a.account_id = l.account_id AND a.town_id = $1
            WHERE i.town_id = $1 AND i.invoice_id = ANY($2::uuid[]) AND a.alerts_enabled
            ORDER BY a.account_id, i.issued_on DESC, i.number DESC
            """,
            town_id,
            invoice_ids,
        )
        return rows

    async def recent(self, town_id: uuid.UUID, *, limit: int) -> list[ImportRecord]:
        rows = await self._conn.fetch(
            "SELECT * FROM imports WHERE town_id = $1 ORDER BY created_at DESC LIMIT $2", town_id, limit
        )
        return [
            ImportRecord(
                import_id=r["import_id"],
                source=r["source"],
                checksum=r["checksum"],
                encoding=r["encoding"],
                counts=ImportCounts(
                    rows=r["row_count"],
                    created=r["created_count"],
                    updated=r["updated_count"],
                    unchanged=r["unchanged_count"],
                    skipped_paid=r["skipped_paid_count"],
                    debtors_changed=r["debtors_changed_count"],
                    pdfs_stored=r["pdfs_stored_count"],
                    alerts=r["alerts_count"],
                ),
                created_at=r["created_at"],
            )
            for r in rows
        ]


# --- accounts (projection of auth's accounts) --------------------------------------------------------


class AccountRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def get(self, town_id: uuid.UUID, account_id: uuid.UUID, *, lock: bool = False) -> Account | None:
        row = await self._conn.fetchrow(
            "SELECT account_id, town_id, email, alerts_enabled FROM accounts WHERE account_id = $1 AND town_id = $2"
            + (" FOR UPDATE" if lock else ""),
            account_id,
            town_id,
        )
        return (
            Account(row["account_id"], row["town_id"], row["email"], row["alerts_enabled"]) if row else None
        )

    async def record_email(
        self, town_id: uuid.UUID, account_id: uuid.UUID, email: str, *, as_of: datetime
    ) -> None:
        """Create the account or change its e-mail, unless a newer event already set it (events may
        arrive in any order)."""
        await self._conn.execute(
            """
            INSERT INTO accounts AS a (account_id, town_id, email, email_set_at) VALUES ($1, $2, $3, $4)
            ON CONFLICT (account_id) DO UPDATE SET email = EXCLUDED.email, email_set_at = EXCLUDED.email_set_at,
                updated_at = now()
            WHERE a.email_set_at <= EXCLUDED.email_set_at AND a.town_id = EXCLUDED.town_id
            """,
            account_id,
            town_id,
            email,
            as_of,
        )

    async def link_debtors_with_email(self, town_id: uuid.UUID, account_id: uuid.UUID, email: str) -> int:
        status: str = await self._conn.execute(
            """
            INSERT INTO account_debtors (account_id, debtor_id, town_id, linked_email)
            SELECT $2, d.debtor_id, d.town_id, $3 FROM debtors d
            JOIN debtor_emails e ON e.debtor_id = d.debtor_id
            WHERE d.town_id = $1 AND e.email = $3
            ON CONFLICT DO NOTHING
            """,
            town_id,
            account_id,
            email,
        )
        return int(status.split()[-1])

    async def set_alerts(self, town_id: uuid.UUID, account_id: uuid.UUID, enabled: bool) -> bool:
        status: str = await self._conn.execute(
            "UPDATE accounts SET alerts_enabled = $3, updated_at = now() WHERE town_id = $1 AND account_id = $2",
            town_id,
            account_id,
            enabled,
        )
        return status.endswith(" 1")


# --- declarations, messages, settlements, incidents --------------------------------------------------

_DECLARATION_SELECT = """
    SELECT x.*, i.number AS invoice_number, a.email AS account_email
    FROM declarations x JOIN invoices i ON i.invoice_id = x.invoice_id
    LEFT JOIN accounts a ON a.account_id = x.account_id
"""


def _declaration(row: asyncpg.Record) -> Declaration:
    return Declaration(
        declaration_id=row["declaration_id"],
        town_id=row["town_id"],
        invoice_id=row["invoice_id"],
        invoice_number=row["invoice_number"],
        account_id=row["account_id"],
        account_email=row["account_email"],
        method=row["method"],
        paid_on=row["paid_on"],
        comment=row["comment"],
        state=row["state"],
        answer_comment=row["answer_comment"],
        answered_at=row["answered_at"],
        created_at=row["created_at"],
    )


class DeclarationRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def add(
        self,
        town_id: uuid.UUID,
        invoice_id: uuid.UUID,
        account_id: uuid.UUID,
        method: str,
        paid_on: date,
        comment: str,
    ) -> uuid.UUID:
        declaration_id = uuid.uuid4()
        await self._conn.execute(
            """
            INSERT INTO declarations (declaration_id, town_id, invoice_id, account_id, method, paid_on, comment)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            """,
            declaration_id,
            town_id,
            invoice_id,
            account_id,
            method,
            paid_on,
            comment,
        )
        return declaration_id

    async def get(
        self, town_id: uuid.UUID, declaration_id: uuid.UUID, *, lock: bool = False
    ) -> Declaration | None:
        row = await self._conn.fetchrow(
            f"{_DECLARATION_SELECT} WHERE x.town_id = $1 AND x.declaration_id = $2"
            + (" FOR UPDATE OF x" if lock else ""),
            town_id,
            declaration_id,
        )
        return _declaration(row) if row else None

    async def pending_of_invoice(self, invoice_id: uuid.UUID) -> Declaration | None:
        row = await self._conn.fetchrow(
            f"{_DECLARATION_SELECT} WHERE x.invoice_id = $1 AND x.state = 'pending' FOR UPDATE OF x",
            invoice_id,
        )
        return _declaration(row) if row else None

    async def latest_of_invoice(self, invoice_id: uuid.UUID) -> Declaration | None:
        row = await self._conn.fetchrow(
            f"{_DECLARATION_SELECT} WHERE x.invoice_id = $1 ORDER BY x.created_at DESC LIMIT 1", invoice_id
        )
        return _declaration(row) if row else None

    async def answer(self, declaration_id: uuid.UUID, state: str, comment: str) -> None:
        await self._conn.execute(
            "UPDATE declarations SET state = $2, answer_comment = $3, answered_at = now() WHERE declaration_id = $1",
            declaration_id,
            state,
            comment,
        )

    async def of_town(
        self, town_id: uuid.UUID, *, state: str | None, limit: int, offset: int
    ) -> tuple[list[Declaration], int]:
        rows = await self._conn.fetch(
            f"""{_DECLARATION_SELECT} WHERE x.town_id = $1 AND ($2::text IS NULL OR x.state = $2)
            ORDER BY x.created_at DESC, x.declaration_id LIMIT $3 OFFSET $4""",
            town_id,
            state,
            limit,
            offset,
        )
        total: int = await self._conn.fetchval(
            "SELECT count(*) FROM declarations x WHERE x.town_id = $1 AND ($2::text IS NULL OR x.state = $2)",
            town_id,
            state,
        )
        return [_declaration(r) for r in rows], total


class MessageRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def count_since(self, account_id: uuid.UUID, since: datetime) -> int:
        count: int = await self._conn.fetchval(
            "SELECT count(*) FROM contact_messages WHERE account_id = $1 AND created_at > $2",
            account_id,
            since,
        )
        return count

    async def oldest_since(self, account_id: uuid.UUID, since: datetime) -> datetime | None:
        oldest: datetime | None = await self._conn.fetchval(
            "SELECT min(created_at) FROM contact_messages WHERE account_id = $1 AND created_at > $2",
            account_id,
            since,
        )
        return oldest

    async def add(self, message: ContactMessage) -> None:
        await self._conn.execute(
            """
            INSERT INTO contact_messages (message_id, town_id, account_id, resident_email, subject, body, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            """,
            message.message_id,
            message.town_id,
            message.account_id,
            message.resident_email,
            message.subject,
            message.body,
            message.created_at,
        )

    async def of_town(
        self, town_id: uuid.UUID, *, limit: int, offset: int
    ) -> tuple[list[ContactMessage], int]:
        rows = await self._conn.fetch(
            """
            SELECT * FROM contact_messages WHERE town_id = $1
            ORDER BY created_at DESC, message_id LIMIT $2 OFFSET $3
            """,
            town_id,
            limit,
            offset,
        )
        total: int = await self._conn.fetchval(
            "SELECT count(*) FROM contact_messages WHERE town_id = $1", town_id
        )
        return [
            ContactMessage(
                message_id=r["message_id"],
                town_id=r["town_id"],
                account_id=r["account_id"],
                resident_email=r["resident_email"],
                subject=r["subject"],
                body=r["body"],
                created_at=r["created_at"],
            )
            for r in rows
        ], total


class SettlementRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def record(
        self,
        *,
        town_id: uuid.UUID,
        invoice_id: uuid.UUID,
        payment_id: uuid.UUID,
        amount_cents: int,
        authorisation_number: str | None,
        payfip_reference: str,
        result_code: str,
        paid_at: datetime,
    ) -> bool:
        """False when this payment was already recorded for this invoice (it is applied once)."""
        inserted = await self._conn.fetchval(
            """
            INSERT INTO settlements (settlement_id, town_id, invoice_id, payment_id, amount_cents,
                                     authorisation_number, payfip_reference, result_code, paid_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            ON CONFLICT (payment_id, invoice_id) DO NOTHING RETURNING true
            """,
            uuid.uuid4(),
            town_id,
            invoice_id,
            payment_id,
            amount_cents,
            authorisation_number,
            payfip_reference,
            result_code,
            paid_at,
        )
        return bool(inserted)

    async def export(
        self, town_id: uuid.UUID, *, start: datetime | None, end: datetime | None
    ) -> list[SettlementLine]:
        rows = await self._conn.fetch(
            """
            SELECT s.paid_at, i.number, s.amount_cents, s.authorisation_number, s.payfip_reference,
                   i.payfip_year, r.code AS regie_code, r.payfip_client_number, d.reference AS debtor_reference,
                   d.name AS debtor_name, s.payment_id, s.result_code, i.state
            FROM settlements s
            JOIN invoices i ON i.invoice_id = s.invoice_id
            JOIN regies r ON r.regie_id = i.regie_id
            JOIN debtors d ON d.debtor_id = i.debtor_id
            WHERE s.town_id = $1 AND ($2::timestamptz IS NULL OR s.paid_at >= $2)
              AND ($3::timestamptz IS NULL OR s.paid_at < $3)
            ORDER BY s.paid_at, i.number
            """,
            town_id,
            start,
            end,
        )
        return [
            SettlementLine(
                paid_at=r["paid_at"],
                invoice_number=r["number"],
                amount_cents=r["amount_cents"],
                authorisation_number=r["authorisation_number"],
                payfip_reference=r["payfip_reference"],
                payfip_year=r["payfip_year"],
                regie_code=r["regie_code"],
                payfip_client_number=r["payfip_client_number"],
                debtor_reference=r["debtor_reference"],
                debtor_name=r["debtor_name"],
                payment_id=r["payment_id"],
                result_code=r["result_code"],
                invoice_state=r["state"],
            )
            for r in rows
        ]


class IncidentRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def add(
        self,
        town_id: uuid.UUID,
        kind: str,
        message: str,
        *,
        invoice_id: uuid.UUID | None,
        payment_id: uuid.UUID | None,
        details: dict[str, object],
    ) -> None:
        await self._conn.execute(
            """
            INSERT INTO incidents (incident_id, town_id, kind, invoice_id, payment_id, message, details)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            """,
            uuid.uuid4(),
            town_id,
            kind,
            invoice_id,
            payment_id,
            message,
            details,
        )

    async def of_town(self, town_id: uuid.UUID, *, limit: int, offset: int) -> tuple[list[Incident], int]:
        rows = await self._conn.fetch(
            """
            SELECT x.*, i.number AS invoice_number FROM incidents x LEFT JOIN invoices i ON i.invoice_id = x.invoice_id
            WHERE x.town_id = $1 ORDER BY x.created_at DESC, x.incident_id LIMIT $2 OFFSET $3
            """,
            town_id,
            limit,
            offset,
        )
        total: int = await self._conn.fetchval("SELECT count(*) FROM incidents WHERE town_id = $1", town_id)
        return [
            Incident(
                incident_id=r["incident_id"],
                town_id=r["town_id"],
                kind=r["kind"],
                invoice_id=r["invoice_id"],
                invoice_number=r["invoice_number"],
                payment_id=r["payment_id"],
                message=r["message"],
                details=dict(r["details"]),
                created_at=r["created_at"],
            )
            for r in rows
        ], total


class InvoicesUnitOfWork(UnitOfWork):
    towns: TownRepository
    api_keys: ApiKeyRepository
    debtors: DebtorRepository
    invoices: InvoiceRepository
    pdfs: PdfRepository
    imports: ImportRepository
    accounts: AccountRepository
    declarations: DeclarationRepository
    messages: MessageRepository
    settlements: SettlementRepository
    incidents: IncidentRepository

    def on_begin(self, conn: Connection) -> None:
        self.towns = TownRepository(conn)
        self.api_keys = ApiKeyRepository(conn)
        self.debtors = DebtorRepository(conn)
        self.invoices = InvoiceRepository(conn)
        self.pdfs = PdfRepository(conn)
        self.imports = ImportRepository(conn)
        self.accounts = AccountRepository(conn)
        self.declarations = DeclarationRepository(conn)
        self.messages = MessageRepository(conn)
        self.settlements = SettlementRepository(conn)
        self.incidents = IncidentRepository(conn)
