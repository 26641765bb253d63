"""A patient's record: FHIR resources indexed by ``Type/id``, references resolved, notes decoded.

Plain data: a :class:`PatientRecord` is built from resource dicts (however they were read) by
:func:`build_record`; nothing here knows about files or the lake.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from carelens.core import InputError
from carelens.core.fhir import patient_of, subject_reference

#: Resource types that belong to no patient but are referenced by those that do.
SHARED_TYPES = frozenset(
    {"Practitioner", "PractitionerRole", "Organization", "Location", "Medication", "Substance", "HealthcareService"}
)
#: Types the summary reads: one of these that names no patient is left out with a warning.
CLINICAL_TYPES = frozenset(
    {
        "AllergyIntolerance",
        "CarePlan",
        "Condition",
        "Device",
        "DeviceUseStatement",
        "DiagnosticReport",
        "DocumentReference",
        "Encounter",
        "Goal",
        "Immunization",
        "MedicationRequest",
        "MedicationStatement",
        "Observation",
        "Procedure",
        "ServiceRequest",
    }
)


@dataclass(frozen=True)
class Note:
    """A decoded clinical note: ``id`` is ``DocumentReference/<id>``; spans index ``text``."""

    id: str
    text: str
    date: str | None
    title: str


@dataclass
class PatientRecord:
    """One patient's resources (``"Type/id"`` -> resource), notes and what could not be read."""

    patient_id: str
    patient: dict[str, Any] | None
    resources: dict[str, dict[str, Any]]
    notes: list[Note] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    _by_type: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)
    _by_uuid: dict[str, str] = field(default_factory=dict, repr=False)
    _notes_by_id: dict[str, Note] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for key, res in self.resources.items():
            by_type[res["resourceType"]].append(res)
            self._by_uuid[key.split("/", 1)[1]] = key
        self._by_type = dict(by_type)

    def of_type(self, resource_type: str) -> list[dict[str, Any]]:
        """All resources of one type (the patient's and shared ones)."""
        return self._by_type.get(resource_type, [])

    def key_of(self, reference: str | None) -> str | None:
        """The ``Type/id`` key a reference points to (``Type/id``, ``urn:uuid:id`` or an absolute
        URL ending in ``Type/id``), or None when it does not resolve in this record."""
        if not reference:
            return None
        if reference.startswith("urn:uuid:"):
            return self._by_uuid.get(reference[9:])
        parts = reference.split("?")[0].rstrip("/").split("/")
        if len(parts) >= 2:
            key = f"{parts[-2]}/{parts[-1]}"
            if key in self.resources:
                return key
        if len(parts) >= 4 and parts[-2] == "_history":
            key = f"{parts[-4]}/{parts[-3]}"
            return key if key in self.resources else None
        return None

    def resolve(self, reference: str | dict[str, Any] | None) -> dict[str, Any] | None:
        """The resource a reference (string or ``{"reference": ...}``) points to, or None."""
        if isinstance(reference, dict):
            reference = reference.get("reference")
        key = self.key_of(reference)
        return self.resources.get(key) if key else None

    def note(self, key: str) -> Note | None:
        """The decoded note of ``DocumentReference/<id>``."""
        if len(self._notes_by_id) != len(self.notes):
            self._notes_by_id = {n.id: n for n in self.notes}
        return self._notes_by_id.get(key)

    @property
    def size(self) -> int:
        """Number of resources (the benchmark's record size)."""
        return len(self.resources)


def resource_key(resource: dict[str, Any]) -> str:
    """``Type/id`` of a resource."""
    return f"{resource['resourceType']}/{resource['id']}"


def patient_ids(resources: Iterable[dict[str, Any]]) -> list[str]:
    """Ids of the Patient resources among ``resources``, in order."""
    return [r["id"] for r in resources if r.get("resourceType") == "Patient" and r.get("id")]


def build_record(resources: Iterable[dict[str, Any]], patient: str | None = None) -> PatientRecord:
    """Index one patient's resources.

    ``patient`` picks the patient when the resources hold several; without it there must be at
    most one Patient. Resources about other patients are left out; shared ones (Practitioner,
    Medication, ...) are kept for reference resolution. Problems that do not stop a summary
    (no Patient resource, resources without an id, undecodable notes) become ``warnings``.
    """
    items = [r for r in resources if isinstance(r, dict)]
    warnings: list[str] = []
    ids = patient_ids(items)
    if patient is None:
        if len(ids) > 1:
            raise InputError(f"the source holds {len(ids)} patients; choose one with --patient ID")
        if ids:
            patient = ids[0]
        else:
            subjects = {patient_of(r) for r in items} - {None}
            if len(subjects) > 1:
                raise InputError(
                    f"the source has no Patient resource and is about {len(subjects)} patients; "
                    "choose one with --patient ID"
                )
            patient = subjects.pop() if subjects else "unknown"
            warnings.append("the source has no Patient resource; summarising what refers to one patient")
    elif ids and patient not in ids:
        raise InputError("the patient given with --patient is not in the source")
    elif not ids:
        warnings.append("the source has no Patient resource; summarising what refers to the given patient")

    kept: dict[str, dict[str, Any]] = {}
    no_id = no_patient = 0
    for res in items:
        rtype, rid = res.get("resourceType"), res.get("id")
        if not isinstance(rtype, str) or not isinstance(rid, str) or not rid:
            no_id += 1
            continue
        if rtype == "Patient":
            if rid == patient:
                kept[f"Patient/{rid}"] = res
            continue
        if rtype not in SHARED_TYPES and patient_of(res) != patient:
            no_patient += rtype in CLINICAL_TYPES and subject_reference(res) is None
            continue
        kept[f"{rtype}/{rid}"] = res
    if no_id:
        warnings.append(f"{no_id} resources without resourceType or id were skipped")
    if no_patient:
        warnings.append(f"{no_patient} clinical resources name no patient (no subject) and were left out")

    assert patient is not None
    record = PatientRecord(patient_id=patient, patient=kept.get(f"Patient/{patient}"), resources=kept)
    record.notes, note_warnings = decode_notes(record.of_type("DocumentReference"))
    record.warnings = warnings + note_warnings + dangling_references(record)
    return record


def decode_notes(doc_refs: list[dict[str, Any]]) -> tuple[list[Note], list[str]]:
    """Decode the text attachments of DocumentReferences, newest first; say which were skipped
    and why (one warning per reason, with a count)."""
    from carelens.ingest import decode_note

    notes: list[Note] = []
    skipped: Counter[str] = Counter()
    for doc in doc_refs:
        try:
            decoded = decode_note(doc)
        except InputError as err:
            skipped[err.reason] += 1
            continue
        if not decoded.text.strip():
            skipped["note is empty"] += 1
            continue
        notes.append(Note(id=resource_key(doc), text=decoded.text, date=decoded.date, title=decoded.type or "note"))
    notes.sort(key=lambda n: n.date or "", reverse=True)
    return notes, [f"{n} notes skipped: {reason}" for reason, n in sorted(skipped.items())]


#: Reference fields whose targets the summary needs (other references are not checked).
_CHECKED_REFS = ("medicationReference", "encounter", "subject", "patient")


def dangling_references(record: PatientRecord) -> list[str]:
    """One warning counting the references the summary needs that point to nothing in the record."""
    dangling = 0
    for res in record.resources.values():
        for name in _CHECKED_REFS:
            ref = res.get(name)
            if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
                target = ref["reference"]
                if "?" in target:  # conditional reference (Bulk export): not resolvable by design
                    continue
                if record.key_of(target) is None:
                    dangling += 1
    return [f"{dangling} references point to resources that are not in the record"] if dangling else []
