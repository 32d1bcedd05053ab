"""Real-browser fixtures: Debian's Chromium driven by Playwright's async API.

Playwright's own browser download does not work here, so the tests launch /usr/bin/chromium
and install it with apt when it is missing, at collection time so no per-test timeout covers
the install (as root; otherwise they skip and say why).
"""

from __future__ import annotations

import os
import shutil
import subprocess
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
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def ensure_chromium() -> str | None:
    """Install Debian's Chromium with apt when it is missing; return why not, or None."""
    if os.path.exists(CHROMIUM):
        return None
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return (
            f"{CHROMIUM} is missing and installing it with apt needs root "
            "(run: apt-get install -y chromium)"
        )
    if shutil.which("apt-get") is None:
        return f"{CHROMIUM} is missing and there is no apt-get to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        done = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=900, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    if not os.path.exists(CHROMIUM):
        raise RuntimeError(f"apt-get installed chromium but {CHROMIUM} does not exist")
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Install Chromium before any test runs, so the per-test timeout does not cover apt."""
    if any(item.get_closest_marker("browser") for item in items):
        config.stash[_MISSING] = ensure_chromium()


_MISSING = pytest.StashKey[str | None]()


@pytest.fixture(scope="session")
def chromium_path(pytestconfig: pytest.Config) -> str:
    """The Chromium binary (installed at collection time on a clean root machine)."""
    reason = pytestconfig.stash.get(_MISSING, None) or ensure_chromium()
    if reason:
        pytest.skip(reason)
    return CHROMIUM


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
