"""Use cases of the auth service.

Flows that hash a password do it between two short transactions (hashing takes tens of milliseconds and
must not hold a database connection): check what can be checked, hash off the loop, then change state in
one transaction that re-checks everything it relies on.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from services.auth.domain import (
    AccountAlreadyActive,
    AuthError,
    EmailUnavailable,
    InvalidCredentials,
    InvalidLink,
    LinkPurpose,
    SessionRules,
    TooManyAttempts,
    UnknownTown,
    WeakPassword,
    link_url,
    login_delay_seconds,
    new_secret,
    password_problem,
    secret_hash,
    split_remember_token,
)
from services.auth.hashing import PasswordHasher
from services.auth.repository import Account, AuthUnitOfWork, TownSettings
from services.auth.settings import Settings
from shared.contracts import Envelope, events
from shared.contracts.values import InvalidEmail, normalise_email
from shared.plumbing.logging import get_logger

log = get_logger(__name__)

NewUnitOfWork = Callable[[], AuthUnitOfWork]


@dataclass(frozen=True)
class AuthContext:
    """What the use cases need besides the database: settings, the hasher, the common passwords."""

    settings: Settings
    hasher: PasswordHasher
    common_passwords: frozenset[str]

    @property
    def session_rules(self) -> SessionRules:
        s = self.settings
        return SessionRules(
            idle=timedelta(minutes=s.session_idle_minutes),
            absolute=timedelta(hours=s.session_absolute_hours),
            remember=timedelta(days=s.remember_days),
        )

    def link_lifetime(self, purpose: LinkPurpose) -> timedelta:
        s = self.settings
        return {
            LinkPurpose.ACTIVATION: timedelta(hours=s.activation_link_hours),
            LinkPurpose.RESET: timedelta(minutes=s.reset_link_minutes),
            LinkPurpose.EMAIL_CHANGE: timedelta(hours=s.email_change_link_hours),
        }[purpose]


@dataclass(frozen=True)
class LoggedIn:
    session_id: str
    remember_token: str | None
    account_id: uuid.UUID
    email: str


@dataclass(frozen=True)
class SessionAccount:
    account_id: uuid.UUID
    email: str
    remembered: bool


class InvalidEmailAddress(AuthError):
    code = "invalid_email"


def _email(raw: str) -> str:
    try:
        return normalise_email(raw)
    except InvalidEmail:
        raise InvalidEmailAddress(
            "Saisissez une adresse de messagerie valide, par exemple nom@exemple.fr."
        ) from None


async def _town(uow: AuthUnitOfWork, town_id: uuid.UUID) -> TownSettings:
    town = await uow.towns.get(town_id)
    if town is None:
        raise UnknownTown("Commune inconnue.")
    return town


# --- events from the invoices service --------------------------------------------------------------


async def record_town(event: events.TownConfigured, _envelope: Envelope, uow: AuthUnitOfWork) -> None:
    await uow.towns.save(event.town_id, event.slug, event.name, event.public_url, event.password_min_length)


async def record_known_emails(event: events.DebtorUpserted, _envelope: Envelope, uow: AuthUnitOfWork) -> None:
    """The office's current set of e-mails for a debtor replaces the previous one."""
    await uow.known_emails.replace_for_debtor(event.town_id, event.debtor_id, event.emails)


# --- activation and reset requests -----------------------------------------------------------------


