"""Users, API tokens and browser sessions (passwords argon2id-hashed under the policy of
``passwords``, tokens stored as SHA-256 with an expiry and scopes)."""

from __future__ import annotations

import hashlib
import re
import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from carelens.core.errors import InputError
from carelens.store.appdb import audit, throttle
from carelens.store.appdb.clock import now_iso
from carelens.store.appdb.models import ROLES, ApiToken, User, WebSession
from carelens.store.appdb.passwords import check_password

_hasher = PasswordHasher()
USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
SCOPES = ("api", "cds")  # the JSON API, CDS Hooks
TOKEN_TTL_DAYS = 90


@cache
def _dummy_hash() -> str:
    """A hash to verify against for unknown users, so that both cases take the same time."""
    return _hasher.hash("not-a-real-password")


def secret_hash(value: str) -> str:
    """How an API token or session id is stored (SHA-256 hex): the secret itself never is."""
    return hashlib.sha256(value.encode()).hexdigest()


# The lookups of ``user_for_token`` and ``session_user`` as plain SQL (``?`` placeholders), for
# callers that run one on every request (the server: about 20x cheaper than the ORM). Parameters:
# (secret_hash(token), False, True, now_iso()) and (secret_hash(sid), now_iso(), True).
TOKEN_SQL = (
    "SELECT u.id, u.username, u.role, t.scopes FROM api_tokens t JOIN users u ON u.id = t.user_id "
    "WHERE t.token_hash = ? AND t.revoked = ? AND u.active = ? AND (t.expires_at IS NULL OR t.expires_at > ?)"
)
SESSION_SQL = (
    "SELECT u.id, u.username, u.role, s.csrf_token, u.must_change_password FROM sessions s "
    "JOIN users u ON u.id = s.user_id WHERE s.id_hash = ? AND s.expires_at > ? AND u.active = ?"
)


def add_user(s: Session, username: str, password: str, role: str, one_time: bool = False) -> User:
    """Create a user; raises ``InputError`` for a bad name, role, weak password or a duplicate.
    A ``one_time`` password must be changed at the first login."""
    if not USERNAME.match(username):
        raise InputError("user name must be 1-64 letters, digits or . _ @ -")
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}")
    check_password(username, password)
    if s.scalar(select(User).where(User.username == username)) is not None:
        raise InputError(f"user {username} already exists")
    user = User(
        username=username,
        password_hash=_hasher.hash(password),
        role=role,
        active=True,
        created_at=now_iso(),
        must_change_password=one_time,
        password_changed_at=now_iso(),
    )
    s.add(user)
    s.flush()
    return user


def set_password(s: Session, username: str, new: str, current: str | None = None, one_time: bool = False) -> int:
    """Give ``username`` a new password (policy-checked; ``current`` must match when given; the
    new one must differ from it). Ends every session of the user; returns how many. ``one_time``
    (an admin's reset) makes the user change it at the next login."""
    user = _existing(s, username)
    if current is not None:
        try:
            _hasher.verify(user.password_hash, current)
        except (VerificationError, InvalidHashError):
            raise InputError("the current password is wrong") from None
        if current == new:
            raise InputError("the new password must differ from the current one")
    check_password(username, new)
    user.password_hash = _hasher.hash(new)
    user.must_change_password = one_time
    user.password_changed_at = now_iso()
    result = s.execute(delete(WebSession).where(WebSession.user_id == user.id))
    s.flush()
    return int(getattr(result, "rowcount", 0) or 0)


def get_user(s: Session, username: str) -> User | None:
    """The user named ``username``, or None."""
    return s.scalar(select(User).where(User.username == username))


