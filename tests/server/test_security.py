"""CSRF, session expiry, security headers, bad input and PHI-free errors."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from carelens.store.appdb import ApiToken, AuditEvent, ReviewDecision, SignedSummary, User
from tests.server.conftest import CSRF, Workspace, login, make_workspace
from tests.server.fixture_store import CANARY_NAME, CANARY_SSN, PID


def _item(ws: Workspace) -> str:
    found = re.search(r'name="item" value="([^"]+)"', ws.clients["clinician"].get(f"/patients/{PID}").text)
    assert found
    return found.group(1)


def _counts(ws: Workspace) -> tuple[int, int]:
    with Session(ws.engine) as s:
        return s.scalar(select(func.count()).select_from(ReviewDecision)) or 0, s.scalar(
            select(func.count()).select_from(AuditEvent)
        ) or 0


def _denied(ws: Workspace, before: tuple[int, int], status: int) -> None:
    """The refusal stored nothing but its own audit row (action access.denied, with its status)."""
    assert _counts(ws) == (before[0], before[1] + 1)
    with Session(ws.engine) as s:
        last = s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
    assert last.action == "access.denied" and f'"status":{status}' in last.detail


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_decision_with_missing_or_wrong_csrf_is_refused_and_stores_nothing(ws: Workspace, token: str | None) -> None:
    item = _item(ws)
    before = _counts(ws)
    data = {"item": item, "action": "reject", "reason": "wrong"}
    if token is not None:
        data["csrf_token"] = token
    r = ws.clients["clinician"].post(f"/patients/{PID}/decisions", data=data)
    assert r.status_code == 403
    assert "security token" in r.text
    _denied(ws, before, 403)


def _state(ws: Workspace) -> list[int | None]:
    """Row counts, active users and live tokens: what a forged form could change."""
    with Session(ws.engine) as s:
        counts = [s.scalar(select(func.count()).select_from(t)) for t in (User, ApiToken, SignedSummary)]
        active = s.scalar(select(func.count()).select_from(User).where(User.active.is_(True)))
        live = s.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.revoked.is_(False)))
    return [*counts, active, live]


@pytest.mark.parametrize(
    ("role", "path", "data"),
    [
        ("clinician", f"/patients/{PID}/sign", {}),
        ("admin", "/admin/users", {"username": "mallory", "role": "admin", "password": "long enough pw"}),
        ("admin", "/admin/users/clinician/token", {}),
        ("admin", "/admin/users/clinician/disable", {}),
        ("admin", "/admin/users/researcher/revoke-tokens", {}),
        ("clinician", "/logout", {}),
    ],
)
def test_every_other_form_needs_its_csrf_token(ws_sqlite: Workspace, role: str, path: str, data: dict) -> None:
    ws = ws_sqlite
    before = _state(ws)
    r = ws.clients[role].post(path, data={**data, "csrf_token": "forged"})
    assert r.status_code == 403 and "security token" in r.text
    assert _state(ws) == before
    assert ws.clients[role].get("/models").status_code == 200  # still logged in


def test_csrf_token_of_another_session_is_refused(ws: Workspace) -> None:
    other = ws.login("clinician")
    other_token = CSRF.search(other.get("/patients").text)
    assert other_token
    r = ws.clients["clinician"].post(
        f"/patients/{PID}/decisions", data={"item": _item(ws), "action": "accept", "csrf_token": other_token.group(1)}
    )
    assert r.status_code == 403


def test_login_form_needs_its_csrf_token(ws: Workspace) -> None:
    client = ws.client()
    client.get("/login")
    r = client.post("/login", data={"username": "clinician", "password": "correct horse battery", "csrf_token": "x"})
    assert r.status_code == 403 and "cl_session" not in r.cookies


def test_wrong_password_is_refused_without_saying_which_part(ws_sqlite: Workspace) -> None:
    ws = ws_sqlite
    client = ws.client()
    with pytest.raises(AssertionError, match="login failed"):
        login(client, "clinician", "wrong password!")
    with pytest.raises(AssertionError, match="login failed"):
        login(client, "nobody", "wrong password!")
    assert "Wrong user name or password" in client.get("/login?failed=1").text


def test_session_expires(backend_url: str, tmp_path: Path) -> None:
    ws = make_workspace(backend_url, tmp_path / "store", session_ttl_s=1.0)
    client = ws.clients["clinician"]
    assert client.get("/patients").status_code == 200
    csrf = ws.csrf("clinician", "/patients")
    time.sleep(1.2)
    r = client.get(f"/patients/{PID}")
    assert r.status_code == 303 and r.headers["location"] == f"/login?next=/patients/{PID}&expired=1"
    assert "session has expired" in client.get(r.headers["location"]).text
    before = _counts(ws)
    r = client.post(f"/patients/{PID}/decisions", data={"item": "x", "action": "accept", "csrf_token": csrf})
    assert r.status_code == 401 and "expired" in r.text
    _denied(ws, before, 401)


def test_logout_ends_the_session(ws_sqlite: Workspace) -> None:
    ws = ws_sqlite
    client = ws.clients["clinician"]
    csrf = ws.csrf("clinician", "/patients")
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert client.get("/patients").status_code == 303


def test_security_headers_and_no_store(ws_sqlite: Workspace) -> None:
    ws = ws_sqlite
    r = ws.clients["clinician"].get(f"/patients/{PID}")
    assert r.status_code == 200
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    assert "<script>" not in r.text and "style=" not in r.text  # nothing inline: the CSP allows none
    api = ws.client().get("/api/patients", headers=ws.bearer("clinician"))
    assert api.headers["cache-control"] == "no-store"
    cookie = ws.client().get("/login").headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_unknown_patient_is_404_everywhere(ws_sqlite: Workspace) -> None:
    ws = ws_sqlite
    assert ws.client().get("/api/patients/nobody-here/summary", headers=ws.bearer("clinician")).status_code == 404
    r = ws.clients["clinician"].get("/patients/nobody-here")
    assert r.status_code == 404 and "no patient with this id" in r.text and "nobody-here" not in r.text


@pytest.mark.parametrize(("bad", "sent"), [("x%24y", "x$y"), ("a" * 65, "a" * 65), ("p%20q", "p q")])
def test_malformed_patient_id_is_422(ws_sqlite: Workspace, bad: str, sent: str) -> None:
    ws = ws_sqlite
    r = ws.client().get(f"/api/patients/{bad}/summary", headers=ws.bearer("clinician"))
    assert r.status_code == 422
    assert r.json()["detail"] == "invalid request: check pid" and sent not in r.text
    page = ws.clients["clinician"].get(f"/patients/{bad}")
    assert page.status_code == 422 and sent not in page.text


def test_malformed_evidence_reference_and_span(ws_sqlite: Workspace) -> None:
    ws = ws_sqlite
    client = ws.clients["clinician"]
    assert client.get(f"/patients/{PID}/evidence?ref=not-a-ref").status_code == 400
    assert client.get(f"/patients/{PID}/evidence?ref=Condition/missing").status_code == 404
    r = client.get(f"/patients/{PID}/evidence?ref=DocumentReference/note-hp&start=5&end=99999")
    assert r.status_code == 400 and "outside the note" in r.text
    assert client.get(f"/patients/{PID}/evidence?ref=DocumentReference/note-hp&start=-1&end=3").status_code == 422


def test_oversized_bodies_are_413(ws_sqlite: Workspace) -> None:
    ws = ws_sqlite
    client = ws.client()
    big = b'{"hook": "patient-view", "pad": "' + b"x" * 100_000 + b'"}'
    r = client.post("/cds-services/carelens-patient-view", content=big, headers=ws.bearer("clinician"))
    assert r.status_code == 413 and "too large" in r.json()["detail"]

    def chunks():  # no Content-Length: the limit counts streamed bytes
        for _ in range(100):
            yield b"x" * 1024

    r = client.post("/cds-services/carelens-patient-view", content=chunks(), headers=ws.bearer("clinician"))
    assert r.status_code == 413


def test_malformed_json_is_400_and_invalid_body_422(ws_sqlite: Workspace) -> None:
    ws = ws_sqlite
    client = ws.client()
    headers = {**ws.bearer("clinician"), "content-type": "application/json"}
    r = client.post("/cds-services/carelens-patient-view", content=b'{"hook": ', headers=headers)
    assert r.status_code == 400 and r.json()["detail"] == "malformed JSON body"
    body = {"hook": "order-sign", "hookInstance": "h", "context": {"patientId": PID, "userId": CANARY_NAME}}
    r = client.post("/cds-services/carelens-patient-view", json=body, headers=ws.bearer("clinician"))
    assert r.status_code == 422 and CANARY_NAME not in r.text and "hook" in r.json()["detail"]


def test_decision_without_reason_is_refused_and_nothing_stored(ws_sqlite: Workspace) -> None:
    ws = ws_sqlite
    item = _item(ws)
    csrf = ws.csrf("clinician", "/patients")
    before = _counts(ws)
    for data in (
        {"item": item, "action": "reject", "reason": "  "},
        {"item": item, "action": "edit", "reason": "typo", "edited_text": ""},
        {"item": item, "action": "approve"},
        {"item": "not-an-item", "action": "accept"},
    ):
        r = ws.clients["clinician"].post(f"/patients/{PID}/decisions", data={**data, "csrf_token": csrf})
        assert r.status_code == 400, data
    assert _counts(ws)[0] == before[0]


def test_no_phi_in_errors_or_logs(ws_sqlite: Workspace, caplog: pytest.LogCaptureFixture) -> None:
    ws = ws_sqlite
    caplog.set_level(logging.INFO)
    client = ws.clients["clinician"]
    responses = [
        client.get(f"/patients/{PID}"),
        client.get(f"/patients/{PID}/evidence?ref=DocumentReference/note-hp&start=0&end=100000"),
        ws.client().post(
            "/cds-services/carelens-patient-view",
            headers=ws.bearer("clinician"),
            json={"hook": "patient-view", "hookInstance": CANARY_SSN, "context": {"patientId": "a b"}},
        ),
        client.get(f"/patients/{PID}/signed/999"),
    ]
    assert responses[0].status_code == 200 and CANARY_NAME in responses[0].text  # the page itself is identified
    for r in responses[1:]:
        assert r.status_code >= 400
        assert CANARY_NAME not in r.text and CANARY_SSN not in r.text and "Traceback" not in r.text
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("carelens"))
    assert "GET /patients/{id} 200" in logged
    assert PID not in logged and CANARY_NAME not in logged and CANARY_SSN not in logged


def test_internal_error_is_a_plain_500(
    ws_sqlite: Workspace, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ws = ws_sqlite

    def boom(pid: str) -> list:
        raise RuntimeError(f"failed for {CANARY_NAME}")

    monkeypatch.setattr(ws.app.state.ctx.data, "images", boom)  # type: ignore[attr-defined]
    r = ws.clients["clinician"].get(f"/patients/{PID}")
    assert r.status_code == 500
    assert CANARY_NAME not in r.text and "Traceback" not in r.text
    assert "RuntimeError" in caplog.text and CANARY_NAME not in caplog.text


@pytest.mark.parametrize("target", ["//evil.example/x", "/\\evil.example", "https://evil.example/"])
def test_login_never_redirects_off_site(ws_sqlite: Workspace, target: str) -> None:
    client = ws_sqlite.client()
    token = CSRF.search(client.get("/login").text)
    assert token
    form = {"username": "clinician", "password": "correct horse battery", "csrf_token": token.group(1), "next": target}
    r = client.post("/login", data=form)
    assert r.status_code == 303 and r.headers["location"] == "/patients"
