"""Data at rest: under umask 000 the real CLI and agent still create 0600 files in 0700 dirs."""

from __future__ import annotations

import stat
import subprocess
import threading
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import segno

from protocol.fsmodes import private_sqlite
from protocol.settings_file import render_toml
from tests.integration.agent_helpers import wait_for
from tests.integration.services import Mosquitto
from tests.integration.stack import MENJIN, central_config, wait_http

SIDE_FILES = ("-wal", "-shm")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def menjin(*args: str | Path) -> str:
    """Run a menjin command under umask 000 and return its stdout."""
    done = subprocess.run(
        [MENJIN, *map(str, args)], capture_output=True, text=True, umask=0, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def assert_private(*paths: Path) -> None:
    found = {p.name: oct(mode(p)) for p in paths}
    want = {p.name: oct(0o700 if p.is_dir() else 0o600) for p in paths}
    assert found == want


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., None]]:
    """Start a long-running menjin command under umask 000; stopped after the test."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str | Path) -> None:
        with (tmp_path / f"{args[0]}.log").open("ab") as log:
            procs.append(
                subprocess.Popen(
                    [MENJIN, *map(str, args)], stdout=log, stderr=subprocess.STDOUT, umask=0
                )
            )

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(15)


def test_keys_init_makes_a_private_key_directory(tmp_path: Path) -> None:
    keys = tmp_path / "office" / "keys"
    menjin("keys", "init", keys)
    assert_private(keys.parent, keys, keys / "signing.key", keys / "public.key")


def test_central_database_and_broker_files_are_private(
    tmp_path: Path, live_broker: Mosquitto, spawn: Callable[..., None]
) -> None:
    db = tmp_path / "central.db"
    db.touch(0o644)  # left by an older version: opening it tightens it
    config = central_config(tmp_path, f"sqlite:///{db}", live_broker.url)
    menjin("keys", "init", tmp_path / "keys")
    passwd, acl = tmp_path / "broker" / "passwd", tmp_path / "broker" / "acl"
    passwd.parent.mkdir()
    menjin(
        "central", "gate-add", "s1", "east", "--config", config, "--passwd", passwd, "--acl", acl
    )
    assert_private(db, passwd, acl)
    port = tomllib.loads(config.read_text())["http"]["port"]
    spawn("central", "serve", "--config", config, "--log-level", "WARNING")
    wait_http(port)
    assert_private(db, *(Path(f"{db}{side}") for side in SIDE_FILES))


def test_gate_database_and_snapshots_are_private(
    tmp_path: Path, spawn: Callable[..., None]
) -> None:
    feed = tmp_path / "feed"
    feed.mkdir()
    segno.make("NOT A PASS", micro=False).save(str(feed / "code.png"), scale=6, border=4)
    menjin("keys", "init", tmp_path / "keys")
    config = tmp_path / "gate.toml"
    menjin("gate", "init", "--site", "s1", "--gate", "east", "--keys", tmp_path / "keys",
           "--out", config)  # fmt: skip
    sections = tomllib.loads(config.read_text())
    trusted = sections.pop("keys")["trusted"]
    sections["cache"] = {"path": "data/gate.db"}
    sections["reader"] = {"kind": "camera", "source": str(feed)}
    sections["agent"] = {"snapshot_dir": "data/faces/east"}
    config.write_text(render_toml(sections, {"keys.trusted": trusted}))
    spawn("gate", "run", "--config", config)
    faces = tmp_path / "data" / "faces" / "east"
    wait_for(lambda: faces.is_dir() and any(faces.glob("*.jpg")), 20, "a snapshot of the denial")
    data = tmp_path / "data"
    db = data / "gate.db"
    assert_private(data, faces.parent, faces, *faces.glob("*.jpg"), db)
    assert_private(*(Path(f"{db}{side}") for side in SIDE_FILES))


def test_gate_snapshots_expire_after_their_max_age(tmp_path: Path) -> None:
    import os

    import numpy as np

    from edge.snapshots import SnapshotStore

    store = SnapshotStore(tmp_path / "faces", max_age_s=7 * 86_400)
    names = [store.request(np.full((48, 64, 3), shade, np.uint8)) for shade in (10, 200)]
    wait_for(lambda: store.saved == 2, what="two snapshots written")
    old, new = (store.path(str(n)) for n in names)
    eight_days_ago = old.stat().st_mtime - 8 * 86_400
    os.utime(old, (eight_days_ago, eight_days_ago))
    assert store.prune_expired() == 1
    assert (old.exists(), new.exists()) == (False, True)
    assert_private(store.directory, new)
    store.close()


def test_tightening_survives_a_side_file_that_another_process_removes(tmp_path: Path) -> None:
    # A process closing the database deletes its -wal between our look and our chmod (a CI run
    # saw a gate's second opener die of FileNotFoundError there).
    db = tmp_path / "g.db"
    wal = Path(f"{db}-wal")
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            wal.touch()
            wal.unlink(missing_ok=True)

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _ in range(3000):
            private_sqlite(db)
    finally:
        stop.set()
        worker.join()
    assert mode(db) == 0o600