async def request_link(
    purpose: LinkPurpose, town_id: uuid.UUID, raw_email: str, *, uow: AuthUnitOfWork, ctx: AuthContext
) -> None:
    """Someone asked for an activation or a reset link. Known or not, the caller sees the same thing
    and the same work is done: a token row and an event in the outbox. Only the event's content differs
    (a link for a known address, a "you have no account here" notice otherwise)."""
    assert purpose in (LinkPurpose.ACTIVATION, LinkPurpose.RESET)
    email = _email(raw_email)
    town = await _town(uow, town_id)
    recent = await uow.email_requests.count_last_hour(town_id, email, purpose.value)
    await uow.email_requests.record(town_id, email, purpose.value)
    if recent >= ctx.settings.emails_per_address_per_hour:
        log.info("link_request_throttled", purpose=purpose.value)
        return
    known = await uow.known_emails.is_known(town_id, email)
    account = await uow.accounts.by_email(town_id, email)
    if purpose is LinkPurpose.ACTIVATION:
        outcome = "already_active" if account else ("link" if known else "unknown_address")
    else:
        outcome = "link" if account else "unknown_address"
    token = new_secret()
    now = datetime.now(UTC)
    expires_at = now + ctx.link_lifetime(purpose)
    await uow.links.retire_for(town_id, email, purpose)
    await uow.links.add(
        secret_hash(token),
        purpose=purpose,
        town_id=town_id,
        email=email,
        usable=outcome == "link",
        created_at=now,
        expires_at=expires_at,
        account_id=account.account_id if account else None,
    )
    url = link_url(town.public_url, purpose, token) if outcome == "link" else None
    if purpose is LinkPurpose.ACTIVATION:
        await uow.publish(
            events.ActivationRequested(
                town_id=town_id,
                email=email,
                outcome=outcome,
                link_url=url,
                expires_at=expires_at if url else None,
            )
        )
    else:
        await uow.publish(
            events.PasswordResetRequested(
                town_id=town_id,
                email=email,
                outcome=outcome,
                link_url=url,
                expires_at=expires_at if url else None,
            )
        )
    log.info("link_requested", purpose=purpose.value)


async def peek_link(
    purpose: LinkPurpose, town_id: uuid.UUID, token: str, *, uow: AuthUnitOfWork
) -> tuple[str, str | None]:
    """The address a link is for (and the new address of an e-mail change), spending nothing."""
    link = await uow.links.peek(secret_hash(token), town_id, purpose)
    if link is None:
        raise InvalidLink("Ce lien n'est plus valable : il a expiré ou a déjà servi.")
    return link.email, link.new_email


def _check_password(password: str, town: TownSettings, email: str, ctx: AuthContext) -> None:
    problem = password_problem(
        password, min_length=town.password_min_length, common=ctx.common_passwords, email=email
    )
    if problem:
        raise WeakPassword(problem)


async def activate_account(
    town_id: uuid.UUID, token: str, password: str, *, new_uow: NewUnitOfWork, ctx: AuthContext
) -> Account:
    async with new_uow() as uow:
        town = await _town(uow, town_id)
        email, _ = await peek_link(LinkPurpose.ACTIVATION, town_id, token, uow=uow)
    _check_password(password, town, email, ctx)
    password_hash = await ctx.hasher.hash(password)
    async with new_uow() as uow:
        link = await uow.links.spend(secret_hash(token), town_id, LinkPurpose.ACTIVATION)
        if link is None:
            raise InvalidLink("Ce lien n'est plus valable : il a expiré ou a déjà servi.")
        if not await uow.known_emails.is_known(town_id, link.email):
            raise InvalidLink("Cette adresse n'est plus connue du service de facturation.")
        account = Account(uuid.uuid4(), town_id, link.email, password_hash)
        if not await uow.accounts.add(account):
            raise AccountAlreadyActive("Ce compte est déjà activé : connectez-vous.")
        await uow.publish(
            events.AccountActivated(town_id=town_id, account_id=account.account_id, email=link.email)
        )
    log.info("account_activated", account_id=str(account.account_id))
    return account


