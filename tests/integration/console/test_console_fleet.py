"""Fleet control in the console against a real central, a real provisioned gate agent and a real
browser: lockdown start/end with the banner counting gates that have not applied it, policy
edits reaching the gate, signing keys rotated, emergency release, the device-bound pass."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.integration.console.conftest import login, running_stack
from tests.integration.console.fleet_stack import FleetStack
from tests.integration.console.office_helpers import decode_png
from tests.integration.console.stack import GATE, wait_for
from tests.integration.console.test_console_office_pages import check, shots
from tests.integration.services import Mosquitto

WRITE_FORMS = ("/lockdowns/new", "/lockdowns/1/end", "/releases/1/end", "/gates/{gate}/release",
               "/fleet/sites/{site}/policy", "/fleet/gates/{gate}/policy", "/keys/new",
               "/keys/x/activate", "/keys/x/retire", "/keys/x/reissue",
               "/passes/x/enrol-link", "/passes/x/enrol-link/revoke")  # fmt: skip


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, broker: Mosquitto) -> Iterator[FleetStack]:
    yield from running_stack(FleetStack, tmp_path_factory.mktemp("fleet"), broker)


def accept_dialogs(page: Page) -> list[str]:
    """Answer every confirmation with yes; the questions asked, in order."""
    asked: list[str] = []

    def answer(dialog: object) -> None:
        asked.append(dialog.message)  # type: ignore[attr-defined]
        dialog.accept()  # type: ignore[attr-defined]

    page.on("dialog", answer)
    return asked


def test_lockdown_from_the_console_reaches_the_gate_and_ends_from_the_banner(
    browser: Browser, fleet: FleetStack
) -> None:
    visitor = fleet.issue("visitor")
    assert fleet.present(visitor)["reason"] == "ok"
    page = login(browser, fleet, "admin")
    asked = accept_dialogs(page)
    expect(page.locator("[data-testid=lockdown-banner]")).to_have_count(0)
    assert fleet.agent is not None
    fleet.agent.stop()  # offline: the banner must count it as not yet applied
    page.goto(fleet.url + "/fleet")
    form = page.locator(f"[data-testid=lockdown-form][data-site={fleet.site}]")
    form.locator("[name=mode]").select_option("residents_only")
    form.locator("[data-testid=lockdown-start]").click()
    expect(page.locator("[data-testid=error-reason]")).to_have_text("请写明封控原因")
    form = page.locator(f"[data-testid=lockdown-form][data-site={fleet.site}]")
    form.locator("[name=reason]").fill("疫情防控")
    form.locator("[data-testid=lockdown-start]").click()
    banner = page.locator("[data-testid=lockdown-banner]")
    expect(banner).to_contain_text(f"封控中：{fleet.site}（仅限居民）")
    expect(banner).to_contain_text("原因：疫情防控")
    expect(banner).to_contain_text("门岗：全部门岗")
    pending = banner.locator("[data-testid=order-pending]")
    expect(pending).to_have_text("1 个门岗尚未生效（共 1 个）")
    assert any(fleet.site in q for q in asked)
    fleet.start_agent()  # the gate applies it on reconnect; the banner updates by itself
    expect(pending).to_have_text("全部 1 个门岗已生效", timeout=15_000)
    assert fleet.present(visitor)["reason"] == "lockdown"
    assert fleet.present(fleet.issue("resident", "王住户"))["reason"] == "ok"
    page.goto(fleet.url + "/events")  # the banner is on every page, with its end button
    expect(page.locator("[data-testid=lockdown-banner]")).to_be_visible()
    page.click("[data-testid=lockdown-end]")
    expect(page.locator("[data-testid=lockdown-banner]")).to_have_count(0)
    assert urlparse(page.url).path == "/events"
    wait_for(fleet.applied, 10, "the gate to apply the lifted lockdown")
    assert fleet.present(visitor)["reason"] == "ok"
    assert {"lockdown.start", "lockdown.end"} <= set(fleet.audit_actions())
    page.context.close()


def test_policy_change_from_the_page_reaches_the_gate_and_its_version_updates(
    browser: Browser, fleet: FleetStack
) -> None:
    wait_for(fleet.applied, 10, "the gate on its latest policy")
    before = int(fleet.gate()["policy_latest"])
    page = login(browser, fleet, "admin")
    page.goto(fleet.url + "/fleet")
    page.click(f"[data-testid=edit-gate-{GATE}]")
    scope = f"gate-{fleet.gate_id}"
    form = page.locator(f"[data-testid=policy-form-{scope}]")
    form.locator("[name=fever_threshold]").fill("50")
    form.locator(f"[data-testid=policy-save-{scope}]").click()
    error = page.locator(f"#{scope}-err-fever_threshold")
    expect(error).to_have_text("发烧阈值须在 35.0 到 42.0 °C 之间")
    assert int(fleet.gate()["policy_latest"]) == before  # nothing was signed
    form = page.locator(f"[data-testid=policy-form-{scope}]")
    form.locator("[name=fever_threshold]").fill("")
    form.locator("[name=temperature]").select_option("required")
    form.locator(f"[data-testid=policy-save-{scope}]").click()
    expect(page.locator("[data-testid=fleet-notice]")).to_be_visible()
    row = page.locator(f"[data-testid=fleet-gate][data-gate={GATE}]")
    version = row.locator("[data-testid=policy-version]")
    expect(version).to_have_attribute("data-latest", str(before + 1))
    expect(version).to_have_text(f"v{before + 1}（已生效）", timeout=15_000)  # without reload
    summary = page.locator(f"[data-testid=policy-summary][data-site={fleet.site}]")
    expect(summary).to_have_text(f"策略 v{before + 1}；全部门岗已生效")
    assert fleet.present(fleet.issue("resident", "赵测温"))["reason"] == "no_temperature"
    page.goto(fleet.url + "/gates")
    expect(page.locator("[data-testid=policy-summary]")).to_contain_text(f"策略 v{before + 1}")
    page.goto(fleet.url + "/fleet")  # back to the site's policy: temperature inherited
    page.click(f"[data-testid=edit-gate-{GATE}]")
    form = page.locator(f"[data-testid=policy-form-{scope}]")
    form.locator("[name=temperature]").select_option("")
    form.locator(f"[data-testid=policy-save-{scope}]").click()
    expect(version).to_have_text(f"v{before + 2}（已生效）", timeout=15_000)
    assert fleet.present(fleet.issue("resident", "赵测温"))["reason"] == "ok"
    assert "policy.gate" in fleet.audit_actions()
    page.context.close()


def test_a_stale_gate_is_counted_in_the_summary(browser: Browser, fleet: FleetStack) -> None:
    wait_for(fleet.applied, 10, "the gate on its latest policy")
    applied = int(fleet.gate()["policy_version"])
    assert fleet.agent is not None
    fleet.agent.stop()
    try:
        fleet.api("PUT", f"/api/v1/sites/{fleet.site}/policy", json={"anti_passback": "soft"})
        page = login(browser, fleet, "viewer", lang="en")
        page.goto(fleet.url + "/fleet")
        summary = page.locator(f"[data-testid=policy-summary][data-site={fleet.site}]")
        expect(summary).to_have_text(f"policy v{applied + 1}; 1 gate still on v{applied}")
        expect(page.locator("[data-testid=read-only]")).to_be_visible()
        page.context.close()
    finally:
        fleet.start_agent()
        fleet.api("PUT", f"/api/v1/sites/{fleet.site}/policy", json={})


@pytest.mark.parametrize("role", ["guard", "viewer"])
def test_guards_and_viewers_see_orders_read_only_and_get_403_posting(
    browser: Browser, fleet: FleetStack, role: str
) -> None:
    order = fleet.api("POST", "/api/v1/lockdowns",
                      json={"site": fleet.site, "mode": "full", "reason": "演练"})  # fmt: skip
    try:
        page = login(browser, fleet, role)
        banner = page.locator("[data-testid=lockdown-banner]")
        expect(banner).to_contain_text("全封闭")
        expect(page.locator("[data-testid=lockdown-end]")).to_have_count(0)
        page.goto(fleet.url + "/fleet")
        expect(page.locator("[data-testid=fleet-site]")).to_have_count(1)
        expect(page.locator("form.policy, [data-testid=lockdown-form]")).to_have_count(0)
        expect(page.locator("[data-testid=policy-version]")).to_have_count(1)
        csrf = str(page.locator("meta[name=csrf-token]").get_attribute("content"))
        form = {"csrf": csrf, "reason": "x", "site": fleet.site, "mode": "full"}
        for path in WRITE_FORMS:
            url = fleet.url + path.format(gate=fleet.gate_id, site=fleet.site)
            assert page.request.post(url, form=form).status == 403, path
        for path in ("/keys", "/keys.json", f"/gates/{fleet.gate_id}"):
            assert page.request.get(fleet.url + path).status == 403, path
        page.context.close()
    finally:
        fleet.api("DELETE", f"/api/v1/lockdowns/{order['id']}")
    assert "lockdown.end" in fleet.audit_actions()


def test_the_gates_page_title_is_plain_words(browser: Browser, fleet: FleetStack) -> None:
    page = login(browser, fleet, "admin")
    page.goto(fleet.url + "/gates")
    assert "<" not in page.title() and page.title().startswith("闸机管理")
    page.context.close()


def test_after_a_form_error_the_page_polls_and_returns_to_its_own_address(
    browser: Browser, fleet: FleetStack
) -> None:
    assert fleet.agent is not None
    fleet.agent.stop()  # the lockdown (a new policy) stays pending: the banner and versions poll
    body = {"site": fleet.site, "mode": "full", "reason": "演练"}
    order = fleet.api("POST", "/api/v1/lockdowns", json=body)
    try:
        page = login(browser, fleet, "admin")
        accept_dialogs(page)
        page.goto(fleet.url + "/fleet")
        page.click(f"[data-testid=edit-gate-{GATE}]")
        scope = f"gate-{fleet.gate_id}"
        page.fill(f"#{scope}-fever_threshold", "50")
        page.click(f"[data-testid=policy-save-{scope}]")
        expect(page.locator(f"#{scope}-err-fever_threshold")).to_be_visible()
        posted_to = f"/fleet/gates/{fleet.gate_id}/policy"
        assert urlparse(page.url).path == posted_to  # a POST-only address
        assert page.locator("main").get_attribute("data-poll-url") == "/fleet"
        asked: list[tuple[str, str, dict[str, list[str]]]] = []
        page.on("request", lambda r: asked.append(
            (r.method, urlparse(r.url).path, parse_qs(urlparse(r.url).query))))  # fmt: skip
        fleet.start_agent()  # the gate applies: the banner and the version update by polling
        expect(page.locator("[data-testid=order-pending]")).to_have_text(
            "全部 1 个门岗已生效", timeout=15_000)  # fmt: skip
        version = page.locator(f"[data-testid=fleet-gate][data-gate={GATE}] "
                               "[data-testid=policy-version]")  # fmt: skip
        expect(version).to_contain_text("已生效", timeout=15_000)
        gets = [path for method, path, _ in asked if method == "GET"]
        assert "/fleet" in gets and posted_to not in gets
        assert [q.get("path") for _, p, q in asked if p == "/_partials/orders"]
        assert all(q.get("path") == ["/fleet"] for _, p, q in asked if p == "/_partials/orders")
        page.click("[data-testid=lockdown-end]")  # back to a page that takes GET
        expect(page.locator("[data-testid=lockdown-banner]")).to_have_count(0)
        assert urlparse(page.url).path == "/fleet"
        expect(page.locator("h1")).to_have_text("门岗策略与封控")
        page.context.close()
    finally:
        fleet.api("DELETE", f"/api/v1/lockdowns/{order['id']}")
        if fleet.agent.proc is None or fleet.agent.proc.poll() is not None:
            fleet.start_agent()


HIDE = """hidden => {
  Object.defineProperty(document, "hidden", {configurable: true, get: () => hidden});
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def test_the_version_poll_backs_off_and_stops_while_the_tab_is_hidden(
    browser: Browser, fleet: FleetStack
) -> None:
    assert fleet.agent is not None
    fleet.agent.stop()  # offline: its policy stays pending as long as the test likes
    try:
        fleet.api("PUT", f"/api/v1/sites/{fleet.site}/policy", json={"anti_passback": "soft"})
        page = login(browser, fleet, "viewer")
        page.clock.install()  # the page's timers and Date.now() run as the test says
        asked: list[str] = []
        page.on("request", lambda r: asked.append(urlparse(r.url).path))
        page.goto(fleet.url + "/fleet")
        summary = page.locator(f"[data-testid=policy-summary][data-site={fleet.site}]")
        expect(summary).to_have_attribute("data-pending", "1")

        def polls(seconds: int) -> int:
            before = asked.count("/api/v1/gates")
            for _ in range(seconds):
                page.clock.run_for(1000)
                page.wait_for_timeout(80)  # real time for the fetch to come back
            return asked.count("/api/v1/gates") - before

        assert polls(25) >= 10  # the first half-minute: about every second
        page.clock.run_for(10_000)
        assert polls(60) <= 7  # then about every 12 s
        page.evaluate(HIDE, True)
        assert polls(60) == 0  # hidden: not at all
        page.evaluate(HIDE, False)
        assert polls(1) >= 1  # shown again: at once
        page.context.close()
    finally:
        fleet.start_agent()
        fleet.api("PUT", f"/api/v1/sites/{fleet.site}/policy", json={})


def key_row(page: Page, state: str, purpose: str = "pass") -> str:
    row = page.locator(f"[data-testid=signing-key][data-state={state}][data-purpose={purpose}]")
    expect(row).to_have_count(1)
    return str(row.get_attribute("data-key-id"))


def test_keys_new_activate_reissue_retire(browser: Browser, fleet: FleetStack) -> None:
    signed_before = fleet.issue("resident", "钱旧钥")
    page = login(browser, fleet, "admin")
    asked = accept_dialogs(page)
    page.goto(fleet.url + "/keys")
    old = key_row(page, "active")
    page.select_option("[name=purpose]", "pass")
    page.click("[data-testid=key-new]")
    expect(page.locator("[data-testid=keys-notice]")).to_have_text("已新建密钥（待用）")
    new = key_row(page, "next")
    page.locator(f"[data-key-id='{new}'] [data-testid=key-activate]").click()
    expect(page.locator("[data-testid=keys-notice]")).to_have_text("密钥已启用")
    assert key_row(page, "active") == new and key_row(page, "previous") == old
    old_row = page.locator(f"[data-key-id='{old}']")
    count = int(re.sub(r"\D", "", old_row.locator("[data-testid=key-passes]").inner_text()))
    assert count >= 1
    expect(old_row.locator("[data-testid=reissue-guide]")).to_be_visible()
    link = old_row.locator("[data-testid=key-passes-link]").get_attribute("href")
    assert link == f"/api/v1/keys/{old}/passes"
    old_row.locator("[data-testid=key-reissue]").click()
    expect(page.locator("[data-testid=reissued]")).to_contain_text(f"已重新签发 {count} 张")
    expect(page.locator("[data-testid=reissued-pass]")).to_have_count(count)
    page.goto(fleet.url + "/keys")
    old_row = page.locator(f"[data-key-id='{old}']")
    expect(old_row.locator("[data-testid=key-passes]")).to_have_text("0 张")
    old_row.locator("[data-testid=key-retire]").click()
    expect(page.locator("[data-testid=keys-notice]")).to_have_text("密钥已停用")
    expect(page.locator(f"[data-key-id='{old}']")).to_have_attribute("data-state", "retired")
    expect(page.locator(f"[data-key-id='{new}'] [data-testid=key-retire]")).to_have_count(0)
    assert any(old in q for q in asked)
    wait_for(fleet.applied, 10, "the gate to drop the retired key")
    assert fleet.present(signed_before)["reason"] in ("revoked", "unknown_key")
    assert fleet.present(fleet.issue("resident", "孙新钥"))["reason"] == "ok"
    actions = set(fleet.audit_actions())
    assert {"key.create", "key.activate", "key.reissue", "key.retire"} <= actions
    page.context.close()


def test_emergency_release_from_the_gate_page_is_never_default_and_audited(
    browser: Browser, fleet: FleetStack
) -> None:
    policy = fleet.api("GET", f"/api/v1/gates/{fleet.gate_id}/policy")
    assert policy["document"]["emergency_release"] is False  # never the default
    page = login(browser, fleet, "admin")
    accept_dialogs(page)
    page.goto(f"{fleet.url}/gates/{fleet.gate_id}")
    area = page.locator("[data-testid=release-area]")
    expect(area).to_have_attribute("data-held", "false")
    page.click("[data-testid=release-start]")
    expect(page.locator("[data-testid=error-reason]")).to_have_text("请写明紧急放行的原因")
    assert fleet.api("GET", "/api/v1/releases", params={"active": True}) == []
    csrf = str(page.locator("meta[name=csrf-token]").get_attribute("content"))
    too_long = page.request.post(f"{fleet.url}/gates/{fleet.gate_id}/release",
                                 form={"csrf": csrf, "reason": "演" * 201})  # fmt: skip
    assert too_long.status == 422 and "text/html" in too_long.headers["content-type"]
    assert "原因最多 200 个字" in too_long.text()  # beside the field, not FastAPI's JSON
    assert fleet.api("GET", "/api/v1/releases", params={"active": True}) == []
    page.fill("#release-reason", "消防演练")
    page.click("[data-testid=release-start]")
    expect(area).to_have_attribute("data-held", "true")
    expect(page.locator("[data-testid=release-state]")).to_contain_text("紧急放行中")
    expect(page.locator("[data-testid=release-banner]")).to_be_visible()
    wait_for(lambda: fleet.gate()["emergency_release"] is True, 10, "the gate to hold it open")
    page.reload()
    expect(page.locator("[data-testid=release-reported]")).to_have_text("门岗已报告门保持打开")
    area.locator("[data-testid=release-end]").click()
    expect(area).to_have_attribute("data-held", "false")
    expect(page.locator("[data-testid=release-banner]")).to_have_count(0)
    wait_for(lambda: fleet.gate()["emergency_release"] is False, 10, "the gate to lock again")
    assert {"release.start", "release.end"} <= set(fleet.audit_actions())
    page.context.close()


def test_device_bound_checkbox_gives_a_pass_with_an_enrol_link(
    browser: Browser, fleet: FleetStack
) -> None:
    page = login(browser, fleet, "admin")
    accept_dialogs(page)
    page.goto(f"{fleet.url}/passes/new?preset=resident&site={fleet.site}")
    page.fill("[name=holder]", "周手机")
    page.check("[data-testid=device-bound]")
    page.click("[data-testid=issue-submit]")
    link = page.locator("[data-testid=enrol-url]")
    first = str(link.get_attribute("href"))
    assert "/phone/enrol/" in first and link.inner_text() == first
    expect(page.locator("[data-testid=pass-qr]")).to_have_count(0)  # no printed pass
    qr = page.locator("[data-testid=enrol-qr]")
    page.wait_for_function("document.querySelector('[data-testid=enrol-qr]').naturalWidth > 0")
    assert decode_png(qr.screenshot()) == first
    token = first.rsplit("/", 1)[1]
    assert httpx.get(f"{fleet.url}/api/v1/enrol/{token}").json()["state"] == "open"
    assert first not in page.url  # the link is in no URL: the redirect carries a nonce
    page.reload()  # a GET of the pass page: nothing issued again, the link not shown again
    expect(page.locator("[data-testid=enrol]")).to_be_visible()
    expect(page.locator("[data-testid=enrol-url]")).to_have_count(0)
    found = fleet.api("GET", "/api/v1/passes", params={"q": "周手机"})
    assert len(found["items"]) == 1
    page.click("[data-testid=enrol-renew]")
    second = str(page.locator("[data-testid=enrol-url]").get_attribute("href"))
    assert second != first
    assert httpx.get(f"{fleet.url}/api/v1/enrol/{token}").json()["state"] == "revoked"
    page.reload()  # renews nothing: the link just shown stays open, and is not shown again
    expect(page.locator("[data-testid=enrol-url]")).to_have_count(0)
    state = httpx.get(f"{fleet.url}/api/v1/enrol/{second.rsplit('/', 1)[1]}").json()["state"]
    assert state == "open"
    page.click("[data-testid=enrol-revoke]")
    expect(page.locator("[data-testid=links-revoked]")).to_have_text("已作废 1 个链接")
    expect(page.locator("[data-testid=enrol-url]")).to_have_count(0)
    state = httpx.get(f"{fleet.url}/api/v1/enrol/{second.rsplit('/', 1)[1]}").json()["state"]
    assert state == "revoked"
    page.context.close()


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_fleet_pages_are_accessible_in_both_languages(
    browser: Browser, fleet: FleetStack, tmp_path: Path, lang: str
) -> None:
    out = shots(tmp_path)
    assert fleet.agent is not None
    fleet.agent.stop()  # so the banner and the summary show a gate not yet on the latest
    body = {"site": fleet.site, "mode": "residents_only", "reason": "疫情防控"}
    order = fleet.api("POST", "/api/v1/lockdowns", json=body)
    try:
        page = login(browser, fleet, "admin", lang=lang)
        accept_dialogs(page)
        expect(page.locator("[data-testid=lockdown-banner]")).to_be_visible()
        check(page, out, "live-lockdown", lang)
        page.goto(fleet.url + "/fleet")
        check(page, out, "fleet", lang)
        page.click(f"[data-testid=edit-gate-{GATE}]")
        scope = f"gate-{fleet.gate_id}"
        page.fill(f"#{scope}-fever_threshold", "50")
        page.fill(f"#{scope}-passback_window_s", "-1")
        page.click(f"[data-testid=policy-save-{scope}]")
        expect(page.locator(f"#{scope}-err-passback_window_s")).to_be_visible()
        check(page, out, "fleet-errors", lang)
        viewer = login(browser, fleet, "viewer", lang=lang)
        viewer.goto(fleet.url + "/fleet")
        check(viewer, out, "fleet-read-only", lang)
        viewer.context.close()
    finally:
        fleet.api("DELETE", f"/api/v1/lockdowns/{order['id']}")
        fleet.start_agent()
    fleet.issue("resident", "吴守卫")
    page.goto(fleet.url + "/keys")
    page.click("[data-testid=key-new]")
    page.locator("[data-testid=signing-key][data-state=next] [data-testid=key-activate]").click()
    expect(page.locator("[data-testid=reissue-guide]").first).to_be_visible()
    check(page, out, "keys", lang)
    page.goto(f"{fleet.url}/gates/{fleet.gate_id}")
    page.fill("#release-reason", "消防演练")
    page.click("[data-testid=release-start]")
    wait_for(lambda: fleet.gate()["emergency_release"] is True, 10, "the door held open")
    page.reload()
    check(page, out, "gate-release", lang)
    page.locator("[data-testid=release-area] [data-testid=release-end]").click()
    expect(page.locator("[data-testid=release-form]")).to_be_visible()
    page.goto(f"{fleet.url}/passes/new?preset=visitor&site={fleet.site}")
    page.fill("[name=holder]", "郑手机")
    page.check("[data-testid=device-bound]")
    page.click("[data-testid=issue-submit]")
    page.wait_for_function("document.querySelector('[data-testid=enrol-qr]').naturalWidth > 0")
    check(page, out, "pass-enrol", lang)
    page.context.close()
