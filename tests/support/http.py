"""HTTP helpers for tests: every `*.localhost` name resolves to this machine, as browsers do."""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult


class LocalhostResolver(AbstractResolver):
    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        if host == "localhost" or host.endswith(".localhost") or host == "127.0.0.1":
            return [
                {
                    "hostname": host,
                    "host": "127.0.0.1",
                    "port": port,
                    "family": socket.AF_INET,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            ]
        raise OSError(f"tests only talk to this machine, not to {host}")

    async def close(self) -> None:
        return None


def browser_session(**kwargs: Any) -> aiohttp.ClientSession:
    """A client that behaves like a browser on the portal: cookies per host, no automatic redirects."""
    connector = aiohttp.TCPConnector(resolver=LocalhostResolver(), force_close=False)
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True), **kwargs)
