"""The workspace's data from the lake: patients from ``carelens run``'s patient index (paged and
searched in SQL), summaries and AI outputs from its output tables, single resources from the
lake's ``resources`` table. Nothing is loaded whole: each call is one small DuckDB query."""

from __future__ import annotations

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
POINTS = 20_000  # patients whose point lookups a server process keeps (~1 KB each)
_Point = tuple[PatientRow | None, str | None, str | None]


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
        self._points: dict[str, _Point] = {}  # per patient: their list row, input hash, outputs part

    # -- the run's tables: the patient list loaded (indexed) once per committed batch; a patient's
    # -- outputs read from the one Parquet part of their newest batch ----------------------------
    def _sql(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self._lock:
            self._refresh()
            cur = self._con.cursor()
        try:
            return cur.execute(sql, params or []).fetchall()
        finally:
            cur.close()

    def _point(self, pid: str) -> _Point:
        """The patient's list row, input hash and outputs part: two indexed lookups, then kept
        (at most ``POINTS`` patients) until the next committed batch, so that the requests of a
        page or summary view do not run them on the event loop again."""
        with self._lock:
            self._refresh()
            found, con = self._points.get(pid), self._con
        if found is not None:
            return found
        cur = con.cursor()
        try:
            row = cur.execute(f"SELECT {_INDEX_COLUMNS} FROM patient_index WHERE patient_id = ?", [pid]).fetchall()
            state = cur.execute("SELECT input_hash, outputs FROM state WHERE patient_id = ?", [pid]).fetchall()
        finally:
            cur.close()
        found = (_row(row[0]) if row else None, *(state[0] if state else (None, None)))
        with self._lock:
            if self._con is con:  # not from a connection that a newer batch replaced meanwhile
                if len(self._points) >= POINTS:
                    self._points.clear()
                self._points[pid] = found
        return found

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
        con.execute("CREATE INDEX state_id ON state (patient_id)")
        index_files = sorted({str(r[5]) for r in rows if r[5]})
        if index_files:
            listing = ", ".join("'" + f.replace("'", "''") + "'" for f in index_files)
            source = ("SELECT i.* EXCLUDE (filename) FROM read_parquet([" + listing + "], filename = true) i"
                      " JOIN state s ON s.patient_id = i.patient_id AND s.index_part = i.filename")  # fmt: skip
        else:
            source = self.run_outputs.current_sql("patient_index")
        # stored in list order with each row's place: a page of the whole list is a range scan
        con.execute(f"CREATE TABLE patient_index AS SELECT *, row_number() OVER (ORDER BY name_lower, patient_id)"
                    f" AS pos FROM ({source}) ORDER BY pos")  # fmt: skip
        self._total = con.execute("SELECT count(*) FROM patient_index").fetchall()[0][0]
        con.execute("CREATE INDEX patient_index_id ON patient_index (patient_id)")
        con.execute("CREATE INDEX patient_index_mrn ON patient_index (mrn)")
        if self._con is not None:
            self._con.close()
        self._con, self._views_of = con, manifests
        self._points = {}

    # -- patients ------------------------------------------------------------------------
    def search(self, q: str = "", limit: int = 50, offset: int = 0) -> tuple[list[PatientRow], int]:
        """A page of the patients (by name) whose name, MRN, birth date or id matches ``q``."""
        text = q.strip().lower()
        if not text:  # the whole list: its count is known, a page is the rows at its places
            rows = self._sql(f"SELECT {_INDEX_COLUMNS} FROM patient_index WHERE pos > ? AND pos <= ? ORDER BY pos",
                             [offset, offset + limit])  # fmt: skip
            return [_row(r) for r in rows], int(self._total)
        where = "WHERE name_lower LIKE ? OR mrn = ? OR birth_date LIKE ? OR patient_id = ?"
        params = [f"%{text}%", q.strip(), f"{text}%", q.strip()]
        # one scan: the matches' count beside the page (counted apart only for a page past the end)
        rows = self._sql(f"SELECT {_INDEX_COLUMNS}, count(*) OVER () FROM patient_index {where}"
                         " ORDER BY name_lower, patient_id LIMIT ? OFFSET ?", [*params, limit, offset])  # fmt: skip
        total = rows[0][-1] if rows else self._sql(f"SELECT count(*) FROM patient_index {where}", params)[0][0]
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
        for gender, birth, n in self._sql("SELECT gender, birth_date, count(*) FROM patient_index GROUP BY ALL"):
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
