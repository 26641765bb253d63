"""Fixtures of the privacy tests: a site secret and a patient with canary identifiers."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from carelens.privacy.keys import KeyService

CANARY = {
    "given": "Zebulon",
    "family": "Quixley",
    "mrn": "MRN88421907",
    "ssn": "987-65-4329",
    "phone": "(617) 555-0199",
    "birth": "1951-07-23",
    "line": "4471 Thornbury Lane",
    "city": "Wellfleet",
    "zip": "02667",
}


@pytest.fixture
def keys() -> KeyService:
    return KeyService(b"carelens-test-secret-0123456789abcdef")


@pytest.fixture
def secret_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site secret file named by CARELENS_SECRET_FILE."""
    path = tmp_path / "site.key"
    path.write_text("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n")
    monkeypatch.setenv("CARELENS_SECRET_FILE", str(path))
    monkeypatch.delenv("CARELENS_SECRET", raising=False)
    return path


@pytest.fixture
def canary_patient() -> dict:
    c = CANARY
    return {
        "resourceType": "Patient",
        "id": "pat-canary-1",
        "identifier": [
            {"system": "http://hospital.example.org/mrn", "value": c["mrn"]},
            {"system": "http://hl7.org/fhir/sid/us-ssn", "value": c["ssn"]},
        ],
        "name": [{"family": c["family"], "given": [c["given"]]}],
        "telecom": [{"system": "phone", "value": c["phone"]}],
        "birthDate": c["birth"],
        "address": [{"line": [c["line"]], "city": c["city"], "state": "MA", "postalCode": c["zip"]}],
        "text": {"status": "generated", "div": f"<div>{c['given']} {c['family']}, born {c['birth']}</div>"},
    }


def canary_note() -> str:
    c = CANARY
    return (
        f"PT {c['given'].upper()} {c['family'].upper()} (MRN {c['mrn']}) SEEN 7/23/2019. "
        f"Lives at {c['line']}, {c['city']}, MA {c['zip']}. Call {c['phone']}. SSN {c['ssn']}. "
        f"DOB 07/23/1951. Mr. Quixly tolerated diet.\n"
    )


def canary_bundle(patient: dict) -> dict:
    """A transaction bundle of the canary patient with a canary in every free-text field."""
    c = CANARY
    pid = patient["id"]
    ref = {"reference": f"urn:uuid:{pid}", "display": f"{c['given']} {c['family']}"}
    note = canary_note()
    resources = [
        patient,
        {"resourceType": "Encounter", "id": "enc-1", "status": "finished", "subject": ref,
         "period": {"start": "2019-07-23T10:00:00Z"},
         "participant": [{"individual": {"display": f"Dr. {c['family']}"}}]},
        {"resourceType": "Observation", "id": "obs-1", "status": "final", "subject": ref,
         "code": {"text": "Comment"}, "effectiveDateTime": "2019-07-23",
         "valueString": f"Call {c['given']} at {c['phone']}"},
        {"resourceType": "Condition", "id": "cond-1", "subject": ref,
         "note": [{"text": f"Reported by {c['given']} {c['family']}, MRN {c['mrn']}"}]},
        {"resourceType": "DocumentReference", "id": "doc-1", "status": "current", "subject": ref,
         "content": [{"attachment": {"contentType": "text/plain",
                                     "data": base64.b64encode(note.encode()).decode()}}],
         "description": f"Note for {c['family']}"},
    ]  # fmt: skip
    entries = [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def write_canary_source(tmp_path: Path, patient: dict) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "bundle.json").write_text(json.dumps(canary_bundle(patient)))
    return src
