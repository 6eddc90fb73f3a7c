"""Root of the `menjin` command; each group is imported only when it is the one being run.

That keeps `menjin gate ...` working on a gate box that lacks central's dependencies.
"""

from __future__ import annotations

import importlib
import sys

import typer

# group name -> (module, attribute, help)
GROUPS: dict[str, tuple[str, str, str]] = {
    "keys": ("menjin.cli_passes", "keys_app", "Signing keys for passes."),
    "pass": ("menjin.cli_passes", "pass_app", "Issue electronic passes."),
    "gate": ("edge.cli", "gate_app", "Configure and run a gate; decide offline."),
    "qr": ("edge.cli_qr", "qr_app", "Decode QR codes from image files."),
    "central": ("central.cli", "central_app", "Run and administer the central aggregator."),
    "demo": ("menjin.demo", "demo_app", "Run the end-to-end demo on embedded defaults."),
}


def build_app(requested: str | None) -> typer.Typer:
    """The root app with the requested group loaded and the others as lightweight stubs."""
    app = typer.Typer(
        help="menjin (门禁): access control for residential compounds.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
    )
    for name, (module, attr, help_text) in GROUPS.items():
        if name == requested:
            group = getattr(importlib.import_module(module), attr)
        else:
            group = typer.Typer(help=help_text)
        app.add_typer(group, name=name, help=help_text)
    return app


def main() -> None:
    requested = sys.argv[1] if len(sys.argv) > 1 else None
    build_app(requested)(prog_name="menjin")
