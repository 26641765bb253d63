"""CDS Hooks 2.0: discovery, the ``patient-view`` service (cards with the model card as
source and a link to the patient page, under the configured public base URL) and the feedback
endpoint (into the audit log, for cards this service issued, matched exactly). Callers present
an API token with the ``cds`` scope or a signed JWT (``cds_jwt``)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.orm import Session

from carelens.server.api import PATIENT_ID, ctx_of
from carelens.server.auth import ANY_ROLE, CLINICIAN, Principal, Problem, api_user
from carelens.server.items import ReviewItem
from carelens.server.schemas import CdsCards, CdsDiscovery, Empty
from carelens.store.appdb import CdsCard, CdsFeedback, audit, now_iso

router = APIRouter(prefix="/cds-services")
SERVICE_ID = "carelens-patient-view"
CARD_NAMESPACE = uuid.UUID("6f1c2a52-6d0e-4c55-9a8e-7b1f3c0a9e11")
SERVICE = {
    "id": SERVICE_ID,
    "hook": "patient-view",
    "title": "carelens patient summary",
    "description": "AI record summary, image reads and genome report that need a clinician's attention, "
    "each with its evidence and model card.",
    "prefetch": {"patient": "Patient/{{context.patientId}}"},
    "usageRequirements": "A carelens clinician account; cards link to the carelens workspace.",
}
ServiceId = Annotated[str, Path(pattern=r"^[A-Za-z0-9\-_.]{1,64}$")]
CARD_UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class HookContext(BaseModel):
    userId: str | None = None
    patientId: str = Field(pattern=PATIENT_ID)
    encounterId: str | None = None


class HookRequest(BaseModel):
    """A CDS Hooks request (the fields carelens uses; others are allowed)."""

    model_config = ConfigDict(extra="allow")
    hook: Literal["patient-view"]
    hookInstance: str = Field(min_length=1, max_length=128)
    context: HookContext


class Coding(BaseModel):
    code: str | None = None
    system: str | None = None
    display: str | None = None


class OverrideReason(BaseModel):
    reason: Coding | None = None
    userComment: str | None = Field(default=None, max_length=2000)


class Feedback(BaseModel):
    card: str = Field(pattern=CARD_UUID, description="the uuid of a card this service issued")
    outcome: Literal["accepted", "overridden"]
    overrideReason: OverrideReason | None = None
    acceptedSuggestions: list[dict[str, Any]] | None = None
    outcomeTimestamp: str

    @model_validator(mode="after")
    def _reason_for_override(self) -> Feedback:
        reason = self.overrideReason
        if self.outcome == "overridden" and not (
            reason and (reason.userComment or (reason.reason and (reason.reason.display or reason.reason.code)))
        ):
            raise ValueError("an overridden card needs overrideReason (reason or userComment)")
        return self


class FeedbackRequest(BaseModel):
    feedback: list[Feedback] = Field(min_length=1, max_length=100)


def _known(service_id: str) -> None:
    if service_id != SERVICE_ID:
        raise Problem(404, "no CDS service with this id")


@router.get("", response_model=CdsDiscovery)
def discovery(request: Request, who: Principal = Depends(api_user(*ANY_ROLE, scope="cds"))) -> dict[str, Any]:
    """CDS Hooks discovery: the services this server offers."""
    ctx_of(request).record(who, "cds.discovery")
    return {"services": [SERVICE]}


def shorten(text: str, limit: int = 140) -> str:
    """``text`` cut to ``limit`` characters (with an ellipsis), as the card summary requires."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _links(base: str | None, pid: str) -> list[dict[str, str]]:
    """The link to the patient page, only under the configured public base URL."""
    if base is None:
        return []
    return [{"label": "Open in the carelens workspace", "url": f"{base}/patients/{pid}", "type": "absolute"}]


def _source(label: str, base: str | None, path: str) -> dict[str, Any]:
    return {"label": label, **({"url": f"{base}{path}"} if base else {})}


