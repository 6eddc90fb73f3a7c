"""The console's session cookie and CSRF rules, in-process: the same role dependency as the API,
cookie writes need the CSRF header, login and logout forms need their tokens, pages have twins."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from central.auth import Role
from central.console.session import SESSION_COOKIE
from central.store import presence
from protocol.messages import GateState, GateStatus
from tests.integration.api_helpers import PASSWORD, Api
from tests.integration.test_api_gates_events import ev, store_events


def form_token(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]*)"', html)
    assert found is not None
    return found[1]


def console_login(client: TestClient, role: Role) -> str:
    """Log in through the form; returns the page's CSRF token."""
    token = form_token(client.get("/login").text)
    r = client.post("/login", data={"username": role.value, "password": PASSWORD, "csrf": token},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text
    return form_token(client.get("/").text)


def test_session_cookie_is_httponly_samesite_and_expires(api: Api) -> None:
    token = form_token(api.client.get("/login").text)
    r = api.client.post("/login", data={"username": "guard", "password": PASSWORD,
                                        "csrf": token}, follow_redirects=False)  # fmt: skip
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert re.search(r"Max-Age=\d+", cookie) and "Secure" not in cookie


def test_cookie_is_secure_over_https(api: Api) -> None:
    client = TestClient(api.client.app, base_url="https://testserver")
    token = form_token(client.get("/login").text)
    r = client.post("/login", data={"username": "guard", "password": PASSWORD, "csrf": token},
                    follow_redirects=False)  # fmt: skip
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "Secure" in cookie


def test_pages_need_a_session_and_a_tampered_cookie_is_refused(api: Api) -> None:
    r = api.client.get("/events", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/events"
    console_login(api.client, Role.GUARD)
    assert api.client.get("/events").status_code == 200
    value = api.client.cookies[SESSION_COOKIE]
    api.client.cookies.set(SESSION_COOKIE, value[:-1] + ("0" if value[-1] != "0" else "1"))
    assert api.client.get("/", follow_redirects=False).status_code == 303
    assert api.client.get("/api/v1/gates").status_code == 401


def test_login_form_needs_its_csrf_token_and_wrong_passwords_fail(api: Api) -> None:
    api.client.get("/login")
    r = api.client.post("/login", data={"username": "guard", "password": PASSWORD, "csrf": "x"})
    assert r.status_code == 403 and SESSION_COOKIE not in api.client.cookies
    token = form_token(api.client.get("/login").text)
    r = api.client.post("/login", data={"username": "guard", "password": "wrong-password",
                                        "csrf": token})  # fmt: skip
    assert r.status_code == 401 and 'data-testid="login-error"' in r.text


def test_cookie_writes_to_the_api_need_the_csrf_header_and_keep_role_rules(api: Api) -> None:
    csrf = console_login(api.client, Role.GUARD)
    assert api.client.get("/api/v1/alerts").status_code == 200  # reads: the cookie is enough
    assert api.client.post("/api/v1/alerts/1/ack", json={}).status_code == 403
    r = api.client.post("/api/v1/alerts/1/ack", json={}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 404  # past auth and CSRF: there is just no such alert
    viewer = TestClient(api.client.app)
    vcsrf = console_login(viewer, Role.VIEWER)
    r = viewer.post("/api/v1/alerts/1/ack", json={}, headers={"X-CSRF-Token": vcsrf})
    assert r.status_code == 403  # the API's own role rule
    assert "alert-ack" not in viewer.get("/patterns").text  # and no button for it


def test_logout_needs_the_token_and_revokes_the_session(api: Api) -> None:
    csrf = console_login(api.client, Role.GUARD)
    assert api.client.post("/logout", data={"csrf": "wrong"}).status_code == 403
    old = api.client.cookies[SESSION_COOKIE]
    r = api.client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    api.client.cookies.set(SESSION_COOKIE, old)  # a copied cookie no longer works either
    assert api.client.get("/api/v1/gates").status_code == 401


def test_data_twins_use_the_api_queries(api: Api) -> None:
    fever = {"granted": False, "reason": "fever", "temperature_c": 38.4,
             "details": {"flags": ["fever"]}}  # fmt: skip
    store_events(api, "s1", "east", [ev(1), ev(2, **fever), ev(3, **fever)])
    console_login(api.client, Role.GUARD)
    h = api.as_(Role.GUARD)
    live = api.client.get("/live.json").json()
    assert [t["gate"] for t in live["tiles"]] == api.client.get("/api/v1/gates", headers=h).json()
    assert live["events"] == api.client.get("/api/v1/events?limit=50", headers=h).json()["items"]
    [group] = live["alert_groups"]  # two fevers a minute apart: one alert ×2
    assert group["count"] == 2 and group["event"]["temperature_c"] == 38.4
    assert len(live["tiles"]) == 1 and len(live["events"]) == 3
    page = api.client.get("/events.json").json()
    assert page["events"] == api.client.get("/api/v1/events?limit=50", headers=h).json()["items"]
    for lang in ("zh-CN", "en"):
        for path in ("/", "/events", "/patterns", "/login"):
            r = api.client.get(path, params={"lang": lang})
            assert r.status_code == 200 and f'<html lang="{lang}">' in r.text, (path, lang)


def test_static_files_have_cache_headers(api: Api) -> None:
    r = api.client.get("/static/console.css")
    assert r.status_code == 200 and "max-age=" in r.headers["cache-control"]
    assert "font-size: 18px" in r.text  # the base size: at least 16 px


def test_tiles_show_device_faults_and_clock_skew_from_the_gate_status(api: Api) -> None:
    engine = api.client.app.state.engine  # type: ignore[attr-defined]
    counters: dict[str, int | bool] = {"reader_up": True, "relay_up": False}
    status = GateStatus(state=GateState.ONLINE, at=datetime.now(UTC), backlog=4,
                        clock_skew_s=95.0, counters=counters)  # fmt: skip
    with engine.begin() as conn:
        presence.register_gate(conn, "s1", "east", datetime.now(UTC))
        presence.apply_status(conn, "s1", "east", status, datetime.now(UTC))
    console_login(api.client, Role.GUARD)
    [tile] = api.client.get("/live.json").json()["tiles"]
    assert tile["faults"] == ["relay"] and tile["skew_warning"] is True
    html = api.client.get("/_partials/gates").text
    assert 'data-testid="device-fault"' in html and "继电器故障" in html
    assert 'data-testid="skew-warning"' in html and "时钟偏差 95 秒" in html
    assert 'data-online="true"' in html and "在线" in html
