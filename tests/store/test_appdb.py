"""The app database on SQLite and PostgreSQL: migrations, users, tokens, sessions, audit chain."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session

from carelens.core.errors import InputError
from carelens.store import appdb
from carelens.store.appdb import audit
from tests.server.pg import scratch_db_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    pg = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    with scratch_db_url(request.param, tmp_path, pg) as url:
        yield url


def test_migrations_create_every_table_at_head(db_url: str) -> None:
    engine = appdb.get_engine(db_url)
    tables = set(inspect(engine).get_table_names())
    expected = {"users", "api_tokens", "sessions", "review_decisions", "signed_summaries", "audit_log", "cds_feedback"}
    assert expected <= tables
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0002"
    appdb.upgrade(engine)  # a second upgrade is a no-op
    assert appdb.get_engine(db_url) is engine


def test_users_passwords_are_hashed_and_checked(db_url: str) -> None:
    engine = appdb.get_engine(db_url)
    with Session(engine) as s, s.begin():
        appdb.add_user(s, "ada", "correct horse", "clinician")
    with Session(engine) as s:
        stored = s.scalar(text("SELECT password_hash FROM users WHERE username = 'ada'"))
        assert "correct horse" not in stored and stored.startswith("$argon2id$")
        assert appdb.authenticate(s, "ada", "correct horse").role == "clinician"
        assert appdb.authenticate(s, "ada", "wrong password") is None
        assert appdb.authenticate(s, "nobody", "correct horse") is None


@pytest.mark.parametrize(
    ("name", "password", "role", "reason"),
    [
        ("bad name!", "long enough pw", "clinician", "user name"),
        ("bob", "long enough pw", "surgeon", "role must be one of"),
        ("bob", "short", "admin", "at least 12"),
        ("bob", "12345678", "admin", "at least 12"),
        ("bob", " " * 12, "admin", "only spaces"),
        ("bob.the.builder", "bob.the.builder", "admin", "user name"),
        ("bob", "passwordpassword", "admin", "too common"),
        ("bob", "aaaaaaaaaaaaa", "admin", "too common"),
        ("bob", "x" * 129, "admin", "at most 128"),
    ],
)
def test_add_user_rejects_bad_input(db_url: str, name: str, password: str, role: str, reason: str) -> None:
    with Session(appdb.get_engine(db_url)) as s, pytest.raises(InputError, match=reason):
        appdb.add_user(s, name, password, role)


def test_duplicate_user_is_refused(db_url: str) -> None:
    engine = appdb.get_engine(db_url)
    with Session(engine) as s, s.begin():
        appdb.add_user(s, "ada", "correct horse", "admin")
    with Session(engine) as s, pytest.raises(InputError, match="already exists"):
        appdb.add_user(s, "ada", "another one here", "admin")


def test_tokens_are_stored_only_as_hashes(db_url: str) -> None:
    engine = appdb.get_engine(db_url)
    with Session(engine) as s, s.begin():
        user = appdb.add_user(s, "rex", "research password", "researcher")
        token = appdb.create_token(s, user)
    with Session(engine) as s:
        hashes = list(s.scalars(text("SELECT token_hash FROM api_tokens")))
        assert token not in hashes and len(hashes) == 1
        assert appdb.user_for_token(s, token).username == "rex"
        assert appdb.user_for_token(s, token + "x") is None


def test_sessions_expire_and_end(db_url: str) -> None:
    engine = appdb.get_engine(db_url)
    with Session(engine) as s, s.begin():
        user = appdb.add_user(s, "ada", "correct horse", "clinician")
        live, csrf = appdb.create_session(s, user, ttl_s=60)
        short, _ = appdb.create_session(s, user, ttl_s=0.2)
    time.sleep(0.3)
    with Session(engine) as s, s.begin():
        found = appdb.session_user(s, live)
        assert found is not None and found[0].csrf_token == csrf
        assert appdb.session_user(s, short) is None
        appdb.end_session(s, live)
    with Session(engine) as s:
        assert appdb.session_user(s, live) is None


def _log(engine, n: int) -> None:  # type: ignore[no-untyped-def]
    for i in range(n):
        with Session(engine) as s, s.begin():
            audit.append(
                s, "ada", "view", patient_id=f"p{i}", model_version="m@1", input_hash="h" * 64, detail={"i": i}
            )


def test_audit_chain_verifies_when_intact(db_url: str) -> None:
    engine = appdb.get_engine(db_url)
    assert audit.verify(engine).ok
    _log(engine, 5)
    report = audit.verify(engine)
    assert report.ok and report.rows == 5
    rows = audit.events(engine)
    assert [r.id for r in rows] == [5, 4, 3, 2, 1]
    assert rows[-1].prev_hash == audit.GENESIS and rows[0].prev_hash == rows[1].row_hash


@pytest.mark.parametrize(
    ("tamper", "bad_row", "reason"),
    [
        ("UPDATE audit_log SET actor = 'mallory' WHERE id = 3", 3, "altered"),
        ("UPDATE audit_log SET patient_id = 'p9' WHERE id = 2", 2, "altered"),
        ("DELETE FROM audit_log WHERE id = 3", 3, "missing"),
        ("DELETE FROM audit_log WHERE id >= 4", 4, "missing"),
        ("UPDATE audit_log SET id = id + 100 WHERE id = 5", 5, "missing"),
    ],
)
def test_audit_verify_names_the_first_tampered_row(db_url: str, tamper: str, bad_row: int, reason: str) -> None:
    engine = appdb.get_engine(db_url)
    _log(engine, 5)
    with engine.begin() as conn:
        conn.execute(text(tamper))
    report = audit.verify(engine)
    assert not report.ok
    assert report.bad_row == bad_row
    assert reason in (report.reason or "")


def test_audit_rehashed_row_breaks_the_next_link(db_url: str) -> None:
    """Altering a row and recomputing its own hash still breaks the link from the next row."""
    engine = appdb.get_engine(db_url)
    _log(engine, 4)
    with Session(engine) as s, s.begin():
        row = s.get(appdb.AuditEvent, 2)
        row.actor = "mallory"
        row.row_hash = audit.row_hash(row, audit.keys_for(engine))
    report = audit.verify(engine)
    assert (report.ok, report.bad_row) == (False, 3)


def test_concurrent_appends_keep_one_chain(db_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    engine = appdb.get_engine(db_url)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: _log(engine, 5), range(8)))
    report = audit.verify(engine)
    assert report.ok and report.rows == 40
