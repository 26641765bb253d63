"""The lake: Parquet part files per table under ``<store>/lake/<table>/`` and a DuckDB
catalog (``<store>/lake/catalog.duckdb``) of views over them, queryable with SQL.

Writes are crash-safe and content-addressed. A writer collects the rows of whole source files
into a chunk; committing a chunk writes each table's part file (tmp file, then rename) and
then the chunk's manifest (``_manifest/<chunk>.json``, tmp then rename), which lists the
chunk's source-file hashes and part files (a background thread does both, one chunk at a time,
while the next chunk fills). The manifest rename is the commit point: part
files no manifest names (left by a killed writer) are deleted when the next writer opens the
lake, and a source whose hash a manifest lists is never ingested again. So killing a writer
at any moment and running it again yields exactly the tables of an uninterrupted run.
(Files are not fsync'ed: a killed process loses nothing the kernel has accepted; a power
cut may lose the last chunks, which the next run then ingests again.)
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from carelens.core.errors import InputError, UsageError
from carelens.core.ids import stable_id
from carelens.core.settings import load_settings

S = pa.string()
SCHEMAS: dict[str, pa.Schema] = {
    "resources": pa.schema(
        [
            ("resource_type", S),
            ("id", S),
            ("patient_id", S),
            ("source", S),
            ("where", S),
            ("content_hash", S),
            ("json", pa.large_string()),
        ]
    ),
    "notes": pa.schema(
        [
            ("note_id", S),
            ("patient_id", S),
            ("date", S),
            ("type", S),
            ("text", S),
            ("content_type", S),
            ("content_hash", S),
            ("source", S),
            ("where", S),
        ]
    ),
    "dicom_instances": pa.schema(
        [
            ("study_uid", S),
            ("series_uid", S),
            ("sop_uid", S),
            ("sop_class_uid", S),
            ("patient_id", S),
            ("modality", S),
            ("study_date", S),
            ("series_date", S),
            ("study_description", S),
            ("series_description", S),
            ("body_part", S),
            ("rows", pa.int32()),
            ("columns", pa.int32()),
            ("transfer_syntax", S),
            ("path", S),
            ("content_hash", S),
        ]
    ),
    "variants": pa.schema(
        [
            ("sample", S),
            ("chrom", S),
            ("pos", pa.int64()),
            ("id", S),
            ("ref", S),
            ("alt", S),
            ("qual", pa.float64()),
            ("filter", S),
            ("gt", S),
            ("phased", pa.bool_()),
            ("source", S),
            ("where", S),
        ]
    ),
    "quarantine": pa.schema([("source", S), ("where", S), ("reason", S), ("resource_key", S), ("source_hash", S)]),
    "sources": pa.schema([("source_hash", S), ("path", S), ("kind", S), ("items", pa.int64())]),
}
TABLES = tuple(SCHEMAS)
DUCKDB_MEMORY = "1GB"  # DuckDB's share of a query's or a run's peak memory; larger sorts and aggregates spill to disk
SCRATCH = "_scratch"  # the lock-holding writer's temporary files (see ``LakeWriter.scratch``)
CHUNK_TEXT_BYTES = 4_000_000  # a chunk is also committed at this much long text (resource JSON)
_LONG_TEXT_COLUMNS = {"json", "text"}  # no min/max statistics: no query filters on a range of them
_UNIQUE_COLUMNS = _LONG_TEXT_COLUMNS | {"id", "content_hash", "note_id", "sop_uid", "where"}  # no dictionary
_DUCK_TYPES = {
    pa.string(): "VARCHAR",
    pa.large_string(): "VARCHAR",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
}
_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # a published table, its folder, its key column
_FOLDER = re.compile(r"^[a-z][a-z0-9_]{0,63}(/[a-z][a-z0-9_]{0,63}){0,3}$")
_PART = re.compile(r"^part-\d{1,12}\.parquet$")
_PATIENT_RESOURCES = (  # a patient's resources from ``source``; one copy of a resource that came in several files
    "SELECT DISTINCT ON (resource_type, id, content_hash) resource_type, id, json FROM {source}"
    " WHERE patient_id = ? ORDER BY resource_type, id"
)
_EXTRA_VIEWS = {
    "patient_identifiers": (
        "SELECT id AS patient_id, unnest(json_extract_string(json, '$.identifier[*].system')) AS system,"
        " unnest(json_extract_string(json, '$.identifier[*].value')) AS value"
        " FROM resources WHERE resource_type = 'Patient'"
    ),
    "dicom_patient_links": (
        "SELECT d.sop_uid, d.patient_id AS dicom_patient_id, i.patient_id AS fhir_patient_id"
        " FROM dicom_instances d LEFT JOIN patient_identifiers i ON i.value = d.patient_id"
    ),
    "dicom_series": (
        "SELECT study_uid, series_uid, any_value(patient_id) AS patient_id, any_value(modality) AS modality,"
        " any_value(series_date) AS series_date, any_value(series_description) AS series_description,"
        " count(*) AS instances FROM dicom_instances GROUP BY study_uid, series_uid"
    ),
    "dicom_studies": (
        "SELECT study_uid, any_value(patient_id) AS patient_id, any_value(study_date) AS study_date,"
        " any_value(study_description) AS study_description, string_agg(DISTINCT modality, ',') AS modalities,"
        " count(DISTINCT series_uid) AS series, count(*) AS instances FROM dicom_instances GROUP BY study_uid"
    ),
}


class Lake:
    """The Parquet + DuckDB lake of a store (``load_settings().store`` when not given)."""

    def __init__(self, store: Path | None = None) -> None:
        self.store = Path(store) if store is not None else load_settings().store
        self.root = self.store / "lake"
        self.catalog = self.root / "catalog.duckdb"

    # -- reading -------------------------------------------------------------------------
    def manifests(self) -> list[dict[str, Any]]:
        """The committed chunks, oldest first, without their lists of sources (a record a file:
        see :meth:`committed_sources`), so that memory does not grow with the files ingested."""
        found = []
        for path in self._manifest_files():
            manifest = orjson.loads(path.read_bytes())
            del manifest["sources"]
            found.append(manifest)
        return sorted(found, key=lambda m: (m.get("seq", 0), m["chunk"]))

    def _manifest_files(self) -> Iterator[Path]:
        folder = self.root / "_manifest"
        return folder.glob("*.json") if folder.is_dir() else iter(())

    def part_files(self, table: str) -> list[Path]:
        """The committed Parquet part files of ``table``."""
        return [self.root / m["parts"][table] for m in self.manifests() if table in m["parts"]]

    def committed_sources(self) -> Iterator[str]:
        """Content hashes of every source file already in the lake (a manifest read at a time)."""
        for path in self._manifest_files():
            yield from (source["hash"] for source in orjson.loads(path.read_bytes())["sources"])

    def is_empty(self) -> bool:
        """Whether no chunk is committed (stops at the first manifest)."""
        return next(iter(self._manifest_files()), None) is None

    def chunk_count(self) -> int:
        """How many chunks are committed."""
        return sum(1 for _ in self._manifest_files())

    def read_table(self, table: str, columns: list[str] | None = None) -> pa.Table:
        """A whole table straight from its committed part files (no catalog needed)."""
        files = self.part_files(table)
        schema = SCHEMAS[table] if columns is None else pa.schema([SCHEMAS[table].field(c) for c in columns])
        if not files:
            return schema.empty_table()
        return pa.concat_tables(pq.read_table(f, columns=columns, schema=schema) for f in files)

    def tables(self) -> list[str]:
        """Names of the tables and views in the catalog."""
        rows = self.query("SELECT table_name FROM information_schema.tables ORDER BY table_name")
        return [str(v) for v in rows.column("table_name").to_pylist()]

    def query(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Run SQL against the catalog; returns an Arrow table. Raises ``InputError`` with
        DuckDB's one-line message on a bad query."""
        with self._result(sql, params) as result:
            return result.to_arrow_table()

    def query_batches(self, sql: str, params: list[Any] | None = None, rows: int = 65_536) -> Iterator[pa.RecordBatch]:
        """:meth:`query`'s result as Arrow batches of at most ``rows`` rows, streamed: nothing the size of
        the result is held (what reads every patient of the lake uses it)."""
        with self._result(sql, params) as result:
            yield from result.to_arrow_reader(rows)

    @contextmanager
    def _result(self, sql: str, params: list[Any] | None) -> Iterator[Any]:
        """DuckDB's result of ``sql`` on a read-only connection to the current catalog."""
        with self._connection() as con:
            yield con.sql(sql, params=params) if params else con.sql(sql)

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """A read-only connection to the current catalog; DuckDB's errors become ``InputError`` with
        their first line."""
        import duckdb

        if not self._catalog_current():
            self.refresh()
        try:
            with duckdb.connect(str(self.catalog), read_only=True, config=duckdb_config(self.root)) as con:
                yield con
        except duckdb.Error as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputError(f"SQL error: {first}") from None

    def patient_resources(self, patient_id: str) -> pa.Table:
        """Every FHIR resource of one patient (the Patient itself included); a resource that
        arrived identically in several files comes once. Only the part files that hold the patient
        are read (the catalog's ``patient_parts`` map): a lookup costs the same at any lake size."""
        import duckdb

        with self._connection() as con:
            try:
                found = con.execute("SELECT part FROM patient_parts WHERE patient_id = ?", [patient_id]).fetchall()
            except duckdb.CatalogException:  # a catalog made before the map, in a store this process cannot write
                return con.sql(_PATIENT_RESOURCES.format(source="resources"), params=[patient_id]).to_arrow_table()
            if not found:
                return pa.schema([SCHEMAS["resources"].field(c) for c in ("resource_type", "id", "json")]).empty_table()
            source = f"read_parquet([{_listing(self.root / part for (part,) in found)}])"
            return con.sql(_PATIENT_RESOURCES.format(source=source), params=[patient_id]).to_arrow_table()

    # -- catalog -------------------------------------------------------------------------
    def _marker(self) -> dict[str, Any]:
        marker = self.root / "_catalog.json"
        if not self.catalog.exists() or not marker.exists():
            return {}
        seen = orjson.loads(marker.read_bytes())
        return seen if seen.get("root") == str(self.root.absolute()) else {}

    def _catalog_current(self) -> bool:
        marker = self._marker()  # a catalog made before the patient_parts map is brought up to date where it can be
        mapped = marker.get("patient_parts") or not os.access(self.root, os.W_OK)
        return bool(marker.get("chunks") == self._chunk_ids() and mapped and self.catalog.exists())

    def _chunk_ids(self) -> list[str]:
        """The committed chunks and the published tables' versions (what the catalog reflects)."""
        chunks = sorted(p.stem for p in self._manifest_files())
        published = self.root / "_published"
        if published.is_dir():
            chunks += sorted(f"published:{p.stem}:{stable_id(p.read_bytes())}" for p in published.glob("*.json"))
        return chunks

    # -- published tables ------------------------------------------------------------------
    def publish(self, name: str, folder: str, parts: list[str], latest_by: str, shown_if: str | None = None) -> None:
        """Register a table another writer keeps under this lake (``<lake>/<folder>/part-<seq>.parquet``,
        e.g. ``carelens run``'s outputs): its view ``name`` holds, for each ``latest_by`` value, the
        rows of its newest listed part. ``parts``: the committed part files (names only).
        ``shown_if``: a column; rows where it is null are markers (they make a key's older rows
        not current) and are left out of the view."""
        if not (_NAME.match(name) and _FOLDER.match(folder) and _NAME.match(latest_by)):
            raise UsageError(f"not a table name: {name!r}")
        if shown_if is not None and not _NAME.match(shown_if):
            raise UsageError(f"not a column name: {shown_if!r}")
        listing = {"folder": folder, "parts": sorted(parts), "latest_by": latest_by, "shown_if": shown_if}
        (self.root / "_published").mkdir(parents=True, exist_ok=True)
        _atomic_write(self.root / "_published" / f"{name}.json", orjson.dumps(listing))

    def _published_views(self) -> dict[str, str]:
        """Views of the published tables (names and part files checked: nothing outside the lake)."""
        views: dict[str, str] = {}
        folder = self.root / "_published"
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            spec = orjson.loads(path.read_bytes())
            parts = [p for p in spec.get("parts", []) if _PART.match(p)]
            folder_ok = bool(_FOLDER.match(spec.get("folder", "")))
            if not (parts and folder_ok and _NAME.match(path.stem) and _NAME.match(spec.get("latest_by", ""))):
                continue
            files = [str((self.root / spec["folder"] / p).absolute()).replace("'", "''") for p in parts]
            listing = ", ".join(f"'{f}'" for f in files)
            seq = r"CAST(regexp_extract(filename, 'part-(\d+)\.parquet$', 1) AS BIGINT)"
            views[path.stem] = (
                f"SELECT * EXCLUDE (filename) FROM read_parquet([{listing}], filename = true)"
                f' QUALIFY {seq} = max({seq}) OVER (PARTITION BY "{spec["latest_by"]}")'
            )
            if spec.get("shown_if") and _NAME.match(spec["shown_if"]):
                views[path.stem] = f'SELECT * FROM ({views[path.stem]}) WHERE "{spec["shown_if"]}" IS NOT NULL'
        return views

    def view_sql(self, manifests: list[dict[str, Any]] | None = None) -> dict[str, str]:
        """The catalog's views: name -> SELECT over the committed part files (of ``manifests``, by default
        the committed ones)."""
        manifests = self.manifests() if manifests is None else manifests
        views: dict[str, str] = {}
        for table in TABLES:
            files = [self.root / m["parts"][table] for m in manifests if table in m["parts"]]
            if files:
                views[table] = f"SELECT * FROM read_parquet([{_listing(files)}])"
            else:
                cols = ", ".join(f'NULL::{_DUCK_TYPES[f.type]} AS "{f.name}"' for f in SCHEMAS[table])
                views[table] = f"SELECT {cols} WHERE false"
        views.update(_EXTRA_VIEWS)
        views.update({k: v for k, v in self._published_views().items() if k not in views})
        for rtype in sorted({t for m in manifests for t in m.get("resource_types", [])}):
            if _RESOURCE_TYPE.match(rtype) and rtype.lower() not in views:
                views[rtype] = (
                    f"SELECT id, patient_id, json, source, content_hash FROM resources WHERE resource_type = '{rtype}'"
                )
        return views

    def refresh(self, con: Any = None) -> None:
        """Bring the catalog's views up to date with the committed part files (only the views
        whose definition changed are re-created). ``con``: a read-write connection to the
        catalog to use (left open), else one is opened for this refresh."""
        import duckdb

        self.root.mkdir(parents=True, exist_ok=True)
        chunks = self._chunk_ids()
        before = self._marker().get("views", {})
        manifests = self.manifests()
        wanted = self.view_sql(manifests)
        views = {name: stable_id(sql) for name, sql in wanted.items()}
        changed = [name for name in wanted if before.get(name) != views[name]]
        parts = [m["parts"]["resources"] for m in manifests if "resources" in m["parts"]]
        with duckdb.connect(str(self.catalog)) if con is None else nullcontext(con) as catalog:
            _create_views(catalog, {name: wanted[name] for name in changed})
            _sync_patient_parts(catalog, self.root, parts)
        marker = {"root": str(self.root.absolute()), "chunks": chunks, "views": views, "patient_parts": True}
        _atomic_write(self.root / "_catalog.json", orjson.dumps(marker))

    # -- writing -------------------------------------------------------------------------
    @contextmanager
    def writer(self, rows_per_chunk: int | None = None) -> Iterator[LakeWriter]:
        """Exclusive, crash-safe writing (one writer per lake at a time); commits what is
        pending and refreshes the catalog on a normal exit. A chunk is committed once it holds
        ``rows_per_chunk`` rows (``CARELENS_LAKE_CHUNK_ROWS``, default 10,000) or
        :data:`CHUNK_TEXT_BYTES` of resource JSON, so the background writer keeps up."""
        if rows_per_chunk is None:
            rows_per_chunk = load_settings().lake_chunk_rows
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UsageError("another carelens ingest is writing this store") from None
            writer = LakeWriter(self, rows_per_chunk)
            writer.remove_uncommitted()
            try:
                yield writer
                writer.commit()
                writer.wait()
                if not self._catalog_current():
                    self.refresh(writer.catalog())
            finally:
                writer.close()
                shutil.rmtree(self.root / SCRATCH, ignore_errors=True)


