"""The SMTP side of the sink (aiosmtpd), served on the caller's event loop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from tools.mailsink.store import MailStore


@dataclass
class SinkHandler:
    store: MailStore
    # Tests make the next N messages fail with this reply (e.g. "451 4.3.0 try again later").
    failures: list[str] = field(default_factory=list)
    received: asyncio.Event = field(default_factory=asyncio.Event)
    # Tests make the server slow to accept a message, so that a sender is caught in the middle of one.
    delay_seconds: float = 0.0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if self.failures:
            return self.failures.pop(0)
        content: Any = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else str(content).encode()
        self.store.add(envelope.mail_from or "", list(envelope.rcpt_tos), raw)
        self.received.set()
        return "250 Message accepted for delivery"

    def fail_next(self, count: int, reply: str = "451 4.3.0 Temporary failure, try again later") -> None:
        self.failures.extend([reply] * count)


async def start_smtp(handler: SinkHandler, host: str, port: int) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SMTP(handler, hostname="mailsink.localhost", data_size_limit=10 * 1024**2),
        host=host,
        port=port,
    )
