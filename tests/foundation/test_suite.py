"""The five processes started as the README's command starts them, talking over the real broker."""

from __future__ import annotations

import json
import uuid

import aiohttp

from tests.support.http import browser_session
from tests.support.suite import Suite, log_of
from tests.support.waiting import eventually

PROCESSES = ("auth", "invoices", "payments", "notifier", "gateway")


async def test_every_process_is_alive_ready_and_measured(suite: Suite) -> None:
    async with aiohttp.ClientSession() as http:
        for name in PROCESSES:
            base = suite.url(name)
            async with http.get(base + "/healthz") as response:
                assert response.status == 200, name
            async with http.get(base + "/readyz") as response:
                body = await response.json()
                assert response.status == 200, (name, body)
                assert set(body["checks"]) == ({"services"} if name == "gateway" else {"database", "broker"})
            async with http.get(base + "/metrics") as response:
                text = await response.text()
                assert "portail_http_requests_total" in text, name
                if name not in ("gateway", "notifier"):
                    assert "portail_outbox_backlog" in text, name


async def test_debtor_written_by_invoices_reaches_auth_once_and_is_followed_by_its_correlation_id(
    suite: Suite,
) -> None:
    town = await suite.create_town()
    correlation_id = "corr-" + uuid.uuid4().hex
    status, debtor = await suite.call(
        "PUT",
        "invoices",
        "/office/debtors/D42",
        json={"name": "DURAND Paul", "emails": ["Paul.Durand@Example.org"]},
        headers={**town.office_headers, "X-Correlation-ID": correlation_id},
    )
    assert status == 200, debtor
    assert debtor["emails"] == ["paul.durand@example.org"]

    auth = await suite.db("auth")
    try:

        async def known_to_auth() -> bool:
            rows = await auth.fetch(
                "SELECT email FROM known_emails WHERE town_id = $1 AND debtor_id = $2",
                town.town_id,
                uuid.UUID(debtor["debtor_id"]),
            )
            return [r["email"] for r in rows] == ["paul.durand@example.org"]

        await eventually(known_to_auth, what="auth learnt the debtor's e-mail from the event")
        # The same data again changes nothing and publishes nothing.
        await suite.call(
            "PUT",
            "invoices",
            "/office/debtors/D42",
            headers=town.office_headers,
            json={"name": "DURAND Paul", "emails": ["paul.durand@example.org"]},
        )
        handled = await auth.fetchval(
            "SELECT count(*) FROM inbox WHERE event_type = 'invoices.debtor_upserted'"
            " AND event_id IN (SELECT event_id FROM inbox)"
        )
        assert handled >= 1
    finally:
        await auth.close()

    invoices = await suite.db("invoices")
    try:
        events = await invoices.fetch(
            "SELECT envelope FROM outbox WHERE event_type = 'invoices.debtor_upserted'"
            " AND envelope->>'correlation_id' = $1",
            correlation_id,
        )
        assert len(events) == 1, "one upsert, one event, carrying the request's correlation id"
    finally:
        await invoices.close()

    async def followed_in_both_logs() -> bool:
        def lines(process: str) -> list[dict[str, object]]:
            return [
                json.loads(line)
                for line in log_of(suite, process).read_text().splitlines()
                if correlation_id in line and line.startswith("{")
            ]

        invoices_lines = lines("invoices")
        auth_lines = lines("auth")
        return any(e.get("event") == "request_handled" for e in invoices_lines) and any(
            e.get("event") == "event_consumed" and e.get("outcome") == "handled" for e in auth_lines
        )

    await eventually(followed_in_both_logs, what="the correlation id in the logs of invoices and auth")


async def test_town_settings_reach_the_notifier_and_auth(suite: Suite) -> None:
    town = await suite.create_town(password_min_length=5)
    notifier = await suite.db("notifier")
    auth = await suite.db("auth")
    try:

        async def both_know() -> bool:
            n = await notifier.fetchrow(
                "SELECT name, contact_email FROM towns WHERE town_id = $1", town.town_id
            )
            a = await auth.fetchrow("SELECT password_min_length FROM towns WHERE town_id = $1", town.town_id)
            return n is not None and a is not None and a["password_min_length"] == 5

        await eventually(both_know, what="the town's settings in notifier and auth")
    finally:
        await notifier.close()
        await auth.close()


async def test_gateway_serves_a_known_town_and_a_french_404_for_an_unknown_host(suite: Suite) -> None:
    town = await suite.create_town()
    port = suite.config.ports["gateway"]
    async with browser_session() as browser:
        async with browser.get(f"http://{town.host}:{port}/accessibilite") as response:
            page = await response.text()
            assert response.status == 200
            assert town.data["name"] in page
            assert 'lang="fr"' in page
            assert "Content-Security-Policy" in response.headers
        async with browser.get(f"http://nowhere-{uuid.uuid4().hex[:6]}.localhost:{port}/") as response:
            page = await response.text()
            assert response.status == 404
            assert "Aucun portail des factures à cette adresse" in page


async def test_office_api_rejects_a_missing_or_unknown_key_precisely(suite: Suite) -> None:
    status, body = await suite.call("PUT", "invoices", "/office/debtors/D1", json={"name": "X"})
    assert status == 401
    assert body["error"]["code"] == "unauthorized"
    status, body = await suite.call(
        "PUT", "invoices", "/office/debtors/D1", json={"name": "X"}, headers={"Authorization": "Bearer nope"}
    )
    assert status == 401
    status, body = await suite.call("PUT", "invoices", "/admin/towns/x", json={"name": ""})
    assert status == 422
    assert body["error"]["code"] == "invalid_request"
    assert {d["field"] for d in body["error"]["details"]} >= {"name", "public_url", "contact_email"}


async def test_service_refuses_calls_without_the_internal_token(suite: Suite) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(suite.url("invoices") + "/towns/by-host/demo.localhost") as response,
    ):
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "unauthorized"
