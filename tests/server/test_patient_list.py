"""Paging the patient list by cursor: each API page names the next one's ``after``; the HTML list
links to the page after its last row; a cursor naming no patient is refused with a reason."""

from __future__ import annotations

from tests.server.conftest import Workspace
from tests.server.fixture_store import OTHER, PID


def test_api_pages_by_cursor(ws_sqlite: Workspace) -> None:
    client, auth = ws_sqlite.client(), ws_sqlite.bearer("clinician")
    first = client.get("/api/patients", params={"limit": 1}, headers=auth).json()
    assert [p["id"] for p in first["patients"]] == [OTHER] and first["total"] == 2 and first["next"] == OTHER
    second = client.get("/api/patients", params={"limit": 1, "after": first["next"]}, headers=auth).json()
    assert [p["id"] for p in second["patients"]] == [PID] and second["next"] == PID
    last = client.get("/api/patients", params={"limit": 1, "after": PID}, headers=auth).json()
    assert last["patients"] == [] and last["next"] is None
    assert client.get("/api/patients", headers=auth).json()["next"] is None  # one page holds both
    refused = client.get("/api/patients", params={"after": "no-such-patient"}, headers=auth)
    assert refused.status_code == 400 and "cursor" in refused.text


def test_html_list_after_a_row(ws_sqlite: Workspace) -> None:
    browser = ws_sqlite.login("clinician")
    page = browser.get("/patients", params={"after": OTHER})
    assert page.status_code == 200 and f"/patients/{PID}" in page.text and f"/patients/{OTHER}" not in page.text
    assert "first page" in page.text
    whole = browser.get("/patients")
    assert f"/patients/{PID}" in whole.text and f"/patients/{OTHER}" in whole.text and "after=" not in whole.text
    assert browser.get("/patients", params={"after": "no-such-patient"}).status_code == 400
