"""DICOM by allow-list: one planted canary per place (file meta, file and folder names, attributes
outside the table, UN and private tags, structured content, kept values, vertical and inverted
burned-in text); none survives, the audit finds each header canary, research ingest refuses it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from carelens.ingest.research import BatchRefused, ingest_research
from carelens.privacy.audit import audit
from carelens.privacy.burned_in import to_uint8
from carelens.privacy.dicom import DicomOptions, deid_dicom_path, find_text
from carelens.privacy.keys import KeyService
from tests.privacy.conftest import CANARY as C

needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="Debian tesseract-ocr not installed")
NAME = f"{C['family']}^{C['given']}"


def _content(ds: Dataset) -> None:
    item = Dataset()
    item.ValueType = "TEXT"
    item.TextValue = f"Reviewed with {C['given']} {C['family']}, MRN {C['mrn']}"
    ds.ContentSequence = [item]


def _unknown(ds: Dataset) -> None:
    ds.add_new(0x00231050, "UN", f"{C['family']} {C['mrn']}".encode())


PLANTS: dict[str, Callable[[Dataset], None]] = {
    "file meta: Source AE Title": lambda ds: setattr(ds.file_meta, "SourceApplicationEntityTitle", C["family"][:16]),
    "file meta: Private Information": lambda ds: (
        setattr(ds.file_meta, "PrivateInformationCreatorUID", "1.2.3.4"),
        setattr(ds.file_meta, "PrivateInformation", f"{NAME} {C['mrn']}".encode()),
    ),
    "Manufacturer (outside the table)": lambda ds: setattr(ds, "Manufacturer", f"{C['family']} Imaging"),
    "unknown tag of VR UN": _unknown,
    "TextValue in ContentSequence": _content,
    "kept value (BodyPartExamined)": lambda ds: setattr(ds, "BodyPartExamined", C["family"].upper()),
    "private tag": lambda ds: ds.private_block(0x0019, "ACME", create=True).add_new(0x10, "LO", C["mrn"]),
}


def _base(
    path: Path, plant: Callable[[Dataset], None] | None = None, text: tuple[str, int, bool] | None = None
) -> Path:
    """CT_small with the canary patient; ``text``: (words, rotation, dark-on-light) burned into the pixels."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName, ds.PatientID = NAME, C["mrn"]
    ds.PatientBirthDate = C["birth"].replace("-", "")
    ds.remove_private_tags()
    if plant:
        plant(ds)
    if text:
        words, rotation, dark = text
        arr = ds.pixel_array.copy()
        lo, hi = arr.min(), arr.max()
        mask = Image.new("L", (112, 24), 0)
        ImageDraw.Draw(mask).text((2, 2), words, fill=255, font=ImageFont.load_default(size=16))
        stamp = np.asarray(mask.rotate(rotation, expand=True)) > 127
        if dark:
            arr[:] = np.maximum(arr, int(np.percentile(arr, 90)))  # a light background
        y0, x0 = 4, 4
        arr[y0 : y0 + stamp.shape[0], x0 : x0 + stamp.shape[1]][stamp] = lo if dark else hi
        ds.PixelData = arr.tobytes()
        ds.BurnedInAnnotation = "YES"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _fhir_free_source(tmp_path: Path) -> Path:
    src = tmp_path / "source"
    _base(src / "id.dcm")
    return src


@pytest.mark.parametrize("place", sorted(PLANTS))
def test_header_canary_removed_found_and_refused(place: str, tmp_path: Path, keys: KeyService) -> None:
    src = tmp_path / "src"
    _base(src / NAME / f"{C['family']}_{C['given']}_{C['mrn']}.dcm", PLANTS[place])
    out = tmp_path / "out"
    result = deid_dicom_path(src, out, keys, DicomOptions(clean_pixels=False))
    assert result.done["dicom"] == 1, result.quarantined
    (new,) = list(out.rglob("*.dcm"))
    assert C["family"].lower() not in str(new).lower() and C["mrn"] not in str(new)  # names are pseudonyms
    raw = new.read_bytes().lower()
    for canary in (C["family"].lower(), C["given"].lower(), C["mrn"].lower()):
        assert canary.encode() not in raw, (place, canary)
    assert audit(out, _fhir_free_source(tmp_path), keys).clean
    # the audit finds the canary in the identified file (de-identification off) and ingest refuses it
    leaky = tmp_path / "leaky"
    _base(leaky / "x.dcm", PLANTS[place])
    ds = pydicom.dcmread(leaky / "x.dcm")
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "anon", "anon", ""
    ds.save_as(leaky / "x.dcm")
    report = audit(leaky, _fhir_free_source(tmp_path), keys)
    assert report.leaks, place
    with pytest.raises(BatchRefused):
        ingest_research([leaky], [_fhir_free_source(tmp_path)], tmp_path / "store")


