"""URL helpers shared by the payment page and the notification sender."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit, urlunsplit


def append_query(url: str, parameters: Mapping[str, str]) -> str:
    """`url` with `parameters` added to its query string, keeping any existing query and fragment as is."""
    parts = urlsplit(url)
    added = urlencode(parameters)
    query = f"{parts.query}&{added}" if parts.query else added
    return urlunsplit(parts._replace(query=query))
