# ruff: noqa: E501
"""DICOM de-identification: the PS3.15 Annex E Basic Application Level Confidentiality
Profile (the whole attribute table, ``data/annex_e_basic_profile.json``) with the options
Retain Longitudinal Temporal Information with Modified Dates (the patient's date shift),
Retain Patient Characteristics and Clean Descriptors (the text de-identifier), consistent UID
remapping (keyed hash under ``2.25``), private tags removed, and burned-in text found by OCR
(tesseract), blanked and checked by a second OCR pass (Clean Pixel Data).

Every file is written to a temporary name and renamed, so nothing half-written is left as if
it were clean; a file that cannot be made clean is quarantined with a one-line reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from carelens.core.quarantine import BatchResult
from carelens.privacy.context import PatientContext
from carelens.privacy.keys import KeyService
from carelens.privacy.text import deidentify_text

# CID 7050 De-identification Method codes (DCM)
CODES = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "clean_pixel": ("113101", "Clean Pixel Data Option"),
    "clean_descriptors": ("113105", "Clean Descriptors Option"),
    "retain_dates_modified": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "retain_patient_chars": ("113108", "Retain Patient Characteristics Option"),
}
PATIENT_CHARACTERISTICS_KEEP = {
    "PatientSex", "PatientAge", "PatientSize", "PatientWeight", "EthnicGroup", "SmokingStatus", "PregnancyStatus",
    "PatientSexNeutered", "PatientSpeciesDescription", "PatientBreedDescription", "PatientSpeciesCodeSequence",
    "PatientBreedCodeSequence", "PatientSizeCodeSequence",
}  # fmt: skip
PATIENT_CHARACTERISTICS_CLEAN = {"Allergies", "MedicalAlerts", "SpecialNeeds", "PatientState", "AdditionalPatientHistory",
                                 "Occupation"}  # fmt: skip
TEXT_VRS = {"LO", "SH", "ST", "LT", "UT", "UC", "PN"}
DATE_VRS = {"DA", "DT", "TM"}


@dataclass
class DicomOptions:
    """Which Annex E options to apply (all on by default) and whether to clean burned-in text."""

    retain_dates_modified: bool = True
    retain_patient_chars: bool = True
    clean_descriptors: bool = True
    clean_pixels: bool = True


@dataclass
class DicomResult:
    """What happened to one file."""

    actions: dict[str, int] = field(default_factory=dict)
    text_boxes_blanked: int = 0
    text_left_after_cleaning: int = 0


@lru_cache(maxsize=1)
def basic_profile() -> dict[str, dict[str, str]]:
    """Tag (``GGGGEEEE``, ``xx`` wildcards) -> {name, basic action} of PS3.15 Table E.1-1."""
    data = json.loads(resources.files("carelens.privacy").joinpath("data/annex_e_basic_profile.json").read_text())
    return data["attributes"]


def action_for(tag: int, keyword: str, vr: str, options: DicomOptions) -> str | None:
    """The action (``D Z X K C U``) for an attribute, options applied, or None to keep it."""
    key = f"{tag:08X}"
    table = basic_profile()
    row = table.get(key)
    if row is None:
        group, elem = key[:4], key[4:]
        if group.startswith("50"):
            row = table.get("50xxxxxx")
        elif group.startswith("60"):
            row = table.get(f"60xx{elem}")
    if options.retain_patient_chars and keyword in PATIENT_CHARACTERISTICS_KEEP:
        return "K"
    if options.retain_patient_chars and keyword in PATIENT_CHARACTERISTICS_CLEAN:
        return "C"
    if row is None:
        return None
    action = row["basic"]
    if options.retain_dates_modified and vr in DATE_VRS and not keyword.startswith("PatientBirth"):
        return "C"
    descriptor = vr in TEXT_VRS - {"PN"} and re.search(r"(Description|Comments?|Name|Label)$", keyword or "")
    identifying = keyword in ("PatientName", "InstitutionName", "StationName") or "Physician" in keyword
    if options.clean_descriptors and descriptor and not identifying:
        return "C"
    # choose within combined actions: keep the attribute present when the choice allows it
    if action in ("Z/D", "X/Z", "X/Z/D"):
        return "Z"
    if action == "X/D":
        return "D"
    if action == "X/Z/U*":
        return "U" if vr == "UI" else "Z"
    return action


class DicomDeidentifier:
    """Applies the profile to datasets with one key and the known patients."""

    def __init__(self, keys: KeyService, options: DicomOptions | None = None,
                 patients: dict[str, PatientContext] | None = None) -> None:  # fmt: skip
        self.keys = keys
        self.options = options or DicomOptions()
        self.patients = patients or {}
        self._by_identifier = {i: ctx for ctx in self.patients.values() for i in ctx.identifiers}

    def context_for(self, ds: Any, path: Path | None = None) -> PatientContext:
        pid = str(ds.get("PatientID", "") or "")
        if pid in self._by_identifier:
            return self._by_identifier[pid]
        if path is not None and path.parent.name in self.patients:
            return self.patients[path.parent.name]
        if pid in self.patients:
            return self.patients[pid]
        return PatientContext(patient_id=pid or "unknown-dicom-patient", keys=self.keys)

    def dataset(self, ds: Any, ctx: PatientContext) -> DicomResult:
        """De-identify ``ds`` in place (headers only; pixels: ``clean_pixels``)."""
        result = DicomResult()
        ds.remove_private_tags()
        self._walk(ds, ctx, result)
        pseudonym = ctx.pseudonym
        ds.PatientID = pseudonym
        ds.PatientName = pseudonym
        if "file_meta" in ds.__dict__ or hasattr(ds, "file_meta"):
            meta = ds.file_meta
            if "MediaStorageSOPInstanceUID" in meta and "SOPInstanceUID" in ds:
                meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        return result

    def _walk(self, ds: Any, ctx: PatientContext, result: DicomResult) -> None:
        for elem in list(ds):
            if elem.tag.group == 0x0002:
                continue
            action = action_for(int(elem.tag), elem.keyword, elem.VR, self.options)
            if action is None or action == "K":
                if elem.VR == "SQ":
                    for item in elem.value:
                        self._walk(item, ctx, result)
                continue
            result.actions[action] = result.actions.get(action, 0) + 1
            if action == "X":
                del ds[elem.tag]
            elif elem.VR == "SQ":
                if action == "Z":
                    elem.value = []
                else:
                    for item in elem.value:
                        self._walk(item, ctx, result)
            elif action == "Z":
                elem.value = ""
            elif action == "U":
                elem.value = _map_uids(elem.value, self.keys)
            elif action == "C":
                elem.value = self._clean(elem, ctx)
            else:  # D
                elem.value = _dummy(elem.VR, elem.value, ctx.date_shift, self.keys)

    def _clean(self, elem: Any, ctx: PatientContext) -> Any:
        if elem.VR in DATE_VRS:
            return _shift_value(elem.VR, elem.value, ctx.date_shift)
        if elem.VR in TEXT_VRS:
            multi = isinstance(elem.value, list | tuple) or type(elem.value).__name__ == "MultiValue"
            values = elem.value if multi else [elem.value]
            limit = {"SH": 16, "LO": 64, "PN": 64}.get(elem.VR, 10240)
            cleaned = [deidentify_text(str(v), ctx).text[:limit] if str(v).strip() else str(v) for v in values]
            return cleaned if len(cleaned) > 1 else cleaned[0]
        return elem.value


def _map_uids(value: Any, keys: KeyService) -> Any:
    if isinstance(value, str):
        return keys.uid(value) if value else value
    return [keys.uid(str(v)) for v in value]


def _dummy(vr: str, value: Any, shift: int, keys: KeyService) -> Any:
    if vr in DATE_VRS:
        return _shift_value(vr, value, shift)
    if vr == "UI":
        return _map_uids(value, keys)
    if vr in ("PN",):
        return "ANONYMIZED"
    if vr in ("LO", "SH", "ST", "LT", "UT", "UC", "CS", "AE"):
        return "ANONYMIZED" if vr not in ("SH", "CS", "AE") else "ANON"
    if vr in ("IS",):
        return "0"
    if vr in ("DS",):
        return "0"
    if vr in ("US", "SS", "UL", "SL", "FL", "FD"):
        return 0
    if vr == "AS":
        return "000Y"
    return b"" if isinstance(value, bytes) else ""


def _shift_value(vr: str, value: Any, shift: int) -> Any:
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return [_shift_value(vr, v, shift) for v in value]
    text = str(value or "")
    if vr == "TM" or not text:
        return text  # times carry no date element
    m = re.match(r"^(\d{4})(\d{2})(\d{2})(.*)$", text)
    if not m:
        return ""
    try:
        d = date(int(m.group(1)), int(m.group(2)), int(m.group(3))) + timedelta(days=shift)
    except ValueError:
        return ""
    return f"{d.year:04d}{d.month:02d}{d.day:02d}{m.group(4)}"


# ---------------------------------------------------------------------------------------
def clean_burned_in_text(ds: Any) -> tuple[int, int]:
    """OCR the pixels (tesseract), blank every word box, OCR again.

    Returns (boxes blanked, words still readable after blanking). Raises ``RuntimeError``
    when tesseract is not installed.
    """
    import numpy as np
    import pytesseract
    from PIL import Image

    if shutil.which("tesseract") is None:
        raise RuntimeError("tesseract is not installed (Debian package tesseract-ocr)")
    arr = ds.pixel_array
    frames = arr if arr.ndim == (4 if ds.get("SamplesPerPixel", 1) > 1 else 3) else arr[None, ...]
    blanked = 0
    left = 0
    out_frames = []
    for frame in frames:
        frame = frame.copy()
        boxes = _ocr_boxes(_to_uint8(frame), pytesseract, Image)
        fill = frame.min()
        h, w = frame.shape[:2]
        for x, y, bw, bh in boxes:
            pad = max(2, bh // 4)
            frame[max(0, y - pad) : min(h, y + bh + pad), max(0, x - pad) : min(w, x + bw + pad)] = fill
            blanked += 1
        left += len(_ocr_boxes(_to_uint8(frame), pytesseract, Image))
        out_frames.append(frame)
    new = np.stack(out_frames) if arr.ndim == frames.ndim else out_frames[0]
    ds.PixelData = new.astype(arr.dtype).tobytes()
    return blanked, left


def _to_uint8(frame: Any) -> Any:
    import numpy as np

    f = frame.astype(np.float32)
    lo, hi = float(f.min()), float(f.max())
    scaled = (f - lo) / (hi - lo) * 255 if hi > lo else f * 0
    return scaled.astype(np.uint8)


def _ocr_boxes(img: Any, pytesseract: Any, image_cls: Any) -> list[tuple[int, int, int, int]]:
    """Word boxes tesseract reads in the image: burned-in text is drawn at (near) full
    intensity, so the brightest pixels are read as black-on-white first, then the plain and
    inverted image."""
    import numpy as np

    bright = np.where(img >= max(int(img.max()) - 8, 1), 0, 255).astype(np.uint8)
    boxes = []
    for candidate in (bright, 255 - img, img):
        pil = image_cls.fromarray(candidate)
        scale = max(1, min(4, 1200 // max(pil.size)))
        if scale > 1:
            pil = pil.resize((pil.width * scale, pil.height * scale), image_cls.LANCZOS)
        data = pytesseract.image_to_data(pil, config="--psm 11", output_type=pytesseract.Output.DICT)
        for i, word in enumerate(data["text"]):
            if word.strip() and len(re.sub(r"\W", "", word)) >= 2 and float(data["conf"][i]) >= 40:
                boxes.append((data["left"][i] // scale, data["top"][i] // scale, data["width"][i] // scale + 1,
                              data["height"][i] // scale + 1))  # fmt: skip
        if boxes:
            break
    return boxes


# ---------------------------------------------------------------------------------------
def deid_dicom_file(path: Path, target: Path, deid: DicomDeidentifier) -> DicomResult:
    """De-identify one file into ``target`` (atomically). ``ValueError`` with a reason to quarantine."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.uid import ExplicitVRLittleEndian

    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError) as err:
        raise ValueError(f"not a readable DICOM file ({type(err).__name__})") from None
    if "PixelData" not in ds:
        raise ValueError("no pixel data: burned-in text cannot be checked")
    ctx = deid.context_for(ds, path)
    pixels_changed = False
    result = DicomResult()
    if deid.options.clean_pixels:
        try:
            if ds.file_meta.TransferSyntaxUID.is_compressed:
                ds.decompress()
                pixels_changed = True
            _ = ds.pixel_array
        except Exception:  # decoders raise many kinds; their messages are not needed here
            syntax = ds.file_meta.get("TransferSyntaxUID")
            name = getattr(syntax, "name", "unknown transfer syntax")
            raise ValueError(f"pixel data cannot be decoded ({name}, {ds.get('BitsStored', '?')}-bit)") from None
        try:
            result.text_boxes_blanked, result.text_left_after_cleaning = clean_burned_in_text(ds)
        except RuntimeError as err:
            raise ValueError(str(err)) from None
        pixels_changed = True
        if result.text_left_after_cleaning:
            raise ValueError(f"burned-in text still readable after blanking ({result.text_left_after_cleaning} words)")
        if "BurnedInAnnotation" in ds:
            ds.BurnedInAnnotation = "NO"
    header = deid.dataset(ds, ctx)
    result.actions = header.actions
    _record_method(ds, deid.options)
    if pixels_changed:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        ds.save_as(tmp, enforce_file_format=True)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return result


