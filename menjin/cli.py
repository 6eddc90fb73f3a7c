"""Root of the `menjin` command; each group is imported only when it is the one being run.

That keeps `menjin gate ...` working on a gate box that lacks central's dependencies.
"""

from __future__ import annotations

import errno
import importlib
import sys
from typing import Annotated

import typer

from protocol.settings_file import StartupError

# group name -> (module, attribute, help)
GROUPS: dict[str, tuple[str, str, str]] = {
    "keys": ("menjin.cli_passes", "keys_app", "Signing keys for passes."),
    "pass": ("menjin.cli_passes", "pass_app", "Issue electronic passes."),
    "gate": ("edge.cli", "gate_app", "Configure and run a gate; decide offline."),
    "qr": ("edge.cli_qr", "qr_app", "Decode QR codes from image files."),
    "central": ("central.cli", "central_app", "Run and administer the central aggregator."),
    "demo": ("menjin.demo", "demo_app", "Run the end-to-end demo on embedded defaults."),
    "sim": ("menjin.cli_sim", "sim_app", "Simulate a district of gates (load and chaos tests)."),
}


def build_app(requested: str | None) -> typer.Typer:
    """The root app with the requested group loaded and the others as lightweight stubs."""
    app = typer.Typer(
        help="menjin (门禁): access control for residential compounds.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def root(
        debug: Annotated[
            bool, typer.Option("--debug", help="Show the traceback when a command fails.")
        ] = False,
    ) -> None:
        """menjin (门禁): access control for residential compounds."""

    for name, (module, attr, help_text) in GROUPS.items():
        if name == requested:
            group = getattr(importlib.import_module(module), attr)
        else:
            group = typer.Typer(help=help_text)
        app.add_typer(group, name=name, help=help_text)
    return app


def describe(exc: BaseException) -> str:
    """One sentence for an error a command could not start or finish with."""
    if isinstance(exc, StartupError):
        return str(exc)
    sa_exc = sys.modules.get("sqlalchemy.exc")  # loaded only by commands that use a database
    if sa_exc is not None and isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        raw = str(exc.orig or exc)
        first = next((p.strip() for p in raw.splitlines() if p.strip()), raw)
        return f"the database is unreachable or refused the login: {first} (check [database] url)"
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return (
            f"an address is already in use: {exc.strerror} (stop what holds it, or change the port)"
        )
    first = next((p for p in str(exc).splitlines() if p.strip()), "")
    return f"{type(exc).__name__}: {first} (run menjin --debug ... for the traceback)"


def main() -> None:
    argv = sys.argv[1:]
    requested = next((a for a in argv if not a.startswith("-")), None)
    debug = "--debug" in (argv[: argv.index(requested)] if requested else argv)
    try:
        build_app(requested)(prog_name="menjin")
    except Exception as exc:
        if debug:
            raise
        typer.echo(f"error: {describe(exc)}", err=True)
        sys.exit(2)
