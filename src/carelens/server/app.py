"""The app factory: API, CDS Hooks and pages behind one guard (body limit, security
headers, HSTS behind TLS, PHI-free errors and logs); every 401/403 is audited; the OpenAPI
schema is served to signed-in users only."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from carelens import __version__
from carelens.core.settings import load_settings
from carelens.server import api, cds, pages
from carelens.server.auth import Principal, Problem, signed_in
from carelens.server.context import Context
from carelens.server.middleware import Guard, masked_path
from carelens.server.settings import ServerSettings

log = logging.getLogger("carelens.server")
STATIC = Path(__file__).with_name("static")


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith(("/api/", "/cds-services")) or request.url.path == "/api"


def _error(request: Request, status: int, message: str) -> Response:
    if _wants_json(request):
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"detail": message}, status_code=status, headers=headers)
    return pages.render(request, "error.html", None, status=status, code=status, message=message)


async def _audit_denial(request: Request, exc: Problem) -> None:
    """Every refusal is an access decision: one audit row (who, status, masked path, why)."""
    detail = {
        "status": exc.status,
        "method": request.method,
        "path": masked_path(request.url.path),
        "reason": exc.message,
        "address": request.client.host if request.client else None,
    }
    try:
        await request.app.state.ctx.auditor.arecord((exc.who or "anonymous", "access.denied", None, None, None, detail))
    except Exception as err:  # the refusal stands even when it cannot be recorded
        log.error("could not audit a refusal (%s)", type(err).__name__)


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    if exc.status in (401, 403):
        await _audit_denial(request, exc)
    if exc.redirect and request.method == "GET" and not _wants_json(request):
        return RedirectResponse(exc.redirect, status_code=303)
    if exc.login and not _wants_json(request):
        if request.method == "GET":
            expired = "&expired=1" if "expired" in exc.message else ""
            return RedirectResponse(f"/login?next={quote(request.url.path)}{expired}", status_code=303)
        return _error(request, 401, exc.message)
    return _error(request, exc.status, exc.message)


async def _invalid(request: Request, exc: Exception) -> Response:
    """422 (400 for unparsable JSON) naming the fields, never echoing the values sent."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return _error(request, 400, "malformed JSON body")
    where = ", ".join(".".join(str(p) for p in e.get("loc", ())[1:]) or "body" for e in errors[:5])
    message = f"invalid request: check {where}"
    if _wants_json(request):
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors[:20]]
        return JSONResponse({"detail": message, "errors": detail}, status_code=422)
    return _error(request, 422, message)


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    messages = {404: "not found", 405: "method not allowed"}
    return _error(request, exc.status_code, messages.get(exc.status_code, "request refused"))


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """The carelens workspace: ``/api``, ``/cds-services`` and the clinician pages."""
    settings = settings or ServerSettings.from_env()
    app = FastAPI(title="carelens", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ctx = Context(settings)

    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi(request: Request, who: Principal = Depends(signed_in)) -> JSONResponse:
        """The OpenAPI schema (typed responses, security schemes), for signed-in users only."""
        request.app.state.ctx.record(who, "api.openapi")
        return JSONResponse(app.openapi())

    app.include_router(api.router)
    app.include_router(cds.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_middleware(Guard, max_bytes=settings.max_body_bytes, hsts=settings.secure_cookies)
    return app


def configure_logging() -> None:
    """One-line INFO logs on stderr (the PHI-free access log among them) in a serving process."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)


def app_from_env() -> FastAPI:
    """The app of one ``carelens serve --workers N`` process (its store in ``CARELENS_SERVE_STORE``);
    each process sets up its own logging and owner-only file creation, as the parent's do not reach it."""
    from carelens.store.permissions import private_umask

    private_umask()
    configure_logging()
    return create_app(ServerSettings.from_env(load_settings().serve_store))
