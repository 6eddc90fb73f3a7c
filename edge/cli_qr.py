"""`menjin qr`: decode QR codes in image files with the gate's own pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edge.devices.qr_decode import ImageReadError, decode_file

qr_app = typer.Typer(help="Decode pass QR codes in image files, as the gate camera would.")


@qr_app.callback()
def qr() -> None:
    """Decode pass QR codes in image files, as the gate camera would."""
    # A callback keeps `decode` a subcommand even while it is the only command.


@qr_app.command()
def decode(
    files: Annotated[list[Path], typer.Argument(help="Image files (PNG, JPEG, ...).")],
) -> None:
    """Print one JSON line per file: file, text (null when none decoded) and ms (decode time)."""
    for path in files:
        line: dict[str, object] = {"file": str(path)}
        try:
            text, ms = decode_file(path)
        except ImageReadError as exc:
            line.update(text=None, ms=None, error=str(exc))
        else:
            line.update(text=text, ms=round(ms, 3))
        typer.echo(json.dumps(line, ensure_ascii=False))
