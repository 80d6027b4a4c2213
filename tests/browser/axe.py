"""axe-core (the copy bundled by the axe-playwright-python package, MPL-2.0) run in a Playwright page."""

from __future__ import annotations

from typing import Any

from axe_playwright_python.base import AXE_SCRIPT
from playwright.async_api import Page

from tests.browser.conftest import screenshot_path

# WCAG 2.0 / 2.1, levels A and AA: what RGAA 4.1 builds on.
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


async def violations(page: Page) -> list[dict[str, Any]]:
    """Every axe violation on the page as it is now, with the offending elements."""
    await page.evaluate(AXE_SCRIPT)
    result: dict[str, Any] = await page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
        TAGS,
    )
    return [
        {
            "id": v["id"],
            "impact": v.get("impact"),
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result["violations"]
    ]


def describe(found: list[dict[str, Any]]) -> str:
    return "\n".join(f"{v['id']} ({v['impact']}): {v['help']} at {v['nodes']}" for v in found)


WIDTHS = (360, 1280)


async def audit(
    page: Page, folder: str, name: str, failures: dict[str, str], *, ours: bool = True, height: int = 900
) -> None:
    """The page as it is now, at a phone's width and a desktop's: a full-page screenshot at each (in
    test-artifacts/screenshots/<folder>/<name>-<width>.png), axe-core's violations and any sideways
    scrolling recorded in `failures` (keyed by page and width). `ours=False` for a page that is not the
    portal's (PayFiP's): screenshots only. The page is left at the desktop's width."""
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": height})
        await page.screenshot(path=screenshot_path(folder, f"{name}-{width}"), full_page=True)
        if not ours:
            continue
        found = await violations(page)
        if found:
            failures[f"{name} at {width}px"] = describe(found)
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        if overflow > 0:
            failures[f"{name} at {width}px scrolls sideways"] = f"by {overflow}px"
