"""The app database (users, tokens, sessions, reviews, signed summaries, audit, CDS feedback).

SQLAlchemy on SQLite by default (inside the store) or PostgreSQL by URL (``CARELENS_DB_URL``);
the Alembic migrations ship in the package and are applied (``upgrade head``) on first use.
"""

from carelens.store.appdb import audit, throttle
from carelens.store.appdb.accounts import (
    SESSION_SQL,
    TOKEN_SQL,
    add_user,
    authenticate,
    change_account,
    create_session,
    create_token,
    end_session,
    get_user,
    list_users,
    revoke_tokens,
    secret_hash,
    session_user,
    set_active,
    set_password,
    user_for_token,
)
from carelens.store.appdb.audit import ChainReport
from carelens.store.appdb.clock import now_iso
from carelens.store.appdb.engine import begin_write, dispose_all, get_engine, make_engine, sessionmaker_for, upgrade
from carelens.store.appdb.models import (
    ROLES,
    ApiToken,
    AuditEvent,
    AuditHead,
    Base,
    CdsCard,
    CdsFeedback,
    CdsJti,
    ReviewDecision,
    SignedSummary,
    User,
    WebSession,
)
from carelens.store.appdb.passwords import check_password

__all__ = [
    "ROLES",
    "SESSION_SQL",
    "TOKEN_SQL",
    "ApiToken",
    "AuditEvent",
    "AuditHead",
    "Base",
    "CdsCard",
    "CdsFeedback",
    "CdsJti",
    "ChainReport",
    "ReviewDecision",
    "SignedSummary",
    "User",
    "WebSession",
    "add_user",
    "audit",
    "authenticate",
    "begin_write",
    "change_account",
    "check_password",
    "create_session",
    "create_token",
    "dispose_all",
    "end_session",
    "get_engine",
    "get_user",
    "list_users",
    "make_engine",
    "now_iso",
    "revoke_tokens",
    "secret_hash",
    "session_user",
    "sessionmaker_for",
    "set_active",
    "set_password",
    "throttle",
    "upgrade",
    "user_for_token",
]
