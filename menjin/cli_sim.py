"""`menjin sim`: a fleet of simulated gates (real journal, real bridge) and its provisioning."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from menjin.sim_fleet import Fleet, FleetSpec, dump

sim_app = typer.Typer(help="Simulate a district of gates against a real broker and central.")

Gates = Annotated[int, typer.Option("--gates", min=1, help="Number of simulated gates.")]
Site = Annotated[str, typer.Option("--site", help="Site id every simulated gate belongs to.")]
Seed = Annotated[
    str, typer.Option("--password-seed", help="Secret the gate passwords derive from.")
]
Workdir = Annotated[Path, typer.Option("--workdir", help="Where each gate's journal file lives.")]


def _spec(workdir: Path, broker: str, gates: int, site: str, seed: str, **kw: object) -> FleetSpec:
    urls = [u.strip() for u in broker.split(",") if u.strip()]
    if not urls:
        raise typer.BadParameter("give at least one broker URL", param_hint="--broker")
    return FleetSpec(workdir=workdir, urls=urls, gates=gates, site=site, password_seed=seed,
                     **kw)  # type: ignore[arg-type]  # fmt: skip


@sim_app.command("fleet")
def fleet(
    broker: Annotated[str, typer.Option("--broker", help="mqtt://host:port[,mqtt://...]")],
    workdir: Workdir = Path("sim-fleet"),
    gates: Gates = 10,
    rate: Annotated[float, typer.Option("--rate", help="Events per second per gate.")] = 1.0,
    events: Annotated[int, typer.Option("--events", help="Journal entries per gate.")] = 10,
    processes: Annotated[
        int,
        typer.Option("--processes", min=1, help="Worker processes (at least one per 1,000 gates)."),
    ] = 2,
    site: Site = "sim",
    seed: Seed = "menjin-sim",
    timeout: Annotated[float, typer.Option("--timeout", help="Give up after this long (s).")] = 300,
    per_gate: Annotated[
        Path | None, typer.Option("--per-gate", help="Write each gate's last report here.")
    ] = None,
    qos: Annotated[
        int, typer.Option("--qos", min=0, max=1, help="The gates' MQTT QoS (0 on NATS).")
    ] = 1,
) -> None:
    """Run N gates until every journal entry is acked; print totals as JSON lines."""
    spec = _spec(workdir, broker, gates, site, seed, rate=rate, events=events,
                 processes=processes, qos=qos)  # fmt: skip
    sim = Fleet(spec)
    started = time.monotonic()
    sim.start()
    drained = False
    try:
        while time.monotonic() - started < timeout:
            totals = sim.poll(1.0)
            typer.echo(dump(totals))
            if sim.holds("drained", totals):
                drained = True
                break
    finally:
        totals = sim.stop()
    totals |= {
        "summary": True,
        "drained": drained,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    typer.echo(dump(totals))
    if per_gate is not None:
        per_gate.write_text("".join(json.dumps(r) + "\n" for r in sim.gate_rows()))
    if not drained:
        raise typer.Exit(1)


@sim_app.command("provision")
def provision(
    gates: Gates = 10,
    site: Site = "sim",
    seed: Seed = "menjin-sim",
    database: Annotated[str, typer.Option("--database", help="Central's DB: register gates.")] = "",
    passwd: Annotated[
        Path | None, typer.Option("--passwd", help="Mosquitto password file.")
    ] = None,
    acl: Annotated[Path | None, typer.Option("--acl", help="Mosquitto ACL file.")] = None,
    nats_users: Annotated[
        Path | None, typer.Option("--nats-users", help="Write a NATS `users = [...]` include.")
    ] = None,
) -> None:
    """Give every simulated gate what a real one gets: a registration and broker credentials."""
    from menjin.sim_provision import provision_fleet

    spec = FleetSpec(workdir=Path("."), urls=["mqtt://unused"], gates=gates, site=site,
                     password_seed=seed)  # fmt: skip
    provision_fleet(spec, database, passwd, acl, nats_users)
    typer.echo(f"provisioned {gates} gates of site {site}")