async def reset_password(
    town_id: uuid.UUID, token: str, password: str, *, new_uow: NewUnitOfWork, ctx: AuthContext
) -> Account:
    async with new_uow() as uow:
        town = await _town(uow, town_id)
        email, _ = await peek_link(LinkPurpose.RESET, town_id, token, uow=uow)
    _check_password(password, town, email, ctx)
    password_hash = await ctx.hasher.hash(password)
    async with new_uow() as uow:
        link = await uow.links.spend(secret_hash(token), town_id, LinkPurpose.RESET)
        if link is None or link.account_id is None:
            raise InvalidLink("Ce lien n'est plus valable : il a expiré ou a déjà servi.")
        account = await uow.accounts.by_id(town_id, link.account_id, for_update=True)
        if account is None:
            raise InvalidLink("Ce lien n'est plus valable.")
        await uow.accounts.set_password(account.account_id, password_hash)
        ended = await uow.sessions.revoke_all(account.account_id)
        await uow.remember.revoke_all(account.account_id)
        # A reset proves the resident owns the address: the delay an attacker may have built is lifted.
        await uow.throttle.clear("account", _account_key(town_id, account.email))
        await uow.publish(
            events.PasswordChanged(
                town_id=town_id, account_id=account.account_id, email=account.email, reason="reset"
            )
        )
    log.info("password_reset", account_id=str(account.account_id), sessions_ended=ended)
    return account


# --- sessions --------------------------------------------------------------------------------------


def _account_key(town_id: uuid.UUID, email: str) -> str:
    return f"{town_id}:{email}"


def _remaining_wait(failures: dict[str, tuple[int, datetime | None]], ctx: AuthContext) -> float:
    """How long before another attempt is allowed, given the recent failures per scope."""
    s = ctx.settings
    free = {"account": s.free_failures_per_account, "client": s.free_failures_per_client}
    wait = 0.0
    now = datetime.now(UTC)
    for scope, (count, last) in failures.items():
        delay = login_delay_seconds(count, free=free[scope], ceiling=s.max_login_delay_seconds)
        if last is not None and delay > 0:
            wait = max(wait, (last + timedelta(seconds=delay) - now).total_seconds())
    return wait


async def _throttle_wait(uow: AuthUnitOfWork, ctx: AuthContext, keys: dict[str, str]) -> float:
    return _remaining_wait(
        {scope: await uow.throttle.failures(scope, key) for scope, key in keys.items()}, ctx
    )


def _too_many(wait: float) -> TooManyAttempts:
    seconds = max(int(wait + 0.999), 1)
    return TooManyAttempts(
        f"Trop de tentatives de connexion. Réessayez dans {seconds} seconde{'s' if seconds > 1 else ''},"
        " ou choisissez un nouveau mot de passe avec « Mot de passe oublié ».",
        seconds,
    )


async def _open_session(
    uow: AuthUnitOfWork, account_id: uuid.UUID, town_id: uuid.UUID, *, remember: bool, ctx: AuthContext
) -> tuple[str, str | None]:
    session_id = new_secret()
    await uow.sessions.add(secret_hash(session_id), account_id, town_id, remembered=remember)
    remember_token = None
    if remember:
        selector, validator = new_secret()[:22], new_secret()
        expires_at = datetime.now(UTC) + ctx.session_rules.remember
        await uow.remember.add(selector, secret_hash(validator), account_id, town_id, expires_at)
        remember_token = f"{selector}.{validator}"
    return session_id, remember_token


async def log_in(
    town_id: uuid.UUID,
    raw_email: str,
    password: str,
    *,
    remember: bool,
    client: str,
    previous_session_id: str | None,
    new_uow: NewUnitOfWork,
    ctx: AuthContext,
) -> LoggedIn:
    """Check the password (every path costs one argon2 verification); a fresh session id every time."""
    try:
        email = normalise_email(raw_email)
    except InvalidEmail:
        email = raw_email.strip().lower()[:254]
    keys = {"account": _account_key(town_id, email), "client": client[:100]}
    async with new_uow() as uow:
        attempt = await uow.logins.context(town_id, email, keys)
    if not attempt.town_known:
        raise UnknownTown("Commune inconnue.")
    wait = _remaining_wait(attempt.failures, ctx)
    if wait > 0:
        raise _too_many(wait)
    account = attempt.account
    verified = await ctx.hasher.verify(account.password_hash if account else None, password)
    if not verified or account is None:
        async with new_uow() as uow:
            for scope, key in keys.items():
                await uow.throttle.record_failure(scope, key)
        log.info("login_failed")
        raise InvalidCredentials("Adresse de messagerie ou mot de passe incorrect.")
    rehash = await ctx.hasher.hash(password) if ctx.hasher.needs_rehash(account.password_hash) else None
    async with new_uow() as uow:
        if attempt.failures["account"][0]:
            await uow.throttle.clear("account", keys["account"])
        if previous_session_id:
            # Whatever session the browser held before is ended: no fixation across a login.
            await uow.sessions.revoke(secret_hash(previous_session_id))
        if rehash:
            await uow.accounts.set_password(account.account_id, rehash)
        session_id, remember_token = await _open_session(
            uow, account.account_id, town_id, remember=remember, ctx=ctx
        )
    log.info("login_succeeded", account_id=str(account.account_id), remember=remember)
    return LoggedIn(session_id, remember_token, account.account_id, account.email)


