"""`/tpa/paiementws.web`: the payer's page, its outcome buttons and its refusals."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from tests.simulator.conftest import Simulator
from tests.simulator.soap_messages import detail_paiement, read_fault, reply_fields


class FormCollector(HTMLParser):
    """Collects the page's forms: action, method, hidden fields and button label."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, object]] = []
        self.scripts = 0
        self._in_button = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script":
            self.scripts += 1
        elif tag == "form":
            self.forms.append(
                {"action": attributes.get("action"), "method": attributes.get("method"), "fields": {}}
            )
        elif tag == "input" and self.forms:
            fields = self.forms[-1]["fields"]
            assert isinstance(fields, dict)
            fields[attributes.get("name")] = attributes.get("value")
        elif tag == "button":
            self._in_button = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "button":
            self._in_button = False

    def handle_data(self, data: str) -> None:
        if self._in_button and data.strip():
            self.forms[-1]["label"] = data.strip()


async def _page_forms(simulator: Simulator, idop: str) -> FormCollector:
    response = await simulator.open_page(idop)
    assert response.status == 200
    collector = FormCollector()
    collector.feed(await response.text())
    return collector


async def test_page_shows_amount_objet_reference_and_client_in_french(simulator: Simulator) -> None:
    idop = await simulator.create_payment()

    response = await simulator.open_page(idop)

    assert response.status == 200
    assert response.content_type == "text/html"
    html = await response.text()
    assert 'lang="fr"' in html
    assert "37,50 €" in html
    assert "Cantine septembre 2024" in html
    assert "FAC2024000123" in html
    assert "MAIRIE DE DEMONSTRATION" in html


async def test_page_formats_large_amounts_the_french_way(simulator: Simulator) -> None:
    idop = await simulator.create_payment(montant="1234505")

    html = await (await simulator.open_page(idop)).text()

    assert "12 345,05 €" in html


async def test_page_offers_one_plain_form_per_outcome_without_javascript(simulator: Simulator) -> None:
    idop = await simulator.create_payment()

    page = await _page_forms(simulator, idop)

    assert page.scripts == 0
    labels = {form["label"]: form["fields"] for form in page.forms}
    assert {label: fields["choix"] for label, fields in labels.items()} == {  # type: ignore[index]
        "Payer par carte": "P",
        "Payer par prélèvement": "V",
        "Carte refusée": "R",
        "Prélèvement refusé": "Z",
        "Abandonner": "A",
        "Quitter sans résultat": "quitter",
    }
    for form in page.forms:
        assert form["method"] == "post"
        assert form["action"] == f"{simulator.base_url}/tpa/paiementws.web"
        assert form["fields"]["idop"] == idop  # type: ignore[index]


async def test_opening_the_page_marks_the_operation_page_opened(simulator: Simulator) -> None:
    idop = await simulator.create_payment()

    await simulator.open_page(idop)

    operation = await simulator.operation(idop)
    assert operation["status"] == "page_opened"
    assert operation["page_opened_at"] is not None


@pytest.mark.parametrize(
    ("choice", "has_numauto"),
    [("P", True), ("V", True), ("R", False), ("Z", False), ("A", False)],
    ids=["card paid", "direct debit paid", "card refused", "direct debit refused", "abandoned"],
)
async def test_each_button_records_its_outcome_and_redirects_with_the_idop(
    simulator: Simulator, choice: str, has_numauto: bool
) -> None:
    idop = await simulator.create_payment()
    await simulator.open_page(idop)

    response = await simulator.click(idop, choice)

    assert response.status == 303
    assert response.headers["Location"] == f"http://127.0.0.1:9/paiement/retour?idop={idop}"
    operation = await simulator.operation(idop)
    assert operation["status"] == "final"
    assert operation["result"]["resultrans"] == choice
    assert (operation["result"]["numauto"] is not None) is has_numauto
    assert re.fullmatch(r"\d{8}", operation["result"]["dattrans"])
    assert re.fullmatch(r"\d{4}", operation["result"]["heurtrans"])
    values = dict(
        reply_fields((await simulator.soap(detail_paiement(idop))).text, "recupererDetailPaiementSecurise")
    )
    assert values["resultrans"] == choice


