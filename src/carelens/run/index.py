"""The workspace's patient list: one row per patient (name, MRN, birth date, gender), sorted by
name, so that the server pages and searches it with SQL instead of loading every Patient."""

from __future__ import annotations

from typing import Any

from carelens.core.fhir import patient_name

MRN_CODES = frozenset({"MR", "MRN"})


def mrn(patient: dict[str, Any]) -> str | None:
    """The medical record number: the identifier typed MR, else one whose system names an MRN."""
    for ident in patient.get("identifier") or []:
        codes = {c.get("code") for c in (ident.get("type") or {}).get("coding") or []}
        if codes & MRN_CODES and ident.get("value"):
            return str(ident["value"])
    for ident in patient.get("identifier") or []:
        if "mrn" in str(ident.get("system", "")).lower() and ident.get("value"):
            return str(ident["value"])
    return None


def index_row(patient_id: str, input_hash: str, patient: dict[str, Any]) -> tuple[Any, ...]:
    """The ``patient_index`` row of one patient (from its Patient resource)."""
    name = patient_name(patient)
    return (patient_id, input_hash, name, name.lower(), mrn(patient), patient.get("birthDate"), patient.get("gender"))