async def resolve_session(
    town_id: uuid.UUID, session_id: str, *, uow: AuthUnitOfWork, ctx: AuthContext
) -> SessionAccount | None:
    session_hash = secret_hash(session_id)
    row = await uow.sessions.get(session_hash, town_id)
    if row is None:
        return None
    now = datetime.now(UTC)
    if ctx.session_rules.expires_at(row.created_at, row.last_seen_at) <= now:
        await uow.sessions.revoke(session_hash)
        return None
    if now - row.last_seen_at > timedelta(minutes=1):
        # The idle clock needs minutes, not every page view: at most one write a minute per session.
        await uow.sessions.touch(session_hash)
    return SessionAccount(row.account_id, row.email, row.remembered)


async def resume_remembered(
    town_id: uuid.UUID, token: str, *, new_uow: NewUnitOfWork, ctx: AuthContext
) -> LoggedIn | None:
    """A browser came back with its "Se souvenir de moi" token: rotate it and open a new session."""
    parts = split_remember_token(token)
    if parts is None:
        return None
    selector, validator = parts
    async with new_uow() as uow:
        taken = await uow.remember.take(selector, town_id)
        if taken is None:
            return None
        stored_hash, account_id = taken
        if not hmac.compare_digest(stored_hash, secret_hash(validator)):
            # The selector is right but not the validator: a forged or stolen cookie. End them all.
            await uow.remember.revoke_all(account_id)
            log.warning("remember_token_mismatch", account_id=str(account_id))
            return None
        account = await uow.accounts.by_id(town_id, account_id)
        if account is None:
            return None
        await uow.remember.revoke(selector)
        session_id, remember_token = await _open_session(uow, account_id, town_id, remember=True, ctx=ctx)
    log.info("session_resumed", account_id=str(account_id))
    return LoggedIn(session_id, remember_token, account.account_id, account.email)


async def log_out(
    town_id: uuid.UUID, session_id: str | None, remember_token: str | None, *, uow: AuthUnitOfWork
) -> None:
    if session_id:
        await uow.sessions.revoke(secret_hash(session_id))
    parts = split_remember_token(remember_token or "")
    if parts:
        await uow.remember.revoke(parts[0])


# --- «Mes informations» ----------------------------------------------------------------------------


async def _verify_current_password(
    town_id: uuid.UUID, account_id: uuid.UUID, password: str, *, new_uow: NewUnitOfWork, ctx: AuthContext
) -> Account:
    """The current password, checked under the same throttle as the login form."""
    async with new_uow() as uow:
        account = await uow.accounts.by_id(town_id, account_id)
        if account is None:
            raise InvalidCredentials("Session expirée : reconnectez-vous.")
        keys = {"account": _account_key(town_id, account.email)}
        wait = await _throttle_wait(uow, ctx, keys)
        if wait > 0:
            raise _too_many(wait)
    if not await ctx.hasher.verify(account.password_hash, password):
        async with new_uow() as uow:
            await uow.throttle.record_failure("account", keys["account"])
        raise InvalidCredentials("Votre mot de passe actuel n'est pas le bon.")
    return account


