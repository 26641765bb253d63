"""Admins manage accounts: list, disable, enable and revoke tokens, on the web admin page and
with ``carelens users``; a disabled user's sessions and tokens stop at once. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from carelens.core.errors import InputError
from carelens.store import appdb
from carelens.store.appdb import AuditEvent
from tests.server.conftest import PASSWORD, Workspace, login
from tests.server.fixture_store import PID


def _admin_post(ws: Workspace, path: str) -> int:
    return ws.clients["admin"].post(path, data={"csrf_token": ws.csrf("admin")}).status_code


def _last_audit(ws: Workspace, action: str) -> dict[str, object]:
    with Session(ws.engine) as s:
        row = s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id.desc())).first()
    assert row is not None, f"no {action} audit row"
    return {"actor": row.actor, **json.loads(row.detail)}


def _row(page: str, user: str) -> str:
    start = page.index(f'id="user-{user}"')
    return page[start : page.index("</tr>", start)]


def test_disabled_user_is_locked_out_at_once_and_enabling_revives_nothing(ws: Workspace) -> None:
    clinician, api = ws.clients["clinician"], ws.client()
    csrf = ws.csrf("clinician", "/patients")
    assert api.get("/api/patients", headers=ws.bearer("clinician")).status_code == 200

    assert _admin_post(ws, "/admin/users/clinician/disable") == 303
    r = api.get("/api/patients", headers=ws.bearer("clinician"))
    assert r.status_code == 401 and r.json() == {"detail": "invalid, expired or revoked token"}
    assert clinician.get("/patients").status_code == 303  # sent to the login page
    assert clinician.post(f"/patients/{PID}/sign", data={"csrf_token": csrf}).status_code == 401
    with pytest.raises(AssertionError, match="login failed"):
        login(ws.client(), "clinician")
    assert _last_audit(ws, "user.disable") == {"actor": "admin", "user": "clinician", "sessions": 1, "tokens": 1}
    assert "disabled" in _row(ws.clients["admin"].get("/admin/users").text, "clinician")

    assert _admin_post(ws, "/admin/users/clinician/enable") == 303
    again = ws.login("clinician")
    assert again.get("/patients").status_code == 200
    assert clinician.get("/patients").status_code == 303  # the old session stays ended
    assert api.get("/api/patients", headers=ws.bearer("clinician")).status_code == 401  # so does the old token
    assert _last_audit(ws, "user.enable")["user"] == "clinician"
    assert appdb.audit.verify(ws.engine).ok


def test_revoking_tokens_keeps_the_user_and_their_session(ws: Workspace) -> None:
    page = ws.clients["admin"].get("/admin/users").text
    assert "<td>1</td>" in _row(page, "researcher") and "revoke-tokens" in _row(page, "researcher")
    assert _admin_post(ws, "/admin/users/researcher/revoke-tokens") == 303
    assert ws.client().get("/api/cohort", headers=ws.bearer("researcher")).status_code == 401
    assert ws.clients["researcher"].get("/research").status_code == 200
    assert _last_audit(ws, "token.revoke") == {"actor": "admin", "user": "researcher", "tokens": 1}
    row = _row(ws.clients["admin"].get("/admin/users").text, "researcher")
    assert "<td>0</td>" in row and "revoke-tokens" not in row and "active" in row


def test_refused_account_changes_store_nothing(ws: Workspace) -> None:
    admin = ws.clients["admin"]
    r = admin.post("/admin/users/admin/disable", data={"csrf_token": ws.csrf("admin")})
    assert r.status_code == 400 and "your own account" in r.text
    assert _admin_post(ws, "/admin/users/nobody/disable") == 404
    assert _admin_post(ws, "/admin/users/nobody/revoke-tokens") == 404
    with Session(ws.engine) as s, s.begin(), pytest.raises(InputError, match="last active admin"):
        appdb.set_active(s, "admin", False)
    assert _admin_post(ws, "/admin/users/clinician/disable") == 303
    r = admin.post("/admin/users/clinician/token", data={"csrf_token": ws.csrf("admin")})
    assert r.status_code == 400 and "is disabled" in r.text and "cl_" not in r.text
    assert admin.get("/admin/users").status_code == 200  # the admin is still logged in
    with Session(ws.engine) as s:
        users = {u["username"]: u for u in appdb.list_users(s)}
    assert users["admin"]["active"] and not users["clinician"]["active"] and users["clinician"]["tokens"] == 0


def test_users_cli_lists_disables_enables_and_revokes(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli
) -> None:
    monkeypatch.setenv("CARELENS_DB_URL", str(ws.engine.url.render_as_string(hide_password=False)))
    store = ("--store", str(tmp_path / "cli-store"))
    code, out, _ = run_cli("users", "list", *store)
    assert code == 0
    listed = json.loads(out)["users"]
    assert [(u["username"], u["role"], u["active"], u["tokens"]) for u in listed] == [
        ("admin", "admin", True, 1),
        ("clinician", "clinician", True, 1),
        ("researcher", "researcher", True, 1),
    ]

    code, out, _ = run_cli("users", "disable", "clinician", *store)
    assert code == 0 and json.loads(out) == {"user": "clinician", "sessions": 1, "tokens": 1}
    assert ws.client().get("/api/patients", headers=ws.bearer("clinician")).status_code == 401
    assert ws.clients["clinician"].get("/patients").status_code == 303
    code, out, _ = run_cli("users", "list", "--format", "table", *store)
    assert "clinician  clinician  disabled  tokens=0" in out
    code, _, err = run_cli("users", "token", "clinician", *store)
    assert code == 1 and err.strip() == "error: user clinician is disabled; enable it before issuing a token"

    code, out, _ = run_cli("users", "enable", "clinician", *store)
    assert code == 0 and json.loads(out) == {"user": "clinician", "sessions": 0, "tokens": 0}
    login(ws.client(), "clinician", PASSWORD)

    code, out, _ = run_cli("users", "revoke-tokens", "researcher", *store)
    assert code == 0 and json.loads(out) == {"user": "researcher", "tokens": 1}
    assert ws.client().get("/api/cohort", headers=ws.bearer("researcher")).status_code == 401

    code, _, err = run_cli("users", "disable", "admin", *store)
    assert code == 1 and err.strip() == "error: admin is the last active admin and cannot be disabled"
    code, _, err = run_cli("users", "disable", "nobody", *store)
    assert code == 1 and err.strip() == "error: no user named nobody"
    assert run_cli("users", "list", "--format", "xml", *store)[0] != 0
    actions = [_last_audit(ws, a)["actor"] for a in ("user.disable", "user.enable", "token.revoke")]
    assert actions == ["cli", "cli", "cli"] and appdb.audit.verify(ws.engine).ok
