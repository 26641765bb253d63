"""Fixtures shared by every test package."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from carelens.core.config import shared_data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The public data in ``../shared/data``; tests that need it skip when it is absent."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("shared data not found (set CARELENS_SHARED_DATA or place it at ../shared/data)")
    return path


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh carelens store (and SQLite app database inside it) for one test."""
    root = tmp_path / "store"
    monkeypatch.setenv("CARELENS_STORE", str(root))
    monkeypatch.delenv("CARELENS_DB_URL", raising=False)
    return root


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of the test PostgreSQL database (``CARELENS_TEST_PG_URL``; ``make test`` starts one).

    In CI it is always set: a missing server there is a failure, not a skip.
    """
    url = os.environ.get("CARELENS_TEST_PG_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CARELENS_TEST_PG_URL is not set in CI: scripts/postgres.sh did not run")
        pytest.skip("no PostgreSQL: set CARELENS_TEST_PG_URL (make test starts a local server)")
    return url


@pytest.fixture
def run_cli(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str, str]]:
    """Run ``carelens ARGS`` in this process; returns (exit code, stdout, stderr) of that run."""
    from carelens.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        capfd.readouterr()
        monkeypatch.setattr(sys, "argv", ["carelens", *args])
        try:
            main()
            code = 0
        except SystemExit as stop:
            code = int(stop.code or 0)
        out, err = capfd.readouterr()
        return code, out, err

    return run
