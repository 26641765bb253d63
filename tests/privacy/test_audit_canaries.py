"""The leak audit: one planted canary per place an identifier can hide; the audit finds each in
an otherwise de-identified batch (and the research ingest refuses that batch), and finds none
once the batch is de-identified."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from carelens.ingest.research import BatchRefused, ingest_research
from carelens.privacy.audit import audit, audit_resources
from carelens.privacy.fhir import deid_fhir_path, iter_resources
from carelens.privacy.keys import KeyService
from tests.privacy.adversarial import PLACES, write_adversarial
from tests.privacy.conftest import CANARY as C

GIVEN, FAMILY = f"{C['given']}123", f"{C['family']}456"


def _b64(text: str, encoding: str = "utf-8") -> str:
    return base64.b64encode(text.encode(encoding)).decode()


def _of(bundle: dict, rtype: str) -> dict:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype)


def _ext(value_type: str, value: Any) -> Callable[[dict], None]:
    return lambda b: _of(b, "Patient").setdefault("extension", []).append({"url": "http://x.org/e", value_type: value})


# place -> how to plant the canary in a de-identified bundle
PLANTS: dict[str, Callable[[dict], None]] = {
    "presentedForm (Synthea 'Anna123' given name)": lambda b: _of(b, "DiagnosticReport").__setitem__(
        "presentedForm", [{"contentType": "text/plain", "data": _b64(f"H&P for {GIVEN.upper()} today")}]
    ),
    "note attachment, name spaced out": lambda b: _of(b, "DocumentReference").__setitem__(
        "content", [{"attachment": {"contentType": "text/plain", "data": _b64("seen: Q u i x l e y")}}]
    ),
    "utf-16 attachment": lambda b: _of(b, "DocumentReference").__setitem__(
        "content", [{"attachment": {"contentType": "text/plain", "data": _b64(f"{FAMILY} note", "utf-16")}}]
    ),
    "pdf attachment": lambda b: _of(b, "DocumentReference").__setitem__(
        "content", [{"attachment": {"contentType": "application/pdf", "data": _b64(f"%PDF-1.4 ({C['mrn']})")}}]
    ),
    "Media content": lambda b: _of(b, "Media").__setitem__(
        "content", {"contentType": "image/png", "data": _b64(f"\x89PNG\x00{FAMILY}\x00")}
    ),
    "valueAddress": _ext("valueAddress", {"line": [C["line"]]}),
    "valueHumanName": _ext("valueHumanName", {"family": FAMILY}),
    "valueIdentifier": _ext("valueIdentifier", {"value": C["mrn"]}),
    "valueContactPoint": _ext("valueContactPoint", {"value": C["phone"]}),
    "CodeableConcept.text": lambda b: _of(b, "Condition")["code"].__setitem__("text", f"SSN {C['ssn']}"),
    "coding.display": lambda b: _of(b, "Condition")["code"]["coding"][0].__setitem__("display", f"of {FAMILY}"),
    "Annotation.authorString": lambda b: _of(b, "Condition").__setitem__("note", [{"authorString": GIVEN}]),
    "Coverage.subscriberId": lambda b: _of(b, "Coverage").__setitem__("subscriberId", PLACES["coverage subscriberId"]),
    "Device.serialNumber": lambda b: _of(b, "Device").__setitem__("serialNumber", PLACES["device serial"]),
    "Device.udiCarrier": lambda b: _of(b, "Device").__setitem__("udiCarrier", [{"carrierHRF": PLACES["device udi"]}]),
    "RelatedPerson.name": lambda b: _of(b, "RelatedPerson").__setitem__("name", [{"text": PLACES["related person"]}]),
    "Bundle.link": lambda b: b.__setitem__("link", [{"url": f"http://fhir.example/Patient?family={FAMILY}"}]),
    "Bundle.meta": lambda b: b.__setitem__("meta", {"source": f"#{GIVEN}"}),
    "entry.response.location": lambda b: b["entry"][0].__setitem__("response", {"location": f"Patient?id={C['mrn']}"}),
    "telecom email": lambda b: _of(b, "Patient").__setitem__("telecom", [{"value": "zeb.quixley@mail.example"}]),
    "JSON key": lambda b: _of(b, "Observation").__setitem__(FAMILY, True),
    "name with a zero-width space": lambda b: _of(b, "Condition")["code"].__setitem__(
        "text", f"seen by {C['family'][:3]}\u200b{C['family'][3:]}"
    ),
    "MRN in full-width characters": _ext("valueString", "".join(chr(ord(c) + 0xFEE0) for c in C["mrn"])),
}


@pytest.fixture
def batch(tmp_path: Path, keys: KeyService) -> tuple[Path, Path]:
    src = write_adversarial(tmp_path)
    out = tmp_path / "batch"
    assert not deid_fhir_path(src, out, keys).quarantined
    return src, out


def test_the_deidentified_batch_is_clean(batch: tuple[Path, Path], keys: KeyService) -> None:
    src, out = batch
    report = audit(out, src, keys)
    assert report.clean, report.leaks
    assert {"name", "mrn", "ssn", "phone", "address", "device", "email", "birth_date"} <= set(report.identifiers)


@pytest.mark.parametrize("place", sorted(PLANTS))
def test_each_planted_canary_is_found_and_the_batch_refused(place: str, batch: tuple[Path, Path], keys: KeyService,
                                                            tmp_path: Path) -> None:  # fmt: skip
    src, out = batch
    (path,) = list(out.iterdir())
    bundle = json.loads(path.read_text())
    PLANTS[place](bundle)
    path.write_text(json.dumps(bundle))
    report = audit(out, src, keys)
    assert report.leaks, place
    assert all(leak.reason and C["family"].lower() not in leak.location.lower() for leak in report.leaks)
    with pytest.raises(BatchRefused):
        ingest_research([out], [src], tmp_path / "store")
    assert not (tmp_path / "store" / "research" / "lake").exists()


@pytest.mark.parametrize("name", [f"{FAMILY}.json", f"{C['given'].lower()}/x.json", f"MRN_{C['mrn']}.json"])
def test_file_and_folder_names_are_searched(name: str, batch: tuple[Path, Path], keys: KeyService) -> None:
    src, out = batch
    target = out / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("{}")
    kinds = {
        (leak.value_kind, leak.location.endswith(("file name", "folder name"))) for leak in audit(out, src, keys).leaks
    }
    assert kinds and all(by_name for _k, by_name in kinds)


def test_birth_dates_count_in_a_birth_context_of_their_own_patient(batch: tuple[Path, Path], keys: KeyService) -> None:
    src, out = batch
    notes = out / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text(f"Follow-up 2019-01-02; lab drawn {C['birth']}.\n")  # an equal date, not a birth date
    assert audit(out, src, keys).clean
    (notes / "b.txt").write_text(f"{keys.pseudonym('pat-adv-1')}: DOB 07/23/1951\n")
    leaks = audit(out, src, keys).leaks
    assert [(x.value_kind, x.location) for x in leaks] == [("birth_date", "notes/b.txt:line 1")]
    (notes / "b.txt").write_text(f"{keys.pseudonym('someone-else')}: DOB 07/23/1951\n")  # another patient's file
    assert audit(out, src, keys).clean


def test_a_note_is_its_patients_by_its_sidecar(batch: tuple[Path, Path], keys: KeyService) -> None:
    """The demo's research notes (``note-00059.txt`` and a ``.meta.json`` naming the patient's research id) held no
    pseudonym, so every patient's birth date was looked for in them: another patient's shifted birth date that fell
    on this one's (a chance of a few in a hundred runs) refused the demo's whole research batch."""
    src, out = batch
    notes = out / "notes"
    notes.mkdir()
    (notes / "note-00001.txt").write_text("Date of birth: 07/23/1951\n")
    leaks = audit(out, src, keys).leaks
    assert [(x.value_kind, x.location) for x in leaks] == [("birth_date", "notes/note-00001.txt:line 1")]
    (notes / "note-00001.meta.json").write_text(json.dumps({"patient_id": keys.pseudonym("someone-else")}))
    assert audit(out, src, keys).clean  # another patient's note: their shifted date, not this birth date
    (notes / "note-00001.meta.json").write_text(json.dumps({"patient_id": keys.pseudonym("pat-adv-1")}))
    leaks = audit(out, src, keys).leaks
    assert [(x.value_kind, x.location) for x in leaks] == [("birth_date", "notes/note-00001.txt:line 1")]


def test_the_research_ingest_tells_whose_output_a_file_is_with_the_key_it_is_given(
    batch: tuple[Path, Path], keys: KeyService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo keeps its site key beside the cohort, not in the environment: its research ingest audited with no
    key, so no file was anyone's and every birth date was looked for in every file."""
    monkeypatch.delenv("CARELENS_SECRET_FILE", raising=False)
    monkeypatch.delenv("CARELENS_SECRET", raising=False)
    src, out = batch
    notes = out / "notes"
    notes.mkdir()
    (notes / "note-00001.txt").write_text("Date of birth: 07/23/1951\n")  # another patient's shifted birth date
    (notes / "note-00001.meta.json").write_text(json.dumps({"patient_id": keys.pseudonym("someone-else")}))
    with pytest.raises(BatchRefused):
        ingest_research([out], [src], tmp_path / "store", processes=1)
    result, report = ingest_research([out], [src], tmp_path / "store", processes=1, keys=keys)
    assert report.clean and not result.quarantined