def _record_method(ds: Any, options: DicomOptions) -> None:
    from pydicom.dataset import Dataset

    ds.PatientIdentityRemoved = "YES"
    used = ["basic"]
    if options.clean_pixels:
        used.append("clean_pixel")
    if options.clean_descriptors:
        used.append("clean_descriptors")
    if options.retain_dates_modified:
        used.append("retain_dates_modified")
    if options.retain_patient_chars:
        used.append("retain_patient_chars")
    ds.DeidentificationMethod = ("carelens PS3.15 E: " + ", ".join(CODES[u][0] for u in used))[:64]
    items = []
    for u in used:
        item = Dataset()
        item.CodeValue, item.CodeMeaning = CODES[u]
        item.CodingSchemeDesignator = "DCM"
        items.append(item)
    ds.DeidentificationMethodCodeSequence = items
    ds.LongitudinalTemporalInformationModified = "MODIFIED" if options.retain_dates_modified else "REMOVED"


def dicom_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))


def deid_dicom_path(src: Path, out: Path, keys: KeyService, options: DicomOptions | None = None,
                    patients: dict[str, PatientContext] | None = None,
                    on_file: Callable[[Path], object] | None = None) -> BatchResult:  # fmt: skip
    """De-identify DICOM files under ``src`` into ``out`` (same layout; patient folders renamed
    to pseudonyms when a folder is named by a known patient id)."""
    deid = DicomDeidentifier(keys, options, patients)
    result = BatchResult()
    base = src if src.is_dir() else src.parent
    for path in dicom_files(src):
        rel = path.relative_to(base)
        parts = [keys.pseudonym(p) if p in deid.patients else p for p in rel.parts[:-1]]
        target = out.joinpath(*parts, rel.name)
        try:
            deid_dicom_file(path, target, deid)
        except ValueError as err:
            result.quarantine(str(path), "file", str(err))
            continue
        result.done["dicom"] += 1
        if on_file:
            on_file(path)
    return result
