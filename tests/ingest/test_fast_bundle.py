"""The fast bundle reader (msgspec slices) against the general one (orjson objects)."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from carelens.core import BatchResult
from carelens.ingest import fhir, ingest
from carelens.store import Lake
from tests.ingest.makefiles import bundle, observation, patient


def _general(data: bytes) -> tuple[list[fhir.FhirRow], list[tuple[str, str]], set[bytes]]:
    batch, found = BatchResult(), set[bytes]()
    rows = fhir._read_bundle(orjson.loads(data), "x", batch, found)
    return rows, [(q.where, q.reason) for q in batch.quarantined], found


def _fast(data: bytes) -> tuple[list[fhir.FhirRow], list[tuple[str, str]], set[bytes]] | None:
    batch, found = BatchResult(), set[bytes]()
    rows = fhir._read_bundle_fast(data, "x", batch, found)
    return None if rows is None else (rows, [(q.where, q.reason) for q in batch.quarantined], found)


def _same(fast: list[fhir.FhirRow], general: list[fhir.FhirRow]) -> None:
    assert [(r.key, r.patient_id, r.where) for r in fast] == [(r.key, r.patient_id, r.where) for r in general]
    assert [orjson.loads(r.json) for r in fast] == [orjson.loads(r.json) for r in general]


def test_synthea_bundles_read_the_same_both_ways(shared_data: Path) -> None:
    files = sorted((shared_data / "fhir" / "synthea-r4").glob("*.json"))[:8]
    assert files
    for path in files:
        data = path.read_bytes()
        fast = _fast(data)
        assert fast is not None, path.name
        rows, quarantined, found = _general(data)
        _same(fast[0], rows)
        assert fast[1] == quarantined
        assert fast[2] == found


def test_missing_urn_target_and_pretty_printing() -> None:
    doc = bundle(patient("p1"), observation("o1", "urn:uuid:p1"), observation("o2", "urn:uuid:gone"))
    data = json.dumps(doc, indent=3).encode()
    fast = _fast(data)
    assert fast is not None
    rows, quarantined, _ = _general(data)
    _same(fast[0], rows)
    assert fast[1] == quarantined == [("entry 2", "reference to a resource missing from the bundle")]
    assert b" " not in fast[0][1].json  # compact, as the general reader writes it


def test_escaped_full_url_reference_stays_valid_json() -> None:
    doc = bundle(patient("p1"), observation("o1", "urn:uuid:p\\1"))  # ids cannot hold a backslash; fullUrls can
    doc["entry"][0]["fullUrl"] = "urn:uuid:p\\1"
    rows, quarantined, _ = _general(json.dumps(doc).encode())
    assert quarantined == []
    fast = _fast(json.dumps(doc).encode())  # the escape is rewritten away, so the fast reader may take it
    assert fast is not None
    _same(fast[0], rows)
    assert orjson.loads(rows[1].json)["subject"] == {"reference": "Patient/p1"}
    assert rows[1].patient_id == "p1"


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["entry"][1]["resource"].update(subject="Patient/p1"),  # not an object
        lambda d: d["entry"][1]["resource"].pop("id"),  # id only in fullUrl
        lambda d: d["entry"][1]["resource"].update(resourceType=""),
        lambda d: d["entry"].append({"request": {"method": "DELETE"}}),  # no resource
        lambda d: d.update(resourceType="Patient", id="p9"),  # not a bundle
    ],
)
def test_unusual_bundles_take_the_general_reader(change) -> None:
    doc = bundle(patient("p1"), observation("o1", "urn:uuid:p1"))
    change(doc)
    assert _fast(json.dumps(doc).encode()) is None


def test_bad_utf8_past_the_binary_sniff_is_quarantined(tmp_path: Path) -> None:
    doc = bundle(patient("p1"), observation("o1", "urn:uuid:p1"))
    doc["entry"][1]["resource"]["note"] = [{"text": "x" * 20_000 + "@"}]
    data = json.dumps(doc).encode().replace(b"@", b"\xff")
    assert _fast(data) is None
    path = tmp_path / "bad.json"
    path.write_bytes(data)
    result = ingest([path], tmp_path / "store")
    assert result.done == {}
    assert [(q.where, q.reason.split(" at ")[0]) for q in result.quarantined] == [("file", "malformed JSON")]
    assert Lake(tmp_path / "store").read_table("resources").num_rows == 0


def test_bundle_of_bad_entries_only(tmp_path: Path) -> None:
    doc = {"resourceType": "Bundle", "entry": [{"resource": {"id": "x"}}, {"fullUrl": "urn:uuid:y"}]}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    result = ingest([path], tmp_path / "store")
    assert result.done == {}
    assert [(q.where, q.reason) for q in result.quarantined] == [
        ("entry 0", "entry without resourceType"),
        ("entry 1", "entry without resource"),
    ]
