"""The lake: SQL over Parquet via DuckDB, idempotent (content-addressed) ingest, `carelens sql`."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import pytest

from carelens.core import InputError
from carelens.core.errors import UsageError
from carelens.ingest import ingest
from carelens.store import TABLES, Lake
from tests.ingest.makefiles import bundle, doc_ref, observation, patient, write_json, write_vcf


def table_rows(lake: Lake, table: str) -> list[tuple]:
    """A table's rows, sorted, for comparing two lakes."""
    rows = lake.read_table(table).to_pylist()
    return sorted(tuple(str(v) for v in r.values()) for r in rows)


@pytest.fixture
def small(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    write_json(
        folder / "a.json",
        bundle(patient("P1", "Ann Test"), observation("O1", "urn:uuid:P1"), doc_ref("D1", "urn:uuid:P1", "Note one.")),
    )
    write_json(folder / "b.json", bundle(patient("P2", "Bob Test"), observation("O2", "urn:uuid:P2")))
    write_vcf(folder / "g.vcf")
    return folder


def test_empty_lake_is_queryable(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "store")
    assert lake.is_empty()
    assert {"resources", "notes", "dicom_instances", "variants", "quarantine"} <= set(lake.tables())
    assert lake.query("SELECT count(*) AS n FROM resources").to_pylist() == [{"n": 0}]
    with pytest.raises(InputError, match="SQL error"):
        lake.query("SELECT * FROM no_such_table")


def test_query_batches_stream_the_rows_of_query(small: Path, tmp_path: Path) -> None:
    """What reads a row per patient of the whole lake takes it in batches of at most ``rows``."""
    ingest([small], tmp_path / "store")
    lake = Lake(tmp_path / "store")
    sql = "SELECT resource_type, id FROM resources ORDER BY ALL"
    batches = list(lake.query_batches(sql, rows=2))
    assert len(batches) >= 3 and all(b.num_rows <= 2 for b in batches)
    assert [r for b in batches for r in b.to_pylist()] == lake.query(sql).to_pylist()
    assert [r for b in lake.query_batches("SELECT id FROM resources WHERE id = ?", ["P2"]) for r in b.to_pylist()] == [
        {"id": "P2"}
    ]
    with pytest.raises(InputError, match="SQL error"):
        list(lake.query_batches("SELECT * FROM no_such_table"))


def test_lake_queries_are_memory_bounded_and_spill_under_the_lake(tmp_path: Path) -> None:
    """A query over the whole lake (the run's plan groups every resource) must not take DuckDB's
    default of most of the machine's memory: it is capped and spills to disk beside the lake."""
    import duckdb

    from carelens.store.lake import DUCKDB_MEMORY

    lake = Lake(tmp_path / "store")
    got = lake.query("SELECT current_setting('memory_limit') AS m, current_setting('temp_directory') AS t")
    with duckdb.connect(config={"memory_limit": DUCKDB_MEMORY}) as con:
        (cap,) = con.execute("SELECT current_setting('memory_limit')").fetchone()
    with duckdb.connect() as con:
        (default,) = con.execute("SELECT current_setting('memory_limit')").fetchone()
    assert got.to_pylist() == [{"m": cap, "t": str(lake.root / ".duckdb-tmp")}]
    assert cap != default


def test_reingest_adds_nothing(small: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = ingest([small], store)
    lake = Lake(store)
    before = {t: table_rows(lake, t) for t in TABLES}
    assert first.ingested()["Patient"] == 2 and first.ingested()["variants"] == 3
    shutil.copy(small / "a.json", tmp_path / "copy-of-a.json")  # same bytes, other name
    again = ingest([small, tmp_path / "copy-of-a.json"], store)
    assert sum(again.done.values()) == 0 and again.quarantined == [] and again.unchanged == 4
    assert {t: table_rows(lake, t) for t in TABLES} == before
    write_json(small / "c.json", bundle(patient("P3", "Cy Test")))
    third = ingest([small], store)
    assert third.ingested()["Patient"] == 1 and third.unchanged == 3
    assert lake.query('SELECT count(*) AS n FROM "Patient"').to_pylist() == [{"n": 3}]


def test_parts_and_manifests_agree(small: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    ingest([small], store)
    lake = Lake(store)
    on_disk = {p for t in TABLES for p in (lake.root / t).glob("*")}
    assert on_disk == {p for t in TABLES for p in lake.part_files(t)}
    assert not list(lake.root.rglob("*.tmp"))
    assert (lake.root / "catalog.duckdb").exists()


def test_uncommitted_parts_are_removed(small: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    ingest([small / "a.json"], store)
    lake = Lake(store)
    stray = lake.root / "resources" / "part-killed.parquet"
    shutil.copy(lake.part_files("resources")[0], stray)  # as if a writer died before its manifest
    ingest([small], store)
    assert not stray.exists()
    assert lake.query("SELECT count(*) AS n FROM resources").to_pylist() == [{"n": 5}]


def test_patient_resources_and_views(small: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    ingest([small], store)
    lake = Lake(store)
    assert not lake.is_empty()
    rows = lake.patient_resources("P1").to_pylist()
    assert sorted((r["resource_type"], r["id"]) for r in rows) == [
        ("DocumentReference", "D1"),
        ("Observation", "O1"),
        ("Patient", "P1"),
    ]
    assert json.loads(rows[1]["json"])["subject"] == {"reference": "Patient/P1"}
    write_json(tmp_path / "again" / "same-p1.json", patient("P1", "Ann Test"))  # same resource, new file
    ingest([tmp_path / "again"], store)
    assert lake.query("SELECT count(*) AS n FROM \"Patient\" WHERE id = 'P1'").to_pylist() == [{"n": 2}]
    assert len(lake.patient_resources("P1")) == 3
    assert lake.query("SELECT json ->> '$.status' AS s FROM \"Observation\" WHERE id = 'O2'").to_pylist() == [
        {"s": "final"}
    ]


def test_patient_resources_reads_only_the_parts_that_hold_the_patient(
    small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catalog maps each patient to the resource part files holding them (kept up to date as parts come,
    change or go, and made for a catalog written before the map); a lookup equals a scan of every part."""
    monkeypatch.setenv("CARELENS_LAKE_CHUNK_ROWS", "1")  # a part per source file
    store = tmp_path / "store"
    ingest([small], store)
    lake = Lake(store)
    scan = (
        "SELECT DISTINCT ON (resource_type, id, content_hash) resource_type, id, json FROM resources"
        " WHERE patient_id = ? ORDER BY resource_type, id"
    )

    def parts_of(patient: str) -> list[str]:
        return lake.query("SELECT part FROM patient_parts WHERE patient_id = ?", [patient]).column(0).to_pylist()

    assert len(parts_of("P1")) == len(parts_of("P2")) == 1 and parts_of("P1") != parts_of("P2")
    write_json(tmp_path / "more" / "p1-later.json", bundle(patient("P1", "Ann Test"), observation("O3", "urn:uuid:P1")))
    ingest([tmp_path / "more"], store)
    assert len(parts_of("P1")) == 2
    for patient_id in ("P1", "P2"):
        assert lake.patient_resources(patient_id).equals(lake.query(scan, [patient_id]))
    assert {r["id"] for r in lake.patient_resources("P1").to_pylist()} == {"P1", "O1", "O3", "D1"}
    unknown = lake.patient_resources("nobody")
    assert unknown.num_rows == 0 and unknown.column_names == ["resource_type", "id", "json"]

    def catalog_from_before_the_map() -> None:
        import duckdb

        marker = json.loads((lake.root / "_catalog.json").read_text())
        del marker["patient_parts"]
        (lake.root / "_catalog.json").write_text(json.dumps(marker))
        with duckdb.connect(str(lake.catalog)) as con:
            con.execute("DROP TABLE patient_parts")
            con.execute("DROP TABLE patient_parts_read")

    catalog_from_before_the_map()
    with monkeypatch.context() as readonly:  # a store this process cannot write: the scan, as before the map
        readonly.setattr(os, "access", lambda path, mode: False)
        assert lake.patient_resources("P1").equals(lake.query(scan, ["P1"]))
        assert "patient_parts" not in lake.tables()
    assert lake.patient_resources("P1").equals(lake.query(scan, ["P1"]))  # one it can write: the map is made
    assert len(parts_of("P1")) == 2


@pytest.fixture
def cli(run_cli):
    """Run ``carelens ARGS --store STORE`` in this process; returns (exit code, stdout, stderr)."""

    def run(*args: str, store: Path) -> tuple[int, str, str]:
        return run_cli(*args, "--store", str(store))

    return run


def test_cli_sql_and_exit_codes(small: Path, tmp_path: Path, cli) -> None:
    store = tmp_path / "store"
    code, out, _ = cli("ingest", str(small), "--format", "text", store=store)
    assert (code, out.strip()) == (0, "ingested 8, quarantined 0")
    code, out, _ = cli("ingest", str(small), store=store)
    second = json.loads(out)
    assert code == 0 and second["unchanged"] == 3
    assert second["ingested"] == {"notes": 0, "dicom": 0, "variants": 0} and second["quarantined"] == []
    sql = "SELECT resource_type, count(*) AS n FROM resources GROUP BY 1 ORDER BY 1"
    code, out, _ = cli("sql", sql, store=store)
    assert code == 0
    assert json.loads(out) == [
        {"resource_type": t, "n": n} for t, n in [("DocumentReference", 1), ("Observation", 2), ("Patient", 2)]
    ]
    rows = list(csv.reader(io.StringIO(cli("sql", sql, "--format", "csv", store=store)[1])))
    assert rows[0] == ["resource_type", "n"] and rows[1:] == [
        ["DocumentReference", "1"],
        ["Observation", "2"],
        ["Patient", "2"],
    ]
    table = cli("sql", sql, "--format", "table", store=store)[1]
    assert "Observation" in table and "(3 rows)" in table
    code, _, err = cli("sql", "SELEC nonsense", store=store)
    assert code == 1 and err.startswith("error: SQL error") and len(err.strip().splitlines()) == 1
    assert cli("sql", "SELECT 1", "--format", "xml", store=store)[0] == 2
    code, _, err = cli("sql", "SELECT 1", store=tmp_path / "nowhere")
    assert code == 1 and "no lake in" in err and not (tmp_path / "nowhere").exists()
    assert cli("ingest", str(tmp_path / "missing"), store=store)[0] == 2
    assert cli("ingest", str(small), "--format", "yaml", store=store)[0] == 2
    assert cli("ingest", str(small), "--processes", "0", store=store)[0] == 2
    code, out, _ = cli("ingest", str(small), "--processes", "1", "--format", "text", store=tmp_path / "one")
    assert (code, out.strip()) == (0, "ingested 8, quarantined 0")


@pytest.mark.parametrize("command", ["ingest", "sql"])
def test_help(command: str, cli, tmp_path: Path) -> None:
    code, out, _ = cli(command, "--help", store=tmp_path)
    assert code == 0 and "--store" in out and "--format" in out


def test_one_writer_at_a_time(small: Path, tmp_path: Path, cli) -> None:
    store = tmp_path / "store"
    lake = Lake(store)
    with lake.writer():
        code, _, err = cli("ingest", str(small), store=store)
    assert code == 2 and err.strip() == "error: another carelens ingest is writing this store"
    assert cli("ingest", str(small), store=store)[0] == 0  # the lock goes with its holder


def test_patient_identifier_links(tmp_path: Path) -> None:
    import pydicom
    from pydicom.data import get_testdata_file

    person = patient("P7", "Di Test")
    person["identifier"] = [{"system": "http://hospital.example/mrn", "value": "MRN-0007"}]
    folder = tmp_path / "in"
    write_json(folder / "p.json", person)
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientID = "MRN-0007"
    ds.save_as(folder / "ct.dcm")
    ingest([folder], tmp_path / "store")
    lake = Lake(tmp_path / "store")
    ids = lake.query("SELECT patient_id, system, value FROM patient_identifiers").to_pylist()
    assert ids == [{"patient_id": "P7", "system": "http://hospital.example/mrn", "value": "MRN-0007"}]
    assert lake.query("SELECT fhir_patient_id FROM dicom_patient_links").to_pylist() == [{"fhir_patient_id": "P7"}]


def test_failed_background_write_raises_and_commits_nothing(
    small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import carelens.store.lake as lake_module

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    store = tmp_path / "store"
    real = lake_module.pq.write_table
    monkeypatch.setattr(lake_module.pq, "write_table", disk_full)
    with pytest.raises(OSError, match="No space"):
        ingest([small], store)
    lake = Lake(store)
    assert lake.manifests() == []
    monkeypatch.setattr(lake_module.pq, "write_table", real)
    again = ingest([small], store)
    assert again.unchanged == 0 and again.ingested()["Patient"] == 2


def test_published_table_newest_part_per_key_and_nothing_outside_the_lake(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    lake = Lake(tmp_path / "store")
    folder = lake.root / "run" / "things"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"k": ["a", "b"], "v": ["a1", "b1"]}), folder / "part-00000001.parquet")
    pq.write_table(pa.table({"k": ["a"], "v": ["a2"]}), folder / "part-00000002.parquet")
    lake.publish("things", "run/things", ["part-00000001.parquet"], "k")
    assert sorted(lake.query("SELECT k, v FROM things").to_pylist(), key=str) == [
        {"k": "a", "v": "a1"}, {"k": "b", "v": "b1"}]  # fmt: skip
    lake.publish("things", "run/things", ["part-00000001.parquet", "part-00000002.parquet"], "k")
    assert sorted(r["v"] for r in lake.query("SELECT v FROM things").to_pylist()) == ["a2", "b1"]  # catalog refreshed
    with pytest.raises(UsageError):
        lake.publish("things", "../outside", ["part-00000001.parquet"], "k")
    (lake.root / "_published" / "evil.json").write_bytes(
        json.dumps({"folder": "../../x", "parts": ["part-1.parquet"], "latest_by": "k"}).encode())  # fmt: skip
    (lake.root / "_published" / "evil2.json").write_bytes(
        json.dumps({"folder": "run", "parts": ["/etc/passwd"], "latest_by": "k"}).encode())  # fmt: skip
    views = lake.view_sql()
    assert "things" in views and "evil" not in views and "evil2" not in views
