"""App database URLs for tests: a fresh SQLite file, or a throwaway schema on PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from carelens.store.appdb import auditkeys, dispose_all


@contextmanager
def scratch_db_url(backend: str, tmp_path: Path, postgres_url: str | None) -> Iterator[str]:
    """Yield an empty app database URL on ``backend`` ("sqlite" or "postgres"), removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'app.sqlite'}"
        dispose_all()
        return
    assert postgres_url is not None
    schema = "t_" + secrets.token_hex(6)
    admin = create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{sep}options=-csearch_path%3D{schema}"
    auditkeys.bind(url, tmp_path / "audit-pg")  # the keys of this scratch database, outside it
    try:
        yield url
    finally:
        dispose_all()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
