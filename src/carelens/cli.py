"""The ``carelens`` command: one Typer app; each capability registers its own commands.

Each package's ``cli`` module has ``register(app)``; heavy imports (torch, spaCy, ...) stay
inside the command functions so that ``carelens --help`` and light commands start fast.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from carelens import __version__
from carelens.core.errors import CarelensError

app = typer.Typer(
    name="carelens",
    help="Clinical AI platform: ingest, de-identify, summarise, read images and genomes, decide.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

CAPABILITIES = (
    "carelens.demo.cli",
    "carelens.ingest.cli",
    "carelens.store.cli",
    "carelens.privacy.cli",
    "carelens.record.cli",
    "carelens.imaging.cli",
    "carelens.genomics.cli",
    "carelens.models.cli",
    "carelens.network.cli",
    "carelens.server.cli",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"carelens {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Clinical AI platform: ingest, de-identify, summarise, read images and genomes, decide."""


for _module in CAPABILITIES:
    importlib.import_module(_module).register(app)


def main() -> None:
    """Entry point: run the app; errors become one line on stderr and an exit code.

    Unexpected exceptions print only their type (their message could quote patient data);
    ``CARELENS_DEBUG=1`` shows the traceback.
    """
    try:
        app()
    except CarelensError as err:
        typer.echo(f"error: {err.reason}", err=True)
        sys.exit(err.exit_code)
    except Exception as err:  # last line of defence against PHI in tracebacks
        if os.environ.get("CARELENS_DEBUG") == "1":
            raise
        typer.echo(f"error: internal error ({type(err).__name__}); rerun with CARELENS_DEBUG=1 for details", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
