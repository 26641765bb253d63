"""Server-rendered pages: login, patient list, patient page with evidence and decisions,
signed versions, model cards, research zone, user administration."""

from __future__ import annotations

import hmac
import json
import re
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from carelens.core.errors import InputError
from carelens.ingest.notes import decode_note
from carelens.server.api import PATIENT_ID, QUESTION_MAX, PatientId, asked, ctx_of, next_cursor
from carelens.server.auth import (
    ADMIN,
    ANY_ROLE,
    CHANGE_PASSWORD,
    CLINICIAN,
    LOGIN_CSRF_COOKIE,
    RESEARCHER,
    SESSION_COOKIE,
    Principal,
    Problem,
    check_csrf,
    login_csrf,
    page_user,
    same_origin,
    session_principal,
)
from carelens.server.context import Context
from carelens.server.items import model_of, split_drugs
from carelens.server.monitoring import feedback_summary
from carelens.server.page_cache import REVIEW_STATE_SQL, RenderedPage
from carelens.server.registry import MODEL_ID, list_models, model_card, registry_stamp, site_status
from carelens.server.reviews import composition, decide, latest_decisions, sign_off
from carelens.store import appdb
from carelens.store.appdb import ROLES, SignedSummary

router = APIRouter(dependencies=[Depends(same_origin)])
REF = re.compile(r"^[A-Za-z]{1,64}/[A-Za-z0-9\-\.]{1,64}$")
HOME = {CLINICIAN: "/patients", RESEARCHER: "/research", ADMIN: "/admin/users"}
FormStr = Annotated[str, Form()]
UserName = Annotated[str, Path(max_length=64)]


def render(request: Request, template: str, who: Principal | None, status: int = 200, **values: Any) -> Response:
    """Render a page with the user, their CSRF token and the navigation for their role."""
    values.update(_chrome(who))
    return ctx_of(request).templates.TemplateResponse(request, template, values, status_code=status)


def _chrome(who: Principal | None) -> dict[str, Any]:
    """What every page's frame shows: the user, their CSRF token, the navigation for their role."""
    return {"who": who, "csrf": who.csrf if who else None, "home": HOME}


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/")
async def root(request: Request) -> Response:
    """Home: the page for the user's role (or the login page)."""
    sid = request.cookies.get(SESSION_COOKIE)
    who = await session_principal(request, sid) if sid else None
    return RedirectResponse(HOME[who.role] if who else "/login", status_code=303)


def _safe_next(target: str | None) -> str | None:
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None  # only paths on this site: no //host or /\\host open redirects
    return target


def secure_cookies(request: Request) -> bool:
    """Mark cookies Secure: configured so, or the request came over HTTPS (directly or from a
    trusted proxy's X-Forwarded-Proto, see ``carelens serve``)."""
    return ctx_of(request).settings.secure_cookies or request.url.scheme == "https"


LOGIN_MESSAGES = {
    "expired": "Your session has expired; please log in again.",
    "failed": "Wrong user name or password.",
    "changed": "Your password was changed; please log in with the new one.",
}


@router.get("/login")
def login_form(
    request: Request, next: str | None = None, expired: int = 0, failed: int = 0, changed: int = 0
) -> Response:
    """The login form. Its CSRF token is bound by HMAC (the server's key) to a random nonce in
    a cookie: planting a cookie is not enough to forge it, and the same-origin check refuses
    cross-site posts."""
    nonce = secrets.token_urlsafe(32)
    flags = {"failed": failed, "changed": changed, "expired": expired}
    shown = [LOGIN_MESSAGES[key] for key, on in flags.items() if on]
    message = shown[0] if shown else None
    token = login_csrf(ctx_of(request).form_key, nonce)
    response = render(request, "login.html", None, login_csrf=token, next=_safe_next(next) or "", message=message)
    response.set_cookie(
        LOGIN_CSRF_COOKIE, nonce, httponly=True, samesite="strict", path="/login", secure=secure_cookies(request)
    )
    return response


def _refused(request: Request, status: int, message: str) -> Response:
    return render(request, "login.html", None, status=status, login_csrf="", next="", message=message, blocked=True)


