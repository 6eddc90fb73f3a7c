"""The SQL of what the gate's store holds on passes: revocations, usage, live codes granted
and verified issuer signatures.

Every write to these tables goes through a function here, inside the caller's transaction, and
returns the `Change`s it made (read back with RETURNING, so a usage count is the stored one), for
the store to apply to its in-memory mirror once the transaction has committed (pass_mirror.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence

from edge.decide import PassRecord, PassUsage
from edge.pass_mirror import Change, Op

# What a decision needs to know of one pass, in one statement (a NULL matches no row).
RECORD_QUERY = (
    "SELECT EXISTS (SELECT 1 FROM revocations WHERE pass_id = ?1),"
    " EXISTS (SELECT 1 FROM live_codes WHERE pass_id = ?1 AND slot = ?2),"
    " EXISTS (SELECT 1 FROM verified_signatures WHERE digest = ?3),"
    " u.uses, u.last_direction, u.last_at, u.last_gate"
    " FROM (SELECT 1) LEFT JOIN usage AS u ON u.pass_id = ?1"
)


def read_record(
    conn: sqlite3.Connection, pass_id: str, live_slot: int | None, digest: bytes | None
) -> PassRecord:
    row = conn.execute(RECORD_QUERY, (pass_id, live_slot, digest)).fetchone()
    revoked, live_used, verified, uses, last_direction, last_at, last_gate = row
    usage = None if uses is None else PassUsage(uses, last_direction, last_at, last_gate)
    return PassRecord(bool(revoked), usage, bool(live_used), bool(verified))


# --- writes, inside the caller's transaction -------------------------------------------------


def revoke(
    conn: sqlite3.Connection, pass_id: str, reason: str, at: float, until: float | None, source: str
) -> list[Change]:
    conn.execute(
        "INSERT INTO revocations VALUES (?, ?, ?, ?, ?) ON CONFLICT(pass_id) DO UPDATE"
        " SET reason = excluded.reason, until = excluded.until, source = excluded.source",
        (pass_id, reason, at, until, source),
    )
    return [(Op.REVOKE, [pass_id])]


def unrevoke(conn: sqlite3.Connection, pass_ids: list[str]) -> list[Change]:
    conn.executemany("DELETE FROM revocations WHERE pass_id = ?", [(p,) for p in pass_ids])
    return [(Op.UNREVOKE, pass_ids)]


def apply_revocations(
    conn: sqlite3.Connection,
    snapshot: bool,
    revoked: list[tuple[str, str, float | None]],
    unrevoked: list[str],
    at: float,
) -> list[Change]:
    """Central's revocation delta (or, with `snapshot`, the whole of its list)."""
    changes: list[Change] = []
    if snapshot:
        gone = conn.execute("DELETE FROM revocations WHERE source = 'central' RETURNING pass_id")
        changes.append((Op.UNREVOKE, [row[0] for row in gone.fetchall()]))
    conn.executemany(
        "INSERT INTO revocations VALUES (?, ?, ?, ?, 'central') ON CONFLICT(pass_id)"
        " DO UPDATE SET reason = excluded.reason, until = excluded.until, source = 'central'",
        [(pid, reason, at, until) for pid, reason, until in revoked],
    )
    changes.append((Op.REVOKE, [pid for pid, _, _ in revoked]))
    return [*changes, *unrevoke(conn, unrevoked)]


def record_use(
    conn: sqlite3.Connection,
    pass_id: str,
    at: float,
    use: tuple[str, str, float | None],
) -> list[Change]:
    """A granted passage: the pass's use count and where and which way it last went."""
    gate, direction, valid_until = use
    row = conn.execute(
        "INSERT INTO usage VALUES (?, 1, ?, ?, ?, ?) ON CONFLICT(pass_id) DO UPDATE"
        " SET uses = uses + 1, last_at = excluded.last_at,"
        " last_direction = excluded.last_direction, last_gate = excluded.last_gate,"
        " valid_until = excluded.valid_until RETURNING uses, last_direction, last_at, last_gate",
        (pass_id, at, direction, gate, valid_until),
    ).fetchone()
    return [(Op.USE, [(pass_id, *row)])]


def remember_live_code(
    conn: sqlite3.Connection, pass_id: str, slot: int, at: float
) -> list[Change]:
    conn.execute("INSERT OR IGNORE INTO live_codes VALUES (?, ?, ?)", (pass_id, slot, at))
    return [(Op.LIVE, [(pass_id, slot)])]


def remember_signatures(
    conn: sqlite3.Connection, verified: Sequence[tuple[bytes, bytes, float | None]], at: float
) -> list[Change]:
    """(digest, key id, pass valid_until) of each issuer signature that verified here."""
    conn.executemany(
        "INSERT OR IGNORE INTO verified_signatures VALUES (?, ?, ?, ?)",
        [(*v, at) for v in verified],
    )
    return [(Op.VERIFY, [v[0] for v in verified])]


def signature_keys(conn: sqlite3.Connection) -> list[bytes]:
    return [row[0] for row in conn.execute("SELECT DISTINCT key_id FROM verified_signatures")]


def forget_signatures_of(conn: sqlite3.Connection, key_ids: Collection[bytes]) -> list[Change]:
    gone: list[bytes] = []
    for key_id in key_ids:
        cur = conn.execute(
            "DELETE FROM verified_signatures WHERE key_id = ? RETURNING digest", (key_id,)
        )
        gone.extend(row[0] for row in cur.fetchall())
    return [(Op.FORGET_VERIFIED, gone)]


def prune_passes(
    conn: sqlite3.Connection, before: float, live_before: float, max_live_codes: int
) -> tuple[dict[str, int], list[Change]]:
    """Forget the state of passes expired before `before` and live codes older than
    `live_before` or beyond the newest `max_live_codes`; the counts per table and the changes."""
    usage = [r[0] for r in conn.execute(
        "DELETE FROM usage WHERE valid_until IS NOT NULL AND valid_until < ? RETURNING pass_id",
        (before,),
    ).fetchall()]  # fmt: skip
    revs = [r[0] for r in conn.execute(
        "DELETE FROM revocations WHERE until IS NOT NULL AND until < ? RETURNING pass_id",
        (before,),
    ).fetchall()]  # fmt: skip
    sigs = [r[0] for r in conn.execute(
        "DELETE FROM verified_signatures WHERE valid_until < ? RETURNING digest", (before,)
    ).fetchall()]  # fmt: skip
    live: list[tuple[str, int]] = conn.execute(
        "DELETE FROM live_codes WHERE at < ? RETURNING pass_id, slot", (live_before,)
    ).fetchall()
    # A flood of grants within a day still leaves a bounded table: the oldest go first.
    live += conn.execute(
        "DELETE FROM live_codes WHERE (pass_id, slot) IN (SELECT pass_id, slot"
        " FROM live_codes ORDER BY at DESC LIMIT -1 OFFSET ?) RETURNING pass_id, slot",
        (max_live_codes,),
    ).fetchall()
    changes: list[Change] = [
        (Op.FORGET_USE, usage),
        (Op.UNREVOKE, revs),
        (Op.FORGET_VERIFIED, sigs),
        (Op.FORGET_LIVE, [(str(p), int(s)) for p, s in live]),
    ]
    return {"usage": len(usage), "revocations": len(revs), "live_codes": len(live)}, changes
