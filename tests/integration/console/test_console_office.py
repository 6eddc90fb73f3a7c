"""The office's pass pages in a real browser against a real central and gate agent: issue
through the form (the QR on the screen is a pass the site's gate grants), field errors, import
an XLSX in two steps, print cards, revoke and watch the gate apply it."""

from __future__ import annotations

import io
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import openpyxl
from playwright.sync_api import Browser, expect

from central.cards_pdf import CARD_H, CARD_W, CardLayout, slots
from edge.devices.qr_decode import decode_frame
from tests.integration.console.conftest import login
from tests.integration.console.office_helpers import (
    all_passes,
    decode_png,
    issue,
    present_dry_run,
)
from tests.integration.console.stack import GATE, SITE, ConsoleStack

TZ = ZoneInfo("Asia/Shanghai")


def test_issue_through_the_form_gives_a_qr_the_gate_grants(
    browser: Browser, stack: ConsoleStack
) -> None:
    page = login(browser, stack, "admin")
    page.goto(stack.url + "/passes/new?preset=resident")
    page.fill("[name=holder]", "张三丰")
    page.fill("[name=unit]", "3号楼2单元101")
    page.fill("[name=phone]", "13812345678")
    page.check(f"[name=gates][value={GATE}]")
    page.click("[data-testid=issue-submit]")
    expect(page.locator("[data-testid=issued-notice]")).to_be_visible()
    expect(page.locator("[data-testid=pass-masked]")).to_have_text("张*丰")
    qr = page.locator("[data-testid=pass-qr]")
    expect(qr).to_be_visible()
    page.wait_for_function("document.querySelector('[data-testid=pass-qr]').naturalWidth > 0")
    text = decode_png(qr.screenshot())
    assert text is not None, "the gate's decoder could not read the QR off the screen"
    pass_id = page.url.split("/passes/")[1].split("?")[0]
    stored = {p["pass_id"]: p for p in all_passes(stack)}[pass_id]
    assert text == stored["text"]
    assert stored["gates"] == [GATE] and stored["phone"] == "13812345678"
    decision = present_dry_run(stack, text)
    assert (decision["granted"], decision["reason"]) == (True, "ok"), decision
    expect(page.locator("[data-testid=copy-text]")).to_be_visible()
    expect(page.locator("[data-testid=print-card]")).to_be_visible()
    page.context.close()


def test_a_bad_date_shows_a_field_error_and_issues_nothing(
    browser: Browser, stack: ConsoleStack
) -> None:
    before = len(all_passes(stack))
    page = login(browser, stack, "admin", lang="en")
    page.goto(stack.url + "/passes/new?preset=visitor")
    page.fill("[name=holder]", "李四")
    page.fill("[name=valid_from]", "2026-12-05T08:00")
    page.fill("[name=valid_until]", "2026-12-01T08:00")
    page.click("[data-testid=issue-submit]")
    error = page.locator("[data-testid=error-valid_until]")
    expect(error).to_have_text("The end must be after the start")
    expect(page.locator("[name=valid_until]")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("[name=holder]")).to_have_value("李四")  # the form keeps what was typed
    page.fill("[name=holder]", "")
    page.fill("[name=valid_until]", "2026-12-06T08:00")
    page.click("[data-testid=issue-submit]")
    expect(page.locator("[data-testid=error-holder]")).to_be_visible()
    assert len(all_passes(stack)) == before
    page.context.close()


def sheet(path: Path) -> Path:
    """3 good rows and 2 bad ones (a phone with letters, an end before the start)."""
    book = openpyxl.Workbook()
    ws = book.active
    assert ws is not None
    start = datetime.now(TZ).replace(microsecond=0, second=0, tzinfo=None)  # Excel: no zone
    until = start + timedelta(days=365)
    ws.append(["小区", "姓名", "类别", "生效时间", "失效时间", "楼栋单元室", "手机号"])
    for i, name in enumerate(["赵一", "钱二", "孙三"]):
        ws.append([SITE, name, "住户", start, until, f"5号楼{i + 1}01", f"1390000000{i}"])
    ws.append([SITE, "周四", "住户", start, until, "5号楼401", "phone-x"])
    ws.append([SITE, "吴五", "住户", until, start, "5号楼501", "13900000005"])
    out = io.BytesIO()
    book.save(out)
    path.write_bytes(out.getvalue())
    return path


