"""Workspace fixtures: the app on a prepared store with one user per role, on SQLite and
PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from carelens.server import ServerSettings, create_app, summarizers
from carelens.store import appdb
from carelens.store.appdb import accounts
from tests.server.fixture_store import summarize, write_store
from tests.server.pg import scratch_db_url

PASSWORD = "correct horse battery"
PUBLIC_URL = "https://carelens.example"  # the configured public base URL of the test workspace
ROLES = ("clinician", "researcher", "admin")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Workspace:
    """The app under test, its database and a token and logged-in client per role."""

    app: object
    engine: Engine
    store: Path
    tokens: dict[str, str] = field(default_factory=dict)
    clients: dict[str, TestClient] = field(default_factory=dict)

    def client(self) -> TestClient:
        """A browser-like client: its form posts carry this site's Origin, as browsers' do."""
        return TestClient(self.app, follow_redirects=False, headers={"Origin": PUBLIC_URL})

    def login(self, role: str) -> TestClient:
        client = self.client()
        login(client, role)
        return client

    def csrf(self, role: str, path: str = "/models") -> str:
        """The CSRF token of the role's session (read from a rendered form)."""
        found = CSRF.search(self.clients[role].get(path).text)
        assert found, "no CSRF token on the page"
        return found.group(1)

    def bearer(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def login(client: TestClient, username: str, password: str = PASSWORD) -> None:
    form = client.get("/login")
    token = CSRF.search(form.text)
    assert token is not None
    origin = client.headers.get("origin") or str(client.base_url).rstrip("/")  # a browser's form post
    form = {"username": username, "password": password, "csrf_token": token.group(1)}
    r = client.post("/login", data=form, headers={"Origin": origin})
    assert r.status_code == 303 and "failed" not in r.headers["location"], "login failed"


summarizers.register("fixture", summarize)  # the fixture store's contract-shaped summaries


def make_workspace(db_url: str, root: Path, **settings: object) -> Workspace:
    store = write_store(root)
    engine = appdb.get_engine(db_url)
    ws = Workspace(app=None, engine=engine, store=store)
    with Session(engine) as s, s.begin():
        for role in ROLES:
            user = appdb.add_user(s, role, PASSWORD, role)
            ws.tokens[role] = appdb.create_token(s, user)
    settings = {"public_url": PUBLIC_URL, **settings}
    ws.app = create_app(ServerSettings(store=store, db_url=db_url, summarizer="fixture", **settings))  # type: ignore[arg-type]
    for role in ROLES:
        ws.clients[role] = ws.login(role)
    return ws


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id with minimal cost: the tests log in dozens of times on 2 shared cores."""
    from argon2 import PasswordHasher

    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    pg = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    with scratch_db_url(request.param, tmp_path, pg) as url:
        yield url


@pytest.fixture
def ws(backend_url: str, tmp_path: Path) -> Workspace:
    """The workspace on SQLite and on PostgreSQL."""
    return make_workspace(backend_url, tmp_path / "store")


@pytest.fixture
def ws_sqlite(tmp_path: Path) -> Iterator[Workspace]:
    """The workspace on SQLite only (for tests whose backend does not matter)."""
    with scratch_db_url("sqlite", tmp_path, None) as url:
        yield make_workspace(url, tmp_path / "store")
