"""Load a patient's record from a PATIENT_SOURCE: a FHIR bundle or NDJSON file, a folder of
them (with ``patient`` when it holds several patients), or the id of a patient in the lake."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from carelens.core import BatchResult, InputError
from carelens.core.fhir import patient_of
from carelens.record.model import SHARED_TYPES, PatientRecord, build_record


def read_resources(path: Path) -> tuple[list[dict[str, Any]], BatchResult]:
    """Every resource in a FHIR file or folder, and the batch that says what was quarantined."""
    from carelens.ingest import read_fhir

    batch = BatchResult()
    resources = [item.resource for item in read_fhir([path], batch)]
    if not resources and batch.quarantined:
        raise InputError(f"nothing readable in the source: {batch.quarantined[0].reason}")
    if not resources:
        raise InputError("the source holds no FHIR resources")
    return resources, batch


def load_record(source: str | Path, patient: str | None = None, store: Path | None = None) -> PatientRecord:
    """The record of one patient from a file, a folder or a stored patient id."""
    path = Path(source)
    if path.exists():
        resources, batch = read_resources(path)
        record = build_record(resources, patient)
        record.warnings = _quarantine_warnings(batch) + record.warnings
        return record
    if patient is not None and patient != str(source):
        raise InputError("the source is neither a file, a folder nor a stored patient id")
    return stored_record(str(source), store)


def stored_record(patient_id: str, store: Path | None = None) -> PatientRecord:
    """The record of one patient of ``store``'s lake."""
    return build_record(_stored_resources(patient_id, store), patient_id)


def load_records(path: Path) -> Iterator[PatientRecord]:
    """Every patient's record in a file or folder (resources read once, grouped by patient)."""
    resources, _ = read_resources(path)
    shared = [r for r in resources if r.get("resourceType") in SHARED_TYPES]
    by_patient: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for res in resources:
        if res.get("resourceType") == "Patient":
            by_patient[res["id"]].append(res)
        elif res.get("resourceType") not in SHARED_TYPES and (owner := patient_of(res)) is not None:
            by_patient[owner].append(res)
    for patient_id, own in by_patient.items():
        if any(r.get("resourceType") == "Patient" for r in own):
            yield build_record(own + shared, patient_id)


def _stored_resources(patient_id: str, store: Path | None) -> list[dict[str, Any]]:
    import orjson

    from carelens.store import Lake

    lake = Lake(store)
    if lake.is_empty():
        raise InputError("the source is neither a file, a folder nor a patient id in the lake (the lake is empty)")
    table = lake.patient_resources(patient_id)
    if table.num_rows == 0:
        raise InputError("the source is neither a file, a folder nor a patient id in the lake")
    return [orjson.loads(raw) for raw in table.column("json").to_pylist()]


def _quarantine_warnings(batch: BatchResult) -> list[str]:
    counts: dict[str, int] = defaultdict(int)
    for item in batch.quarantined:
        counts[item.reason] += 1
    return [f"{n} items quarantined while reading: {reason}" for reason, n in sorted(counts.items())]
