"""The JSON API: patients and their summaries (clinicians), cohort counts and the model
registry (research zone), audit verification (admins). Every read is audited."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from carelens.core.errors import InputError
from carelens.record.ask import Answer
from carelens.server.auth import ADMIN, ANY_ROLE, CLINICIAN, RESEARCHER, Principal, Problem, api_user
from carelens.server.context import Context
from carelens.server.data import PatientRow, SummaryUnavailable
from carelens.server.monitoring import feedback_summary
from carelens.server.registry import MODEL_ID, list_models, model_card
from carelens.server.schemas import AuditReport, Cohort, ModelCard, ModelList, PatientList
from carelens.store.appdb import audit

router = APIRouter(prefix="/api")
PATIENT_ID = r"^[A-Za-z0-9\-\.]{1,64}$"
PatientId = Annotated[str, Path(pattern=PATIENT_ID, description="FHIR Patient.id")]
QUESTION_MAX = 300  # characters of a question to a record


def _summary_model() -> type:
    """The summary's schema for the docs (``carelens.record``'s model; a plain object without it)."""
    try:
        from carelens.record.schema import Summary
    except ImportError:
        return dict
    return Summary


def ctx_of(request: Request) -> Context:
    return request.app.state.ctx


@router.get("/patients", response_model=PatientList)
async def patients(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    q: Annotated[str, Query(max_length=100)] = "",
    after: Annotated[str | None, Query(pattern=PATIENT_ID)] = None,
    who: Principal = Depends(api_user(CLINICIAN)),
) -> dict[str, Any]:
    """A page of the patients in the clinical zone (identified: clinicians only), by name;
    ``q`` searches name, MRN and birth date (``YYYY`` or ``YYYY-MM-DD``). ``next`` is the cursor
    of the following page: pass it as ``after`` (the same cost at any depth, unlike ``offset``)."""
    ctx = ctx_of(request)
    try:  # SQL off the event loop
        rows, total = await run_in_threadpool(ctx.data.search, q, limit, offset, after)
    except InputError as err:
        raise Problem(400, err.reason) from None
    # group-committed with the audit rows of concurrent requests (one commit per request was the cost)
    await ctx.arecord(who, "api.patients", detail={"count": len(rows), "total": total, "offset": offset})
    cursor = next_cursor(rows, limit, offset, after, total)
    return {"patients": [r.model_dump() for r in rows], "total": total, "next": cursor}


def next_cursor(rows: list[PatientRow], limit: int, offset: int, after: str | None, total: int) -> str | None:
    """The ``after`` of the page following ``rows`` (the id of its last patient), None when none follows."""
    more = len(rows) == limit if after is not None else offset + len(rows) < total
    return rows[-1].id if rows and more else None


async def asked(ctx: Context, who: Principal, action: str, pid: str, question: str, top: int = 5) -> Answer:
    """``ctx.ask`` off the event loop, audited with what was found but not the question's words
    (a question may name a person)."""
    if not question.strip():
        raise Problem(400, "the question is empty")
    try:
        answer = await run_in_threadpool(ctx.ask, pid, question, top)
    except InputError as err:
        raise Problem(503, f"the patient's record could not be read: {err.reason}") from None
    detail = {"passages": len(answer.passages), "found": answer.found, "searched": answer.searched}
    await ctx.arecord(who, action, pid, input_hash=ctx.data.input_hash(pid), detail=detail)
    return answer


@router.get(
    "/patients/{pid}/summary",
    response_class=Response,
    responses={200: {"model": _summary_model(), "description": "The summary", "content": {"application/json": {}}}},
)
async def summary(request: Request, pid: PatientId, who: Principal = Depends(api_user(CLINICIAN))) -> Response:
    """The patient's record summary (the ``carelens summarize`` JSON)."""
    ctx = ctx_of(request)
    try:
        body, model, input_hash = await ctx.summary_json_async(pid)
    except SummaryUnavailable as err:
        raise Problem(503, str(err)) from None
    await ctx.arecord(who, "api.summary", pid, model, input_hash)
    return Response(body, media_type="application/json")


@router.get("/patients/{pid}/ask", response_model=Answer)
async def ask(
    request: Request,
    pid: PatientId,
    q: Annotated[str, Query(min_length=1, max_length=QUESTION_MAX, description="The question, in plain words.")],
    top: Annotated[int, Query(ge=1, le=20)] = 5,
    who: Principal = Depends(api_user(CLINICIAN)),
) -> Answer:
    """Ask the patient's whole stored record (the ``carelens ask`` search): the passages that answer
    best, each citing its resource (and span of a note), with its scores; ``found`` false and
    "nothing relevant found" when none clears the relevance bar. Search results, not an answer."""
    return await asked(ctx_of(request), who, "api.ask", pid, q, top)


@router.get("/cohort", response_model=Cohort)
def cohort(request: Request, who: Principal = Depends(api_user(RESEARCHER, ADMIN))) -> dict[str, Any]:
    """De-identified cohort counts from the research lake (small cells and their complements suppressed)."""
    from carelens.server.research import cohort as research_cohort

    ctx = ctx_of(request)
    ctx.record(who, "api.cohort")
    return research_cohort(ctx.settings.store)


@router.get("/models", response_model=ModelList)
def models(request: Request, who: Principal = Depends(api_user(*ANY_ROLE))) -> dict[str, Any]:
    """The model registry: every model's card."""
    ctx = ctx_of(request)
    ctx.record(who, "api.models")
    return {"models": list_models(ctx.settings.store)}


@router.get("/models/{model_id}", response_model=ModelCard)
def model(request: Request, model_id: str, who: Principal = Depends(api_user(*ANY_ROLE))) -> dict[str, Any]:
    """One model card."""
    if not MODEL_ID.match(model_id):
        raise Problem(400, "malformed model id")
    ctx = ctx_of(request)
    card = model_card(ctx.settings.store, model_id, lambda found: feedback_summary(ctx, found))
    if card is None:
        raise Problem(404, "no model card registered under this id")
    ctx.record(who, "api.model", model_version=model_id)
    return card


@router.get("/audit/verify", response_model=AuditReport)
def verify(request: Request, who: Principal = Depends(api_user(ADMIN))) -> dict[str, Any]:
    """Walk the audit hash chain: ``ok``, rows checked, the first bad row."""
    ctx = ctx_of(request)
    report = audit.verify(ctx.engine)
    ctx.record(who, "api.audit.verify", detail={"ok": report.ok})
    return report.as_json()
