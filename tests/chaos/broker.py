"""A RabbitMQ node of the chaos tests' own: own ports, own data directory, killed at will.

The machine's broker (5672) is never touched. The node keeps its data directory across kills, like a
real node restarting after a crash: durable quorum queues and their messages survive.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from pathlib import Path

import aio_pika

from tools.processes import free_port

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


class DedicatedRabbitMQ:
    def __init__(self, directory: Path, *, node_name: str) -> None:
        self.directory = directory
        self.node_name = node_name
        self.port = free_port()
        self.dist_port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _environment(self) -> dict[str, str]:
        if not Path(RABBITMQ_SERVER).exists() and shutil.which("rabbitmq-server") is None:
            raise RuntimeError("RabbitMQ is not installed: apt-get install rabbitmq-server")
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "rabbitmq.conf"
        config.write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n")
        plugins = self.directory / "enabled_plugins"
        plugins.write_text("[].\n")
        return {
            **os.environ,
            "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_CONF_ENV_FILE": "/dev/null",
            "RABBITMQ_NODENAME": f"{self.node_name}@localhost",
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.directory / "data"),
            "RABBITMQ_LOG_BASE": str(self.directory / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
            "RABBITMQ_PID_FILE": str(self.directory / "pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "HOME": str(self.directory),
        }

    async def start(self, timeout: float = 60.0) -> float:
        """Start the node and wait until it takes connections; returns how long that took."""
        started = time.monotonic()
        environment = self._environment()
        with (self.directory / "server.log").open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                RABBITMQ_SERVER,
                env=environment,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        while time.monotonic() - started < timeout:
            if self.process.returncode is not None:
                raise RuntimeError(f"the chaos RabbitMQ node exited; see {self.directory / 'server.log'}")
            with contextlib.suppress(Exception):
                connection = await aio_pika.connect(self.url, timeout=2)
                await connection.close()
                return time.monotonic() - started
            await asyncio.sleep(0.25)
        raise RuntimeError(f"the chaos RabbitMQ node did not start in {timeout}s")

    def kill(self) -> None:
        """SIGKILL the whole node (the Erlang VM included): a crash, not a shutdown."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    async def wait_dead(self) -> None:
        if self.process is not None:
            await self.process.wait()
        # epmd may keep the name a moment; the next start reuses it once the old VM is gone.
        await asyncio.sleep(0.5)

    async def stop(self) -> None:
        self.kill()
        await self.wait_dead()
