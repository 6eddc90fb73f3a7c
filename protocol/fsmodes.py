"""Files only their owner may read (0600) in directories only their owner may enter (0700).

Databases, keys, broker credentials and snapshots hold personal data or secrets, so the modes
are set explicitly instead of trusting the umask (under umask 000 everything would be 0666).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def private_dir(path: Path, *, tighten: bool = False) -> Path:
    """Create path and any missing parents as 0700; with tighten, an existing path too.

    Without tighten an existing directory is left alone: it may be shared (/etc/menjin, a home
    directory) and not ours to close.
    """
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=DIR_MODE, exist_ok=True)  # never wider than 0700, even briefly
        os.chmod(directory, DIR_MODE)  # ...but the umask may have narrowed it: make it exact
    if tighten:
        os.chmod(path, DIR_MODE)
    return path


def write_private(path: Path, data: bytes | str) -> None:
    """Write data to path as a 0600 file; never readable by others, not even for a moment."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fd, FILE_MODE)  # an existing file keeps its old mode through O_CREAT
        fh.write(data.encode() if isinstance(data, str) else data)


def private_sqlite(path: Path) -> Path:
    """Make a SQLite file 0600 before it is opened, so its -wal and -shm are created 0600 too.

    SQLite gives those the main file's mode; an existing database is tightened with them.
    """
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    for side in ("", *SQLITE_SIDE_FILES):
        # absent, or another process closing the database just removed its -wal
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{side}", FILE_MODE)
    return path
