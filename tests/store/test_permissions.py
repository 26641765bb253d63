"""The store is owner-only: everything a command makes (app database, audit keys, lake Parquet,
notes, sources, quarantine) is 0600 / 0700, and a store others can read is named at start-up.
The clinical-zone reads of the command line (``sql``) land in the audit log."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from carelens.store import appdb
from carelens.store.permissions import private_dir, store_warning, too_open, write_private
from tests.server.fixture_store import write_store
from tests.server.test_cli import carelens


@pytest.mark.slow
def test_commands_make_an_owner_only_store_and_audit_clinical_reads(tmp_path: Path) -> None:
    source = write_store(tmp_path / "source")
    os.chmod(tmp_path, 0o755)  # the store's parent may be open; the store itself must not be
    store = tmp_path / "store"
    ingest = carelens(store, "ingest", str(source / "fhir"))
    assert ingest.returncode in (0, 3), ingest.stderr
    query = "SELECT count(*) AS n FROM resources WHERE resource_type = 'Patient'"
    sql = carelens(store, "sql", query)
    assert sql.returncode == 0, sql.stderr
    made = [p for p in store.rglob("*")] + [store]
    assert any(p.suffix == ".parquet" for p in made) and (store / "app.sqlite").exists()
    loose = [f"{p} {stat.S_IMODE(p.stat().st_mode):04o}" for p in made if p.stat().st_mode & 0o077]
    assert not loose, loose
    assert store_warning(store) is None
    events = appdb.audit.events(appdb.get_engine(f"sqlite:///{store / 'app.sqlite'}"))
    (read,) = [e for e in events if e.action == "cli.sql"]
    detail = json.loads(read.detail)
    assert read.actor == "cli" and detail["zone"] == "clinical" and detail["rows"] == 1
    assert query not in read.detail and len(detail["query_sha256"]) == 64  # the query may quote PHI
    appdb.dispose_all()


def test_an_open_store_is_named_with_the_fix(tmp_path: Path) -> None:
    store = tmp_path / "store"
    private_dir(store / "lake")
    write_private(store / "app.sqlite", b"x")
    assert too_open(store) == [] and store_warning(store) is None
    (store / "app.sqlite").chmod(0o644)
    (store / "lake").chmod(0o755)
    found = dict(too_open(store))
    assert found == {store / "lake": 0o755, store / "app.sqlite": 0o644}
    warning = store_warning(store)
    assert warning is not None and "chmod -R go-rwx" in warning and "open to other users" in warning


def test_the_server_warns_at_start_about_an_open_store(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from carelens.server import ServerSettings, create_app

    store = write_store(tmp_path / "store")
    store.chmod(0o755)
    create_app(ServerSettings(store=store, db_url=f"sqlite:///{tmp_path / 'app.sqlite'}"))
    assert any("open to other users" in r.getMessage() for r in caplog.records)
    appdb.dispose_all()


def test_audit_key_and_head_are_owner_only_under_any_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        engine = appdb.get_engine(f"sqlite:///{tmp_path / 'db' / 'app.sqlite'}")
        with Session(engine) as s, s.begin():
            appdb.audit.append(s, "ada", "view")
    finally:
        os.umask(old)
    for name in ("audit.key", "audit-head.json"):
        assert stat.S_IMODE((tmp_path / "db" / name).stat().st_mode) == 0o600
    appdb.dispose_all()
