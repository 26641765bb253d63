"""Ingest of the public Synthea bundles and Bulk Data export: every entry lands in the lake."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from carelens.core import BatchResult
from carelens.ingest import ingest, read_fhir
from carelens.store import Lake


def _count_entries(folder: Path) -> Counter[str]:
    """Resources per type, counted with the standard library straight from the files."""
    counts: Counter[str] = Counter()
    for path in folder.iterdir():
        if path.suffix == ".json":
            for entry in json.loads(path.read_text())["entry"]:
                counts[entry["resource"]["resourceType"]] += 1
        elif path.suffix == ".ndjson":
            for line in path.read_text().splitlines():
                obj = json.loads(line)
                if "resourceType" in obj:  # log.ndjson holds export events, not resources
                    counts[obj["resourceType"]] += 1
    return counts


@pytest.fixture(scope="module")
def both(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    store = tmp_path_factory.mktemp("lake")
    fhir = shared_data / "fhir"
    results = {name: ingest([fhir / name], store) for name in ("synthea-r4", "bulk-10-patients")}
    return store, results


def test_synthea_counts_per_type(both, shared_data: Path) -> None:
    _store, results = both
    expected = _count_entries(shared_data / "fhir" / "synthea-r4")
    result = results["synthea-r4"]
    assert sum(expected.values()) > 12_000
    assert {k: v for k, v in result.ingested().items() if k not in ("notes", "dicom", "variants")} == dict(expected)
    assert result.quarantined == []


def test_bulk_counts_and_notes(both, shared_data: Path) -> None:
    _store, results = both
    expected = _count_entries(shared_data / "fhir" / "bulk-10-patients")
    result = results["bulk-10-patients"]
    counts = result.ingested()
    assert {k: v for k, v in counts.items() if k not in ("notes", "dicom", "variants")} == dict(expected)
    assert counts["notes"] == 1215
    assert result.quarantined == []
    assert [s.source.endswith("log.ndjson") for s in result.skipped] == [True]


def test_lake_tables_match_inputs(both, shared_data: Path) -> None:
    store, _ = both
    lake = Lake(store)
    expected = _count_entries(shared_data / "fhir" / "synthea-r4") + _count_entries(
        shared_data / "fhir" / "bulk-10-patients"
    )
    rows = lake.query("SELECT resource_type, count(*) AS n FROM resources GROUP BY 1").to_pylist()
    assert {r["resource_type"]: r["n"] for r in rows} == dict(expected)
    docs = (shared_data / "fhir" / "bulk-10-patients" / "DocumentReference.000.ndjson").read_text().splitlines()
    subjects = {json.loads(line)["subject"]["reference"].split("/")[1] for line in docs}
    notes = lake.query(
        "SELECT count(*) AS n, count(DISTINCT patient_id) AS p, min(length(text)) AS shortest FROM notes"
    )
    row = notes.to_pylist()[0]
    assert (row["n"], row["p"]) == (1215, len(subjects)) and row["shortest"] > 20
    urn_refs = lake.query('SELECT count(*) AS n FROM resources WHERE json LIKE \'%"reference":"urn:%\'')
    assert urn_refs.to_pylist() == [{"n": 0}]


def test_synthea_references_are_type_id(both) -> None:
    store, _ = both
    lake = Lake(store)
    obs = lake.query(
        "SELECT json ->> '$.subject.reference' AS ref, patient_id FROM \"Observation\" LIMIT 50"
    ).to_pylist()
    assert obs and all(r["ref"] == f"Patient/{r['patient_id']}" for r in obs)
    patients = {r["id"] for r in lake.query('SELECT id FROM "Patient"').to_pylist()}
    orphans = lake.query(
        "SELECT count(*) AS n FROM resources"
        ' WHERE patient_id IS NOT NULL AND patient_id NOT IN (SELECT id FROM "Patient")'
    )
    assert orphans.to_pylist() == [{"n": 0}] and len(patients) == 39 + 13


def test_patient_resources(both) -> None:
    store, _ = both
    lake = Lake(store)
    pid = lake.query("SELECT patient_id FROM notes LIMIT 1").column(0)[0].as_py()
    table = lake.patient_resources(pid)
    types = set(table.column("resource_type").to_pylist())
    assert {"Patient", "Encounter", "DocumentReference"} <= types


def test_read_fhir_matches_ingest(shared_data: Path) -> None:
    batch = BatchResult()
    folder = shared_data / "fhir" / "synthea-r4"
    first = sorted(folder.iterdir())[0]
    items = list(read_fhir([first], batch))
    assert len(items) == len(json.loads(first.read_text())["entry"])
    patient = next(i for i in items if i.resource_type == "Patient")
    assert all(i.patient_id == patient.id for i in items if i.resource.get("subject"))
    assert all(i.where.startswith("entry ") for i in items) and batch.quarantined == []
