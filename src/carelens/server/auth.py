"""Who is asking: API tokens (``Authorization: Bearer``, scoped and expiring) for /api and CDS
Hooks (where a calling EHR may also sign a JWT, see ``cds_jwt``), cookie sessions for pages;
roles decide what each may see; CSRF tokens and a same-origin check guard every form. Every
refusal (401/403) is audited by the app's error handler."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import URL

from carelens.store.appdb import SESSION_SQL, TOKEN_SQL, now_iso, secret_hash

SESSION_COOKIE = "cl_session"
LOGIN_CSRF_COOKIE = "cl_login_csrf"
CLINICIAN, RESEARCHER, ADMIN = "clinician", "researcher", "admin"
ANY_ROLE = (CLINICIAN, RESEARCHER, ADMIN)
CHANGE_PASSWORD = "/account/password"
# the OpenAPI security schemes (the checks themselves are below; auto_error off so that the
# refusals keep carelens's messages)
BEARER = HTTPBearer(auto_error=False, scheme_name="bearerToken", description="carelens API token or CDS client JWT")
COOKIE = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, scheme_name="sessionCookie")


@dataclass(frozen=True)
class Principal:
    """The authenticated user of one request (``csrf`` is set for cookie sessions)."""

    user_id: int
    username: str
    role: str
    csrf: str | None = None
    session_id: str | None = None
    scopes: tuple[str, ...] = ()
    must_change_password: bool = False


class Problem(Exception):
    """An HTTP error with a one-line, PHI-free message (rendered as JSON or as a page)."""

    def __init__(
        self, status: int, message: str, login: bool = False, who: str | None = None, redirect: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.login, self.who, self.redirect = status, message, login, who, redirect


def _check_role(principal: Principal, roles: tuple[str, ...]) -> Principal:
    if principal.role not in roles:
        raise Problem(403, f"the {principal.role} role may not see this", who=principal.username)
    return principal


async def token_principal(request: Request, token: str) -> Principal | None:
    """The active user of a live (unrevoked, unexpired) API token, or None. One plain SQL read on
    every request: a revoked token or disabled user is refused on the very next one, in every
    server process."""
    row = await request.app.state.ctx.fetch_one(TOKEN_SQL, (secret_hash(token), False, True, now_iso()))
    return Principal(row[0], row[1], row[2], scopes=tuple(str(row[3]).split())) if row else None


async def session_principal(request: Request, sid: str) -> Principal | None:
    """The active user of a live (unexpired) session cookie, or None."""
    row = await request.app.state.ctx.fetch_one(SESSION_SQL, (secret_hash(sid), now_iso(), True))
    if not row:
        return None
    return Principal(row[0], row[1], row[2], csrf=row[3], session_id=sid, must_change_password=bool(row[4]))


def api_user(*roles: str, scope: str = "api") -> Callable[..., Awaitable[Principal]]:
    """Dependency: the bearer-token user, 401 without a valid token or one lacking ``scope``,
    403 for another role. For the ``cds`` scope a calling EHR's signed JWT is accepted too."""

    async def dependency(
        request: Request, _credentials: HTTPAuthorizationCredentials | None = Depends(BEARER)
    ) -> Principal:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Problem(401, "missing bearer token (Authorization: Bearer TOKEN)")
        if scope == "cds" and token.count(".") == 2 and not token.startswith("cl_"):
            from carelens.server.cds_jwt import jwt_principal

            principal = await jwt_principal(request, token)
        else:
            found = await token_principal(request, token)
            if found is None:
                raise Problem(401, "invalid, expired or revoked token")
            if scope not in found.scopes:
                raise Problem(401, f"this token is not valid for {scope}", who=found.username)
            principal = found
        return _check_role(principal, roles)

    return dependency


def page_user(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency: the session-cookie user; no or expired session -> log in; a one-time password
    -> change it first; other role -> 403."""

    async def dependency(request: Request, _cookie: str | None = Depends(COOKIE)) -> Principal:
        sid = request.cookies.get(SESSION_COOKIE)
        if not sid:
            raise Problem(401, "please log in", login=True)
        principal = await session_principal(request, sid)
        if principal is None:
            raise Problem(401, "your session has expired; please log in again", login=True)
        if principal.must_change_password and request.url.path not in (CHANGE_PASSWORD, "/logout"):
            raise Problem(403, "change your one-time password first", who=principal.username, redirect=CHANGE_PASSWORD)
        return _check_role(principal, roles)

    return dependency


async def signed_in(
    request: Request,
    _credentials: HTTPAuthorizationCredentials | None = Depends(BEARER),
    _cookie: str | None = Depends(COOKIE),
) -> Principal:
    """Dependency: any signed-in user, by API token (``api`` scope) or session cookie; else 401."""
    if request.headers.get("authorization"):
        return await api_user(*ANY_ROLE)(request, None)
    sid = request.cookies.get(SESSION_COOKIE)
    principal = await session_principal(request, sid) if sid else None
    if principal is None:
        raise Problem(401, "sign in to read the API schema (a bearer token or a session)")
    return principal


def login_csrf(key: bytes, nonce: str) -> str:
    """The login form's token for the nonce in its cookie: HMAC-bound with the server's key, so
    that someone who can plant a cookie cannot make the matching form value."""
    return hmac.new(key, b"login-csrf|" + nonce.encode(), "sha256").hexdigest()


def origin_of(url: URL) -> str:
    """``scheme://host[:port]`` of a URL (default ports left out), as browsers send ``Origin``."""
    default = {"http": 80, "https": 443}.get(url.scheme)
    port = f":{url.port}" if url.port and url.port != default else ""
    return f"{url.scheme}://{url.hostname}{port}"


async def same_origin(request: Request) -> None:
    """Dependency for the pages: an unsafe method (a form post) must come from this site's own
    pages: its ``Origin`` (else its ``Referer``'s origin) is the configured public URL's or the
    one the browser addressed; a post with neither is refused. A cross-site form cannot then
    use the cookies, and a planted login cookie is of no use from another site. Async: it only
    reads headers, and a sync dependency would cost every page a hop through the thread pool."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    public = request.app.state.ctx.settings.public_url
    allowed = {origin_of(request.url), *([origin_of(URL(public))] if public else [])}
    origin = request.headers.get("origin")
    if origin is None and request.headers.get("referer"):
        origin = origin_of(URL(request.headers["referer"]))
    if origin not in allowed:
        raise Problem(403, "cross-site form submission refused (Origin does not match this site)")


def check_csrf(principal: Principal, submitted: str | None) -> None:
    """403 unless the form's CSRF token is the session's."""
    if not principal.csrf or not submitted or not hmac.compare_digest(principal.csrf, submitted):
        raise Problem(403, "the form's security token is missing or wrong; reload the page and try again")
