"""Accounts under attack: throttling with backoff and lockout (admin unlock, audited), the
password policy, one-time passwords changed at the first login, token expiry and scopes."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from carelens.core.errors import InputError
from carelens.store import appdb
from carelens.store.appdb import AuditEvent, clock, throttle
from tests.server.conftest import CSRF, PASSWORD, Workspace

CDS = "/cds-services/carelens-patient-view"


def _try(client: TestClient, username: str, password: str, headers: dict[str, str] | None = None) -> int:
    token = CSRF.search(client.get("/login").text)
    assert token
    form = {"username": username, "password": password, "csrf_token": token.group(1)}
    r = client.post("/login", data=form, headers=headers)
    return 200 if r.status_code == 303 and "failed" not in r.headers["location"] else r.status_code


def _actions(ws: Workspace, prefix: str) -> list[AuditEvent]:
    with Session(ws.engine) as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action.like(f"{prefix}%")).order_by(AuditEvent.id)))


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A clock that stands still until the test moves it (seconds added to the real time)."""
    offset = [0.0]
    real = clock.now_iso
    base = real()
    from datetime import datetime, timedelta

    def fake(extra: float = 0.0) -> str:
        moment = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S.%fZ") + timedelta(seconds=offset[0] + extra)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    monkeypatch.setattr(clock, "now_iso", fake)
    return offset


def test_36_wrong_passwords_lock_the_account_until_an_admin_unlocks_it(ws: Workspace, frozen: list[float]) -> None:
    client = ws.client()
    fast = [_try(client, "clinician", f"wrong guess {i}") for i in range(36)]  # as fast as the attacker can
    assert fast[: throttle.ACCOUNT_FREE + 1] == [303] * (throttle.ACCOUNT_FREE + 1) and set(fast[4:]) == {429}
    assert _try(client, "clinician", PASSWORD) == 429  # slowed down: the right password waits too
    patient = []
    for i in range(36):  # an attacker who waits out every backoff
        frozen[0] += throttle.MAX_WAIT_S + 1
        patient.append(_try(client, "clinician", f"patient guess {i}"))
    assert 303 in patient and patient[-1] == 423  # locked after LOCK_AFTER failures in a row
    frozen[0] += 10 * throttle.MAX_WAIT_S
    assert _try(client, "clinician", PASSWORD) == 423  # the right password no longer works, ever
    assert ws.client().get("/admin/users").status_code == 303
    users = ws.clients["admin"].get("/admin/users").text
    assert "locked" in users and "/admin/users/clinician/unlock" in users
    r = ws.clients["admin"].post("/admin/users/clinician/unlock", data={"csrf_token": ws.csrf("admin")})
    assert r.status_code == 303
    (unlock,) = _actions(ws, "user.unlock")
    assert unlock.actor == "admin" and json.loads(unlock.detail) == {"user": "clinician", "unlocked": 1}
    assert _try(ws.client(), "clinician", PASSWORD) == 200
    assert len(_actions(ws, "login.blocked")) >= 1


def test_backoff_waits_then_lets_the_right_password_in(ws_sqlite: Workspace, frozen: list[float]) -> None:
    ws = ws_sqlite
    client = ws.client()
    for i in range(throttle.ACCOUNT_FREE + 1):
        assert _try(client, "researcher", f"wrong guess {i}") == 303
    assert _try(client, "researcher", PASSWORD) == 429  # backing off: even the right one waits
    frozen[0] += 2**1 + 1
    assert _try(client, "researcher", PASSWORD) == 200
    with Session(ws.engine) as s:  # success forgets the failures
        assert throttle.check(s, "researcher", "testclient").allowed


def test_one_address_trying_many_accounts_is_slowed_down(ws_sqlite: Workspace) -> None:
    ws = ws_sqlite
    client = ws.client()
    for i in range(throttle.ADDRESS_FREE + 1):
        _try(client, f"guess{i}", "wrong guess here")
    assert _try(client, "admin", PASSWORD) == 429  # this address now waits, whatever the account


def test_unknown_and_known_accounts_are_throttled_alike(ws_sqlite: Workspace) -> None:
    ws = ws_sqlite
    with Session(ws.engine) as s, s.begin():
        for _ in range(throttle.LOCK_AFTER):
            known = throttle.failed(s, "clinician", None)
            unknown = throttle.failed(s, "no-such-user", None)
    assert known == unknown and known.locked


