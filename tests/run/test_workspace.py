"""The shared Synthea bundles and the Bulk export: ingest, run, serve; a clinician lists every
Patient of the inputs (paged, searched) and opens each summary."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
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
