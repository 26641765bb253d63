"""The workspace's data from the lake: patients from ``carelens run``'s patient index (paged and
searched in SQL), summaries and AI outputs from its output tables, single resources from the
lake's ``resources`` table.

The patient index and the run's state (per patient: input hash, outputs part) live in one SQLite
file in the store (``<store>/lake/run/_patients.sqlite``), shared by every server worker and
opened read-only by each: its memory is the OS page cache, not each process's heap. It records
which manifests (name, size, mtime) it reflects; when the run commits a batch, the first reader to
notice applies only the new manifests (per patient: its row replaced, the newest batch wins) in
one transaction under a file lock (``_patients.lock``), so readers never see half a batch. It is
rebuilt whole (into a temporary file, then renamed over the old one; readers reopen it) only when
a manifest it reflects was removed or replaced (``carelens run --compact``), or the file is
missing, unreadable or of another schema version. A store that cannot be written gets a private
temporary file. A page is a range of the (name, id) index (``LIMIT``/``OFFSET``, or keyset from
the last row of the page before: ``after``), a patient a
lookup of an index, a search a few (names by their trigrams, FTS5), each well under a millisecond
at 10,000 patients. Outputs are read with DuckDB from the one Parquet part of the patient's newest
batch."""

from __future__ import annotations

import atexit
import fcntl
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from contextlib import closing
from contextlib import suppress as ignored
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from carelens import __version__
from carelens.core.errors import InputError
from carelens.core.fhir import belongs_to
from carelens.run import OutputStore
from carelens.server.data import SMALL_CELL, Outputs, PatientRow, SummaryUnavailable, age_band, suppress
from carelens.store import Lake

if TYPE_CHECKING:
    from carelens.record.model import PatientRecord

SCHEMA_VERSION = 2  # PRAGMA user_version of the index file; another version is rebuilt
_INDEX_COLUMNS = "patient_id, name, birth_date, gender, mrn"
_ORDER = "ORDER BY name_lower, patient_id"
_INDEX_DDL = f"""
PRAGMA user_version = {SCHEMA_VERSION};
CREATE TABLE applied (manifest TEXT PRIMARY KEY, seq INTEGER, size INTEGER, mtime_ns INTEGER) WITHOUT ROWID;
CREATE TABLE patient_index (rid INTEGER PRIMARY KEY, patient_id TEXT UNIQUE, name TEXT, name_lower TEXT,
    birth_date TEXT, gender TEXT, mrn TEXT);
CREATE INDEX by_order ON patient_index (name_lower, patient_id);
CREATE INDEX by_mrn ON patient_index (mrn);
CREATE INDEX by_birth ON patient_index (birth_date);
CREATE TABLE state (patient_id TEXT PRIMARY KEY, input_hash TEXT, outputs TEXT) WITHOUT ROWID;
-- the names by their trigrams: a ``LIKE '%text%'`` of three letters or more is an index lookup
CREATE VIRTUAL TABLE names USING fts5(name_lower, content='patient_index', content_rowid='rid', tokenize='trigram');
CREATE TRIGGER names_ai AFTER INSERT ON patient_index BEGIN
    INSERT INTO names (rowid, name_lower) VALUES (new.rid, new.name_lower); END;
CREATE TRIGGER names_ad AFTER DELETE ON patient_index BEGIN
    INSERT INTO names (names, rowid, name_lower) VALUES ('delete', old.rid, old.name_lower); END;
"""
# a page of the whole list: its rows' ids skipped to on the (name, id) index alone, then looked up
_PAGE = f"WHERE rid IN (SELECT rid FROM patient_index {_ORDER} LIMIT ? OFFSET ?)"
# the page after a row: a range of the same index from that row's key on
_AFTER = (
    f"WHERE rid IN (SELECT rid FROM patient_index WHERE (name_lower, patient_id) > (?, ?) {_ORDER} LIMIT ? OFFSET ?)"
)
_SEARCH = (
    "WHERE rid IN (SELECT rowid FROM names WHERE name_lower LIKE ?) OR mrn = ? OR patient_id = ?"
    " OR (birth_date >= ? AND birth_date < ?)"
)
_PART_COLUMNS = ["patient_id", "name", "name_lower", "birth_date", "gender", "mrn"]
Listing = dict[str, tuple[int, int, int]]  # manifest file name: (seq, size, mtime_ns)