def test_one_time_password_must_be_changed_at_the_first_login(ws: Workspace) -> None:
    admin = ws.clients["admin"]
    form = {
        "username": "newbie",
        "role": "clinician",
        "password": "a one-time password",
        "csrf_token": ws.csrf("admin"),
    }
    assert admin.post("/admin/users", data=form).status_code == 303
    client = ws.client()
    token = CSRF.search(client.get("/login").text)
    assert token
    r = client.post(
        "/login", data={"username": "newbie", "password": "a one-time password", "csrf_token": token.group(1)}
    )
    assert r.headers["location"] == "/account/password"
    assert client.get("/patients").headers["location"] == "/account/password"  # nothing else first
    page = client.get("/account/password")
    assert "one-time password" in page.text
    csrf = CSRF.search(page.text)
    assert csrf
    change = {"current": "a one-time password", "csrf_token": csrf.group(1)}
    weak = client.post("/account/password", data={**change, "new": "password1234", "confirm": "password1234"})
    assert weak.status_code == 400 and "too common" in weak.text
    mine = "my own long passphrase"
    r = client.post("/account/password", data={**change, "new": mine, "confirm": mine})
    assert r.status_code == 303 and r.headers["location"] == "/login?changed=1"
    assert client.get("/patients").status_code == 303  # every session ended
    assert _try(ws.client(), "newbie", "a one-time password") == 303  # the old one is refused
    assert _try(ws.client(), "newbie", mine) == 200
    assert [json.loads(e.detail)["user"] for e in _actions(ws, "user.password")] == ["newbie"]


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("12345678", "at least 12"),
        ("password", "at least 12"),
        (" " * 8, "at least 12"),
        ("clinician", "at least 12"),
        ("clinician-2026", "user name"),
        ("passwordpassword", "too common"),
    ],
)
def test_password_policy_on_change(ws_sqlite: Workspace, password: str, reason: str) -> None:
    ws = ws_sqlite
    with Session(ws.engine) as s, pytest.raises(InputError) as err:
        appdb.set_password(s, "clinician", password, current=PASSWORD)
    assert reason in str(err.value)


def test_tokens_expire(ws_sqlite: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = ws_sqlite
    with Session(ws.engine) as s, s.begin():
        token = appdb.create_token(s, appdb.get_user(s, "clinician"), days=1)
    headers = {"Authorization": f"Bearer {token}"}
    assert ws.client().get("/api/patients", headers=headers).status_code == 200
    import carelens.server.auth as auth

    monkeypatch.setattr(auth, "now_iso", lambda offset=0.0: clock.now_iso(offset + 2 * 86400))
    r = ws.client().get("/api/patients", headers=headers)
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    with Session(ws.engine) as s:
        listed = {u["username"]: u["tokens"] for u in appdb.list_users(s)}
    assert listed["clinician"] == 2  # still live now: the fixture's and this one


def test_token_scopes(ws_sqlite: Workspace) -> None:
    ws = ws_sqlite
    with Session(ws.engine) as s, s.begin():
        user = appdb.get_user(s, "clinician")
        api_only = appdb.create_token(s, user, scopes=("api",))
        cds_only = appdb.create_token(s, user, scopes=("cds",))
        with pytest.raises(InputError, match="unknown token scope"):
            appdb.create_token(s, user, scopes=("admin",))
    hook = {"hook": "patient-view", "hookInstance": "h", "context": {"patientId": "pat-canary-1"}}
    api, cds = ({"Authorization": f"Bearer {t}"} for t in (api_only, cds_only))
    assert ws.client().get("/api/patients", headers=api).status_code == 200
    assert ws.client().post(CDS, json=hook, headers=api).status_code == 401
    assert ws.client().post(CDS, json=hook, headers=cds).status_code == 200
    assert ws.client().get("/api/patients", headers=cds).status_code == 401


def test_failures_are_forgotten_after_a_quiet_day(ws_sqlite: Workspace, frozen: list[float]) -> None:
    ws = ws_sqlite
    with Session(ws.engine) as s, s.begin():
        for i in range(throttle.ACCOUNT_FREE):
            throttle.failed(s, f"made-up-{i}", None)
        throttle.failed(s, "clinician", None)
    frozen[0] += throttle.FORGET_AFTER_S + 1
    with Session(ws.engine) as s, s.begin():
        throttle.failed(s, "researcher", None)
        keys = set(s.scalars(select(appdb.models.LoginThrottle.key)))
    assert keys == {"user:researcher"}
