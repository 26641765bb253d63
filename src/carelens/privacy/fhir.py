"""FHIR de-identification (placeholder filled below)."""

from __future__ import annotations

from pathlib import Path

from carelens.privacy.context import PatientContext
from carelens.privacy.keys import KeyService


def load_patients(paths: list[Path], keys: KeyService) -> dict[str, PatientContext]:
    """The ``PatientContext`` of every Patient resource in the given FHIR files."""
    from carelens.core.quarantine import BatchResult
    from carelens.ingest import read_fhir

    out: dict[str, PatientContext] = {}
    for item in read_fhir(paths, BatchResult()):
        if item.resource_type == "Patient":
            out[item.id] = PatientContext.from_fhir(item.resource, keys)
    return out
