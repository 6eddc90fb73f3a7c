"""Gate policy at central: one signed document per gate, composed, versioned and published.

A gate's document is, field by field: the PolicyDocument defaults, then the direction the gate
was provisioned with, then its site's policy, then the gate's own overrides; its trusted keys
and pinned policy keys come from the keyring, its lockdown and emergency release from the
active orders covering it. When that composition changes, the version grows by one, central
signs it with the active policy key and publishes it retained on the gate's `policy` topic.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Engine, Row, select, update

from central import keyring
from central.keyring import KeyPurpose
from central.store.tables import gate_policies, gates, lockdowns, site_policies
from protocol import topics
from protocol.epass import HolderKind
from protocol.gate_policy import AntiPassback, Direction, TemperaturePolicy
from protocol.policy import Lockdown, LockdownMode, PolicyDocument, SignedPolicy, sign_policy
from protocol.topics import GateTopic

log = logging.getLogger(__name__)
_STRICTNESS = {LockdownMode.RESIDENTS_ONLY: 1, LockdownMode.FULL: 2}
_VOLATILE = {"version", "issued_at"}


class OrderKind(StrEnum):
    """What a row of `lockdowns` orders."""

    LOCKDOWN = "lockdown"
    RELEASE = "release"  # emergency release: hold the doors open (fire, evacuation)


class PolicyFields(BaseModel):
    """The policy an admin sets for a site or a gate; a field left out is inherited."""

    model_config = ConfigDict(extra="forbid")

    direction: Direction | None = Field(None, description="in, out or both.")
    temperature: TemperaturePolicy | None = Field(None, description="off, advisory, required.")
    fever_threshold: float | None = Field(None, ge=35.0, le=42.0, description="°C.")
    anti_passback: AntiPassback | None = Field(None, description="off, soft or hard.")
    passback_window_s: int | None = Field(None, ge=0, le=86_400, description="Two-way window.")
    live_code_kinds: list[HolderKind] | None = Field(
        None, description="Holder kinds that must show a live code."
    )

    def set_fields(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class Publisher(Protocol):
    """Central's broker link (it knows the QoS to use), as far as publishing a policy needs it."""

    def publish(self, topic: str, payload: str, retain: bool = False) -> object: ...


# --- what admins set ---------------------------------------------------------------------------


def site_fields(conn: Connection, site: str) -> dict[str, Any]:
    return sites_fields(conn, [site])[site]


def sites_fields(conn: Connection, sites: list[str]) -> dict[str, dict[str, Any]]:
    """Each site's policy fields ({}: none set), in one query."""
    query = select(site_policies.c.site, site_policies.c.fields)
    rows = conn.execute(query.where(site_policies.c.site.in_(sites)))
    found = {r.site: dict(r.fields) for r in rows}
    return {site: found.get(site, {}) for site in sites}


def gate_fields(conn: Connection, gate_id: int) -> dict[str, Any]:
    query = select(gate_policies.c.fields).where(gate_policies.c.gate_id == gate_id)
    row = conn.execute(query).first()
    return dict(row.fields) if row else {}


def set_site_fields(
    conn: Connection, site: str, fields: PolicyFields, by: str, now: datetime
) -> None:
    values = {"fields": fields.set_fields(), "updated_at": now, "updated_by": by}
    done = conn.execute(update(site_policies).where(site_policies.c.site == site).values(values))
    if done.rowcount == 0:
        conn.execute(site_policies.insert().values(site=site, **values))


def set_gate_fields(conn: Connection, gate_id: int, fields: PolicyFields, by: str) -> None:
    _upsert_gate(conn, gate_id, fields=fields.set_fields(), updated_by=by)


def _upsert_gate(conn: Connection, gate_id: int, **values: Any) -> None:
    where = gate_policies.c.gate_id == gate_id
    if conn.execute(update(gate_policies).where(where).values(values)).rowcount == 0:
        conn.execute(
            gate_policies.insert().values(
                gate_id=gate_id, **({"fields": {}, "version": 0} | values)
            )
        )


# --- composing and signing ---------------------------------------------------------------------


def strictest(rows: Iterable[Row[Any]], gate: str) -> tuple[Lockdown | None, bool]:
    """The strictest lockdown among active orders covering this gate, and any release."""
    lockdown: Lockdown | None = None
    release = False
    for row in rows:
        if row.gates and gate not in row.gates:
            continue
        if row.kind == OrderKind.RELEASE:
            release = True
            continue
        mode = LockdownMode(row.mode)
        if lockdown is None or _STRICTNESS[mode] > _STRICTNESS[lockdown.mode]:
            lockdown = Lockdown(id=str(row.id), mode=mode, reason=row.reason)
    return lockdown, release


