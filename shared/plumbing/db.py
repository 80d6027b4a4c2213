"""PostgreSQL access: pools with JSON codecs, databases created on demand, numbered migrations.

Migrations are plain SQL files named `NNNN_what.sql`, applied in order, each in its own transaction, under
a PostgreSQL advisory lock so that two replicas starting at once apply each file exactly once. A file that
changed after it was applied stops the service: migrations are forward only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from shared.plumbing.logging import get_logger

log = get_logger(__name__)

PLUMBING_MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Any constant works; it only has to be the same for every replica of every service.
_MIGRATION_LOCK_KEY = 7_239_115_001


def _encode_jsonb(value: object) -> bytes:
    # jsonb's binary form is a version byte (1) and the JSON text; binary is what COPY needs.
    return b"\x01" + json.dumps(value, separators=(",", ":")).encode()


def _decode_jsonb(data: bytes) -> object:
    return json.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog", format="binary"
    )


async def _reset_connection(conn: asyncpg.Connection) -> None:
    """What a connection needs before going back to the pool. asyncpg's default also runs
    `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on every release (a tenth of the
    invoices service's time under load): pooled connections here never LISTEN, hold advisory locks,
    open cursors outside a transaction or change settings, so ending a forgotten transaction is enough."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_reset_connection,
        command_timeout=60,
    )
    assert pool is not None
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn


def database_name(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/")


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


async def ensure_database(dsn: str) -> bool:
    """Create the database named by `dsn` if it is missing (development and tests); True if created."""
    name = database_name(dsn)
    if not re.fullmatch(r"[a-z0-9_]{1,63}", name):
        raise ValueError(f"refusing to create a database named {name!r}")
    admin = await asyncpg.connect(with_database(dsn, "postgres"))
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.DuplicateDatabaseError:
            return False  # another process created it between our check and our CREATE
        return True
    finally:
        await admin.close()


async def drop_database(dsn: str) -> None:
    name = database_name(dsn)
    admin = await asyncpg.connect(with_database(dsn, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _migration_files(directory: Path) -> list[tuple[int, str, str]]:
    found: list[tuple[int, str, str]] = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file {path} must be named NNNN_lowercase_name.sql")
        found.append((int(match.group(1)), path.name, path.read_text(encoding="utf-8")))
    versions = [version for version, _, _ in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"two migrations share a number in {directory}")
    return found


async def migrate(dsn: str, namespaces: dict[str, Path]) -> list[str]:
    """Apply every pending migration of each namespace (e.g. plumbing, then the service's own)."""
    applied_now: list[str] = []
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_KEY)
        try:
            await conn.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    namespace text NOT NULL,
                    version integer NOT NULL,
                    name text NOT NULL,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (namespace, version)
                )
                """
            )
            for namespace, directory in namespaces.items():
                done: dict[int, Any] = {
                    row["version"]: row
                    for row in await conn.fetch(
                        "SELECT version, name, checksum FROM schema_migrations WHERE namespace = $1",
                        namespace,
                    )
                }
                for version, name, sql in _migration_files(directory):
                    checksum = hashlib.sha256(sql.encode()).hexdigest()
                    if version in done:
                        if done[version]["checksum"] != checksum:
                            raise RuntimeError(f"migration {namespace}/{name} changed after it was applied")
                        continue
                    async with conn.transaction():
                        await conn.execute(sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (namespace, version, name, checksum)"
                            " VALUES ($1, $2, $3, $4)",
                            namespace,
                            version,
                            name,
                            checksum,
                        )
                    applied_now.append(f"{namespace}/{name}")
                    log.info("migration_applied", namespace=namespace, migration=name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK_KEY)
    finally:
        await conn.close()
    return applied_now


async def listen_forever(dsn: str, channel: str, on_notify: Callable[[], None]) -> None:
    """Call `on_notify` on every NOTIFY of `channel`, and once after each (re)connection so the caller
    catches up on what it missed; reconnect after database restarts. Runs until cancelled."""
    while True:
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(dsn)
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
            await conn.add_listener(channel, lambda *_args: on_notify())
            on_notify()
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), 15)
                if not lost.is_set():
                    # A cut TCP connection is only noticed when used: ask it something now and then.
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), 5)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning("listener_lost", channel=channel, error=repr(error))
        finally:
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(Exception):
                    await conn.close()
        await asyncio.sleep(1.0)
