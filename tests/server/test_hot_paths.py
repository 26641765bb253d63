"""The paths that carry the load (summary API, patient page) stay exact while fast: a change
made by another process (the CLI, a second server worker) shows on the very next request, a
cached page is never shown for an older state, and every view still writes its audit row.
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from carelens.server.auditor import GroupAuditor
from carelens.server.auth import Principal
from carelens.server.reviews import decide, sign_off
from carelens.store import appdb
from carelens.store.appdb import AuditEvent, audit
from tests.server.conftest import Workspace
from tests.server.fixture_store import PID

SUMMARY, PAGE = f"/api/patients/{PID}/summary", f"/patients/{PID}"


@pytest.fixture
def other(ws: Workspace) -> Iterator[Engine]:
    """The app database as another process opens it (its own engine and pool)."""
    engine = appdb.make_engine(ws.app.state.ctx.settings.db_url)  # type: ignore[attr-defined]
    yield engine
    engine.dispose()


def _views(ws: Workspace, action: str) -> int:
    with Session(ws.engine) as s:
        return int(s.scalar(select(func.count()).where(AuditEvent.action == action, AuditEvent.patient_id == PID)))


def test_token_revoked_elsewhere_is_refused_on_the_next_request(ws: Workspace, other: Engine) -> None:
    api = ws.client()
    assert api.get(SUMMARY, headers=ws.bearer("clinician")).status_code == 200
    with Session(other) as s, s.begin():
        assert appdb.revoke_tokens(s, "clinician") == 1
    r = api.get(SUMMARY, headers=ws.bearer("clinician"))
    assert r.status_code == 401 and r.json() == {"detail": "invalid, expired or revoked token"}


def test_user_disabled_elsewhere_loses_the_page_and_the_api_at_once(ws: Workspace, other: Engine) -> None:
    page = ws.clients["clinician"]
    assert page.get(PAGE).status_code == 200 and page.get(PAGE).status_code == 200  # the cached page
    with Session(other) as s, s.begin():
        user = appdb.get_user(s, "clinician")
        assert user is not None
        user.active = False  # no session or token ended: the active flag alone must refuse them
    r = page.get(PAGE)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert ws.client().get(SUMMARY, headers=ws.bearer("clinician")).status_code == 401


def _item_li(page: str, key: str) -> str:
    start = page.index(f'id="item-{key}"')
    return page[page.rindex("<li", 0, start) : page.index("</form>", start)]


def test_decision_and_sign_off_by_another_process_show_on_the_next_view(ws: Workspace, other: Engine) -> None:
    ctx = ws.app.state.ctx  # type: ignore[attr-defined]
    client = ws.clients["clinician"]
    view = ctx.view(PID)
    item = next(i for i in view.items if not i.needs_attention)
    first = client.get(PAGE).text
    assert client.get(PAGE).text == first  # served from the cache: same state, same page
    assert "decided-" not in _item_li(first, item.key)
    who = Principal(1, "clinician", "clinician")
    with Session(other) as s, s.begin():
        decide(s, who, PID, item, "accept", "", "", view.input_hash)
    assert "decided-accept" in _item_li(client.get(PAGE).text, item.key)
    with Session(other) as s, s.begin():
        decide(s, who, PID, item, "reject", "not in the note", "", view.input_hash)
    rejected = client.get(PAGE).text
    assert "decided-reject" in _item_li(rejected, item.key) and "rejected: not in the note" in rejected
    kept = next(i for i in view.items if i.key != item.key)
    with Session(other) as s, s.begin():
        decide(s, who, PID, kept, "accept", "", "", view.input_hash)
        signed = sign_off(s, who, PID, view.items, {"summary": None, "items": []}, view.input_hash).id
    assert f"/patients/{PID}/signed/{signed}" in client.get(PAGE).text
    assert audit.verify(ws.engine).ok


def test_new_ai_output_shows_on_the_next_view(ws_sqlite: Workspace) -> None:
    client = ws_sqlite.clients["clinician"]
    assert "PALB2" not in client.get(PAGE).text
    path = ws_sqlite.store / "outputs" / "genomics" / f"{PID}.findings.json"
    findings = json.loads(path.read_text())
    path.write_text(json.dumps([*findings, {"gene": "PALB2", "variant": "c.3113G>A", "significance": "Pathogenic"}]))
    assert "PALB2 c.3113G&gt;A Pathogenic" in client.get(PAGE).text


def _tokens(page: str) -> set[str]:
    return set(re.findall(r'name="csrf_token" value="([^"]+)"', page))


def test_each_user_gets_their_own_name_and_csrf_token_on_a_cached_page(ws_sqlite: Workspace) -> None:
    with Session(ws_sqlite.engine) as s, s.begin():
        appdb.add_user(s, "second", "correct horse battery", "clinician")
    first, second = ws_sqlite.clients["clinician"], ws_sqlite.login("second")
    mine, theirs = first.get(PAGE).text, second.get(PAGE).text
    assert _tokens(mine) == _tokens(first.get("/patients").text)  # the session's own token in every form
    assert len(_tokens(theirs)) == 1 and _tokens(theirs) != _tokens(mine)
    assert "clinician (clinician)" in mine and "second (clinician)" in theirs and "second (clinician)" not in mine
    marks = ws_sqlite.app.state.ctx.pages.marks  # type: ignore[attr-defined]
    assert all(m not in page for m in (marks.username, str(marks.csrf)) for page in (mine, theirs))
    key = re.findall(r'name="item" value="([^"]+)"', theirs)[0]
    data = {"item": key, "action": "accept", "csrf_token": _tokens(theirs).pop()}
    assert second.post(f"{PAGE}/decisions", data=data).status_code == 303  # their token works for them


def test_every_cached_view_and_read_writes_its_own_audit_row(ws: Workspace) -> None:
    page, api = ws.clients["clinician"], ws.client()
    before = (_views(ws, "view.patient"), _views(ws, "api.summary"))
    for _ in range(5):
        assert page.get(PAGE).status_code == 200
        assert api.get(SUMMARY, headers=ws.bearer("clinician")).status_code == 200
    assert (_views(ws, "view.patient"), _views(ws, "api.summary")) == (before[0] + 5, before[1] + 5)
    assert audit.verify(ws.engine).ok


def test_concurrent_async_reads_are_group_committed_and_a_failed_batch_fails_each(ws: Workspace) -> None:
    ctx = ws.app.state.ctx  # type: ignore[attr-defined]
    transactions = 0

    def counting():  # type: ignore[no-untyped-def]
        nonlocal transactions
        transactions += 1
        return ctx.writing()

    auditor = GroupAuditor(counting, inline=ctx.local_db)
    events = [("load", "view.patient", f"p{n}", None, None, {"n": n}) for n in range(40)]

    async def many() -> list[dict[str, object]]:
        return list(await asyncio.gather(*(auditor.arecord(e) for e in events)))  # type: ignore[arg-type]

    rows = asyncio.run(many())
    assert [r["detail"] for r in rows] == [audit.canonical({"n": n}) for n in range(40)]
    assert len({r["id"] for r in rows}) == 40 and transactions < 40
    assert audit.verify(ws.engine).ok

    def broken():  # type: ignore[no-untyped-def]
        raise RuntimeError("database gone")

    failing = GroupAuditor(broken, inline=ctx.local_db)

    async def fail() -> list[object]:
        return list(await asyncio.gather(*(failing.arecord(e) for e in events[:3]), return_exceptions=True))  # type: ignore[arg-type]

    assert [type(r) for r in asyncio.run(fail())] == [RuntimeError] * 3


def test_async_routes_depend_on_nothing_sync() -> None:
    """FastAPI runs a sync dependency in the thread pool: on an async route that is a hop per
    request, which under load cost the HTML patient list and every page more than their work."""
    from fastapi.dependencies.models import Dependant
    from fastapi.routing import APIRoute

    from carelens.server import api, cds, pages

    def sync_calls(dependant: Dependant) -> list[str]:
        found = [] if dependant.call is None or dependant.is_coroutine_callable else [repr(dependant.call)]
        return found + [name for sub in dependant.dependencies for name in sync_calls(sub)]

    routes = [r for router in (api.router, cds.router, pages.router) for r in router.routes
              if isinstance(r, APIRoute) and r.dependant.is_coroutine_callable]  # fmt: skip
    assert {"/patients", "/patients/{pid}", "/api/patients", "/healthz"} <= {r.path for r in routes}
    offending = {r.path: [c for sub in r.dependant.dependencies for c in sync_calls(sub)] for r in routes}
    assert {path: calls for path, calls in offending.items() if calls} == {}