def stored_versions(conn: Connection, gate_ids: list[int]) -> dict[int, int]:
    """Each gate's latest signed version (0: none), in one query and without parsing the
    documents: for lists that only count versions."""
    if not gate_ids:
        return {}
    query = select(gate_policies.c.gate_id, gate_policies.c.version)
    rows = conn.execute(query.where(gate_policies.c.gate_id.in_(gate_ids)))
    found = {r.gate_id: int(r.version) for r in rows}
    return {gate_id: found.get(gate_id, 0) for gate_id in gate_ids}


def stored_document(conn: Connection, gate_id: int) -> tuple[int, SignedPolicy | None]:
    query = select(gate_policies.c.version, gate_policies.c.document)
    row = conn.execute(query.where(gate_policies.c.gate_id == gate_id)).first()
    if row is None or row.document is None:
        return (0 if row is None else int(row.version)), None
    return int(row.version), SignedPolicy.model_validate_json(row.document)


class Composer:
    """Composes and signs gate documents; what gates share (keys, a site's policy and orders)
    is read once per change, not once per gate."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pass_keys = keyring.trusted(conn, KeyPurpose.PASS)
        self.policy_keys = keyring.trusted(conn, KeyPurpose.POLICY)
        self.key = keyring.active_signing_key(conn, KeyPurpose.POLICY)
        self._sites: dict[str, tuple[dict[str, Any], list[Row[Any]]]] = {}

    def _site(self, site: str) -> tuple[dict[str, Any], list[Row[Any]]]:
        if site not in self._sites:
            active = lockdowns.c.ended_at.is_(None)
            orders = self.conn.execute(select(lockdowns).where(lockdowns.c.site == site, active))
            self._sites[site] = (site_fields(self.conn, site), list(orders))
        return self._sites[site]

    def compose(self, gate_row: Row[Any]) -> dict[str, Any]:
        """Every field of the gate's document but its version and signing time."""
        site_policy, orders = self._site(gate_row.site)
        provisioned = {k: v for k, v in (gate_row.config or {}).items() if k == "direction"}
        fields = provisioned | site_policy | gate_fields(self.conn, gate_row.id)
        lockdown, release = strictest(orders, gate_row.gate)
        return fields | {
            "trusted_keys": self.pass_keys,
            "policy_keys": self.policy_keys,
            "lockdown": lockdown,
            "emergency_release": release,
        }

    def refresh(self, gate_row: Row[Any], now: datetime) -> SignedPolicy | None:
        """Sign a new version when the gate's composed policy changed; None when it did not."""
        version, signed = stored_document(self.conn, gate_row.id)
        draft = PolicyDocument(
            site=gate_row.site, gate=gate_row.gate, version=version + 1, issued_at=now,
            **self.compose(gate_row),
        )  # fmt: skip
        if signed is not None:
            held = PolicyDocument.model_validate_json(signed.document)
            if held.model_dump(exclude=_VOLATILE) == draft.model_dump(exclude=_VOLATILE):
                return None
        new = sign_policy(draft, self.key)
        _upsert_gate(self.conn, gate_row.id, version=draft.version,
                     document=new.model_dump_json(), signed_at=now)  # fmt: skip
        return new


def refresh_gates(
    engine: Engine,
    publisher: Publisher | None,
    now: datetime,
    *,
    site: str | None = None,
    gate_ids: Iterable[int] | None = None,
) -> list[tuple[str, str, int]]:
    """Re-sign every gate in scope whose policy changed, then publish: (site, gate, version)."""
    query = select(gates).order_by(gates.c.id)
    if site is not None:
        query = query.where(gates.c.site == site)
    if gate_ids is not None:
        query = query.where(gates.c.id.in_(list(gate_ids)))
    with engine.begin() as conn:
        composer = Composer(conn)
        changed = [
            (r.site, r.gate, s)
            for r in conn.execute(query).all()
            if (s := composer.refresh(r, now))
        ]
    for gate_site, gate, signed in changed:  # after commit: a gate never holds an unstored version
        publish(publisher, gate_site, gate, signed)
    return [(s, g, PolicyDocument.model_validate_json(d.document).version) for s, g, d in changed]


def publish(publisher: Publisher | None, site: str, gate: str, signed: SignedPolicy) -> None:
    if publisher is None:
        return  # no broker link (tests, CLI without one): the gate asks when it connects
    topic = topics.gate_topic(site, gate, GateTopic.POLICY)
    publisher.publish(topic, signed.model_dump_json(), retain=True)


def document_for(conn: Connection, site: str, gate: str) -> tuple[int, SignedPolicy | None]:
    """The gate's current version and signed document (0, None: none), for its requests."""
    row = conn.execute(select(gates.c.id).where(gates.c.site == site, gates.c.gate == gate)).first()
    return (0, None) if row is None else stored_document(conn, row.id)
