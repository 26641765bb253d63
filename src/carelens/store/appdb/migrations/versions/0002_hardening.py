"""Hardening: login throttling, forced password change, token expiry and scopes, issued CDS
cards and seen CDS client JWT ids, keyed audit chain. Tokens issued before expire in 90 days.

The audit rows written before this revision were chained with plain SHA-256; they are resealed
here with the HMAC key of the store's audit folder (``auditkeys``), so that the whole chain is
keyed from now on.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("must_change_password", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("password_changed_at", sa.String(32), nullable=True))
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("expires_at", sa.String(32), nullable=True))
        batch.add_column(sa.Column("scopes", sa.String(64), nullable=False, server_default="api cds"))
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("last_failure_at", sa.String(32), nullable=False),
        sa.Column("blocked_until", sa.String(32), nullable=True),
        sa.Column("locked", sa.Boolean, nullable=False),
    )
    op.execute(sa.text("UPDATE api_tokens SET expires_at = :t WHERE expires_at IS NULL").bindparams(t=_in_90_days()))
    op.create_table(
        "cds_cards",
        sa.Column("uuid", sa.String(36), primary_key=True),
        sa.Column("patient_id", sa.String(128), nullable=False),
        sa.Column("audit_id", sa.Integer, nullable=False),
        sa.Column("model_version", sa.Text, nullable=True),
        sa.Column("issued_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "cds_jti",
        sa.Column("jti", sa.String(200), primary_key=True),
        sa.Column("expires_at", sa.String(32), nullable=False),
    )
    _reseal_audit()


def _in_90_days() -> str:
    from carelens.store.appdb.clock import now_iso

    return now_iso(90 * 86400)


def _reseal_audit() -> None:
    from carelens.store.appdb import audit, auditkeys

    conn = op.get_bind()
    rows = conn.execute(sa.text(f"SELECT {', '.join(audit.FIELDS)} FROM audit_log ORDER BY id")).mappings().all()
    if not rows:
        return
    keys = audit.keys_for(conn)
    assert keys is not None
    prev = audit.GENESIS
    for row in rows:
        sealed = {**row, "prev_hash": prev}
        prev = audit.row_hash(sealed, keys)
        conn.execute(
            sa.text("UPDATE audit_log SET prev_hash = :p, row_hash = :h WHERE id = :i"),
            {"p": sealed["prev_hash"], "h": prev, "i": row["id"]},
        )
    last = rows[-1]
    conn.execute(
        sa.text("UPDATE audit_head SET last_id = :i, last_hash = :h WHERE id = 1"), {"i": last["id"], "h": prev}
    )
    auditkeys.write_head(keys, int(last["id"]), prev, str(last["ts"]))


def downgrade() -> None:
    op.drop_table("cds_jti")
    op.drop_table("cds_cards")
    op.drop_table("login_throttle")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("scopes")
        batch.drop_column("expires_at")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("password_changed_at")
        batch.drop_column("must_change_password")
