"""The workspace's data from the lake: patients from ``carelens run``'s patient index (paged and
searched in SQL), summaries and AI outputs from its output tables, single resources from the
lake's ``resources`` table.

The patient index and the run's state (per patient: input hash, outputs part) are copied, once
per committed batch, from the Parquet parts (read with DuckDB) into an in-memory SQLite database
in list order with each row's place: a page is a range of its primary key, a patient a lookup of
an index, a search a few (names by their trigrams, FTS5), each well under a millisecond at
10,000 patients (the same queries in DuckDB cost 1-3 ms of CPU each: planning is its fixed
cost). Memory: the index, ~0.3 KB a patient. Outputs are read with DuckDB from
the one Parquet part of the patient's newest batch."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from carelens import __version__
from carelens.core.fhir import belongs_to
from carelens.run import OutputStore
from carelens.server.data import SMALL_CELL, Outputs, PatientRow, SummaryUnavailable, age_band, suppress
from carelens.store import Lake

_INDEX_COLUMNS = "patient_id, name, birth_date, gender, mrn"
_INDEX_DDL = (
    "CREATE TABLE patient_index (pos INTEGER PRIMARY KEY, patient_id TEXT, name TEXT, name_lower TEXT,"
    " birth_date TEXT, gender TEXT, mrn TEXT);"
    "CREATE TABLE state (patient_id TEXT PRIMARY KEY, input_hash TEXT, outputs TEXT) WITHOUT ROWID;"
    # the names by their trigrams: a ``LIKE '%text%'`` of three letters or more is an index lookup
    "CREATE VIRTUAL TABLE names USING fts5(name_lower, content='patient_index', content_rowid='pos',"
    " tokenize='trigram');"
)
_INDEX_INDEXES = (
    "INSERT INTO names (rowid, name_lower) SELECT pos, name_lower FROM patient_index;"
    "CREATE INDEX by_id ON patient_index (patient_id); CREATE INDEX by_mrn ON patient_index (mrn);"
    "CREATE INDEX by_birth ON patient_index (birth_date);"
)
_SEARCH = (
    "WHERE pos IN (SELECT rowid FROM names WHERE name_lower LIKE ?) OR mrn = ? OR patient_id = ?"
    " OR (birth_date >= ? AND birth_date < ?)"
)


class LakeData:
    """``ClinicalData`` over a store's lake and run outputs."""

    def __init__(self, store: Path) -> None:
        self.store = Path(store)
        self.lake = Lake(self.store)
        self.run_outputs = OutputStore(self.store)
        self.outputs = Outputs(self.store / "outputs")  # files the run's outputs name (heatmaps)
        self._lock = threading.Lock()
        self._con: Any = None
        self._views_of: list[str] = []
        self._seen: tuple[int, int] | None = None  # the manifests folder's (mtime, inode) when listed
        self._total = 0
        self._index_db: sqlite3.Connection | None = None

    # -- the run's tables: the patient list and state loaded (indexed) once per committed batch; a
    # -- patient's outputs read from the one Parquet part of their newest batch ------------------
    def _index(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a query of the in-memory patient index and state (see the module doc)."""
        with self._lock:
            self._refresh()
            assert self._index_db is not None
            return self._index_db.execute(sql, params).fetchall()

    def _sql(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self._lock:
            self._refresh()
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
        if self._con is not None and seen == self._seen and seen and time.time_ns() - seen[0] > 2_000_000_000:
            return
        manifests = sorted(p.name for p in folder.glob("*.json")) if seen else []
        self._seen = seen
        if self._con is not None and manifests == self._views_of:
            return
        self._load(manifests)

    def _load(self, manifests: list[str]) -> None:
        import duckdb
        import pyarrow as pa

        latest: dict[str, tuple[dict[str, Any], tuple[str | None, str | None]]] = {}
        for m in self.run_outputs.manifests():  # oldest first: the newest entry of a patient wins
            files = (_part(self.store, m["parts"], "outputs"), _part(self.store, m["parts"], "patient_index"))
            for entry in m["patients"]:
                latest[entry["patient"]] = (entry, files)
        rows = [(pid, e["input_hash"], e["status"], e.get("reason"), *files) for pid, (e, files) in latest.items()]
        names = ["patient_id", "input_hash", "status", "reason", "outputs", "index_part"]
        columns = [pa.array([r[i] for r in rows], pa.string()) for i in range(len(names))]
        con = duckdb.connect()
        con.execute("SET parquet_metadata_cache = true")  # a summary read: no footer parse each time
        con.register("state_rows", pa.Table.from_arrays(columns, names=names))
        con.execute("CREATE TABLE state AS SELECT * FROM state_rows")
        con.unregister("state_rows")
        index_files = sorted({str(r[5]) for r in rows if r[5]})
        if index_files:
            listing = ", ".join("'" + f.replace("'", "''") + "'" for f in index_files)
            source = ("SELECT i.* EXCLUDE (filename) FROM read_parquet([" + listing + "], filename = true) i"
                      " JOIN state s ON s.patient_id = i.patient_id AND s.index_part = i.filename")  # fmt: skip
        else:
            source = self.run_outputs.current_sql("patient_index")
        index = sqlite3.connect(":memory:", check_same_thread=False)  # used under self._lock
        index.executescript(_INDEX_DDL)
        index.executemany("INSERT INTO state VALUES (?, ?, ?)", ((r[0], r[1], r[4]) for r in rows))
        # in list order with each row's place: a page of the whole list is a range of the key
        cur = con.execute("SELECT row_number() OVER (ORDER BY name_lower, patient_id), patient_id, name, name_lower,"
                          f" birth_date, gender, mrn FROM ({source}) ORDER BY 1")  # fmt: skip
        while chunk := cur.fetchmany(10_000):
            index.executemany("INSERT INTO patient_index VALUES (?, ?, ?, ?, ?, ?, ?)", chunk)
        index.executescript(_INDEX_INDEXES)
        con.execute("DROP TABLE state")
        self._total = index.execute("SELECT count(*) FROM patient_index").fetchall()[0][0]
        if self._con is not None:
            self._con.close()
        if self._index_db is not None:
            self._index_db.close()
        self._con, self._index_db, self._views_of = con, index, manifests

    # -- patients ------------------------------------------------------------------------
    def search(self, q: str = "", limit: int = 50, offset: int = 0) -> tuple[list[PatientRow], int]:
        """A page of the patients (by name) whose name, MRN, birth date or id matches ``q``."""
        text = q.strip().lower()
        if not text:  # the whole list: its count is known, a page is the rows at its places
            rows = self._index(f"SELECT {_INDEX_COLUMNS} FROM patient_index WHERE pos > ? AND pos <= ? ORDER BY pos",
                               (offset, offset + limit))  # fmt: skip
            return [_row(r) for r in rows], int(self._total)
        # name contains, MRN or id equals, birth date starts with: each an index lookup
        params = (f"%{text}%", q.strip(), q.strip(), text, text + "\U0010ffff")
        rows = self._index(f"SELECT {_INDEX_COLUMNS} FROM patient_index {_SEARCH} ORDER BY pos LIMIT ? OFFSET ?",
                           (*params, limit, offset))  # fmt: skip
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

    def cohort(self) -> dict[str, Any]:
        """De-identified counts only (small cells suppressed)."""
        sexes, ages = Counter[str](), Counter[str]()
        for gender, birth, n in self._index("SELECT gender, birth_date, count(*) FROM patient_index GROUP BY 1, 2"):
            sexes[gender or "unknown"] += n
            ages[age_band(birth)] += n
        conditions = Counter[str]()
        if self.lake.manifests():
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


def _part(store: Path, parts: dict[str, str], table: str) -> str | None:
    return str((store / parts[table]).absolute()) if table in parts else None
