"""SQL of the auth service. Every query on residents' data filters on the town as well."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from services.auth.domain import LinkPurpose
from shared.plumbing.uow import Connection, UnitOfWork


@dataclass(frozen=True)
class TownSettings:
    town_id: uuid.UUID
    name: str
    public_url: str
    password_min_length: int


@dataclass(frozen=True)
class Account:
    account_id: uuid.UUID
    town_id: uuid.UUID
    email: str
    password_hash: str


@dataclass(frozen=True)
class SpentLink:
    purpose: LinkPurpose
    email: str
    account_id: uuid.UUID | None
    new_email: str | None


@dataclass(frozen=True)
class SessionRow:
    account_id: uuid.UUID
    town_id: uuid.UUID
    email: str
    created_at: datetime
    last_seen_at: datetime
    remembered: bool


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

    async def get(self, town_id: uuid.UUID) -> TownSettings | None:
        row = await self._conn.fetchrow(
            "SELECT town_id, name, public_url, password_min_length FROM towns WHERE town_id = $1", town_id
        )
        return TownSettings(**dict(row)) if row else None


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


class Accounts:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def by_email(self, town_id: uuid.UUID, email: str) -> Account | None:
        row = await self._conn.fetchrow(
            "SELECT account_id, town_id, email, password_hash FROM accounts WHERE town_id = $1 AND email = $2",
            town_id,
            email,
        )
        return Account(**dict(row)) if row else None

    async def by_id(
        self, town_id: uuid.UUID, account_id: uuid.UUID, *, for_update: bool = False
    ) -> Account | None:
        row = await self._conn.fetchrow(
            "SELECT account_id, town_id, email, password_hash FROM accounts WHERE town_id = $1 AND account_id = $2"
            + (" FOR UPDATE" if for_update else ""),
            town_id,
            account_id,
        )
        return Account(**dict(row)) if row else None

    async def add(self, account: Account) -> bool:
        """False when the town already has an account with this address."""
        inserted = await self._conn.fetchval(
            """
            INSERT INTO accounts (account_id, town_id, email, password_hash) VALUES ($1, $2, $3, $4)
            ON CONFLICT (town_id, email) DO NOTHING RETURNING true
            """,
            account.account_id,
            account.town_id,
            account.email,
            account.password_hash,
        )
        return bool(inserted)

    async def set_password(self, account_id: uuid.UUID, password_hash: str) -> None:
        await self._conn.execute(
            "UPDATE accounts SET password_hash = $2, password_changed_at = now() WHERE account_id = $1",
            account_id,
            password_hash,
        )

    async def set_email(self, account_id: uuid.UUID, email: str) -> None:
        await self._conn.execute("UPDATE accounts SET email = $2 WHERE account_id = $1", account_id, email)


class LinkTokens:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def add(
        self,
        token_hash: bytes,
        *,
        purpose: LinkPurpose,
        town_id: uuid.UUID,
        email: str,
        usable: bool,
        created_at: datetime,
        expires_at: datetime,
        account_id: uuid.UUID | None = None,
        new_email: str | None = None,
    ) -> None:
        await self._conn.execute(
            """
            INSERT INTO link_tokens (token_hash, purpose, town_id, email, account_id, new_email, usable,
                                     created_at, expires_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            """,
            token_hash,
            purpose.value,
            town_id,
            email,
            account_id,
            new_email,
            usable,
            created_at,
            expires_at,
        )

    async def peek(self, token_hash: bytes, town_id: uuid.UUID, purpose: LinkPurpose) -> SpentLink | None:
        """The link if it could still be spent (for showing its form); spends nothing."""
        row = await self._conn.fetchrow(
            """
            SELECT purpose, email, account_id, new_email FROM link_tokens
            WHERE token_hash = $1 AND town_id = $2 AND purpose = $3 AND usable
              AND used_at IS NULL AND expires_at > now()
            """,
            token_hash,
            town_id,
            purpose.value,
        )
        return _link(row)

    async def spend(self, token_hash: bytes, town_id: uuid.UUID, purpose: LinkPurpose) -> SpentLink | None:
        """Spend a link: one UPDATE, so among concurrent attempts exactly one gets the row back."""
        row = await self._conn.fetchrow(
            """
            UPDATE link_tokens SET used_at = now()
            WHERE token_hash = $1 AND town_id = $2 AND purpose = $3 AND usable
              AND used_at IS NULL AND expires_at > now()
            RETURNING purpose, email, account_id, new_email
            """,
            token_hash,
            town_id,
            purpose.value,
        )
        return _link(row)

    async def retire_for(self, town_id: uuid.UUID, email: str, purpose: LinkPurpose) -> None:
        """A new link makes the older ones of the same kind useless (only the latest e-mail works)."""
        await self._conn.execute(
            "UPDATE link_tokens SET used_at = now() WHERE town_id = $1 AND email = $2 AND purpose = $3"
            " AND used_at IS NULL",
            town_id,
            email,
            purpose.value,
        )

    async def forget_expired(self) -> None:
        await self._conn.execute("DELETE FROM link_tokens WHERE expires_at < now() - interval '7 days'")


def _link(row: object) -> SpentLink | None:
    if row is None:
        return None
    data = dict(row)  # type: ignore[call-overload]
    return SpentLink(LinkPurpose(data["purpose"]), data["email"], data["account_id"], data["new_email"])


class Sessions:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def add(
        self, session_hash: bytes, account_id: uuid.UUID, town_id: uuid.UUID, *, remembered: bool
    ) -> None:
        await self._conn.execute(
            "INSERT INTO sessions (session_hash, account_id, town_id, remembered) VALUES ($1, $2, $3, $4)",
            session_hash,
            account_id,
            town_id,
            remembered,
        )

    async def get(self, session_hash: bytes, town_id: uuid.UUID) -> SessionRow | None:
        row = await self._conn.fetchrow(
            """
            SELECT s.account_id, s.town_id, a.email, s.created_at, s.last_seen_at, s.remembered
            FROM sessions s JOIN accounts a USING (account_id)
            WHERE s.session_hash = $1 AND s.town_id = $2 AND s.revoked_at IS NULL
            """,
            session_hash,
            town_id,
        )
        return SessionRow(**dict(row)) if row else None

    async def touch(self, session_hash: bytes) -> None:
        # Written at most once a minute per session: a page view is not a database write.
        await self._conn.execute(
            "UPDATE sessions SET last_seen_at = now() WHERE session_hash = $1"
            " AND last_seen_at < now() - interval '1 minute'",
            session_hash,
        )

    async def revoke(self, session_hash: bytes) -> None:
        await self._conn.execute(
            "UPDATE sessions SET revoked_at = now() WHERE session_hash = $1 AND revoked_at IS NULL",
            session_hash,
        )

    async def revoke_all(self, account_id: uuid.UUID, *, except_hash: bytes | None = None) -> int:
        status: str = await self._conn.execute(
            "UPDATE sessions SET revoked_at = now() WHERE account_id = $1 AND revoked_at IS NULL"
            " AND session_hash IS DISTINCT FROM $2",
            account_id,
            except_hash,
        )
        return int(status.split()[-1])


class RememberTokens:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def add(
        self,
        selector: str,
        validator_hash: bytes,
        account_id: uuid.UUID,
        town_id: uuid.UUID,
        expires_at: datetime,
    ) -> None:
        await self._conn.execute(
            """
            INSERT INTO remember_tokens (selector, validator_hash, account_id, town_id, expires_at)
            VALUES ($1, $2, $3, $4, $5)
            """,
            selector,
            validator_hash,
            account_id,
            town_id,
            expires_at,
        )

    async def take(self, selector: str, town_id: uuid.UUID) -> tuple[bytes, uuid.UUID] | None:
        """Lock a live token row (validator hash, account) so that one use rotates it, not two."""
        row = await self._conn.fetchrow(
            """
            SELECT validator_hash, account_id FROM remember_tokens
            WHERE selector = $1 AND town_id = $2 AND revoked_at IS NULL AND expires_at > now()
            FOR UPDATE
            """,
            selector,
            town_id,
        )
        return (bytes(row["validator_hash"]), row["account_id"]) if row else None

    async def revoke(self, selector: str) -> None:
        await self._conn.execute(
            "UPDATE remember_tokens SET revoked_at = now() WHERE selector = $1 AND revoked_at IS NULL",
            selector,
        )

    async def revoke_all(self, account_id: uuid.UUID) -> int:
        status: str = await self._conn.execute(
            "UPDATE remember_tokens SET revoked_at = now() WHERE account_id = $1 AND revoked_at IS NULL",
            account_id,
        )
        return int(status.split()[-1])


@dataclass(frozen=True)
class LoginContext:
    """Everything a login needs to know before checking the password, read in one round trip."""

    town_known: bool
    account: Account | None
    failures: dict[str, tuple[int, datetime | None]]


class Logins:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def context(self, town_id: uuid.UUID, email: str, keys: dict[str, str]) -> LoginContext:
        row = await self._conn.fetchrow(
            """
            SELECT EXISTS (SELECT 1 FROM towns WHERE town_id = $1) AS town_known,
                   a.account_id, a.email, a.password_hash,
                   fa.failures AS account_failures, fa.last_failure_at AS account_last,
                   fc.failures AS client_failures, fc.last_failure_at AS client_last
            FROM (SELECT 1) AS one
            LEFT JOIN accounts a ON a.town_id = $1 AND a.email = $2
            LEFT JOIN login_failures fa ON fa.scope = 'account' AND fa.key = $3
                AND fa.last_failure_at > now() - interval '15 minutes'
            LEFT JOIN login_failures fc ON fc.scope = 'client' AND fc.key = $4
                AND fc.last_failure_at > now() - interval '15 minutes'
            """,
            town_id,
            email,
            keys["account"],
            keys["client"],
        )
        account = (
            Account(row["account_id"], town_id, row["email"], row["password_hash"])
            if row["account_id"]
            else None
        )
        return LoginContext(
            town_known=row["town_known"],
            account=account,
            failures={
                "account": (row["account_failures"] or 0, row["account_last"]),
                "client": (row["client_failures"] or 0, row["client_last"]),
            },
        )


class Throttle:
    """Failed logins per key, forgotten after a quiet quarter of an hour."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def failures(self, scope: str, key: str) -> tuple[int, datetime | None]:
        row = await self._conn.fetchrow(
            "SELECT failures, last_failure_at FROM login_failures WHERE scope = $1 AND key = $2"
            " AND last_failure_at > now() - interval '15 minutes'",
            scope,
            key,
        )
        return (row["failures"], row["last_failure_at"]) if row else (0, None)

    async def record_failure(self, scope: str, key: str) -> None:
        await self._conn.execute(
            """
            INSERT INTO login_failures (scope, key, failures, last_failure_at) VALUES ($1, $2, 1, now())
            ON CONFLICT (scope, key) DO UPDATE SET
                failures = CASE WHEN login_failures.last_failure_at > now() - interval '15 minutes'
                                THEN login_failures.failures + 1 ELSE 1 END,
                last_failure_at = now()
            """,
            scope,
            key,
        )

    async def clear(self, scope: str, key: str) -> None:
        await self._conn.execute("DELETE FROM login_failures WHERE scope = $1 AND key = $2", scope, key)


class EmailRequests:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def count_last_hour(self, town_id: uuid.UUID, email: str, purpose: str) -> int:
        count: int = await self._conn.fetchval(
            "SELECT count(*) FROM email_requests WHERE town_id = $1 AND email = $2 AND purpose = $3"
            " AND requested_at > now() - interval '1 hour'",
            town_id,
            email,
            purpose,
        )
        return count

    async def record(self, town_id: uuid.UUID, email: str, purpose: str) -> None:
        await self._conn.execute(
            "INSERT INTO email_requests (town_id, email, purpose) VALUES ($1, $2, $3)",
            town_id,
            email,
            purpose,
        )


class AuthUnitOfWork(UnitOfWork):
    towns: TownDirectory
    known_emails: KnownEmails
    accounts: Accounts
    links: LinkTokens
    sessions: Sessions
    remember: RememberTokens
    throttle: Throttle
    email_requests: EmailRequests
    logins: Logins

    def on_begin(self, conn: Connection) -> None:
        self.towns = TownDirectory(conn)
        self.known_emails = KnownEmails(conn)
        self.accounts = Accounts(conn)
        self.links = LinkTokens(conn)
        self.sessions = Sessions(conn)
        self.remember = RememberTokens(conn)
        self.throttle = Throttle(conn)
        self.email_requests = EmailRequests(conn)
        self.logins = Logins(conn)
