"""The append-only, hash-chained audit log.

Each row stores ``prev_hash`` (the previous row's ``row_hash``; 64 zeros for the first) and
``row_hash`` = SHA-256 of its canonical JSON content including ``prev_hash``. ``audit_head``
keeps the newest id and hash so that deleting the newest rows is noticed too. Someone able to
rewrite the whole table and the head can recompute the chain: publish ``head()`` elsewhere
(a ticket, a log shipper) to anchor it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select, text, update
from sqlalchemy.orm import Session

from carelens.store.appdb.clock import now_iso
from carelens.store.appdb.models import AuditEvent, AuditHead, Base

GENESIS = "0" * 64
_EVENTS, _HEAD = Base.metadata.tables["audit_log"], Base.metadata.tables["audit_head"]
_PG_LOCK_KEY = 0x0CA2E1E5


def canonical(row: dict[str, Any]) -> str:
    """The canonical text of an audit row (sorted keys, no spaces) that its hash covers."""
    return json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


FIELDS = ("id", "ts", "actor", "action", "patient_id", "model_version", "input_hash", "detail", "prev_hash")


def row_hash(event: AuditEvent | dict[str, Any]) -> str:
    """SHA-256 of the canonical content of an audit row (everything but ``row_hash``)."""
    get = event.get if isinstance(event, dict) else lambda k: getattr(event, k)
    content = {k: get(k) for k in FIELDS}
    return hashlib.sha256(canonical(content).encode()).hexdigest()


Event = tuple[str, str, str | None, str | None, str | None, dict[str, Any] | None]
"""actor, action, patient_id, model_version, input_hash, detail: the arguments of ``append``."""


def append(
    s: Session,
    actor: str,
    action: str,
    patient_id: str | None = None,
    model_version: str | None = None,
    input_hash: str | None = None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append one event inside the caller's transaction (commit it with the change it records);
    returns the row as a dict.

    Writers are serialised: an advisory lock on PostgreSQL, the database write lock on SQLite.
    """
    return append_many(s, [(actor, action, patient_id, model_version, input_hash, detail)])[0]


def append_many(s: Session, events: list[Event]) -> list[dict[str, Any]]:
    """Append several events, chained in order, inside the caller's transaction with one read
    and one update of the head (Core statements: no ORM work per row); returns the rows."""
    conn = s.connection()
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    else:
        conn.execute(update(_HEAD).where(_HEAD.c.id == 1).values(last_id=_HEAD.c.last_id))
    head = conn.execute(select(_HEAD.c.last_id, _HEAD.c.last_hash).where(_HEAD.c.id == 1)).first()
    last_id, last_hash = (head[0], head[1]) if head else (0, GENESIS)
    rows: list[dict[str, Any]] = []
    for actor, action, patient_id, model_version, input_hash, detail in events:
        row: dict[str, Any] = {
            "id": last_id + 1,
            "ts": now_iso(),
            "actor": actor,
            "action": action,
            "patient_id": patient_id,
            "model_version": model_version,
            "input_hash": input_hash,
            "detail": canonical(detail or {}),
            "prev_hash": last_hash,
        }
        row["row_hash"] = last_hash = row_hash(row)
        last_id = row["id"]
        rows.append(row)
    conn.execute(insert(_EVENTS), rows)
    if head is None:
        conn.execute(insert(_HEAD).values(id=1, last_id=last_id, last_hash=last_hash))
    else:
        conn.execute(update(_HEAD).where(_HEAD.c.id == 1).values(last_id=last_id, last_hash=last_hash))
    return rows


@dataclass(frozen=True)
class ChainReport:
    """Result of ``verify``: ``ok``, rows checked, and the first bad row with a one-line reason."""

    ok: bool
    rows: int
    bad_row: int | None = None
    reason: str | None = None


def verify(engine: Engine) -> ChainReport:
    """Walk the whole chain; report the first altered, inserted or deleted row."""
    expected_id, prev, rows = 1, GENESIS, 0
    with Session(engine) as s:
        for event in s.scalars(select(AuditEvent).order_by(AuditEvent.id).execution_options(yield_per=2000)):
            rows += 1
            if event.id != expected_id:
                return ChainReport(False, rows, expected_id, f"row {expected_id} is missing (deleted)")
            if event.prev_hash != prev:
                return ChainReport(False, rows, event.id, f"row {event.id} does not follow row {event.id - 1}")
            if row_hash(event) != event.row_hash:
                return ChainReport(False, rows, event.id, f"row {event.id} was altered (hash mismatch)")
            prev, expected_id = event.row_hash, expected_id + 1
        head = s.get(AuditHead, 1)
    last = expected_id - 1
    if head is None and last > 0:
        return ChainReport(False, rows, 1, "the chain head is missing")
    if head is not None and (head.last_id != last or head.last_hash != prev):
        if head.last_id > last:
            return ChainReport(False, rows, last + 1, f"rows {last + 1}..{head.last_id} are missing (deleted)")
        return ChainReport(False, rows, head.last_id, "the chain head does not match the last row")
    return ChainReport(True, rows)


def events(engine: Engine, patient_id: str | None = None, limit: int = 200) -> list[AuditEvent]:
    """The newest events (optionally for one patient), newest first."""
    with Session(engine) as s:
        query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
        if patient_id is not None:
            query = query.where(AuditEvent.patient_id == patient_id)
        return list(s.scalars(query))
