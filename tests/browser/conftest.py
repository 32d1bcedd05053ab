"""Real-browser fixtures: Debian's Chromium driven by Playwright's async API.

Playwright's own browser download does not work here, so the tests launch /usr/bin/chromium,
which `.ci/run` installs with apt (`apt-get install -y chromium`); without it they fail and
say so. Screenshots go to a temporary folder, or to `$SCREENSHOTS_DIR` when it is set (the
README's pictures are refreshed with `SCREENSHOTS_DIR=docs/screenshots`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps trying to reach Google's servers,
# which this network refuses (slow starts, log noise).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The Chromium binary; its absence is a failure, not a skip."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` (.ci/run does)."
        )
    return CHROMIUM


@pytest.fixture(scope="session")
def screenshots_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $SCREENSHOTS_DIR, else a temporary folder (never tracked files)."""
    chosen = os.environ.get("SCREENSHOTS_DIR")
    return Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Any]:
    """A headless Chromium for one test."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        instance = await pw.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield instance
        finally:
            await instance.close()


class PageWatch:
    """Collects console errors and failed page loads (a CSP violation shows up here)."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

    def _console(self, msg: Any) -> None:
        if msg.type == "error":
            self.errors.append(f"console: {msg.text}")

    def take(self) -> list[str]:
        """Errors seen since the last call."""
        found, self.errors = self.errors, []
        return found


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    """A fresh desktop-sized page whose console errors are checked at the end of the test."""
    context = await browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(10_000)
    tab = await context.new_page()
    watch = PageWatch(tab)
    tab.watch = watch  # type: ignore[attr-defined]
    tab.dialogs = []  # type: ignore[attr-defined]

    async def _answer(dialog: Any) -> None:
        # Destructive buttons ask with confirm(); the tests read the question and answer yes.
        tab.dialogs.append(dialog.message)  # type: ignore[attr-defined]
        await dialog.accept()

    tab.on("dialog", _answer)
    yield tab
    await context.close()
