"""The ``carelens`` command loads only the capability of the command it runs."""

from __future__ import annotations

import subprocess
import sys

from typer.main import get_command

from carelens import cli


def test_command_homes_are_where_each_command_is_registered() -> None:
    registered = {}
    for module in cli.CAPABILITIES:
        for name in get_command(cli.build_app((module,))).commands:  # type: ignore[attr-defined]
            registered[name] = module
    assert registered == cli.COMMAND_HOMES
    assert set(get_command(cli.app).commands) == set(cli.COMMAND_HOMES)  # type: ignore[attr-defined]


def test_a_command_imports_only_its_own_capability() -> None:
    code = (
        "import sys; sys.argv = ['carelens', 'deid', '--help']\n"
        "from carelens.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.endswith('.cli') and m.startswith('carelens.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "de-identif" in done.stdout.lower()
    assert done.stdout.strip().splitlines()[-1] == "['carelens.cli', 'carelens.privacy.cli']"


def test_help_and_unknown_commands_get_every_command() -> None:
    help_text = subprocess.run([sys.executable, "-m", "carelens.cli", "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0
    assert all(name in help_text.stdout for name in cli.COMMAND_HOMES)
    typo = subprocess.run([sys.executable, "-m", "carelens.cli", "deidd"], capture_output=True, text=True)
    assert typo.returncode == 2 and "No such command" in typo.stderr
    version = subprocess.run([sys.executable, "-m", "carelens.cli", "--version"], capture_output=True, text=True)
    assert version.stdout.startswith("carelens ")


def test_help_off_a_terminal_is_plain_text() -> None:
    """No Rich markup escapes ("\\[required]") nor ANSI codes when the output is not a terminal."""
    shown = subprocess.run(
        [sys.executable, "-m", "carelens.cli", "deid", "text", "--help"], capture_output=True, text=True
    )
    assert shown.returncode == 0
    assert "[required]" in shown.stdout and "\\[" not in shown.stdout and "\x1b[" not in shown.stdout
