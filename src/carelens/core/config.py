"""Where carelens keeps its data, read from the environment once per process."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DEFAULT_STORE = Path("carelens-data")


@dataclass(frozen=True)
class Settings:
    """Process-wide settings.

    store: the lake and everything else carelens writes (``CARELENS_STORE``, default
    ``./carelens-data``). db_url: the app database (``CARELENS_DB_URL``, default SQLite inside
    the store). secret_file: the site secret for pseudonyms and date shifts
    (``CARELENS_SECRET_FILE``; ``CARELENS_SECRET`` may hold the secret itself). It never lives
    in the lake.
    """

    store: Path
    db_url: str
    secret_file: Path | None

    @classmethod
    def from_env(cls, store: Path | None = None) -> Settings:
        root = Path(store or os.environ.get("CARELENS_STORE") or DEFAULT_STORE)
        db_url = os.environ.get("CARELENS_DB_URL") or f"sqlite:///{(root / 'app.sqlite').resolve()}"
        secret = os.environ.get("CARELENS_SECRET_FILE")
        return cls(store=root, db_url=db_url, secret_file=Path(secret) if secret else None)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment (cached; tests call ``get_settings.cache_clear()``)."""
    return Settings.from_env()


def research_store(store: Path | None = None) -> Path:
    """The research zone's store, ``<store>/research`` (de-identified data only; its lake is
    ``<store>/research/lake``, apart from the identified lake ``<store>/lake``)."""
    return (store if store is not None else get_settings().store) / "research"


def shared_data_dir() -> Path | None:
    """The public test and benchmark data (``CARELENS_SHARED_DATA``, else ``../shared/data``
    next to the repository), or None when it is not on this machine."""
    env = os.environ.get("CARELENS_SHARED_DATA")
    candidates = [Path(env)] if env else []
    repo_root = Path(__file__).resolve().parents[3]
    candidates += [repo_root.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for path in candidates:
        if (path / "README.md").exists():
            return path
    return None
