"""`menjin gate lockdown|release on|off`: a guard's local override at a gate with no network.

Written to the gate's store and journalled (so central learns of it when the gate reconnects);
a running agent picks it up within a fraction of a second, a stopped one when it starts.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from edge.cli_base import ConfigOpt, assemble, load_config
from protocol.messages import EventType
from protocol.policy import LockdownMode


class Switch(StrEnum):
    ON = "on"
    OFF = "off"


def _override(config: Path, event: EventType, on: bool, **changes: Any) -> None:
    """Change the gate's local override, journal it, and print the policy now in force."""
    gate = assemble(load_config(config), uplink=False)
    try:
        keeper = gate.agent.policy
        ctx = keeper.set_local(keeper.local().model_copy(update=changes), event, on)
    finally:
        gate.close()
    lockdown = ctx.lockdown.value if ctx.lockdown else None
    out = {"lockdown": lockdown, "emergency_release": ctx.emergency_release}
    typer.echo(json.dumps(out | {"policy_version": ctx.policy_version}))


def gate_lockdown(
    state: Annotated[Switch, typer.Argument(help="on: start a local lockdown; off: end it.")],
    config: ConfigOpt,
    mode: Annotated[LockdownMode, typer.Option(help="Who still passes.")] = (
        LockdownMode.RESIDENTS_ONLY
    ),
    reason: Annotated[str, typer.Option(help="Why, for the record.")] = "",
) -> None:
    """Start or end a local lockdown at this gate (central's own lockdowns end centrally)."""
    on = state is Switch.ON
    _override(config, EventType.LOCKDOWN, on, lockdown=mode if on else None, reason=reason[:200])


def gate_release(
    state: Annotated[Switch, typer.Argument(help="on: hold the door open; off: lock it again.")],
    config: ConfigOpt,
    reason: Annotated[str, typer.Option(help="Why (fire, evacuation), for the record.")] = "",
) -> None:
    """Emergency release: the running agent holds the relay open until `release off`."""
    on = state is Switch.ON
    _override(config, EventType.EMERGENCY_RELEASE, on, emergency_release=on, reason=reason[:200])
