"""Command-line commands of carelens.models (registered on the main app by carelens.cli)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the main app."""
