"""Alerts in real browsers: a fever raises the banner and plays the sound; acknowledging it in
one browser removes it from another; repeats are grouped."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from tests.integration.console.conftest import login
from tests.integration.console.stack import ConsoleStack


def plays(page: Page) -> int:
    return int(page.locator("[data-testid=alert-sound]").get_attribute("data-plays") or 0)


def test_fever_banner_sound_and_ack_reaches_a_second_console(
    browser: Browser, stack: ConsoleStack
) -> None:
    first, second = login(browser, stack), login(browser, stack)
    expect(first.locator("[data-testid=sound-state]")).to_have_text("声音：关")
    first.bring_to_front()  # the duty room's screen; the other console is another PC
    first.click("[data-testid=sound-toggle]")
    expect(first.locator("[data-testid=sound-state]")).to_have_text("声音：开")
    first.wait_for_function("Number(document.getElementById('alert-sound').dataset.plays) === 1")
    heard = plays(first)
    stack.fever()
    for page in (first, second):
        banner = page.locator("[data-testid=alert][data-kind=fever]")
        expect(banner).to_be_visible(timeout=5000)
        expect(banner).to_contain_text("体温异常")
        expect(banner).to_contain_text("38.6 °C")
    first.wait_for_function(
        f"Number(document.getElementById('alert-sound').dataset.plays) > {heard}"
    )
    assert plays(second) == 0  # sound was never switched on there
    banner = first.locator("[data-testid=alert][data-kind=fever]")
    banner.locator("[name=note]").fill("测温复核正常，已放行")
    banner.locator("[data-testid=alert-ack]").click()
    expect(first.locator("[data-testid=alert][data-kind=fever]")).to_have_count(0)
    # The other console hears of the ack on the live stream, without reload.
    expect(second.locator("[data-testid=alert][data-kind=fever]")).to_have_count(0, timeout=3000)
    second.reload()
    expect(second.locator("[data-testid=alert][data-kind=fever]")).to_have_count(0)
    first.context.close()
    second.context.close()


def test_repeated_fevers_at_one_gate_are_one_banner_with_a_count(
    browser: Browser, stack: ConsoleStack
) -> None:
    page = login(browser, stack)
    for _ in range(3):
        stack.fever()
    banner = page.locator("[data-testid=alert][data-kind=fever]")
    expect(banner.locator("[data-testid=alert-count]")).to_have_text("×3", timeout=8000)
    expect(banner).to_have_count(1)
    banner.locator("[data-testid=alert-ack]").click()  # acknowledges all three
    expect(banner).to_have_count(0)
    page.reload()
    expect(page.locator("[data-testid=alert][data-kind=fever]")).to_have_count(0)
    page.context.close()
