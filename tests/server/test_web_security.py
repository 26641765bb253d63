"""The web front against an attacker: the login CSRF token with a planted cookie, cross-site
form posts, Secure cookies and HSTS behind TLS, the OpenAPI schema, and every refusal audited."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from carelens.server import ServerSettings, create_app
from carelens.server.auth import LOGIN_CSRF_COOKIE
from carelens.store.appdb import AuditEvent
from tests.server.conftest import CSRF, PASSWORD, PUBLIC_URL, Workspace


def _login_post(client: TestClient, token: str, headers: dict[str, str] | None = None) -> int:
    form = {"username": "clinician", "password": PASSWORD, "csrf_token": token}
    return client.post("/login", data=form, headers=headers).status_code


def test_a_planted_login_cookie_does_not_satisfy_the_csrf_check(ws_sqlite: Workspace) -> None:
    """The attacker sets cl_login_csrf=X and posts csrf_token=X: the token is an HMAC of the
    nonce under the server's key, so X does not match."""
    client = ws_sqlite.client()
    client.cookies.set(LOGIN_CSRF_COOKIE, "attacker-chosen", path="/login")
    assert _login_post(client, "attacker-chosen") == 403
    assert "cl_session" not in client.cookies


def test_a_valid_pair_from_another_browser_is_refused_cross_site(ws_sqlite: Workspace) -> None:
    """The attacker's own (nonce, token) pair planted in the victim's browser is stopped by the
    same-origin check: the post comes from the attacker's site."""
    attacker = ws_sqlite.client()
    token = CSRF.search(attacker.get("/login").text)
    assert token
    victim = TestClient(ws_sqlite.app, follow_redirects=False)
    victim.cookies.set(LOGIN_CSRF_COOKIE, attacker.cookies[LOGIN_CSRF_COOKIE], path="/login")
    assert _login_post(victim, token.group(1), {"Origin": "https://evil.example"}) == 403
    assert _login_post(victim, token.group(1), {"Referer": "https://evil.example/form"}) == 403
    assert _login_post(victim, token.group(1)) == 403  # neither Origin nor Referer: refused too
    assert _login_post(victim, token.group(1), {"Referer": f"{PUBLIC_URL}/login"}) == 303  # same site


def test_cross_site_posts_with_a_session_are_refused(ws_sqlite: Workspace) -> None:
    ws = ws_sqlite
    csrf = ws.csrf("admin")
    r = ws.clients["admin"].post(
        "/admin/users/clinician/disable", data={"csrf_token": csrf}, headers={"Origin": "https://evil.example"}
    )
    assert r.status_code == 403 and "cross-site" in r.text
    assert ws.client().get("/api/patients", headers=ws.bearer("clinician")).status_code == 200  # still enabled


def test_plain_http_has_no_secure_cookie_and_no_hsts(ws_sqlite: Workspace) -> None:
    r = ws_sqlite.client().get("/login")
    assert "secure" not in r.headers["set-cookie"].lower()
    assert "strict-transport-security" not in r.headers


def test_https_gets_secure_cookies_and_hsts(ws_sqlite: Workspace) -> None:
    """A request that arrived over HTTPS (directly, or as a trusted proxy's X-Forwarded-Proto
    tells uvicorn) gets Secure cookies and HSTS without any setting."""
    client = TestClient(ws_sqlite.app, base_url="https://carelens.example", follow_redirects=False)
    r = client.get("/login")
    assert "secure" in r.headers["set-cookie"].lower()
    assert r.headers["strict-transport-security"].startswith("max-age=31536000")
    token = CSRF.search(r.text)
    assert token
    login = client.post(
        "/login",
        data={"username": "clinician", "password": PASSWORD, "csrf_token": token.group(1)},
        headers={"Origin": PUBLIC_URL},
    )
    assert login.status_code == 303 and "secure" in login.headers["set-cookie"].lower()


def test_configured_tls_sets_hsts_on_every_answer(ws_sqlite: Workspace) -> None:
    settings = ws_sqlite.app.state.ctx.settings  # type: ignore[attr-defined]
    app = create_app(ServerSettings(**{**settings.__dict__, "secure_cookies": True}))
    r = TestClient(app).get("/login")
    assert "strict-transport-security" in r.headers and "secure" in r.headers["set-cookie"].lower()


def test_openapi_is_for_signed_in_users_typed_and_secured(ws_sqlite: Workspace) -> None:
    ws = ws_sqlite
    assert ws.client().get("/api/openapi.json").status_code == 401
    assert ws.client().get("/docs").status_code == 404
    schema = ws.clients["researcher"].get("/api/openapi.json").json()  # a session will do
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerToken"]["scheme"] == "bearer" and schemes["sessionCookie"]["in"] == "cookie"
    for path, method in (("/api/patients", "get"), ("/api/cohort", "get"), ("/api/audit/verify", "get")):
        op = schema["paths"][path][method]
        assert op["security"] == [{"bearerToken": []}], path
        ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.startswith("#/components/schemas/"), path
    assert "Summary" in schema["components"]["schemas"]
    cds = schema["paths"]["/cds-services/{service_id}"]["post"]["responses"]["200"]["content"]["application/json"]
    assert cds["schema"]["$ref"].endswith("/CdsCards")


def _denials(ws: Workspace) -> list[tuple[str, dict[str, object]]]:
    with Session(ws.engine) as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.action == "access.denied").order_by(AuditEvent.id))
        return [(r.actor, json.loads(r.detail)) for r in rows]


def test_every_refusal_is_audited_without_phi(ws_sqlite: Workspace) -> None:
    ws = ws_sqlite
    ws.client().get("/api/patients")
    ws.client().get("/api/patients", headers={"Authorization": "Bearer cl_forged"})
    ws.client().get("/api/patients", headers=ws.bearer("researcher"))
    ws.clients["researcher"].get("/patients/pat-canary-1")
    ws.client().get("/patients/pat-canary-1")
    found = _denials(ws)
    assert [(who, d["status"]) for who, d in found] == [
        ("anonymous", 401),
        ("anonymous", 401),
        ("researcher", 403),
        ("researcher", 403),
        ("anonymous", 401),
    ]
    assert {d["path"] for _, d in found} == {"/api/patients", "/patients/{id}"}  # ids masked
    assert "pat-canary-1" not in json.dumps(found) and "cl_forged" not in json.dumps(found)


def test_the_address_the_browser_used_is_same_origin_too(ws_sqlite: Workspace) -> None:
    """A user who reaches the workspace as http://testserver (not the configured public URL)
    can still log in: their browser's Origin is the host it talked to."""
    client = TestClient(ws_sqlite.app, follow_redirects=False)
    token = CSRF.search(client.get("/login").text)
    assert token
    assert _login_post(client, token.group(1), {"Origin": "http://testserver"}) == 303


def test_a_malformed_public_url_is_refused_at_start(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from carelens.core.errors import InputError

    for bad in ("carelens.example", "https://carelens.example/", "javascript:alert(1)", "https://a b"):
        with pytest.raises(InputError, match="CARELENS_PUBLIC_URL"):
            ServerSettings(store=tmp_path, db_url="sqlite://", public_url=bad)
    assert ServerSettings(store=tmp_path, db_url="sqlite://", public_url="https://h.example:8443/carelens").public_url
