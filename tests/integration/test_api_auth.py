from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select, update

from central.auth import Role
from central.store.tables import login_throttle
from tests.integration.api_helpers import PASSWORD, Api


def test_login_me_and_logout(api: Api) -> None:
    c = api.client
    r = c.get("/api/v1/auth/me", headers=api.as_(Role.GUARD))
    assert r.json() == {"name": "guard", "role": "guard"}
    assert c.post("/api/v1/auth/logout", headers=api.as_(Role.GUARD)).status_code == 204
    assert c.get("/api/v1/auth/me", headers=api.as_(Role.GUARD)).status_code == 401


def test_missing_or_bad_token_is_401(api: Api) -> None:
    assert api.client.get("/api/v1/auth/me").status_code == 401
    bad = {"Authorization": "Bearer nonsense"}
    assert api.client.get("/api/v1/auth/me", headers=bad).status_code == 401


def login(api: Api, username: str, password: str) -> httpx.Response:
    return api.client.post("/api/v1/auth/token", data={"username": username, "password": password})


def test_failed_logins_back_off_and_the_right_password_works_after_the_wait(api: Api) -> None:
    api.settings.auth.login_backoff_s = 2.0  # roomy enough for a loaded machine's argon2

    def refused() -> float:
        r = login(api, "viewer", PASSWORD)
        assert r.status_code == 429, r.text
        return float(r.headers["Retry-After"])

    for _ in range(5):
        assert login(api, "viewer", "wrong!!!").status_code == 401
    first = refused()
    assert 1 <= first <= 2  # seconds, not a 15-minute wall
    time.sleep(first + 0.1)
    assert login(api, "viewer", "wrong!!!").status_code == 401  # the 6th failure: now 4 s
    second = refused()
    assert 3 <= second <= 4
    time.sleep(second + 0.1)
    assert login(api, "viewer", PASSWORD).status_code == 200  # the owner gets in after the wait
    assert login(api, "viewer", "wrong!!!").status_code == 401  # and the count starts afresh
    engine = api.client.app.state.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        rows = conn.execute(select(login_throttle)).all()
    assert {(r.scope, r.key) for r in rows} == {("user", "viewer"), ("addr", "testclient")}


def test_throttle_rows_are_bounded_and_pruned(api: Api) -> None:
    long_name = "x" * 5000
    assert login(api, long_name, "wrong!!!").status_code == 401
    engine = api.client.app.state.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        keys = [r.key for r in conn.execute(select(login_throttle))]
    assert max(len(k) for k in keys) <= 80
    old = datetime.now(UTC) - timedelta(days=1)
    with engine.begin() as conn:
        conn.execute(update(login_throttle).values(last_at=old, blocked_until=None))
    assert login(api, "someone", "wrong!!!").status_code == 401
    with engine.connect() as conn:
        keys = [r.key for r in conn.execute(select(login_throttle))]
    assert sorted(keys) == ["someone", "testclient"]  # the day-old rows are gone


def test_logout_with_an_api_key_is_refused(api: Api) -> None:
    key = api.client.post("/api/v1/auth/api-keys", json={"name": "bot", "role": "viewer"},
                          headers=api.as_(Role.ADMIN)).json()["key"]  # fmt: skip
    for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
        r = api.client.post("/api/v1/auth/logout", headers=headers)
        assert r.status_code == 400 and "revoke" in r.json()["detail"]
    assert api.client.get("/api/v1/auth/me", headers={"X-API-Key": key}).status_code == 200


def test_api_keys_expire_are_listed_and_revoked(api: Api) -> None:
    c, admin = api.client, api.as_(Role.ADMIN)
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    assert c.post("/api/v1/auth/api-keys", json={"name": "x", "role": "viewer", "expires_at": past},
                  headers=admin).status_code == 422  # fmt: skip
    soon = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
    r = c.post("/api/v1/auth/api-keys", json={"name": "soon", "role": "guard", "expires_at": soon},
               headers=admin)  # fmt: skip
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    assert c.get("/api/v1/auth/me", headers={"X-API-Key": key}).status_code == 200
    [listed] = c.get("/api/v1/auth/api-keys", headers=admin).json()
    assert (listed["name"], listed["active"]) == ("soon", True) and "key" not in listed
    time.sleep(1.6)
    assert c.get("/api/v1/auth/me", headers={"X-API-Key": key}).status_code == 401
    assert c.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    [listed] = c.get("/api/v1/auth/api-keys", headers=admin).json()
    assert listed["active"] is False


