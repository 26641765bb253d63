"""DICOM, an attacker's sweep: one planted canary per place a name can hide beyond the header's
usual attributes (overlay planes and their labels, icon images and thumbnails in sequences,
encapsulated documents, curves, waveforms, graphic annotations, private tags inside sequences,
UIDs, study and procedure ids, ideographic and phonetic person names, archives). De-identified,
none survives in any byte or file name; with de-identification off the audit (or the research
gate) finds each and the research ingest lets nothing of it in."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from carelens.ingest.research import BatchRefused, ingest_research
from carelens.privacy.audit import audit
from carelens.privacy.burned_in import gate_dicom
from carelens.privacy.dicom import DicomOptions, deid_dicom_path
from carelens.privacy.keys import KeyService
from tests.privacy.conftest import CANARY as C
from tests.privacy.test_attacker_fhir import flate_pdf
from tests.privacy.test_dicom_canaries import _base, needs_tesseract

NAME = f"{C['family']}^{C['given']}"
NUMERIC_ID = "88421907"  # a second, all-digit patient id (OtherPatientIDs): it fits in a UID
IDEOGRAPHIC = "山田^太郎"
PHONETIC = "やまだ^たろう"


def _text_bits(words: str, rows: int, cols: int) -> np.ndarray:
    mask = Image.new("L", (cols, rows), 0)
    ImageDraw.Draw(mask).text((2, 2), words, fill=255, font=ImageFont.load_default(size=16))
    return (np.asarray(mask) > 127).astype(np.uint8)


def _overlay(ds: Dataset) -> None:
    bits = _text_bits(f"{C['family'].upper()} {C['mrn']}", 64, 128)
    ds.add_new(0x60000010, "US", 64)
    ds.add_new(0x60000011, "US", 128)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", pydicom.pixels.pack_bits(bits.ravel()))


def _overlay_labels(ds: Dataset) -> None:
    ds.add_new(0x60020022, "LO", f"drawn for {C['family']}")
    ds.add_new(0x60021500, "LO", C["mrn"])


def _icon(ds: Dataset) -> None:
    icon = Dataset()
    icon.Rows, icon.Columns, icon.SamplesPerPixel = 32, 128, 1
    icon.PhotometricInterpretation = "MONOCHROME2"
    icon.BitsAllocated, icon.BitsStored, icon.HighBit, icon.PixelRepresentation = 8, 8, 7, 0
    pixels = _text_bits(C["family"].upper(), 32, 128) * 255
    icon.PixelData = pixels.astype(np.uint8).tobytes()
    icon.ImageComments = C["family"]
    ds.IconImageSequence = Sequence([icon])


def _thumbnail_in_a_kept_sequence(ds: Dataset) -> None:
    item = Dataset()
    item.add_new(0x7FE00010, "OB", _text_bits(C["family"].upper(), 32, 128).tobytes() + C["family"].encode())
    ds.SharedFunctionalGroupsSequence = Sequence([item])


def _encapsulated_pdf(ds: Dataset) -> None:
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.DocumentTitle = "report"
    ds.EncapsulatedDocument = flate_pdf(f"Report for {C['given']} {C['family']} {C['mrn']}")


def _private_in_a_sequence(ds: Dataset) -> None:
    item = Dataset()
    item.private_block(0x0029, "ACME", create=True).add_new(0x10, "LO", f"{C['family']} {C['mrn']}")
    item.add_new(0x00291101, "UN", C["mrn"].encode())
    ds.SharedFunctionalGroupsSequence = Sequence([item])


def _graphic_annotation(ds: Dataset) -> None:
    text = Dataset()
    text.UnformattedTextValue = f"{C['given']} {C['family']}"
    text.BoundingBoxAnnotationUnits = "PIXEL"
    ann = Dataset()
    ann.GraphicLayer = "LAYER1"
    ann.TextObjectSequence = Sequence([text])
    ds.GraphicAnnotationSequence = Sequence([ann])


def _waveform(ds: Dataset) -> None:
    note = Dataset()
    note.UnformattedTextValue = f"ECG of {C['family']}"
    wave = Dataset()
    wave.WaveformData = f"{C['family']} {C['mrn']}".encode().ljust(32, b"\0")
    wave.NumberOfWaveformChannels, wave.NumberOfWaveformSamples, wave.WaveformBitsAllocated = 1, 16, 8
    ds.WaveformSequence = Sequence([wave])
    ds.WaveformAnnotationSequence = Sequence([note])


def _curve(ds: Dataset) -> None:
    ds.add_new(0x50003000, "OB", f"{C['family']}{C['mrn']}".encode())
    ds.add_new(0x50002500, "LO", C["family"])


def _ids(ds: Dataset) -> None:
    ds.StudyID = C["family"][:16]
    ds.AccessionNumber = C["mrn"]
    ds.RequestedProcedureID = f"{C['given']}"


def _uid(ds: Dataset) -> None:
    ds.SOPClassUID = f"1.2.840.10008.5.1.4.1.1.2.{NUMERIC_ID}"
    ref = Dataset()
    ref.ReferencedSOPClassUID = f"1.2.{NUMERIC_ID}"
    ref.ReferencedSOPInstanceUID = f"1.3.{NUMERIC_ID}.1"
    ds.SourceImageSequence = Sequence([ref])


def _ideographic(charset: str | list[str]) -> Callable[[Dataset], None]:
    def plant(ds: Dataset) -> None:
        ds.SpecificCharacterSet = charset
        ds.PatientName = f"{NAME}={IDEOGRAPHIC}={PHONETIC}"
        ds.SeriesDescription = f"CT {IDEOGRAPHIC.replace('^', '')} {PHONETIC.replace('^', ' ')}"
        ds.StudyDescription = IDEOGRAPHIC.split("^")[0] + "様"  # a two-letter family name inside a word

    return plant


def _lookup_table(ds: Dataset) -> None:
    ds.add_new(0x00281101, "US", [16, 0, 16])
    ds.add_new(0x00281201, "OW", f"{C['family']}.{C['mrn']}.".encode()[:32].ljust(32, b"\0"))


def _after_the_pixels(ds: Dataset) -> None:
    ds.PixelData = ds.PixelData + f"{C['family']} {C['mrn']} ".encode()


def _preamble(ds: Dataset) -> None:
    ds.preamble = f"{C['family']} {C['mrn']}".encode().ljust(128, b"\0")


def _high_bit_overlay(ds: Dataset) -> None:
    """An old-style overlay: text in bit 15 of 12-bit pixels (the decoded image masks it out)."""
    words = np.frombuffer(ds.PixelData, dtype="<u2") & 0x0FFF
    bits = np.zeros((int(ds.Rows), int(ds.Columns)), np.uint16)
    bits[:64, :] = _text_bits(f"{C['family'].upper()} {C['mrn']}", 64, int(ds.Columns)).astype(np.uint16) << 15
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
    ds.PixelData = (words | bits.ravel()).astype("<u2").tobytes()
    ds.add_new(0x60000102, "US", 15)


PLANTS: dict[str, Callable[[Dataset], None]] = {
    "overlay in the unused high bits of the pixels": _high_bit_overlay,
    "the 128-byte preamble": _preamble,
    "bytes in a kept lookup table": _lookup_table,
    "bytes after the image in PixelData": _after_the_pixels,
    "overlay plane with text (60xx,3000)": _overlay,
    "overlay description and label (60xx,0022/1500)": _overlay_labels,
    "Icon Image Sequence": _icon,
    "pixel data nested in a kept sequence": _thumbnail_in_a_kept_sequence,
    "Encapsulated Document (compressed PDF)": _encapsulated_pdf,
    "private and UN tags inside a sequence": _private_in_a_sequence,
    "Graphic Annotation text object": _graphic_annotation,
    "Waveform data and annotation": _waveform,
    "curve data and label (50xx)": _curve,
    "StudyID, AccessionNumber, RequestedProcedureID": _ids,
    "patient id digits in UIDs": _uid,
    "ideographic and phonetic name, UTF-8": _ideographic("ISO_IR 192"),
    "ideographic and phonetic name, ISO 2022 IR 87": _ideographic(["", "ISO 2022 IR 87"]),
}
CANARIES = [C["family"].lower(), C["given"].lower(), C["mrn"].lower(), NUMERIC_ID, "山田", "太郎", "やまだ", "たろう"]


def _identified(path: Path, plant: Callable[[Dataset], None]) -> Path:
    _base(path, plant)
    ds = pydicom.dcmread(path)
    ds.OtherPatientIDs = NUMERIC_ID
    ds.save_as(path)
    return path


def _leaks_in(root: Path) -> list[str]:
    """Canaries in any file name or byte under ``root`` (DICOM strings decoded in their character set)."""
    hits = []
    for path in root.rglob("*"):
        texts = [str(path.relative_to(root)).lower()]
        if path.is_file():
            raw = path.read_bytes()
            texts += [raw.decode("latin-1").lower(), raw.decode("utf-8", "replace")]
            ds = pydicom.dcmread(path)
            texts += [str(e.value).lower() for e in ds.iterall() if e.VR != "SQ"]
        hits += [c for c in CANARIES if any(c in t for t in texts)]
    return hits


@pytest.mark.parametrize("place", sorted(PLANTS))
def test_deidentified_dicom_holds_no_canary(place: str, tmp_path: Path, keys: KeyService) -> None:
    src = tmp_path / "src"
    source = _identified(src / NAME / f"{C['family']}_{C['mrn']}.dcm", PLANTS[place])
    out = tmp_path / "out"
    result = deid_dicom_path(src, out, keys, DicomOptions(clean_pixels=False))
    assert result.done["dicom"] == 1, result.quarantined
    assert _leaks_in(out) == [], place
    assert audit(out, source, keys).clean
    (new,) = list(out.rglob("*.dcm"))
    assert gate_dicom(new) is None  # nothing left that the research gate refuses


@pytest.mark.parametrize("place", sorted(PLANTS))
def test_the_audit_or_the_gate_finds_each_place_and_nothing_enters(place: str, tmp_path: Path,
                                                                   keys: KeyService) -> None:  # fmt: skip
    source = _identified(tmp_path / "source" / "id.dcm", PLANTS[place])
    leaky = tmp_path / "leaky"
    path = _identified(leaky / "x.dcm", PLANTS[place])
    ds = pydicom.dcmread(path)  # the patient's own attributes de-identified, the planted place not
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.OtherPatientIDs = "anon", "anon", "", "anon"
    ds.save_as(path)
    report = audit(leaky, source, keys)
    assert report.leaks, place
    assert all(C["family"].lower() not in (x.location + x.reason).lower() for x in report.leaks)
    try:
        result, _report = ingest_research([leaky], [source], tmp_path / "store")
    except BatchRefused:
        return
    assert result.done["dicom"] == 0 and result.quarantined  # the gate kept the instance out
    assert all(C["family"].lower() not in q.reason.lower() for q in result.quarantined)


def test_a_canary_in_an_archive_member_name_or_content_is_found(tmp_path: Path, keys: KeyService) -> None:
    source = _identified(tmp_path / "source" / "id.dcm", _ids)
    batch = tmp_path / "batch"
    batch.mkdir()
    with zipfile.ZipFile(batch / "images.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{C['family']}/a.txt", "nothing")
    with zipfile.ZipFile(batch / "notes.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.txt", f"seen {C['given']} " * 20)  # deflated: unreadable in the archive's bytes
    data = f"seen {C['given']}".encode()
    with tarfile.open(batch / "notes.tar.gz", "w:gz") as archive:
        info = tarfile.TarInfo("b.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    kinds = sorted({(x.value_kind, x.location.split(":")[0]) for x in audit(batch, source, keys).leaks})
    assert kinds == [("name", "images.zip"), ("name", "notes.tar.gz"), ("name", "notes.zip")]
    with pytest.raises(BatchRefused):
        ingest_research([batch], [source], tmp_path / "store")


@needs_tesseract
def test_text_on_one_frame_of_many_is_found_and_blanked(tmp_path: Path, keys: KeyService) -> None:
    src = tmp_path / "src"
    path = _base(src / "a.dcm")
    ds = pydicom.dcmread(path)
    frame = ds.pixel_array
    marked = frame.copy()
    stamp = _text_bits(f"{C['family'].upper()} 8842", 24, 112).astype(bool)
    marked[4:28, 4:116][stamp] = frame.max()
    ds.PixelData = np.stack([frame, marked, frame]).tobytes()
    ds.NumberOfFrames = 3
    ds.save_as(path)
    assert gate_dicom(path) is not None  # the gate reads every frame
    result = deid_dicom_path(src, tmp_path / "out", keys)
    assert result.done["dicom"] == 1, result.quarantined
    (new,) = list((tmp_path / "out").rglob("*.dcm"))
    assert gate_dicom(new) is None and pydicom.dcmread(new).pixel_array.shape[0] == 3


# Text a grey stretch of the whole range does not show and a viewer does: each writes a Secondary Capture whose
# canary a viewer renders plainly, and returns that rendering of any file written the same way.
STAMP = f"{C['family'].upper()} {C['mrn']}"


def _stamp(rows: int = 256, cols: int = 512) -> np.ndarray:
    mask = Image.new("L", (cols, rows), 0)
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 28)
    ImageDraw.Draw(mask).text((20, 100), STAMP, fill=255, font=font)
    return np.asarray(mask) > 127


def _capture(path: Path, photometric: str, bits: int, pixels: np.ndarray, **attributes: object) -> None:
    _base(path)
    ds = pydicom.dcmread(path)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = 3 if pixels.ndim == 3 else 1
    if pixels.ndim == 3:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    for name in ("RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth"):
        if name in ds:
            delattr(ds, name)
    for name, value in attributes.items():
        if name.endswith("Descriptor"):
            ds.add_new(name, "US", value)  # "US or SS" in the dictionary: a VR must be chosen to write it
        else:
            setattr(ds, name, value)
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)


def _isoluminant(path: Path) -> None:
    """Red-orange text whose mean of R, G and B is the grey background's."""
    rgb = np.full((256, 512, 3), 128, np.uint8)
    rgb[_stamp()] = (255, 64, 65)
    _capture(path, "RGB", 8, rgb)


