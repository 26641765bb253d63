"""Who is asking: API tokens (``Authorization: Bearer``) for /api and CDS Hooks, cookie
sessions for pages; roles decide what each may see; CSRF tokens guard every form."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from carelens.store.appdb import SESSION_SQL, TOKEN_SQL, now_iso, secret_hash

SESSION_COOKIE = "cl_session"
LOGIN_CSRF_COOKIE = "cl_login_csrf"
CLINICIAN, RESEARCHER, ADMIN = "clinician", "researcher", "admin"
ANY_ROLE = (CLINICIAN, RESEARCHER, ADMIN)


@dataclass(frozen=True)
class Principal:
    """The authenticated user of one request (``csrf`` is set for cookie sessions)."""

    user_id: int
    username: str
    role: str
    csrf: str | None = None
    session_id: str | None = None


class Problem(Exception):
    """An HTTP error with a one-line, PHI-free message (rendered as JSON or as a page)."""

    def __init__(self, status: int, message: str, login: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.login = status, message, login


def _check_role(principal: Principal, roles: tuple[str, ...]) -> Principal:
    if principal.role not in roles:
        raise Problem(403, f"the {principal.role} role may not see this")
    return principal


async def token_principal(request: Request, token: str) -> Principal | None:
    """The active user of a live API token, or None. One plain SQL read on every request: a
    revoked token or disabled user is refused on the very next one, in every server process."""
    row = await request.app.state.ctx.fetch_one(TOKEN_SQL, (secret_hash(token), False, True))
    return Principal(row[0], row[1], row[2]) if row else None


async def session_principal(request: Request, sid: str) -> Principal | None:
    """The active user of a live (unexpired) session cookie, or None."""
    row = await request.app.state.ctx.fetch_one(SESSION_SQL, (secret_hash(sid), now_iso(), True))
    return Principal(row[0], row[1], row[2], csrf=row[3], session_id=sid) if row else None


def api_user(*roles: str) -> Callable[[Request], Awaitable[Principal]]:
    """Dependency: the bearer-token user, 401 without a valid token, 403 for another role."""

    async def dependency(request: Request) -> Principal:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Problem(401, "missing bearer token (Authorization: Bearer TOKEN)")
        principal = await token_principal(request, token.strip())
        if principal is None:
            raise Problem(401, "invalid or revoked token")
        return _check_role(principal, roles)

    return dependency


def page_user(*roles: str) -> Callable[[Request], Awaitable[Principal]]:
    """Dependency: the session-cookie user; no or expired session -> log in; other role -> 403."""

    async def dependency(request: Request) -> Principal:
        sid = request.cookies.get(SESSION_COOKIE)
        if not sid:
            raise Problem(401, "please log in", login=True)
        principal = await session_principal(request, sid)
        if principal is None:
            raise Problem(401, "your session has expired; please log in again", login=True)
        return _check_role(principal, roles)

    return dependency


def check_csrf(principal: Principal, submitted: str | None) -> None:
    """403 unless the form's CSRF token is the session's."""
    if not principal.csrf or not submitted or not hmac.compare_digest(principal.csrf, submitted):
        raise Problem(403, "the form's security token is missing or wrong; reload the page and try again")
