"""The composed bytes are a well-formed e-mail that any mail reader parses back to what was written."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notifier.mime import UnsafeHeader, compose


def _parse(raw: bytes) -> EmailMessage:
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _compose(**overrides: object) -> bytes:
    fields: dict[str, object] = {
        "email_id": "0b7e9d0e-8f7a-4a51-b3c4-5d6e7f809a1b",
        "sender": "no-reply@portail.localhost",
        "sender_name": "Le portail des factures",
        "to": "marie.dupont@example.org",
        "reply_to": None,
        "subject": "Reçu de votre paiement en ligne de 37,50 € à Mairie de Démonstration",
        "text": "Bonjour,\n\nMontant : 37,50 €\n",
        "html": "<p>Bonjour,</p><p>Montant : 37,50&nbsp;€</p>",
    } | overrides
    return compose(**fields)  # type: ignore[arg-type]


def test_composed_message_parses_back_with_its_headers_and_both_parts() -> None:
    message = _parse(_compose(reply_to="resident@example.org"))
    assert message["Subject"] == "Reçu de votre paiement en ligne de 37,50 € à Mairie de Démonstration"
    assert message["From"].addresses[0].display_name == "Le portail des factures"
    assert message["From"].addresses[0].addr_spec == "no-reply@portail.localhost"
    assert message["To"] == "marie.dupont@example.org"
    assert message["Reply-To"] == "resident@example.org"
    assert message["Message-ID"] == "<0b7e9d0e-8f7a-4a51-b3c4-5d6e7f809a1b@portail.localhost>"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    # On the wire every line ends with CRLF, as SMTP wants; readers give the text back as written.
    assert text.get_content().replace("\r\n", "\n") == "Bonjour,\n\nMontant : 37,50 €\n"
    assert html.get_content().strip() == "<p>Bonjour,</p><p>Montant : 37,50&nbsp;€</p>"


@pytest.mark.parametrize("field", ["to", "reply_to", "subject", "sender"])
def test_a_line_break_in_a_header_value_is_refused(field: str) -> None:
    with pytest.raises(UnsafeHeader):
        _compose(**{field: "victim@example.org\r\nBcc: everyone@example.org"})


@given(
    st.text(min_size=0, max_size=3000),
    st.text(min_size=1, max_size=200).filter(lambda s: "\r" not in s and "\n" not in s),
)
def test_any_body_and_subject_survive_the_round_trip(body: str, subject: str) -> None:
    raw = _compose(text=body, html=body, subject=subject)
    assert all(len(line) <= 998 for line in raw.split(b"\r\n")), "SMTP's line length limit"
    message = _parse(raw)
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    expected = body.replace("\r\n", "\n").replace("\r", "\n")
    assert text.get_content().replace("\r\n", "\n") in (expected, expected + "\n")
