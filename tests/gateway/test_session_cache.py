"""The gateway's short memory of resolved sessions: bounded in time, forgotten per account at once."""

from __future__ import annotations

import time
import uuid

from gateway.sessions import Account, SessionCache

TOWN = uuid.uuid4()


def _account(account_id: uuid.UUID, session: str) -> Account:
    return Account(account_id, TOWN, "marie@example.org", session)


def test_a_cached_session_is_trusted_only_for_its_time_to_live() -> None:
    cache = SessionCache(ttl_seconds=0.05)
    account = _account(uuid.uuid4(), "s" * 43)
    cache.put(account)
    assert cache.get(TOWN, "s" * 43) == account
    assert cache.get(uuid.uuid4(), "s" * 43) is None, "a session belongs to its town"
    time.sleep(0.06)
    assert cache.get(TOWN, "s" * 43) is None


def test_forgetting_an_account_forgets_all_its_sessions_and_only_those() -> None:
    cache = SessionCache(ttl_seconds=60)
    marie, jean = uuid.uuid4(), uuid.uuid4()
    for session in ("a" * 43, "b" * 43):
        cache.put(_account(marie, session))
    cache.put(_account(jean, "c" * 43))
    cache.forget_account(marie)
    assert cache.get(TOWN, "a" * 43) is None
    assert cache.get(TOWN, "b" * 43) is None
    assert cache.get(TOWN, "c" * 43) is not None


def test_a_zero_time_to_live_disables_the_cache() -> None:
    cache = SessionCache(ttl_seconds=0)
    cache.put(_account(uuid.uuid4(), "d" * 43))
    assert cache.get(TOWN, "d" * 43) is None
