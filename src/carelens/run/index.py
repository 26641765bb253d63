"""The workspace's patient list: one row per patient (name, MRN, birth date, gender), sorted by
name, so that the server pages and searches it with SQL instead of loading every Patient."""

from __future__ import annotations

from typing import Any

import orjson

from carelens.core.fhir import patient_name
from carelens.store import Lake

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


def index_rows(lake: Lake, patients: dict[str, str]) -> list[tuple[Any, ...]]:
    """``patient_index`` rows of the given patients (id -> input hash)."""
    if not patients:
        return []
    table = lake.query(
        "SELECT DISTINCT ON (id) id, json FROM resources WHERE resource_type = 'Patient' AND list_contains(?, id)"
        " ORDER BY id, content_hash",
        [sorted(patients)],
    )
    rows = []
    for pid, raw in zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True):
        res = orjson.loads(raw)
        name = patient_name(res)
        rows.append((pid, patients[pid], name, name.lower(), mrn(res), res.get("birthDate"), res.get("gender")))
    return rows
