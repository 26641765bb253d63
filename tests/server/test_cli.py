"""``carelens users add/token`` and ``carelens audit verify`` as a user runs them."""

from __future__ import annotations

import json
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
    assert json.loads(added.stdout) == {"user": "dr.ada", "role": "clinician", "one_time": False}
    assert "a long password" not in added.stdout + added.stderr

    dup = carelens(store, "users", "add", "dr.ada", "--role", "clinician", stdin="a long password\n")
    assert dup.returncode == 1 and dup.stderr.strip() == "error: user dr.ada already exists"
    bad = carelens(store, "users", "add", "rex", "--role", "surgeon", stdin="a long password\n")
    assert bad.returncode == 1 and "role must be one of" in bad.stderr
    empty = carelens(store, "users", "add", "rex", "--role", "researcher")
    assert empty.returncode == 1 and "no password given" in empty.stderr

    token = carelens(store, "users", "token", "dr.ada")
    assert token.returncode == 0 and token.stdout.strip().startswith("cl_")
    assert carelens(store, "users", "token", "nobody").returncode == 1

    ok = carelens(store, "audit", "verify")
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"] is True
    assert json.loads(ok.stdout)["rows"] == 2  # user.add, token.issue
    text_ok = carelens(store, "audit", "verify", "--format", "text")
    assert text_ok.returncode == 0 and "intact: 2 rows" in text_ok.stdout

    engine = create_engine(f"sqlite:///{store / 'app.sqlite'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET detail = '{}' WHERE id = 2"))
    engine.dispose()
    dispose_all()
    broken = carelens(store, "audit", "verify")
    assert broken.returncode == 1
    assert broken.stderr.strip() == "error: audit chain broken at row 2: row 2 was altered (seal mismatch)"
    assert json.loads(broken.stdout)["ok"] is False and json.loads(broken.stdout)["bad_row"] == 2

    engine = create_engine(f"sqlite:///{store / 'app.sqlite'}")
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE id = 1"))
    engine.dispose()
    deleted = carelens(store, "audit", "verify")
    assert deleted.returncode == 1 and "row 1 is missing (deleted)" in deleted.stderr


def test_every_server_command_has_help() -> None:
    commands = ("add", "passwd", "token", "list", "disable", "enable", "unlock", "revoke-tokens")
    audits = (["audit", "verify"], ["audit", "checkpoint"], ["audit", "export"])
    for args in (*(["users", c] for c in commands), ["serve"], *audits):
        r = subprocess.run([sys.executable, "-m", "carelens.cli", *args, "--help"], capture_output=True, text=True)
        assert r.returncode == 0 and "Usage" in r.stdout, args


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_writes_the_access_log_in_every_process(tmp_path: Path, workers: str) -> None:
    """One PHI-free line a request on stderr, also from the worker processes of ``--workers 2``."""
    import socket
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CARELENS_STORE": str(tmp_path / "store")}
    env.pop("CARELENS_DB_URL", None)
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        cmd = [sys.executable, "-m", "carelens.cli", "serve", "--port", str(port), "--workers", workers]
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline, answered = time.monotonic() + 90, 0
            while time.monotonic() < deadline and answered < 4:
                try:
                    answered += httpx.get(f"http://127.0.0.1:{port}/patients/p-123", timeout=2).status_code > 0
                except httpx.HTTPError:
                    time.sleep(0.3)
            assert answered == 4, "carelens serve did not answer within 90 s"
            time.sleep(0.5)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    lines = [line for line in log.read_text().splitlines() if "carelens.server.access" in line]
    assert len(lines) >= 4, log.read_text()[-2000:]
    assert all("GET /patients/{id}" in line and "p-123" not in line for line in lines)
