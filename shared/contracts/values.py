"""Value rules every producer and consumer of the contracts agree on."""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

# Deliberately simple: one @, no spaces or control characters, a dot in the domain, RFC 5321's length.
# Header-injection characters (CR, LF) can never pass.
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f<>,;\"]{1,64}@[A-Za-z0-9.-]+\.[A-Za-z0-9-]{2,63}$")


PARIS = ZoneInfo("Europe/Paris")


class InvalidEmail(ValueError):
    pass


def normalise_email(raw: str) -> str:
    """Trim and lower-case an address; raise InvalidEmail when it cannot be one."""
    candidate = raw.strip().lower()
    if len(candidate) > 254 or not _EMAIL.match(candidate) or ".." in candidate:
        raise InvalidEmail(raw)
    return candidate


def is_email(raw: str) -> bool:
    try:
        normalise_email(raw)
    except InvalidEmail:
        return False
    return True


def format_euros(cents: int) -> str:
    """3750 → `37,50 €` (French grouping with a narrow no-break space: 123 456,00 €)."""
    sign = "-" if cents < 0 else ""
    euros, rest = divmod(abs(cents), 100)
    grouped = f"{euros:,}".replace(",", "\u202f")
    return f"{sign}{grouped},{rest:02d}\u00a0€"


def format_date(value: date | datetime | None) -> str:
    """A date as French residents write it: 02/09/2015 (datetimes are shown in Paris time)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(PARIS).date()
    return value.strftime("%d/%m/%Y")


def format_datetime(value: datetime | None) -> str:
    """02/09/2015 à 14:05, in Paris time."""
    if value is None:
        return ""
    local = value.astimezone(PARIS)
    return local.strftime("%d/%m/%Y à %H:%M")
