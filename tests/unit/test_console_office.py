"""The office's issue form without a browser: presets in the site's zone, form to API body."""

from __future__ import annotations

from datetime import datetime, timedelta

from central.config import CentralSettings
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