class LakeWriter:
    """Collects rows of whole source files and commits them chunk by chunk (see module doc).

    A ``staging`` writer (in an ingest helper process) writes each chunk's part files but not its
    manifest: the chunk's manifest goes to :meth:`stage` (``stage``, else the list ``staged``), for
    the process holding the lake's lock to commit (:meth:`commit_staged`) or drop
    (:meth:`discard_staged`)."""

    def __init__(
        self,
        lake: Lake,
        rows_per_chunk: int,
        staging: bool = False,
        stage: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.lake = lake
        self.rows_per_chunk = rows_per_chunk
        self.staging = staging
        self.staged: list[dict[str, Any]] = []
        self.stage = stage or self.staged.append  # called with each staged manifest, in the writing thread
        self._seq = 0 if staging else lake.chunk_count()  # a staged chunk gets its number when committed
        self._columns: dict[str, list[list[Any]]] = {}
        self._sources: list[dict[str, Any]] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="carelens-lake")
        self._writing: Future[None] | None = None
        self._catalog: Future[Any] | None = None

    @property
    def scratch(self) -> Path:
        """A private folder for the temporary files of the writer holding the lake's lock (they may
        name patients, so they stay in the store, not the system's temporary folder): removed when
        that writer ends, and one a killed writer left by the next writer."""
        folder = self.lake.root / SCRATCH
        folder.mkdir(mode=0o700, exist_ok=True)
        return folder

    def remove_uncommitted(self) -> None:
        """Delete part and tmp files that no manifest names, and the scratch folder (left by a killed writer)."""
        shutil.rmtree(self.lake.root / SCRATCH, ignore_errors=True)
        keep = {(self.lake.root / p).absolute() for m in self.lake.manifests() for p in m["parts"].values()}
        for table in TABLES:
            folder = self.lake.root / table
            if folder.is_dir():
                for path in folder.iterdir():
                    if path.absolute() not in keep:
                        path.unlink()
        for path in (self.lake.root / "_manifest").glob("*.tmp"):
            path.unlink()

    def add_rows(self, table: str, rows: Iterable[tuple[Any, ...]]) -> None:
        """Append rows (tuples in the table's column order) to the pending chunk."""
        columns = self._columns.setdefault(table, [[] for _ in SCHEMAS[table]])
        count = 0
        for row in rows:
            for column, value in zip(columns, row, strict=True):
                column.append(value)
            count += 1
        self._pending_rows += count

    def add_columns(self, table: str, columns: list[list[Any]]) -> None:
        """Append whole columns (in the table's column order) to the pending chunk."""
        pending = self._columns.setdefault(table, [[] for _ in SCHEMAS[table]])
        if len(columns) != len(pending):
            raise ValueError(f"{table} has {len(pending)} columns, got {len(columns)}")
        for target, values in zip(pending, columns, strict=True):
            target.extend(values)
        self._pending_rows += len(columns[0]) if columns else 0
        for name, values in zip(SCHEMAS[table].names, columns, strict=True):
            if name in _LONG_TEXT_COLUMNS:
                self._pending_bytes += sum(map(len, values))

    def source_done(self, source_hash: str, path: str, kind: str, items: int) -> None:
        """Mark a source file's rows complete; commits when the chunk is big enough."""
        self._sources.append({"hash": source_hash, "path": path, "kind": kind, "items": items})
        self.add_rows("sources", [(source_hash, path, kind, items)])
        if self._pending_rows >= self.rows_per_chunk or self._pending_bytes >= CHUNK_TEXT_BYTES:
            self.commit()

    def chunk_key(self, source_hash: str) -> str:
        """The key of the chunk that the source marked done next (``source_hash``) goes to: the
        hash of the chunk's first source."""
        return self._sources[0]["hash"] if self._sources else source_hash

    def commit(self) -> None:
        """Hand the pending chunk to the background thread, which writes its part files, then
        its manifest (the commit point). One chunk is written at a time, in order, while the
        next one fills (Parquet writing releases the GIL)."""
        if not self._sources:
            return
        self.wait()
        self._seq += 1
        types = sorted(set(self._columns["resources"][0])) if "resources" in self._columns else []
        self._writing = self._pool.submit(self._write_chunk, self._columns, self._sources, self._seq, types)
        self._columns = {}
        self._sources = []
        self._pending_rows = 0
        self._pending_bytes = 0

    def wait(self) -> None:
        """Wait for the chunk being written; raises what its writing raised."""
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.result()

    def open_catalog(self) -> None:
        """Open the catalog and bring it up to date with the chunks committed so far, in the
        background (DuckDB opens a database and creates views without holding the GIL), so
        the refresh at the end of writing has only the last changes to make. Call it when the
        end is near: the open catalog keeps readers out until :meth:`close`."""
        if self._catalog is None:
            opener = ThreadPoolExecutor(max_workers=1, thread_name_prefix="carelens-catalog")
            self._catalog = opener.submit(self._open_catalog)
            opener.shutdown(wait=False)

    def _open_catalog(self) -> Any:
        import duckdb

        con = duckdb.connect(str(self.lake.catalog))
        try:
            self.lake.refresh(con)
        except BaseException:
            con.close()
            raise
        return con

    def catalog(self) -> Any:
        """The catalog connection :meth:`open_catalog` opened, or None (also when opening it
        failed: the refresh that opens it again raises what went wrong)."""
        opening = self._catalog
        if opening is None or opening.exception() is not None:
            return None
        return opening.result()

    def close(self) -> None:
        """Wait for the last chunk, stop the background thread, close the catalog connection."""
        try:
            self.wait()
        finally:
            self._pool.shutdown()
            con, self._catalog = self.catalog(), None
            if con is not None:
                con.close()

    def _write_chunk(
        self, columns: dict[str, list[list[Any]]], sources: list[dict[str, Any]], seq: int, types: list[str]
    ) -> None:
        chunk = stable_id(*sorted(s["hash"] for s in sources), length=24)
        parts: dict[str, str] = {}
        for table, values in columns.items():
            if not values[0]:
                continue
            relative = f"{table}/part-{chunk}.parquet"
            target = self.lake.root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            arrays = [_array(column, field.type) for column, field in zip(values, SCHEMAS[table], strict=True)]
            tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")  # a helper process writes its own
            names = SCHEMAS[table].names
            pq.write_table(
                pa.Table.from_arrays(arrays, schema=SCHEMAS[table]),
                tmp,
                compression="zstd",
                use_dictionary=[n for n in names if n not in _UNIQUE_COLUMNS],
                write_statistics=[n for n in names if n not in _LONG_TEXT_COLUMNS],
            )
            os.replace(tmp, target)
            parts[table] = relative
        manifest = {"chunk": chunk, "seq": seq, "sources": sources, "parts": parts, "resource_types": types}
        if self.staging:
            self.stage(manifest)
        else:
            self._write_manifest(manifest)

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        folder = self.lake.root / "_manifest"
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(folder / f"{manifest['chunk']}.json", orjson.dumps(manifest, option=orjson.OPT_INDENT_2))

    def commit_staged(self, manifest: dict[str, Any]) -> None:
        """Commit a chunk whose part files a staging writer wrote: its manifest is written (the
        commit point) after the chunks before it, with the next sequence number."""
        self.wait()
        self._seq += 1
        self._writing = self._pool.submit(self._write_manifest, {**manifest, "seq": self._seq})

    def discard_staged(self, manifest: dict[str, Any]) -> None:
        """Delete the part files of a staged chunk that will not be committed."""
        for relative in manifest["parts"].values():
            (self.lake.root / relative).unlink(missing_ok=True)


