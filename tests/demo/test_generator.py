"""The demo cohort generator: determinism, exact PHI spans, and planted facts that agree with
the FHIR, the notes, the DICOM files and the VCFs."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest

from carelens.demo import CohortManifest, generate_cohort
from carelens.demo.catalog import MRN_SYSTEM, SSN_SYSTEM

PHI_TYPES = {
    "NAME",
    "DATE",
    "PHONE",
    "FAX",
    "EMAIL",
    "URL",
    "IP",
    "SSN",
    "MRN",
    "ACCOUNT",
    "HEALTHPLAN",
    "LICENSE",
    "DEVICE",
    "VEHICLE",
    "ADDRESS",
    "CITY",
    "STATE",
    "ZIP",
    "HOSPITAL",
    "ORGANIZATION",
    "AGE",
    "ID",
}


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _resources(cohort: CohortManifest, patient_id: str) -> list[dict]:
    assert cohort.root is not None
    bundle = json.loads((cohort.root / cohort.patient(patient_id).fhir).read_bytes())
    return [e["resource"] for e in bundle["entry"]]


def _note_text(cohort: CohortManifest, note_id: str) -> str:
    assert cohort.root is not None
    return (cohort.root / "notes" / f"{note_id}.txt").read_text(encoding="utf-8")


def _of(resources: list[dict], kind: str) -> list[dict]:
    return [r for r in resources if r["resourceType"] == kind]


def test_same_seed_same_bytes_other_seed_other_cohort(tmp_path: Path, shared_data: Path) -> None:
    a = generate_cohort(tmp_path / "a", patients=2, seed=7, shared_data=shared_data)
    b = generate_cohort(tmp_path / "b", patients=2, seed=7, shared_data=shared_data)
    c = generate_cohort(tmp_path / "c", patients=2, seed=8, shared_data=shared_data, training_images=False)
    ha, hb, hc = _hashes(tmp_path / "a"), _hashes(tmp_path / "b"), _hashes(tmp_path / "c")
    assert ha == hb
    assert len(ha) > 20
    assert a.model_dump() == b.model_dump()
    assert {p.patient_id for p in a.patients}.isdisjoint(p.patient_id for p in c.patients)
    assert {p.phi.ssn for p in a.patients}.isdisjoint(p.phi.ssn for p in c.patients)
    assert hb["planted.json"] != hc["planted.json"]


def test_same_seed_same_bytes_across_processes(tmp_path: Path, shared_data: Path) -> None:
    """Nothing depends on the process (hash seed, clock): a fresh interpreter writes the same bytes."""
    import os
    import subprocess
    import sys

    generate_cohort(tmp_path / "here", patients=1, seed=11, shared_data=shared_data, training_images=False)
    code = "import sys; from carelens.demo import generate_cohort; generate_cohort(sys.argv[1], 1, 11, None, False)"
    env = {**os.environ, "PYTHONHASHSEED": "977", "CARELENS_SHARED_DATA": str(shared_data)}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "there")], env=env, check=True, timeout=300)
    assert _hashes(tmp_path / "here") == _hashes(tmp_path / "there")


def test_layout(cohort: CohortManifest) -> None:
    root = cohort.root
    assert root is not None
    for p in cohort.patients:
        assert (root / p.fhir).is_file() and p.fhir == f"fhir/{p.patient_id}.json"
        assert p.vcf and (root / p.vcf).is_file()
        assert p.images and all((root / i.path).is_file() for i in p.images)
        for n in p.notes:
            assert (root / "notes" / f"{n.note_id}.txt").is_file()
            assert (root / "notes" / f"{n.note_id}.phi.json").is_file()
    assert CohortManifest.load(root).model_dump() == cohort.model_dump()


def test_streamed_manifest_is_the_whole_manifest_dump(cohort: CohortManifest) -> None:
    """planted.json is written a patient at a time; its bytes are the whole model's JSON dump, and
    reading it back a patient at a time gives the same patients."""
    from carelens.demo import CohortCounts, planted_patients

    root = cohort.root
    assert root is not None
    assert (root / "planted.json").read_text() == cohort.model_dump_json(indent=1) + "\n"
    assert not (root / "planted.json.partial").exists()
    streamed = list(planted_patients(root))
    assert [p.model_dump() for p in streamed] == [p.model_dump() for p in cohort.patients]
    counts = CohortCounts()
    for p in streamed:
        counts.add(p)
    assert (counts.patients, counts.vcf) == (5, 5)
    assert counts.notes == sum(len(p.notes) for p in cohort.patients) > 5


def test_gold_spans_are_exact_and_cover_identifiers(cohort: CohortManifest) -> None:
    assert cohort.root is not None
    kinds = set()
    for p in cohort.patients:
        for n in p.notes:
            text = _note_text(cohort, n.note_id)
            spans = json.loads((cohort.root / "notes" / f"{n.note_id}.phi.json").read_text())
            assert len(spans) == n.phi_spans > 5
            last_end = 0
            for s in spans:
                assert text[s["start"] : s["end"]] == s["text"]
                assert s["type"] in PHI_TYPES
                assert s["start"] >= last_end, "spans overlap or are out of order"
                last_end = s["end"]
                kinds.add(s["type"])
                if s["type"] == "AGE":
                    assert int(s["text"]) > 89
                if s["type"] == "HOSPITAL":  # as real notes' gold: the name, not a closing generic "Hospital"
                    assert not s["text"].lower().endswith("hospital")
            covered = [False] * len(text)
            for s in spans:
                covered[s["start"] : s["end"]] = [True] * (s["end"] - s["start"])
            # every occurrence of the patient's and relatives' names, MRN and email is inside a gold span
            names = {p.phi.given, p.phi.family} | {part for r in p.phi.relatives for part in r.split()}
            for value in names | {p.mrn, p.phi.email}:
                for form in {value, value.upper()}:
                    for m in re.finditer(rf"\b{re.escape(form)}\b", text):
                        assert all(covered[m.start() : m.end()]), f"{n.kind} note leaves an identifier unlabelled"
            if n.all_caps:
                assert text == text.upper()
    assert {"NAME", "DATE", "PHONE", "MRN", "ADDRESS", "CITY", "ZIP", "HOSPITAL", "EMAIL", "AGE", "FAX"} <= kinds


def test_notes_equal_document_references(cohort: CohortManifest) -> None:
    loincs = set()
    for p in cohort.patients:
        docs = {d["id"]: d for d in _of(_resources(cohort, p.patient_id), "DocumentReference")}
        assert set(docs) == {n.document_id for n in p.notes}
        for n in p.notes:
            att = docs[n.document_id]["content"][0]["attachment"]
            assert att["contentType"].startswith("text/plain")
            text = _note_text(cohort, n.note_id)
            assert base64.b64decode(att["data"]).decode("utf-8") == text
            loincs.add(docs[n.document_id]["type"]["coding"][0]["code"])
    assert {"34117-2", "11506-3", "18842-5"} <= loincs
    assert any(n.all_caps for p in cohort.patients for n in p.notes)


def test_patient_identifiers(cohort: CohortManifest) -> None:
    for p in cohort.patients:
        patient = _of(_resources(cohort, p.patient_id), "Patient")[0]
        ids = {i["system"]: i["value"] for i in patient["identifier"]}
        assert ids[MRN_SYSTEM] == p.mrn and ids[SSN_SYSTEM] == p.phi.ssn
        assert patient["birthDate"] == p.phi.birth_date
        assert patient["name"][0]["family"] == p.phi.family
        assert {t["value"] for t in patient["telecom"]} >= {p.phi.phone, p.phi.email}


def test_bundle_references_resolve(cohort: CohortManifest) -> None:
    assert cohort.root is not None
    for p in cohort.patients:
        bundle = json.loads((cohort.root / p.fhir).read_bytes())
        assert bundle["type"] == "transaction"
        full_urls = {e["fullUrl"] for e in bundle["entry"]}
        assert all(e["fullUrl"] == f"urn:uuid:{e['resource']['id']}" for e in bundle["entry"])
        refs = re.findall(r'"reference": ?"([^"]+)"', json.dumps(bundle))
        assert refs and set(refs) <= full_urls


def test_planted_problems_meds_allergies_match_fhir(cohort: CohortManifest) -> None:
    for p in cohort.patients:
        res = _resources(cohort, p.patient_id)
        conditions = {c["id"]: c for c in _of(res, "Condition")}
        status = {cid: c["clinicalStatus"]["coding"][0]["code"] for cid, c in conditions.items()}
        assert {x.condition_id: x.status for x in p.problems} == status
        assert any(x.status == "active" for x in p.problems) and any(x.status == "resolved" for x in p.problems)
        for x in p.problems:
            assert conditions[x.condition_id]["code"]["coding"][0]["code"] == x.snomed
        meds = {m["id"]: m for m in _of(res, "MedicationRequest")}
        assert {x.request_id: x.status for x in p.medications} == {k: m["status"] for k, m in meds.items()}
        for x in p.medications:
            m = meds[x.request_id]
            assert m["medicationCodeableConcept"]["coding"][0]["code"] == x.rxnorm
            assert m["dosageInstruction"][0]["text"] == x.sig
            assert m["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] > 0
        allergies = _of(res, "AllergyIntolerance")
        assert p.no_known_allergies == (not allergies)
        assert {a["id"] for a in allergies} == {x.allergy_id for x in p.allergies}
        # mentions that must not become problems are not Conditions of the patient
        codes = {c["code"]["coding"][0]["code"] for c in conditions.values()}
        assert p.mentions and all(m.snomed not in codes for m in p.mentions)


def test_mentions_point_into_notes(cohort: CohortManifest) -> None:
    kinds = set()
    for p in cohort.patients:
        for m in p.mentions:
            text = _note_text(cohort, m.note_id)
            assert text[m.start : m.end] == m.text
            kinds.add(m.kind)
    assert kinds == {"negated", "family", "uncertain"}


def test_archetypes(cohort: CohortManifest) -> None:
    p0, p1, p2 = cohort.patients[:3]
    assert any(m.name == "warfarin" and m.status == "active" for m in p0.medications)
    assert any(
        a.substance == "penicillin" and a.criticality == "high" and "Anaphylaxis" in a.reaction for a in p0.allergies
    )
    assert any(r.name == "potassium" and r.value == 6.5 and r.interpretation == "HH" for r in p0.critical_results)
    assert p0.egfr_declining
    egfr = sorted(
        (o["effectiveDateTime"], o["valueQuantity"]["value"])
        for o in _of(_resources(cohort, p0.patient_id), "Observation")
        if o["code"]["coding"][0]["code"] == "33914-3"
    )
    assert egfr[0][1] - egfr[-1][1] > 20 and egfr[-1][1] < 60
    assert p1.no_known_allergies and p1.age > 89
    assert {"insulin"} <= {m.high_alert for m in p1.medications if m.status == "active"}
    assert {m.name for m in p1.medications if m.status == "stopped"} >= {"simvastatin"}
    assert any(m.high_alert == "opioid" for m in p2.medications)
    assert {x.gene: x.diplotype for x in p1.pgx}["CYP2C19"] == "*2/*2"
    assert {x.gene: x.diplotype for x in p2.pgx}["DPYD"] == "Reference/c.1905+1G>A (*2A)"


def test_dicom_headers_pixels_and_labels(cohort: CohortManifest) -> None:
    assert cohort.root is not None
    labels, burned = set(), set()
    for p in cohort.patients:
        for img in p.images:
            ds = pydicom.dcmread(cohort.root / img.path)
            assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
            assert ds.SOPInstanceUID == img.sop_instance_uid and pydicom.uid.UID(ds.SOPInstanceUID).is_valid
            assert ds.PatientID == p.mrn and ds.AccessionNumber == img.accession_number
            assert str(ds.PatientName).split("^")[0] == p.phi.family
            assert ds.PatientBirthDate == p.phi.birth_date.replace("-", "")
            assert p.phi.family.upper() in ds.StudyDescription
            assert ds.get_private_item(0x0011, 0x01, "CARELENS DEMO").value == p.phi.name
            px = ds.pixel_array
            assert px.shape == (256, 256) and px.dtype == np.uint16 and ds.PhotometricInterpretation == "MONOCHROME2"
            corner = px[:48, :140]
            assert (int(corner.max()) == 4095) == img.burned_in_text
            assert ds.BurnedInAnnotation == ("YES" if img.burned_in_text else "NO")
            labels.add(img.opacity)
            burned.add(img.burned_in_text)
    assert labels == {True, False} and burned == {True, False}


def test_training_images(cohort: CohortManifest) -> None:
    assert cohort.root is not None
    data = np.load(cohort.root / cohort.training_images)
    for split, n in (("train", 2400), ("val", 400), ("test", 600)):
        images, labels = data[f"{split}_images"], data[f"{split}_labels"]
        assert images.shape == (n, 64, 64) and images.dtype == np.uint8
        assert labels.shape == (n, 1) and set(np.unique(labels)) == {0, 1}
        assert abs(labels.mean() - 0.5) < 0.01
    # opacities make positives brighter in the lung fields on average
    imgs, lab = data["train_images"].astype(float), data["train_labels"].ravel()
    lungs = imgs[:, 20:42, 8:56].mean(axis=(1, 2))
    assert lungs[lab == 1].mean() > lungs[lab == 0].mean()


@pytest.mark.parametrize("bad", [0, -3])
def test_rejects_empty_cohort(tmp_path: Path, bad: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        generate_cohort(tmp_path, patients=bad)


def test_bundles_validate_as_fhir_r4(cohort: CohortManifest) -> None:
    from fhir.resources.R4B.bundle import Bundle

    assert cohort.root is not None
    for p in cohort.patients:
        data = json.loads((cohort.root / p.fhir).read_bytes())
        assert len(Bundle.model_validate(data).entry) == len(data["entry"])
    # the validation is real: a malformed Condition is refused
    broken = next(e["resource"] for e in data["entry"] if e["resource"]["resourceType"] == "Condition")
    broken["clinicalStatus"] = "active"
    with pytest.raises(ValueError):
        Bundle.model_validate(data)
