"""The shared Synthea bundles and the Bulk export: ingest, run, serve; a clinician lists every
Patient of the inputs (paged, searched) and opens each summary."""

from __future__ import annotations

import html
import re
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from carelens.ingest import ingest
from carelens.run import run
from carelens.server import ServerSettings, create_app
from carelens.store import appdb
from tests.server.conftest import login


def _input_patients(*folders: Path) -> set[str]:
    ids = set()
    for folder in folders:
        for path in folder.glob("*.json"):
            for entry in orjson.loads(path.read_bytes()).get("entry", []):
                if entry.get("resource", {}).get("resourceType") == "Patient":
                    ids.add(entry["resource"]["id"])
        for path in folder.glob("Patient*.ndjson"):
            ids |= {orjson.loads(line)["id"] for line in path.read_bytes().splitlines() if line.strip()}
    return ids


@pytest.mark.slow
def test_a_clinician_sees_every_patient_of_the_inputs(shared_data: Path, tmp_path: Path) -> None:
    synthea, bulk = shared_data / "fhir" / "synthea-r4", shared_data / "fhir" / "bulk-10-patients"
    store = tmp_path / "store"
    assert not ingest([synthea, bulk], store).quarantined
    report = run(store).as_dict()
    expected = _input_patients(synthea, bulk)
    assert report["patients"] == report["processed"] == len(expected) and report["failed"] == []

    db_url = f"sqlite:///{store / 'app.sqlite'}"
    with Session(appdb.get_engine(db_url)) as s, s.begin():
        token = appdb.create_token(s, appdb.add_user(s, "doc", "correct horse battery", "clinician"))
    client = TestClient(create_app(ServerSettings(store=store, db_url=db_url)))
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/patients").status_code == 401
    listed: list[dict] = []
    while True:
        page = client.get("/api/patients", params={"limit": 15, "offset": len(listed)}, headers=auth).json()
        assert page["total"] == len(expected)
        listed += page["patients"]
        if len(page["patients"]) < 15:
            break
    assert {p["id"] for p in listed} == expected and len(listed) == len(expected)
    keyset: list[dict] = []  # the same list by cursor: each page names the next one's ``after``
    page = client.get("/api/patients", params={"limit": 15}, headers=auth).json()
    while True:
        keyset += page["patients"]
        if page["next"] is None:
            break
        page = client.get("/api/patients", params={"limit": 15, "after": page["next"]}, headers=auth).json()
    assert keyset == listed
    assert client.get("/api/patients", params={"after": "no-such-id"}, headers=auth).status_code == 400
    names = [p["name"].lower() for p in listed]
    assert names == sorted(names)  # by name
    for p in listed:
        r = client.get(f"/api/patients/{p['id']}/summary", headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["patient"] == p["id"] and r.json()["sections"]
    # search by name, MRN and birth date, through SQL on the run's patient index
    one = next(p for p in listed if p["mrn"])
    for q in (one["name"].split()[-1], one["mrn"], one["birth_date"]):
        found = client.get("/api/patients", params={"q": q}, headers=auth).json()
        assert one["id"] in {x["id"] for x in found["patients"]} and found["total"] < len(expected)
    assert client.get("/api/patients", params={"q": "no such patient"}, headers=auth).json()["total"] == 0
    assert client.get("/api/patients", params={"limit": 0}, headers=auth).status_code == 422
    # the pages: the list (searchable) and a patient's page with the run's summary
    browser = TestClient(create_app(ServerSettings(store=store, db_url=db_url)), follow_redirects=False)
    login(browser, "doc", "correct horse battery")
    page = browser.get("/patients", params={"q": one["mrn"]})
    assert page.status_code == 200 and one["name"] in page.text and "1 patient" in page.text
    if len(listed) > 100:  # the list's next page is the one after its last row
        page = browser.get("/patients")
        assert f'after={listed[99]["id"]}"' in page.text
        page = browser.get("/patients", params={"after": listed[99]["id"]})
        assert listed[100]["name"] in page.text and "first page" in page.text
    page = browser.get(f"/patients/{one['id']}")
    assert page.status_code == 200 and one["name"] in page.text


def test_a_clinician_asks_a_stored_record_and_opens_each_cited_source(shared_data: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    ingest([shared_data / "fhir" / "bulk-10-patients"], store)
    run(store)
    pid = "3af3708d-41f1-cd80-f3dd-ec5ac76072bf"  # Aspirin 81 MG Oral Tablet, status stopped
    db_url = f"sqlite:///{store / 'app.sqlite'}"
    with Session(appdb.get_engine(db_url)) as s, s.begin():
        token = appdb.create_token(s, appdb.add_user(s, "doc", "correct horse battery", "clinician"))
        appdb.add_user(s, "res", "correct horse battery", "researcher")
    app = create_app(ServerSettings(store=store, db_url=db_url))
    client, auth = TestClient(app), {"Authorization": f"Bearer {token}"}
    question = "is the patient on anticoagulation?"

    answer = client.get(f"/api/patients/{pid}/ask", params={"q": question}, headers=auth).json()
    assert answer["found"] and answer["patient"] == pid and answer["expanded"] == ["B01A antithrombotic"]
    assert any(p["citation"]["resource"].startswith("MedicationRequest/") and "stopped" in p["text"]
               for p in answer["passages"])  # fmt: skip
    top = client.get(f"/api/patients/{pid}/ask", params={"q": question, "top": 2}, headers=auth).json()
    assert top["passages"] == answer["passages"][:2]
    moon = client.get(f"/api/patients/{pid}/ask", params={"q": "been to the moon?"}, headers=auth).json()
    assert not moon["found"] and moon["passages"] == [] and moon["message"] == "nothing relevant found"
    assert client.get(f"/api/patients/{pid}/ask", params={"q": "  "}, headers=auth).status_code == 400
    assert client.get(f"/api/patients/{pid}/ask", params={"q": "x" * 301}, headers=auth).status_code == 422
    assert client.get("/api/patients/no-such-patient/ask", params={"q": question}, headers=auth).status_code == 404

    browser = TestClient(app, follow_redirects=False)
    login(browser, "doc", "correct horse battery")
    assert f'action="/patients/{pid}/ask"' in browser.get(f"/patients/{pid}").text
    page = browser.get(f"/patients/{pid}/ask", params={"q": question})
    assert page.status_code == 200 and "Search results, not an answer" in page.text
    sources = re.findall(r'href="(/patients/[^"]+/evidence\?[^"]+)"', page.text)
    assert len(sources) == len(answer["passages"])
    for href in sources:  # every cited source opens, a note with its span marked
        opened = browser.get(html.unescape(href))
        assert opened.status_code == 200 and ("<mark" in opened.text or "Resource JSON" in opened.text)
    assert "Nothing relevant found" in browser.get(f"/patients/{pid}/ask", params={"q": "been to the moon?"}).text
    assert browser.get(f"/patients/{pid}/ask").status_code == 200  # the empty form

    researcher = TestClient(app, follow_redirects=False)
    login(researcher, "res", "correct horse battery")
    assert researcher.get(f"/patients/{pid}/ask", params={"q": question}).status_code == 403
    with Session(appdb.get_engine(db_url)) as s:  # audited, without the question's words
        rows = [r for r in s.scalars(select(appdb.AuditEvent)) if r.action in {"api.ask", "view.ask"}]
    assert len(rows) == 6 and all(r.patient_id == pid for r in rows)
    assert not any("anticoagulation" in r.detail or "moon" in r.detail for r in rows)
