"""The office's issue form without a browser: presets in the site's zone, form to API body;
the one-time links a form post leaves for the page it redirects to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from central.config import CentralSettings
from central.console import flash
from central.console.flash import Flashes
from central.console.office_pages import _fields, preset_values


def settings() -> CentralSettings:
    return CentralSettings.model_validate({"auth": {"secret": "unit-test-secret-" + "x" * 32}})


def test_presets_are_a_year_today_and_thirty_daytime_days() -> None:
    spans = {}
    for name in ("resident", "visitor", "delivery"):
        values = preset_values(name, "hutong", settings())
        start, end = (datetime.fromisoformat(values[k]) for k in ("valid_from", "valid_until"))
        assert start.hour == 0 and start.minute == 0 and values["kind"] == name
        spans[name] = (end - start, values["hours"])
    assert spans == {"resident": (timedelta(days=365), ""), "visitor": (timedelta(days=1), ""),
                     "delivery": (timedelta(days=30), "08:00-20:00")}  # fmt: skip


def test_an_unknown_preset_is_a_resident() -> None:
    assert preset_values("x", "s", settings())["kind"] == "resident"


def test_the_form_leaves_out_empty_fields_and_unknown_names() -> None:
    form = {"site": " hutong ", "holder": "张三", "hours": "", "csrf": "t", "max_uses": "0"}
    assert _fields(form, ["east", ""]) == {"site": "hutong", "holder": "张三", "max_uses": "0",
                                           "gates": ["east"]}  # fmt: skip


def test_the_date_pickers_times_are_the_sites_local_time() -> None:
    form = {"site": "hutong", "valid_from": "2026-12-01T08:00", "valid_until": "tomorrow"}
    body = _fields(form, [], settings())
    assert body["valid_from"] == "2026-12-01T08:00:00+08:00"
    assert body["valid_until"] == "tomorrow"  # left for the API's own error


def test_a_flashed_link_is_taken_once_by_its_own_session_and_page() -> None:
    flashes, now = Flashes(), datetime.now(UTC)
    nonce = flashes.put("session-a", "pass-1", "https://x/phone/enrol/t", now)
    assert flashes.take("session-b", "pass-1", nonce, now) is None  # another session
    assert flashes.take("session-a", "pass-2", nonce, now) is None  # another pass's page
    assert flashes.take("session-a", "pass-1", nonce, now) == "https://x/phone/enrol/t"
    assert flashes.take("session-a", "pass-1", nonce, now) is None  # a reload: gone


def test_a_flashed_link_expires_and_the_store_stays_bounded() -> None:
    flashes, now = Flashes(), datetime.now(UTC)
    old = flashes.put("s", "p", "url", now)
    assert flashes.take("s", "p", old, now + flash.TTL) is None
    nonces = [flashes.put("s", "p", f"url-{i}", now) for i in range(flash.MAX_HELD + 1)]
    assert flashes.take("s", "p", nonces[0], now) is None  # the oldest made room
    assert flashes.take("s", "p", nonces[-1], now) == f"url-{flash.MAX_HELD}"
