"""Group commit of the audit rows of reads: one writer thread appends every row that is waiting
in one transaction, so that 50 concurrent page views cost one commit, not 50 turns at the
database write lock. Each caller still returns only once its row is committed."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy.orm import Session

from carelens.store.appdb import audit

MAX_BATCH = 500


class GroupAuditor:
    """``record(event)`` blocks (``arecord`` awaits) until the event's row is committed (with
    whatever else was waiting) and returns it; a failed transaction raises in every caller of
    that batch."""

    def __init__(self, writing: Callable[[], AbstractContextManager[Session]]) -> None:
        self._writing = writing
        self._queue: queue.SimpleQueue[tuple[audit.Event, Future[dict[str, Any]]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    def record(self, event: audit.Event) -> dict[str, Any]:
        return self.submit(event).result()

    async def arecord(self, event: audit.Event) -> dict[str, Any]:
        """``record`` for async routes: the event loop serves others while the row is committed."""
        return await asyncio.wrap_future(self.submit(event))

    def submit(self, event: audit.Event) -> Future[dict[str, Any]]:
        """Queue ``event``; the future gives its row once committed."""
        done: Future[dict[str, Any]] = Future()
        self._queue.put((event, done))
        with self._start:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="carelens-audit", daemon=True)
                self._thread.start()
        return done

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                with self._writing() as s:
                    rows = audit.append_many(s, [event for event, _ in batch])
            except Exception as err:  # nothing was stored: every waiting request fails
                for _, done in batch:
                    done.set_exception(err)
                continue
            for (_, done), row in zip(batch, rows, strict=True):
                done.set_result(row)
