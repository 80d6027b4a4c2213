"""The simulator as a real process: `python -m tools.payfip_simulator`, configured by environment."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.simulator.conftest import NotificationReceiver, free_port, wait_until
from tests.simulator.soap_messages import (
    SOAP_HEADERS,
    creer_paiement,
    detail_client,
    detail_paiement,
    reply_fields,
)

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def simulator_process(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "simulator.log"
    environment = os.environ | {
        "PAYFIP_SIM_PORT": str(port),
        "PAYFIP_SIM_PUBLIC_URL": base_url,
        "PAYFIP_SIM_CLIENTS": json.dumps({"001964": "MAIRIE DE DEMONSTRATION", "123456": ["REGIE DES EAUX"]}),
        "PAYFIP_SIM_LOG_LEVEL": "info",
    }
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tools.payfip_simulator",
            cwd=REPOSITORY_ROOT,
            env=environment,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        async with aiohttp.ClientSession() as session:

            async def healthy() -> bool:
                if process.returncode is not None:
                    pytest.fail(f"simulator exited early:\n{log_path.read_text()}")
                try:
                    async with session.get(f"{base_url}/healthz") as response:
                        return response.status == 200 and await response.json() == {"status": "ok"}
                except aiohttp.ClientConnectionError:
                    return False

            await wait_until(healthy, within_seconds=15, interval=0.1)
        yield base_url, log_path
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def test_real_process_serves_a_whole_payment_and_logs_json(
    simulator_process: tuple[str, Path], receiver: NotificationReceiver
) -> None:
    base_url, log_path = simulator_process
    async with aiohttp.ClientSession(base_url) as session:
        async with session.post(
            "/tpa/services/securite",
            data=creer_paiement(urlnotif=receiver.url).encode(),
            headers=SOAP_HEADERS,
        ) as response:
            assert response.status == 200
            [(_, idop)] = reply_fields(await response.text(), "creerPaiementSecurise")

        async with session.get("/tpa/paiementws.web", params={"idop": idop}) as page:
            assert page.status == 200
            assert "37,50 €" in await page.text()
        async with session.post(
            "/tpa/paiementws.web", data={"idop": idop, "choix": "P"}, allow_redirects=False
        ) as choice:
            assert choice.status == 303
            assert choice.headers["Location"].endswith(f"?idop={idop}")

        await receiver.wait_for(1)
        assert receiver.ids() == [idop]

        async with session.post(
            "/tpa/services/securite", data=detail_paiement(idop).encode(), headers=SOAP_HEADERS
        ) as detail:
            assert (
                dict(reply_fields(await detail.text(), "recupererDetailPaiementSecurise"))["resultrans"]
                == "P"
            )

    events = [json.loads(line)["event"] for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert "operation_created" in events
    assert "payment_result_recorded" in events


async def test_clients_come_from_the_environment(simulator_process: tuple[str, Path]) -> None:
    base_url, _ = simulator_process
    async with aiohttp.ClientSession(base_url) as session:
        async with session.post(
            "/tpa/services/securite", data=detail_client("123456").encode(), headers=SOAP_HEADERS
        ) as response:
            fields = reply_fields(await response.text(), "recupererDetailClient")
        async with session.post(
            "/tpa/services/securite", data=detail_client("010203").encode(), headers=SOAP_HEADERS
        ) as unknown:
            assert unknown.status == 500

    # A one-line libellé: the other lines are left out, like any absent optional field.
    assert fields == [("libelleN1", "REGIE DES EAUX"), ("numcli", "123456")]
