"""The resident's account, driven through the real gateway, auth, notifier, PostgreSQL, RabbitMQ and SMTP."""

from __future__ import annotations

import re

from yarl import URL

from tests.support.http import browser_session
from tests.support.resident import Resident, csrf_of, known_debtor, link_in, new_email
from tests.support.suite import Suite, TownHandle


async def test_activation_then_login_then_logout(suite: Suite) -> None:
    town = await suite.create_town()
    resident = Resident(suite, town, new_email())
    try:
        await known_debtor(suite, town, resident.email)
        await resident.activate()

        home = await resident.get("/")
        assert "Votre compte est activé" in home.text

        logged_in = await resident.log_in()
        assert logged_in.status == 303
        assert logged_in.location == "/factures"
        page = await resident.get("/mes-informations")
        assert page.status == 200
        assert resident.email in page.text

        out = await resident.submit("/mes-informations", {}, action="/deconnexion")
        assert out.status == 303
        after = await resident.get("/mes-informations")
        assert after.status == 303, "personal pages need a session again"
        assert after.location.startswith("/?suite=")
    finally:
        await resident.close()


async def test_activation_mail_is_french_with_text_and_html_and_a_link_on_the_configured_address(
    suite: Suite,
) -> None:
    town = await suite.create_town()
    resident = Resident(suite, town, new_email())
    try:
        await known_debtor(suite, town, resident.email)
        await resident.request_activation()
        [mail] = await suite.wait_for_mail(resident.email, subject_contains="Activez votre compte")
        text, html = mail.part("plain"), mail.part("html")
        assert town.data["name"] in text
        assert "Ce lien ne sert qu'une fois" in text
        assert link_in(text).startswith(town.public_url + "/compte/activation/")
        assert link_in(text) in html
        assert mail.message["From"].addresses[0].addr_spec == "no-reply@portail.localhost"
    finally:
        await resident.close()


async def test_login_with_wrong_password_never_says_which_field_was_wrong(suite: Suite) -> None:
    town = await suite.create_town()
    resident = Resident(suite, town, new_email())
    stranger = Resident(suite, town, new_email("stranger"))
    try:
        await known_debtor(suite, town, resident.email)
        await resident.activate()
        wrong_password = await resident.log_in(password="not the right one")
        unknown_account = await stranger.log_in(password="not the right one")
        for page in (wrong_password, unknown_account):
            assert page.status == 401
            assert "Adresse de messagerie ou mot de passe incorrect." in page.text
    finally:
        await resident.close()
        await stranger.close()


async def test_password_reset_by_link_ends_every_other_session(suite: Suite) -> None:
    town = await suite.create_town()
    resident = Resident(suite, town, new_email())
    other_device = Resident(suite, town, resident.email, password=resident.password)
    try:
        await known_debtor(suite, town, resident.email)
        await resident.activate()
        await other_device.log_in(remember=True)
        assert (await other_device.get("/mes-informations")).status == 200

        sent = await resident.submit("/mot-de-passe-oublie", {"email": resident.email})
        assert sent.status == 303
        [mail] = await suite.wait_for_mail(resident.email, subject_contains="nouveau mot de passe")
        resident.password = "un tout nouveau mot de passe"
        done = await resident.submit(link_in(mail.part("plain")), {"password": resident.password})
        assert done.status == 303
        assert (await resident.log_in()).status == 303

        assert (await other_device.get("/mes-informations")).status == 303, "the other device was logged out"
        await suite.wait_for_mail(resident.email, subject_contains="a été modifié")
    finally:
        await resident.close()
        await other_device.close()


async def test_remember_me_survives_a_browser_restart_and_rotates_its_token(suite: Suite) -> None:
    town = await suite.create_town()
    resident = Resident(suite, town, new_email())
    try:
        await known_debtor(suite, town, resident.email)
        await resident.activate()
        page = await resident.log_in(remember=True)
        set_cookies = page.headers.getall("Set-Cookie")
        session_cookie = next(c for c in set_cookies if c.startswith("portail_session="))
        remember_cookie = next(c for c in set_cookies if c.startswith("portail_souvenir="))
        assert "Max-Age" not in session_cookie, "ends with the browser"
        assert "expires" not in session_cookie.lower(), "ends with the browser"
        assert "Max-Age=2592000" in remember_cookie
        for cookie in (session_cookie, remember_cookie):
            assert "HttpOnly" in cookie
            assert "SameSite=Lax" in cookie
        token = resident.cookie("portail_souvenir")
        assert token
    finally:
        await resident.close()

    # A new browser with only the persistent cookie: still logged in, with a new token.
    restarted = Resident(suite, town, resident.email)
    try:
        restarted.http.cookie_jar.update_cookies(
            {"portail_souvenir": token}, response_url=_url(town.public_url)
        )
        page = await restarted.get("/mes-informations")
        assert page.status == 200
        assert resident.email in page.text
        rotated = restarted.cookie("portail_souvenir")
        assert rotated
        assert rotated != token
    finally:
        await restarted.close()

    # The old token was spent by the rotation: replaying it gives nothing.
    replay = Resident(suite, town, resident.email)
    try:
        replay.http.cookie_jar.update_cookies({"portail_souvenir": token}, response_url=_url(town.public_url))
        assert (await replay.get("/mes-informations")).status == 303
    finally:
        await replay.close()


