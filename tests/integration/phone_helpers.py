"""A real central process, Debian's Chromium, and a gate agent for the phone-page tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from central.auth import Role
from edge.assemble import assemble_gate
from edge.config import load_gate_settings
from edge.devices.qr_decode import decode_frame
from edge.gate import DeviceFactories, GateAgent
from protocol.keyfiles import init_key_dir, load_signing_key
from tests.integration.agent_helpers import write_config
from tests.integration.live_central import api_token, central_db, serving
from tests.integration.services import Mosquitto
from tests.integration.stack import central_config

PHONE = {"width": 390, "height": 844}
PASSWORD = "phone-admin-password"
SITE = "hutong-12"


@dataclass
class Central:
    url: str
    token: str
    keys: Path

    def issue(self, **changes: Any) -> dict[str, Any]:
        now = datetime.now(UTC).replace(microsecond=0)
        body = {
            "site": SITE, "holder": "张三华", "kind": "resident", "unit": "3号楼2单元501",
            "valid_from": (now - timedelta(days=1)).isoformat(),
            "valid_until": (now + timedelta(days=30)).isoformat(), "device_bound": True,
        } | changes  # fmt: skip
        r = httpx.post(f"{self.url}/api/v1/passes", json=body, headers=self.auth())
        assert r.status_code == 201, r.text
        return dict(r.json())

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def pass_text(self, pass_id: str) -> str:
        r = httpx.get(f"{self.url}/api/v1/passes/{pass_id}", headers=self.auth())
        return str(r.json()["text"])


@pytest.fixture(scope="module")
def phone_central(tmp_path_factory: pytest.TempPathFactory, broker: Mosquitto) -> Iterator[Central]:
    workdir = tmp_path_factory.mktemp("phone-central")
    init_key_dir(workdir / "keys")
    db_url = central_db(workdir / "central.db", PASSWORD, [Role.ADMIN])
    with serving(central_config(workdir, db_url, broker.url)) as url:
        yield Central(url, api_token(url, Role.ADMIN.value, PASSWORD), workdir / "keys")


@pytest.fixture(scope="module")
def phone_browser(browser: Any) -> Any:
    """The session's one browser (tests/integration/browser.py)."""
    return browser


def gate_agent(tmp_path: Path, central: Central, name: str = "east", **gate: object) -> GateAgent:
    """A real gate agent (no devices attached, no uplink) trusting central's key, with its own
    store; its `present` returns (decision, journal seq)."""
    workdir = tmp_path / name
    workdir.mkdir()
    key = load_signing_key(central.keys)
    config = write_config(workdir, key, {}, {"site": SITE, "gate": name, **gate})
    settings = load_gate_settings(config)
    return assemble_gate(settings, DeviceFactories(), uplink=False).agent


def read_live_code(page: Any, png: Path | None = None) -> tuple[str, int]:
    """Screenshot the live code as a camera would see it, decode it with the gate's decoder."""
    qr = page.locator('[data-testid="live-qr"][data-slot]')
    qr.wait_for(state="visible")
    for _ in range(3):  # a redraw between reading the slot and the screenshot: look again
        slot = int(qr.get_attribute("data-slot"))
        shot = page.screenshot(path=str(png) if png else None)
        if int(qr.get_attribute("data-slot")) == slot:
            break
    image = cv2.imdecode(np.frombuffer(shot, np.uint8), cv2.IMREAD_COLOR)
    text = decode_frame(image)
    assert text is not None, "the gate's decoder did not read the phone's screen"
    return text, slot


def wait_next_slot(page: Any, slot: int, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    sel = '[data-testid="live-qr"][data-slot]'
    while time.monotonic() < deadline:
        current = page.locator(sel).get_attribute("data-slot")
        if current is not None and int(current) != slot:
            return
        time.sleep(0.1)
    raise AssertionError(f"the live code stayed on slot {slot}")
