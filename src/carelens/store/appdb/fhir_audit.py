"""The audit log as FHIR R4 AuditEvent resources following IHE Basic Audit Log Patterns (BALP).

The mapping from carelens actions to BALP profiles, event types and subtypes is data
(``balp.json``). Each AuditEvent carries the chain's row id and seal, so that an exported copy can
be checked against the chain later.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from carelens import __version__
from carelens.store.appdb.models import AuditEvent

RULES = Path(__file__).with_name("balp.json")
SEAL_SYSTEM = "urn:carelens:audit:row"


@cache
def _rules() -> dict[str, Any]:
    return json.loads(RULES.read_text())


def _coding(triple: list[str]) -> dict[str, str]:
    return {"system": triple[0], "code": triple[1], "display": triple[2]}


def to_audit_event(row: AuditEvent) -> dict[str, Any]:
    """One audit row as a BALP AuditEvent (R4)."""
    table = _rules()
    rule = next(r for r in table["rules"] if row.action.startswith(r["prefix"]))
    profile = rule.get("patient_profile") if row.patient_id else None
    detail = json.loads(row.detail or "{}")
    outcome = rule.get("outcome", "0")
    status = detail.get("status")
    if isinstance(status, int) and status >= 400:
        outcome = "4"
    entities: list[dict[str, Any]] = []
    if row.patient_id:
        entities.append(
            {
                "what": {"reference": f"Patient/{row.patient_id}"},
                "type": _coding(["http://terminology.hl7.org/CodeSystem/audit-entity-type", "1", "Person"]),
                "role": _coding(["http://terminology.hl7.org/CodeSystem/object-role", "1", "Patient"]),
            }
        )
    entities.append(
        {
            "what": {"identifier": {"system": SEAL_SYSTEM, "value": str(row.id)}},
            "type": _coding(["http://terminology.hl7.org/CodeSystem/audit-entity-type", "2", "System Object"]),
            "name": row.action,
            "detail": [
                {"type": "carelens.detail", "valueString": row.detail or "{}"},
                {"type": "carelens.row_hash", "valueString": row.row_hash},
                *([{"type": "carelens.model_version", "valueString": row.model_version}] if row.model_version else []),
                *([{"type": "carelens.input_hash", "valueString": row.input_hash}] if row.input_hash else []),
            ],
        }
    )
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": f"carelens-audit-{row.id}",
        "meta": {"profile": [table["profile_base"] + (profile or rule["profile"])]},
        "type": _coding(rule["type"]),
        "subtype": [_coding(rule["subtype"])],
        "action": rule["action"],
        "recorded": row.ts,
        "outcome": outcome,
        "agent": [
            {
                "type": {
                    "coding": [
                        _coding(
                            [
                                "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "IRCP",
                                "information recipient",
                            ]
                        )
                    ]
                },
                "who": {"identifier": {"system": "urn:carelens:user", "value": row.actor}},
                "requestor": True,
            }
        ],
        "source": {
            "observer": {"display": f"carelens {__version__}"},
            "type": [
                _coding(["http://terminology.hl7.org/CodeSystem/security-source-type", "4", "Application Server"])
            ],
        },
        "entity": entities,
    }
    if outcome != "0":
        event["outcomeDesc"] = str(detail.get("reason") or row.action)[:200]
    return event


def export_bundle(engine: Engine, since: int = 0, limit: int | None = None) -> dict[str, Any]:
    """Audit rows after ``since`` (oldest first) as a FHIR collection Bundle of AuditEvents."""
    with Session(engine) as s:
        query = select(AuditEvent).where(AuditEvent.id > since).order_by(AuditEvent.id)
        if limit is not None:
            query = query.limit(limit)
        entries = [{"resource": to_audit_event(row)} for row in s.scalars(query)]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}
