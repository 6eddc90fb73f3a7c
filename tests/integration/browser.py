"""The one Playwright + Debian chromium of a test session, shared by the console's and the phone
page's tests (Playwright's sync API allows a single instance per thread at a time)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.conftest import skip_or_fail

CHROMIUM = os.environ.get("MENJIN_CHROMIUM", "/usr/bin/chromium")
# Never Playwright's own browser download (it cannot work here): Debian's chromium, quiet.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        skip_or_fail(f"{CHROMIUM} is missing (make test installs it as root on Debian)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
