"""The command line: every command documents itself; errors are one line without tracebacks."""

from __future__ import annotations

import click
import pytest
import typer
from typer.testing import CliRunner

from carelens.cli import app


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        found.append(path)
        if isinstance(command, click.Group):
            found += _commands(command, path)
    return found


COMMANDS = _commands(typer.main.get_command(app))  # type: ignore[arg-type]


def test_root_help_lists_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("carelens ")


def test_bad_input_is_one_line_without_traceback(tmp_path) -> None:
    import subprocess
    import sys

    missing = tmp_path / "no-such-bundle.json"
    proc = subprocess.run(
        [sys.executable, "-m", "carelens.cli", "summarize", str(missing)], capture_output=True, text=True, check=False
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
