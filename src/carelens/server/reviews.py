"""Clinician decisions on AI items, sign-off, and the signed summary as a FHIR Composition.

The AI draft and the clinician-signed version are stored apart; each decision and each
sign-off is written in one transaction with its audit row, so nothing is stored half-way.
"""

from __future__ import annotations

import html
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from carelens.server.auth import Principal, Problem
from carelens.server.items import ReviewItem
from carelens.store.appdb import ReviewDecision, SignedSummary, audit, now_iso

ACTIONS = ("accept", "edit", "reject")
MAX_TEXT = 2000


def latest_decisions(s: Session, pid: str) -> dict[str, ReviewDecision]:
    """The newest decision per item key for one patient."""
    rows = s.scalars(select(ReviewDecision).where(ReviewDecision.patient_id == pid).order_by(ReviewDecision.id))
    return {row.item_key: row for row in rows}


def validate_decision(action: str, reason: str, edited_text: str) -> None:
    """400 for an unknown action, a missing reason (edit, reject) or missing edited text."""
    if action not in ACTIONS:
        raise Problem(400, "action must be accept, edit or reject")
    if action in ("edit", "reject") and not reason.strip():
        raise Problem(400, f"a reason is required to {action} an item")
    if action == "edit" and not edited_text.strip():
        raise Problem(400, "an edit needs the corrected text")
    if len(reason) > MAX_TEXT or len(edited_text) > MAX_TEXT:
        raise Problem(400, f"reason and text are limited to {MAX_TEXT} characters")


def decide(
    s: Session, who: Principal, pid: str, item: ReviewItem, action: str, reason: str, edited_text: str, input_hash: str
) -> ReviewDecision:
    """Record one decision and its audit row in the caller's transaction."""
    validate_decision(action, reason, edited_text)
    row = ReviewDecision(
        patient_id=pid,
        item_key=item.key,
        action=action,
        edited_text=edited_text.strip() if action == "edit" else None,
        reason=reason.strip() or None,
        user_id=who.user_id,
        input_hash=input_hash,
        model_version=f"{item.model_id}@{item.model_version}",
        created_at=now_iso(),
    )
    s.add(row)
    s.flush()
    audit.append(
        s,
        who.username,
        f"decision.{action}",
        patient_id=pid,
        model_version=row.model_version,
        input_hash=input_hash,
        detail={"item": item.key, "kind": item.kind, "decision_id": row.id},
    )
    return row


def signed_content(who: Principal, pid: str, items: list[ReviewItem], decisions: dict[str, ReviewDecision]) -> dict:
    """The clinician's version: accepted and edited items; rejected and unreviewed ones listed apart."""
    kept, rejected, unreviewed = [], [], []
    for item in items:
        d = decisions.get(item.key)
        entry = {
            "key": item.key,
            "kind": item.kind,
            "section": item.section,
            "ai_text": item.text,
            "citations": item.citations,
            "model": f"{item.model_id}@{item.model_version}",
        }
        if d is None:
            unreviewed.append(entry)
        elif d.action == "reject":
            rejected.append({**entry, "reason": d.reason})
        else:
            kept.append(
                {
                    **entry,
                    "text": d.edited_text if d.action == "edit" else item.text,
                    "action": d.action,
                    "reason": d.reason,
                }
            )
    return {"patient": pid, "signed_by": who.username, "items": kept, "rejected": rejected, "not_reviewed": unreviewed}


def sign_off(
    s: Session, who: Principal, pid: str, items: list[ReviewItem], draft: dict[str, Any], input_hash: str
) -> SignedSummary:
    """Store the signed version (apart from the AI draft) and its audit row."""
    content = signed_content(who, pid, items, latest_decisions(s, pid))
    if not content["items"]:
        raise Problem(400, "nothing to sign: accept or edit at least one item first")
    models = sorted({i["model"] for i in content["items"]})
    content["signed_at"] = now_iso()
    row = SignedSummary(
        patient_id=pid,
        user_id=who.user_id,
        signed_at=content["signed_at"],
        input_hash=input_hash,
        model_version=",".join(models),
        draft_json=orjson.dumps(draft).decode(),
        signed_json=orjson.dumps(content).decode(),
    )
    s.add(row)
    s.flush()
    audit.append(
        s,
        who.username,
        "sign",
        patient_id=pid,
        model_version=row.model_version,
        input_hash=input_hash,
        detail={"signed_id": row.id, "items": len(content["items"]), "rejected": len(content["rejected"])},
    )
    return row


def composition(signed: SignedSummary) -> dict[str, Any]:
    """The signed summary as a FHIR R4 Composition whose author and attester is the clinician."""
    content = orjson.loads(signed.signed_json)
    author = {
        "identifier": {"system": "urn:carelens:user", "value": content["signed_by"]},
        "display": content["signed_by"],
    }
    sections: dict[str, list[dict[str, Any]]] = {}
    for item in content["items"]:
        sections.setdefault(item["section"], []).append(item)
    return {
        "resourceType": "Composition",
        "id": f"signed-{signed.id}",
        "status": "final",
        "type": {"coding": [{"system": "http://loinc.org", "code": "60591-5", "display": "Patient summary Document"}]},
        "subject": {"reference": f"Patient/{signed.patient_id}"},
        "date": signed.signed_at,
        "author": [author],
        "title": "Patient summary (reviewed and signed by a clinician)",
        "attester": [{"mode": "legal", "time": signed.signed_at, "party": author}],
        "section": [
            {
                "title": title,
                "text": {"status": "generated", "div": _div(items)},
                "entry": [{"reference": c["resource"]} for i in items for c in i["citations"] if c.get("resource")]
                or None,
            }
            for title, items in sections.items()
        ],
    }


def _div(items: list[dict[str, Any]]) -> str:
    lis = "".join(f"<li>{html.escape(i['text'])}</li>" for i in items)
    return f'<div xmlns="http://www.w3.org/1999/xhtml"><ul>{lis}</ul></div>'