def _array(values: list[Any], kind: pa.DataType) -> pa.Array:
    """An Arrow array; a large-string column given as UTF-8 bytes (JSON that orjson wrote or
    validated) is built from one joined buffer instead of value by value."""
    if kind == pa.large_string() and values and isinstance(values[0], bytes):
        offsets = np.zeros(len(values) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, values), dtype=np.int64, count=len(values)), out=offsets[1:])
        return pa.LargeStringArray.from_buffers(len(values), pa.py_buffer(offsets), pa.py_buffer(b"".join(values)))
    return pa.array(values, type=kind)


def duckdb_config(folder: Path) -> dict[str, str | bool | int | float | list[str]]:
    """DuckDB bounded whatever the lake's size: past :data:`DUCKDB_MEMORY` it spills under ``folder``."""
    return {"memory_limit": DUCKDB_MEMORY, "temp_directory": str(folder / ".duckdb-tmp")}


def _create_views(con: Any, views: dict[str, str]) -> None:
    con.execute("BEGIN")  # one transaction: one WAL sync, not one per view
    for name, sql in views.items():
        con.execute(f'CREATE OR REPLACE VIEW "{name}" AS {sql}')
    con.execute("COMMIT")


def _listing(files: Iterable[Path]) -> str:
    """Part files as a DuckDB list literal of absolute paths."""
    return ", ".join("'" + str(f.absolute()).replace("'", "''") + "'" for f in files)


