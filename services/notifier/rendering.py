"""Turns an `EmailSpec` into the bytes of an e-mail with the French jinja2 templates."""

from __future__ import annotations

import uuid
from pathlib import Path

import jinja2

from services.notifier.domain import EmailSpec, TownContact
from services.notifier.mime import compose
from services.notifier.repository import RenderedEmail

TEMPLATES = Path(__file__).parent / "templates"


class EmailRenderer:
    def __init__(self, *, sender: str, sender_name: str, directory: Path = TEMPLATES) -> None:
        self._sender = sender
        self._sender_name = sender_name
        loader = jinja2.FileSystemLoader(directory)
        # Plain-text parts and subjects are not HTML: escaping would show "&amp;" to the resident.
        self._text = jinja2.Environment(
            loader=loader,
            autoescape=False,  # noqa: S701
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
        self._html = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)

    def render(
        self, spec: EmailSpec, town: TownContact, *, event_id: uuid.UUID, email_id: uuid.UUID | None = None
    ) -> RenderedEmail:
        email_id = email_id or uuid.uuid4()
        context = {"town": town, "portal_url": town.public_url + "/", **spec.context}
        subject = self._text.get_template(f"{spec.purpose}.subject.txt").render(context)
        # A subject is one line whatever the data: no header can be smuggled through it.
        subject = " ".join(subject.split())
        message = compose(
            email_id=str(email_id),
            sender=self._sender,
            sender_name=self._sender_name,
            to=spec.to,
            reply_to=spec.reply_to,
            subject=subject,
            text=self._text.get_template(f"{spec.purpose}.txt").render(context),
            html=self._html.get_template(f"{spec.purpose}.html").render(context),
        )
        return RenderedEmail(
            event_id=event_id,
            purpose=spec.purpose,
            town_id=town.town_id,
            to_address=spec.to,
            reply_to=spec.reply_to,
            subject=subject,
            message=message,
            sensitive=spec.sensitive,
            email_id=email_id,
        )
