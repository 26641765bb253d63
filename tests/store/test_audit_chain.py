"""The keyed audit chain against an attacker who can write the database (and, with anchors, the
store): edits with recomputation, truncation, wipes, forged checkpoints, lost keys."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from carelens.store import appdb
from carelens.store.appdb import audit, auditkeys
from tests.server.pg import scratch_db_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    pg = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    with scratch_db_url(request.param, tmp_path, pg) as url:
        eng = appdb.get_engine(url)
        for i in range(6):
            with Session(eng) as s, s.begin():
                audit.append(s, "ada", "view.patient", patient_id=f"p{i}", detail={"i": i})
        yield eng


def _rechain(engine, mac, from_id: int = 1) -> None:  # type: ignore[no-untyped-def]
    """What an attacker with write access does: recompute every link and the head with ``mac``."""
    with engine.begin() as conn:
        rows = conn.execute(text(f"SELECT {', '.join(audit.FIELDS)} FROM audit_log ORDER BY id")).mappings().all()
        prev = audit.GENESIS
        for row in rows:
            sealed = {**row, "prev_hash": prev}
            prev = mac(audit.canonical({k: sealed[k] for k in audit.FIELDS}))
            conn.execute(
                text("UPDATE audit_log SET prev_hash = :p, row_hash = :h WHERE id = :i"),
                {"p": sealed["prev_hash"], "h": prev, "i": row["id"]},
            )
        last = rows[-1]["id"] if rows else 0
        conn.execute(text("UPDATE audit_head SET last_id = :i, last_hash = :h"), {"i": last, "h": prev})


def test_intact_chain_verifies_against_its_signed_head(engine) -> None:  # type: ignore[no-untyped-def]
    report = audit.verify(engine)
    assert report.ok and report.rows == 6 and report.checkpoints == 1
    keys = audit.keys_for(engine)
    head = auditkeys.read_head(keys.folder)
    assert head["last_id"] == 6 and auditkeys.check_signature(head, keys=keys)
    assert not auditkeys.check_signature({**head, "last_id": 5}, keys=keys)


def test_edit_and_recompute_without_the_key_is_detected(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE id = 2"))
    _rechain(engine, lambda t: hashlib.sha256(t.encode()).hexdigest())  # the old, unkeyed chain
    report = audit.verify(engine)
    assert not report.ok and report.bad_row == 1 and "altered" in report.reason


def test_truncation_with_a_rewritten_head_is_detected(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        h4 = conn.execute(text("SELECT row_hash FROM audit_log WHERE id = 4")).scalar()
        conn.execute(text("DELETE FROM audit_log WHERE id > 4"))
        conn.execute(text("UPDATE audit_head SET last_id = 4, last_hash = :h"), {"h": h4})
    report = audit.verify(engine)
    assert not report.ok and "rows 5..6 are missing (truncated" in report.reason


def test_wiping_log_and_head_is_detected(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log"))
        conn.execute(text("DELETE FROM audit_head"))
    report = audit.verify(engine)
    assert not report.ok and report.rows == 0 and "wiped" in report.reason


def test_wiping_the_signed_head_file_too_is_detected(engine) -> None:  # type: ignore[no-untyped-def]
    folder = audit.keys_for(engine).folder
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log"))
        conn.execute(text("DELETE FROM audit_head"))
    (folder / auditkeys.HEAD_FILE).unlink()
    report = audit.verify(engine)
    assert not report.ok and "signed head file is missing" in report.reason


def test_an_anchored_checkpoint_catches_a_rewrite_with_the_stolen_key(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    anchor = audit.checkpoint(engine)  # exported, kept elsewhere
    keys = audit.keys_for(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE id = 3"))
    _rechain(engine, keys.mac)  # the attacker holds the key: the chain and the head are consistent
    (keys.folder / auditkeys.CHECKPOINTS_FILE).unlink()  # and drops the local checkpoint log
    with Session(engine) as s:
        last = s.get(appdb.AuditHead, 1)
    auditkeys.write_head(keys, last.last_id + 1, "0" * 64, "x")  # even moves the signed head on
    assert "row 6 differs" not in (audit.verify(engine).reason or "")  # the local state alone is inconsistent
    report = audit.verify(engine, anchors=[anchor])
    assert not report.ok


def test_anchor_alone_catches_a_full_rewrite(engine) -> None:  # type: ignore[no-untyped-def]
    anchor = audit.checkpoint(engine, save=False)
    keys = audit.keys_for(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE id = 6"))
    _rechain(engine, keys.mac)
    with Session(engine) as s:
        head = s.get(appdb.AuditHead, 1)
        (keys.folder / auditkeys.HEAD_FILE).write_text(json.dumps(keys.head(head.last_id, head.last_hash, "t")))
    assert audit.verify(engine).ok  # consistent without the anchor: that is why anchors are kept elsewhere
    report = audit.verify(engine, anchors=[anchor])
    assert not report.ok and "row 6 differs from the anchored checkpoint" in report.reason


def test_forged_checkpoints_and_missing_keys_fail(engine) -> None:  # type: ignore[no-untyped-def]
    anchor = audit.checkpoint(engine, save=False)
    forged = {**anchor, "last_hash": "f" * 64}
    assert "bad signature" in audit.verify(engine, anchors=[forged]).reason
    (audit.keys_for(engine).folder / auditkeys.KEY_FILE).unlink()
    auditkeys._keys.clear()
    report = audit.verify(engine)
    assert not report.ok and "key file is missing" in report.reason


def test_key_file_is_owner_only(engine) -> None:  # type: ignore[no-untyped-def]
    folder = audit.keys_for(engine).folder
    for name in (auditkeys.KEY_FILE, auditkeys.HEAD_FILE):
        assert (folder / name).stat().st_mode & 0o777 == 0o600


def test_migration_reseals_an_unkeyed_chain(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    eng = appdb.make_engine(url)
    appdb.upgrade(eng, "0001")
    prev = audit.GENESIS
    with eng.begin() as conn:
        for i in range(1, 4):
            row = {
                "id": i,
                "ts": "t",
                "actor": "a",
                "action": "x",
                "patient_id": None,
                "model_version": None,
                "input_hash": None,
                "detail": "{}",
                "prev_hash": prev,
            }
            row["row_hash"] = prev = hashlib.sha256(audit.canonical(row).encode()).hexdigest()
            conn.execute(
                text(
                    "INSERT INTO audit_log VALUES (:id,:ts,:actor,:action,:patient_id,:model_version,"
                    ":input_hash,:detail,:prev_hash,:row_hash)"
                ),
                row,
            )
        conn.execute(text("INSERT INTO audit_head VALUES (1, 3, :h)"), {"h": prev})
    appdb.upgrade(eng)
    report = audit.verify(eng)
    assert report.ok and report.rows == 3
    eng.dispose()


def test_fhir_export_follows_balp_for_patient_reads_and_denials(engine) -> None:  # type: ignore[no-untyped-def]
    from fhir.resources.R4B.auditevent import AuditEvent as FhirAuditEvent

    from carelens.store.appdb.fhir_audit import export_bundle

    with Session(engine) as s, s.begin():
        audit.append(s, "anonymous", "access.denied", detail={"status": 401, "reason": "missing bearer token"})
        audit.append(s, "ada", "login")
    events = [e["resource"] for e in export_bundle(engine, since=0)["entry"]]
    read, denied, login = events[0], events[-2], events[-1]
    for event in events:
        FhirAuditEvent.model_validate(event)
    assert read["meta"]["profile"] == [
        "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead"
    ]
    assert read["entity"][0]["what"]["reference"] == "Patient/p0" and read["outcome"] == "0"
    assert denied["outcome"] == "4" and denied["outcomeDesc"] == "missing bearer token"
    assert login["subtype"][0]["code"] == "110122" and login["action"] == "E"
    seal = {d["type"]: d["valueString"] for d in read["entity"][-1]["detail"]}["carelens.row_hash"]
    assert seal == audit.events(engine, "p0")[0].row_hash
    assert len(export_bundle(engine, since=7)["entry"]) == 1


def test_a_rolled_back_append_leaves_the_signed_head_alone(engine) -> None:  # type: ignore[no-untyped-def]
    s = Session(engine)
    with s.begin():
        audit.append(s, "ada", "view")
        s.rollback()
    with s.begin():  # the same session commits other rows later: the head follows them only
        audit.append(s, "ada", "view.patient", patient_id="p9")
    s.close()
    report = audit.verify(engine)
    assert report.ok and report.rows == 7
