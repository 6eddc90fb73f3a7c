"""Fixtures for the console's browser tests: Debian's chromium through Playwright, a real stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from playwright.sync_api import Browser, Page

from tests.integration.console.stack import PASSWORD, ConsoleStack
from tests.integration.services import Mosquitto

S = TypeVar("S", bound=ConsoleStack)
VIEWPORT = {"width": 1366, "height": 768}  # the duty room's PC


def running_stack(kind: type[S], workdir: Path, broker: Mosquitto) -> Iterator[S]:
    """A stack of this kind set up (the session broker started again if a test left it down),
    closed after."""
    if broker.proc is None or broker.proc.poll() is not None:
        broker.start()
    running = kind(workdir, broker).setup()
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, broker: Mosquitto) -> Iterator[ConsoleStack]:
    yield from running_stack(ConsoleStack, tmp_path_factory.mktemp("console"), broker)


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
