"""One Debian chromium for the browser suite (Playwright launches /usr/bin/chromium; it never
downloads a browser), a fresh context per person, and what every screen gets checked for: an
axe-core scan and screenshots at desktop and phone widths."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from deploy.local.ephemeral import Mesh
from services.common.settings import REPO_ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# No background traffic: this machine's network is closed, and the browser must only talk to the mesh.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = REPO_ROOT / "edge" / "web" / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Generous: CI shares 2 cores with the whole mesh and this browser.
WAIT_MS = 20_000
expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="session")
async def browser() -> Browser:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        await launched.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory) -> Path:
    """OPENHR_SCREENSHOTS=bench/results/screenshots refreshes the README's pictures; else a temp folder."""
    given = os.environ.get("OPENHR_SCREENSHOTS")
    path = Path(given) if given else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
async def db(mesh: Mesh):
    """Superuser connections, to check what the services stored behind the app."""
    pool = await asyncpg.create_pool(mesh.config.database_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


class Person:
    """One browser context (its own cookies: one person) on the mesh's edge."""

    def __init__(self, context: BrowserContext, page: Page, edge_url: str) -> None:
        self.context, self.page, self.edge_url = context, page, edge_url
        self.csp_violations: list[str] = []
        page.on(
            "console",
            lambda message: self.csp_violations.append(message.text)
            if "Content Security Policy" in message.text
            else None,
        )
        page.set_default_timeout(WAIT_MS)

    async def goto(self, path: str) -> None:
        await self.page.goto(self.edge_url + path)


@pytest.fixture
async def people(browser: Browser, mesh: Mesh):
    """Opens people (browser contexts) on demand; closes them after the test."""
    opened: list[Person] = []

    async def open_person() -> Person:
        context = await browser.new_context(viewport=DESKTOP, base_url=mesh.edge_url)
        person = Person(context, await context.new_page(), mesh.edge_url)
        opened.append(person)
        return person

    yield open_person
    for person in opened:
        assert person.csp_violations == [], person.csp_violations
        await person.context.close()


async def axe_violations(page: Page) -> list[dict]:
    """Serious and critical WCAG 2.1 A/AA violations axe-core finds on the page as it is.
    Evaluated through the DevTools protocol, which the page's CSP does not govern."""
    if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE.read_text())
    results = await page.evaluate(
        """async (tags) => {
            const r = await window.axe.run(document, {runOnly: {type: 'tag', values: tags}});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                            nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
        }""",
        ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"],
    )
    return [v for v in results if v["impact"] in ("serious", "critical")]


async def check_screen(page: Page, name: str, screenshot_dir: Path) -> None:
    """axe finds no serious or critical violation at desktop and phone widths; a screenshot of each."""
    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        await page.set_viewport_size(viewport)
        violations = await axe_violations(page)
        assert violations == [], f"{name} ({label}): {violations}"
        await page.screenshot(path=str(screenshot_dir / f"{name}-{label}.png"), full_page=True)
    await page.set_viewport_size(DESKTOP)
