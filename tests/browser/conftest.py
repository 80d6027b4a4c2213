"""Headless Chromium (Debian's package) driven by Playwright for Python; no browser is downloaded."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, async_playwright

from tools.processes import ROOT

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = os.environ.get("PORTAIL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail(
            "Chromium is not installed: run `apt-get install -y chromium` (.ci/run does it) "
            "or set PORTAIL_CHROMIUM to a Chromium binary.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS
        )
        yield launched
        await launched.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 900})
    yield ctx
    await ctx.close()


def screenshot_path(test: str, step: str) -> Path:
    folder = SCREENSHOTS / test
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{step}.png"
