"""`menjin gate sounds`: make the default spoken prompts (install time) and list what exists."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edge.sounds import ensure_sounds, synthesizer


def gate_sounds(
    out: Annotated[Path, typer.Option(help="Directory for the <prompt>.wav files.")] = Path(
        "sounds"
    ),
    tones: Annotated[bool, typer.Option(help="Tones only, even where espeak-ng exists.")] = False,
) -> None:
    """Write every missing prompt WAV; files already there (the operator's own) are kept."""
    if not tones and synthesizer() is None:
        typer.echo("espeak-ng is not installed: writing tones (apt install espeak-ng for speech)")
    report = ensure_sounds(out, speech=not tones)
    typer.echo(
        f"{out}: {len(report.spoken)} spoken, {len(report.tones)} tones, "
        f"{len(report.kept)} kept as they were"
    )
