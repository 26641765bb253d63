"""The command line checks its options before any work, speaks JSON where the README says so,
and writes no colour codes off a terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import orjson
import typer
from typer.testing import CliRunner

from carelens.cli import app
from carelens.core.output import plain


def _commands(group: click.Command, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    if isinstance(group, click.Group):
        return [item for name, cmd in group.commands.items() for item in _commands(cmd, (*path, name))]
    return [(path, group)]


def test_every_format_option_is_checked_when_parsed() -> None:
    root = typer.main.get_command(app)
    formats = [
        (" ".join(path), param)
        for path, cmd in _commands(root)
        for param in cmd.params
        if "--format" in getattr(param, "opts", [])
    ]
    assert len(formats) >= 12
    unchecked = [name for name, param in formats if not isinstance(param.type, click.Choice)]
    assert unchecked == [], f"--format checked only after the work: {unchecked}"


def _carelens(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carelens.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_bad_format_fails_before_any_work(tmp_path: Path) -> None:
    # neither path exists: a check after parsing would complain about them, not the format
    res = _carelens("deid", "audit", str(tmp_path / "out"), "--source", str(tmp_path / "src"), "--format", "xml")
    assert res.returncode == 2 and "Invalid value for '--format': 'xml'" in res.stderr and res.stdout == ""


def test_no_colour_codes_off_a_terminal_even_when_forced(tmp_path: Path) -> None:
    res = _carelens("sql", env={"FORCE_COLOR": "1", "CARELENS_STORE": str(tmp_path)})
    assert res.returncode == 2 and "Missing argument" in res.stderr
    assert "\x1b" not in res.stderr and "╭" not in res.stderr  # plain Click errors, no rich box
    assert plain("\x1b[92mINFO \x1b[0m: ready\x1b[2K") == "INFO : ready"


def test_keygen_and_models_list_print_json(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CARELENS_STORE", str(tmp_path / "store"))
    res = CliRunner().invoke(app, ["deid", "keygen", str(tmp_path / "site.key")])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["path"] == str(tmp_path / "site.key") and len(data["fingerprint"]) >= 8
    assert (tmp_path / "site.key").read_text().strip() not in res.stdout  # never the secret itself
    listed = CliRunner().invoke(app, ["models", "list"])
    assert listed.exit_code == 0 and orjson.loads(listed.stdout) == {"models": []}
    text = CliRunner().invoke(app, ["deid", "keygen", str(tmp_path / "other.key"), "--format", "text"])
    assert text.stdout.startswith("wrote ")
