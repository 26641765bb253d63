"""Command-line options checked before any work: a choice is validated by Click when the command
line is parsed, so ``--format xml`` fails at once (exit 2), not after the work is done."""

from __future__ import annotations

from typing import Any

import click
import typer


def choice(default: str, name: str, choices: tuple[str, ...], help: str) -> Any:
    """A ``typer.Option`` taking one of ``choices`` (checked at parse time)."""
    return typer.Option(default, name, click_type=click.Choice(choices), help=help)


def format_option(default: str, choices: tuple[str, ...], help: str) -> Any:
    """The ``--format`` option of a command: one of ``choices``, checked at parse time."""
    return choice(default, "--format", choices, help)


def store_option() -> Any:
    """The ``--store`` option: the store folder (default: ``CARELENS_STORE`` or ./carelens-data)."""
    return typer.Option(None, "--store", help="Store folder (default: CARELENS_STORE or ./carelens-data).")
