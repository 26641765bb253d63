"""Who is asking: API tokens (``Authorization: Bearer``) for /api and CDS Hooks, cookie
sessions for pages; roles decide what each may see; CSRF tokens guard every form."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.orm import Session

from carelens.store import appdb

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


def db(request: Request) -> Session:
    """A new app-database session for this request."""
    return request.app.state.ctx.Session()


def _check_role(principal: Principal, roles: tuple[str, ...]) -> Principal:
    if principal.role not in roles:
        raise Problem(403, f"the {principal.role} role may not see this")
    return principal


def api_user(*roles: str) -> Callable[[Request], Principal]:
    """Dependency: the bearer-token user, 401 without a valid token, 403 for another role."""

    def dependency(request: Request) -> Principal:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Problem(401, "missing bearer token (Authorization: Bearer TOKEN)")
        with db(request) as s:
            user = appdb.user_for_token(s, token.strip())
            if user is None:
                raise Problem(401, "invalid or revoked token")
            return _check_role(Principal(user.id, user.username, user.role), roles)

    return dependency


def page_user(*roles: str) -> Callable[[Request], Principal]:
    """Dependency: the session-cookie user; no or expired session -> log in; other role -> 403."""

    def dependency(request: Request) -> Principal:
        sid = request.cookies.get(SESSION_COOKIE)
        if not sid:
            raise Problem(401, "please log in", login=True)
        with db(request) as s:
            found = appdb.session_user(s, sid)
            if found is None:
                raise Problem(401, "your session has expired; please log in again", login=True)
            sess, user = found
            principal = Principal(user.id, user.username, user.role, csrf=sess.csrf_token, session_id=sid)
        return _check_role(principal, roles)

    return dependency


def check_csrf(principal: Principal, submitted: str | None) -> None:
    """403 unless the form's CSRF token is the session's."""
    if not principal.csrf or not submitted or not hmac.compare_digest(principal.csrf, submitted):
        raise Problem(403, "the form's security token is missing or wrong; reload the page and try again")
