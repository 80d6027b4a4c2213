"""What a public site owes its residents: the attacks of the accounts issue, each tried for real."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import statistics
import time
from datetime import timedelta

from gateway.settings import Settings as GatewaySettings
from tests.support.http import browser_session
from tests.support.resident import Resident, csrf_of, known_debtor, link_in, new_email
from tests.support.suite import Suite


def _without_tokens(html: str) -> str:
    return re.sub(r'value="[^"]*"', 'value=""', html)


async def test_activation_and_reset_answer_identically_for_known_and_unknown_addresses(suite: Suite) -> None:
    town = await suite.create_town()
    known = [new_email("known") for _ in range(20)]
    for start in (0, 10):
        await suite.call(
            "PUT",
            "invoices",
            f"/office/debtors/K{start}",
            json={"name": "CONNU", "emails": known[start : start + 10]},
            headers=town.office_headers,
            expect=200,
        )
    await known_debtor(suite, town, known[0], reference="K0")
    unknown = [new_email("unknown") for _ in range(20)]

    async with browser_session() as browser:

        async def ask(path: str, email: str) -> tuple[int, str, float]:
            async with browser.get(town.public_url + path) as page:
                token = csrf_of(await page.text())
            started = time.perf_counter()
            async with browser.post(
                town.public_url + path, data={"csrf_token": token, "email": email}, allow_redirects=True
            ) as answer:
                elapsed = time.perf_counter() - started
                return answer.status, _without_tokens(await answer.text()), elapsed

        for path in ("/activer", "/mot-de-passe-oublie"):
            timings: dict[str, list[float]] = {"known": [], "unknown": []}
            pages: dict[str, set[str]] = {"known": set(), "unknown": set()}
            for known_email, unknown_email in zip(
                known[:10] if path == "/activer" else known[10:], unknown, strict=False
            ):
                for kind, email in (("known", known_email), ("unknown", unknown_email)):
                    status, page, elapsed = await ask(path, email)
                    assert status == 200
                    pages[kind].add(page)
                    timings[kind].append(elapsed)
            assert pages["known"] == pages["unknown"], "the answer must not tell known from unknown addresses"
            known_median = statistics.median(timings["known"])
            unknown_median = statistics.median(timings["unknown"])
            # Same work on both paths (a token row and an event): the medians stay close.
            assert abs(known_median - unknown_median) < max(0.015, 0.5 * min(known_median, unknown_median)), (
                timings
            )

    # Both paths wrote an event; the unknown address is told it has no account here.
    await suite.wait_for_mail(known[0], subject_contains="Activez")
    [notice] = await suite.wait_for_mail(unknown[0], subject_contains="Demande d'activation")
    assert "ne connaît pas cette adresse" in notice.part("plain")


async def test_link_tokens_are_long_random_hashed_single_use_and_spent_only_by_the_post(suite: Suite) -> None:
    town = await suite.create_town()
    resident = Resident(suite, town, new_email())
    try:
        await known_debtor(suite, town, resident.email)
        await resident.request_activation()
        [mail] = await suite.wait_for_mail(resident.email, subject_contains="Activez")
        link = link_in(mail.part("plain"))
        token = link.rsplit("/", 1)[1]
        assert len(token) >= 43, "256 random bits, URL-safe base64"

        auth = await suite.db("auth")
        try:
            row = await auth.fetchrow(
                "SELECT token_hash, expires_at - created_at AS lifetime FROM link_tokens"
                " WHERE town_id = $1 AND email = $2 AND usable",
                town.town_id,
                resident.email,
            )
            assert bytes(row["token_hash"]) == hashlib.sha256(token.encode()).digest()
            assert row["lifetime"] == timedelta(hours=72)
            dump = str(await auth.fetch("SELECT * FROM link_tokens"))
            assert token not in dump, "the token itself is never stored"
        finally:
            await auth.close()

        # Following the link twice only shows the form.
        for _ in range(2):
            shown = await resident.get(link)
            assert shown.status == 200
            assert shown.headers["Referrer-Policy"] == "no-referrer"
        token_field = csrf_of(shown.text)

        # Many concurrent uses: exactly one wins.
        async def use() -> int:
            page = await resident.post(link, {"csrf_token": token_field, "password": resident.password})
            return page.status

        statuses = await asyncio.gather(*(use() for _ in range(8)))
        assert sorted(statuses).count(303) == 1, statuses
        assert all(s in (303, 410) for s in statuses), statuses
        again = await resident.get(link)
        assert again.status == 410
        assert "Ce lien n'est plus valable" in again.text
    finally:
        await resident.close()


async def test_expired_links_are_refused_and_lifetimes_follow_the_rules(suite: Suite) -> None:
    town = await suite.create_town()
    resident = Resident(suite, town, new_email())
    try:
        await known_debtor(suite, town, resident.email)
        await resident.activate()
        await resident.submit("/mot-de-passe-oublie", {"email": resident.email})
        [mail] = await suite.wait_for_mail(resident.email, subject_contains="nouveau mot de passe")
        link = link_in(mail.part("plain"))
        auth = await suite.db("auth")
        try:
            lifetime = await auth.fetchval(
                "SELECT expires_at - created_at FROM link_tokens WHERE town_id = $1 AND purpose = 'reset'"
                " AND usable",
                town.town_id,
            )
            assert lifetime == timedelta(minutes=30)
            await auth.execute(
                "UPDATE link_tokens SET expires_at = now() - interval '1 second' WHERE town_id = $1"
                " AND purpose = 'reset'",
                town.town_id,
            )
        finally:
            await auth.close()
        assert (await resident.get(link)).status == 410
    finally:
        await resident.close()


async def test_password_rules_length_from_the_town_long_phrases_and_common_passwords(suite: Suite) -> None:
    strict = await suite.create_town()
    lenient = await suite.create_town(password_min_length=5)
    for town, short, accepted in ((strict, "sept7ch", False), (lenient, "cinq5", True)):
        resident = Resident(suite, town, new_email(), password=short)
        try:
            await known_debtor(suite, town, resident.email)
            await resident.request_activation()
            [mail] = await suite.wait_for_mail(resident.email, subject_contains="Activez")
            link = link_in(mail.part("plain"))
            for common in ("azerty123", "password1", resident.email):
                refused = await resident.submit(link, {"password": common})
                assert refused.status == 422
                assert "trop courant" in refused.text or "au moins" in refused.text
            answer = await resident.submit(link, {"password": short})
            assert (answer.status == 303) is accepted, answer.text[:300]
            if not accepted:
                assert "au moins 8 caractères" in answer.text
                assert 'aria-describedby="password-aide password-erreur"' in answer.text
                long_phrase = "une très longue phrase de passe " * 4
                assert len(long_phrase) > 64
                assert (await resident.submit(link, {"password": long_phrase})).status == 303
        finally:
            await resident.close()

    auth = await suite.db("auth")
    try:
        stored = await auth.fetchval("SELECT password_hash FROM accounts WHERE town_id = $1", lenient.town_id)
    finally:
        await auth.close()
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$"), "argon2id at OWASP's parameters or above"


async def test_login_gives_a_fresh_session_id_and_ignores_a_planted_one(suite: Suite) -> None:
    town = await suite.create_town()
    resident = Resident(suite, town, new_email())
    try:
        await known_debtor(suite, town, resident.email)
        await resident.activate()
        planted = secrets.token_urlsafe(32)
        from yarl import URL

        resident.http.cookie_jar.update_cookies(
            {"portail_session": planted}, response_url=URL(town.public_url + "/")
        )
        await resident.log_in()
        assert resident.cookie("portail_session") not in (None, planted)

        attacker = Resident(suite, town, "attacker@example.org")
        try:
            attacker.http.cookie_jar.update_cookies(
                {"portail_session": planted}, response_url=URL(town.public_url + "/")
            )
            assert (await attacker.get("/mes-informations")).status == 303
        finally:
            await attacker.close()
    finally:
        await resident.close()


async def test_logout_and_idle_time_end_the_session_on_the_server(suite: Suite) -> None:
    from yarl import URL

    town = await suite.create_town()
    resident = Resident(suite, town, new_email())
    try:
        await known_debtor(suite, town, resident.email)
        await resident.activate()
        await resident.log_in()
        stolen = resident.cookie("portail_session")
        assert stolen is not None
        await resident.submit("/mes-informations", {}, action="/deconnexion")
        thief = Resident(suite, town, resident.email)
        try:
            thief.http.cookie_jar.update_cookies(
                {"portail_session": stolen}, response_url=URL(town.public_url + "/")
            )
            assert (await thief.get("/mes-informations")).status == 303, "the server forgot the session"
        finally:
            await thief.close()

        await resident.log_in()
        assert (await resident.get("/mes-informations")).status == 200
        auth = await suite.db("auth")
        try:
            await auth.execute(
                "UPDATE sessions SET last_seen_at = now() - interval '31 minutes' WHERE town_id = $1",
                town.town_id,
            )
        finally:
            await auth.close()
        # The gateway trusts a session it resolved for a couple of seconds (gateway.sessions.SessionCache):
        # an expiry decided at auth shows once that bound has passed.
        await asyncio.sleep(GatewaySettings().session_cache_seconds + 0.2)
        assert (await resident.get("/mes-informations")).status == 303, "idle for 31 minutes: logged out"
    finally:
        await resident.close()


async def test_failed_logins_bring_a_growing_delay_but_never_block_the_reset_path(suite: Suite) -> None:
    town = await suite.create_town()
    resident = Resident(suite, town, new_email())
    try:
        await known_debtor(suite, town, resident.email)
        await resident.activate()
        statuses = [(await resident.log_in(password=f"guess {n}")).status for n in range(4)]
        assert statuses[:3] == [401, 401, 401]
        assert statuses[3] == 429
        blocked = await resident.log_in()
        assert blocked.status == 429, "even the right password waits: guesses stay bounded"
        assert int(blocked.headers["Retry-After"]) >= 1
        assert "Trop de tentatives" in blocked.text

        sent = await resident.submit("/mot-de-passe-oublie", {"email": resident.email})
        assert sent.status == 303
        [mail] = await suite.wait_for_mail(resident.email, subject_contains="nouveau mot de passe")
        resident.password = "le chemin du retour"
        assert (
            await resident.submit(link_in(mail.part("plain")), {"password": resident.password})
        ).status == 303
        assert (await resident.log_in()).status == 303, "a reset lifts the delay"
    finally:
        await resident.close()


async def test_activation_emails_are_limited_per_address_per_hour(suite: Suite) -> None:
    town = await suite.create_town()
    resident = Resident(suite, town, new_email())
    try:
        await known_debtor(suite, town, resident.email)
        for _ in range(5):
            assert (await resident.request_activation()).status == 303
        await suite.wait_for_mail(resident.email, subject_contains="Activez", count=3)
        await asyncio.sleep(1.5)
        assert len(suite.mail.to(resident.email)) == 3
    finally:
        await resident.close()


async def test_forms_posted_without_token_from_another_origin_or_with_a_foreign_token_are_refused(
    suite: Suite,
) -> None:
    town = await suite.create_town()
    async with browser_session() as browser, browser_session() as other:
        async with browser.get(town.public_url + "/") as page:
            token = csrf_of(await page.text())
        async with other.get(town.public_url + "/") as page:
            foreign_token = csrf_of(await page.text())
        attempts = [
            ({"email": "a@example.org", "password": "x"}, {}),
            (
                {"email": "a@example.org", "password": "x", "csrf_token": token},
                {"Origin": "https://evil.example"},
            ),
            ({"email": "a@example.org", "password": "x", "csrf_token": foreign_token}, {}),
        ]
        for data, headers in attempts:
            async with browser.post(
                town.public_url + "/connexion", data=data, headers=headers, allow_redirects=False
            ) as answer:
                assert answer.status == 403
                assert "Le formulaire a expiré" in await answer.text()
