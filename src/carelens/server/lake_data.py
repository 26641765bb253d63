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

    # -- SQL over the run tables, views re-created when a run committed more batches ----------
    def _sql(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        import duckdb

        with self._lock:
            manifests = sorted(p.name for p in self.run_outputs.manifests_dir.glob("*.json")) \
                if self.run_outputs.manifests_dir.is_dir() else []  # fmt: skip
            if self._con is None or manifests != self._views_of:
                con = duckdb.connect()
                for table in ("outputs", "patient_index"):
                    con.execute(f"CREATE VIEW {table} AS {self.run_outputs.current_sql(table)}")
                con.execute("CREATE TABLE state (patient_id VARCHAR, input_hash VARCHAR, status VARCHAR,"
                            " reason VARCHAR)")  # fmt: skip
                rows = [(k, v["input_hash"], v["status"], v.get("reason")) for k, v in self.run_outputs.state().items()]
                if rows:
                    con.executemany("INSERT INTO state VALUES (?, ?, ?, ?)", rows)
                if self._con is not None:
                    self._con.close()
                self._con, self._views_of = con, manifests
            cur = self._con.cursor()
        try:
            return cur.execute(sql, params or []).fetchall()
        finally:
            cur.close()

    # -- patients ------------------------------------------------------------------------
    def search(self, q: str = "", limit: int = 50, offset: int = 0) -> tuple[list[PatientRow], int]:
        """A page of the patients (by name) whose name, MRN, birth date or id matches ``q``."""
        where, params = "", []
        text = q.strip().lower()
        if text:
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
        rows = self._sql("SELECT json FROM outputs WHERE patient_id = ? AND kind = ? ORDER BY key", [pid, kind])
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