async def change_password(
    town_id: uuid.UUID,
    account_id: uuid.UUID,
    session_id: str,
    current_password: str,
    new_password: str,
    *,
    new_uow: NewUnitOfWork,
    ctx: AuthContext,
) -> None:
    account = await _verify_current_password(town_id, account_id, current_password, new_uow=new_uow, ctx=ctx)
    async with new_uow() as uow:
        town = await _town(uow, town_id)
    _check_password(new_password, town, account.email, ctx)
    password_hash = await ctx.hasher.hash(new_password)
    async with new_uow() as uow:
        await uow.accounts.set_password(account_id, password_hash)
        ended = await uow.sessions.revoke_all(account_id, except_hash=secret_hash(session_id))
        await uow.remember.revoke_all(account_id)
        await uow.publish(
            events.PasswordChanged(
                town_id=town_id, account_id=account_id, email=account.email, reason="changed"
            )
        )
    log.info("password_changed", account_id=str(account_id), other_sessions_ended=ended)


async def request_email_change(
    town_id: uuid.UUID,
    account_id: uuid.UUID,
    current_password: str,
    raw_new_email: str,
    *,
    new_uow: NewUnitOfWork,
    ctx: AuthContext,
) -> None:
    new_email = _email(raw_new_email)
    account = await _verify_current_password(town_id, account_id, current_password, new_uow=new_uow, ctx=ctx)
    if new_email == account.email:
        raise InvalidEmailAddress("C'est déjà l'adresse de votre compte.")
    async with new_uow() as uow:
        town = await _town(uow, town_id)
        if await uow.accounts.by_email(town_id, new_email) is not None:
            # Never say whose it is, nor even that an account uses it.
            raise EmailUnavailable(
                "Cette adresse ne peut pas être utilisée pour votre compte. Choisissez-en une autre."
            )
        token = new_secret()
        now = datetime.now(UTC)
        expires_at = now + ctx.link_lifetime(LinkPurpose.EMAIL_CHANGE)
        await uow.links.retire_for(town_id, account.email, LinkPurpose.EMAIL_CHANGE)
        await uow.links.add(
            secret_hash(token),
            purpose=LinkPurpose.EMAIL_CHANGE,
            town_id=town_id,
            email=account.email,
            usable=True,
            created_at=now,
            expires_at=expires_at,
            account_id=account_id,
            new_email=new_email,
        )
        await uow.publish(
            events.EmailChangeRequested(
                town_id=town_id,
                account_id=account_id,
                current_email=account.email,
                new_email=new_email,
                link_url=link_url(town.public_url, LinkPurpose.EMAIL_CHANGE, token),
                expires_at=expires_at,
            )
        )
    log.info("email_change_requested", account_id=str(account_id))


async def confirm_email_change(town_id: uuid.UUID, token: str, *, uow: AuthUnitOfWork) -> str:
    """The new address's owner followed the link: it becomes the login; the old one is told."""
    link = await uow.links.spend(secret_hash(token), town_id, LinkPurpose.EMAIL_CHANGE)
    if link is None or link.account_id is None or link.new_email is None:
        raise InvalidLink("Ce lien n'est plus valable : il a expiré ou a déjà servi.")
    account = await uow.accounts.by_id(town_id, link.account_id, for_update=True)
    if account is None or account.email != link.email:
        raise InvalidLink("Ce lien n'est plus valable : l'adresse du compte a changé entre-temps.")
    if await uow.accounts.by_email(town_id, link.new_email) is not None:
        raise EmailUnavailable("Cette adresse ne peut plus être utilisée pour votre compte.")
    try:
        await uow.accounts.set_email(account.account_id, link.new_email)
    except asyncpg.UniqueViolationError:
        raise EmailUnavailable("Cette adresse ne peut plus être utilisée pour votre compte.") from None
    await uow.publish(
        events.EmailChanged(
            town_id=town_id, account_id=account.account_id, old_email=account.email, new_email=link.new_email
        )
    )
    log.info("email_changed", account_id=str(account.account_id))
    return link.new_email
