"""Group commit of the audit rows of reads: the rows that the requests of one event loop add
while a batch is being written are appended together in the next transaction, so that 50
concurrent page views cost a few commits, not 50 turns at the database write lock. Each
request still gets its response only once its row is committed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from carelens.store.appdb import audit
from carelens.store.appdb.auditkeys import AuditKeys

MAX_BATCH = 500
Waiting = list[tuple[audit.Event, asyncio.Future[dict[str, Any]]]]


class GroupAuditor:
    """``arecord(event)`` returns the event's row once it is committed (with whatever else was
    waiting); a failed transaction raises in every caller of that batch. On a local database
    (``inline``) a batch is written on the event loop itself, which saves handing every
    statement over to another thread; otherwise in a worker thread, one batch at a time.
    ``record`` appends one row at once, for sync routes."""

    def __init__(
        self, writing: Callable[[], AbstractContextManager[Session]], inline: bool, keys: AuditKeys | None = None
    ) -> None:
        self._writing = writing
        self._keys = keys
        self._inline = inline
        self._waiting: dict[asyncio.AbstractEventLoop, Waiting] = {}
        self._flushing: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}  # strong refs to the tasks

    def record(self, event: audit.Event) -> dict[str, Any]:
        return self._append([event])[0]

    async def arecord(self, event: audit.Event) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._waiting.setdefault(loop, []).append((event, done))
        if loop not in self._flushing:
            self._flushing[loop] = loop.create_task(self._flush(loop))
        return await done

    def _append(self, events: list[audit.Event]) -> list[dict[str, Any]]:
        with self._writing() as s:
            return audit.append_many(s, events, self._keys)

    async def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """Write the waiting rows, batch after batch, until none is left."""
        try:
            while waiting := self._waiting.get(loop):
                batch, waiting[:] = waiting[:MAX_BATCH], waiting[MAX_BATCH:]
                events = [event for event, _ in batch]
                try:
                    rows = self._append(events) if self._inline else await run_in_threadpool(self._append, events)
                except Exception as err:  # nothing was stored: every waiting request fails
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(err)
                    continue
                for (_, done), row in zip(batch, rows, strict=True):
                    if not done.done():
                        done.set_result(row)
        finally:
            self._waiting.pop(loop, None)
            self._flushing.pop(loop, None)
