"""`menjin demo`: an end-to-end walk through the offline gate on embedded defaults."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

demo_app = typer.Typer(help="Run the end-to-end demo on embedded defaults.")


def _menjin(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "menjin", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603


@demo_app.callback(invoke_without_command=True)
def demo(
    data_dir: Annotated[
        Path | None, typer.Option(help="Where to keep keys, config and cache (default: temp).")
    ] = None,
) -> None:
    """Issue passes, set up a gate, and present good and bad passes to it, all offline."""
    root = data_dir or Path(tempfile.mkdtemp(prefix="menjin-demo-"))
    keys = root / "keys"
    config = root / "east.toml"
    now = datetime.now(UTC).replace(microsecond=0)
    steps: list[tuple[str, list[str]]] = []

    def run(*args: str) -> str:
        result = _menjin(*args)
        if result.returncode == 2:
            typer.echo(result.stderr, err=True)
            raise typer.Exit(2)
        return result.stdout.strip()

    if not (keys / "signing.key").exists():
        typer.echo(f"key id: {run('keys', 'init', str(keys))}")
    run("gate", "init", "--site", "hutong-12", "--gate", "east", "--keys", str(keys),
        "--direction", "in", "--temperature", "required", "--out", str(config))  # fmt: skip

    def issue(holder: str, kind: str, start: datetime, end: datetime, *extra: str) -> str:
        return run("pass", "issue", "--keys", str(keys), "--site", "hutong-12",
                   "--holder", holder, "--kind", kind, "--valid-from", start.isoformat(),
                   "--valid-until", end.isoformat(), *extra)  # fmt: skip

    year = timedelta(days=365)
    resident = issue("张三华", "resident", now - year, now + year)
    visitor = issue("李四", "visitor", now, now + timedelta(hours=4), "--gates", "east")
    expired = issue("王五", "tenant", now - 2 * year, now - year)
    revoked = issue("赵六", "delivery", now - year, now + year)
    revoked_id = json.loads(run("gate", "present", revoked, "--config", str(config),
                                "--temp", "36.5", "--dry-run"))["pass_id"]  # fmt: skip
    run("gate", "revoke", revoked_id, "--config", str(config), "--reason", "lost phone")
    steps = [
        ("resident, 36.6 °C", [resident, "--temp", "36.6"]),
        ("visitor, 36.4 °C", [visitor, "--temp", "36.4"]),
        ("expired pass", [expired, "--temp", "36.5"]),
        ("revoked pass", [revoked, "--temp", "36.5"]),
        ("resident with fever", [resident, "--temp", "38.2"]),
        ("garbage QR", ["HELLO WORLD", "--temp", "36.5"]),
    ]
    typer.echo(f"gate config: {config}")
    for label, args in steps:
        result = _menjin("gate", "present", *args, "--config", str(config))
        out = json.loads(result.stdout)
        verdict = "GRANT" if out["granted"] else "DENY "
        typer.echo(f"  {verdict} {out['reason']:<15} seq={out['seq']:<3} {label}")
    typer.echo(f"journal and cache: {config.parent}")
