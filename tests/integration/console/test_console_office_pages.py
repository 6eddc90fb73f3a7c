"""The office's pages are for admins only (a guard or viewer sees no link to them and gets 403),
and every one of them is accessible in both languages, photographed for docs/console.md."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.integration.console.a11y import accessibility_problems
from tests.integration.console.conftest import login
from tests.integration.console.office_helpers import docs_dir, issue
from tests.integration.console.stack import ConsoleStack
from tests.integration.console.test_console_office import sheet

ADMIN_PAGES = ("/passes", "/passes.json", "/passes/new", "/passes/import", "/passes/{id}",
               "/passes/{id}.json", "/passes/{id}/_gates", "/gates", "/gates.json", "/gates/1",
               "/users", "/users.json", "/audit", "/audit.json")  # fmt: skip
ADMIN_FORMS = ("/passes/new", "/passes/cards.pdf", "/passes/import", "/passes/{id}/revoke",
               "/passes/{id}/reissue", "/gates/new", "/users/new", "/users/admin/disable",
               "/users/admin/password", "/users/admin/end-sessions", "/api-keys/new",
               "/api-keys/1/revoke")  # fmt: skip


def csrf_of(page: Page) -> str:
    return str(page.locator("meta[name=csrf-token]").get_attribute("content"))


@pytest.mark.parametrize("role", ["guard", "viewer"])
def test_others_see_no_office_link_and_get_403(
    browser: Browser, stack: ConsoleStack, role: str
) -> None:
    pass_id = issue(stack, "韩守门")
    page = login(browser, stack, role)
    expect(page.locator("[data-testid=admin-link]")).to_have_count(0)
    for path in ADMIN_PAGES:
        r = page.request.get(stack.url + path.format(id=pass_id))
        assert r.status == 403, path
    form = {"csrf": csrf_of(page), "reason": "x", "pass_ids": pass_id}
    for path in ADMIN_FORMS:
        r = page.request.post(stack.url + path.format(id=pass_id), form=form)
        assert r.status == 403, path
    page.context.close()


def test_admin_sees_the_office_links_and_forms_need_the_csrf_token(
    browser: Browser, stack: ConsoleStack
) -> None:
    pass_id = issue(stack, "韩管理")
    page = login(browser, stack, "admin")
    expect(page.locator("[data-testid=admin-link]")).to_have_count(6)
    r = page.request.post(f"{stack.url}/passes/{pass_id}/revoke", form={"reason": "no token"},
                          max_redirects=0)  # fmt: skip
    assert r.status == 403
    page.goto(f"{stack.url}/passes/{pass_id}")
    expect(page.locator("[data-testid=pass-status]")).to_have_text("有效")
    page.context.close()


def shots(tmp_path: Path) -> Path:
    """docs/console when asked for (MENJIN_SCREENSHOTS=1), else a temporary directory."""
    return docs_dir() if os.environ.get("MENJIN_SCREENSHOTS") else tmp_path


def check(page: Page, out: Path, name: str, lang: str) -> None:
    expect(page.locator("html")).to_have_attribute("lang", lang)
    assert accessibility_problems(page) == [], f"{name} ({lang})"
    page.screenshot(path=str(out / f"{name}-{lang}.png"), full_page=True)


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_office_pages_are_accessible_in_both_languages(
    browser: Browser, stack: ConsoleStack, tmp_path: Path, lang: str
) -> None:
    out = shots(tmp_path)
    issue(stack, "欧阳春花", "7号楼1单元302")
    page = login(browser, stack, "admin", lang=lang)
    page.goto(stack.url + "/passes")
    check(page, out, "passes", lang)
    page.goto(stack.url + "/passes/new?preset=delivery")
    check(page, out, "pass-new", lang)
    page.fill("[name=holder]", "13812345678")
    page.fill("[name=phone]", "电话")
    page.click("[data-testid=issue-submit]")
    expect(page.locator("[data-testid=error-holder]")).to_be_visible()
    check(page, out, "pass-new-errors", lang)
    page.fill("[name=holder]", "欧阳春花")
    page.fill("[name=phone]", "13800001111")
    page.click("[data-testid=issue-submit]")
    expect(page.locator("[data-testid=issued-notice]")).to_be_visible()
    page.wait_for_function("document.querySelector('[data-testid=pass-qr]').naturalWidth > 0")
    check(page, out, "pass", lang)
    page.goto(stack.url + "/passes/import")
    check(page, out, "import", lang)
    page.set_input_files("[name=file]", str(sheet(tmp_path / f"shot-{lang}.xlsx")))
    page.click("[data-testid=import-upload]")
    expect(page.locator("[data-testid=preview-row]")).to_have_count(5)
    check(page, out, "import-preview", lang)
    page.goto(stack.url + "/gates")
    check(page, out, "gates", lang)
    page.locator("[data-testid=gate-row] a").first.click()
    check(page, out, "gate", lang)
    page.goto(stack.url + "/gates")
    page.fill("[data-testid=provision-form] [name=site]", "hutong")
    page.fill("[data-testid=provision-form] [name=gate]", f"west-{lang}")
    page.click("[data-testid=provision-submit]")
    check(page, out, "gate-provisioned", lang)
    page.goto(stack.url + "/users")
    page.fill("#k-name", f"backup-{lang}")
    page.click("[data-testid=add-key-submit]")
    expect(page.locator("[data-testid=new-key]")).to_be_visible()
    check(page, out, "users", lang)
    page.goto(stack.url + "/audit")
    check(page, out, "audit", lang)
    page.context.close()