async def test_email_change_needs_the_password_and_a_link_then_tells_the_old_address(suite: Suite) -> None:
    town = await suite.create_town()
    resident = Resident(suite, town, new_email())
    new_address = new_email("nouvelle")
    try:
        await known_debtor(suite, town, resident.email)
        await resident.activate()
        await resident.log_in()

        refused = await resident.submit(
            "/mes-informations",
            {"new_email": new_address, "email_password": "wrong"},
            action="/mes-informations/adresse",
        )
        assert refused.status == 422
        assert "mot de passe actuel" in refused.text

        asked = await resident.submit(
            "/mes-informations",
            {"new_email": new_address, "email_password": resident.password},
            action="/mes-informations/adresse",
        )
        assert asked.status == 303
        [mail] = await suite.wait_for_mail(new_address, subject_contains="Confirmez votre nouvelle adresse")

        # Until the link is followed, the old address is still the login.
        assert (await Resident(suite, town, new_address, resident.password).log_in()).status == 401

        link = link_in(mail.part("plain"))
        shown = await resident.get(link)
        assert shown.status == 200
        assert new_address in shown.text
        assert shown.headers["Referrer-Policy"] == "no-referrer"
        confirmed = await resident.post(link, {"csrf_token": csrf_of(shown.text)})
        assert confirmed.status == 303

        newcomer = Resident(suite, town, new_address, resident.password)
        try:
            assert (await newcomer.log_in()).status == 303
        finally:
            await newcomer.close()
        [notice] = await suite.wait_for_mail(resident.email, subject_contains="a changé")
        assert new_address in notice.part("plain")
    finally:
        await resident.close()


async def test_email_already_used_by_another_account_is_refused_without_saying_whose(suite: Suite) -> None:
    town = await suite.create_town()
    first = Resident(suite, town, new_email("first"))
    second = Resident(suite, town, new_email("second"))
    try:
        for resident in (first, second):
            await known_debtor(suite, town, resident.email)
            await resident.activate()
        await first.log_in()
        refused = await first.submit(
            "/mes-informations",
            {"new_email": second.email, "email_password": first.password},
            action="/mes-informations/adresse",
        )
        assert refused.status == 422
        assert "ne peut pas être utilisée" in refused.text
        assert second.email not in re.sub(r'value="[^"]*"', "", refused.text)
    finally:
        await first.close()
        await second.close()


async def test_password_change_keeps_this_session_ends_others_and_tells_the_address(suite: Suite) -> None:
    town = await suite.create_town()
    resident = Resident(suite, town, new_email())
    elsewhere = Resident(suite, town, resident.email, password=resident.password)
    try:
        await known_debtor(suite, town, resident.email)
        await resident.activate()
        await resident.log_in()
        await elsewhere.log_in(remember=True)
        changed = await resident.submit(
            "/mes-informations",
            {"current_password": resident.password, "new_password": "encore une autre phrase"},
            action="/mes-informations/mot-de-passe",
        )
        assert changed.status == 303
        assert (await resident.get("/mes-informations")).status == 200, "this session goes on"
        assert (await elsewhere.get("/mes-informations")).status == 303, "the other one (and its token) ended"
        await suite.wait_for_mail(resident.email, subject_contains="a été modifié")
    finally:
        await resident.close()
        await elsewhere.close()


async def test_unknown_host_of_a_link_request_still_builds_links_on_the_towns_address(suite: Suite) -> None:
    town = await suite.create_town()
    alias = f"alias-{town.slug}.localhost"
    await suite.call(
        "PUT",
        "invoices",
        f"/admin/towns/{town.slug}",
        json={**_town_body(town), "hosts": [town.host, alias]},
        expect=200,
    )
    resident = Resident(suite, town, new_email())
    try:
        await known_debtor(suite, town, resident.email)
        port = suite.config.ports["gateway"]
        async with browser_session() as browser:
            async with browser.get(f"http://{alias}:{port}/activer") as page:
                token = csrf_of(await page.text())
            async with browser.post(
                f"http://{alias}:{port}/activer",
                data={"csrf_token": token, "email": resident.email},
                allow_redirects=False,
            ) as answer:
                assert answer.status == 303
        [mail] = await suite.wait_for_mail(resident.email, subject_contains="Activez")
        assert link_in(mail.part("plain")).startswith(town.public_url + "/compte/activation/")
    finally:
        await resident.close()


def _url(base: str) -> URL:
    return URL(base + "/")


def _town_body(town: TownHandle) -> dict[str, object]:
    keys = ("name", "public_url", "contact_email", "logo_url", "alerts_enabled", "password_min_length")
    body = {k: town.data[k] for k in keys}
    body["regies"] = [{k: v for k, v in r.items() if k != "regie_id"} for r in town.data["regies"]]
    return body
