"""Moving an existing password/ACL file pair to the injective `gate/{site}/{gate}` user names.

`menjin central broker-migrate` runs this against the registered gates. A gate keeps its
password (its hash is copied to the new name). The old `gate.{site}.{gate}` entry keeps working
until `--drop-legacy`, so gates can be re-configured one at a time; an old name that two
registered gates share is removed at once, because its password and ACL belonged to different
gates, and both gates need new credentials (`gate-add --rotate`).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from central import broker_users


@dataclass
class MigrationReport:
    migrated: list[str] = field(default_factory=list)  # "site/gate" given its new user name
    already: list[str] = field(default_factory=list)  # had its new user name already
    missing: list[str] = field(default_factory=list)  # no password under either name
    colliding: list[str] = field(default_factory=list)  # shared an old name: new credentials
    dropped: list[str] = field(default_factory=list)  # old user names removed


def remove_acl_block(text: str, username: str) -> str:
    """The ACL text without `user {username}` and the topic lines under it."""
    out: list[str] = []
    skipping = False
    for line in text.splitlines():
        if line.startswith("user ") or line.startswith("pattern "):
            skipping = line == f"user {username}"
        if not skipping:
            out.append(line)
    return "\n".join(out) + "\n"


def migrate(
    passwd: Path, acl: Path, gates: list[tuple[str, str]], drop_legacy: bool = False
) -> MigrationReport:
    """Give every registered gate its injective user name, keeping its password."""
    entries = broker_users.users(passwd)
    acl_text = acl.read_text() if acl.exists() else ""
    owners: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for site, gate in gates:
        owners[broker_users.legacy_gate_username(site, gate)].append((site, gate))
    report = MigrationReport()
    for old, pairs in owners.items():
        names = [f"{s}/{g}" for s, g in pairs]
        new_users = [broker_users.gate_username(s, g) for s, g in pairs]
        if old in entries and len(pairs) > 1:
            report.colliding += names
        elif old in entries:
            if new_users[0] in entries:
                report.already += names
            else:
                entries[new_users[0]] = entries[old]
                acl_text += "\n" + broker_users.gate_acl(*pairs[0])
                report.migrated += names
            if not drop_legacy:
                continue
        else:
            for name, new in zip(names, new_users, strict=True):
                (report.already if new in entries else report.missing).append(name)
            continue
        entries.pop(old)
        acl_text = remove_acl_block(acl_text, old)
        report.dropped.append(old)
    _rewrite(passwd, "".join(f"{u}:{h}\n" for u, h in entries.items()))
    _rewrite(acl, acl_text)
    return report


def _rewrite(path: Path, text: str) -> None:
    """Replace a file's content atomically, readable by its owner only (it holds hashes)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)
