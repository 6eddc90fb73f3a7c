from __future__ import annotations

from central.auth import Role
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


def test_repeated_failed_logins_are_rate_limited(api: Api) -> None:
    c = api.client
    for _ in range(5):
        r = c.post("/api/v1/auth/token", data={"username": "viewer", "password": "wrong!!!"})
        assert r.status_code == 401
    r = c.post("/api/v1/auth/token", data={"username": "viewer", "password": PASSWORD})
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "900"


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
