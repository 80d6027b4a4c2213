"""Accounts, passwords, one-time links, sessions and throttling: the rules, without I/O."""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

MAX_PASSWORD_LENGTH = 1024  # long passphrases welcome; this only bounds the hashing work
COMMON_PASSWORDS_FILE = Path(__file__).parent / "data" / "common-passwords.txt"


class AuthError(Exception):
    """A rule of the accounts domain was broken; `code` is stable, the message is French."""

    code = "auth_error"
    status = 422

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidLink(AuthError):
    code = "invalid_link"
    status = 410


class WeakPassword(AuthError):
    code = "weak_password"


class InvalidCredentials(AuthError):
    code = "invalid_credentials"
    status = 401


class TooManyAttempts(AuthError):
    code = "too_many_attempts"
    status = 429

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class EmailUnavailable(AuthError):
    code = "email_unavailable"
    status = 409


class AccountAlreadyActive(AuthError):
    code = "account_already_active"
    status = 409


class UnknownTown(AuthError):
    code = "town_not_found"
    status = 404


class LinkPurpose(StrEnum):
    ACTIVATION = "activation"
    RESET = "reset"
    EMAIL_CHANGE = "email_change"


# Where each link leads on the town's site.
LINK_PATHS = {
    LinkPurpose.ACTIVATION: "/compte/activation/",
    LinkPurpose.RESET: "/compte/nouveau-mot-de-passe/",
    LinkPurpose.EMAIL_CHANGE: "/compte/confirmer-adresse/",
}


def new_secret() -> str:
    """256 random bits, URL-safe: link tokens, session ids, remember-me validators."""
    return secrets.token_urlsafe(32)


def secret_hash(secret: str) -> bytes:
    """What the database keeps instead of a secret: a leaked table gives no usable link or session.
    SHA-256 is enough: the secrets are 256 random bits, there is nothing to brute-force."""
    return hashlib.sha256(secret.encode()).digest()


def link_url(public_url: str, purpose: LinkPurpose, token: str) -> str:
    """Links are built from the town's configured address, never from a request's Host header."""
    return public_url.rstrip("/") + LINK_PATHS[purpose] + token


def load_common_passwords(path: Path = COMMON_PASSWORDS_FILE) -> frozenset[str]:
    return frozenset(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def password_problem(
    password: str, *, min_length: int, common: Collection[str], email: str = ""
) -> str | None:
    """The French reason a password is refused, or None. Length and commonness only: no composition
    rules (NIST SP 800-63B). Length counts characters after Unicode normalisation."""
    normalised = unicodedata.normalize("NFKC", password)
    if len(normalised) < min_length:
        return f"Choisissez un mot de passe d'au moins {min_length} caractères."
    if len(normalised) > MAX_PASSWORD_LENGTH:
        return f"Le mot de passe ne peut pas dépasser {MAX_PASSWORD_LENGTH} caractères."
    lowered = normalised.lower()
    if lowered in common or (email and lowered in (email.lower(), email.split("@", 1)[0].lower())):
        return "Ce mot de passe est trop courant ou trop facile à deviner : choisissez-en un autre."
    return None


def login_delay_seconds(failures: int, *, free: int, ceiling: float) -> float:
    """After `free` failures each new one doubles the wait before the next attempt: 1 s, 2 s, 4 s…"""
    if failures < free:
        return 0.0
    return float(min(2 ** (failures - free), ceiling))


@dataclass(frozen=True)
class SessionRules:
    idle: timedelta
    absolute: timedelta
    remember: timedelta

    def expires_at(self, created_at: datetime, last_seen_at: datetime) -> datetime:
        return min(last_seen_at + self.idle, created_at + self.absolute)


def split_remember_token(token: str) -> tuple[str, str] | None:
    """A remember-me cookie is `selector.validator`: the selector finds the row, the validator proves it."""
    selector, dot, validator = token.partition(".")
    if not dot or not selector or not validator or len(token) > 200:
        return None
    return selector, validator
