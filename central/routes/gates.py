"""Gates: provisioning (config + broker credentials), live state, remote open."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field
from sqlalchemy import Connection, select

from central import broker_users, keyring, visibility
from central.auth import Role
from central.deps import (
    AdminUser,
    AnyUser,
    ConnDep,
    EngineDep,
    GuardUser,
    IdPath,
    IngestDep,
    SettingsDep,
    record_audit,
)
from central.keyring import KeyPurpose
from central.store import presence
from central.store.tables import gate_policies, gates
from central.views import aware
from protocol import topics
from protocol.gate_policy import GatePolicy
from protocol.messages import Command, CommandAction
from protocol.policy import LockdownMode
from protocol.settings_file import render_toml
from protocol.topics import GateTopic

router = APIRouter(prefix="/api/v1/gates", tags=["gates"])


class GateCreate(GatePolicy):
    site: str = Field(pattern=topics.NEW_ID_PATTERN, description="Site id: " + topics.NEW_ID_RULE)
    gate: str = Field(
        pattern=topics.NEW_ID_PATTERN,
        description="Gate id, unique within the site: " + topics.NEW_ID_RULE,
    )


class BrokerCredentials(BaseModel):
    username: str
    password: str
    password_file_line: str = Field(description="Append to the mosquitto password file.")
    acl: str = Field(description="Append to the mosquitto ACL file.")


class GateProvisioned(BaseModel):
    id: int
    site: str
    gate: str
    config_toml: str = Field(description="A config `menjin gate run` accepts as it is.")
    broker: BrokerCredentials


class GatePublic(BaseModel):
    id: int
    site: str
    gate: str
    online: bool
    last_seen: datetime | None
    offline_since: datetime | None
    cache_version: int | None
    backlog: int | None
    clock_skew_s: float | None
    last_sync: datetime | None = Field(description="When the gate's cache last synced.")
    version: str | None
    counters: dict[str, int | bool] = Field(description="What the gate counted, from its status.")
    config: dict[str, Any]
    policy_version: int | None = Field(None, description="Signed policy version the gate reported.")
    policy_latest: int = Field(0, description="Latest version central signed for it (0: none).")
    lockdown: LockdownMode | None = Field(
        None, description="Lockdown in force, as the gate reported."
    )
    emergency_release: bool = Field(False, description="The gate reported its door held open.")


def _pinned(conn: Connection) -> dict[str, list[dict[str, str]]]:
    """The keys a new gate's config lists: pass keys to trust, policy keys to pin."""
    pass_keys = keyring.trusted(conn, KeyPurpose.PASS)
    if not pass_keys:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no pass-signing key")
    return {
        "keys.trusted": [k.model_dump() for k in pass_keys],
        "keys.policy": [k.model_dump() for k in keyring.trusted(conn, KeyPurpose.POLICY)],
    }


@router.post("", status_code=201, responses={409: {"description": "Gate exists"}, 503: {}})
def provision_gate(
    body: GateCreate, user: AdminUser, conn: ConnDep, settings: SettingsDep, request: Request
) -> GateProvisioned:
    """Register a gate; returns its config and fresh broker credentials."""
    exists = conn.execute(
        select(gates.c.id).where(gates.c.site == body.site, gates.c.gate == body.gate)
    ).first()
    if exists is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"gate {body.site}/{body.gate} exists")
    username = broker_users.gate_username(body.site, body.gate)
    password = broker_users.new_password()
    policy = body.model_dump(mode="json", exclude={"site", "gate"})
    gate_id = presence.register_gate(
        conn, body.site, body.gate, datetime.now(UTC), config=policy, mqtt_username=username
    )
    toml = render_toml(
        {
            "gate": {"site": body.site, "gate": body.gate, **policy},
            "cache": {"path": f"{body.gate}-journal.db"},
            "mqtt": {
                "url": settings.mqtt.public_url or settings.mqtt.url,
                "username": username,
                "password": password,
            },
        },
        _pinned(conn),
    )
    record_audit(conn, request, user, "gate.provision", f"{body.site}/{body.gate}")
    creds = BrokerCredentials(
        username=username,
        password=password,
        password_file_line=f"{username}:{broker_users.hash_password(password)}",
        acl=broker_users.gate_acl(body.site, body.gate),
    )
    return GateProvisioned(
        id=gate_id, site=body.site, gate=body.gate, config_toml=toml, broker=creds
    )


def _public(row: Any, role: Role) -> GatePublic:
    st = row.status or {}
    return GatePublic.model_validate(visibility.redact(role, "GatePublic", dict(
        id=row.id, site=row.site, gate=row.gate, online=row.online,
        last_seen=aware(row.last_seen) if row.last_seen else None,
        offline_since=aware(row.offline_since) if row.offline_since else None,
        cache_version=st.get("cache_version"), backlog=st.get("backlog"),
        clock_skew_s=st.get("clock_skew_s"), last_sync=st.get("last_sync"),
        version=st.get("version"),
        counters=st.get("counters") or {}, config=row.config or {},
        policy_version=st.get("policy_version"), policy_latest=row.policy_latest or 0,
        lockdown=st.get("lockdown"), emergency_release=bool(st.get("emergency_release")),
    )))  # fmt: skip


@router.get("")
def list_gates(engine: EngineDep, user: AnyUser, site: str | None = None) -> list[GatePublic]:
    """Every gate with its live state."""
    latest = gate_policies.c.version.label("policy_latest")
    query = (
        select(gates, latest)
        .outerjoin(gate_policies, gate_policies.c.gate_id == gates.c.id)
        .order_by(gates.c.site, gates.c.gate)
    )
    if site is not None:
        query = query.where(gates.c.site == site)
    with engine.connect() as conn:
        return [_public(r, user.role) for r in conn.execute(query)]


class OpenRequest(BaseModel):
    reason: str = Field("", max_length=200, description="Why, for the audit log.")
    ttl_s: int = Field(30, ge=5, le=600, description="The gate ignores the command after this.")


class OpenIssued(BaseModel):
    command_id: str
    expires_at: datetime


@router.post("/{gate_id}/open", status_code=202, responses={404: {}, 503: {}})
def remote_open(
    gate_id: IdPath,
    body: OpenRequest,
    user: GuardUser,
    conn: ConnDep,
    ingest: IngestDep,
    request: Request,
) -> OpenIssued:
    """Open a gate remotely; the gate runs it at most once and journals the outcome."""
    row = conn.execute(select(gates.c.site, gates.c.gate).where(gates.c.id == gate_id)).first()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such gate")
    if ingest is None or not ingest.connected.is_set():
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "central is not connected")
    command = Command(
        id=uuid.uuid4().hex,
        action=CommandAction.OPEN,
        expires_at=datetime.now(UTC) + timedelta(seconds=body.ttl_s),
        issued_by=user.name,
    )
    ingest.link.publish(
        topics.gate_topic(row.site, row.gate, GateTopic.CMD), command.model_dump_json()
    )
    record_audit(conn, request, user, "gate.open", f"{row.site}/{row.gate}",
                 command_id=command.id, reason=body.reason)  # fmt: skip
    return OpenIssued(command_id=command.id, expires_at=command.expires_at)
