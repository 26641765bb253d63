"""End to end on the demo cohort: every modality de-identified, the audit finds nothing in the
output and finds the planted identifiers in the source."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from carelens.privacy.audit import audit
from carelens.privacy.dicom import deid_dicom_path
from carelens.privacy.fhir import deid_fhir_path, load_patients
from carelens.privacy.keys import KeyService
from carelens.privacy.text import deid_text_path
from carelens.privacy.vcf import deid_vcf

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    demo = pytest.importorskip("carelens.demo")
    if not hasattr(demo, "generate_cohort"):
        pytest.skip("carelens.demo.generate_cohort not available")
    out = tmp_path_factory.mktemp("cohort")
    demo.generate_cohort(out, patients=2, seed=11, training_images=False)
    return out


def test_cohort_all_modalities_clean(cohort: Path, tmp_path: Path) -> None:
    keys = KeyService(b"cohort-e2e-secret-0123456789abcdef")
    out = tmp_path / "deid"
    patients = load_patients([cohort / "fhir"], keys)
    notes = deid_text_path(cohort / "notes", out / "notes", keys, lambda p: patients.get(p.stem))
    assert notes.done["notes"] > 0 and not notes.quarantined
    for spans in (out / "notes").glob("*.phi.json"):
        spans.unlink()  # the spans file quotes the input on purpose: it stays in the clinical zone
    fhir = deid_fhir_path(cohort / "fhir", out / "fhir", keys)
    assert fhir.done["resources"] > 0 and not fhir.quarantined
    if shutil.which("tesseract") and (cohort / "dicom").exists():
        dicom = deid_dicom_path(cohort / "dicom", out / "dicom", keys, patients=patients)
        assert dicom.done["dicom"] > 0, dicom.quarantined
    for vcf in sorted((cohort / "genomics").glob("*.vcf.gz")):
        pid = vcf.name.split(".")[0]
        deid_vcf(vcf, out / "genomics" / f"{keys.pseudonym(pid)}.vcf.gz", keys, lambda _s, pid=pid: pid)
    source = tmp_path / "source"
    shutil.copytree(cohort, source, ignore=shutil.ignore_patterns("*.phi.json", "planted.json"))
    report = audit(out, source)
    assert report.identifiers["name"] > 0 and report.identifiers["mrn"] > 0
    assert report.clean, report.leaks[:20]
    leaky = audit(source, source)
    kinds = {leak.value_kind for leak in leaky.leaks}
    assert {"name", "mrn", "phone", "birth_date"} <= kinds
    planted = json.loads((cohort / "planted.json").read_text())
    mrns = [p["mrn"] for p in planted["patients"]]
    assert all(m not in json.dumps(report.as_dict()) for m in mrns)