@router.post("/login")
def login(
    request: Request, username: FormStr = "", password: FormStr = "", csrf_token: FormStr = "", next: FormStr = ""
) -> Response:
    """Check the password (throttled per account and per address), start a session, go to
    ``next`` or the role's home page (or the password change, for a one-time password)."""
    ctx = ctx_of(request)
    nonce = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not nonce or not csrf_token or not hmac.compare_digest(login_csrf(ctx.form_key, nonce), csrf_token):
        raise Problem(403, "the login form's security token is missing or wrong; reload the page and try again")
    address = request.client.host if request.client else None
    username = username[:64]
    with ctx.Session() as s:
        verdict = appdb.throttle.check(s, username, address)
    if not verdict.allowed:
        with ctx.writing() as s:
            appdb.audit.append(
                s, "anonymous", "login.blocked", detail={"user": username, "locked": verdict.locked, "address": address}
            )
        if verdict.locked:
            return _refused(
                request, 423, "Too many failed logins: this account is locked. Ask an administrator to unlock it."
            )
        return _refused(request, 429, f"Too many failed logins. Try again in {int(verdict.wait_s) + 1} seconds.")
    with ctx.Session() as s:  # the password check (argon2, slow on purpose) holds no write lock
        user = appdb.authenticate(s, username, password)
        known = user is not None or appdb.get_user(s, username) is not None
    with ctx.writing() as s:
        if user is None:
            appdb.throttle.failed(s, username, address)
            appdb.audit.append(s, "anonymous", "login.failed", detail={"user_known": known, "address": address})
        else:
            appdb.throttle.succeeded(s, username, address)
            sid, _ = appdb.create_session(s, user, ctx.settings.session_ttl_s)
            appdb.audit.append(s, user.username, "login", detail={"address": address})
            role, must_change = user.role, user.must_change_password
    if user is None:
        return RedirectResponse("/login?failed=1", status_code=303)
    target = CHANGE_PASSWORD if must_change else (_safe_next(next) or HOME[role])
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="strict", secure=secure_cookies(request))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.get(CHANGE_PASSWORD)
def password_form(request: Request, who: Principal = Depends(page_user(*ANY_ROLE))) -> Response:
    """Change your password (required first after a one-time password)."""
    return render(request, "password.html", who, forced=who.must_change_password)


@router.post(CHANGE_PASSWORD)
def change_password(
    request: Request,
    current: FormStr = "",
    new: FormStr = "",
    confirm: FormStr = "",
    csrf_token: FormStr = "",
    who: Principal = Depends(page_user(*ANY_ROLE)),
) -> Response:
    """Check the current password and the policy, store the new one, end every session."""
    check_csrf(who, csrf_token)
    ctx = ctx_of(request)
    try:
        if new != confirm:
            raise InputError("the two new passwords differ")
        with ctx.writing() as s:
            ended = appdb.set_password(s, who.username, new, current=current)
            appdb.audit.append(s, who.username, "user.password", detail={"user": who.username, "sessions": ended})
    except InputError as err:
        return render(request, "password.html", who, status=400, forced=who.must_change_password, error=err.reason)
    response = RedirectResponse("/login?changed=1", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, csrf_token: FormStr = "", who: Principal = Depends(page_user(*ANY_ROLE))) -> Response:
    """End the session."""
    check_csrf(who, csrf_token)
    ctx = ctx_of(request)
    with ctx.writing() as s:
        appdb.end_session(s, who.session_id or "")
        appdb.audit.append(s, who.username, "logout")
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


PAGE_SIZE = 100


@router.get("/patients")
async def patient_list(
    request: Request,
    q: Annotated[str, Query(max_length=100)] = "",
    offset: Annotated[int, Query(ge=0)] = 0,
    after: Annotated[str | None, Query(pattern=PATIENT_ID)] = None,
    who: Principal = Depends(page_user(CLINICIAN)),
) -> Response:
    """The patient list (identified), 100 a page, searchable by name, MRN or birth date; the next
    page is the one ``after`` this page's last patient (keyset: the same cost at any depth)."""
    ctx = ctx_of(request)
    try:
        rows, total = await run_in_threadpool(ctx.data.search, q, PAGE_SIZE, offset, after)
    except InputError as err:
        raise Problem(400, err.reason) from None
    await ctx.arecord(who, "view.patients", detail={"count": len(rows), "total": total, "offset": offset})
    return render(request, "patients.html", who, patients=rows, total=total, q=q, offset=offset, after=after,
                  page=PAGE_SIZE, next=next_cursor(rows, PAGE_SIZE, offset, after, total))  # fmt: skip


