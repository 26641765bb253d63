"""``--format fhir``: an IPS document Bundle that parses with the FHIR R4B models."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from carelens.record import build_record, load_records, summarize
from carelens.record.fhir_document import to_ips_bundle

R4B = pytest.importorskip("fhir.resources.R4B.bundle")


def check_document(bundle: dict, summary) -> None:
    parsed = R4B.Bundle.model_validate(bundle)
    assert parsed.type == "document"
    composition = bundle["entry"][0]["resource"]
    assert composition["resourceType"] == "Composition"
    assert composition["type"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "60591-5",
        "display": "Patient summary Document",
    }
    urls = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    author = urls[composition["author"][0]["reference"]]
    assert author["resourceType"] == "Device" and "generated automatically" in author["note"][0]["text"]
    codes = [s["code"]["coding"][0]["code"] for s in composition["section"]]
    assert codes[-12:] == [s.code for s in summary.sections]
    for section in composition["section"]:
        assert "div" in section["text"]
        assert ("entry" in section) != ("emptyReason" in section)  # cmp-2: never both, never neither
        for entry in section.get("entry", []):
            assert entry["reference"] in urls
    cited = {c.resource for i in summary.items() for c in i.citations}
    included = {f"{r['resourceType']}/{r['id']}" for r in urls.values()}
    assert cited <= included


def test_small_record_document(small_resources):
    record = build_record(small_resources)
    summary = summarize(record, notes=False)
    bundle = to_ips_bundle(summary, record)
    check_document(bundle, summary)
    composition = bundle["entry"][0]["resource"]
    alerts = composition["section"][0]
    assert alerts["code"]["coding"][0]["code"] == "104605-1" and "warfarin" in alerts["text"]["div"].lower()
    devices = next(s for s in composition["section"] if s["code"]["coding"][0]["code"] == "46264-8")
    assert devices["emptyReason"]["coding"][0]["code"] == "unavailable"


def test_synthea_and_bulk_documents_parse(synthea_bundles, bulk_dir: Path):
    from carelens.record import load_record

    for path in synthea_bundles[:5]:
        record = load_record(path)
        summary = summarize(record, notes=False)
        check_document(to_ips_bundle(summary, record), summary)
    record = next(iter(load_records(bulk_dir)))
    summary = summarize(record)
    check_document(to_ips_bundle(summary, record), summary)


def test_cli_fhir_format(tmp_path: Path, small_resources):
    from typer.testing import CliRunner

    from carelens.cli import app

    bundle = tmp_path / "b.json"
    bundle.write_bytes(
        orjson.dumps(
            {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in small_resources]}
        )
    )
    out = tmp_path / "ips.json"
    result = CliRunner().invoke(app, ["summarize", str(bundle), "--no-notes", "--format", "fhir", "--out", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["type"] == "document"
    R4B.Bundle.model_validate(document)


def test_stated_absence_is_an_entry_and_unstated_is_an_empty_reason(small_resources):
    p = {"reference": "Patient/p1"}
    none = {
        "resourceType": "Condition",
        "id": "none",
        "subject": p,
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "160245001"}]},
    }
    record = build_record([small_resources[0], none])
    summary = summarize(record, notes=False)
    bundle = to_ips_bundle(summary, record)
    check_document(bundle, summary)
    by_code = {s["code"]["coding"][0]["code"]: s for s in bundle["entry"][0]["resource"]["section"]}
    problems, meds = by_code["11450-4"], by_code["10160-0"]
    urls = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    assert [urls[e["reference"]]["id"] for e in problems["entry"]] == ["none"]
    assert "no known problems" in problems["text"]["div"]
    assert meds["emptyReason"]["coding"][0]["code"] == "unavailable" and "no information" in meds["text"]["div"]
