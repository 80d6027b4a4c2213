"""A round-robin TCP balancer for the replicas of one process on this machine (what a Kubernetes Service
does in production): the development runner and the tests put one on a service's usual port when it runs
several replicas, so the gateway's calls and the residents' pages really spread across them.

Connections, not requests, are balanced: a keep-alive connection stays with the replica that took it, as
behind a Kubernetes Service. A replica that refuses a connection (stopped, restarting) is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter


class Balancer:
    def __init__(self, name: str, port: int, targets: list[int], host: str = "127.0.0.1") -> None:
        self.name = name
        self.port = port
        self.targets = targets
        self.host = host
        self.connections: Counter[int] = Counter()
        self._next = itertools.cycle(range(len(targets)))
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(len(self.targets)):
            target = self.targets[next(self._next)]
            try:
                up_reader, up_writer = await asyncio.open_connection(self.host, target)
            except OSError:
                continue  # that replica is down: try the next one
            self.connections[target] += 1
            for source, sink in ((reader, up_writer), (up_reader, writer)):
                task = asyncio.create_task(self._pipe(source, sink))
                self._pipes.add(task)
                task.add_done_callback(self._pipes.discard)
            return
        writer.close()

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                sink.close()