def render_patient(ctx: Context, pid: str) -> RenderedPage:
    """Render the patient page for the cache's placeholder user (templates, decisions, signed versions)."""
    view = ctx.view(pid)
    with ctx.Session() as s:
        decisions = latest_decisions(s, pid)
        signed = list(
            s.scalars(select(SignedSummary.id).where(SignedSummary.patient_id == pid).order_by(SignedSummary.id.desc()))
        )
    attention = [i for i in view.items if i.needs_attention]
    sections: dict[str, list[Any]] = {}
    for item in view.items:
        if item.kind == "summary" and not (item.needs_attention and item.section == "Needs attention"):
            sections.setdefault(item.section, []).append(item)
    html = ctx.templates.env.get_template("patient.html").render(
        **_chrome(ctx.pages.marks),
        view=view,
        attention=attention,
        sections=sections,
        empty=[s for s in (view.summary or {}).get("sections", []) if not s.get("items")],
        decisions=decisions,
        signed=signed,
        images=[i for i in view.items if i.kind == "image"],
        pgx=[i for i in view.items if i.kind == "pgx"],
        drugs=split_drugs((view.pgx or {}).get("drugs", []), view.summary),
        findings=[i for i in view.items if i.kind == "finding"],
        question_max=QUESTION_MAX,
    )
    return RenderedPage(html.encode(), view.model_version, view.input_hash, len(view.items))


@router.get("/patients/{pid}")
async def patient_page(request: Request, pid: PatientId, who: Principal = Depends(page_user(CLINICIAN))) -> Response:
    """The patient page: needs attention first, every item with evidence, model card, decision
    (rendered once per state it shows, see ``page_cache``)."""
    ctx = ctx_of(request)
    ctx.patient(pid)
    version = getattr(ctx.data, "version", None)
    stamp = registry_stamp(ctx.settings.store)  # a new validation changes the reads' site marks
    state = (version(pid), await ctx.fetch_one(REVIEW_STATE_SQL, (pid,) * 4), stamp) if version else None
    page = ctx.pages.get(pid, state) if state else None
    if page is None:
        page = await run_in_threadpool(render_patient, ctx, pid)
        if state:
            ctx.pages.put(pid, state, page)
    await ctx.arecord(who, "view.patient", pid, page.model_version, page.input_hash, {"items": page.items})
    return HTMLResponse(ctx.pages.fill(page, who))


@router.get("/patients/{pid}/evidence")
def evidence(
    request: Request,
    pid: PatientId,
    ref: Annotated[str, Query(max_length=140)],
    start: Annotated[int | None, Query(ge=0)] = None,
    end: Annotated[int | None, Query(ge=0)] = None,
    who: Principal = Depends(page_user(CLINICIAN)),
) -> Response:
    """The cited source: a note with the cited span highlighted, or the resource's JSON."""
    ctx = ctx_of(request)
    patient = ctx.patient(pid)
    if not REF.match(ref):
        raise Problem(400, "malformed resource reference (expected Type/id)")
    resource = ctx.data.resource(pid, ref)
    if resource is None:
        raise Problem(404, "this patient's record has no such resource")
    text = _note_text(resource) if resource.get("resourceType") == "DocumentReference" else None
    parts = None
    if text is not None and start is not None and end is not None:
        if not start < end <= len(text):
            raise Problem(400, "the cited span lies outside the note")
        parts = (text[:start], text[start:end], text[end:])
    ctx.record(
        who,
        "view.evidence",
        pid,
        input_hash=ctx.data.input_hash(pid),
        detail={"ref": ref, "span": [start, end] if parts else None},
    )
    pretty = json.dumps(resource, indent=2, ensure_ascii=False)
    return render(request, "evidence.html", who, patient=patient, ref=ref, text=text, parts=parts, pretty=pretty)


@router.get("/patients/{pid}/ask")
async def ask_page(
    request: Request,
    pid: PatientId,
    q: Annotated[str, Query(max_length=QUESTION_MAX)] = "",
    who: Principal = Depends(page_user(CLINICIAN)),
) -> Response:
    """Ask the patient's record a question: cited passages, each linking to its source."""
    ctx = ctx_of(request)
    patient = ctx.patient(pid)
    answer = None
    if q.strip():
        answer = await asked(ctx, who, "view.ask", pid, q)
    else:  # the empty form still shows who the patient is
        await ctx.arecord(who, "view.ask", pid, detail={"asked": False})
    return render(request, "ask.html", who, patient=patient, q=q, answer=answer, question_max=QUESTION_MAX)


