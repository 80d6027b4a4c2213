"""Turns an `EmailSpec` into subject, text and HTML with the French jinja2 templates."""

from __future__ import annotations

import uuid
from pathlib import Path

import jinja2

from services.notifier.domain import EmailSpec, TownContact
from services.notifier.repository import RenderedEmail

TEMPLATES = Path(__file__).parent / "templates"


class EmailRenderer:
    def __init__(self, directory: Path = TEMPLATES) -> None:
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
        context = {"town": town, "portal_url": town.public_url + "/", **spec.context}
        subject = self._text.get_template(f"{spec.purpose}.subject.txt").render(context)
        # A subject is one line whatever the data: no header can be smuggled through it.
        subject = " ".join(subject.split())
        return RenderedEmail(
            event_id=event_id,
            purpose=spec.purpose,
            town_id=town.town_id,
            to_address=spec.to,
            reply_to=spec.reply_to,
            subject=subject,
            text_body=self._text.get_template(f"{spec.purpose}.txt").render(context),
            html_body=self._html.get_template(f"{spec.purpose}.html").render(context),
            sensitive=spec.sensitive,
            email_id=email_id or uuid.uuid4(),
        )
