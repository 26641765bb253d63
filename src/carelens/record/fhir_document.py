"""The summary as an HL7 IPS document: a FHIR R4 ``Bundle`` of type ``document`` whose first
entry is a ``Composition`` (LOINC 60591-5) with one section per IPS section (LOINC codes,
generated narrative, entries referencing the cited resources), authored by a ``Device`` that
says the summary was generated automatically."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from html import escape
from typing import Any

from carelens import __version__
from carelens.record.model import PatientRecord
from carelens.record.schema import Section, Summary, SummaryItem

LOINC = "http://loinc.org"
EMPTY_REASON = "http://terminology.hl7.org/CodeSystem/list-empty-reason"
ALERTS = ("104605-1", "Alerts: needs attention")
_NAMESPACE = uuid.UUID("5b0b3c52-5a8e-4d5f-9d59-6c2f1d6c0a11")


def _urn(key: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, key)}"


def _div(lines: list[str]) -> str:
    body = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return f'<div xmlns="http://www.w3.org/1999/xhtml"><ul>{body}</ul></div>'


def _item_line(item: SummaryItem) -> str:
    spans = [f"{c.resource} [{c.note_span[0]}:{c.note_span[1]}]" for c in item.citations if c.note_span]
    marks = [f for f in item.flags if f in {"note-only", "conflict", "recently stopped"}]
    return item.text + (f" [{', '.join(marks)}]" if marks else "") + (f" (from {'; '.join(spans)})" if spans else "")


def _section(code: str, title: str, items: list[SummaryItem], section: Section | None, urls: dict[str, str]) -> dict:
    keys = list(dict.fromkeys(c.resource for i in items for c in i.citations))
    if section is not None:
        keys += [c.resource for c in section.empty_citations if c.resource not in keys]
    out: dict[str, Any] = {
        "title": title,
        "code": {"coding": [{"system": LOINC, "code": code, "display": title}]},
    }
    if items:
        out["text"] = {"status": "generated", "div": _div([_item_line(i) for i in items])}
    else:
        reason = section.empty_reason if section is not None and section.empty_reason else "no information"
        out["text"] = {"status": "generated", "div": _div([reason])}
    if keys:
        out["entry"] = [{"reference": urls[k]} for k in keys if k in urls]
    else:
        nil_known = reason.startswith("no known")
        out["emptyReason"] = {
            "coding": [
                {
                    "system": EMPTY_REASON,
                    "code": "nilknown" if nil_known else "unavailable",
                    "display": "Nil Known" if nil_known else "Unavailable",
                }
            ]
        }
    return out


def to_ips_bundle(summary: Summary, record: PatientRecord) -> dict[str, Any]:
    """The IPS document Bundle (plain JSON dict) for a summary and the record it cites."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    cited = {c.resource for i in summary.items() for c in i.citations} | {
        c.resource for s in summary.sections for c in s.empty_citations
    }
    patient_key = f"Patient/{summary.patient}"
    keys = [patient_key] if patient_key in record.resources else []
    keys += sorted(k for k in cited if k in record.resources and k != patient_key)
    urls = {k: _urn(k) for k in keys}
    device_id = str(uuid.uuid5(_NAMESPACE, f"carelens-{__version__}"))
    device = {
        "resourceType": "Device",
        "id": device_id,
        "deviceName": [{"name": f"carelens {__version__}", "type": "user-friendly-name"}],
        "note": [
            {
                "text": f"Summary generated automatically by carelens {__version__}; every item cites the "
                "record entries it rests on. Review before clinical use."
            }
        ],
    }
    device_url = f"urn:uuid:{device_id}"
    sections = []
    if summary.needs_attention:
        sections.append(_section(*ALERTS, summary.needs_attention, None, urls))
    sections += [_section(s.code, s.title, s.items, s, urls) for s in summary.sections]
    composition_id = str(uuid.uuid4())
    composition: dict[str, Any] = {
        "resourceType": "Composition",
        "id": composition_id,
        "status": "final",
        "type": {"coding": [{"system": LOINC, "code": "60591-5", "display": "Patient summary Document"}]},
        "date": now,
        "author": [{"reference": device_url, "display": f"carelens {__version__} (generated automatically)"}],
        "title": "International Patient Summary (generated automatically by carelens)",
        "section": sections,
    }
    if patient_key in urls:
        composition["subject"] = {"reference": urls[patient_key]}
    entries = [
        {"fullUrl": f"urn:uuid:{composition_id}", "resource": composition},
        {"fullUrl": device_url, "resource": device},
    ]
    entries += [{"fullUrl": urls[k], "resource": record.resources[k]} for k in keys]
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "type": "document",
        "timestamp": now,
        "entry": entries,
    }
