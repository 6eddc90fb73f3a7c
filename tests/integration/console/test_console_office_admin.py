"""The office's gate, user and audit pages in a real browser: provision a gate (its config and
broker lines shown once), manage users and API keys, read the audit log by who and what."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
from playwright.sync_api import Browser, expect

from tests.integration.console.conftest import login
from tests.integration.console.office_helpers import issue
from tests.integration.console.stack import GATE, PASSWORD, SITE, ConsoleStack


def test_provision_a_gate_shows_its_config_and_broker_lines_once(
    browser: Browser, stack: ConsoleStack
) -> None:
    page = login(browser, stack, "admin")
    page.goto(stack.url + "/gates")
    expect(page.locator(f"[data-testid=gate-row][data-gate={GATE}]")).to_have_attribute(
        "data-online", "true"
    )
    form = page.locator("[data-testid=provision-form]")
    form.locator("[name=site]").fill(SITE)
    form.locator("[name=gate]").fill("north")
    form.locator("[name=temperature]").select_option("required")
    page.click("[data-testid=provision-submit]")
    expect(page.locator("[data-testid=shown-once]")).to_be_visible()
    shown_at = urlparse(page.url)  # post/redirect/get: the page is a GET, its nonce one-time
    assert re.fullmatch(r"/gates/\d+/provisioned", shown_at.path) and "shown" in shown_at.query
    password = page.locator("[data-testid=broker-password]").inner_text()
    assert len(password) >= 16
    assert (
        page.locator("[data-testid=broker-passwd-line]")
        .inner_text()
        .startswith(page.locator("[data-testid=broker-user]").inner_text() + ":")
    )
    assert "north" in page.locator("[data-testid=broker-acl]").inner_text()
    href = str(page.locator("[data-testid=download-toml]").get_attribute("href"))
    config = tomllib.loads(unquote(href.split(",", 1)[1]))
    assert config["gate"]["gate"] == "north" and config["gate"]["temperature"] == "required"
    assert config["mqtt"]["password"] == password and config["keys"]["trusted"]
    with page.expect_download() as download:
        page.click("[data-testid=download-toml]")
    assert tomllib.loads(Path(download.value.path()).read_text()) == config
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.reload()  # neither posts again (a second gate, a fresh password) nor shows it again
    expect(page.locator("[data-testid=shown-already]")).to_be_visible()
    assert password not in page.content() and posts == []
    page.go_back()
    assert urlparse(page.url).path == "/gates" and password not in page.content()
    page.go_forward()
    expect(page.locator("[data-testid=shown-already]")).to_be_visible()
    assert password not in page.content() and posts == []
    page.locator("[data-testid=provisioned-gate]").click()
    expect(page.locator("[data-testid=gate-state]")).to_be_visible()
    page.goto(stack.url + "/gates")
    row = page.locator("[data-testid=gate-row][data-gate=north]")
    expect(row).to_have_attribute("data-online", "false")
    assert password not in page.content()  # shown once only
    page.fill("[data-testid=provision-form] [name=site]", SITE)
    page.fill("[data-testid=provision-form] [name=gate]", "north")
    page.click("[data-testid=provision-submit]")
    expect(page.locator("[data-testid=error-gate]")).to_be_visible()
    page.goto(stack.url + "/gates")
    page.locator(f"[data-testid=gate-row][data-gate={GATE}] a").click()
    expect(page.locator("[data-testid=gate-state]")).to_contain_text("在线")
    expect(page.locator("[data-testid=gate-events]")).to_be_visible()
    page.context.close()


def test_users_roles_passwords_sessions_and_api_keys(browser: Browser, stack: ConsoleStack) -> None:
    page = login(browser, stack, "admin", lang="en")
    page.goto(stack.url + "/users")
    page.fill("#u-username", "duty2")
    page.fill("#u-password", PASSWORD)
    page.select_option("#u-role", "guard")
    page.click("[data-testid=add-user-submit]")
    expect(page.locator("[data-testid=users-notice]")).to_have_text("User duty2 added")
    token = stack.token("duty2")
    row = page.locator("[data-testid=user-row][data-user=duty2]")
    row.locator("[data-testid=end-sessions]").click()
    expect(page.locator("[data-testid=users-notice]")).to_contain_text("duty2")
    me = httpx.get(f"{stack.url}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401
    row.locator("[data-testid=disable]").click()
    expect(row).to_have_attribute("data-disabled", "true")
    form = {"username": "duty2", "password": PASSWORD}
    assert httpx.post(f"{stack.url}/api/v1/auth/token", data=form).status_code == 401
    row.locator("[data-testid=enable]").click()
    expect(row).to_have_attribute("data-disabled", "false")
    row.locator("[name=password]").fill("short")
    row.locator("[data-testid=reset-password]").click()
    expect(page.locator("[data-testid=error-password]")).to_be_visible()
    row.locator("[name=password]").fill("a-brand-new-password")
    row.locator("[data-testid=reset-password]").click()
    form["password"] = "a-brand-new-password"
    assert httpx.post(f"{stack.url}/api/v1/auth/token", data=form).status_code == 200
    page.fill("#k-name", "prometheus")
    page.fill("#k-expires", "2031-01-01T00:00")
    page.click("[data-testid=add-key-submit]")
    key = page.locator("[data-testid=new-key]").inner_text().strip()
    assert httpx.get(f"{stack.url}/api/v1/gates", headers={"X-API-Key": key}).status_code == 200
    page.goto(stack.url + "/users")
    assert key not in page.content()  # shown once only
    page.locator("[data-testid=key-row][data-active=true] [data-testid=revoke-key]").click()
    expect(page.locator("[data-testid=users-notice]")).to_be_visible()
    assert httpx.get(f"{stack.url}/api/v1/gates", headers={"X-API-Key": key}).status_code == 401
    page.context.close()


def test_audit_log_filters_by_who_and_what_including_pass_text_reads(
    browser: Browser, stack: ConsoleStack
) -> None:
    pass_id = issue(stack, "审计甲")
    page = login(browser, stack, "admin")
    page.goto(f"{stack.url}/passes/{pass_id}")  # reads the pass's text: audited
    page.goto(stack.url + "/audit")
    page.fill("#a-action", "pass.read_text")
    page.fill("#a-actor", "admin")
    page.click("[data-testid=audit-apply]")
    rows = page.locator("[data-testid=audit-row]")
    expect(rows.first).to_be_visible()
    assert {r.get_attribute("data-action") for r in rows.all()} == {"pass.read_text"}
    expect(page.locator(f"[data-testid=audit-row]:has-text('{pass_id}')").first).to_be_visible()
    page.fill("#a-action", "pass.")
    page.click("[data-testid=audit-apply]")
    actions = {r.get_attribute("data-action") for r in rows.all()}
    assert {"pass.issue", "pass.read_text"} <= actions and all(
        a and a.startswith("pass.") for a in actions
    )
    page.fill("#a-actor", "nobody")
    page.click("[data-testid=audit-apply]")
    expect(rows).to_have_count(0)
    page.context.close()
