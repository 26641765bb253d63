"""A set of strings kept in a SQLite file instead of memory: ``ingest``'s ``Type/id`` of every
resource read (1.9 M for 10,000 Synthea patients, ~250 MB as a Python set), so that memory does
not grow with the batch or the lake. The file lives in a temporary folder and goes with
:meth:`KeySet.close`; a helper process's set is left for the parent process to look keys up in.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

CHUNK = 500  # keys per statement (under SQLite's limit of bound parameters)


class KeySet:
    """``update``, ``in`` and ``missing`` over one SQLite file (opened on first use, so that a
    set made before a fork is never shared by two processes)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._con: sqlite3.Connection | None = None

    @property
    def con(self) -> sqlite3.Connection:
        if self._con is None:
            self._con = sqlite3.connect(self.path, isolation_level=None)
            # a scratch file: nothing to recover after a crash, a small page cache
            self._con.executescript(
                "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-16000;"
                "CREATE TABLE IF NOT EXISTS k (key TEXT PRIMARY KEY) WITHOUT ROWID;"
            )
        return self._con

    def update(self, keys: Iterable[str]) -> None:
        con = self.con
        con.execute("BEGIN")
        con.executemany("INSERT OR IGNORE INTO k VALUES (?)", ((k,) for k in keys))
        con.execute("COMMIT")

    def __contains__(self, key: object) -> bool:
        return self.con.execute("SELECT 1 FROM k WHERE key = ?", (key,)).fetchone() is not None

    def missing(self, keys: Iterable[str]) -> set[str]:
        """Those of ``keys`` not in the set."""
        out: set[str] = set()
        for chunk in _chunks(set(keys)):
            marks = ",".join("?" * len(chunk))
            found = {r[0] for r in self.con.execute(f"SELECT key FROM k WHERE key IN ({marks})", chunk)}
            out.update(k for k in chunk if k not in found)
        return out

    def close(self, remove: bool = True) -> None:
        """Close the file; ``remove``: delete it too (else another process may open it)."""
        if self._con is not None:
            self._con.close()
            self._con = None
        if remove:
            self.path.unlink(missing_ok=True)


def _chunks(keys: Iterable[str]) -> Iterator[list[str]]:
    it = iter(keys)
    while chunk := list(islice(it, CHUNK)):
        yield chunk
