"""A small, fully known clinical store for the workspace tests: one FHIR bundle with two
patients (with planted canary identifiers), saved imaging / PGx / findings outputs, a model
card, and a summariser that follows the ``carelens summarize`` JSON contract."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from PIL import Image

from carelens.models import Registry

CANARY_NAME = "Zebulon Canaryfield"
CANARY_SSN = "999-12-3456"
PID = "pat-canary-1"
OTHER = "pat-other-2"
NOTE = (
    "HISTORY: Mr. Zebulon Canaryfield, SSN 999-12-3456, seen for cough.\n"
    "Patient denies chest pain. Father had a myocardial infarction at 50.\n"
    "Assessment: possible community-acquired pneumonia."
)
CITED = "denies chest pain"
WEIGHTS = b"test weights of the image model"
IMAGE_MODEL = hashlib.sha256(WEIGHTS).hexdigest()  # image packages name their model by the weights' hash
MODEL_META = {
    "name": "cxr-pneumonia",
    "version": "1.0.0",
    "arch": "tiny-cnn",
    "labels": ["normal", "pneumonia"],
    "card": {
        "developer": "carelens tests",
        "intended_use": "Flag possible pneumonia on chest radiographs for clinician review.",
        "limitations": "Trained on 28x28 images.",
    },
    "metrics": {"auc": 0.9},
}


def _patient(pid: str, given: str, family: str, gender: str, born: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"use": "official", "given": [given], "family": family}],
        "gender": gender,
        "birthDate": born,
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-ssn", "value": CANARY_SSN}],
    }


def bundle() -> dict[str, Any]:
    first, last = CANARY_NAME.split()
    resources = [
        _patient(PID, first, last, "male", "1961-04-02"),
        _patient(OTHER, "Ada", "Other", "female", "1990-01-01"),
        {
            "resourceType": "Condition",
            "id": "cond-htn",
            "subject": {"reference": f"Patient/{PID}"},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003"}], "text": "Hypertension"},
            "clinicalStatus": {"coding": [{"code": "active"}]},
        },
        {
            "resourceType": "MedicationRequest",
            "id": "med-clopi",
            "status": "active",
            "subject": {"reference": f"Patient/{PID}"},
            "medicationCodeableConcept": {"text": "Clopidogrel 75 MG Oral Tablet"},
        },
        {
            "resourceType": "Observation",
            "id": "obs-k",
            "status": "final",
            "subject": {"reference": f"Patient/{PID}"},
            "code": {"text": "Potassium"},
            "valueQuantity": {"value": 6.1, "unit": "mmol/L"},
            "interpretation": [{"coding": [{"code": "H"}]}],
        },
        {
            "resourceType": "DocumentReference",
            "id": "note-hp",
            "status": "current",
            "subject": {"reference": f"Patient/{PID}"},
            "content": [
                {"attachment": {"contentType": "text/plain", "data": base64.b64encode(NOTE.encode()).decode()}}
            ],
        },
    ]
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": f"urn:uuid:{r['id']}", "resource": r, "request": {"method": "POST", "url": r["resourceType"]}}
            for r in resources
        ],
    }


def summarize(source: Any, patient: str | None = None) -> dict[str, Any]:
    """Contract-shaped summary built from the bundle (what ``carelens.record.summarize`` returns)."""
    data = json.loads(Path(source).read_text())
    res = {f"{e['resource']['resourceType']}/{e['resource']['id']}": e["resource"] for e in data["entry"]}
    if patient != PID:
        return {"patient": patient, "sections": [], "needs_attention": [], "dropped": []}
    start = NOTE.index(CITED)
    potassium = {
        "text": "Potassium 6.1 mmol/L (high)",
        "codes": [],
        "citations": [{"resource": "Observation/obs-k", "note_span": None}],
    }
    return {
        "patient": patient,
        "sections": [
            {
                "code": "11450-4",
                "title": "Problems",
                "empty_reason": None,
                "items": [
                    {
                        "text": res["Condition/cond-htn"]["code"]["text"],
                        "codes": ["http://snomed.info/sct|38341003"],
                        "citations": [{"resource": "Condition/cond-htn", "note_span": None}],
                    },
                    {
                        "text": "No chest pain reported",
                        "codes": [],
                        "citations": [
                            {"resource": "DocumentReference/note-hp", "note_span": [start, start + len(CITED)]}
                        ],
                    },
                ],
            },
            {
                "code": "10160-0",
                "title": "Medications",
                "empty_reason": None,
                "items": [
                    {
                        "text": "Clopidogrel 75 MG Oral Tablet",
                        "codes": [],
                        "citations": [{"resource": "MedicationRequest/med-clopi", "note_span": None}],
                    }
                ],
            },
            {"code": "30954-2", "title": "Results", "empty_reason": None, "items": [potassium]},
            {"code": "48765-2", "title": "Allergies", "empty_reason": "no allergies recorded", "items": []},
        ],
        "needs_attention": [potassium],
        "dropped": [],
    }


def write_store(root: Path) -> Path:
    """Write the store under ``root`` (fhir/, outputs/, models/) and return it."""
    (root / "fhir").mkdir(parents=True, exist_ok=True)
    (root / "fhir" / "bundle.json").write_text(json.dumps(bundle()))
    (root / "fhir" / "not-json.json").write_bytes(b"\x00\x01 binary")
    imaging = root / "outputs" / "imaging"
    imaging.mkdir(parents=True)
    Image.new("L", (28, 28), 90).save(imaging / "cxr.png")
    Image.new("RGBA", (28, 28), (255, 0, 0, 120)).save(imaging / "cxr.heatmap.png")
    predictions = [
        {
            "image": "DICOM series 1",
            "png": "cxr.png",
            "heatmap": "cxr.heatmap.png",
            "finding": "pneumonia",
            "probability": 0.55,
            "prediction_set": ["normal", "pneumonia"],
            "abstain": True,
            "model_id": IMAGE_MODEL,
            "model_version": "1.0.0",
        },
        {
            "image": "DICOM series 2",
            "finding": "normal",
            "probability": 0.08,
            "prediction_set": ["normal"],
            "model_id": IMAGE_MODEL,
            "model_version": "1.0.0",
        },
    ]
    (imaging / f"{PID}.json").write_text(json.dumps(predictions))
    genomics = root / "outputs" / "genomics"
    genomics.mkdir(parents=True)
    pgx = {
        "sample": "S1",
        "genes": [
            {
                "gene": "CYP2C19",
                "diplotypes": ["*1/*2"],
                "phenotype": "Intermediate Metabolizer",
                "not_assayed": [],
                "reason": None,
            }
        ],
        "drugs": [{"drug": "clopidogrel", "gene": "CYP2C19", "recommendation": "consider an alternative"}],
        "model_id": "carelens-pgx",
        "model_version": "0.1.0",
    }
    (genomics / f"{PID}.pgx.json").write_text(json.dumps(pgx))
    findings = [
        {"gene": "BRCA2", "variant": "c.5946del", "significance": "Pathogenic", "model_id": "carelens-findings"}
    ]
    (genomics / f"{PID}.findings.json").write_text(json.dumps(findings))
    Registry(root).register_weights(WEIGHTS, MODEL_META)
    return root
