"""Every console page in both languages: accessible (contrast, labels, sizes), photographed for
docs/console.md; the language switch is remembered; the events page filters, pages and exports."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.integration.console.a11y import accessibility_problems
from tests.integration.console.conftest import VIEWPORT, login
from tests.integration.console.stack import GATE, SITE, ConsoleStack, wait_for

DOCS = Path(__file__).resolve().parents[3] / "docs" / "console"
PAGES = {"live": "/", "events": "/events", "event": "/events/{id}", "patterns": "/patterns",
         "fleet-guard": "/fleet"}  # fmt: skip


def shots_dir(tmp_path: Path) -> Path:
    """docs/console when asked for (MENJIN_SCREENSHOTS=1), else a temporary directory."""
    return DOCS if os.environ.get("MENJIN_SCREENSHOTS") else tmp_path


def traffic(stack: ConsoleStack) -> None:
    stack.journal(3)
    stack.journal(granted=False, reason="expired", temperature_c=36.5,
                  details={"holder_kind": "tenant", "display_name": "陈*", "flags": [],
                           "detail": "pass expired 2026-11-30"})  # fmt: skip
    revoked = {"holder_kind": "delivery", "display_name": "刘*", "flags": []}
    stack.journal(granted=False, reason="revoked", details=revoked)
    stack.fever()


def xlsx_rows(path: Path) -> list[list[str]]:
    """The cell texts of an .xlsx file's first sheet (inline strings and numbers)."""
    ns = {"s": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    with zipfile.ZipFile(path) as z:
        root = ElementTree.fromstring(z.read("xl/worksheets/sheet1.xml"))
    return [["".join(c.itertext()) for c in row.findall("s:c", ns)]
            for row in root.iterfind(".//s:row", ns)]  # fmt: skip


def newest_denial(page: Page) -> str:
    row = page.locator("[data-testid=event-row].denied").first
    expect(row).to_be_visible(timeout=5000)
    return str(row.get_attribute("data-event-id"))


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_every_page_is_accessible_in_both_languages(
    browser: Browser, stack: ConsoleStack, lang: str, tmp_path: Path
) -> None:
    out = shots_dir(tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    anonymous = browser.new_context(viewport=VIEWPORT).new_page()
    anonymous.goto(f"{stack.url}/login?lang={lang}")
    expect(anonymous.locator("html")).to_have_attribute("lang", lang)
    assert accessibility_problems(anonymous) == []
    anonymous.screenshot(path=str(out / f"login-{lang}.png"))
    anonymous.context.close()
    page = login(browser, stack, "guard", lang=lang)
    traffic(stack)
    event_id = newest_denial(page)
    for name, path in PAGES.items():
        page.goto(stack.url + path.format(id=event_id))
        expect(page.locator("html")).to_have_attribute("lang", lang)
        if name == "live":
            expect(page.locator("[data-testid=alert]").first).to_be_visible()
        assert accessibility_problems(page) == [], name
        page.screenshot(path=str(out / f"{name}-{lang}.png"), full_page=name != "live")
    page.context.close()


def test_language_switch_is_remembered(browser: Browser, stack: ConsoleStack) -> None:
    page = login(browser, stack)
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    page.click("[data-testid=lang-en]")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h2#gates-h")).to_have_text("Gates")
    page.goto(stack.url + "/events")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.goto(stack.url + "/?lang=zh-CN")
    expect(page.locator("h2#gates-h")).to_have_text("闸机")
    page.context.close()


def test_larger_text_switch(browser: Browser, stack: ConsoleStack) -> None:
    page = login(browser, stack)
    size = "parseFloat(getComputedStyle(document.body).fontSize)"
    assert page.evaluate(size) >= 16
    page.click("[data-testid=text-size]")
    assert page.evaluate(size) >= 20
    page.reload()
    assert page.evaluate(size) >= 20  # remembered
    page.context.close()


def test_events_page_filters_pages_exports_and_details(
    browser: Browser, stack: ConsoleStack
) -> None:
    page = login(browser, stack)
    stack.journal(55)
    expired = {"holder_kind": "tenant", "display_name": "陈*", "flags": []}
    stack.journal(granted=False, reason="expired", details=expired)
    newest_denial(page)
    page.goto(stack.url + "/events")
    page.select_option("#f-gate", f"{SITE}/{GATE}")
    page.select_option("#f-result", "denied")
    page.select_option("#f-reason", "expired")
    page.click("[data-testid=filter-apply]")
    page.wait_for_url("**reason=expired**")  # the filtered page, not the rows still shown
    rows = page.locator("[data-testid=events-row]")
    expect(rows.first).to_be_visible()
    for text in rows.all_inner_texts():
        assert "拒绝 · 已过期" in text
    with page.expect_download() as download:
        page.click("[data-testid=export-csv]")
    body = Path(download.value.path()).read_bytes()
    assert body.startswith("\ufeff".encode())  # Excel on a Chinese Windows reads UTF-8
    lines = body.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("event_id,") and len(lines) - 1 == rows.count()
    assert all(",False,expired," in line for line in lines[1:])
    with page.expect_download() as download:
        page.click("[data-testid=export-xlsx]")
    sheet = xlsx_rows(Path(download.value.path()))
    assert sheet[0][:2] == ["event_id", "site"] and len(sheet) - 1 == rows.count()
    assert all(row[9] == "expired" for row in sheet[1:])
    page.goto(stack.url + "/events")
    first_page = rows.evaluate_all("rows => rows.map(r => r.dataset.eventId)")
    page.click("[data-testid=next-page]")
    wait_for(lambda: rows.first.get_attribute("data-event-id") not in first_page, 5, "page two")
    second_page = rows.evaluate_all("rows => rows.map(r => r.dataset.eventId)")
    assert len(first_page) == 50 and second_page and not set(first_page) & set(second_page)
    assert max(map(int, second_page)) < min(map(int, first_page))
    rows.first.locator("a").click()
    expect(page.locator("[data-testid=event-detail]")).to_be_visible()
    wait_for(lambda: "/events/" in page.url, 5, "the detail page")
    page.context.close()


def test_the_accessibility_checker_can_fail(browser: Browser) -> None:
    page = browser.new_page()
    page.set_content(
        "<main><p style='color:#999;background:#aaa'>faint text one</p><p>two</p><p>three</p>"
        "<p>four</p><p>five</p><p>six</p><p style='font-size:12px'>tiny</p><input name=q>"
        "<img src=x></main>"
    )
    problems = accessibility_problems(page)
    assert any(p.startswith("contrast") for p in problems)
    assert any(p.startswith("font 12px") for p in problems)
    assert any(p.startswith("no label") for p in problems)
    assert any(p.startswith("no alt") for p in problems)
    page.close()
