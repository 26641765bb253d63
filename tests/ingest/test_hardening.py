"""Hostile input: deep nesting, bad ids, BOMs, reruns of quarantined files, kind in the hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carelens.core.quarantine import BatchResult
from carelens.ingest import IngestResult, ingest
from carelens.ingest.fhir import read_fhir_file
from carelens.store import Lake
from tests.ingest.makefiles import bundle, observation, patient, write_json, write_ndjson


def _items(result: IngestResult) -> int:
    return sum(result.ingested().values()) - result.done.get("notes", 0) + len(result.quarantined)


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deep_nesting_is_quarantined_not_fatal(depth: int, tmp_path: Path) -> None:
    deep = "[" * depth + "]" * depth
    (tmp_path / "deep.json").write_text('{"resourceType":"Patient","id":"a","x":' + deep + "}")
    (tmp_path / "top.json").write_text(deep)
    deeper = "[" * (depth + 1024) + "]" * (depth + 1024)  # past orjson's own limit too
    (tmp_path / "lines.ndjson").write_text(json.dumps(patient("L1")) + "\n" + '{"x":' + deeper + "}\n")
    write_json(tmp_path / "good.json", bundle(patient("P1"), observation("O1", "urn:uuid:P1")))
    result = ingest([tmp_path], tmp_path / "store", processes=1)
    reasons = {(Path(q.source).name, q.where): q.reason for q in result.quarantined}
    assert "nested too deeply" in reasons[("deep.json", "file")]
    assert "nested too deeply" in reasons[("top.json", "file")]
    assert "nested too deeply" in reasons[("lines.ndjson", "line 2")]
    assert result.ingested()["Patient"] == 2 and result.ingested()["Observation"] == 1
    assert _items(result) == 3 + 3  # good: 2 + 1 line; quarantined: 3


@pytest.mark.parametrize(
    "bad_id", ["../../etc/passwd", "x" * 10_000, "a/b", "", "has space", "ü", "a" * 65], ids=lambda v: v[:12]
)
def test_ids_must_be_fhir_ids(bad_id: str, tmp_path: Path) -> None:
    bad = patient("P9")
    bad["id"] = bad_id
    write_json(tmp_path / "b.json", bundle(patient("P1"), bad))
    write_ndjson(tmp_path / "n.ndjson", patient("P2"), bad)
    result = ingest([tmp_path], tmp_path / "store", processes=1)
    assert result.ingested()["Patient"] == 2
    where = sorted((Path(q.source).name, q.where) for q in result.quarantined)
    assert where == [("b.json", "entry 1"), ("n.ndjson", "line 2")]
    assert not bad_id or all(bad_id not in q.reason for q in result.quarantined)  # reasons never quote data


def test_resource_type_must_be_a_type_name(tmp_path: Path) -> None:
    batch = BatchResult()
    path = tmp_path / "r.json"
    write_json(path, {"resourceType": "../Patient", "id": "a"})
    assert read_fhir_file(path, batch) == []
    assert "resource type" in batch.quarantined[0].reason


def test_fhir_id_limits_accepted(tmp_path: Path) -> None:
    write_json(tmp_path / "ok.json", bundle(patient("A-b.9" + "x" * 59)))  # 64 characters
    assert ingest([tmp_path], tmp_path / "store").ingested()["Patient"] == 1


def test_utf8_bom_accepted(tmp_path: Path) -> None:
    bom = b"\xef\xbb\xbf"
    (tmp_path / "b.json").write_bytes(bom + json.dumps(bundle(patient("P1"))).encode())
    (tmp_path / "r.json").write_bytes(bom + json.dumps(patient("P2")).encode())
    (tmp_path / "n.ndjson").write_bytes(bom + json.dumps(patient("P3")).encode() + b"\n")
    (tmp_path / "note.txt").write_bytes(bom + b"Denies chest pain.")
    result = ingest([tmp_path], tmp_path / "store")
    assert result.quarantined == []
    assert result.ingested()["Patient"] == 3 and result.ingested()["notes"] == 1
    texts = Lake(tmp_path / "store").read_table("notes", ["text"]).column(0).to_pylist()
    assert texts == ["Denies chest pain."]


def test_rerun_reports_earlier_quarantine(tmp_path: Path) -> None:
    data = tmp_path / "in"
    data.mkdir()
    write_json(data / "mixed.json", bundle(patient("P1"), {"id": "X"}))
    (data / "broken.json").write_text("{")
    store = tmp_path / "store"
    first = ingest([data], store)
    again = ingest([data], store)
    assert first.exit_code == again.exit_code == 3
    assert again.unchanged == 2 and sum(again.done.values()) == 0
    key = sorted((Path(q.source).name, q.where, q.reason) for q in first.quarantined)
    assert sorted((Path(q.source).name, q.where, q.reason) for q in again.quarantined) == key
    third = ingest([data], store)  # reported every time, not only once
    assert len(third.quarantined) == 2


def test_duplicate_in_one_batch_reported_once(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{")
    (tmp_path / "b.json").write_text("{")
    result = ingest([tmp_path], tmp_path / "store")
    assert result.unchanged == 1 and len(result.quarantined) == 1


def test_content_hash_covers_kind(tmp_path: Path) -> None:
    (tmp_path / "empty.json").write_bytes(b"")
    (tmp_path / "empty.dcm").write_bytes(b"")
    result = ingest([tmp_path / "empty.json", tmp_path / "empty.dcm"], tmp_path / "store")
    assert result.unchanged == 0
    assert sorted(Path(q.source).name for q in result.quarantined) == ["empty.dcm", "empty.json"]


def test_temporary_files_stay_in_the_store_and_a_killed_runs_are_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system_tmp = tmp_path / "tmp"
    system_tmp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(system_tmp))
    store = tmp_path / "store"
    left = store / "lake" / "_scratch" / "files"  # as a killed ingest leaves it: the inputs' names
    left.parent.mkdir(parents=True)
    left.write_text("/data/Zebulon_Canaryfield_1961.json")
    folder = tmp_path / "in"
    folder.mkdir()
    write_json(folder / "b.json", bundle(patient("p1"), observation("o1", "p1")))
    assert ingest([folder], store, processes=1).ingested()["Patient"] == 1
    assert not left.parent.exists() and list(system_tmp.iterdir()) == []


def test_a_number_no_float_holds_is_quarantined_not_stored(tmp_path: Path) -> None:
    """1e999 passed the fast bundle reader and was stored; every later read of the row (summary, de-identification,
    ``read_fhir``) then ended in "internal error (JSONDecodeError)"."""
    text = json.dumps(bundle(patient("P1"), patient("P2"), patient("P3"), patient("P4")))
    text = text.replace('"id": "P1"', '"id": "P1", "multipleBirthInteger": 1e999', 1)
    text = text.replace('"id": "P2"', '"id": "P2", "multipleBirthInteger": ' + "9" * 400, 1)
    text = text.replace('"id": "P3"', '"id": "P3", "gender": "1e999 and 1E+400 as text"', 1)
    (tmp_path / "b.json").write_text(text)
    result = ingest([tmp_path], tmp_path / "store", processes=1)
    assert [(q.where, q.reason) for q in result.quarantined] == [
        ("entry 0", "a number too large for a 64-bit float"),
        ("entry 1", "a number too large for a 64-bit float"),
    ]
    stored = Lake(tmp_path / "store").query("SELECT id, json FROM resources ORDER BY id").to_pylist()
    assert [row["id"] for row in stored] == ["P3", "P4"] and all(json.loads(row["json"]) for row in stored)
