"""Small FHIR helpers used everywhere: which patient a resource belongs to, a patient's name."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: Where a resource names its patient, in the order they are looked at.
SUBJECT_FIELDS = ("subject", "patient", "beneficiary")
#: Objects and arrays inside one another that a resource may have (FHIR's deepest, nested Questionnaire
#: items, stay far below): the ingest quarantines a deeper one, the de-identifier's walk refuses it.
MAX_NESTING = 128


def subject_reference(resource: dict[str, Any]) -> str | None:
    """The first ``subject``/``patient``/``beneficiary`` reference of a resource, if any."""
    for name in SUBJECT_FIELDS:
        ref = resource.get(name)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            return str(ref["reference"])
    return None


def patient_in_reference(reference: str | None, urn_is_patient: bool = True) -> str | None:
    """The Patient id a reference names (``Patient/x``, ``.../Patient/x/_history/1``, and
    ``urn:uuid:x`` when ``urn_is_patient``), else None."""
    if not reference:
        return None
    if reference.startswith("urn:uuid:"):
        return reference[9:] or None if urn_is_patient else None
    parts = reference.split("?")[0].rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return parts[-1] if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1] else None


def patient_of(
    resource: dict[str, Any], full_urls: dict[str, str] | None = None, urn_is_patient: bool = True
) -> str | None:
    """The id of the patient a resource belongs to: its own id for a Patient, else the first
    subject/patient/beneficiary reference that names a Patient (bundle ``fullUrl``s mapped
    through ``full_urls`` first); None for a resource about no patient (Practitioner, ...)."""
    if resource.get("resourceType") == "Patient":
        rid = resource.get("id")
        return str(rid) if rid else None
    fields = (resource.get(name) for name in SUBJECT_FIELDS)
    return patient_in_references([f.get("reference") if isinstance(f, dict) else None for f in fields],
                                 full_urls, urn_is_patient)  # fmt: skip


def patient_in_references(
    references: Iterable[Any], full_urls: dict[str, str] | None = None, urn_is_patient: bool = True
) -> str | None:
    """The Patient id of the first reference that names one (``full_urls`` mapped first)."""
    for raw in references:
        if isinstance(raw, str):
            found = patient_in_reference(full_urls.get(raw, raw) if full_urls else raw, urn_is_patient)
            if found:
                return found
    return None


def belongs_to(resource: dict[str, Any], pid: str) -> bool:
    """Whether ``resource`` is the patient or about them (a resource naming no patient, such as a
    Practitioner, is shared and allowed)."""
    owner = patient_of(resource)
    if owner is not None:
        return owner == pid
    return resource.get("resourceType") != "Patient" and subject_reference(resource) is None


def patient_name(resource: dict[str, Any]) -> str:
    """``Given Family`` from the first official (or first) HumanName of a Patient."""
    names = resource.get("name") or []
    name = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    text = name.get("text") or " ".join([*name.get("given", []), name.get("family", "")])
    return " ".join(text.split()) or "(no name)"


def nested_deeper_than(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether objects and arrays in ``value`` nest more than ``limit`` levels (walked a level at a time,
    without recursion)."""
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(limit + 1):
        level = [v for item in level for v in (item.values() if isinstance(item, dict) else item)
                 if isinstance(v, dict | list)]  # fmt: skip
        if not level:
            return False
    return True
