"""Register simulated gates with central and give each its broker credentials, as gate-add does."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from central import broker_users
from central.store import presence
from central.store.db import make_engine, upgrade
from menjin.sim_fleet import FleetSpec
from protocol.fsmodes import write_private


def register_gates(spec: FleetSpec, db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        now = datetime.now(UTC)
        with engine.begin() as conn:
            for gate in spec.gate_ids():
                presence.register_gate(conn, spec.site, gate, now,
                                       mqtt_username=spec.username(gate))  # fmt: skip
    finally:
        engine.dispose()


def mosquitto_users(spec: FleetSpec, passwd: Path, acl: Path) -> None:
    """Password lines and per-gate ACL blocks, written in one go (add_user per gate is O(n²))."""
    old = broker_users.users(passwd)
    ours = {spec.username(g): broker_users.hash_password(spec.password(g)) for g in spec.gate_ids()}
    merged = {k: v for k, v in old.items() if k not in ours} | ours
    write_private(passwd, "".join(f"{u}:{h}\n" for u, h in merged.items()))
    existing = acl.read_text() if acl.exists() else ""
    blocks = [broker_users.gate_acl(spec.site, g) for g in spec.gate_ids()]
    new = [b for b in blocks if b.splitlines()[0] not in existing.splitlines()]
    write_private(acl, existing + "".join("\n" + b for b in new))


def nats_users(spec: FleetSpec) -> dict[str, str]:
    """User name -> password for a NATS `authorization { users = [...] }` block."""
    return {spec.username(g): spec.password(g) for g in spec.gate_ids()}


def write_nats_users(spec: FleetSpec, path: Path) -> None:
    lines = [
        f"  {{user: {json.dumps(u)}, password: {json.dumps(p)}}}"
        for u, p in nats_users(spec).items()
    ]
    write_private(path, "users = [\n" + "\n".join(lines) + "\n]\n")


def provision_fleet(
    spec: FleetSpec, db_url: str, passwd: Path | None, acl: Path | None, nats_file: Path | None
) -> None:
    if db_url:
        register_gates(spec, db_url)
    if passwd is not None and acl is not None:
        mosquitto_users(spec, passwd, acl)
    if nats_file is not None:
        write_nats_users(spec, nats_file)