def test_file_and_folder_names_are_found_by_the_audit(tmp_path: Path, keys: KeyService) -> None:
    leaky = tmp_path / "leaky"
    _base(leaky / NAME / "a.dcm")
    ds = pydicom.dcmread(leaky / NAME / "a.dcm")
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "anon", "anon", ""
    ds.save_as(leaky / NAME / "a.dcm")
    locations = [leak.location for leak in audit(leaky, _fhir_free_source(tmp_path), keys).leaks]
    assert locations and all(C["family"] not in loc for loc in locations)
    assert any("folder name" in loc for loc in locations)


@needs_tesseract
@pytest.mark.parametrize("rotation,dark", [(90, False), (0, True)], ids=["vertical", "dark-on-light"])
def test_burned_in_text_in_any_orientation_and_polarity_is_blanked(rotation: int, dark: bool, tmp_path: Path,
                                                                   keys: KeyService) -> None:  # fmt: skip
    src = tmp_path / "src"
    _base(src / "a.dcm", text=("QUIXLEY 8842", rotation, dark))
    before = pydicom.dcmread(src / "a.dcm")
    assert find_text(to_uint8(before.pixel_array))  # the planted text is there to find
    result = deid_dicom_path(src, tmp_path / "out", keys)
    assert result.done["dicom"] == 1, result.quarantined
    (new,) = list((tmp_path / "out").rglob("*.dcm"))
    after = pydicom.dcmread(new)
    assert find_text(to_uint8(after.pixel_array)) == []
    assert after.BurnedInAnnotation == "NO"  # only said after the check found nothing


@needs_tesseract
def test_text_found_with_parallel_ocr_is_what_one_call_at_a_time_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _base(tmp_path / "a.dcm", text=("QUIXLEY 8842", 90, False))
    img = to_uint8(pydicom.dcmread(tmp_path / "a.dcm").pixel_array)
    monkeypatch.setenv("CARELENS_OCR_THREADS", "1")
    one_at_a_time = find_text(img)
    monkeypatch.setenv("CARELENS_OCR_THREADS", "3")
    assert one_at_a_time and find_text(img) == one_at_a_time


@needs_tesseract
def test_ocr_leaves_this_process_openmp_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # OMP_THREAD_LIMIT=1 is tesseract's alone: in this process it made torch's later training compute NaN
    monkeypatch.delenv("OMP_THREAD_LIMIT", raising=False)
    _base(tmp_path / "a.dcm", text=("QUIXLEY 8842", 0, True))
    assert find_text(to_uint8(pydicom.dcmread(tmp_path / "a.dcm").pixel_array))
    assert "OMP_THREAD_LIMIT" not in os.environ


def test_unchecked_pixels_are_not_called_clean(tmp_path: Path, keys: KeyService) -> None:
    src = tmp_path / "src"
    _base(src / "a.dcm", text=("QUIXLEY", 0, False))
    deid_dicom_path(src, tmp_path / "out", keys, DicomOptions(clean_pixels=False))
    (new,) = list((tmp_path / "out").rglob("*.dcm"))
    assert pydicom.dcmread(new).BurnedInAnnotation == "YES"


def test_group_0002_is_rebuilt(tmp_path: Path, keys: KeyService) -> None:
    src = tmp_path / "src"
    _base(src / "a.dcm", PLANTS["file meta: Source AE Title"])
    deid_dicom_path(src, tmp_path / "out", keys, DicomOptions(clean_pixels=False))
    (new,) = list((tmp_path / "out").rglob("*.dcm"))
    meta = pydicom.dcmread(new).file_meta
    assert sorted(e.keyword for e in meta if e.keyword != "FileMetaInformationGroupLength") == sorted([
        "FileMetaInformationVersion", "MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID", "TransferSyntaxUID",
        "ImplementationClassUID", "ImplementationVersionName"])  # fmt: skip


@needs_tesseract
def test_audit_reads_burned_in_text_unless_told_not_to(tmp_path: Path, keys: KeyService) -> None:
    leaky = tmp_path / "leaky"
    _base(leaky / "a.dcm", text=("QUIXLEY 8842", 90, False))
    source = _fhir_free_source(tmp_path)
    assert not any(x.value_kind == "burned_in_text" for x in audit(leaky, source, keys, pixels=False).leaks)
    found = [x for x in audit(leaky, source, keys).leaks if x.value_kind == "burned_in_text"]
    assert [x.location for x in found] == ["a.dcm:PixelData"]
    out = tmp_path / "out"
    deid_dicom_path(leaky, out, keys)
    assert audit(out, source, keys).clean
