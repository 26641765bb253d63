"""The append-only audit log: an HMAC-sealed hash chain with a sealed head kept outside the database.

Each row stores ``prev_hash`` (the previous row's ``row_hash``; 64 zeros for the first) and
``row_hash`` = HMAC-SHA256 (key in ``<audit dir>/audit.key``, never in the database) of its
canonical JSON content including ``prev_hash``: someone who can write the database cannot edit a
row and recompute the chain. ``audit_head`` keeps the newest id and hash, and after every commit
the sealed head file (``auditkeys.write_head``) does too, outside the database, so that deleting
the newest rows, or wiping the log and its head, is detected. ``checkpoint`` exports a signed head
for anchoring elsewhere; ``verify`` checks the chain against the head file, the saved checkpoints
and any anchors given.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, insert, select, text, update
from sqlalchemy.orm import Session

from carelens.store.appdb import auditkeys
from carelens.store.appdb.auditkeys import AuditKeys, canonical
from carelens.store.appdb.clock import now_iso
from carelens.store.appdb.models import AuditEvent, AuditHead, Base

GENESIS = "0" * 64
_EVENTS, _HEAD = Base.metadata.tables["audit_log"], Base.metadata.tables["audit_head"]
_PG_LOCK_KEY = 0x0CA2E1E5
FIELDS = ("id", "ts", "actor", "action", "patient_id", "model_version", "input_hash", "detail", "prev_hash")

__all__ = [
    "GENESIS",
    "ChainReport",
    "append",
    "append_many",
    "canonical",
    "checkpoint",
    "engine_for_store",
    "events",
    "keys_for",
    "record_command",
    "verify",
]


def keys_for(bind: Engine | Any, create: bool = True) -> AuditKeys | None:
    """The audit keys of the database behind ``bind`` (an engine or connection)."""
    engine = bind if isinstance(bind, Engine) else bind.engine
    return auditkeys.load_keys(auditkeys.audit_dir(engine.url.render_as_string(hide_password=False)), create)


def row_hash(event: AuditEvent | dict[str, Any], keys: AuditKeys) -> str:
    """HMAC-SHA256 of the canonical content of an audit row (everything but ``row_hash``)."""
    get = event.get if isinstance(event, dict) else lambda k: getattr(event, k)
    return keys.mac(canonical({k: get(k) for k in FIELDS}))


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


def append_many(s: Session, events: list[Event], keys: AuditKeys | None = None) -> list[dict[str, Any]]:
    """Append several events, chained in order, inside the caller's transaction with one read
    and one update of the head (Core statements: no ORM work per row); returns the rows. Once
    the transaction commits, the signed head file outside the database follows. ``keys``: the
    database's audit keys when the caller holds them (a server: finding them reads the settings)."""
    conn = s.connection()
    keys = keys or keys_for(conn)
    assert keys is not None
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
        row["row_hash"] = last_hash = row_hash(row, keys)
        last_id = row["id"]
        rows.append(row)
    conn.execute(insert(_EVENTS), rows)
    if head is None:
        conn.execute(insert(_HEAD).values(id=1, last_id=last_id, last_hash=last_hash))
    else:
        conn.execute(update(_HEAD).where(_HEAD.c.id == 1).values(last_id=last_id, last_hash=last_hash))
    _head_after_commit(s, keys, (last_id, last_hash, rows[-1]["ts"]))
    return rows


def _head_after_commit(s: Session, keys: AuditKeys, head: tuple[int, str, str]) -> None:
    """Write the signed head file once ``s``'s transaction commits (the newest head of the
    transaction; nothing when it rolls back)."""
    if "audit_head" not in s.info and not event.contains(s, "after_commit", _write_pending):
        event.listen(s, "after_commit", _write_pending)
        event.listen(s, "after_rollback", _drop_pending)
    s.info["audit_head"] = (keys, head)


def _write_pending(s: Session) -> None:
    pending = s.info.pop("audit_head", None)
    if pending is not None:
        auditkeys.write_head(pending[0], *pending[1])


def _drop_pending(s: Session) -> None:
    s.info.pop("audit_head", None)


@dataclass(frozen=True)
class ChainReport:
    """Result of ``verify``: ``ok``, rows checked, the first bad row with a one-line reason, and
    how many signed heads and checkpoints the chain was checked against."""

    ok: bool
    rows: int
    bad_row: int | None = None
    reason: str | None = None
    checkpoints: int = 0
    head: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "bad_row": self.bad_row,
            "reason": self.reason,
            "checkpoints": self.checkpoints,
            "head": self.head,
        }


