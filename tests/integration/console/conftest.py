"""Fixtures for the console's browser tests: Debian's chromium through Playwright, a real stack."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import skip_or_fail
from tests.integration.console.stack import PASSWORD, ConsoleStack
from tests.integration.services import Mosquitto

CHROMIUM = os.environ.get("MENJIN_CHROMIUM", "/usr/bin/chromium")
# Never Playwright's own browser download (it cannot work here): Debian's chromium, quiet.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
VIEWPORT = {"width": 1366, "height": 768}  # the duty room's PC


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        skip_or_fail(f"{CHROMIUM} is missing (make test installs it as root on Debian)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, broker: Mosquitto) -> Iterator[ConsoleStack]:
    if broker.proc is None or broker.proc.poll() is not None:
        broker.start()
    running = ConsoleStack(tmp_path_factory.mktemp("console"), broker).setup()
    try:
        yield running
    finally:
        running.close()


def login(browser: Browser, stack: ConsoleStack, role: str = "guard", lang: str = "") -> Page:
    """A fresh browser context logged in as `role`, on the live view."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(stack.url + "/login" + (f"?lang={lang}" if lang else ""))
    page.fill("input[name=username]", role)
    page.fill("input[name=password]", PASSWORD)
    page.click("[data-testid=login-submit]")
    page.wait_for_url(stack.url + "/")
    return page
