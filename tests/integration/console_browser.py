"""
Debian's chromium driven by Playwright for Python, for the console's browser tests.

The browser is the system's (``/usr/bin/chromium``, or ``GATEPASS_CHROMIUM``); no
browser is ever downloaded. Without it the tests skip, and fail under ``CI=true``.
Screenshots are written to ``docs/images/`` only when ``GATEPASS_SCREENSHOTS=1``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

CHROMIUM = Path(os.environ.get("GATEPASS_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


def require_chromium() -> None:
    """Skip without chromium; fail under CI, which must run the browser tests."""
    if CHROMIUM.exists():
        return
    message = f"chromium is not installed at {CHROMIUM}"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run the browser tests", pytrace=False)
    pytest.skip(message)


def launched() -> Iterator[Browser]:
    """Launch one headless chromium; yield the Playwright browser."""
    require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Page, name: str) -> None:
    """Save a screenshot of ``page`` as docs/images/console-<name>.png, if asked."""
    if os.environ.get("GATEPASS_SCREENSHOTS") != "1":
        return
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / f"console-{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """
    One headless chromium for the browser tests of a module.

    Not of the session: Playwright's sync API keeps an event loop running in the
    test thread while it is open, and the tests of other modules that call
    ``anyio.run`` there would fail; a module's fixture ends with the module.
    """
    yield from launched()


@pytest.fixture
def context(chromium: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies) per test."""
    browser_context = chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield browser_context
    finally:
        browser_context.close()
