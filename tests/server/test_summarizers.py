"""CARELENS_SUMMARIZER names a registered summariser: known names load, unknown ones are refused
when the settings are read (one line), and nothing is imported from a module path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from carelens.core.errors import InputError
from carelens.server import ServerSettings, summarizers
from carelens.server.data import SummaryUnavailable, load_summarizer


def test_the_builtin_and_registered_summarizers_load(tmp_path: Path) -> None:
    from carelens.record import summarize

    assert summarizers.load("record") is summarize
    assert "record" in summarizers.names() and "fixture" in summarizers.names()  # tests.server.conftest's
    assert ServerSettings(store=tmp_path, db_url="sqlite://", summarizer="fixture").summarizer == "fixture"


def test_an_unknown_name_is_refused_when_the_settings_are_read(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        ServerSettings(store=tmp_path, db_url="sqlite://", summarizer="carelens.record:summarize")
    assert "CARELENS_SUMMARIZER" in str(err.value) and "record" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(SummaryUnavailable):
        load_summarizer("os:system")  # a module path is not a name


def test_serve_with_an_unknown_summarizer_exits_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "CARELENS_STORE": str(tmp_path / "store"), "CARELENS_SUMMARIZER": "nope"}
    env.pop("CARELENS_DB_URL", None)
    done = subprocess.run([sys.executable, "-m", "carelens.cli", "serve", "--port", "1"], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "CARELENS_SUMMARIZER" in lines[0] and "nope" in lines[0]
