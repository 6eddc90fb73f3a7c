"""What the console's fleet-control pieces show, from the API's own route functions: the banner
of active lockdowns and emergency releases, each site's policy versions, the signing keys."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from central.auth import Principal
from central.config import CentralSettings
from central.console import office_data
from central.keyring import KeyPurpose, KeyState
from central.routes import keys as keys_api
from central.routes import lockdowns as orders_api
from central.routes import policy as policy_api
from central.routes.lockdowns import OrderPublic
from central.routes.policy import GateVersion, SitePolicyPublic


def banner(engine: Engine, user: Principal) -> dict[str, list[OrderPublic]]:
    """The orders in force, for the banner on every page (GET /api/v1/lockdowns?active=true)."""
    return {
        "lockdowns": orders_api.list_lockdowns(engine, user, active=True),
        "releases": orders_api.list_releases(engine, user, active=True),
    }


def covers(order: OrderPublic, site: str, gate: str) -> bool:
    return order.site == site and (not order.gates or gate in order.gates)


def version_summary(gates: list[GateVersion]) -> dict[str, Any]:
    """`policy v7; 2 gates still on v6`: the newest version, and the gates not on their latest
    grouped by what they report (None: nothing reported yet)."""
    behind = [g for g in gates if g.version and g.applied_version != g.version]
    groups = Counter(g.applied_version for g in behind)
    return {
        "latest": max((g.version for g in gates), default=0),
        "behind": sorted(groups.items(), key=lambda kv: -1 if kv[0] is None else kv[0]),
        "pending": len(behind),
    }


def site_summaries(
    engine: Engine, user: Principal, settings: CentralSettings
) -> list[dict[str, Any]]:
    """Each site's policy (GET /api/v1/sites/{site}/policy) and its version summary."""
    found = []
    with engine.connect() as conn:
        for site in office_data.sites(engine, user, settings):
            policy: SitePolicyPublic = policy_api.site_policy(conn, site)
            found.append({"policy": policy, "summary": version_summary(policy.gates)})
    return found


def fleet_data(engine: Engine, user: Principal, settings: CentralSettings) -> dict[str, Any]:
    """The policy page: per site its policy, summary and gates (each with its overrides)."""
    sites = site_summaries(engine, user, settings)
    ids = [g.gate_id for site in sites for g in site["policy"].gates]
    with engine.connect() as conn:
        found = {g.gate_id: g for g in policy_api.gate_policies(conn, ids)}  # one query, not N
    for site in sites:
        site["gates"] = [found[g.gate_id] for g in site["policy"].gates if g.gate_id in found]
    return {"sites": sites}


def signing_keys(engine: Engine, user: Principal) -> list[dict[str, Any]]:
    """Every key (GET /api/v1/keys) with, for pass keys, its count of active passes."""
    now = datetime.now(UTC)
    found = []
    with engine.connect() as conn:
        for key in keys_api.list_keys(engine, user):
            signed = None
            if key.purpose is KeyPurpose.PASS:
                signed = len(keys_api.active_passes_of(conn, key.key_id, now))
            reissue = bool(signed) and key.state is not KeyState.ACTIVE
            found.append({"key": key, "active_passes": signed, "reissue": reissue})
    return found
