"""Helpers for the office's browser tests: API calls as automation makes them, a gate config
trusting central's key for `menjin gate present --dry-run`, a QR read off the screen."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
from typer.testing import CliRunner

from edge.devices.qr_decode import decode_frame
from menjin.cli import build_app
from tests.integration.console.stack import GATE, SITE, ConsoleStack


def api(stack: ConsoleStack, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {stack.token('admin')}"}
    return httpx.request(method, stack.url + path, headers=headers, timeout=30, **kwargs)


def issue(stack: ConsoleStack, holder: str, unit: str = "3号楼2单元101") -> str:
    now = datetime.now(UTC)
    body = {"site": SITE, "holder": holder, "kind": "resident", "unit": unit,
            "valid_from": (now - timedelta(hours=1)).isoformat(),
            "valid_until": (now + timedelta(days=30)).isoformat()}  # fmt: skip
    r = api(stack, "POST", "/api/v1/passes", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["pass_id"])


def all_passes(stack: ConsoleStack) -> list[dict[str, Any]]:
    r = api(stack, "GET", "/api/v1/passes", params={"limit": 500})
    r.raise_for_status()
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def decode_png(png: bytes) -> str | None:
    """The QR's text, read by the gate's own decoder."""
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    return decode_frame(image)


def menjin(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(build_app(args[0]), list(args))
    return result.exit_code, result.stdout, result.stderr


def present_dry_run(stack: ConsoleStack, text: str) -> dict[str, Any]:
    """The site's gate (trusting central's key) asked whether it would grant `text`."""
    config = stack.workdir / "dry-run" / "gate.toml"  # its own cache, beside the config
    if not config.exists():
        config.parent.mkdir()
        code, _, err = menjin("gate", "init", "--site", SITE, "--gate", GATE, "--keys",
                              str(stack.workdir / "keys"), "--temperature", "off",
                              "--out", str(config))  # fmt: skip
        assert code == 0, err
    code, out, err = menjin("gate", "present", text, "--config", str(config), "--dry-run")
    assert code in (0, 1), err
    found: dict[str, Any] = json.loads(out)
    return found


def docs_dir() -> Path:
    return Path(__file__).resolve().parents[3] / "docs" / "console"
