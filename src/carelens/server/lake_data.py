"""The workspace's data from the lake: patients from ``carelens run``'s patient index (paged and
searched in SQL), summaries and AI outputs from its output tables, single resources from the
lake's ``resources`` table. Nothing is loaded whole: each call is one small DuckDB query."""

from __future__ import annotations

import threading
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
        self._total = 0

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

    def _refresh(self) -> None:
        import duckdb

        folder = self.run_outputs.manifests_dir
        manifests = sorted(p.name for p in folder.glob("*.json")) if folder.is_dir() else []
        if self._con is not None and manifests == self._views_of:
            return
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
        total = self._sql(f"SELECT count(*) FROM patient_index {where}", params)[0][0]
        rows = self._sql(f"SELECT {_INDEX_COLUMNS} FROM patient_index {where} ORDER BY name_lower, patient_id"
                         " LIMIT ? OFFSET ?", [*params, limit, offset])  # fmt: skip
        return [_row(r) for r in rows], int(total)

    def patients(self) -> list[PatientRow]:
        return self.search(limit=1_000)[0]

    def patient(self, pid: str) -> PatientRow | None:
        rows = self._sql(f"SELECT {_INDEX_COLUMNS} FROM patient_index WHERE patient_id = ?", [pid])
        return _row(rows[0]) if rows else None

    def input_hash(self, pid: str) -> str:
        rows = self._sql("SELECT input_hash FROM state WHERE patient_id = ?", [pid])
        return str(rows[0][0]) if rows else "not-run"

    def version(self, pid: str) -> tuple[Any, ...]:
        """What a patient page shows from this data: the input hash of the current outputs."""
        return (self.input_hash(pid),)

    # -- outputs -------------------------------------------------------------------------
    def _outputs(self, pid: str, kind: str) -> list[Any]:
        found = self._sql("SELECT outputs FROM state WHERE patient_id = ?", [pid])
        if not found or not found[0][0]:
            return []
        rows = self._sql("SELECT json FROM read_parquet(?) WHERE patient_id = ? AND kind = ? ORDER BY key",
                         [found[0][0], pid, kind])  # fmt: skip
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