def _windowed(path: Path) -> None:
    """Text three levels above the background of a 12-bit image, under a window six levels wide."""
    grey = np.full((256, 512), 1000, np.uint16)
    grey[0, 0], grey[-1, -1] = 0, 4095
    grey[_stamp()] = 1003
    _capture(path, "MONOCHROME2", 16, grey, BitsStored=12, HighBit=11, WindowCenter=1001, WindowWidth=6)


def _palette(path: Path) -> None:
    """Text in palette entry 101, red, on entry 100, grey: one level apart in the stored pixels."""
    index = np.full((256, 512), 100, np.uint8)
    index[0, 0], index[-1, -1] = 0, 255
    index[_stamp()] = 101
    grey = np.full(256, 0x8000, np.uint16)
    red, other = grey.copy(), grey.copy()
    red[101], other[101] = 0xFFFF, 0
    tables = {}
    for colour, table in (("Red", red), ("Green", other), ("Blue", other)):
        tables[f"{colour}PaletteColorLookupTableDescriptor"] = [256, 0, 16]
        tables[f"{colour}PaletteColorLookupTableData"] = table.tobytes()
    _capture(path, "PALETTE COLOR", 8, index, **tables)


def _modality_table(path: Path) -> None:
    """Text three levels above the background of a 12-bit image that the Modality LUT Sequence sets to white."""
    grey = np.full((256, 512), 1000, np.uint16)
    grey[0, 0], grey[-1, -1] = 0, 4095
    grey[_stamp()] = 1003
    table = np.arange(4096, dtype=np.uint16) // 2
    table[1003] = 4095
    item = Dataset()
    item.add_new("LUTDescriptor", "US", [4096, 0, 16])
    item.ModalityLUTType = "US"
    item.add_new("LUTData", "OW", table.tobytes())
    _capture(path, "MONOCHROME2", 16, grey, BitsStored=12, HighBit=11, ModalityLUTSequence=Sequence([item]))


