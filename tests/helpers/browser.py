"""Headless Chromium (Debian's) driven by Playwright, for the dashboard's browser tests:
the browser fixture's context, console errors collected, screenshots to test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@dataclass
class Browser:
    context: BrowserContext
    errors: list[str]

    def page(self) -> Page:
        page = self.context.new_page()
        page.on("console", lambda m: self._console(m))
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        return page

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.errors.append(f"console {message.type}: {message.text}")


def open_browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """The body of a module fixture: ``yield from open_browser(tmp_path_factory)``."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make system-deps` installs Debian's chromium")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),  # a fresh --user-data-dir
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1440, "height": 900},
            timezone_id="UTC",
            locale="en-GB",
        )
        try:
            yield Browser(context, [])
        finally:
            context.close()


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def drawn(page: Page, chart: str, series: str) -> list[float]:
    """The values a chart drew for one series (its data-values attribute)."""
    raw = page.get_attribute(f'[data-chart="{chart}"] [data-series="{series}"]', "data-values")
    assert raw is not None, f"chart {chart!r} drew no series {series!r}"
    return [float(v) for v in raw.split(",") if v]
