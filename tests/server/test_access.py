"""The access matrix: every route for every role and for anonymous callers, asserted as one
table, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

from tests.server.conftest import Workspace
from tests.server.fixture_store import PID

CDS = "/cds-services/carelens-patient-view"
HOOK = {"hook": "patient-view", "hookInstance": "h-1", "context": {"userId": "Practitioner/1", "patientId": PID}}
FEEDBACK = "feedback"  # filled in with a card the HOOK row issued

# (method, path, kind, body) -> expected status for anonymous, clinician, researcher, admin.
# kind "api": bearer tokens; kind "page": session cookies (anonymous GET is sent to the login page).
MATRIX: list[tuple[str, str, str, Any, tuple[int, int, int, int]]] = [
    ("GET", "/", "page", None, (303, 303, 303, 303)),
    ("GET", "/login", "page", None, (200, 200, 200, 200)),
    ("POST", "/login", "page", {"username": "clinician", "password": "x"}, (403, 403, 403, 403)),
    ("GET", "/api/openapi.json", "api", None, (401, 200, 200, 200)),
    ("GET", "/static/app.css", "page", None, (200, 200, 200, 200)),
    ("GET", "/api/patients", "api", None, (401, 200, 403, 403)),
    ("GET", f"/api/patients/{PID}/summary", "api", None, (401, 200, 403, 403)),
    ("GET", f"/api/patients/{PID}/ask?q=cough", "api", None, (401, 200, 403, 403)),
    ("GET", "/api/cohort", "api", None, (401, 403, 200, 200)),
    ("GET", "/api/models", "api", None, (401, 200, 200, 200)),
    ("GET", "/api/models/cxr-pneumonia", "api", None, (401, 200, 200, 200)),
    ("GET", "/api/audit/verify", "api", None, (401, 403, 403, 200)),
    ("GET", "/cds-services", "api", None, (401, 200, 200, 200)),
    ("POST", CDS, "api", HOOK, (401, 200, 403, 403)),
    ("POST", f"{CDS}/feedback", "api", FEEDBACK, (401, 200, 403, 403)),
    ("GET", "/patients", "page", None, (303, 200, 403, 403)),
    ("GET", f"/patients/{PID}", "page", None, (303, 200, 403, 403)),
    ("GET", f"/patients/{PID}/evidence?ref=Condition/cond-htn", "page", None, (303, 200, 403, 403)),
    ("GET", f"/patients/{PID}/ask?q=cough", "page", None, (303, 200, 403, 403)),
    ("GET", f"/patients/{PID}/imaging/0/heatmap", "page", None, (303, 200, 403, 403)),
    ("GET", f"/patients/{PID}/imaging/0/image", "page", None, (303, 200, 403, 403)),
    ("POST", f"/patients/{PID}/decisions", "page", "accept", (401, 303, 403, 403)),
    ("POST", f"/patients/{PID}/sign", "page", {}, (401, 303, 403, 403)),
    ("GET", f"/patients/{PID}/signed/1", "page", None, (303, 200, 403, 403)),
    ("GET", f"/patients/{PID}/signed/1/composition.json", "page", None, (303, 200, 403, 403)),
    ("GET", "/models", "page", None, (303, 200, 200, 200)),
    ("GET", "/models/cxr-pneumonia", "page", None, (303, 200, 200, 200)),
    ("GET", "/research", "page", None, (303, 403, 200, 200)),
    ("GET", "/admin/users", "page", None, (303, 403, 403, 200)),
    (
        "POST",
        "/admin/users",
        "page",
        {"username": "newbie", "role": "researcher", "password": "long enough pw"},
        (401, 403, 403, 303),
    ),
    ("POST", "/admin/users/clinician/token", "page", {}, (401, 403, 403, 200)),
    ("POST", "/admin/users/newbie/revoke-tokens", "page", {}, (401, 403, 403, 303)),
    ("POST", "/admin/users/newbie/disable", "page", {}, (401, 403, 403, 303)),
    ("POST", "/admin/users/newbie/enable", "page", {}, (401, 403, 403, 303)),
    ("POST", "/admin/users/newbie/unlock", "page", {}, (401, 403, 403, 303)),
    ("GET", "/account/password", "page", None, (303, 200, 200, 200)),
    ("POST", "/account/password", "page", {"current": "wrong", "new": "x", "confirm": "x"}, (401, 400, 400, 400)),
    ("GET", "/healthz", "page", None, (200, 200, 200, 200)),
    ("POST", "/logout", "page", {}, (401, 303, 303, 303)),
]
WHO = ("anonymous", "clinician", "researcher", "admin")


def _first_item(ws: Workspace) -> str:
    page = ws.clients["clinician"].get(f"/patients/{PID}").text
    found = re.search(r'name="item" value="([^"]+)"', page)
    assert found
    return found.group(1)


def _template(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(path)) + "$")


def test_the_matrix_covers_every_route(ws_sqlite: Workspace) -> None:
    """A route added to the app without a row here fails this test."""
    app: Any = ws_sqlite.app
    routes = {(m.upper(), path) for path, ops in app.openapi()["paths"].items() for m in ops}
    routes |= {("GET", "/healthz"), ("GET", "/static/{path}")}  # outside the schema
    rows = [(m, p.split("?")[0]) for m, p, *_ in MATRIX]
    missing = sorted(f"{m} {t}" for m, t in routes if not any(rm == m and _template(t).match(rp) for rm, rp in rows))
    assert not missing, "routes without a row in the access matrix: " + ", ".join(missing)


def _feedback(ws: Workspace) -> dict[str, Any]:
    r = ws.client().post(CDS, json=HOOK, headers=ws.bearer("clinician"))
    card = r.json()["cards"][0]["uuid"]
    return {"feedback": [{"card": card, "outcome": "accepted", "outcomeTimestamp": "2026-01-01T00:00:00Z"}]}


def test_access_matrix(ws: Workspace) -> None:
    item = _first_item(ws)
    feedback = _feedback(ws)
    csrf = {role: ws.csrf(role) for role in WHO[1:]}
    anonymous = ws.client()
    actual: list[tuple[str, str, tuple[int, ...]]] = []
    for method, path, kind, body, _ in MATRIX:
        row = []
        for who in WHO:
            if kind == "api":
                client = anonymous if who == "anonymous" else ws.client()
                headers = {} if who == "anonymous" else ws.bearer(who)
                r = client.request(method, path, json=feedback if body == FEEDBACK else body, headers=headers)
            else:
                client = anonymous if who == "anonymous" else ws.clients[who]
                data = None
                if method == "POST":
                    data = {"item": item, "action": "accept"} if body == "accept" else dict(body)
                    data["csrf_token"] = csrf.get(who, "")
                r = client.request(method, path, data=data)
            row.append(r.status_code)
        actual.append((method, path, tuple(row)))
    expected = [(m, p, codes) for m, p, _, _, codes in MATRIX]
    mismatches = [f"{a[0]} {a[1]}: got {a[2]}, want {e[2]}" for a, e in zip(actual, expected, strict=True) if a != e]
    assert not mismatches, "access matrix (anonymous, clinician, researcher, admin):\n" + "\n".join(mismatches)


def test_anonymous_page_redirects_to_login_with_next(ws: Workspace) -> None:
    r = ws.client().get(f"/patients/{PID}")
    assert r.status_code == 303 and r.headers["location"] == f"/login?next=/patients/{PID}"


def test_token_does_not_open_pages_and_cookie_does_not_open_the_api(ws: Workspace) -> None:
    assert ws.client().get("/patients", headers=ws.bearer("clinician")).status_code == 303
    r = ws.clients["clinician"].get("/api/patients")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def test_researcher_sees_only_deidentified_counts(ws: Workspace) -> None:
    r = ws.client().get("/api/cohort", headers=ws.bearer("researcher"))
    assert r.status_code == 200
    body = r.text
    assert "Zebulon" not in body and "Canaryfield" not in body and PID not in body
    # built from the research lake only: this store has none, so nothing is counted (and a total under 11 is hidden)
    assert r.json()["patients"] == "<11" and r.json()["sex"] == {} and r.json()["source"] == "research lake"
    page = ws.clients["researcher"].get("/research").text
    assert "Canaryfield" not in page and "&lt;11 patients" in page
