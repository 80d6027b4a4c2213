"""SMTP delivery with aiosmtplib, keeping one connection open between e-mails."""

from __future__ import annotations

import contextlib
from email.message import EmailMessage
from email.utils import formataddr

import aiosmtplib

from services.notifier.settings import Settings


class TemporaryFailure(Exception):
    """Worth retrying later: the server is away, busy, or said 4xx."""


class PermanentFailure(Exception):
    """Retrying will not help: the server refused this message or recipient (5xx)."""


def build_message(
    *,
    email_id: str,
    sender: str,
    sender_name: str,
    to: str,
    reply_to: str | None,
    subject: str,
    text_body: str,
    html_body: str,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = formataddr((sender_name, sender))
    message["To"] = to
    if reply_to:
        message["Reply-To"] = reply_to
    message["Subject"] = subject
    # A stable Message-ID derived from our e-mail id: a receiving system can tell a copy from a new mail.
    domain = sender.rsplit("@", 1)[-1]
    message["Message-ID"] = f"<{email_id}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text_body)
    message.add_alternative(html_body, subtype="html")
    return message


class SmtpMailer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: aiosmtplib.SMTP | None = None

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        s = self._settings
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            timeout=s.smtp_timeout_seconds,
            use_tls=s.smtp_security == "tls",
            start_tls=s.smtp_security == "starttls",
        )
        await client.connect()
        if s.smtp_username and s.smtp_password:
            await client.login(s.smtp_username, s.smtp_password.get_secret_value())
        self._client = client
        return client

    async def send(self, message: EmailMessage) -> None:
        try:
            client = await self._connected()
            await client.send_message(message)
        except aiosmtplib.SMTPRecipientsRefused as error:
            codes = [r.code for r in error.recipients]
            if codes and all(400 <= c < 500 for c in codes):
                raise TemporaryFailure(str(error)) from error
            raise PermanentFailure(str(error)) from error
        except aiosmtplib.SMTPResponseException as error:
            await self.close()
            if 400 <= error.code < 500:
                raise TemporaryFailure(f"{error.code} {error.message}") from error
            raise PermanentFailure(f"{error.code} {error.message}") from error
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            await self.close()
            raise TemporaryFailure(repr(error)) from error

    async def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                if self._client.is_connected:
                    await self._client.quit()
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