def _speckled(path: Path) -> None:
    """White text on speckle (an ultrasound's): the noise's own marks hide the text's lines from the line detector."""
    grey = np.random.default_rng(0).normal(100, 20, (256, 512)).clip(0, 240).astype(np.uint8)
    grey[_stamp()] = 255
    _capture(path, "MONOCHROME2", 8, grey)


HIDDEN = {
    "on speckle": _speckled,
    "colour as bright as the grey": _isoluminant,
    "under the file's window": _windowed,
    "palette": _palette,
    "through the modality table": _modality_table,
}


def _as_shown(path: Path) -> str:
    """What OCR reads in the file as a viewer renders it (colour, palette and window applied)."""
    import pytesseract
    from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

    ds = pydicom.dcmread(path)
    shown = ds.pixel_array
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        shown = apply_color_lut(shown, ds)
    shown = shown[..., 0] if shown.ndim == 3 else apply_voi_lut(apply_modality_lut(shown, ds), ds)  # colour: red
    shown = shown.astype(float)
    grey = ((shown - shown.min()) / max(float(np.ptp(shown)), 1.0) * 255).astype(np.uint8)
    return pytesseract.image_to_string(Image.fromarray(grey), config="--psm 11").upper()


@needs_tesseract
@pytest.mark.parametrize("how", sorted(HIDDEN))
def test_text_a_grey_stretch_hides_is_refused_by_the_gate_and_blanked(how: str, tmp_path: Path,
                                                                      keys: KeyService) -> None:  # fmt: skip
    source = tmp_path / "src" / "a.dcm"
    HIDDEN[how](source)
    assert C["mrn"] in _as_shown(source)  # a viewer shows the canary
    assert gate_dicom(source) is not None
    result = deid_dicom_path(tmp_path / "src", tmp_path / "out", keys)
    assert result.done["dicom"] == 1, result.quarantined
    (new,) = list((tmp_path / "out").rglob("*.dcm"))
    shown = _as_shown(new)
    assert C["mrn"] not in shown and C["family"].upper() not in shown
    assert gate_dicom(new) is None