def authenticate(s: Session, username: str, password: str) -> User | None:
    """The active user when the password matches, else None (same work either way)."""
    user = get_user(s, username)
    try:
        _hasher.verify(user.password_hash if user else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return None
    return user if user is not None and user.active else None


def create_token(s: Session, user: User, days: float = TOKEN_TTL_DAYS, scopes: tuple[str, ...] = SCOPES) -> str:
    """A new API token for ``user``, valid ``days`` days for ``scopes`` (of ``SCOPES``); only its
    hash is stored, so show it to the user once. A disabled user gets none (``InputError``)."""
    if not user.active:
        raise InputError(f"user {user.username} is disabled; enable it before issuing a token")
    if not 0 < days <= 366:
        raise InputError("a token lives between a moment and 366 days")
    unknown = sorted(set(scopes) - set(SCOPES)) or ([] if scopes else ["(none)"])
    if unknown:
        raise InputError(f"unknown token scope {unknown[0]}: choose from {', '.join(SCOPES)}")
    token = "cl_" + secrets.token_urlsafe(32)
    s.add(
        ApiToken(
            user_id=user.id,
            token_hash=secret_hash(token),
            created_at=now_iso(),
            revoked=False,
            expires_at=now_iso(days * 86400),
            scopes=" ".join(sorted(set(scopes))),
        )
    )
    s.flush()
    return token


def user_for_token(s: Session, token: str) -> User | None:
    """The active user a live (unrevoked, unexpired) API token belongs to, or None (one query)."""
    return s.scalar(
        select(User)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(
            ApiToken.token_hash == secret_hash(token),
            ApiToken.revoked.is_(False),
            User.active.is_(True),
            (ApiToken.expires_at.is_(None)) | (ApiToken.expires_at > now_iso()),
        )
    )


def list_users(s: Session) -> list[dict[str, object]]:
    """Every user by name: role, active, created_at, how many live (unrevoked, unexpired) tokens
    they hold, whether failed logins locked them and whether they must change their password."""
    live = (
        select(ApiToken.user_id, func.count().label("n"))
        .where(ApiToken.revoked.is_(False), (ApiToken.expires_at.is_(None)) | (ApiToken.expires_at > now_iso()))
        .group_by(ApiToken.user_id)
        .subquery()
    )
    rows = s.execute(
        select(User, func.coalesce(live.c.n, 0)).outerjoin(live, live.c.user_id == User.id).order_by(User.username)
    )
    locked = throttle.locked_users(s)
    return [
        {
            "username": u.username,
            "role": u.role,
            "active": u.active,
            "created_at": u.created_at,
            "tokens": int(n),
            "locked": u.username.lower() in locked,
            "must_change_password": u.must_change_password,
        }
        for u, n in rows
    ]


def _existing(s: Session, username: str) -> User:
    user = get_user(s, username)
    if user is None:
        raise InputError(f"no user named {username}")
    return user


def revoke_tokens(s: Session, username: str) -> int:
    """Revoke every live API token of ``username`` (at once: the next request with one is 401); returns how many."""
    user = _existing(s, username)
    result = s.execute(
        update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked.is_(False)).values(revoked=True)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def set_active(s: Session, username: str, active: bool) -> dict[str, int]:
    """Enable or disable ``username``. Disabling ends their sessions and revokes their tokens at once
    (re-enabling revives neither: they log in again and get new tokens). The last active admin
    cannot be disabled. Returns how many sessions and tokens were ended."""
    user = _existing(s, username)
    if not active and user.active and user.role == "admin":
        admins = s.scalar(select(func.count()).select_from(User).where(User.role == "admin", User.active.is_(True)))
        if (admins or 0) <= 1:
            raise InputError(f"{username} is the last active admin and cannot be disabled")
    user.active = active
    ended = {"sessions": 0, "tokens": 0}
    if not active:
        result = s.execute(delete(WebSession).where(WebSession.user_id == user.id))
        ended = {"sessions": int(getattr(result, "rowcount", 0) or 0), "tokens": revoke_tokens(s, username)}
    s.flush()
    return ended


ACCOUNT_CHANGES = ("user.disable", "user.enable", "user.unlock", "token.revoke")


def change_account(s: Session, actor: str, change: str, username: str) -> dict[str, int]:
    """One of ``ACCOUNT_CHANGES`` to ``username`` and its audit row by ``actor``, in the caller's
    transaction; returns how many sessions and tokens it ended."""
    if change == "token.revoke":
        result = {"tokens": revoke_tokens(s, username)}
    elif change == "user.unlock":
        _existing(s, username)
        result = {"unlocked": int(throttle.unlock(s, username))}
    elif change in ("user.disable", "user.enable"):
        result = set_active(s, username, change == "user.enable")
    else:
        raise InputError(f"unknown account change {change!r}: choose one of {', '.join(ACCOUNT_CHANGES)}")
    audit.append(s, actor, change, detail={"user": username, **result})
    return result


def create_session(s: Session, user: User, ttl_s: float) -> tuple[str, str]:
    """Start a browser session; returns (session id for the cookie, CSRF token)."""
    sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    s.add(
        WebSession(
            id_hash=secret_hash(sid), user_id=user.id, csrf_token=csrf, created_at=now_iso(), expires_at=now_iso(ttl_s)
        )
    )
    s.flush()
    return sid, csrf


def session_user(s: Session, sid: str) -> tuple[WebSession, User] | None:
    """The live session and its active user for a cookie value, or None (unknown or expired)."""
    row = s.execute(
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.id_hash == secret_hash(sid), WebSession.expires_at > now_iso(), User.active.is_(True))
    ).first()
    return (row[0], row[1]) if row else None


def end_session(s: Session, sid: str) -> None:
    """Log out: delete the session."""
    s.execute(delete(WebSession).where(WebSession.id_hash == secret_hash(sid)))


def purge_expired_sessions(s: Session) -> int:
    """Delete expired sessions; returns how many."""
    result = s.execute(delete(WebSession).where(WebSession.expires_at <= now_iso()))
    return int(getattr(result, "rowcount", 0) or 0)
