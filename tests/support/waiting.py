"""Waiting for something that happens asynchronously (an event consumed, an e-mail sent) without sleeping
a fixed time: poll until the check answers something truthy, or fail saying what never came."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T | None]], *, timeout: float = 20.0, what: str = "") -> T:
    """Poll `check` every 50 ms until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"not true after {timeout}s: {what} (last: {last!r})")
