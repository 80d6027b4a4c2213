"""Attacks on the residents' site, each tried for real against the running gateway and services."""

from __future__ import annotations

import re
import statistics
import time
import uuid

import aiohttp
import pytest

from gateway.app import create_app
from gateway.settings import Settings as GatewaySettings
from tests.support.http import browser_session
from tests.support.resident import Resident, csrf_of, known_debtor, new_email
from tests.support.suite import Suite


def _gateway_post_routes() -> list[str]:
    """Every POST route of the gateway, path parameters filled with plausible values."""
    app = create_app(GatewaySettings())
    paths = []
    for route in app.router.routes():
        if route.method != "POST":
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if path:
            paths.append(re.sub(r"{[^}]+}", "A" * 43, path))
    return sorted(set(paths))


def test_the_gateway_has_forms_to_protect() -> None:
    assert len(_gateway_post_routes()) >= 8


async def test_every_post_route_refuses_a_form_without_a_valid_csrf_token(suite: Suite) -> None:
    town = await suite.create_town()
    resident = Resident(suite, town, new_email())
    try:
        await known_debtor(suite, town, resident.email)
        await resident.activate()
        await resident.log_in()
        page = await resident.get("/mes-informations")
        token = csrf_of(page.text)
        for path in _gateway_post_routes():
            if path.startswith("/payfip/"):
                continue  # PayFiP's servers post there, without cookies: it only triggers a lookup
            no_token = await resident.post(path, {"email": "x@example.org"})
            assert no_token.status == 403, path
            forged_origin = await resident.post(
                path, {"csrf_token": token}, headers={"Origin": "https://evil.example"}
            )
            assert forged_origin.status == 403, path
            wrong_token = await resident.post(path, {"csrf_token": token[:-2] + "xx"})
            assert wrong_token.status == 403, path
        assert (await resident.get("/mes-informations")).status == 200, "none of them logged the resident out"
    finally:
        await resident.close()


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "http:/evil.example",
        "javascript:alert(1)",
    ],
)
async def test_login_never_redirects_to_another_site(suite: Suite, target: str) -> None:
    town = await suite.create_town()
    resident = Resident(suite, town, new_email())
    try:
        await known_debtor(suite, town, resident.email)
        await resident.activate()
        answer = await resident.submit(
            "/",
            {"email": resident.email, "password": resident.password, "suite": target},
            action="/connexion",
        )
        assert answer.status == 303
        location = answer.location
        assert location.startswith("/"), location
        assert not location.startswith(("//", "/\\")), location
    finally:
        await resident.close()


async def test_line_breaks_in_an_address_cannot_inject_mail_headers(suite: Suite) -> None:
    town = await suite.create_town()
    async with browser_session() as browser:
        async with browser.get(town.public_url + "/activer") as page:
            token = csrf_of(await page.text())
        for evil in (
            "victim@example.org\r\nBcc: all@example.org",
            "victim@example.org\nSubject: x",
            "a@b.c>\r\nX: y",
        ):
            async with browser.post(
                town.public_url + "/activer", data={"csrf_token": token, "email": evil}, allow_redirects=False
            ) as answer:
                assert answer.status == 422
                assert "adresse de messagerie valide" in await answer.text()
    assert not [m for m in suite.mail.messages if "all@example.org" in str(m.rcpt_to)]


async def test_oversized_forms_and_bodies_are_refused_in_french_or_in_the_error_shape(suite: Suite) -> None:
    town = await suite.create_town()
    async with browser_session() as browser:
        async with browser.get(town.public_url + "/activer") as page:
            token = csrf_of(await page.text())
        huge = "x" * (2 * 1024 * 1024)
        async with browser.post(
            town.public_url + "/activer", data={"csrf_token": token, "email": huge}, allow_redirects=False
        ) as answer:
            assert answer.status == 413
            assert "Envoi trop volumineux" in await answer.text()
    async with aiohttp.ClientSession() as http:
        body = b'{"email": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        async with http.post(
            f"{suite.url('auth')}/towns/{town.town_id}/activation-requests",
            data=body,
            headers={**suite.admin_headers, "Content-Type": "application/json"},
        ) as answer:
            assert answer.status == 413
            assert (await answer.json())["error"]["code"] == "payload_too_large"


async def test_known_and_unknown_addresses_cannot_be_told_apart_over_200_requests(suite: Suite) -> None:
    """Same status, same bytes (the CSRF token aside) and close timings for 100 known and 100 unknown."""
    town = await suite.create_town()
    known = [new_email("known") for _ in range(100)]
    for start in range(0, 100, 10):
        await suite.call(
            "PUT",
            "invoices",
            f"/office/debtors/K{start}",
            headers=town.office_headers,
            json={"name": "CONNU", "emails": known[start : start + 10]},
            expect=200,
        )
    await known_debtor(suite, town, known[-1], reference="K90")
    unknown = [new_email("unknown") for _ in range(100)]
    timings: dict[str, list[float]] = {"known": [], "unknown": []}
    bodies: dict[str, set[bytes]] = {"known": set(), "unknown": set()}
    async with browser_session() as browser:
        async with browser.get(town.public_url + "/mot-de-passe-oublie") as page:
            token = csrf_of(await page.text())
        for known_email, unknown_email in zip(known, unknown, strict=True):
            for kind, email in (("known", known_email), ("unknown", unknown_email)):
                started = time.perf_counter()
                async with browser.post(
                    town.public_url + "/activer",
                    data={"csrf_token": token, "email": email},
                    allow_redirects=False,
                ) as answer:
                    raw = await answer.read()
                    timings[kind].append(time.perf_counter() - started)
                    assert answer.status == 303
                    bodies[kind].add(raw + answer.headers["Location"].encode())
    assert bodies["known"] == bodies["unknown"]
    known_median, unknown_median = statistics.median(timings["known"]), statistics.median(timings["unknown"])
    assert abs(known_median - unknown_median) < max(0.01, 0.3 * min(known_median, unknown_median)), (
        known_median,
        unknown_median,
    )


async def test_a_session_of_one_town_is_worthless_on_another(suite: Suite) -> None:
    first, second = await suite.create_town(), await suite.create_town()
    resident = Resident(suite, first, new_email())
    try:
        await known_debtor(suite, first, resident.email)
        await resident.activate()
        await resident.log_in()
        session = resident.cookie("portail_session")
        assert session
        from yarl import URL

        intruder = Resident(suite, second, resident.email)
        try:
            intruder.http.cookie_jar.update_cookies(
                {"portail_session": session}, response_url=URL(second.public_url + "/")
            )
            assert (await intruder.get("/mes-informations")).status == 303
        finally:
            await intruder.close()
    finally:
        await resident.close()


async def test_an_account_id_of_another_resident_changes_nothing_through_the_auth_api(suite: Suite) -> None:
    """The gateway always sends the session's own account; a forged id at the service still needs that
    account's current password, so it gains nothing."""
    town = await suite.create_town()
    victim = Resident(suite, town, new_email("victim"))
    try:
        await known_debtor(suite, town, victim.email)
        await victim.activate()
        status, body = await suite.call(
            "POST",
            "auth",
            f"/towns/{town.town_id}/accounts/{uuid.uuid4()}/password",
            json={
                "session_id": "s" * 43,
                "current_password": "guess",
                "new_password": "une phrase assez longue",
            },
        )
        assert status == 401
        assert body["error"]["code"] == "invalid_credentials"
    finally:
        await victim.close()
