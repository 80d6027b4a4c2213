"""Security headers on every page the gateway serves to a browser, over plain HTTP through the real
processes. The GET routes are read from the gateway's own router: a route added without a sample here
fails the test, so no page escapes the checks.

Every HTML answer has a CSP whose scripts need this answer's nonce (no 'unsafe-inline', no
'unsafe-eval'), whose form-action allows the PayFiP origin and whose frame-ancestors is 'none'; nosniff;
a Referrer-Policy, `no-referrer` on the pages an e-mailed link opens (their address holds a secret);
`Cache-Control: no-store` on every page with personal data. The body has no inline script, no event
handler attribute and no inline style. HSTS is sent by a gateway configured for production, and not by
one in local development (the suite's)."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from gateway.app import create_app
from gateway.settings import Settings
from tests.payment_pages.support import ONE, Payer, payer
from tests.support.http import browser_session
from tests.support.resident import Resident, known_debtor, link_in, new_email
from tests.support.suite import Suite, extra_gateway

EMAILED_LINKS = ("/compte/activation/", "/compte/nouveau-mot-de-passe/", "/compte/confirmer-adresse/")
NOT_PAGES = {"/healthz", "/readyz", "/metrics", "/payfip/notification", "/static"}
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\ssrc=)", re.I)
HANDLER_ATTRIBUTE = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)
INLINE_STYLE = re.compile(r"<style\b|<[^>]+\sstyle\s*=", re.I)
SCRIPT_NONCE = re.compile(r"<script\b[^>]*\snonce=\"([^\"]+)\"", re.I)


def get_routes() -> set[str]:
    """The canonical path of every GET route of the gateway, read from its router."""
    app = create_app(Settings())
    return {
        route.resource.canonical
        for route in app.router.routes()
        if route.method == "GET" and route.resource is not None
    }


def csp_of(header: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


@dataclass
class Sample:
    """A concrete address for a route, and what its answer must be."""

    path: str
    logged_in: bool = False
    html: bool = True
    emailed_link: bool = False
    status: int = 200


async def emailed_links(suite: Suite, marie: Payer) -> dict[str, str]:
    """A live link of each kind, as the notifier e-mailed it (opening a link spends nothing)."""
    town = marie.town
    newcomer = Resident(suite, town, new_email("lien"))
    forgetful = Resident(suite, town, marie.email)
    try:
        await known_debtor(suite, town, newcomer.email)
        await newcomer.request_activation()
        [activation] = await suite.wait_for_mail(newcomer.email, subject_contains="Activez")
        await forgetful.submit("/mot-de-passe-oublie", {"email": marie.email})
        [reset] = await suite.wait_for_mail(marie.email, subject_contains="nouveau mot de passe")
    finally:
        await newcomer.close()
        await forgetful.close()
    moved = new_email("ailleurs")
    answer = await marie.post_form(
        "/mes-informations",
        "/mes-informations/adresse",
        {"new_email": moved, "email_password": marie.resident.password},
    )
    assert answer.status == 303, answer.text[:300]
    [change] = await suite.wait_for_mail(moved, subject_contains="Confirmez")
    return {
        "activation": link_in(activation.part("plain")),
        "reset": link_in(reset.part("plain")),
        "email_change": link_in(change.part("plain")),
    }


async def samples_for(suite: Suite, marie: Payer) -> dict[str, list[Sample]]:
    invoice = marie.invoices[ONE]
    payfip_page = await marie.leave_for_payfip(ONE)
    idop = payfip_page.split("idop=")[1]
    links = await emailed_links(suite, marie)
    dead = "x" * 43
    return {
        "/": [Sample("/")],
        "/accessibilite": [Sample("/accessibilite")],
        "/activer": [Sample("/activer")],
        "/activer/envoye": [Sample("/activer/envoye")],
        "/mot-de-passe-oublie": [Sample("/mot-de-passe-oublie")],
        "/mot-de-passe-oublie/envoye": [Sample("/mot-de-passe-oublie/envoye")],
        "/compte/activation/{token}": [
            Sample(links["activation"], emailed_link=True),
            Sample(f"/compte/activation/{dead}", emailed_link=True, status=410),
        ],
        "/compte/nouveau-mot-de-passe/{token}": [
            Sample(links["reset"], emailed_link=True),
            Sample(f"/compte/nouveau-mot-de-passe/{dead}", emailed_link=True, status=410),
        ],
        "/compte/confirmer-adresse/{token}": [
            Sample(links["email_change"], logged_in=True, emailed_link=True),
            Sample(f"/compte/confirmer-adresse/{dead}", emailed_link=True, status=410),
        ],
        "/mes-informations": [Sample("/mes-informations", logged_in=True)],
        "/factures": [Sample("/factures", logged_in=True)],
        "/factures/{invoice_id}": [Sample(f"/factures/{invoice}", logged_in=True)],
        "/factures/{invoice_id}/pdf": [Sample(f"/factures/{invoice}/pdf", logged_in=True, html=False)],
        "/factures/{invoice_id}/declarer": [Sample(f"/factures/{invoice}/declarer", logged_in=True)],
        "/contact": [Sample("/contact", logged_in=True)],
        "/reglement/{invoice_id}": [Sample(f"/reglement/{invoice}", logged_in=True)],
        "/reglement/selection": [Sample("/reglement/selection", logged_in=True)],
        "/reglement/retour": [Sample(f"/reglement/retour?idop={idop}", logged_in=True)],
        "/reglements": [Sample("/reglements", logged_in=True)],
    }


def problems_of(sample: Sample, status: int, headers: dict[str, str], body: str, payfip: str) -> list[str]:
    found: list[str] = []
    if status != sample.status:
        found.append(f"status {status}, not {sample.status}")
    if headers.get("X-Content-Type-Options") != "nosniff":
        found.append("no X-Content-Type-Options: nosniff")
    if "Strict-Transport-Security" in headers:
        found.append("HSTS sent by a gateway in local development")
    policy = headers.get("Referrer-Policy")
    if not policy:
        found.append("no Referrer-Policy")
    elif sample.emailed_link and policy != "no-referrer":
        found.append(f"Referrer-Policy {policy} on a page opened by an e-mailed link")
    if (sample.logged_in or sample.emailed_link) and headers.get("Cache-Control") != "no-store":
        found.append(f"Cache-Control {headers.get('Cache-Control')!r} on a page with personal data")
    csp = csp_of(headers.get("Content-Security-Policy", ""))
    if not sample.html:
        return found
    if not headers.get("Content-Type", "").startswith("text/html"):
        found.append(f"Content-Type {headers.get('Content-Type')}")
    scripts = csp.get("script-src", csp.get("default-src", []))
    nonces = {word[len("'nonce-") : -1] for word in scripts if word.startswith("'nonce-")}
    if not nonces:
        found.append(f"script-src without a nonce: {scripts}")
    for word in ("'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:"):
        if word in scripts:
            found.append(f"script-src allows {word}")
    if "'unsafe-inline'" in csp.get("style-src", csp.get("default-src", [])):
        found.append("style-src allows 'unsafe-inline'")
    if csp.get("default-src") != ["'self'"]:
        found.append(f"default-src {csp.get('default-src')}")
    if payfip not in csp.get("form-action", []) or "'self'" not in csp.get("form-action", []):
        found.append(f"form-action {csp.get('form-action')} misses the portal or PayFiP ({payfip})")
    if csp.get("frame-ancestors") != ["'none'"]:
        found.append(f"frame-ancestors {csp.get('frame-ancestors')}")
    if INLINE_SCRIPT.search(body):
        found.append("an inline <script>")
    if HANDLER_ATTRIBUTE.search(body):
        found.append("an inline event handler attribute")
    if INLINE_STYLE.search(body):
        found.append("an inline style")
    for nonce in SCRIPT_NONCE.findall(body):
        if nonce not in nonces:
            found.append("a <script> whose nonce is not this answer's")
    return found


async def test_every_get_page_has_the_security_headers(suite: Suite) -> None:
    async with payer(suite) as marie:
        samples = await samples_for(suite, marie)
        routes = get_routes()
        missing = routes - NOT_PAGES - samples.keys()
        assert not missing, f"GET routes with no sample in this test: {sorted(missing)}"
        assert not samples.keys() - routes, f"samples of routes that are gone: {samples.keys() - routes}"

        payfip = suite.url("payfip")
        anonymous = browser_session()
        failures: dict[str, list[str]] = {}
        nonces: set[str] = set()
        try:
            for route, cases in samples.items():
                for sample in cases:
                    url = (
                        sample.path if sample.path.startswith("http") else marie.town.public_url + sample.path
                    )
                    client = marie.resident.http if sample.logged_in else anonymous
                    async with client.get(url, allow_redirects=False) as response:
                        body = await response.text() if sample.html else ""
                        headers = dict(response.headers)
                        status = response.status
                    found = problems_of(sample, status, headers, body, payfip)
                    if found:
                        failures[f"{route} ({re.sub(r'/[A-Za-z0-9_-]{20,}$', '/…', sample.path)})"] = found
                    nonce = re.search(r"'nonce-([^']+)'", headers.get("Content-Security-Policy", ""))
                    if nonce:
                        nonces.add(nonce.group(1))
        finally:
            await anonymous.close()
        assert not failures, "\n".join(f"{page}: {', '.join(why)}" for page, why in failures.items())
        assert len(nonces) == sum(len(cases) for cases in samples.values()), "a fresh nonce on every answer"


async def test_static_files_and_probes_are_not_sniffed(suite: Suite) -> None:
    async with browser_session() as http:
        for path in ("/static/css/portail.css", "/static/js/selection.js", "/healthz"):
            async with http.get(suite.url("gateway") + path) as response:
                assert response.status == 200, path
                assert response.headers["X-Content-Type-Options"] == "nosniff", path
                assert "Strict-Transport-Security" not in response.headers, path


# --- HSTS: sent by a gateway configured for production -------------------------------------------------


@dataclass
class ProductionGateway:
    port: int


@pytest.fixture(scope="module")
async def production_gateway(suite: Suite) -> AsyncIterator[ProductionGateway]:
    """A second gateway process beside the suite's, on the same services, with GATEWAY_ENVIRONMENT
    set to production (gateway/settings.py tells production from local development by it)."""
    env = {
        "GATEWAY_ENVIRONMENT": "production",
        "GATEWAY_SECRET_KEY": "production-like-" + secrets.token_hex(16),
    }
    async with extra_gateway(suite, "gateway-production", env) as port:
        yield ProductionGateway(port)


async def test_hsts_is_sent_in_production_and_not_in_local_development(
    suite: Suite, production_gateway: ProductionGateway
) -> None:
    town = await suite.create_town()
    local = town.public_url
    production = f"http://{town.host}:{production_gateway.port}"
    async with browser_session() as http:
        for path in ("/", "/accessibilite", "/activer", "/nulle-part"):
            async with http.get(production + path, allow_redirects=False) as response:
                hsts = response.headers.get("Strict-Transport-Security", "")
                max_age = re.search(r"max-age=(\d+)", hsts)
                assert max_age, f"no HSTS on {path} in production"
                assert int(max_age.group(1)) >= 31536000, hsts
                assert "includeSubDomains" in hsts, hsts
                if path == "/":
                    assert "Secure" in response.headers["Set-Cookie"], "production cookies are Secure"
            async with http.get(local + path, allow_redirects=False) as response:
                assert "Strict-Transport-Security" not in response.headers, path
        async with http.get(
            f"http://127.0.0.1:{production_gateway.port}/", headers={"Host": "inconnue.localhost"}
        ) as response:
            assert response.status == 404
            assert "Strict-Transport-Security" in response.headers, "the unknown town's page too"