@router.get("/patients/{pid}/imaging/{index}/{what}")
def imaging_file(
    request: Request,
    pid: PatientId,
    index: Annotated[int, Path(ge=0, le=10_000)],
    what: Annotated[str, Path(pattern="^(image|heatmap)$")],
    who: Principal = Depends(page_user(CLINICIAN)),
) -> Response:
    """An image or its heatmap PNG named by a saved imaging output."""
    ctx = ctx_of(request)
    ctx.patient(pid)
    preds = ctx.data.images(pid)
    if index >= len(preds):
        raise Problem(404, "no such image for this patient")
    key = "heatmap" if what == "heatmap" else ("image_png" if preds[index].get("image_png") else "png")
    rel = preds[index].get(key)
    outputs = getattr(ctx.data, "outputs", None)
    path = outputs.file(str(rel)) if rel and outputs is not None else None
    if path is None:
        raise Problem(404, f"no {what} file for this image")
    model = "{}@{}".format(*model_of(preds[index], ("unknown-imaging-model", "unknown")))
    input_hash = str(preds[index].get("input_hash") or ctx.data.input_hash(pid))
    ctx.record(who, f"view.{what}", pid, model, input_hash, {"index": index})
    return FileResponse(path, media_type="image/png")


@router.post("/patients/{pid}/decisions")
def decision(
    request: Request,
    pid: PatientId,
    item: FormStr = "",
    action: FormStr = "",
    reason: FormStr = "",
    edited_text: FormStr = "",
    csrf_token: FormStr = "",
    who: Principal = Depends(page_user(CLINICIAN)),
) -> Response:
    """Accept, edit or reject one item (a reason is required to edit or reject)."""
    check_csrf(who, csrf_token)
    ctx = ctx_of(request)
    view = ctx.view(pid)
    target = view.item(item)
    with ctx.writing() as s:
        decide(s, who, pid, target, action, reason, edited_text, view.input_hash)
    return RedirectResponse(f"/patients/{pid}#item-{target.key}", status_code=303)


@router.post("/patients/{pid}/sign")
def sign(
    request: Request, pid: PatientId, csrf_token: FormStr = "", who: Principal = Depends(page_user(CLINICIAN))
) -> Response:
    """Sign off: store the clinician's version apart from the AI draft."""
    check_csrf(who, csrf_token)
    ctx = ctx_of(request)
    view = ctx.view(pid)
    draft = {"summary": view.summary, "items": [i.model_dump() for i in view.items]}
    with ctx.writing() as s:
        row = sign_off(s, who, pid, view.items, draft, view.input_hash)
    return RedirectResponse(f"/patients/{pid}/signed/{row.id}", status_code=303)


def _signed(request: Request, pid: str, sid: int) -> SignedSummary:
    ctx = ctx_of(request)
    ctx.patient(pid)
    with ctx.Session() as s:
        row = s.get(SignedSummary, sid)
    if row is None or row.patient_id != pid:
        raise Problem(404, "no signed summary with this id for this patient")
    return row


@router.get("/patients/{pid}/signed/{sid}")
def signed_page(
    request: Request, pid: PatientId, sid: Annotated[int, Path(ge=1)], who: Principal = Depends(page_user(CLINICIAN))
) -> Response:
    """A clinician-signed version."""
    row = _signed(request, pid, sid)
    ctx = ctx_of(request)
    ctx.record(who, "view.signed", pid, row.model_version, row.input_hash, {"signed_id": sid})
    return render(request, "signed.html", who, patient=ctx.patient(pid), row=row, content=json.loads(row.signed_json))


@router.get("/patients/{pid}/signed/{sid}/composition.json")
def signed_composition(
    request: Request, pid: PatientId, sid: Annotated[int, Path(ge=1)], who: Principal = Depends(page_user(CLINICIAN))
) -> Response:
    """The signed version as a FHIR R4 Composition (human author)."""
    row = _signed(request, pid, sid)
    ctx_of(request).record(who, "export.composition", pid, row.model_version, row.input_hash, {"signed_id": sid})
    return JSONResponse(composition(row), media_type="application/fhir+json")


@router.get("/models")
def models_page(request: Request, who: Principal = Depends(page_user(*ANY_ROLE))) -> Response:
    """The model registry."""
    ctx = ctx_of(request)
    ctx.record(who, "view.models")
    return render(request, "models.html", who, models=list_models(ctx.settings.store))


@router.get("/models/{model_id}")
def model_page(request: Request, model_id: str, who: Principal = Depends(page_user(*ANY_ROLE))) -> Response:
    """One model card: who made it, intended use, performance, limitations."""
    if not MODEL_ID.match(model_id):
        raise Problem(400, "malformed model id")
    ctx = ctx_of(request)
    card = model_card(ctx.settings.store, model_id, lambda found: feedback_summary(ctx, found))
    ctx.record(who, "view.model", model_version=model_id, detail={"found": card is not None})
    registered = card is not None and card.get("records") is not None  # a built-in component has no validations
    here = site_status(ctx.settings.store, model_id, ctx.settings.site) if registered else None
    return render(request, "model.html", who, status=200 if card else 404, model_id=model_id, card=card, here=here)


