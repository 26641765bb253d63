"""FHIR de-identification (placeholder filled below)."""

from __future__ import annotations

from pathlib import Path

from carelens.privacy.context import PatientContext
from carelens.privacy.keys import KeyService


def load_patients(paths: list[Path], keys: KeyService) -> dict[str, PatientContext]:
    """The ``PatientContext`` of every Patient in the given FHIR files, by patient id and by the
    id of each DocumentReference of that patient (notes are often named by document id)."""
    from carelens.core.quarantine import BatchResult
    from carelens.ingest import read_fhir

    out: dict[str, PatientContext] = {}
    documents: dict[str, str] = {}
    for item in read_fhir(paths, BatchResult()):
        if item.resource_type == "Patient":
            out[item.id] = PatientContext.from_fhir(item.resource, keys)
        elif item.resource_type == "DocumentReference" and item.patient_id:
            documents[item.id] = item.patient_id
    for doc_id, patient_id in documents.items():
        if patient_id in out:
            out[doc_id] = out[patient_id]
    return out
