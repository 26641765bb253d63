"""The ``carelens`` command: one Typer app; each capability registers its own commands.

Each package's ``cli`` module has ``register(app)``; heavy imports (torch, spaCy, ...) stay
inside the command functions so that ``carelens --help`` and light commands start fast.
"""

from __future__ import annotations

import importlib
import sys
from functools import lru_cache

import typer

from carelens import __version__
from carelens.core.errors import CarelensError
from carelens.core.output import colour_allowed
from carelens.core.settings import load_settings

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
    "carelens.core.cli",
    "carelens.run.cli",
)

# The capability that registers each top-level command: the ``carelens`` command imports only that
# one (a capability's imports, not all ten: ~0.5 s less at every start); any other first word (none,
# --help, a typo) gets every command. tests/test_cli.py checks this table against a full registration.
COMMAND_HOMES = {
    "demo": "carelens.demo.cli",
    "ingest": "carelens.ingest.cli",
    "sql": "carelens.store.cli",
    "deid": "carelens.privacy.cli",
    "summarize": "carelens.record.cli",
    "ask": "carelens.record.cli",
    "image": "carelens.imaging.cli",
    "data": "carelens.imaging.cli",
    "genome": "carelens.genomics.cli",
    "models": "carelens.models.cli",
    "hub": "carelens.network.cli",
    "node": "carelens.network.cli",
    "users": "carelens.server.cli",
    "audit": "carelens.server.cli",
    "serve": "carelens.server.cli",
    "settings": "carelens.core.cli",
    "run": "carelens.run.cli",
}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"carelens {__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Clinical AI platform: ingest, de-identify, summarise, read images and genomes, decide."""
    load_settings()  # every CARELENS_* variable checked before any command does work


def build_app(capabilities: tuple[str, ...] = CAPABILITIES) -> typer.Typer:
    """The Typer app with the commands of ``capabilities`` (all of them by default)."""
    if not colour_allowed():  # Typer escapes "[required]" for Rich even with no markup mode: plain Click help
        typer.core.HAS_RICH = False
    app = typer.Typer(
        name="carelens",
        help="Clinical AI platform: ingest, de-identify, summarise, read images and genomes, decide.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode="rich" if colour_allowed() else None,  # off a terminal: plain Click errors, no ANSI
    )
    app.callback()(_root)
    for module in capabilities:
        importlib.import_module(module).register(app)
    return app


@lru_cache(maxsize=1)
def _full_app() -> typer.Typer:
    return build_app()


def __getattr__(name: str) -> typer.Typer:
    if name == "app":  # ``from carelens.cli import app``: every command
        return _full_app()
    raise AttributeError(f"module 'carelens.cli' has no attribute {name!r}")


def _app_for(args: list[str]) -> typer.Typer:
    command = next((a for a in args if not a.startswith("-")), None)
    if command is None and "--version" in args:
        return build_app(())
    home = COMMAND_HOMES.get(command or "")
    return build_app((home,)) if home else _full_app()


def main() -> None:
    """Entry point: run the app; errors become one line on stderr and an exit code.

    Files and folders are created owner-only (umask 077). Unexpected exceptions print only
    their type (their message could quote patient data);
    ``CARELENS_DEBUG=1`` shows the traceback.
    """
    from carelens.store.permissions import private_umask

    private_umask()  # the store holds PHI and credentials: everything made from here is owner-only
    try:
        _app_for(sys.argv[1:])()
    except CarelensError as err:
        typer.echo(f"error: {err.reason}", err=True)
        sys.exit(err.exit_code)
    except Exception as err:  # last line of defence against PHI in tracebacks
        if _debug():
            raise
        typer.echo(f"error: internal error ({type(err).__name__}); rerun with CARELENS_DEBUG=1 for details", err=True)
        sys.exit(1)


def _debug() -> bool:
    try:
        return load_settings().debug
    except CarelensError:
        return False


if __name__ == "__main__":
    main()
