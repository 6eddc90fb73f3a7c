"""Every endpoint × every role: 401 without credentials, 403 for a role that may not, and
neither for a role that may. A new endpoint fails this test until it is listed here."""

from __future__ import annotations

import re

import pytest

from central.auth import Role
from tests.integration.api_helpers import Api

ADMIN = {Role.ADMIN}
GUARD = {Role.ADMIN, Role.GUARD}
ANY = {Role.ADMIN, Role.GUARD, Role.VIEWER}
PUBLIC: set[Role] = set()

EXPECTED: dict[tuple[str, str], set[Role]] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("POST", "/api/v1/auth/token"): PUBLIC,
    ("GET", "/metrics"): ANY,
    ("GET", "/api/v1/audit"): ADMIN,
    ("POST", "/api/v1/auth/logout"): ANY,
    ("GET", "/api/v1/auth/me"): ANY,
    ("POST", "/api/v1/auth/users"): ADMIN,
    ("GET", "/api/v1/auth/users"): ADMIN,
    ("POST", "/api/v1/auth/users/{username}/disable"): ADMIN,
    ("POST", "/api/v1/auth/users/{username}/enable"): ADMIN,
    ("POST", "/api/v1/auth/users/{username}/password"): ADMIN,
    ("POST", "/api/v1/auth/users/{username}/end-sessions"): ADMIN,
    ("POST", "/api/v1/auth/api-keys"): ADMIN,
    ("GET", "/api/v1/auth/api-keys"): ADMIN,
    ("DELETE", "/api/v1/auth/api-keys/{key_id}"): ADMIN,
    ("POST", "/api/v1/passes"): ADMIN,
    ("GET", "/api/v1/passes"): ANY,
    ("GET", "/api/v1/passes/{pass_id}"): ANY,
    ("POST", "/api/v1/passes/{pass_id}/revoke"): ADMIN,
    ("GET", "/api/v1/passes/{pass_id}/qr.png"): ADMIN,  # the QR holds the pass text
    ("GET", "/api/v1/passes/{pass_id}/qr.svg"): ADMIN,
    ("POST", "/api/v1/passes/import"): ADMIN,
    ("POST", "/api/v1/passes/cards.pdf"): ADMIN,
    ("POST", "/api/v1/passes/{pass_id}/reissue"): ADMIN,
    ("GET", "/api/v1/passes/{pass_id}/gates"): ANY,
    ("GET", "/api/v1/imports/template.xlsx"): ADMIN,
    ("POST", "/api/v1/imports"): ADMIN,
    ("POST", "/api/v1/imports/{import_id}/confirm"): ADMIN,
    ("POST", "/api/v1/passes/{pass_id}/enrol-link"): ADMIN,
    ("DELETE", "/api/v1/passes/{pass_id}/enrol-link"): ADMIN,
    # A phone has no account: the one-time token in the path is the credential (24 random
    # bytes, kept only as a hash, refused once used, expired or revoked).
    ("GET", "/api/v1/enrol/{token}"): PUBLIC,
    ("POST", "/api/v1/enrol/{token}"): PUBLIC,
    ("GET", "/api/v1/time"): PUBLIC,
    ("POST", "/api/v1/gates"): ADMIN,
    ("GET", "/api/v1/gates"): ANY,
    ("POST", "/api/v1/gates/{gate_id}/open"): GUARD,
    ("GET", "/api/v1/events"): ANY,
    ("GET", "/api/v1/events.csv"): ANY,
    ("GET", "/api/v1/events.xlsx"): ANY,
    ("GET", "/api/v1/events/stream"): ANY,
    ("GET", "/api/v1/events/{event_id}"): ANY,
    ("GET", "/api/v1/events/{event_id}/snapshot.jpg"): GUARD,  # a face
    ("DELETE", "/api/v1/people/{person_id}"): ADMIN,
    ("GET", "/api/v1/alerts"): ANY,
    ("POST", "/api/v1/alerts/{alert_id}/ack"): GUARD,
    ("POST", "/api/v1/alerts/{alert_id}/resolve"): GUARD,
    ("GET", "/api/v1/gates/{gate_id}/policy"): ANY,
    ("PUT", "/api/v1/gates/{gate_id}/policy"): ADMIN,
    ("GET", "/api/v1/sites/{site}/policy"): ANY,
    ("PUT", "/api/v1/sites/{site}/policy"): ADMIN,
    ("GET", "/api/v1/keys"): ADMIN,
    ("POST", "/api/v1/keys"): ADMIN,
    ("POST", "/api/v1/keys/{key_id}/activate"): ADMIN,
    ("POST", "/api/v1/keys/{key_id}/retire"): ADMIN,
    ("GET", "/api/v1/keys/{key_id}/passes"): ADMIN,
    ("POST", "/api/v1/keys/{key_id}/reissue"): ADMIN,
    ("POST", "/api/v1/lockdowns"): ADMIN,
    ("GET", "/api/v1/lockdowns"): ANY,
    ("DELETE", "/api/v1/lockdowns/{lockdown_id}"): ADMIN,
    ("POST", "/api/v1/releases"): ADMIN,
    ("GET", "/api/v1/releases"): ANY,
    ("DELETE", "/api/v1/releases/{release_id}"): ADMIN,
}
STREAMING = {("GET", "/api/v1/events/stream")}


def routes(api: Api) -> set[tuple[str, str]]:
    """Every operation the app publishes in its OpenAPI document."""
    paths = api.client.get("/openapi.json").json()["paths"]
    return {(method.upper(), path) for path, ops in paths.items() for method in ops}


def test_every_endpoint_is_in_the_matrix(api: Api) -> None:
    assert routes(api) == set(EXPECTED)


def concrete(path: str) -> str:
    fill = {"{pass_id}": "0123456789abcdef", "{username}": "nobody"}
    return re.sub(r"\{[a-z_]+\}", lambda m: fill.get(m[0], "1"), path)


@pytest.mark.parametrize(("method", "path"), sorted(EXPECTED))
def test_role_matrix(api: Api, method: str, path: str) -> None:
    allowed = EXPECTED[(method, path)]
    url = concrete(path)
    if not allowed:
        r = api.client.request(method, url)
        assert r.status_code not in (401, 403), (method, path, r.status_code)
        return
    assert api.client.request(method, url).status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert api.client.request(method, url, headers=bad).status_code == 401
    for role in Role:
        if role not in allowed:
            r = api.client.request(method, url, headers=api.as_(role), json={})
            assert r.status_code == 403, (role, method, path, r.status_code)
        elif (method, path) not in STREAMING:
            r = api.client.request(method, url, headers=api.as_(role), json={})
            assert r.status_code not in (401, 403), (role, method, path, r.status_code, r.text)
