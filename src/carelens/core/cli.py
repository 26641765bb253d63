"""Command-line command of carelens.core: ``carelens settings``."""

from __future__ import annotations

import typer

from carelens.core.options import format_option
from carelens.core.output import emit_json


def settings_command(
    fmt: str = format_option("json", ("json", "markdown"), "json (the values now in force) or markdown (the table)."),
) -> None:
    """Every CARELENS_* setting: its value now (json, the secret masked) or the documentation table
    (markdown, as in the README)."""
    from carelens.core.settings import load_settings, public_settings, settings_table

    if fmt == "markdown":
        typer.echo(settings_table(), nl=False)
        return
    emit_json({"settings": public_settings(load_settings())})


def register(app: typer.Typer) -> None:
    app.command("settings")(settings_command)
