"""Where the tests find PostgreSQL and RabbitMQ, and the names one test run owns on them.

Addresses come from PORTAIL_TEST_DATABASE_URL and PORTAIL_TEST_AMQP_URL, defaulting to the local services.
When neither is set, the local ones do not answer and a Docker engine is available, testcontainers starts
both. Otherwise the run fails, saying what to start: a missing service never skips a test.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass, field

import aio_pika
import asyncpg

from shared.plumbing.db import with_database

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"

START_HINT = (
    "Start them (see README, 'Running the tests'): PostgreSQL with "
    "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, RabbitMQ with "
    "`rabbitmq-server -detached`; or point PORTAIL_TEST_DATABASE_URL / PORTAIL_TEST_AMQP_URL at running ones."
)


class InfrastructureMissing(RuntimeError):
    pass


@dataclass
class Infra:
    database_url: str
    amqp_url: str
    run_id: str = field(default_factory=lambda: "t" + secrets.token_hex(4))
    # Broker objects to delete when the run ends (the services' queues and whatever tests declare).
    queues: list[str] = field(default_factory=list)
    exchanges: list[str] = field(default_factory=list)

    def db_url(self, name: str) -> str:
        return with_database(self.database_url, f"{self.run_id}_{name}")

    @property
    def exchange(self) -> str:
        return f"{self.run_id}.events"

    @property
    def queue_prefix(self) -> str:
        return self.run_id


async def _postgres_answers(url: str) -> str | None:
    try:
        conn = await asyncio.wait_for(asyncpg.connect(url), 5)
        await conn.close()
        return None
    except Exception as error:
        return repr(error)


async def _rabbitmq_answers(url: str) -> str | None:
    try:
        conn = await asyncio.wait_for(aio_pika.connect(url), 5)
        await conn.close()
        return None
    except Exception as error:
        return repr(error)


def _docker_available() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
        return True
    except Exception:
        return False


async def locate_infrastructure() -> tuple[Infra, list[object]]:
    """Return the infrastructure to use and the containers started for it (to stop at the end)."""
    configured = "PORTAIL_TEST_DATABASE_URL" in os.environ or "PORTAIL_TEST_AMQP_URL" in os.environ
    database_url = os.environ.get("PORTAIL_TEST_DATABASE_URL", DEFAULT_DATABASE_URL)
    amqp_url = os.environ.get("PORTAIL_TEST_AMQP_URL", DEFAULT_AMQP_URL)
    pg_problem, mq_problem = await asyncio.gather(
        _postgres_answers(database_url), _rabbitmq_answers(amqp_url)
    )
    if pg_problem is None and mq_problem is None:
        return Infra(database_url, amqp_url), []
    if not configured and _docker_available():
        return _start_containers()
    problems = []
    if pg_problem:
        problems.append(f"PostgreSQL at {database_url} does not answer ({pg_problem})")
    if mq_problem:
        problems.append(f"RabbitMQ at {amqp_url} does not answer ({mq_problem})")
    raise InfrastructureMissing("; ".join(problems) + ". " + START_HINT)


def _start_containers() -> tuple[Infra, list[object]]:
    from testcontainers.postgres import PostgresContainer
    from testcontainers.rabbitmq import RabbitMqContainer

    postgres = PostgresContainer("postgres:15", username="postgres", password="postgres", dbname="postgres")
    rabbitmq = RabbitMqContainer("rabbitmq:3.13-management")
    postgres.start()
    rabbitmq.start()
    database_url = postgres.get_connection_url().replace("postgresql+psycopg2://", "postgresql://")
    host = rabbitmq.get_container_host_ip()
    port = rabbitmq.get_exposed_port(5672)
    return Infra(database_url, f"amqp://guest:guest@{host}:{port}/"), [postgres, rabbitmq]
