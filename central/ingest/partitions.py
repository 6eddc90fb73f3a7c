"""Work sharing without `$share` (NATS's MQTT): sites partitioned over the live replicas.

Every replica heartbeats a row in `central_replicas`; the replicas seen within `member_ttl_s`
are the members. Each site belongs to one member by rendezvous hashing (the member with the
highest hash of site and member name), which every replica computes alike from the same rows,
so no leader assigns anything and a departure moves only the sites of the one who left.
A replica subscribes only to its own sites' events, sync requests and snapshots.

While members change, two replicas may both hold a site for a moment (both store: the store is
idempotent, so the second copy counts as a duplicate) or neither (gates resend what is not
acked). Nothing is lost either way.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, select, update

from central.store.db import insert_ignore
from central.store.tables import central_replicas, gates
from protocol import topics
from protocol.topics import GateTopic

PARTITIONED = (
    GateTopic.EVENTS,
    GateTopic.SYNC_REQUEST,
    GateTopic.POLICY_REQUEST,
    GateTopic.SNAPSHOT,
)


def owner(site: str, members: list[str]) -> str:
    """The member that stores `site`'s messages (rendezvous hashing)."""
    return max(members, key=lambda m: hashlib.blake2b(f"{site}\0{m}".encode()).digest())


def site_filters(sites: list[str]) -> list[str]:
    """The per-site filters for the partitioned topic kinds, events first."""
    return [f"{topics.PREFIX}/{site}/+/{kind.value}" for kind in PARTITIONED for site in sites]


class Membership:
    """This replica's row in central_replicas, and the sites it owns."""

    def __init__(self, engine: Engine, replica: str, ttl_s: float) -> None:
        self.engine = engine
        self.replica = replica
        self.ttl = timedelta(seconds=ttl_s)

    def beat(self) -> None:
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            conn.execute(
                insert_ignore(conn.dialect.name, central_replicas).values(
                    replica=self.replica, heartbeat_at=now
                )
            )
            conn.execute(
                update(central_replicas)
                .where(central_replicas.c.replica == self.replica)
                .values(heartbeat_at=now)
            )

    def owned_sites(self) -> list[str]:
        """The sites this replica stores, by the members alive now (itself always among them)."""
        alive_since = datetime.now(UTC) - self.ttl
        with self.engine.connect() as conn:
            members = set(
                conn.execute(
                    select(central_replicas.c.replica).where(
                        central_replicas.c.heartbeat_at >= alive_since
                    )
                ).scalars()
            )
            sites = sorted(conn.execute(select(gates.c.site).distinct()).scalars())
        ranked = sorted(members | {self.replica})
        return [site for site in sites if owner(site, ranked) == self.replica]

    def leave(self) -> None:
        """A clean stop: the others take this replica's sites at once, not after the TTL."""
        with self.engine.begin() as conn:
            conn.execute(delete(central_replicas).where(central_replicas.c.replica == self.replica))
