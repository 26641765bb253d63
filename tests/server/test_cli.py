"""``carelens users add/token`` and ``carelens audit verify`` as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from carelens.store.appdb import dispose_all


def carelens(store: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CARELENS_STORE": str(store)}
    env.pop("CARELENS_DB_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "carelens.cli", *args], input=stdin, capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.slow
def test_users_tokens_and_audit_verify(tmp_path: Path) -> None:
    store = tmp_path / "store"
    added = carelens(store, "users", "add", "dr.ada", "--role", "clinician", stdin="a long password\n")
    assert added.returncode == 0, added.stderr
    assert "a long password" not in added.stdout + added.stderr

    dup = carelens(store, "users", "add", "dr.ada", "--role", "clinician", stdin="a long password\n")
    assert dup.returncode == 1 and dup.stderr.strip() == "error: user dr.ada already exists"
    bad = carelens(store, "users", "add", "rex", "--role", "surgeon", stdin="a long password\n")
    assert bad.returncode == 1 and "role must be one of" in bad.stderr
    empty = carelens(store, "users", "add", "rex", "--role", "researcher")
    assert empty.returncode == 1 and "no password on stdin" in empty.stderr

    token = carelens(store, "users", "token", "dr.ada")
    assert token.returncode == 0 and token.stdout.strip().startswith("cl_")
    assert carelens(store, "users", "token", "nobody").returncode == 1

    ok = carelens(store, "audit", "verify")
    assert ok.returncode == 0 and "intact: 2 rows" in ok.stdout  # user.add, token.issue

    engine = create_engine(f"sqlite:///{store / 'app.sqlite'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET detail = '{}' WHERE id = 2"))
    engine.dispose()
    dispose_all()
    broken = carelens(store, "audit", "verify")
    assert broken.returncode == 1
    assert broken.stderr.strip() == "error: audit chain broken at row 2: row 2 was altered (hash mismatch)"

    engine = create_engine(f"sqlite:///{store / 'app.sqlite'}")
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE id = 1"))
    engine.dispose()
    deleted = carelens(store, "audit", "verify")
    assert deleted.returncode == 1 and "row 1 is missing (deleted)" in deleted.stderr


def test_every_server_command_has_help() -> None:
    commands = ("add", "token", "list", "disable", "enable", "revoke-tokens")
    for args in (*(["users", c] for c in commands), ["serve"], ["audit", "verify"]):
        r = subprocess.run([sys.executable, "-m", "carelens.cli", *args, "--help"], capture_output=True, text=True)
        assert r.returncode == 0 and "Usage" in r.stdout, args