@router.get("/research")
def research(request: Request, who: Principal = Depends(page_user(RESEARCHER, ADMIN))) -> Response:
    """The research zone: de-identified cohort counts and the model registry."""
    ctx = ctx_of(request)
    ctx.record(who, "view.research")
    from carelens.server.research import cohort as research_cohort

    cohort = research_cohort(ctx.settings.store)
    return render(request, "research.html", who, cohort=cohort, models=list_models(ctx.settings.store))


def _users(request: Request) -> list[dict[str, object]]:
    with ctx_of(request).Session() as s:
        return appdb.list_users(s)


@router.get("/admin/users")
def users_page(request: Request, who: Principal = Depends(page_user(ADMIN))) -> Response:
    """User administration."""
    ctx_of(request).record(who, "view.users")
    return render(request, "users.html", who, users=_users(request), roles=ROLES)


@router.post("/admin/users")
def add_user(
    request: Request,
    username: FormStr = "",
    role: FormStr = "",
    password: FormStr = "",
    csrf_token: FormStr = "",
    who: Principal = Depends(page_user(ADMIN)),
) -> Response:
    """Create a user."""
    check_csrf(who, csrf_token)
    ctx = ctx_of(request)
    try:
        with ctx.writing() as s:
            appdb.add_user(s, username, password, role, one_time=True)
            appdb.audit.append(s, who.username, "user.add", detail={"user": username, "role": role, "one_time": True})
    except InputError as err:
        return render(request, "users.html", who, status=400, users=_users(request), roles=ROLES, error=err.reason)
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/admin/users/{username}/token")
def issue_token(
    request: Request,
    username: UserName,
    csrf_token: FormStr = "",
    who: Principal = Depends(page_user(ADMIN)),
) -> Response:
    """Issue an API token for a user (shown once)."""
    check_csrf(who, csrf_token)
    ctx = ctx_of(request)
    try:
        with ctx.writing() as s:
            user = appdb.get_user(s, username)
            if user is None:
                raise Problem(404, "no such user")
            token = appdb.create_token(s, user)
            appdb.audit.append(s, who.username, "token.issue", detail={"user": username})
    except InputError as err:
        return render(request, "users.html", who, status=400, users=_users(request), roles=ROLES, error=err.reason)
    return render(request, "users.html", who, users=_users(request), roles=ROLES, token=token, token_user=username)


def _change_user(request: Request, who: Principal, csrf_token: str, username: str, change: str) -> Response:
    """One account change by an admin (CSRF-checked, audited); back to the user list."""
    check_csrf(who, csrf_token)
    ctx = ctx_of(request)
    try:
        if change == "user.disable" and username == who.username:
            raise InputError("you cannot disable your own account")
        with ctx.writing() as s:
            if appdb.get_user(s, username) is None:
                raise Problem(404, "no such user")
            appdb.change_account(s, who.username, change, username)
    except InputError as err:
        return render(request, "users.html", who, status=400, users=_users(request), roles=ROLES, error=err.reason)
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/admin/users/{username}/disable")
def disable_user(
    request: Request, username: UserName, csrf_token: FormStr = "", who: Principal = Depends(page_user(ADMIN))
) -> Response:
    """Disable a user: no more logins; their sessions end and their API tokens are revoked at once."""
    return _change_user(request, who, csrf_token, username, "user.disable")


@router.post("/admin/users/{username}/enable")
def enable_user(
    request: Request, username: UserName, csrf_token: FormStr = "", who: Principal = Depends(page_user(ADMIN))
) -> Response:
    """Enable a user again (they log in anew; revoked tokens stay revoked)."""
    return _change_user(request, who, csrf_token, username, "user.enable")


@router.post("/admin/users/{username}/unlock")
def unlock_user(
    request: Request, username: UserName, csrf_token: FormStr = "", who: Principal = Depends(page_user(ADMIN))
) -> Response:
    """Unlock an account that failed logins locked (audited)."""
    return _change_user(request, who, csrf_token, username, "user.unlock")


@router.post("/admin/users/{username}/revoke-tokens")
def revoke_user_tokens(
    request: Request, username: UserName, csrf_token: FormStr = "", who: Principal = Depends(page_user(ADMIN))
) -> Response:
    """Revoke every API token of a user at once (the user stays active)."""
    return _change_user(request, who, csrf_token, username, "token.revoke")


def _note_text(resource: dict[str, Any]) -> str | None:
    """The text of a DocumentReference as the record decodes it (citations' spans refer to it)."""
    try:
        return decode_note(resource).text
    except InputError:
        return None
