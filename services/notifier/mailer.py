"""SMTP delivery with aiosmtplib, keeping one connection open between e-mails."""

from __future__ import annotations

import contextlib

import aiosmtplib

from services.notifier.settings import Settings


class TemporaryFailure(Exception):
    """Worth retrying later: the server is away, busy, or said 4xx."""


class PermanentFailure(Exception):
    """Retrying will not help: the server refused this message or recipient (5xx)."""


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

    async def send(self, sender: str, recipient: str, message: bytes) -> None:
        try:
            client = await self._connected()
            await client.sendmail(sender, [recipient], message)
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
