"""The research zone's burned-in text gate: research ingest and the audit check DICOM pixels
themselves. Names burned in horizontally, vertically or dark on light are quarantined (the reason
never holds the text) while the rest of the batch goes in; a real radiograph with its own
annotations passes; pixels that cannot be decoded are not called clean."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom.uid import JPEGBaseline8Bit

from carelens.core.config import shared_data_dir
from carelens.ingest.research import ingest_research
from carelens.privacy.audit import audit
from carelens.privacy.burned_in import (
    allowed,
    gate_dicom,
    gate_pixels,
    image_to_data,
    images_to_data,
    text_lines,
    to_uint8,
)
from carelens.privacy.dicom import deid_dicom_path
from carelens.privacy.keys import KeyService
from tests.privacy.conftest import CANARY as C
from tests.privacy.test_dicom_canaries import _base, _fhir_free_source

needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="Debian tesseract-ocr not installed")
CR = (shared_data_dir() or Path("/nonexistent")) / "imaging" / "chest-cr-rsna.dcm"
needs_cr = pytest.mark.skipif(not CR.exists(), reason=f"shared radiograph {CR} absent")
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
WORDS = f"{C['family'].upper()}^{C['given'].upper()} {C['mrn']}"


def _radiograph(path: Path, words: str | None = None, rotation: int = 0, dark: bool = False) -> Path:
    """The shared CR chest radiograph (header made anonymous), ``words`` burned in at 28 px:
    white on the image, or ``dark`` letters on a light label; ``rotation`` in degrees."""
    ds = pydicom.dcmread(CR)
    ds.decompress()
    ds.PatientName, ds.PatientID = "anon", "anon"
    arr = ds.pixel_array.copy()
    if words:
        face = ImageFont.truetype(str(FONT), 28) if FONT.exists() else ImageFont.load_default(size=28)
        ink = Image.new("L", (20 + int(face.getlength(words)), 44), 0)
        ImageDraw.Draw(ink).text((10, 6), words, font=face, fill=255)
        label = Image.new("L", ink.size, 255).rotate(rotation, expand=True)
        stamp = np.asarray(ink.rotate(rotation, expand=True)) > 127
        y, x = (620, 40) if rotation == 0 else (300, 950)
        region = arr[y : y + stamp.shape[0], x : x + stamp.shape[1]]
        if dark:
            region[np.asarray(label) > 127] = 235
        region[stamp] = 10 if dark else 254
        ds.BurnedInAnnotation = "NO"  # the attacker's claim
    ds.PixelData = arr.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


VARIANTS = {"horizontal": (0, False), "vertical": (90, False), "vertical-270": (270, False), "dark-on-light": (0, True)}


@needs_cr
@needs_tesseract
def test_research_ingest_quarantines_burned_in_names(tmp_path: Path) -> None:
    batch = tmp_path / "batch"
    _radiograph(batch / "clean.dcm")
    for name, (rotation, dark) in VARIANTS.items():
        _radiograph(batch / f"{name}.dcm", WORDS, rotation, dark)
    result, report = ingest_research([batch], [_fhir_free_source(tmp_path)], tmp_path / "store", processes=1)
    assert report.clean  # headers hold nothing of the source: the pixels are the gate's
    assert result.done["dicom"] == 1  # the clean radiograph went in
    assert sorted(Path(q.source).stem for q in result.quarantined) == sorted(VARIANTS)
    for q in result.quarantined:
        assert q.where == "PixelData" and "burned-in text" in q.reason and "\n" not in q.reason
        assert not any(w.lower() in q.reason.lower() for w in (C["family"], C["given"], C["mrn"]))


@needs_cr
def test_a_real_radiograph_with_its_own_annotations_passes(tmp_path: Path) -> None:
    assert gate_pixels(pydicom.dcmread(CR).pixel_array).reason is None


@needs_tesseract
def test_the_gate_refuses_text_in_each_orientation_and_polarity(tmp_path: Path) -> None:
    assert gate_dicom(_base(tmp_path / "plain.dcm")) is None  # a CT slice: no text-like line, no OCR
    for n, text in enumerate([("QUIXLEY 8842", 0, False), ("QUIXLEY 8842", 90, False),
                              ("QUIXLEY 8842", 270, False), ("QUIXLEY 8842", 0, True)]):  # fmt: skip
        reason = gate_dicom(_base(tmp_path / f"{n}.dcm", text=text))
        assert reason and "QUIXLEY" not in reason.upper() and "8842" not in reason, text


@needs_tesseract
def test_an_allowed_annotation_passes_and_a_name_does_not(tmp_path: Path) -> None:
    assert text_lines(to_uint8(pydicom.dcmread(_base(tmp_path / "a.dcm", text=("PORTABLE", 0, False))).pixel_array))
    assert gate_dicom(tmp_path / "a.dcm") is None  # read as an annotation of the allow-list
    assert gate_dicom(_base(tmp_path / "b.dcm", text=("QUIXLEY", 0, False))) is not None


def test_allow_list_matching() -> None:
    assert allowed(["PORTABLE"]) and allowed(["AP", "Supine"]) and allowed(["L"])
    assert allowed(["PORTAGE"]) and allowed(["RTABLE"]) and allowed(["POR", "TAREE"])  # misread or cut annotations
    for words in (["QUIXLEY"], ["Zebulon"], ["88421907"], ["AP", "SMITH"], ["DOE"], ["12/03/1961"]):
        assert not allowed(words), words


def test_pixels_that_cannot_be_decoded_are_quarantined(tmp_path: Path) -> None:
    batch = tmp_path / "batch"
    path = _base(batch / "a.dcm")
    ds = pydicom.dcmread(path)
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "anon", "anon", ""
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit  # claims JPEG; holds raw samples
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8not a jpeg"])
    ds.save_as(path, enforce_file_format=True)
    reason = gate_dicom(path)
    assert reason and "cannot be decoded" in reason
    result, _report = ingest_research([batch], [_fhir_free_source(tmp_path)], tmp_path / "store", processes=1)
    assert result.done["dicom"] == 0 and [q.reason for q in result.quarantined] == [reason]


@needs_tesseract
def test_the_audit_gates_pixels_by_default(tmp_path: Path, keys: KeyService) -> None:
    leaky = tmp_path / "leaky"
    _base(leaky / "a.dcm", text=("QUIXLEY 8842", 90, False))
    source = _fhir_free_source(tmp_path)
    (leak,) = [x for x in audit(leaky, source, keys).leaks if x.value_kind == "burned_in_text"]
    assert leak.location == "a.dcm:PixelData" and "QUIXLEY" not in leak.reason
    assert not any(x.value_kind == "burned_in_text" for x in audit(leaky, source, keys, pixels=False).leaks)
    out = tmp_path / "out"
    assert deid_dicom_path(leaky, out, keys).done["dicom"] == 1
    assert audit(out, source, keys).clean  # blanked by the de-identifier: the gate finds no line left
    result, _report = ingest_research([out], [source], tmp_path / "store", processes=1)
    assert result.done["dicom"] == 1 and not result.quarantined


def test_a_failing_check_fails_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import carelens.privacy.burned_in as burned_in

    def broken(_img: object) -> list[object]:
        raise OSError("tesseract died")

    monkeypatch.setattr(burned_in, "text_lines", broken)
    assert gate_dicom(_base(tmp_path / "a.dcm")) == "the pixels could not be checked for burned-in text (OSError)"


def _small_text(text: str, size: int = 9) -> np.ndarray:
    """``text`` in white at ``size`` px (capitals about 7 px high, digits touching) on a grey ramp."""
    img = Image.fromarray(np.tile(np.linspace(40, 120, 256, dtype=np.uint8), (256, 1)))
    mono = FONT.with_name("DejaVuSansMono.ttf")
    face = ImageFont.truetype(str(mono), size) if mono.exists() else ImageFont.load_default(size=size)
    ImageDraw.Draw(img).text((170, 10), text, font=face, fill=255)
    return np.asarray(img)


def test_tiny_text_with_merged_letters_is_a_line() -> None:
    boxes = [line.box for line in text_lines(_small_text("DOE 8663004"))]
    assert any(x <= 172 and x + w >= 225 and y < 20 for x, y, w, _h in boxes), boxes  # the whole text, one line


def test_a_word_like_line_read_as_stray_letters_or_a_faint_number_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import carelens.privacy.burned_in as burned_in

    img = _small_text("DOE 8663004")
    monkeypatch.setattr(burned_in.shutil, "which", lambda _name: "/usr/bin/tesseract")
    strong = burned_in.TextLine((170, 10, 60, 8), vertical=False, bright=True, marks=6)
    weak = burned_in.TextLine((170, 10, 60, 8), vertical=False, bright=True, marks=3)
    for line, read, failed in ((strong, [("l", 30.0), ("i", 20.0)], True),  # single letters are no annotation
                               (weak, [("8663004", 50.0)], True),  # a number read with some confidence
                               (weak, [("ee", 50.0)], False),  # noise on anatomy
                               (strong, [("PORTABLE", 40.0)], False)):  # fmt: skip
        monkeypatch.setattr(burned_in, "text_lines", lambda _img, line=line: [line])
        monkeypatch.setattr(burned_in, "read_line", lambda _img, _line, read=read: read)
        assert (burned_in.gate_frame(img).reason is not None) == failed, (line.marks, read)


def _faint_small(ink: int | None, background: int) -> np.ndarray:
    """A 256 px frame spanning the whole grey range (a black and a white block, so stretching to
    the frame's range gains nothing) with a soft bright body; ``ink`` (None: no text) burned in
    at 9 px on a corner ``background`` only 22-23 grey levels away from it (near-black or near-white)."""
    yy, xx = np.mgrid[0:256, 0:256]
    base = background + 120 * np.exp(-((xx - 128) ** 2 / 3000 + (yy - 150) ** 2 / 6000))
    base[200:240, 200:240], base[200:240, 10:50] = 255, 0
    img = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    if ink is not None:
        face = ImageFont.truetype(str(FONT), 9) if FONT.exists() else ImageFont.load_default(size=9)
        ImageDraw.Draw(img).text((8, 8), f"{C['family'].upper()} {C['mrn']}", font=face, fill=ink)
    return np.asarray(img)


@needs_tesseract
@pytest.mark.parametrize(("ink", "background"), [(0, 22), (255, 232)], ids=["dark-on-black", "white-on-white"])
def test_small_faint_text_on_a_small_frame_fails_and_the_clean_frame_passes(ink: int, background: int) -> None:
    assert gate_pixels(_faint_small(ink, background)).reason is not None
    assert gate_pixels(_faint_small(None, background)).reason is None


@needs_tesseract
def test_images_read_in_one_tesseract_process_give_each_image_its_own_words() -> None:
    """Several images go to one tesseract process as the pages of one TIFF: each page's words are the words of
    its image read alone, in the image's order (a blank image in between keeps its place)."""

    def card(text: str) -> Image.Image:
        img = Image.new("L", (420, 90), 255)
        ImageDraw.Draw(img).text((12, 18), text, fill=0, font=ImageFont.truetype(str(FONT), 36))
        return img

    images = [card("ALPHA RIVER"), Image.new("L", (300, 80), 255), card("BRAVO 4721")]
    pages = images_to_data(images, "--psm 11")
    words = [[w for w in page["text"] if w.strip()] for page in pages]
    assert words == [["ALPHA", "RIVER"], [], ["BRAVO", "4721"]]
    alone = [image_to_data(img, "--psm 11") for img in images]
    for page, read in zip(pages, alone, strict=True):
        assert {k: v for k, v in page.items() if k != "page_num"} == {k: v for k, v in read.items() if k != "page_num"}
    assert images_to_data([], "--psm 11") == []