BIRTH_FORMS = ["Jul 23, 1951", "23-JUL-1951", "19510723", "١٩٥١-٠٧-٢٣", "07/23/1951"]  # one in Arabic-Indic digits


@pytest.mark.parametrize("written", BIRTH_FORMS, ids=lambda w: w.encode().hex()[:12])
def test_a_birth_date_is_found_in_any_form(batch: tuple[Path, Path], keys: KeyService, written: str) -> None:
    """The search reads only the pieces of a file holding the birth year, or digits of another script (which
    read as numbers too): each form the audit reads is found."""
    src, out = batch
    (out / "c.json").write_text(json.dumps({"id": keys.pseudonym("pat-adv-1"), "a": "2020", "note": f"born {written}"}))
    leaks = audit(out, src, keys).leaks
    assert [(x.value_kind, x.location) for x in leaks] == [("birth_date", "c.json:note")]


def test_the_issuer_of_a_dicom_patient_id_is_not_an_identifier_of_the_patient() -> None:
    """IssuerOfPatientID names the hospital that issued the id; a de-identified note that names the
    hospital is not a leak (the demo's research batch was refused for it), the id itself is."""
    from pydicom.dataset import Dataset

    from carelens.privacy.known import Known, add_dicom

    ds = Dataset()
    ds.PatientID, ds.IssuerOfPatientID, ds.PatientName = "48213377", "Mercy General Hospital", "Quill^Ottoline"
    known = Known()
    add_dicom(ds, known)
    note = "Seen at Mercy General Hospital today; family aware."
    assert known.scrub(note) == note
    assert known.scrub("MRN 4821-3377, Ms Quill") == "MRN [REDACTED], Ms [REDACTED]"


@pytest.mark.parametrize("place", sorted(PLANTS))
def test_the_in_memory_audit_finds_what_the_file_audit_finds(place: str, batch: tuple[Path, Path],
                                                             keys: KeyService) -> None:  # fmt: skip
    """``audit_resources`` (``carelens run``'s research step: one patient, nothing written) against the
    file audit of the same output and source: the same kinds of leak, none before the plant."""
    src, out = batch
    (path,) = list(out.iterdir())
    source = list(iter_resources([src]))
    patient_id = next(r["id"] for r in source if r["resourceType"] == "Patient")
    bundle = json.loads(path.read_text())
    assert audit_resources([bundle], source, patient_id).clean
    PLANTS[place](bundle)
    path.write_text(json.dumps(bundle))
    found = audit_resources([bundle], source, patient_id)
    assert found.leaks and found.files_scanned == 1
    assert {leak.value_kind for leak in found.leaks} == {leak.value_kind for leak in audit(out, src, keys).leaks}