class LakeData:
    """``ClinicalData`` over a store's lake and run outputs."""

    def __init__(self, store: Path) -> None:
        self.store = Path(store)
        self.lake = Lake(self.store)
        self.run_outputs = OutputStore(self.store)
        self.outputs = Outputs(self.store / "outputs")  # files the run's outputs name (heatmaps)
        self.index_path = self.run_outputs.root / "_patients.sqlite"
        self.applied_count = 0  # manifests this object applied to the index file (rebuilds included)
        self.rebuilds = 0
        self._lock = threading.Lock()
        self._con: Any = None
        self._views_of: Listing | None = None
        self._seen: tuple[int, int] | None = None  # the manifests folder's (mtime, inode) when listed
        self._total = 0
        self._index_db: sqlite3.Connection | None = None
        self._index_ino: int | None = None

    # -- the run's tables: the patient list and state in the shared index file, brought up to
    # -- date with each committed batch; a patient's outputs read from the one Parquet part of
    # -- their newest batch ---------------------------------------------------------------------
    def _index(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a query of the patient index and state (see the module doc)."""
        with self._lock:
            for _ in range(2):
                try:
                    return self._query(sql, params)
                except (OSError, sqlite3.DatabaseError):
                    # a manifest or part removed while read (a compaction), or a file left damaged or
                    # mid-transaction by a killed writer: listed again, the file checked under the lock
                    self._drop()
            return self._query(sql, params)

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        self._refresh()
        assert self._index_db is not None
        return self._index_db.execute(sql, params).fetchall()

    def _drop(self) -> None:
        if self._index_db is not None:
            self._index_db.close()
        self._index_db, self._index_ino, self._views_of, self._seen = None, None, None, None

    def _sql(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        import duckdb

        with self._lock:
            if self._con is None:
                self._con = duckdb.connect()
                self._con.execute("SET parquet_metadata_cache = true")  # a summary read: no footer parse each time
            cur = self._con.cursor()
        try:
            return cur.execute(sql, params or []).fetchall()
        finally:
            cur.close()

    def _point(self, pid: str) -> tuple[PatientRow | None, str | None, str | None]:
        """The patient's list row, input hash and outputs part (two lookups of an index)."""
        row = self._index(f"SELECT {_INDEX_COLUMNS} FROM patient_index WHERE patient_id = ?", (pid,))
        state = self._index("SELECT input_hash, outputs FROM state WHERE patient_id = ?", (pid,))
        return (_row(row[0]) if row else None, *(state[0] if state else (None, None)))

    def _refresh(self) -> None:
        folder = self.run_outputs.manifests_dir
        try:
            st = folder.stat()
            seen: tuple[int, int] | None = (st.st_mtime_ns, st.st_ino)
        except OSError:
            seen = None
        # the folder's mtime changes with every manifest added or removed; listed again while it
        # is recent, as two changes within one timestamp tick would leave it the same
        if self._index_db is not None and seen == self._seen and seen and time.time_ns() - seen[0] > 2_000_000_000:
            return
        listing = _listing(folder) if seen else {}
        self._seen = seen
        if self._index_db is not None and listing == self._views_of and (not listing or self._current_file()):
            return
        self._sync(listing)

    def _current_file(self) -> bool:
        """Whether this object's connection is to the index file now at its path."""
        try:
            return self.index_path.stat().st_ino == self._index_ino
        except OSError:
            return self._index_ino is None

    def _sync(self, listing: Listing) -> None:
        """Bring the index file up to ``listing`` (under the file lock) and (re)open it read-only."""
        if not listing:  # no run yet: an empty index, nothing written to the store
            db = sqlite3.connect(":memory:", check_same_thread=False)
            db.executescript(_INDEX_DDL)
            self._open(db, None, listing)
            return
        try:
            lock = _private(self.index_path.with_name("_patients.lock"))
        except OSError:  # a store this process cannot write: a private index file, removed at exit (it names patients)
            folder = tempfile.mkdtemp(prefix="carelens-index-")
            atexit.register(shutil.rmtree, folder, True)
            self.index_path = Path(folder) / "_patients.sqlite"
            lock = _private(self.index_path.with_name("_patients.lock"))
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not self._update(listing):
                self._rebuild(listing)
            ino = self.index_path.stat().st_ino
            if self._index_db is None or ino != self._index_ino:
                db = sqlite3.connect(f"file:{self.index_path}?mode=ro", uri=True, check_same_thread=False)
                db.execute("PRAGMA busy_timeout = 10000")
                self._open(db, ino, listing)
            else:
                self._views_of = listing
                self._total = self._index_db.execute("SELECT count(*) FROM patient_index").fetchone()[0]

    def _open(self, db: sqlite3.Connection, ino: int | None, listing: Listing) -> None:
        if self._index_db is not None:
            self._index_db.close()
        self._index_db, self._index_ino, self._views_of = db, ino, listing
        self._total = db.execute("SELECT count(*) FROM patient_index").fetchone()[0]

    def _update(self, listing: Listing) -> bool:
        """Apply the manifests the index file lacks; False when it must be rebuilt instead (missing,
        unreadable, another schema, or a manifest it reflects removed or replaced)."""
        if not self.index_path.exists():
            return False
        try:
            with closing(sqlite3.connect(self.index_path, isolation_level=None)) as db:
                if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                    return False
                applied = {m: (seq, size, mtime) for m, seq, size, mtime in db.execute("SELECT * FROM applied")}
                if any(listing.get(m) != v for m, v in applied.items()):
                    return False
                new = sorted((m for m in listing if m not in applied), key=lambda m: listing[m][0])
                if new and applied and listing[new[0]][0] <= max(v[0] for v in applied.values()):
                    return False  # a batch older than one applied: the newest would not win
                if new:
                    db.execute("BEGIN IMMEDIATE")
                    self._apply(db, new, listing)
                    db.execute("COMMIT")
                return True
        except sqlite3.DatabaseError:
            return False

    def _rebuild(self, listing: Listing) -> None:
        """The index file built whole into a temporary file, then renamed over the old one."""
        for leftover in self.index_path.parent.glob("_patients.sqlite[.-]*"):
            leftover.unlink()  # under the lock: builds of killed processes, the old file's journal
        tmp = self.index_path.with_name(f"_patients.sqlite.tmp-{os.getpid()}")
        try:
            _private(tmp).close()  # owner-only, as the rest of the store (its journals follow it)
            with closing(sqlite3.connect(tmp, isolation_level=None)) as db:
                db.executescript(_INDEX_DDL)
                db.execute("BEGIN")
                self._apply(db, sorted(listing, key=lambda m: listing[m][0]), listing)
                db.execute("COMMIT")
            os.replace(tmp, self.index_path)
        finally:
            tmp.unlink(missing_ok=True)
        self.rebuilds += 1

    def _apply(self, db: sqlite3.Connection, names: list[str], listing: Listing) -> None:
        """Apply manifests (oldest first) inside the caller's transaction: per patient, its state and
        list row replaced by those of its newest batch among them (its row only if that batch's
        patient index part holds one)."""
        import pyarrow.parquet as pq

        manifests = [(name, orjson.loads((self.run_outputs.manifests_dir / name).read_bytes())) for name in names]
        entries = [self.run_outputs.entries(m) for _, m in manifests]
        newest = {e["patient"]: i for i, batch in enumerate(entries) for e in batch}
        for i, (name, m) in enumerate(manifests):
            mine = [e for e in entries[i] if newest[e["patient"]] == i]
            outputs = _part(self.store, m["parts"], "outputs")
            db.executemany("INSERT OR REPLACE INTO state VALUES (?, ?, ?)",
                           ((e["patient"], e["input_hash"], outputs) for e in mine))  # fmt: skip
            db.executemany("DELETE FROM patient_index WHERE patient_id = ?", ((e["patient"],) for e in mine))
            index_part = _part(self.store, m["parts"], "patient_index")
            if index_part and mine:
                wanted = {e["patient"] for e in mine}
                for batch in pq.ParquetFile(index_part).iter_batches(10_000, columns=_PART_COLUMNS):  # bounded memory
                    rows = zip(*(batch.column(c).to_pylist() for c in _PART_COLUMNS), strict=True)
                    db.executemany("INSERT INTO patient_index (patient_id, name, name_lower, birth_date, gender, mrn)"
                                   " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (patient_id) DO NOTHING",
                                   (r for r in rows if r[0] in wanted))  # fmt: skip
            db.execute("INSERT OR REPLACE INTO applied VALUES (?, ?, ?, ?)", (name, *listing[name]))
            self.applied_count += 1

    # -- patients ------------------------------------------------------------------------
    def search(
        self, q: str = "", limit: int = 50, offset: int = 0, after: str | None = None
    ) -> tuple[list[PatientRow], int]:
        """A page of the patients (by name) whose name, MRN, birth date or id matches ``q``, and how
        many match. ``after``: the page that follows the patient with this id (keyset paging: a
        range of the (name, id) index, the same cost at any depth; ``offset`` then counts from it)."""
        text = q.strip().lower()
        key: tuple[Any, ...] = ()
        if after is not None:
            found = self._index("SELECT name_lower, patient_id FROM patient_index WHERE patient_id = ?", (after,))
            if not found:
                raise InputError("the page cursor names no patient of the list (it changed): start again")
            key = found[0]
        if not text:  # the whole list: its count is known (counted per batch)
            where = _AFTER if key else _PAGE
            rows = self._index(f"SELECT {_INDEX_COLUMNS} FROM patient_index {where} {_ORDER}", (*key, limit, offset))
            return [_row(r) for r in rows], int(self._total)
        # name contains, MRN or id equals, birth date starts with: each an index lookup
        params = (f"%{text}%", q.strip(), q.strip(), text, text + "\U0010ffff")
        keyset = " AND (name_lower, patient_id) > (?, ?)" if key else ""
        rows = self._index(f"SELECT {_INDEX_COLUMNS} FROM patient_index {_SEARCH.replace('WHERE ', 'WHERE (', 1)})"
                           f"{keyset} {_ORDER} LIMIT ? OFFSET ?", (*params, *key, limit, offset))  # fmt: skip
        total = self._index(f"SELECT count(*) FROM patient_index {_SEARCH}", params)[0][0]
        return [_row(r) for r in rows], int(total)

    def patients(self) -> list[PatientRow]:
        return self.search(limit=1_000)[0]

    def patient(self, pid: str) -> PatientRow | None:
        return self._point(pid)[0]

    def input_hash(self, pid: str) -> str:
        found = self._point(pid)[1]
        return str(found) if found is not None else "not-run"

    def version(self, pid: str) -> tuple[Any, ...]:
        """What a patient page shows from this data: the input hash of the current outputs."""
        return (self.input_hash(pid),)

    # -- outputs -------------------------------------------------------------------------
    def _outputs(self, pid: str, kind: str) -> list[Any]:
        part = self._point(pid)[2]
        if not part:
            return []
        rows = self._sql("SELECT json FROM read_parquet(?) WHERE patient_id = ? AND kind = ? ORDER BY key",
                         [part, pid, kind])  # fmt: skip
        return [orjson.loads(r[0]) for r in rows]

    def missing(self, pid: str) -> list[dict[str, str]]:
        """The steps of the patient's run that failed, with their reasons."""
        return self._outputs(pid, "missing")

    def summary(self, pid: str) -> dict[str, Any]:
        found = self._outputs(pid, "summary")
        if found:
            return found[0]
        reason = next((m["reason"] for m in self.missing(pid) if m.get("step") == "summary"), None)
        raise SummaryUnavailable(f"no summary: {reason}" if reason else "no summary yet (carelens run has not run)")

    def ips(self, pid: str) -> dict[str, Any] | None:
        found = self._outputs(pid, "ips")
        return found[0] if found else None

    def images(self, pid: str) -> list[dict[str, Any]]:
        return self._outputs(pid, "image_read")

    def pgx(self, pid: str) -> dict[str, Any] | None:
        found = self._outputs(pid, "pgx")
        return found[0] if found else None

    def findings(self, pid: str) -> list[dict[str, Any]]:
        return [f for report in self._outputs(pid, "findings") for f in report.get("findings", [])]

    def resource(self, pid: str, ref: str) -> dict[str, Any] | None:
        rtype, _, rid = ref.partition("/")
        table = self.lake.query(
            "SELECT json FROM resources WHERE resource_type = ? AND id = ? LIMIT 1", [rtype, rid]
        ) if rid else None  # fmt: skip
        if table is None or table.num_rows == 0:
            return None
        res = orjson.loads(table.column(0)[0].as_py())
        return res if belongs_to(res, pid) else None

    def record(self, pid: str) -> PatientRecord:
        """The patient's whole record from the lake (for asking it questions)."""
        from carelens.record.load import stored_record

        return stored_record(pid, self.store)

    def cohort(self) -> dict[str, Any]:
        """De-identified counts only (small cells suppressed)."""
        sexes, ages = Counter[str](), Counter[str]()
        for gender, birth, n in self._index("SELECT gender, birth_date, count(*) FROM patient_index GROUP BY 1, 2"):
            sexes[gender or "unknown"] += n
            ages[age_band(birth)] += n
        conditions = Counter[str]()
        if not self.lake.is_empty():
            table = self.lake.query(
                "SELECT coalesce(json_extract_string(json, '$.code.text'), '(uncoded)') AS t,"
                " count(DISTINCT patient_id) AS n FROM resources WHERE resource_type = 'Condition'"
                " GROUP BY t ORDER BY n DESC, t LIMIT 15"
            )
            conditions.update(dict(zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True)))
        return {"patients": sum(sexes.values()), "sex": suppress(sexes), "age_band": suppress(ages),
                "conditions": suppress(conditions), "small_cell_threshold": SMALL_CELL,
                "carelens_version": __version__}  # fmt: skip


def _row(r: tuple[Any, ...]) -> PatientRow:
    return PatientRow(id=r[0], name=r[1], birth_date=r[2], gender=r[3], mrn=r[4])


def _listing(folder: Path) -> Listing:
    """The committed manifests in ``folder``: name to (seq, size, mtime)."""
    found: Listing = {}
    for path in folder.glob("*.json"):
        with ignored(OSError, ValueError):  # removed while listed (a compaction): not committed now
            st = path.stat()
            found[path.name] = (int(path.stem), st.st_size, st.st_mtime_ns)
    return found


def _private(path: Path) -> Any:
    """``path`` opened for appending, created owner-only (it holds names and MRNs)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a")


def _part(store: Path, parts: dict[str, str], table: str) -> str | None:
    return str((store / parts[table]).absolute()) if table in parts else None
