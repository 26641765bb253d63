"""Open the app database from a URL and bring its schema to the newest Alembic revision."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from carelens.core.config import load_settings
from carelens.core.errors import InputError

MIGRATIONS = Path(__file__).with_name("migrations")
_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def alembic_config(engine: Engine) -> Config:
    """An Alembic config pointing at the migrations shipped inside the package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply the migrations up to ``revision`` (``alembic upgrade head``)."""
    command.upgrade(alembic_config(engine), revision)


def make_engine(url: str) -> Engine:
    """A SQLAlchemy engine for ``url`` (SQLite files get WAL, foreign keys, a busy timeout and a
    pool large enough for every server thread)."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        pool: dict[str, int] = {}
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # as large as the server's thread pool: an overflow connection would be opened (its
            # pragmas run) and closed again on every request under load
            pool = {"pool_size": 48, "max_overflow": 16}
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **pool)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql"):
        return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    raise InputError("CARELENS_DB_URL must be a sqlite:/// or postgresql+psycopg:// URL")


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def begin_write(s: Session) -> None:
    """Take the database write lock now, at the start of ``s``'s transaction: ``BEGIN IMMEDIATE``
    on SQLite, so that a writer in another process waits (busy timeout) instead of failing on a
    stale read snapshot. PostgreSQL needs nothing here (row and advisory locks do the work)."""
    if s.get_bind().dialect.name == "sqlite":
        s.connection().exec_driver_sql("BEGIN IMMEDIATE")


def get_engine(url: str | None = None) -> Engine:
    """The engine for ``url`` (default: the settings' app database), migrated on first use."""
    url = url or load_settings().db_url
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = make_engine(url)
            upgrade(engine)
            _engines[url] = engine
        return engine


def sessionmaker_for(url: str | None = None) -> sessionmaker[Session]:
    """A session factory bound to the (migrated) app database."""
    return sessionmaker(get_engine(url), expire_on_commit=False)


def dispose_all() -> None:
    """Close every cached engine (tests, forked servers)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
