"""Tables of the app database: users, API tokens, sessions, review decisions, signed
summaries, the hash-chained audit log and CDS Hooks feedback.

Timestamps are ISO-8601 UTC strings so that the audit hash is the same on every backend.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ROLES = ("clinician", "researcher", "admin")


class Base(DeclarativeBase):
    """Declarative base of the app database."""


class User(Base):
    """A local user; ``password_hash`` is an argon2id hash, never the password."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[str] = mapped_column(String(32))
    must_change_password: Mapped[bool] = mapped_column(default=False)
    password_changed_at: Mapped[str | None] = mapped_column(String(32), nullable=True)


class ApiToken(Base):
    """An API token; only its SHA-256 is stored, the token itself is shown once."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[str] = mapped_column(String(32))
    revoked: Mapped[bool] = mapped_column(default=False)
    expires_at: Mapped[str | None] = mapped_column(String(32), nullable=True)
    scopes: Mapped[str] = mapped_column(String(64), default="api cds")


class WebSession(Base):
    """A browser session; the cookie holds a random id whose SHA-256 is ``id_hash``."""

    __tablename__ = "sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[str] = mapped_column(String(32))


class ReviewDecision(Base):
    """A clinician's decision on one AI item: accept, edit (with new text) or reject."""

    __tablename__ = "review_decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(128), index=True)
    item_key: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    edited_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    input_hash: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(String(32))


class SignedSummary(Base):
    """The clinician-signed version of a summary, kept apart from the AI draft."""

    __tablename__ = "signed_summaries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(128), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    signed_at: Mapped[str] = mapped_column(String(32))
    input_hash: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(Text)
    draft_json: Mapped[str] = mapped_column(Text)
    signed_json: Mapped[str] = mapped_column(Text)


class AuditEvent(Base):
    """One append-only audit row; ``row_hash`` covers the canonical content and ``prev_hash``."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ts: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    model_version: Mapped[str | None] = mapped_column(Text, nullable=True)
    input_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="{}")
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The last row of the chain (id and hash), so that deleting the newest rows is detected."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_id: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))


class CdsFeedback(Base):
    """CDS Hooks feedback on a card: accepted or overridden (with a reason)."""

    __tablename__ = "cds_feedback"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_id: Mapped[str] = mapped_column(String(64))
    card_uuid: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    override_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    outcome_at: Mapped[str] = mapped_column(String(32))


class LoginThrottle(Base):
    """Failed logins of one account (``user:NAME``) or address (``addr:IP``): backoff until
    ``blocked_until``; ``locked`` accounts wait for an admin (``carelens users unlock``)."""

    __tablename__ = "login_throttle"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failure_at: Mapped[str] = mapped_column(String(32))
    blocked_until: Mapped[str | None] = mapped_column(String(32), nullable=True)
    locked: Mapped[bool] = mapped_column(default=False)


class CdsCard(Base):
    """A card the patient-view service issued: feedback must name one exactly."""

    __tablename__ = "cds_cards"
    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(128))
    audit_id: Mapped[int] = mapped_column(Integer)
    model_version: Mapped[str | None] = mapped_column(Text, nullable=True)
    issued_at: Mapped[str] = mapped_column(String(32))


class CdsJti(Base):
    """The ``jti`` of a CDS client's JWT, kept until it expires so that a replay is refused."""

    __tablename__ = "cds_jti"
    jti: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[str] = mapped_column(String(32))
