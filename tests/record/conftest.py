"""Fixtures of the record tests: small hand-made records and the shared Synthea data."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from carelens.record import PatientRecord
from carelens.record.sections import is_active_allergy, is_active_condition


def cited(items) -> set[str]:
    """The resources (``Type/id``) that these summary items cite."""
    return {c.resource for i in items for c in i.citations}


def active_facts(record: PatientRecord) -> dict[str, set[str]]:
    """The record's active problems, medications and allergies (``Type/id``) by IPS section code:
    a summary must cite each in its section."""
    return {
        "11450-4": {f"Condition/{c['id']}" for c in record.of_type("Condition") if is_active_condition(c)},
        "10160-0": {
            f"MedicationRequest/{m['id']}" for m in record.of_type("MedicationRequest") if m.get("status") == "active"
        },
        "48765-2": {
            f"AllergyIntolerance/{a['id']}" for a in record.of_type("AllergyIntolerance") if is_active_allergy(a)
        },
    }


def note_ref(note_id: str, text: str, date: str, patient: str = "p1", content_type: str = "text/plain") -> dict:
    """A DocumentReference carrying ``text`` as a base64 attachment."""
    return {
        "resourceType": "DocumentReference",
        "id": note_id,
        "status": "current",
        "subject": {"reference": f"Patient/{patient}"},
        "date": date,
        "type": {"text": "Progress note"},
        "content": [{"attachment": {"contentType": content_type, "data": base64.b64encode(text.encode()).decode()}}],
    }


def coded(system: str, code: str, name: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": name}], "text": name}


SCT = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"


@pytest.fixture
def small_resources() -> list[dict[str, Any]]:
    """One patient: hypertension (active), old pharyngitis (resolved), warfarin (active),
    a stopped statin, a high-criticality peanut allergy, a critical rising potassium."""
    p = {"reference": "Patient/p1"}
    return [
        {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1950-01-01"},
        {
            "resourceType": "Encounter",
            "id": "e1",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": p,
            "period": {"start": "2024-03-01T10:00:00Z"},
            "type": [coded(SCT, "185349003", "Encounter for check up")],
        },
        {
            "resourceType": "Condition",
            "id": "c1",
            "subject": p,
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "code": coded(SCT, "38341003", "Hypertension"),
            "onsetDateTime": "2015-06-01",
        },
        {
            "resourceType": "Condition",
            "id": "c2",
            "subject": p,
            "clinicalStatus": {"coding": [{"code": "resolved"}]},
            "code": coded(SCT, "195662009", "Acute viral pharyngitis (disorder)"),
            "onsetDateTime": "2020-01-01",
            "abatementDateTime": "2020-01-10",
        },
        {
            "resourceType": "MedicationRequest",
            "id": "m1",
            "status": "active",
            "intent": "order",
            "subject": p,
            "medicationCodeableConcept": coded(RXNORM, "855332", "Warfarin Sodium 5 MG Oral Tablet"),
            "authoredOn": "2023-01-05",
            "dosageInstruction": [{"text": "5 mg once daily"}],
        },
        {
            "resourceType": "MedicationRequest",
            "id": "m2",
            "status": "stopped",
            "intent": "order",
            "subject": p,
            "medicationCodeableConcept": coded(RXNORM, "259255", "atorvastatin 80 MG Oral Tablet"),
            "authoredOn": "2023-11-01",
        },
        {
            "resourceType": "AllergyIntolerance",
            "id": "a1",
            "patient": p,
            "criticality": "high",
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "category": ["food"],
            "code": coded(SCT, "91935009", "Allergy to peanut"),
            "recordedDate": "2010-02-02",
            "reaction": [{"manifestation": [coded(SCT, "39579001", "Anaphylaxis")]}],
        },
        {
            "resourceType": "Observation",
            "id": "k1",
            "status": "final",
            "subject": p,
            "category": [{"coding": [{"code": "laboratory"}]}],
            "code": coded(LOINC, "2823-3", "Potassium"),
            "effectiveDateTime": "2024-02-01",
            "valueQuantity": {"value": 5.0, "unit": "mmol/L"},
        },
        {
            "resourceType": "Observation",
            "id": "k2",
            "status": "final",
            "subject": p,
            "category": [{"coding": [{"code": "laboratory"}]}],
            "code": coded(LOINC, "2823-3", "Potassium"),
            "effectiveDateTime": "2024-03-01",
            "valueQuantity": {"value": 6.4, "unit": "mmol/L"},
            "interpretation": [{"coding": [{"code": "H"}]}],
        },
        {
            "resourceType": "Observation",
            "id": "s1",
            "status": "final",
            "subject": p,
            "category": [{"coding": [{"code": "social-history"}]}],
            "code": coded(LOINC, "72166-2", "Tobacco smoking status"),
            "effectiveDateTime": "2024-03-01",
            "valueCodeableConcept": coded(SCT, "8517006", "Former smoker"),
        },
    ]


@pytest.fixture(scope="session")
def synthea_bundles(shared_data: Path) -> list[Path]:
    files = sorted(p for p in (shared_data / "fhir" / "synthea-r4").glob("*.json") if "Information" not in p.name)
    if not files:
        pytest.skip("no Synthea bundles in the shared data")
    return files


@pytest.fixture(scope="session")
def bulk_dir(shared_data: Path) -> Path:
    path = shared_data / "fhir" / "bulk-10-patients"
    if not path.is_dir():
        pytest.skip("no bulk NDJSON set in the shared data")
    return path
