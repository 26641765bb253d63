"""The audit chain under concurrent writers: group-committed reads of one server and the
writes of another process (a second engine, no shared Python lock) interleave into one
intact chain, every event exactly once."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from carelens.server.auth import Principal
from carelens.store import appdb
from carelens.store.appdb import AuditEvent, audit
from tests.server.conftest import Workspace

READS, OTHER = 60, 20


def test_concurrent_writers_keep_one_intact_chain(ws: Workspace) -> None:
    ctx = ws.app.state.ctx  # type: ignore[attr-defined]
    other = appdb.make_engine(ctx.settings.db_url)  # as another server process would open it
    who = Principal(1, "load-reader", "clinician")
    before = audit.verify(ws.engine).rows

    async def read_all() -> list[int]:
        rows = await asyncio.gather(*(ctx.arecord(who, "view.patient", f"p{n}", detail={"n": n}) for n in range(READS)))
        return [int(row["id"]) for row in rows]

    def write(n: int) -> int:
        with Session(other) as s, s.begin():
            appdb.begin_write(s)
            return int(audit.append(s, "other-process", "decision", detail={"n": n})["id"])

    with ThreadPoolExecutor(16) as pool:
        pending_writes = [pool.submit(write, n) for n in range(OTHER)]  # queued among the reads
        reads = asyncio.run(read_all())
        writes = [w.result() for w in pending_writes]
    other.dispose()

    report = audit.verify(ws.engine)
    assert report.ok, report.reason
    assert report.rows == before + READS + OTHER
    assert len(set(reads + writes)) == READS + OTHER  # every caller got its own committed row
    with Session(ws.engine) as s:
        details = s.scalars(select(AuditEvent.detail).where(AuditEvent.actor == "load-reader")).all()
        assert sorted(details) == sorted(audit.canonical({"n": n}) for n in range(READS))
        assert s.scalar(select(func.count()).where(AuditEvent.actor == "other-process")) == OTHER