def test_import_previews_errors_writes_on_confirm_and_again_changes_nothing(
    browser: Browser, stack: ConsoleStack, tmp_path: Path
) -> None:
    upload = sheet(tmp_path / "courtyard.xlsx")
    before = len(all_passes(stack))
    page = login(browser, stack, "admin")
    words = (("en", "The phone number is not valid"), ("zh-CN", "手机号格式不正确"))
    for lang, phone_words in words:
        page.goto(f"{stack.url}/passes/import?lang={lang}")
        expect(page.locator("[data-testid=template-link]")).to_be_visible()
        page.set_input_files("[name=file]", str(upload))
        page.click("[data-testid=import-upload]")
        rows = page.locator("[data-testid=preview-row]")
        expect(rows).to_have_count(5)
        expect(page.locator("[data-testid=preview-row][data-outcome=new]")).to_have_count(3)
        errors = page.locator("[data-testid=preview-row][data-outcome=error]")
        expect(errors).to_have_count(2)
        expect(errors.nth(0).locator("[data-testid=row-error]")).to_contain_text(phone_words)
        expect(errors.nth(0).locator("[data-field=phone]")).to_have_count(1)
        expect(errors.nth(1).locator("[data-field=valid_until]")).to_have_count(1)
        assert len(all_passes(stack)) == before  # nothing stored before the confirm
    page.click("[data-testid=import-confirm]")
    expect(page.locator("[data-testid=import-result]")).to_contain_text("新增 3")
    assert len(all_passes(stack)) == before + 3
    page.goto(f"{stack.url}/passes/import")
    page.set_input_files("[name=file]", str(upload))
    page.click("[data-testid=import-upload]")
    expect(page.locator("[data-testid=preview-row][data-outcome=unchanged]")).to_have_count(3)
    page.click("[data-testid=import-confirm]")
    expect(page.locator("[data-testid=import-result]")).to_contain_text("新增 0")
    assert len(all_passes(stack)) == before + 3
    page.context.close()


def test_print_eight_cards_from_the_list(
    browser: Browser, stack: ConsoleStack, tmp_path: Path
) -> None:
    """Each card's QR, rendered at 150 dpi, decodes with the gate's decoder to its pass."""
    ids = [issue(stack, f"卡片{n}号") for n in "一二三四五六七八"]
    page = login(browser, stack, "admin")
    page.goto(stack.url + "/passes?q=卡片")
    expect(page.locator("[data-testid=pass-row]")).to_have_count(8)
    page.check("[data-testid=select-all]")
    with page.expect_download() as download:
        page.click("[data-testid=print-cards]")
    pdf = tmp_path / "cards.pdf"
    pdf.write_bytes(Path(download.value.path()).read_bytes())
    order = [
        r.get_attribute("data-pass-id") or "" for r in page.locator("[data-testid=pass-row]").all()
    ]
    assert sorted(order) == sorted(ids)
    page.context.close()
    stored = {p["pass_id"]: p for p in all_passes(stack)}
    subprocess.run(["pdftoppm", "-r", "150", "-png", str(pdf), str(tmp_path / "cards")],
                   check=True, timeout=60)  # fmt: skip
    (sheet_png,) = sorted(tmp_path.glob("cards-*.png"))
    image = cv2.imread(str(sheet_png))
    px = 150 / 25.4
    for slot, pass_id in zip(slots(CardLayout.A4_8, 8), order, strict=True):
        x0, y0 = int(slot.x * px), int(slot.y * px)
        card = image[y0 : y0 + int(CARD_H * px), x0 : x0 + int(CARD_W * px)]
        assert decode_frame(card) == stored[pass_id]["text"], pass_id
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    assert all(stored[i]["display_name"] in text and i in text for i in ids)


def test_revoke_shows_the_gate_applied_it_within_two_seconds(
    browser: Browser, stack: ConsoleStack
) -> None:
    pass_id = issue(stack, "马丢卡")
    page = login(browser, stack, "admin")
    page.goto(f"{stack.url}/passes/{pass_id}")
    expect(page.locator(f"[data-testid=applied-row][data-gate={GATE}]")).to_have_attribute(
        "data-applied", "na"
    )
    page.fill("[name=reason]", "手机丢失")
    started = time.monotonic()
    page.click("[data-testid=revoke-submit]")
    row = page.locator(f"[data-testid=applied-row][data-gate={GATE}]")
    expect(row).to_have_attribute("data-applied", "yes", timeout=2000)
    assert time.monotonic() - started < 2.0
    expect(page.locator("[data-testid=pass-status]")).to_contain_text("手机丢失")
    assert SITE in page.locator("main").inner_text()
    page.context.close()


def test_reissue_gives_a_new_pass_and_revokes_the_old_one(
    browser: Browser, stack: ConsoleStack
) -> None:
    old = issue(stack, "牛补办")
    page = login(browser, stack, "admin", lang="en")
    page.goto(f"{stack.url}/passes/{old}")
    page.fill("[name=reason] >> nth=1", "card lost")
    page.click("[data-testid=reissue-submit]")
    expect(page.locator("[data-testid=issued-notice]")).to_be_visible()
    new = page.url.split("/passes/")[1].split("?")[0]
    assert new != old
    expect(page.locator("[data-testid=pass-masked]")).to_have_text("牛*办")
    stored = {p["pass_id"]: p for p in all_passes(stack)}
    assert stored[old]["status"] == "revoked" and stored[old]["revoke_reason"] == "card lost"
    assert stored[new]["status"] == "active" and stored[new]["unit"] == stored[old]["unit"]
    page.context.close()
