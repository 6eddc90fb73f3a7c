"""Role rules in the browser are the API's: a viewer sees no button it cannot use and gets 403
if it posts anyway; a guard's remote open goes through a confirm dialog, is audited, and its
outcome shows on the tile. Cookie-authenticated writes need the CSRF header."""

from __future__ import annotations

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.integration.console.conftest import login
from tests.integration.console.stack import GATE, ConsoleStack


def csrf_of(page: Page) -> str:
    return str(page.locator("meta[name=csrf-token]").get_attribute("content"))


def test_viewer_sees_no_remote_open_and_gets_403_posting_anyway(
    browser: Browser, stack: ConsoleStack
) -> None:
    page = login(browser, stack, "viewer")
    tile = page.locator(f"[data-testid=gate-tile][data-gate={GATE}]")
    expect(tile).to_be_visible()
    expect(page.locator("[data-testid=remote-open]")).to_have_count(0)
    gate_id = tile.get_attribute("data-gate-id")
    r = page.request.post(f"{stack.url}/api/v1/gates/{gate_id}/open", data={"reason": "x"},
                          headers={"X-CSRF-Token": csrf_of(page)})  # fmt: skip
    assert r.status == 403
    page.context.close()


def test_cookie_writes_need_the_csrf_header(browser: Browser, stack: ConsoleStack) -> None:
    page = login(browser, stack, "guard")
    gate_id = page.locator("[data-testid=gate-tile]").first.get_attribute("data-gate-id")
    url = f"{stack.url}/api/v1/gates/{gate_id}/open"
    assert page.request.post(url, data={"reason": "no token"}).status == 403
    bad = {"X-CSRF-Token": "0" * 64}
    assert page.request.post(url, data={"reason": "bad token"}, headers=bad).status == 403
    assert page.request.get(f"{stack.url}/api/v1/gates").status == 200  # reads need no token
    page.context.close()


def test_guard_opens_a_gate_from_its_tile_with_a_reason(
    browser: Browser, stack: ConsoleStack
) -> None:
    page = login(browser, stack, "guard")
    tile = page.locator(f"[data-testid=gate-tile][data-gate={GATE}]")
    tile.locator("[data-testid=remote-open]").click()
    dialog = page.locator("[data-testid=open-dialog]")
    expect(dialog).to_be_visible()
    dialog.locator("[name=reason]").fill("快递员无码，核实后放行")
    dialog.locator("[data-testid=open-confirm]").click()
    outcome = tile.locator("[data-testid=open-outcome]")
    # This test gate has no relay board, so the gate answers that the relay did not confirm.
    expect(outcome).to_have_text("继电器未确认", timeout=10000)
    token = stack.token("admin")
    audit = httpx.get(f"{stack.url}/api/v1/audit", headers={"Authorization": f"Bearer {token}"})
    opens = [a for a in audit.json() if a["action"] == "gate.open"]
    assert opens and opens[0]["actor"] == "guard"
    assert opens[0]["details"]["reason"] == "快递员无码，核实后放行"
    page.context.close()
