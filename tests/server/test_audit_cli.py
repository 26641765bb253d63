"""``carelens audit checkpoint / verify --anchor / export`` and ``users passwd / unlock`` as an
operator runs them; passwords are read without echo at a terminal."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from carelens.server import cli as server_cli
from carelens.store.appdb import dispose_all
from tests.server.test_cli import carelens

PASSWORD = "a long password"


@pytest.mark.slow
def test_checkpoint_anchor_and_wipe_detection(tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert carelens(store, "users", "add", "ada", "--role", "admin", stdin=PASSWORD + "\n").returncode == 0
    cp = carelens(store, "audit", "checkpoint", "--out", str(tmp_path / "anchor.json"))
    assert cp.returncode == 0, cp.stderr
    checkpoint = json.loads(cp.stdout)
    assert checkpoint["last_id"] == 1 and len(checkpoint["signature"]) == 128
    assert json.loads((tmp_path / "anchor.json").read_text()) == checkpoint
    ok = carelens(store, "audit", "verify", "--anchor", str(tmp_path / "anchor.json"))
    assert ok.returncode == 0 and json.loads(ok.stdout)["checkpoints"] == 3  # head file, saved, anchor

    engine = create_engine(f"sqlite:///{store / 'app.sqlite'}")
    with engine.begin() as conn:  # the attacker wipes the log and its head
        conn.execute(text("DELETE FROM audit_log"))
        conn.execute(text("DELETE FROM audit_head"))
    engine.dispose()
    dispose_all()
    wiped = carelens(store, "audit", "verify")
    assert wiped.returncode == 1 and json.loads(wiped.stdout)["ok"] is False
    assert "wiped" in wiped.stderr


@pytest.mark.slow
def test_passwd_unlock_and_fhir_export(tmp_path: Path) -> None:
    from fhir.resources.R4B.bundle import Bundle

    store = tmp_path / "store"
    assert carelens(store, "users", "add", "ada", "--role", "clinician", stdin=PASSWORD + "\n").returncode == 0
    weak = carelens(store, "users", "passwd", "ada", stdin="12345678\n")
    assert weak.returncode == 1 and "at least 12" in weak.stderr
    changed = carelens(store, "users", "passwd", "ada", "--one-time", stdin="another long password\n")
    assert changed.returncode == 0 and json.loads(changed.stdout) == {"user": "ada", "sessions": 0, "one_time": True}
    unlock = carelens(store, "users", "unlock", "ada")
    assert unlock.returncode == 0 and json.loads(unlock.stdout) == {"user": "ada", "unlocked": 0}
    listed = json.loads(carelens(store, "users", "list").stdout)["users"]
    assert listed[0]["must_change_password"] is True and listed[0]["locked"] is False

    exported = carelens(store, "audit", "export", "--format", "fhir")
    assert exported.returncode == 0, exported.stderr
    bundle = json.loads(exported.stdout)
    Bundle.model_validate(bundle)  # valid FHIR R4
    events = [e["resource"] for e in bundle["entry"]]
    assert [e["entity"][-1]["name"] for e in events] == ["user.add", "user.password", "user.unlock"]
    assert all(e["meta"]["profile"][0].startswith("https://profiles.ihe.net/ITI/BALP/") for e in events)
    assert events[0]["action"] == "U" and events[0]["agent"][0]["who"]["identifier"]["value"] == "cli"
    assert carelens(store, "audit", "export", "--format", "xml").returncode == 2


def test_passwords_are_read_without_echo_at_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal("typed in the clear\n"))
    monkeypatch.setattr("getpass.getpass", lambda prompt: asked.append(prompt) or "from getpass 123")
    assert server_cli._read_password() == "from getpass 123"
    assert asked == ["password: ", "password again: "]


def test_passwords_come_from_stdin_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("piped password\n"))
    assert server_cli._read_password() == "piped password"


def test_summarize_of_a_record_is_audited_with_the_os_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from carelens.cli import app
    from carelens.store import appdb
    from tests.server.fixture_store import PID, write_store

    source = write_store(tmp_path / "source")
    store = tmp_path / "store"
    store.mkdir()
    monkeypatch.setenv("CARELENS_STORE", str(store))
    monkeypatch.delenv("CARELENS_DB_URL", raising=False)
    result = CliRunner().invoke(
        app, ["summarize", str(source / "fhir" / "bundle.json"), "--patient", PID, "--no-notes"]
    )
    assert result.exit_code == 0, result.output
    (row,) = [e for e in appdb.audit.events(appdb.get_engine(f"sqlite:///{store / 'app.sqlite'}"))]
    assert (row.actor, row.action, row.patient_id) == ("cli", "cli.summarize", PID)
    assert json.loads(row.detail)["from"] == "file" and json.loads(row.detail)["os_user"]
    dispose_all()