def test_disable_enable_reset_password_and_end_sessions(api: Api) -> None:
    c, admin = api.client, api.as_(Role.ADMIN)
    guard = api.as_(Role.GUARD)
    r = c.post("/api/v1/auth/users/guard/end-sessions", headers=admin)
    assert r.json() == {"username": "guard", "sessions_ended": 1}
    assert c.get("/api/v1/auth/me", headers=guard).status_code == 401
    token = login(api, "guard", PASSWORD).json()["access_token"]
    r = c.post("/api/v1/auth/users/guard/disable", headers=admin)
    assert r.json()["sessions_ended"] == 1
    assert c.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert login(api, "guard", PASSWORD).status_code == 401
    assert [u["disabled"] for u in c.get("/api/v1/auth/users", headers=admin).json()
            if u["username"] == "guard"] == [True]  # fmt: skip
    assert c.post("/api/v1/auth/users/guard/enable", headers=admin).json()["disabled"] is False
    token = login(api, "guard", PASSWORD).json()["access_token"]
    r = c.post("/api/v1/auth/users/guard/password", json={"password": "a new long one"},
               headers=admin)  # fmt: skip
    assert r.json()["sessions_ended"] == 1
    assert c.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert login(api, "guard", PASSWORD).status_code == 401
    assert login(api, "guard", "a new long one").status_code == 200
    assert c.post("/api/v1/auth/users/admin/disable", headers=admin).status_code == 409  # last one
    assert c.post("/api/v1/auth/users/nobody/disable", headers=admin).status_code == 404
    actions = [a["action"] for a in c.get("/api/v1/audit", headers=admin).json()]
    for action in ("user.end_sessions", "user.disable", "user.enable", "user.reset_password"):
        assert action in actions


def test_api_keys(api: Api) -> None:
    c = api.client
    r = c.post("/api/v1/auth/api-keys", json={"name": "bot", "role": "viewer"},
               headers=api.as_(Role.ADMIN))  # fmt: skip
    assert r.status_code == 201
    key = r.json()["key"]
    assert c.get("/api/v1/auth/me", headers={"X-API-Key": key}).json()["role"] == "viewer"
    assert c.delete(f"/api/v1/auth/api-keys/{r.json()['id']}",
                    headers=api.as_(Role.ADMIN)).status_code == 204  # fmt: skip
    assert c.get("/api/v1/auth/me", headers={"X-API-Key": key}).status_code == 401


def test_audit_log_records_writes(api: Api) -> None:
    c = api.client
    c.post("/api/v1/auth/users", json={"username": "li", "password": "12345678", "role": "guard"},
           headers=api.as_(Role.ADMIN))  # fmt: skip
    entries = c.get("/api/v1/audit", headers=api.as_(Role.ADMIN)).json()
    assert entries[0]["action"] == "user.create" and entries[0]["actor"] == "admin"
    assert entries[0]["target"] == "li"
    assert c.get("/api/v1/audit", headers=api.as_(Role.GUARD)).status_code == 403


def test_login_reservations_are_atomic_on_postgresql() -> None:
    """The compare-and-set holds on PostgreSQL too: 20 racing attempts, 5 free ones."""
    from concurrent.futures import ThreadPoolExecutor

    from central import login_limits
    from central.login_limits import reserve_login
    from central.store.db import make_engine, upgrade
    from tests.integration.services import pg_schema

    with pg_schema() as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
            policy = login_limits.LoginPolicy(backoff_s=60)
            now = datetime.now(UTC)
            with ThreadPoolExecutor(20) as pool:
                waits = list(pool.map(
                    lambda _i: reserve_login(engine, "admin", "192.0.2.7", now, policy),
                    range(20),
                ))  # fmt: skip
            assert sum(w is None for w in waits) == 5
            login_limits.refund_login(engine, "admin", "192.0.2.7", policy, success=True)
            with engine.connect() as conn:
                rows = conn.execute(select(login_throttle)).all()
            assert [(r.scope, r.failures) for r in rows] == [("addr", 4)]
        finally:
            engine.dispose()
