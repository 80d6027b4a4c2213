"""Messages received by the sink, parsed once, kept in memory and optionally written as .eml files."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any


@dataclass
class StoredMessage:
    number: int
    received_at: datetime
    mail_from: str
    rcpt_to: list[str]
    raw: bytes
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def message_id(self) -> str:
        return str(self.message.get("Message-ID", ""))

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        return body.get_content() if body is not None else ""

    def summary(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "received_at": self.received_at.isoformat(),
            "from": self.mail_from,
            "to": self.rcpt_to,
            "subject": self.subject,
            "message_id": self.message_id,
            "headers": {k: str(v) for k, v in self.message.items()},
            "text": self.part("plain"),
            "html": self.part("html"),
        }


@dataclass
class MailStore:
    directory: Path | None = None
    messages: list[StoredMessage] = field(default_factory=list)
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add(self, mail_from: str, rcpt_to: list[str], raw: bytes) -> StoredMessage:
        parsed = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(parsed, EmailMessage)
        stored = StoredMessage(next(self._numbers), datetime.now(UTC), mail_from, list(rcpt_to), raw, parsed)
        self.messages.append(stored)
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            name = f"{stored.received_at:%Y%m%dT%H%M%S}-{stored.number:05d}.eml"
            (self.directory / name).write_bytes(raw)
        return stored

    def to(self, address: str) -> list[StoredMessage]:
        wanted = address.lower()
        return [m for m in self.messages if wanted in (r.lower() for r in m.rcpt_to)]

    def clear(self) -> None:
        self.messages.clear()
