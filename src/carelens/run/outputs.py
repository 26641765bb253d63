"""The output tables of ``carelens run``, written batch by batch, crash-safe.

A batch's rows go to Parquet part files (tmp file, then rename) and then to the batch's manifest
(``<store>/lake/run/_manifest/<seq>.json``, tmp then rename): the manifest is the commit point and
names the batch's parts, among them its part of the run's ``state`` table (per patient of the
batch: input hash, status, reason). Parts no manifest names (left by a killed run) are deleted
when the next run opens the store, and a patient is current when its newest state row has its
present input hash. So killing a run at any moment and running it again gives the same current
rows as an uninterrupted run. The state is a table like the outputs (the newest batch of each
patient wins), so that the run joins it in DuckDB instead of holding every patient's entry.
Manifests written before the state table listed their patients inside (``patients``): the next
run converts them (:meth:`OutputStore.writer`), and readers take either (:meth:`OutputStore.entries`).

Tables: ``outputs`` (clinical zone: summary, IPS bundle, image reads with their FHIR report and
DICOM SR, PGx, findings, research audit, ``missing`` steps), ``patient_index`` (the workspace's
patient list: name, MRN, birth date) and ``research`` (the de-identified copy, kept under the
research zone's lake ``<store>/research/lake/run_research``, keyed by pseudonym only). When a
run ends, the current tables are published in the lakes' catalogs (:meth:`OutputStore.publish`):
``carelens sql`` sees ``run_outputs`` and ``run_patient_index``, ``carelens sql --zone research``
sees ``run_research``. A patient whose research copy is withheld (the leak audit) gets a marker
row under their pseudonym instead (``worker.WITHDRAWN``, no JSON): their earlier copy stops being
current and ``run_research`` shows neither.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from carelens.core.config import research_store
from carelens.core.errors import UsageError
from carelens.store import Lake
from carelens.store.lake import SCRATCH, duckdb_config

S = pa.string()
SCHEMAS = {
    "outputs": pa.schema(
        [
            ("patient_id", S),
            ("input_hash", S),
            ("kind", S),
            ("key", S),
            ("model", S),
            ("content_hash", S),
            ("json", pa.large_string()),
        ]
    ),
    "patient_index": pa.schema(
        [
            ("patient_id", S),
            ("input_hash", S),
            ("name", S),
            ("name_lower", S),
            ("mrn", S),
            ("birth_date", S),
            ("gender", S),
        ]
    ),
    "research": pa.schema(
        [("pseudonym", S), ("resource_type", S), ("id", S), ("content_hash", S), ("json", pa.large_string())]
    ),
}
# the run's state: not an output (no part of the digest), the newest batch of each patient wins
STATE = pa.schema([("patient_id", S), ("input_hash", S), ("status", S), ("reason", S)])
TABLES = {**SCHEMAS, "state": STATE}
SORT = {"outputs": ["patient_id", "kind", "key"], "patient_index": ["name_lower", "patient_id"],
        "research": ["pseudonym", "resource_type", "id"], "state": ["patient_id"]}  # fmt: skip
DIGEST_ROWS = 2048  # rows fetched at a time into the digest


class OutputStore:
    """The run's tables of one store."""

    def __init__(self, store: Path) -> None:
        self.store = Path(store)
        self.root = self.store / "lake" / "run"
        self.manifests_dir = self.root / "_manifest"

    def folder(self, table: str) -> Path:
        return self.research_lake.root / "run_research" if table == "research" else self.root / table

    @property
    def research_lake(self) -> Lake:
        return Lake(research_store(self.store))

    def publish(self) -> None:
        """Register the current tables in the lakes' catalogs: ``run_outputs`` and
        ``run_patient_index`` in the clinical lake, ``run_research`` in the research lake (so that
        ``carelens sql --zone research`` sees the de-identified copy)."""
        for table, name, lake in (("outputs", "run_outputs", Lake(self.store)),
                                  ("patient_index", "run_patient_index", Lake(self.store)),
                                  ("research", "run_research", self.research_lake)):  # fmt: skip
            folder = self.folder(table)
            parts = [p.name for _, p in self.parts(table) if p.parent.absolute() == folder.absolute()]
            if parts:
                key, shown_if = ("pseudonym", "json") if table == "research" else ("patient_id", None)
                lake.publish(name, str(folder.relative_to(lake.root)), parts, key, shown_if)

    # -- reading ----------------------------------------------------------------------------
    def manifests(self) -> list[dict[str, Any]]:
        """Committed batches, oldest first."""
        if not self.manifests_dir.is_dir():
            return []
        found = [orjson.loads(p.read_bytes()) for p in self.manifests_dir.glob("*.json")]
        return sorted(found, key=lambda m: m["seq"])

    def entries(self, manifest: dict[str, Any]) -> list[dict[str, Any]]:
        """The patients of one committed batch: patient, input_hash, status, reason (from its state
        part, or the list inside a manifest written before the state table)."""
        if "patients" in manifest:
            return list(manifest["patients"])
        if "state" not in manifest["parts"]:
            return []
        rows = pq.read_table(self.store / manifest["parts"]["state"]).to_pylist()
        return [{"patient": r.pop("patient_id"), **r} for r in rows]

    def state(self) -> dict[str, dict[str, Any]]:
        """Per patient, its current state: input_hash, status, reason (the whole table in memory: for
        tools and tests; a run joins :meth:`current_sql` of ``state`` instead)."""
        rows = self._sql(self.current_sql("state", "patient_id, input_hash, status, reason"))
        return {pid: {"input_hash": h, "status": status, "reason": reason} for pid, h, status, reason in rows}

    def quarantined(self) -> int:
        """How many patients' current outputs have a failed step."""
        return int(self._sql(f"SELECT count(*) FROM ({self.current_sql('state')}) WHERE status = 'failed'")[0][0])

    def _sql(self, sql: str) -> list[tuple[Any, ...]]:
        import duckdb

        with duckdb.connect(config=self._duckdb_config()) as con:
            return con.execute(sql).fetchall()

    def parts(self, table: str) -> list[tuple[int, Path]]:
        """(batch seq, part file) of every committed part of ``table``."""
        return [(m["seq"], self.store / m["parts"][table]) for m in self.manifests() if table in m["parts"]]

    def current_sql(self, table: str, columns: str = "*") -> str:
        """A DuckDB SELECT of the current rows of ``table`` (the newest batch of each patient)."""
        key = "pseudonym" if table == "research" else "patient_id"
        parts = self.parts(table)
        if not parts:
            cols = ", ".join(f'NULL::VARCHAR AS "{f.name}"' for f in TABLES[table])
            return f"SELECT {columns} FROM (SELECT {cols} WHERE false)"
        listing = ", ".join(f"'{_quote(p)}'" for _, p in parts)
        seq = r"CAST(regexp_extract(filename, 'part-(\d+)\.parquet$', 1) AS BIGINT)"
        rows = f"read_parquet([{listing}], filename = true)"
        # the newest batch of each key from the key column alone, then the rows semi-joined to it
        # (streams: no window over whole rows, which held every JSON document in memory)
        latest = f"SELECT {key}, max({seq}) AS _seq FROM {rows} GROUP BY {key}"
        every = f"SELECT *, {seq} AS _seq FROM {rows}"
        return (f"SELECT {columns} FROM (SELECT r.* EXCLUDE (filename, _seq) FROM ({every}) r"
                f" SEMI JOIN ({latest}) l ON l.{key} = r.{key} AND l._seq = r._seq)")  # fmt: skip

    def digest(self) -> str:
        """sha256 over every current row of every table (sorted; no batch or engine in it)."""
        import duckdb

        h = hashlib.sha256()
        with duckdb.connect(config=self._duckdb_config()) as con:
            for table in SCHEMAS:
                cols = ", ".join(f'"{c}"' for c in SCHEMAS[table].names if c != "json")
                result = con.execute(self.current_sql(table, cols) + " ORDER BY ALL")
                while rows := result.fetchmany(DIGEST_ROWS):  # streamed: memory does not grow with the cohort
                    for row in rows:
                        h.update(orjson.dumps([table, *row]))
        return h.hexdigest()

    def _duckdb_config(self) -> dict[str, str | bool | int | float | list[str]]:
        """The lake's bounded DuckDB (spilling under the run's tables), one thread, any row order."""
        return {**duckdb_config(self.root), "preserve_insertion_order": False, "threads": 1}

    # -- writing ----------------------------------------------------------------------------
    @contextmanager
    def writer(self) -> Iterator[OutputWriter]:
        """Exclusive writing: one run per store at a time; leftovers of a killed run removed, and
        manifests of an earlier version converted (see the module doc)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UsageError("another carelens run is writing this store") from None
            self._remove_uncommitted()
            self._convert()
            try:
                yield OutputWriter(self, max((m["seq"] for m in self.manifests()), default=0))
                self.publish()
            finally:
                shutil.rmtree(self.scratch, ignore_errors=True)

    @property
    def scratch(self) -> Path:
        """The workers' temporary files (heatmaps, DICOM SRs: they show patients), in the store beside
        the outputs, so that moving one into place never crosses file systems; removed when the run
        ends, and what a killed run left by the next run."""
        return self.root / SCRATCH

    def compact(self) -> int:
        """Merge every committed batch into one: each table's current rows into one part (sorted,
        written by DuckDB without holding the table in memory; the state too: each patient's newest
        entry) under one manifest; the batches it replaces are then removed. The current rows (and
        :meth:`digest`) are unchanged, and a kill at any moment leaves them unchanged too (the
        new manifest is the commit point; what it replaces is removed after). Call it inside
        :meth:`writer`. Returns how many batches were merged."""
        import duckdb

        manifests = self.manifests()
        if len(manifests) < 2:
            return 0
        seq = manifests[-1]["seq"] + 1
        parts: dict[str, str] = {}
        with duckdb.connect(config=self._duckdb_config()) as con:
            for table in TABLES:
                if not self.parts(table):
                    continue
                folder = self.folder(table)
                target = folder / f"part-{seq:08d}.parquet"
                tmp = target.with_name(target.name + ".tmp")
                cols = ", ".join(f'"{c}"' for c in TABLES[table].names)
                order = ", ".join(SORT[table])
                con.execute(f"COPY ({self.current_sql(table, cols)} ORDER BY {order}) TO '{_quote(tmp)}'"
                            " (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 2048)")  # fmt: skip
                os.replace(tmp, target)
                parts[table] = str(target.relative_to(self.store))
        self._write_manifest({"seq": seq, "parts": parts})
        for m in manifests:
            (self.manifests_dir / f"{m['seq']:08d}.json").unlink(missing_ok=True)
        self._remove_uncommitted()
        return len(manifests)

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        self.manifests_dir.mkdir(parents=True, exist_ok=True)
        path = self.manifests_dir / f"{manifest['seq']:08d}.json"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(orjson.dumps(manifest))
        os.replace(tmp, path)

    def _convert(self) -> None:
        """Manifests that list their patients inside (written before the state table), a file at a
        time: the batch's state part is written, then the manifest without the list (a kill between
        leaves the old manifest, converted again by the next run)."""
        for path in sorted(self.manifests_dir.glob("*.json")) if self.manifests_dir.is_dir() else []:
            manifest = orjson.loads(path.read_bytes())
            if "patients" not in manifest:
                continue
            parts = dict(manifest["parts"])
            if manifest["patients"]:
                rows = [(e["patient"], e["input_hash"], e["status"], e.get("reason")) for e in manifest["patients"]]
                parts["state"] = _write_part(self, "state", rows, manifest["seq"])
            self._write_manifest({"seq": manifest["seq"], "parts": parts})

    def _remove_uncommitted(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
        keep = {(self.store / p).absolute() for m in self.manifests() for p in m["parts"].values()}
        for table in TABLES:
            folder = self.folder(table)
            if folder.is_dir():
                for path in folder.iterdir():
                    if path.absolute() not in keep:
                        path.unlink()
        if self.manifests_dir.is_dir():
            for path in self.manifests_dir.glob("*.tmp"):
                path.unlink()


class OutputWriter:
    """Commits one batch at a time: part files first, then the manifest (the commit point)."""

    def __init__(self, outputs: OutputStore, seq: int) -> None:
        self.outputs = outputs
        self.seq = seq

    def commit(self, rows: dict[str, list[tuple[Any, ...]]], patients: list[dict[str, Any]]) -> None:
        """One batch: its rows per table and its patients' entries (patient, input_hash, status, reason)."""
        self.seq += 1
        state = [(e["patient"], e["input_hash"], e["status"], e.get("reason")) for e in patients]
        parts = {table: _write_part(self.outputs, table, values, self.seq)
                 for table, values in {**rows, "state": state}.items() if values}  # fmt: skip
        self.outputs._write_manifest({"seq": self.seq, "parts": parts})


def _write_part(outputs: OutputStore, table: str, rows: list[tuple[Any, ...]], seq: int) -> str:
    """Batch ``seq``'s part file of ``table`` (tmp file, then rename); its path in the store."""
    schema = TABLES[table]
    arrays = [pa.array(list(col), type=f.type) for col, f in zip(zip(*rows, strict=True), schema, strict=True)]
    data = pa.Table.from_arrays(arrays, schema=schema).sort_by([(c, "ascending") for c in SORT[table]])
    folder = outputs.folder(table)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"part-{seq:08d}.parquet"
    tmp = target.with_name(target.name + ".tmp")
    pq.write_table(data, tmp, compression="zstd")
    os.replace(tmp, target)
    return str(target.relative_to(outputs.store))


def _quote(path: Path) -> str:
    return str(path.absolute()).replace("'", "''")
