"""`menjin keys ...` and `menjin pass ...`: the office's side of the pass, from the command line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from protocol.epass import (
    HolderKind,
    PassData,
    PassTooLargeError,
    encode_pass,
    mask_name,
    parse_hours,
    parse_weekdays,
)
from protocol.keyfiles import KeyFileError, init_key_dir, load_signing_key
from protocol.timeparse import parse_when

keys_app = typer.Typer(help="Signing keys for passes.", no_args_is_help=True)
pass_app = typer.Typer(help="Issue electronic passes.", no_args_is_help=True)


def fail(message: str) -> typer.Exit:
    """Print a usage/config error and return the exit (code 2) to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@keys_app.command("init")
def keys_init(
    directory: Annotated[Path, typer.Argument(help="Directory for the key pair.")],
) -> None:
    """Create a new signing key pair in DIR and print its key id."""
    try:
        typer.echo(init_key_dir(directory))
    except (KeyFileError, OSError) as exc:
        raise fail(str(exc)) from exc


@pass_app.command("issue")
def pass_issue(
    keys: Annotated[Path, typer.Option(help="Key directory made by `menjin keys init`.")],
    site: Annotated[str, typer.Option(help="Compound (site) id.")],
    holder: Annotated[
        str, typer.Option(help="Holder's name; only a masked form goes in the pass.")
    ],
    kind: Annotated[HolderKind, typer.Option(help="Holder kind.")],
    valid_from: Annotated[str, typer.Option(help="ISO 8601 start; no offset means --timezone.")],
    valid_until: Annotated[str, typer.Option(help="ISO 8601 end (exclusive).")],
    gates: Annotated[str, typer.Option(help="Comma-separated gate ids; empty for all.")] = "",
    hours: Annotated[str | None, typer.Option(help="Daily hours HH:MM-HH:MM.")] = None,
    days: Annotated[str, typer.Option(help="Weekdays, e.g. mon,tue or mon-fri.")] = "",
    max_uses: Annotated[int, typer.Option(help="Maximum uses per gate; 0 unlimited.")] = 0,
    qr: Annotated[
        Path | None, typer.Option(help="Write the QR code to FILE.png or FILE.svg.")
    ] = None,
    timezone: Annotated[str, typer.Option(help="Time zone for times without an offset.")] = (
        "Asia/Shanghai"
    ),
) -> None:
    """Sign a pass and print its text on one line."""
    try:
        tz = ZoneInfo(timezone)
        data = PassData(
            pass_id=os.urandom(8),
            site=site,
            kind=kind,
            valid_from=int(parse_when(valid_from, tz).timestamp()),
            valid_until=int(parse_when(valid_until, tz).timestamp()),
            display_name=mask_name(holder),
            gates=tuple(g.strip() for g in gates.split(",") if g.strip()),
            hours=parse_hours(hours) if hours else None,
            weekdays=parse_weekdays(days),
            max_uses=max_uses,
        )
        text = encode_pass(data, load_signing_key(keys))
    except (KeyFileError, PassTooLargeError, ValueError) as exc:
        raise fail(str(exc)) from exc
    if qr is not None:
        write_qr(text, qr)
    typer.echo(text)


def write_qr(text: str, path: Path) -> None:
    """Write the pass as a QR image; the format follows the file suffix (.png or .svg)."""
    import segno

    if path.suffix.lower() not in (".png", ".svg"):
        raise fail(f"--qr must end in .png or .svg, not {path.suffix or 'nothing'}")
    segno.make(text, error="m", micro=False).save(str(path), scale=8, border=4)
