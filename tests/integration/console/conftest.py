"""Fixtures for the console's browser tests: Debian's chromium through Playwright, a real stack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tests.integration.console.stack import PASSWORD, ConsoleStack
from tests.integration.services import Mosquitto

VIEWPORT = {"width": 1366, "height": 768}  # the duty room's PC


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
