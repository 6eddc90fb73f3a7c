"""The live view in a real browser against a real central, gate agent and broker."""

from __future__ import annotations

import time

from playwright.sync_api import Browser, expect

from tests.integration.console.conftest import login
from tests.integration.console.stack import GATE, ConsoleStack


def test_login_then_a_gate_decision_appears_in_the_feed_within_2s(
    browser: Browser, stack: ConsoleStack
) -> None:
    page = login(browser, stack)
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("[data-testid=stream-state]")).to_have_text("实时")
    started = time.monotonic()
    stack.journal(details={"holder_kind": "resident", "display_name": "李*英", "flags": []})
    row = page.locator("[data-testid=event-row]").first
    expect(row).to_contain_text("李*英", timeout=2000)
    assert time.monotonic() - started < 2.5
    expect(row).to_contain_text("通过")
    expect(row).to_contain_text(GATE)
    ids = page.eval_on_selector_all(
        "[data-testid=event-row]", "rows => rows.map(r => r.dataset.eventId)"
    )
    assert len(ids) == len(set(ids))  # each event once
    page.context.close()
