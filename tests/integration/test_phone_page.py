"""The phone page in real Chromium against a real central; its codes go to a real gate agent."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx

from edge.decide import Reason
from protocol.epass import parse_pass
from protocol.livecode import SLOT_S, DeviceAlg
from tests.integration.phone_helpers import (
    PHONE,
    Central,
    gate_agent,
    read_live_code,
    wait_next_slot,
)

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "phone"


def shot(name: str) -> Path | None:
    """Where to keep a screenshot for docs/phone.md: only when MENJIN_PHONE_SHOTS is set, so
    a test run leaves the tree as it was."""
    return SHOTS / name if os.environ.get("MENJIN_PHONE_SHOTS") else None


def enrol(context: Any, url: str, png: Path | None = None) -> Any:
    page = context.new_page()
    page.goto(url)
    page.get_by_test_id("enrol-name").wait_for()
    assert page.get_by_test_id("enrol-name").inner_text() == "张*华"
    if png:
        page.screenshot(path=str(png))
    page.get_by_test_id("enrol").click()
    page.locator('[data-testid="live-qr"][data-slot]').wait_for()
    return page


def test_enrol_show_live_code_and_the_gate_decides(
    phone_browser: Any, phone_central: Central, tmp_path: Path
) -> None:
    issued = phone_central.issue()
    context = phone_browser.new_context(viewport=PHONE, locale="zh-CN")
    page = enrol(context, issued["enrol_url"], shot("enrol.png"))
    assert page.evaluate("location.pathname") == "/phone/"  # the spent token left the URL
    gate = gate_agent(tmp_path, phone_central)
    text, slot = read_live_code(page, shot("live-code.png"))
    live = parse_pass(text)
    assert live.proof is not None and live.data.pass_id.hex() == issued["pass_id"]
    assert len(text) <= 311

    assert gate.present(text)[0].reason is Reason.OK
    assert gate.present(text)[0].reason is Reason.REPLAYED  # the same code again, at this gate
    static = phone_central.pass_text(issued["pass_id"])
    assert gate.present(static)[0].reason is Reason.NO_LIVE_CODE

    wait_next_slot(page, slot)  # the page redraws each slot, and the new code opens the gate
    text2, slot2 = read_live_code(page)
    assert (text2, slot2) != (text, slot)
    assert gate.present(text2)[0].reason is Reason.OK

    # A strict gate (no clock skew) refuses a code once its 10 s slot is over.
    strict = gate_agent(tmp_path, phone_central, "west", clock_skew_s=0)
    time.sleep(max(0.0, (slot2 + 1) * SLOT_S + 0.5 - time.time()))
    assert strict.present(text2)[0].reason is Reason.STALE_CODE

    second_phone = phone_browser.new_context(viewport=PHONE, locale="zh-CN")
    other = second_phone.new_page()
    other.goto(issued["enrol_url"])
    other.get_by_test_id("enrol-error").wait_for()
    assert "已使用" in other.get_by_test_id("enrol-error").inner_text()
    assert other.get_by_test_id("enrol").is_hidden()
    body = {"alg": "ed25519", "public_key": "A" * 43}
    token = issued["enrol_url"].rsplit("/", 1)[1]
    assert httpx.post(f"{phone_central.url}/api/v1/enrol/{token}", json=body).status_code == 410
    second_phone.close()
    context.close()


def test_offline_reload_keeps_rotating_valid_codes(
    phone_browser: Any, phone_central: Central, tmp_path: Path
) -> None:
    context = phone_browser.new_context(viewport=PHONE, locale="zh-CN")
    page = enrol(context, phone_central.issue()["enrol_url"])
    page.wait_for_function("navigator.serviceWorker.controller !== null")
    gate = gate_agent(tmp_path, phone_central)
    context.set_offline(True)
    page.reload()
    text, slot = read_live_code(page, shot("offline.png"))
    assert "离线" in page.get_by_test_id("status").inner_text()
    assert gate.present(text)[0].reason is Reason.OK
    wait_next_slot(page, slot)
    text2, _ = read_live_code(page)
    assert gate.present(text2)[0].reason is Reason.OK
    context.close()


def test_p256_fallback_and_a_phone_clock_five_minutes_slow(
    phone_browser: Any, phone_central: Central, tmp_path: Path
) -> None:
    context = phone_browser.new_context(viewport=PHONE, locale="zh-CN")
    # The phone's clock is 5 minutes behind: its codes are good only after its correction.
    context.add_init_script("{ const real = Date.now; Date.now = () => real() - 300000; }")
    issued = phone_central.issue(kind="visitor", holder="李四", hours="00:00-24:00", max_uses=5)
    page = context.new_page()
    page.goto(issued["enrol_url"] + "?key=p256")
    page.get_by_test_id("enrol").click()
    page.locator('[data-testid="live-qr"][data-slot]').wait_for()
    assert page.get_by_test_id("key-alg").inner_text() == "P-256"
    text, _ = read_live_code(page, shot("visitor-p256.png"))
    signed = parse_pass(text)
    assert signed.device is not None and signed.device.alg is DeviceAlg.P256
    gate = gate_agent(tmp_path, phone_central, live_code_kinds=["visitor"])
    assert gate.present(text)[0].reason is Reason.OK
    assert "本机时钟慢 300 秒" in page.get_by_test_id("status").inner_text()
    context.close()


def test_browser_ed25519_when_chromium_has_it(phone_browser: Any, phone_central: Central) -> None:
    context = phone_browser.new_context(viewport=PHONE)
    page = enrol(context, phone_central.issue()["enrol_url"])
    alg = page.get_by_test_id("key-alg").inner_text()
    probe = "crypto.subtle.generateKey({name: 'Ed25519'}, false, ['sign'])"
    has_ed25519 = page.evaluate(f"{probe}.then(() => true, () => false)")
    assert alg == ("Ed25519" if has_ed25519 else "P-256")
    context.close()


def test_the_page_exposes_no_secret(phone_browser: Any, phone_central: Central) -> None:
    context = phone_browser.new_context(viewport=PHONE)
    issued = phone_central.issue()
    page = enrol(context, issued["enrol_url"])
    token = issued["enrol_url"].rsplit("/", 1)[1]
    found = page.evaluate(
        """async () => {
          const db = await new Promise((ok) => {
            const r = indexedDB.open("menjin-phone"); r.onsuccess = () => ok(r.result); });
          const saved = await new Promise((ok) => {
            const r = db.transaction("state").objectStore("state").get("pass");
            r.onsuccess = () => ok(r.result); });
          let exported = "refused";
          try { await crypto.subtle.exportKey("pkcs8", saved.keys.privateKey); exported = "yes"; }
          catch (e) { exported = e.name; }
          return { extractable: saved.keys.privateKey.extractable, exported,
                   html: document.documentElement.outerHTML, storage: JSON.stringify(localStorage),
                   history: location.href };
        }"""
    )
    assert found["extractable"] is False and found["exported"] == "InvalidAccessError"
    for where in ("html", "storage", "history"):
        assert token not in found[where], where
    headers = httpx.get(f"{phone_central.url}/phone/").headers
    assert "script-src" not in headers["content-security-policy"]  # default-src 'self' covers it
    assert headers["referrer-policy"] == "no-referrer"
    context.close()
