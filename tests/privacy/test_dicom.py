"""DICOM de-identification: Annex E table, options, UIDs, burned-in text, bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom.data import get_testdata_file

from carelens.privacy.audit import audit
from carelens.privacy.dicom import DicomOptions, action_for, basic_profile, deid_dicom_path
from carelens.privacy.keys import KeyService
from tests.privacy.conftest import CANARY

C = CANARY
needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="Debian tesseract-ocr not installed")


def _phi_dicom(path: Path, burn: bool, instance: int = 1) -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName = f"{C['family']}^{C['given']}"
    ds.PatientID = C["mrn"]
    ds.OtherPatientIDs = C["ssn"]
    ds.PatientBirthDate = C["birth"].replace("-", "")
    ds.PatientAddress = f"{C['line']}, {C['city']}, MA {C['zip']}"
    ds.PatientTelephoneNumbers = C["phone"]
    ds.InstitutionName = "Wellfleet Memorial Hospital"
    ds.ReferringPhysicianName = "Kowalski^Anna"
    ds.StudyDescription = f"CT CHEST {C['family'].upper()}, {C['given'].upper()}"
    ds.StudyDate = "20190723"
    ds.InstanceNumber = instance
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.2.1125.{instance}"
    block = ds.private_block(0x0011, "CANARY", create=True)
    block.add_new(0x01, "LO", f"{C['given']} {C['family']}")
    if burn:
        arr = ds.pixel_array.copy()
        mask = Image.new("L", (arr.shape[1], arr.shape[0]), 0)
        ImageDraw.Draw(mask).text((4, 4), f"{C['family'].upper()}\nMRN {C['mrn']}", fill=255,
                                  font=ImageFont.load_default(size=11))  # fmt: skip
        arr[np.asarray(mask) > 127] = arr.max()
        ds.PixelData = arr.tobytes()
    ds.save_as(path)


def test_table_is_the_whole_annex_e_with_options() -> None:
    table = basic_profile()
    assert len(table) > 600
    assert table["00100010"]["basic"] == "Z" and table["00080018"]["basic"] == "U"
    plain = DicomOptions(retain_dates_modified=False, retain_patient_chars=False, clean_descriptors=False)
    assert action_for(0x00100040, "PatientSex", "CS", plain) == "Z"
    assert action_for(0x00100040, "PatientSex", "CS", DicomOptions()) == "K"
    assert action_for(0x00080020, "StudyDate", "DA", DicomOptions()) == "C"
    assert action_for(0x00080020, "StudyDate", "DA", plain) == "Z"
    assert action_for(0x00081030, "StudyDescription", "LO", DicomOptions()) == "C"
    assert action_for(0x00081030, "StudyDescription", "LO", plain) == "X"
    assert action_for(0x60003000, "OverlayData", "OW", plain) == "X"


def test_rows_without_option_columns_are_listed_and_take_the_stricter_basic_action() -> None:
    import json
    from importlib import resources

    data = json.loads(resources.files("carelens.privacy").joinpath("data/annex_e_profile.json").read_text())
    listed = set(data["rows_without_option_columns"]["tags"])
    table = basic_profile()
    assert listed <= set(table) and len(listed) == 224
    assert all(not table[tag].get("options") for tag in listed)
    # an option only keeps or cleans what the Basic Profile removes, empties or replaces: Basic is never laxer
    assert {a for row in table.values() for a in row.get("options", {}).values()} <= {"K", "C", "X"}
    plain = DicomOptions(retain_dates_modified=False, retain_patient_chars=False, clean_descriptors=False,
                         clean_structured_content=False)  # fmt: skip
    for tag in sorted(listed):
        assert action_for(int(tag, 16), "", "LO", DicomOptions()) == action_for(int(tag, 16), "", "LO", plain), tag


@needs_tesseract
def test_dicom_deid_headers_uids_pixels_and_audit(tmp_path: Path, keys: KeyService) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _phi_dicom(src / "a.dcm", burn=True, instance=1)
    _phi_dicom(src / "b.dcm", burn=False, instance=2)
    (src / "nopixels.dcm").write_bytes(b"")
    ds = pydicom.dcmread(src / "b.dcm")
    del ds.PixelData
    ds.save_as(src / "nopixels.dcm")
    out = tmp_path / "out"
    result = deid_dicom_path(src, out, keys)
    assert result.done["dicom"] == 2
    assert [(Path(q.source).name, q.reason) for q in result.quarantined] == [
        ("nopixels.dcm", "no pixel data: burned-in text cannot be checked")
    ]
    assert not (out / "nopixels.dcm").exists()
    name = {n: keys.pseudonym(C["mrn"]) + "/" + keys.hash_hex("dicom-file", n, 24) + ".dcm" for n in ("a.dcm", "b.dcm")}
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.dcm")) == sorted(name.values())
    a, b = pydicom.dcmread(out / name["a.dcm"]), pydicom.dcmread(out / name["b.dcm"])
    original = pydicom.dcmread(src / "a.dcm")
    assert a.PatientIdentityRemoved == "YES"
    codes = [item.CodeValue for item in a.DeidentificationMethodCodeSequence]
    assert {"113100", "113101", "113105", "113107", "113108"} <= set(codes)
    assert a.PatientID == keys.pseudonym(C["mrn"]) == b.PatientID
    assert a.StudyInstanceUID == b.StudyInstanceUID == keys.uid(original.StudyInstanceUID)
    assert a.SOPInstanceUID != b.SOPInstanceUID and a.SOPInstanceUID.startswith("2.25.")
    assert a.PatientSex == original.PatientSex  # retain patient characteristics
    assert a.StudyDate != "20190723" and len(a.StudyDate) == 8  # shifted, kept
    assert "PatientAddress" not in a and not any(e.tag.is_private for e in a)
    assert C["family"].upper() not in str(a.get("StudyDescription", "")).upper()
    assert audit(out, src).clean, audit(out, src).leaks
    assert {leak.value_kind for leak in audit(src, src).leaks} >= {"name", "mrn", "birth_date"}
    import pytesseract

    def read(path: Path) -> str:
        arr = pydicom.dcmread(path).pixel_array.astype(float)
        img = ((arr - arr.min()) / (arr.max() - arr.min()) * 255).astype("uint8")
        bright = np.where(img >= img.max() - 8, 0, 255).astype("uint8")
        return pytesseract.image_to_string(Image.fromarray(bright).resize((512, 512)), config="--psm 11")

    assert "MRN" in read(src / "a.dcm").upper()  # the canary is readable before
    assert "MRN" not in read(out / name["a.dcm"]).upper() and C["mrn"] not in read(out / name["a.dcm"])


def test_unreadable_compressed_pixels_quarantined(tmp_path: Path, keys: KeyService) -> None:
    src = tmp_path / "src"
    src.mkdir()
    ds = pydicom.dcmread(get_testdata_file("JPEG2000.dcm"))
    ds.PixelData = ds.PixelData[:200]
    ds.save_as(src / "broken.dcm")
    (src / "notdicom.dcm").write_text("hello")
    result = deid_dicom_path(src, tmp_path / "out", keys, DicomOptions())
    assert result.done["dicom"] == 0 and len(result.quarantined) == 2
    assert not list((tmp_path / "out").rglob("*")) if (tmp_path / "out").exists() else True


def test_a_file_the_cleaner_cannot_make_valid_or_fails_on_is_quarantined_and_the_batch_goes_on(
    tmp_path: Path, keys: KeyService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DICOM without SOPInstanceUID ended ``deid dicom`` with "internal error (AttributeError)", the files after it
    unwritten; pydicom's warnings about odd values printed the values (a birth date) on stderr."""
    import warnings

    from carelens.privacy import dicom as dicom_mod

    src = tmp_path / "src"
    src.mkdir()
    for name, instance in (("a.dcm", 1), ("b.dcm", 2), ("c.dcm", 3), ("d.dcm", 4)):
        _phi_dicom(src / name, burn=False, instance=instance)
    ds = pydicom.dcmread(src / "a.dcm")
    del ds.SOPInstanceUID
    ds.save_as(src / "a.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(src / "c.dcm")
        ds.PatientBirthDate = "1987O723"  # no DA value: pydicom warns, quoting it
        ds.save_as(src / "c.dcm")
    real = dicom_mod.deid_dicom_file

    def failing(path: Path, target: Path, deid: object) -> object:
        if path.name == "b.dcm":
            raise KeyError(C["family"])  # a cleaner bug whose message holds PHI
        return real(path, target, deid)  # type: ignore[arg-type]

    monkeypatch.setattr(dicom_mod, "deid_dicom_file", failing)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = deid_dicom_path(src, tmp_path / "out", keys, DicomOptions(clean_pixels=False))
    assert result.done["dicom"] == 2
    assert sorted((Path(q.source).name, q.reason) for q in result.quarantined) == [
        ("a.dcm", "DICOM header lacks SOPInstanceUID: no valid copy can be written"),
        ("b.dcm", "internal error (KeyError); nothing written"),
    ]
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 2
    assert not [w for w in caught if "1987O723" in str(w.message)]


@needs_tesseract
def test_a_compressed_file_keeps_its_remapped_instance_uid_from_run_to_run(tmp_path: Path, keys: KeyService) -> None:
    """Decompressing for the OCR must not give the instance a new random UID: the research copy of an instance would
    be another instance at every run, and nothing that references it (an SR, a read) would find it."""
    from pydicom.uid import RLELossless

    src = tmp_path / "src"
    src.mkdir()
    _phi_dicom(src / "a.dcm", burn=False)
    ds = pydicom.dcmread(src / "a.dcm")
    ds.compress(RLELossless)
    ds.save_as(src / "a.dcm")
    uids = set()
    for run in ("first", "second"):
        assert deid_dicom_path(src, tmp_path / run, keys).done["dicom"] == 1
        (out,) = (tmp_path / run).rglob("*.dcm")
        copy = pydicom.dcmread(out)
        assert copy.file_meta.MediaStorageSOPInstanceUID == copy.SOPInstanceUID
        uids.add(copy.SOPInstanceUID)
    assert uids == {keys.uid(ds.SOPInstanceUID)}


@pytest.mark.parametrize("folder", ["rgb", "MONOCHROME2"])
def test_a_folder_named_like_a_photometric_interpretation_leaves_the_image_readable(
    folder: str, tmp_path: Path, keys: KeyService
) -> None:
    """Words of a file's folder are looked for as names in every kept string; the pixels' enumerated photometric
    interpretation is no name, and removing it (it was written empty) left an image no viewer can read."""
    src = tmp_path / "src" / folder
    src.mkdir(parents=True)
    _phi_dicom(src / "a.dcm", burn=False)
    ds = pydicom.dcmread(src / "a.dcm")
    if folder == "rgb":
        ds.PhotometricInterpretation, ds.SamplesPerPixel, ds.PlanarConfiguration = "RGB", 3, 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = np.zeros((ds.Rows, ds.Columns, 3), np.uint8).tobytes()
        ds.save_as(src / "a.dcm")
    out = tmp_path / "out"
    assert deid_dicom_path(tmp_path / "src", out, keys, DicomOptions(clean_pixels=False)).done["dicom"] == 1
    (copy,) = [pydicom.dcmread(p) for p in out.rglob("*.dcm")]
    assert copy.PhotometricInterpretation == ds.PhotometricInterpretation
    assert copy.pixel_array.shape == ds.pixel_array.shape
