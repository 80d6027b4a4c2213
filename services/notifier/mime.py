"""The bytes of an e-mail, composed directly: multipart/alternative, UTF-8, quoted-printable.

Python's `email` package builds and then flattens a message through its policy machinery; profiling the
alerts benchmark showed two thirds of the notifier's time there. Our messages always have the same
shape, so they are composed once, when queued, with the C-accelerated encoders of `binascii`, and sent
as they are. The tests parse the result back with `email` to prove it is well formed.
"""

from __future__ import annotations

import binascii
from email.header import Header
from email.utils import formataddr, formatdate

CRLF = b"\r\n"


class UnsafeHeader(ValueError):
    """A header value with a line break: it could smuggle other headers (header injection)."""


def _header_value(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise UnsafeHeader(value)
    if value.isascii():
        return value
    return Header(value, "utf-8").encode(maxlinelen=76)


def _address(address: str) -> str:
    if "\r" in address or "\n" in address or not address.isascii():
        raise UnsafeHeader(address)
    return address


def _quoted_printable(text: str) -> bytes:
    # Encode with bare line feeds (b2a_qp keeps them as line breaks), then put SMTP's CRLF everywhere.
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(data, quotetabs=False, istext=True, header=False).replace(b"\n", b"\r\n")


def compose(
    *,
    email_id: str,
    sender: str,
    sender_name: str,
    to: str,
    reply_to: str | None,
    subject: str,
    text: str,
    html: str,
    date: float | None = None,
) -> bytes:
    domain = sender.rsplit("@", 1)[-1]
    boundary = f"=_portail_{email_id.replace('-', '')}"
    headers = [
        f"From: {formataddr((sender_name, _address(sender)), charset='utf-8')}",
        f"To: {_address(to)}",
        *([f"Reply-To: {_address(reply_to)}"] if reply_to else []),
        f"Subject: {_header_value(subject)}",
        f"Date: {formatdate(date, usegmt=True)}",
        # Stable, derived from our e-mail id: a receiving system can tell a copy from a new mail.
        f"Message-ID: <{email_id}@{domain}>",
        "Auto-Submitted: auto-generated",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
    ]
    parts = []
    for subtype, body in (("plain", text), ("html", html)):
        parts.append(
            CRLF.join(
                [
                    f"--{boundary}".encode(),
                    f'Content-Type: text/{subtype}; charset="utf-8"'.encode(),
                    b"Content-Transfer-Encoding: quoted-printable",
                    b"",
                    _quoted_printable(body),
                ]
            )
        )
    return CRLF.join([*(h.encode("ascii") for h in headers), b"", *parts, f"--{boundary}--".encode(), b""])
