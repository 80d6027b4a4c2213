"""What every page is made of, read from the HTML the real gateway serves: each form field has a label,
each field in error is marked invalid and tied (aria-describedby) to its message, every page has
`lang="fr"`, the skip link first and a title that names the page and the town; the town's logo is shown
only when the portal serves it itself (no page loads anything from another origin)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from tests.payment_pages.support import ONE, payer
from tests.support.resident import Page, Resident, new_email
from tests.support.suite import Suite


@dataclass
class Control:
    tag: str
    attrs: dict[str, str]
    in_label: bool
    fieldset_described: str


@dataclass
class _Reader(HTMLParser):
    controls: list[Control] = field(default_factory=list)
    label_for: set[str] = field(default_factory=set)
    texts: dict[str, str] = field(default_factory=dict)
    _open_ids: list[tuple[str, str]] = field(default_factory=list)
    _labels: int = 0
    _fieldsets: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if "id" in values:
            self.texts.setdefault(values["id"], "")
            if tag not in ("input", "img", "br"):
                self._open_ids.append((tag, values["id"]))
        if tag == "label":
            self._labels += 1
            if "for" in values:
                self.label_for.add(values["for"])
        elif tag == "fieldset":
            self._fieldsets.append(values.get("aria-describedby", ""))
        elif tag in ("input", "textarea", "select") and values.get("type") not in ("hidden", "submit"):
            described = self._fieldsets[-1] if self._fieldsets else ""
            self.controls.append(Control(tag, values, self._labels > 0, described))

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._labels -= 1
        elif tag == "fieldset" and self._fieldsets:
            self._fieldsets.pop()
        if self._open_ids and self._open_ids[-1][0] == tag:
            self._open_ids.pop()

    def handle_data(self, data: str) -> None:
        for _, element_id in self._open_ids:
            self.texts[element_id] += data


def form_problems(html: str) -> list[str]:
    reader = _Reader()
    reader.feed(html)
    found: list[str] = []
    for control in reader.controls:
        name = control.attrs.get("name", control.attrs.get("id", "?"))
        labelled = (
            control.in_label or control.attrs.get("id") in reader.label_for or control.attrs.get("aria-label")
        )
        if not labelled:
            found.append(f"{name} has no label")
        if control.attrs.get("aria-invalid") == "true":
            ids = (control.attrs.get("aria-describedby", "") + " " + control.fieldset_described).split()
            messages = [reader.texts.get(i) for i in ids]
            if None in messages:
                found.append(f"{name} described by a missing element ({ids})")
            if not any((m or "").strip() for m in messages):
                found.append(f"{name} is invalid but tied to no message")
    return found


def page_problems(page: Page, town_name: str) -> list[str]:
    found = form_problems(page.text)
    if '<html lang="fr">' not in page.text:
        found.append('no lang="fr"')
    title = re.search(r"<title>(.*?)</title>", page.text, re.S)
    if not title or f" – {town_name} – Le portail des factures" not in title.group(1):
        found.append(f"title {title.group(1) if title else None!r} does not name the page and the town")
    body = page.text.split("<body>", 1)[-1]
    first_link = re.search(r"<a\s[^>]*href=\"([^\"]+)\"[^>]*>([^<]*)", body)
    if not first_link or first_link.groups() != ("#contenu", "Aller au contenu"):
        found.append(f"the first link is {first_link.groups() if first_link else None}, not the skip link")
    if 'id="contenu"' not in body:
        found.append("no main content for the skip link to reach")
    return found


async def test_fields_are_labelled_and_errors_tied_to_their_fields(suite: Suite) -> None:
    async with payer(suite) as marie:
        town = marie.town
        invoice = marie.invoices[ONE]
        visitor = Resident(suite, town, new_email("visiteur"))
        pages: dict[str, Page] = {}
        try:
            for path in ("/", "/activer", "/mot-de-passe-oublie", "/accessibilite", "/nulle-part"):
                pages[path] = await visitor.get(path)
            pages["connexion refusée"] = await visitor.submit(
                "/", {"email": marie.email, "password": "pas le bon"}, action="/connexion"
            )
            pages["activation, adresse invalide"] = await visitor.submit(
                "/activer", {"email": "pas-une-adresse"}
            )
            pages["mot de passe oublié, adresse invalide"] = await visitor.submit(
                "/mot-de-passe-oublie", {"email": "pas-une-adresse"}
            )
        finally:
            await visitor.close()
        for path in (
            "/factures",
            f"/factures/{invoice}",
            f"/factures/{invoice}/declarer",
            "/contact",
            "/mes-informations",
            f"/reglement/{invoice}",
            "/reglement/selection",
            "/reglements",
        ):
            pages[path] = await marie.get(path)
        pages["déclaration vide"] = await marie.post_form(
            f"/factures/{invoice}/declarer", f"/factures/{invoice}/declarer", {"comment": "x" * 600}
        )
        pages["contact vide"] = await marie.post_form("/contact", "/contact", {"subject": "", "message": ""})
        pages["adresse, mauvais mot de passe"] = await marie.post_form(
            "/mes-informations",
            "/mes-informations/adresse",
            {"new_email": "pas-une-adresse", "email_password": "pas le bon"},
        )
        pages["mot de passe trop faible"] = await marie.post_form(
            "/mes-informations",
            "/mes-informations/mot-de-passe",
            {"current_password": marie.resident.password, "new_password": "azerty"},
        )
        pages["mot de passe actuel faux"] = await marie.post_form(
            "/mes-informations",
            "/mes-informations/mot-de-passe",
            {"current_password": "pas le bon", "new_password": "une phrase assez longue"},
        )

        problems = {name: page_problems(page, town.data["name"]) for name, page in pages.items()}
        assert not {k: v for k, v in problems.items() if v}, problems
        # The error pages above really showed errors, each tied to its field.
        for name in (
            "connexion refusée",
            "activation, adresse invalide",
            "mot de passe oublié, adresse invalide",
            "déclaration vide",
            "contact vide",
            "adresse, mauvais mot de passe",
            "mot de passe trop faible",
            "mot de passe actuel faux",
        ):
            assert 'aria-invalid="true"' in pages[name].text, f"{name}: no field marked invalid"


async def test_the_town_logo_is_shown_only_when_the_portal_serves_it(suite: Suite) -> None:
    own = await suite.create_town(logo_url="/static/img/favicon.svg")
    elsewhere = await suite.create_town(logo_url="https://cdn.example.com/logo-de-la-mairie.png")
    for town, expected in ((own, "/static/img/favicon.svg"), (elsewhere, "/static/img/mairie.svg")):
        visitor = Resident(suite, town, new_email("logo"))
        try:
            page = await visitor.get("/")
        finally:
            await visitor.close()
        assert f'<img class="entete__logo" src="{expected}" alt="">' in page.text, town.data["logo_url"]
        assert "cdn.example.com" not in page.text
        assert town.data["name"] in page.text
