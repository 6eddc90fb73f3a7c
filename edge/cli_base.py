"""What every `menjin gate` verb shares: loading the config, opening the store, assembling."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edge.assemble import Gate, assemble_gate, open_store
from edge.cache import CacheError, GateCache
from edge.config import GateSettings, load_gate_settings
from edge.gate import DeviceFactories
from protocol.settings_file import ConfigError

ConfigOpt = Annotated[Path, typer.Option("--config", help="Gate config TOML.")]


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def load_config(config: Path) -> GateSettings:
    try:
        return load_gate_settings(config)
    except ConfigError as exc:
        raise fail(str(exc)) from exc


def open_cache(settings: GateSettings) -> GateCache:
    try:
        return open_store(settings)
    except CacheError as exc:
        raise fail(str(exc)) from exc


def assemble(settings: GateSettings, devices: DeviceFactories | None = None, **kw: Any) -> Gate:
    """The gate as `gate run` builds it; a CLI error instead of a traceback if it cannot be."""
    try:
        return assemble_gate(settings, devices, **kw)
    except CacheError as exc:
        raise fail(str(exc)) from exc