def _walk(s: Session, keys: AuditKeys | None) -> tuple[ChainReport | None, int, str, dict[int, str]]:
    """Walk the rows in order: (first problem or None, last id, last hash, hash of every row)."""
    expected_id, prev = 1, GENESIS
    hashes: dict[int, str] = {}
    query = select(AuditEvent).order_by(AuditEvent.id).execution_options(yield_per=2000)
    for rows, ev in enumerate(s.scalars(query), start=1):
        if keys is None:
            return ChainReport(False, rows, ev.id, "the audit key file is missing; rows cannot be checked"), 0, "", {}
        if ev.id != expected_id:
            return ChainReport(False, rows, expected_id, f"row {expected_id} is missing (deleted)"), 0, "", {}
        if ev.prev_hash != prev:
            return ChainReport(False, rows, ev.id, f"row {ev.id} does not follow row {ev.id - 1}"), 0, "", {}
        if row_hash(ev, keys) != ev.row_hash:
            return ChainReport(False, rows, ev.id, f"row {ev.id} was altered (seal mismatch)"), 0, "", {}
        prev, expected_id = ev.row_hash, expected_id + 1
        hashes[ev.id] = prev
    return None, expected_id - 1, prev, hashes


def _against(cp: dict[str, Any], what: str, last: int, hashes: dict[int, str], keys: AuditKeys | None) -> str | None:
    """Why the chain disagrees with a signed head or checkpoint, or None."""
    if not auditkeys.check_signature(cp, keys.public_key if keys else None, keys):
        return f"the {what} has a bad signature (forged or from another key)"
    cid = int(cp["last_id"])
    if cid > last:
        if last == 0:
            return f"the audit log was wiped: the {what} records {cid} rows, the database has none"
        return f"rows {last + 1}..{cid} are missing (truncated; the {what} records {cid} rows)"
    if cid > 0 and hashes.get(cid) != cp["last_hash"]:
        return f"row {cid} differs from the {what} (rewritten)"
    return None


def verify(engine: Engine, anchors: list[dict[str, Any]] | None = None) -> ChainReport:
    """Walk the whole chain; report the first altered, inserted or deleted row, then check the
    database head, the signed head file, the saved checkpoints and ``anchors`` (exported
    checkpoints kept elsewhere) against it."""
    keys = keys_for(engine, create=False)
    with Session(engine) as s:
        problem, last, prev, hashes = _walk(s, keys)
        if problem is not None:
            return problem
        head = s.get(AuditHead, 1)
    rows = last
    if head is None and last > 0:
        return ChainReport(False, rows, 1, "the chain head is missing")
    if head is not None and (head.last_id != last or head.last_hash != prev):
        if head.last_id > last:
            return ChainReport(False, rows, last + 1, f"rows {last + 1}..{head.last_id} are missing (deleted)")
        return ChainReport(False, rows, head.last_id, "the chain head does not match the last row")
    folder = keys.folder if keys else auditkeys.audit_dir(engine.url.render_as_string(hide_password=False))
    signed = auditkeys.read_head(folder)
    if signed is None and (last > 0 or keys is not None):
        return ChainReport(
            False, rows, None, "the signed head file is missing or unreadable (the log may have been wiped)"
        )
    checks = [("signed head file", signed)] if signed is not None else []
    checks += [("saved checkpoint", cp) for cp in auditkeys.saved_checkpoints(folder)]
    checks += [("anchored checkpoint", cp) for cp in anchors or []]
    for what, cp in checks:
        why = _against(cp, what, last, hashes, keys)
        if why is not None:
            return ChainReport(False, rows, None, why, len(checks))
    return ChainReport(True, rows, checkpoints=len(checks), head={"last_id": last, "last_hash": prev})


def checkpoint(engine: Engine, save: bool = True) -> dict[str, Any]:
    """A signed checkpoint of the current head (verify the chain first); saved to the checkpoint
    log when ``save``. Keep a copy elsewhere: ``verify`` then detects a rewrite up to it."""
    keys = keys_for(engine)
    assert keys is not None
    with Session(engine) as s:
        head = s.get(AuditHead, 1)
    cp = keys.checkpoint(head.last_id if head else 0, head.last_hash if head else GENESIS, now_iso())
    auditkeys.write_head(keys, cp["last_id"], cp["last_hash"], cp["ts"])
    if save:
        auditkeys.save_checkpoint(keys, cp)
    return cp


def engine_for_store(store: Path | None = None) -> Engine:
    """The app database of ``store`` (default: the settings'), its audit keys kept in the store
    when the database is not a SQLite file there."""
    from carelens.core.config import Settings
    from carelens.store.appdb.engine import get_engine

    settings = Settings.from_env(store)
    auditkeys.bind_store(settings.db_url, settings.store)
    return get_engine(settings.db_url)


def record_command(
    store: Path | None, action: str, patient_id: str | None = None, detail: dict[str, Any] | None = None
) -> bool:
    """Audit a command-line read of clinical data (``cli.sql``, ``cli.summarize``, ``cli.ask``)
    as ``cli`` with the operating-system user, in its own transaction, whenever a store is in
    use (its folder exists); returns whether a row was written."""
    from carelens.core.config import Settings

    if not Settings.from_env(store).store.is_dir():
        return False
    with Session(engine_for_store(store)) as s, s.begin():
        append(s, "cli", action, patient_id, detail={"os_user": getpass.getuser(), **(detail or {})})
    return True


def events(engine: Engine, patient_id: str | None = None, limit: int = 200) -> list[AuditEvent]:
    """The newest events (optionally for one patient), newest first."""
    with Session(engine) as s:
        query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
        if patient_id is not None:
            query = query.where(AuditEvent.patient_id == patient_id)
        return list(s.scalars(query))