async def test_redirect_keeps_an_existing_query_string(simulator: Simulator) -> None:
    idop = await simulator.create_payment(urlredirect="https://portail.example.fr/retour?facture=12&amp;v=2")
    await simulator.open_page(idop)

    response = await simulator.click(idop, "P")

    assert response.headers["Location"] == f"https://portail.example.fr/retour?facture=12&v=2&idop={idop}"


async def test_leaving_without_result_records_nothing_and_does_not_redirect(simulator: Simulator) -> None:
    idop = await simulator.create_payment()
    await simulator.open_page(idop)

    response = await simulator.click(idop, "quitter")

    assert response.status == 200
    assert "Vous pouvez fermer cette fenêtre" in await response.text()
    operation = await simulator.operation(idop)
    assert operation["result"] is None
    assert operation["left_without_result_at"] is not None
    assert read_fault((await simulator.soap(detail_paiement(idop))).text).detail["code"] == "P5"
    assert (await simulator.control("GET", "/notifications"))["attempts"] == []


async def test_page_refused_for_an_unknown_idop(simulator: Simulator) -> None:
    response = await simulator.open_page("cc0cb210-1cd4-11ea-8cca-0213ad91a103")

    assert response.status == 400
    html = await response.text()
    assert "Opération inconnue" in html
    assert "P1" in html


async def test_page_refused_without_idop(simulator: Simulator) -> None:
    response = await simulator.http.get("/tpa/paiementws.web")

    assert response.status == 400
    assert "identifiant" in await response.text()


async def test_page_refused_once_the_idop_has_a_result(simulator: Simulator) -> None:
    idop = await simulator.create_payment()
    await simulator.open_page(idop)
    await simulator.click(idop, "P")

    response = await simulator.open_page(idop)

    assert response.status == 410
    html = await response.text()
    assert "déjà" in html
    assert "P3" in html


async def test_second_click_on_a_used_idop_is_refused_and_keeps_the_first_result(
    simulator: Simulator,
) -> None:
    idop = await simulator.create_payment()
    await simulator.open_page(idop)
    await simulator.click(idop, "R")

    response = await simulator.click(idop, "P")

    assert response.status == 410
    assert (await simulator.operation(idop))["result"]["resultrans"] == "R"


async def test_page_can_be_reopened_before_a_result(simulator: Simulator) -> None:
    idop = await simulator.create_payment()
    await simulator.open_page(idop)
    await simulator.click(idop, "quitter")

    assert (await simulator.open_page(idop)).status == 200


async def test_invalid_choice_is_refused(simulator: Simulator) -> None:
    idop = await simulator.create_payment()
    await simulator.open_page(idop)

    response = await simulator.click(idop, "X")

    assert response.status == 400
    assert (await simulator.operation(idop))["result"] is None


async def test_abandon_then_pay_is_refused_by_default(simulator: Simulator) -> None:
    idop = await simulator.create_payment()
    await simulator.open_page(idop)
    await simulator.click(idop, "A")

    assert (await simulator.open_page(idop)).status == 410


async def test_abandon_can_become_paid_when_the_quirk_is_on(simulator: Simulator) -> None:
    await simulator.control("POST", "/quirks", {"abandon_can_become_paid": True})
    idop = await simulator.create_payment()
    await simulator.open_page(idop)
    await simulator.click(idop, "A")

    assert (await simulator.open_page(idop)).status == 200
    response = await simulator.click(idop, "P")

    assert response.status == 303
    operation = await simulator.operation(idop)
    assert operation["result"]["resultrans"] == "P"
    assert [result["resultrans"] for result in operation["replaced_results"]] == ["A"]
