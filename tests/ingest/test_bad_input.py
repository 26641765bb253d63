"""Bad input is quarantined with a one-line, PHI-free reason; the rest of the batch goes on."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from carelens.ingest import IngestResult, ingest
from carelens.store import Lake
from tests.ingest.makefiles import (
    CANARY,
    VCF_HEADER,
    VCF_LINES,
    bundle,
    doc_ref,
    observation,
    patient,
    write_json,
    write_ndjson,
    write_vcf,
)

# (file, where, words the reason must contain)
EXPECTED = {
    ("no_type.json", "entry 1", "without resourceType"),
    ("dangling.json", "entry 0", "missing from the bundle"),
    ("truncated.json", "file", "truncated JSON"),
    ("binary.json", "file", "binary"),
    ("resources.ndjson", "line 2", "missing from the batch (Patient)"),
    ("resources.ndjson", "line 3", "truncated JSON"),
    ("resources.ndjson", "line 5", "without resourceType"),
    ("pdf_doc.ndjson", "line 1", "application/pdf"),
    ("binary.txt", "file", "binary"),
    ("cut.dcm", "file", "truncated DICOM"),
    ("calls.vcf", "line 7", "POS is not a number"),
    ("grch37.vcf", "file", "non-GRCh38"),
    ("contig37.vcf.gz", "file", "non-GRCh38"),
}


def make_batch(folder: Path) -> int:
    """Write good and bad files; return the number of input items (entries, lines, files, records)."""
    write_json(
        folder / "good.json",
        bundle(patient("P1"), observation("O1", "urn:uuid:P1"), doc_ref("D1", "urn:uuid:P1", "Denies chest pain.")),
    )
    write_json(
        folder / "no_type.json", bundle(patient("P2"), {"id": "X", "name": CANARY}, observation("O2", "urn:uuid:P2"))
    )
    write_json(folder / "dangling.json", bundle(observation("O3", "urn:uuid:nothere"), patient("P3")))
    whole = json.dumps(bundle(patient("P4"), observation("O4", "urn:uuid:P4")))
    (folder / "truncated.json").write_text(whole[: len(whole) // 2])
    (folder / "binary.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00" + CANARY.encode() + bytes(range(256)))
    lines = [
        json.dumps(observation("O5", "Patient/P1")),
        json.dumps(observation("O6", "Patient/missing")),
        json.dumps(observation("O7", "Patient/P9"))[:40],
        json.dumps(observation("O8", "Patient/P9")),
        json.dumps({"id": "Y", "note": CANARY}),
    ]
    (folder / "resources.ndjson").write_text("\n".join(lines) + "\n")
    write_ndjson(folder / "zz_patients.ndjson", patient("P9"))
    write_ndjson(folder / "pdf_doc.ndjson", doc_ref("D2", "Patient/P1", CANARY, content_type="application/pdf"))
    (folder / "note.txt").write_text(f"Pt seen today with {CANARY}. Denies fever.")
    write_json(folder / "note.meta.json", {"patient_id": "P1", "date": "2021-02-03", "type": "nursing note"})
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02" + CANARY.encode())
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName = CANARY
    ds.save_as(folder / "image.dcm")
    data = (folder / "image.dcm").read_bytes()
    (folder / "cut.dcm").write_bytes(data[: len(data) - 5000])
    write_vcf(
        folder / "calls.vcf", [VCF_LINES[0], f"chr10\tABC\t.\tG\tA\t.\tPASS\t.\tGT\t0/1\t{CANARY}", *VCF_LINES[1:]]
    )
    write_vcf(folder / "grch37.vcf", header=VCF_HEADER.replace("GRCh38", "GRCh37"))
    text = (
        VCF_HEADER.replace("##reference=GRCh38\n", "").replace("133797422", "135534747") + "\n".join(VCF_LINES) + "\n"
    )
    (folder / "contig37.vcf.gz").write_bytes(gzip.compress(text.encode()))
    (folder / "README.md").write_text("not data")
    bundle_entries = 3 + 3 + 2
    return bundle_entries + 2 + len(lines) + 1 + 1 + 2 + 2 + 4 + 1 + 1


def _where(result: IngestResult) -> set[tuple[str, str, str]]:
    found = set()
    for q in result.quarantined:
        match = [e for e in EXPECTED if Path(q.source).name == e[0] and q.where == e[1] and e[2] in q.reason]
        found.add(match[0] if match else (Path(q.source).name, q.where, q.reason))
    return found


@pytest.fixture
def batch(tmp_path: Path) -> tuple[Path, int]:
    folder = tmp_path / "in"
    folder.mkdir()
    return folder, make_batch(folder)


def test_each_bad_item_quarantined_rest_ingested(batch: tuple[Path, int], tmp_path: Path) -> None:
    folder, items_in = batch
    result = ingest([folder], tmp_path / "store")
    assert _where(result) == EXPECTED
    counts = result.ingested()
    assert counts["Patient"] == 4 and counts["Observation"] == 4  # P1 P2 P3 P9; O1 O2 O5 O8
    assert counts["DocumentReference"] == 1 and counts["notes"] == 2 and counts["dicom"] == 1
    assert counts["variants"] == 3  # VCF records (two samples each: 6 rows)
    resources = sum(v for k, v in counts.items() if k not in ("notes", "dicom", "variants"))
    assert resources + result.text_notes + counts["dicom"] + counts["variants"] + len(result.quarantined) == items_in
    assert result.text() == f"ingested {items_in - len(EXPECTED)}, quarantined {len(EXPECTED)}"
    assert [Path(s.source).name for s in result.skipped] == ["README.md", "note.meta.json"]
    assert result.exit_code == 3


def test_quarantine_table_and_rows(batch: tuple[Path, int], tmp_path: Path) -> None:
    folder, _ = batch
    store = tmp_path / "store"
    ingest([folder], store)
    lake = Lake(store)
    rows = lake.query('SELECT source, "where", reason FROM quarantine').to_pylist()
    assert len(rows) == len(EXPECTED)
    note = lake.query("SELECT patient_id, type, text FROM notes WHERE source LIKE '%note.txt'").to_pylist()
    assert note[0]["patient_id"] == "P1" and note[0]["type"] == "nursing note" and "Denies fever" in note[0]["text"]
    variants = lake.query(
        "SELECT sample, pos, gt, phased, \"where\" FROM variants WHERE source LIKE '%calls.vcf' ORDER BY pos, sample"
    )
    assert [r["where"] for r in variants.to_pylist()][:2] == ["line 8", "line 8"]
    assert ("S2", 94781859, "1|1", True) in [
        (r["sample"], r["pos"], r["gt"], r["phased"]) for r in variants.to_pylist()
    ]
    dicom = lake.query("SELECT modality, rows, path, content_hash, patient_id FROM dicom_instances").to_pylist()
    assert dicom[0]["modality"] == "CT" and dicom[0]["rows"] == 128 and dicom[0]["path"].endswith("image.dcm")
    assert lake.query("SELECT instances FROM dicom_studies").to_pylist() == [{"instances": 1}]
    links = lake.query("SELECT dicom_patient_id, fhir_patient_id FROM dicom_patient_links").to_pylist()
    assert links == [{"dicom_patient_id": dicom[0]["patient_id"], "fhir_patient_id": None}]


def test_no_phi_in_output_or_stderr(batch: tuple[Path, int], tmp_path: Path) -> None:
    folder, _ = batch
    env = {**os.environ, "CARELENS_PROGRESS": "1", "CARELENS_STORE": str(tmp_path / "store")}
    proc = subprocess.run(
        [sys.executable, "-c", "from carelens.cli import main; main()", "ingest", str(folder)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert CANARY not in proc.stdout and CANARY not in proc.stderr
    assert "Zebediah" not in proc.stderr and "ingest" in proc.stderr  # the progress bar was there
    out = json.loads(proc.stdout)
    assert len(out["quarantined"]) == len(EXPECTED) and out["ingested"]["notes"] == 2
    assert f"quarantined {len(EXPECTED)}" in proc.stderr.splitlines()[-1]
    assert all("\n" not in q["reason"] for q in out["quarantined"])