def _sync_patient_parts(con: Any, root: Path, parts: list[str]) -> None:
    """Bring the catalog's ``patient_parts`` (patient id, resource part file relative to the lake) up to
    date with the committed ``parts``: a part's patient ids are read when it first appears or its file
    changed (size, modification time), and its rows leave with it."""
    con.execute("BEGIN")
    con.execute("CREATE TABLE IF NOT EXISTS patient_parts (patient_id VARCHAR, part VARCHAR)")
    con.execute("CREATE TABLE IF NOT EXISTS patient_parts_read (part VARCHAR, stamp VARCHAR)")
    read = dict(con.execute("SELECT part, stamp FROM patient_parts_read").fetchall())
    stamps = {part: _stamp(root / part) for part in parts}
    for part in sorted(p for p in read if read[p] != stamps.get(p)):
        con.execute("DELETE FROM patient_parts WHERE part = ?", [part])
        con.execute("DELETE FROM patient_parts_read WHERE part = ?", [part])
    for part in sorted(p for p in stamps if read.get(p) != stamps[p]):
        con.execute(
            f"INSERT INTO patient_parts SELECT DISTINCT patient_id, ? FROM read_parquet([{_listing([root / part])}])"
            " WHERE patient_id IS NOT NULL",
            [part],
        )
        con.execute("INSERT INTO patient_parts_read VALUES (?, ?)", [part, stamps[part]])
    con.execute("COMMIT")


def _stamp(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def lake_keys(lake: Lake) -> Iterator[str]:
    """``Type/id`` of every resource in the lake, ingested or quarantined (read a Parquet batch at
    a time: nothing the size of the lake is held)."""
    for path in lake.part_files("resources"):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536, columns=["resource_type", "id"]):
            types, ids = batch.column(0).to_pylist(), batch.column(1).to_pylist()
            yield from (f"{t}/{i}" for t, i in zip(types, ids, strict=True))
    for path in lake.part_files("quarantine"):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536, columns=["resource_key"]):
            yield from (k for k in batch.column(0).to_pylist() if k)