def _card(item: ReviewItem, pid: str, base: str | None) -> dict[str, Any]:
    indicator = "critical" if item.kind == "finding" else "warning"
    evidence = ", ".join(c.get("resource", "") for c in item.citations[:5]) or "see the workspace"
    cpic = "".join(
        f"\n\nCPIC ({r.get('strength') or 'strength not stated'}, {r.get('population') or 'general'}): {r.get('text')}"
        for r in item.detail.get("recommendations", [])
    )
    rule = f"\n\n{item.detail['rule']}" if item.detail.get("rule") else ""
    mark = item.detail.get("site_mark")  # a read from a model without a passed local validation here
    rule += f"\n\n{mark}: {item.detail['site_validation']['reason']}." if mark else ""
    return {
        "uuid": str(uuid.uuid5(CARD_NAMESPACE, f"{pid}|{item.key}")),
        "summary": shorten(f"{item.section}{' (' + mark + ')' if mark else ''}: {item.text}"),
        "detail": f"{item.text}{cpic}\n\nEvidence: {evidence}. Model: {item.model_id} {item.model_version}.{rule}",
        "indicator": indicator,
        "source": {
            **_source(shorten(f"carelens {item.model_id} {item.model_version}", 100), base, f"/models/{item.model_id}"),
            "topic": {"system": "urn:carelens:kind", "code": item.kind, "display": item.section},
        },
        "links": _links(base, pid),
    }


@router.post("/{service_id}", response_model=CdsCards)
def patient_view(
    request: Request,
    service_id: ServiceId,
    body: HookRequest,
    who: Principal = Depends(api_user(CLINICIAN, scope="cds")),
) -> dict[str, Any]:
    """The patient-view hook: one card per item that needs attention (or one info card). Links
    point under the configured public base URL (none without one), never the request's Host."""
    _known(service_id)
    ctx = ctx_of(request)
    pid = body.context.patientId
    view = ctx.view(pid)
    base = ctx.settings.public_url.rstrip("/") if ctx.settings.public_url else None
    cards = [_card(item, pid, base) for item in view.items if item.needs_attention]
    if not cards:
        state = "ready" if view.summary is not None else "not available"
        cards = [
            {
                "uuid": str(uuid.uuid5(CARD_NAMESPACE, f"{pid}|overview|{view.input_hash}")),
                "summary": shorten(f"carelens summary {state}: {len(view.items)} AI items, none flagged"),
                "indicator": "info",
                "source": _source("carelens", base, "/models"),
                "links": _links(base, pid),
            }
        ]
    uuids = [c["uuid"] for c in cards]
    with ctx.writing() as s:
        row = audit.append(
            s,
            who.username,
            "cds.patient-view",
            pid,
            view.model_version,
            view.input_hash,
            {"hookInstance": body.hookInstance[:64], "cards": uuids},
        )
        for u in uuids:  # the same card issued again points at its newest issue
            s.merge(
                CdsCard(
                    uuid=u, patient_id=pid, audit_id=row["id"], model_version=view.model_version, issued_at=now_iso()
                )
            )
    return {"cards": cards}


def card_origin(s: Session, card: str) -> tuple[str, int, str | None] | None:
    """Where the card with exactly this uuid was issued (patient, audit row, model), or None."""
    found = s.get(CdsCard, card)
    return (found.patient_id, found.audit_id, found.model_version) if found else None


@router.post("/{service_id}/feedback", response_model=Empty)
def feedback(
    request: Request,
    service_id: ServiceId,
    body: FeedbackRequest,
    who: Principal = Depends(api_user(CLINICIAN, scope="cds")),
) -> dict[str, Any]:
    """Store accepted / overridden outcomes (with reason) and audit each, all or nothing."""
    _known(service_id)
    ctx = ctx_of(request)
    with ctx.writing() as s:
        for fb in body.feedback:
            origin = card_origin(s, fb.card)
            if origin is None:
                raise Problem(404, "no card with this uuid was issued by this service; nothing was stored")
            pid, issued_in, model_version = origin
            reason = fb.overrideReason
            text = None
            if reason is not None:
                text = reason.userComment or (reason.reason.display or reason.reason.code if reason.reason else None)
            s.add(
                CdsFeedback(
                    service_id=service_id,
                    card_uuid=fb.card,
                    outcome=fb.outcome,
                    override_reason=text,
                    user_id=who.user_id,
                    outcome_at=now_iso(),
                )
            )
            audit.append(
                s,
                who.username,
                f"cds.feedback.{fb.outcome}",
                pid,
                model_version,
                detail={"card": fb.card, "service": service_id, "reason": text, "issued_in": issued_in},
            )
    return {}
