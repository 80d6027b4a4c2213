"""«Contact» (R14): a message to the town's billing office. The invoices service keeps it and, through the
notifier, e-mails it to the office and an acknowledgement to the resident; it also limits how many one
resident sends in an hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web

from gateway.clients import SERVICES
from gateway.forms import form_fields
from gateway.rendering import redirect, register_flash, render
from gateway.security import MAX_FORM_BYTES
from gateway.sessions import current_account, login_required
from shared.contracts.values import format_datetime
from shared.plumbing.http_client import ServiceError

routes = web.RouteTableDef()

# The invoices service's limits, checked here too so that the form answers field by field.
SUBJECT_MAX = 150
MESSAGE_MAX = 5000

register_flash(
    "contact_sent",
    "success",
    "Votre message est envoyé au service de facturation. Un accusé de réception vient de vous être "
    "envoyé par e-mail.",
)


def contact_errors(subject: str, message: str) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not subject:
        errors["subject"] = "Indiquez l'objet de votre message."
    elif len(subject) > SUBJECT_MAX:
        errors["subject"] = f"L'objet dépasse {SUBJECT_MAX} caractères (il en compte {len(subject)})."
    elif any(c in subject for c in "\r\n"):
        errors["subject"] = "L'objet doit tenir sur une ligne."
    if not message:
        errors["message"] = "Écrivez votre message."
    elif len(message) > MESSAGE_MAX:
        errors["message"] = f"Le message dépasse {MESSAGE_MAX} caractères (il en compte {len(message)})."
    return errors


def _form(
    request: web.Request,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    limited: str | None = None,
    status: int = 200,
) -> web.Response:
    return render(
        request,
        "contact/contact.html",
        {
            "values": values or {},
            "errors": errors or {},
            "limited": limited,
            "subject_max": SUBJECT_MAX,
            "message_max": MESSAGE_MAX,
            "message_hint": f"{MESSAGE_MAX:,}".replace(",", "\u202f") + " caractères au maximum.",
        },
        status=status,
    )


@routes.get("/contact")
@login_required
async def contact_page(request: web.Request) -> web.StreamResponse:
    return _form(request)


@routes.post("/contact")
@login_required
async def send_message(request: web.Request) -> web.StreamResponse:
    account = current_account(request)
    assert account is not None
    # The whole fields (the CSRF check already bounds a form to 64 KiB): "too long" is said with the true
    # length rather than the text being silently cut.
    fields = await form_fields(request, "subject", "message", max_length=MAX_FORM_BYTES)
    subject = fields["subject"].strip()
    message = fields["message"].strip().replace("\r\n", "\n")
    errors = contact_errors(subject, message)
    if errors:
        return _form(request, fields, errors, status=422)
    try:
        await request.app[SERVICES].invoices.post(
            f"/towns/{account.town_id}/accounts/{account.account_id}/messages",
            {"subject": subject, "body": message},
        )
    except ServiceError as error:
        if error.status == 429:
            # Not an error page: what was typed stays, and the resident learns when to try again.
            retry = error.details.get("retry_after_seconds") if isinstance(error.details, dict) else None
            limited = (
                "Vous avez déjà envoyé plusieurs messages dans l'heure : votre message n'a pas été envoyé."
            )
            if isinstance(retry, int) and retry > 0:
                at = datetime.now(UTC) + timedelta(seconds=retry)
                limited += f" Vous pourrez l'envoyer à partir du {format_datetime(at)}."
            response = _form(request, fields, limited=limited, status=429)
            if isinstance(retry, int) and retry > 0:
                response.headers["Retry-After"] = str(retry)
            return response
        if error.status == 422:
            field = "subject" if "objet" in error.message.lower() else "message"
            return _form(request, fields, {field: error.message}, status=422)
        raise
    raise redirect(request, "/contact", flash="contact_sent")
