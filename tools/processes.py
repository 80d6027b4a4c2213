"""Starting and stopping the suite's processes: used by the development runner and by the tests.

Each process is a real `python -m …` child with its own environment, its output in a log file, and a
readiness URL polled until it answers 200. Stopping sends SIGTERM (graceful: requests drained, consumers
cancelled, in-flight work committed and acked) and SIGKILL only after a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ProcessSpec:
    name: str
    module: str
    port: int
    env: dict[str, str] = field(default_factory=dict)
    ready_path: str = "/readyz"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class ManagedProcess:
    def __init__(self, spec: ProcessSpec, log_dir: Path) -> None:
        self.spec = spec
        self.log_path = log_dir / f"{spec.name}.log"
        self.process: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = self.log_path.open("ab")
        env = {**os.environ, **self.spec.env, "PYTHONUNBUFFERED": "1"}
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.spec.module,
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches the runner only; it stops us in order
        )
        log_file.close()

    async def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if not self.running:
                    raise RuntimeError(
                        f"{self.spec.name} exited with code {self.process and self.process.returncode}; "
                        f"see {self.log_path}:\n{self.tail()}"
                    )
                try:
                    async with session.get(
                        self.spec.url + self.spec.ready_path, timeout=aiohttp.ClientTimeout(total=2)
                    ) as response:
                        if response.status == 200:
                            return
                        last = f"HTTP {response.status}: {(await response.text())[:300]}"
                except (aiohttp.ClientError, TimeoutError) as error:
                    last = repr(error)
                await asyncio.sleep(0.2)
        raise RuntimeError(
            f"{self.spec.name} not ready after {timeout}s ({last}); see {self.log_path}:\n{self.tail()}"
        )

    async def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout`; returns the exit code."""
        if self.process is None or self.process.returncode is not None:
            return self.process.returncode if self.process else None
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.kill()
            return await self.process.wait()

    def kill(self) -> None:
        """SIGKILL: the process dies on the spot, mid-transaction if it was in one."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def wait_exit(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class ProcessGroup:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: dict[str, ManagedProcess] = {}

    def add(self, spec: ProcessSpec) -> ManagedProcess:
        managed = ManagedProcess(spec, self.log_dir)
        self.processes[spec.name] = managed
        return managed

    async def start(self, specs: list[ProcessSpec], *, timeout: float = 90.0) -> None:
        for spec in specs:
            await self.add(spec).start()
        await asyncio.gather(*(self.processes[s.name].wait_ready(timeout) for s in specs))

    def __getitem__(self, name: str) -> ManagedProcess:
        return self.processes[name]

    async def stop(self, timeout: float = 20.0) -> None:
        # The gateway first (no new requests), then the services, then the development tools.
        await asyncio.gather(*(p.stop(timeout) for p in self.processes.values()))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
