# ruff: noqa: E501
"""DICOM de-identification by allow-list: PS3.15 Annex E Table E.1-1 with its real action and
option columns (``data/annex_e_profile.json``) and, for attributes that are not rows of the table,
a keep list (``data/dicom_keep.json``): every other attribute, every private and every unknown
(UN) attribute is removed, sequences are recursed (binary values inside them, such as icons and
thumbnails, removed), and every string that stays is searched for the patient's known
identifiers; known identifiers in a kept lookup table's bytes are zeroed, a kept UID that is not
one of the standard's is remapped, bytes after the image in PixelData are cut. Options on by default: Retain Longitudinal Temporal Information
with Modified Dates (the patient's date shift), Retain Patient Characteristics, Clean Descriptors
and Clean Structured Content (the text de-identifier), Clean Pixel Data. UIDs are remapped with a
keyed hash under ``2.25``; group 0002 is rebuilt from scratch; output files are named
``<patient pseudonym>/<keyed hash>.dcm``. Burned-in text is found by OCR (tesseract) at 0, 90
and 270 degrees on the bright, dark, plain and inverted image and by a text-region detector,
blanked, and checked again the same way; BurnedInAnnotation says NO only after that check (the
research zone's gate, :mod:`carelens.privacy.burned_in`, then finds no text-like line to read).

Every file is written to a temporary name and renamed, so nothing half-written is left as if
it were clean; a file that cannot be made clean is quarantined with a one-line reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from carelens.core.forked import cores_to_use
from carelens.core.quarantine import BatchResult
from carelens.core.settings import load_settings
from carelens.ingest.dicom import REQUIRED_UIDS
from carelens.privacy.burned_in import (
    BINARY_VRS,
    extreme_levels,
    frames_of,
    images_to_data,
    native_pixel_bytes,
    shown_views,
    text_lines,
    unused_bits,
)
from carelens.privacy.context import PatientContext
from carelens.privacy.keys import KeyService
from carelens.privacy.known import Known, add_dicom, add_file_name
from carelens.privacy.text import deidentify_text

# CID 7050 De-identification Method codes (DCM)
CODES = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "clean_pixel": ("113101", "Clean Pixel Data Option"),
    "clean_structured_content": ("113104", "Clean Structured Content Option"),
    "clean_descriptors": ("113105", "Clean Descriptors Option"),
    "retain_dates_modified": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "retain_patient_chars": ("113108", "Retain Patient Characteristics Option"),
}
# option flag -> its column of Table E.1-1 (the first enabled column with an entry decides)
OPTION_COLUMNS = (("retain_dates_modified", "rtnLongModifDatesOpt"), ("retain_patient_chars", "rtnPatCharsOpt"),
                  ("clean_descriptors", "cleanDescOpt"), ("clean_structured_content", "cleanStructContOpt"))  # fmt: skip
BLANKING_ROUNDS = 3  # looks for burned-in text that blank what they find; text after the last: quarantine
IMAGE_KEYWORDS = {"PixelData", "FloatPixelData", "DoubleFloatPixelData"}  # cleaned by OCR, not by text search
TEXT_VRS = {"LO", "SH", "ST", "LT", "UT", "UC", "PN"}
DATE_VRS = {"DA", "DT", "TM"}


@dataclass
class DicomOptions:
    """Which Annex E options to apply (all on by default) and whether to clean burned-in text."""

    retain_dates_modified: bool = True
    retain_patient_chars: bool = True
    clean_descriptors: bool = True
    clean_structured_content: bool = True
    clean_pixels: bool = True


@dataclass
class DicomResult:
    """What happened to one file."""

    actions: dict[str, int] = field(default_factory=dict)
    text_boxes_blanked: int = 0
    text_left_after_cleaning: int = 0


@lru_cache(maxsize=1)
def basic_profile() -> dict[str, dict[str, Any]]:
    """Tag (``GGGGEEEE``, ``xx`` wildcards) -> {name, basic, options} of PS3.15 Table E.1-1."""
    data = json.loads(resources.files("carelens.privacy").joinpath("data/annex_e_profile.json").read_text())
    return data["attributes"]


@lru_cache(maxsize=1)
def keep_list() -> frozenset[str]:
    """Keywords of attributes outside Table E.1-1 that may leave."""
    data = json.loads(resources.files("carelens.privacy").joinpath("data/dicom_keep.json").read_text())
    return frozenset(data["keywords"])


def action_for(tag: int, keyword: str, vr: str, options: DicomOptions) -> str | None:
    """The action (``D Z X K C U``) of Table E.1-1 for an attribute, options applied; None when
    the attribute is not a row of the table (the keep list decides)."""
    key = f"{tag:08X}"
    table = basic_profile()
    row = table.get(key)
    if row is None:
        group, elem = key[:4], key[4:]
        if group.startswith("50"):
            row = table.get("50xxxxxx")
        elif group.startswith("60"):
            row = table.get(f"60xx{elem}")
    if row is None:
        return None
    action = str(row["basic"])
    for flag, column in OPTION_COLUMNS:
        if getattr(options, flag) and column in row.get("options", {}):
            action = str(row["options"][column])
            break
    # choose within combined actions: keep the attribute present when the choice allows it
    if action in ("Z/D", "X/Z", "X/Z/D"):
        return "Z"
    if action == "X/D":
        return "D"
    if action in ("X/Z/U*", "Z/U*", "X/U*", "U*"):
        return "U" if vr == "UI" else "Z"
    if action not in ("D", "Z", "X", "K", "C", "U"):
        return "X"
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

    def known_for(self, ds: Any, ctx: PatientContext, path: Path | None = None) -> Known:
        """The identifiers to search kept strings for: the header's own, the patient's, the file's name."""
        known = Known()
        add_dicom(ds, known)
        for name in ctx.names:
            known.add("name", name)
        for value in [*ctx.identifiers, *ctx.phones]:
            known.add("mrn", value)
        for line in ctx.addresses:
            known.add("address", line)
        if path is not None:
            add_file_name(path, known, frozenset({"dicom", "image", "series", "study", "slice", "frame"}))
            for folder in path.parent.parts[-2:]:
                add_file_name(Path(folder), known, frozenset({"dicom", "image", "series", "study", "data"}))
        return known

    def dataset(self, ds: Any, ctx: PatientContext, known: Known | None = None) -> DicomResult:
        """De-identify ``ds`` in place (headers only; pixels: ``clean_burned_in_text``)."""
        result = DicomResult()
        known = known or self.known_for(ds, ctx)
        self._walk(ds, ctx, known, result)
        pseudonym = ctx.pseudonym
        ds.PatientID = pseudonym
        ds.PatientName = pseudonym
        return result

    def _walk(self, ds: Any, ctx: PatientContext, known: Known, result: DicomResult, depth: int = 0) -> None:
        for elem in list(ds):
            if elem.tag.group == 0x0002:
                continue  # the file meta is rebuilt, not cleaned
            action = action_for(int(elem.tag), elem.keyword, elem.VR, self.options)
            if action is None:
                allowed = not elem.tag.is_private and elem.VR != "UN" and elem.keyword in keep_list()
                action = "K" if allowed else "X"
            if depth and action in ("K", "C") and _binary(elem) and elem.keyword != "LUTData":
                action = "X"  # pixels in a sequence (an icon, a thumbnail) are not the image the OCR cleaned
            result.actions[action] = result.actions.get(action, 0) + 1
            if action == "X":
                del ds[elem.tag]
            elif elem.VR == "SQ":
                if action == "Z":
                    elem.value = []
                elif action == "D" and elem.keyword not in keep_list():
                    del ds[elem.tag]  # a dummy sequence carries nothing: removing it is the stricter choice
                else:
                    for item in elem.value:
                        self._walk(item, ctx, known, result, depth + 1)
            elif action == "K":
                elem.value = _scrubbed(elem, known, keys=self.keys)
            elif action == "Z":
                elem.value = ""
            elif action == "U":
                elem.value = _map_uids(elem.value, self.keys)
            elif action == "C":
                elem.value = _scrubbed(elem, known, self._clean(elem, ctx), self.keys)
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


def _binary(elem: Any) -> bool:
    return bool(set(str(elem.VR).replace(" or ", " ").split()) & BINARY_VRS)


def _scrubbed(elem: Any, known: Known, value: Any = None, keys: KeyService | None = None) -> Any:
    """A kept or cleaned value with every known identifier in its strings removed (bytes of a
    kept binary value are left: only image and lookup-table data are on the keep list); a kept
    UID that is not one of the standard's (a SOP class, a transfer syntax) is remapped, as digits
    of an identifier fit in a UID."""
    value = elem.value if value is None else value
    if elem.VR == "UI" and keys is not None:
        return _standard_uids(value, keys)
    if isinstance(value, str) and value in _enumerated(elem.keyword):
        return value  # a value the standard enumerates names no one (a scrub of "rgb", a folder's name, broke images)
    if elem.VR == "PN":
        multi = isinstance(value, list | tuple) or type(value).__name__ == "MultiValue"
        value = [str(v) for v in value] if multi else str(value)
    if isinstance(value, bytes) and elem.keyword not in IMAGE_KEYWORDS:
        return _zeroed(value, known)
    if isinstance(value, str):
        return known.scrub(value, "") if elem.VR not in ("UI",) else value
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return [known.scrub(v, "") if isinstance(v, str) and elem.VR != "UI" else v for v in value]
    return value


@cache
def _enumerated(keyword: str) -> frozenset[str]:
    """The values PS3.3 enumerates for an attribute whose value decides how the pixels are read."""
    if keyword != "PhotometricInterpretation":
        return frozenset()
    from pydicom.pixels.common import PhotometricInterpretation

    return frozenset(str(member.value) for member in PhotometricInterpretation)


def _zeroed(value: bytes, known: Known) -> bytes:
    """A kept binary value (a lookup table) with the bytes of any known identifier in it, read
    as Latin-1 text, set to zero (same length: the value's structure stays)."""
    regex = known.regex()
    if regex is None:
        return value
    out = bytearray(value)
    for m in regex.finditer(value.decode("latin-1")):
        out[m.start() : m.end()] = bytes(m.end() - m.start())
    return bytes(out)


def _standard_uids(value: Any, keys: KeyService) -> Any:
    from pydicom.uid import UID_dictionary

    if isinstance(value, str):
        return value if not value or value in UID_dictionary else keys.uid(value)
    return [v if str(v) in UID_dictionary else keys.uid(str(v)) for v in value]


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
    """Find burned-in text (OCR in every orientation and polarity of every view a viewer may show, and text-like
    regions), blank it, and look again the same way; what a look finds is blanked too, up to ``BLANKING_ROUNDS``
    looks (blanking changes the image, and OCR may then read a mark it missed before).

    Returns (regions blanked, text regions still found after the last round). Raises
    ``RuntimeError`` when tesseract is not installed.
    """
    import numpy as np

    if shutil.which("tesseract") is None:
        raise RuntimeError("tesseract is not installed (Debian package tesseract-ocr)")
    arr = ds.pixel_array
    frames = frames_of(arr, int(ds.get("SamplesPerPixel", 1) or 1))
    blanked = 0
    left = 0
    out_frames = []
    for frame in frames:
        frame = frame.copy()
        fill = frame.min()
        h, w = frame.shape[:2]
        boxes = _text_shown(frame, ds)
        for _round in range(BLANKING_ROUNDS):
            if not boxes:
                break
            for x, y, bw, bh in boxes:
                pad = max(2, min(bw, bh) // 4)
                frame[max(0, y - pad) : min(h, y + bh + pad), max(0, x - pad) : min(w, x + bw + pad)] = fill
                blanked += 1
            boxes = _text_shown(frame, ds)
        left += len(boxes)
        out_frames.append(frame)
    new = np.stack(out_frames) if arr.ndim == frames.ndim else out_frames[0]
    ds.PixelData = new.astype(arr.dtype).tobytes()
    return blanked, left


def _text_shown(frame: Any, ds: Any) -> list[tuple[int, int, int, int]]:
    """Boxes of text in any view of the frame a viewer may show (:func:`carelens.privacy.burned_in.shown_views`)."""
    return [box for view in shown_views(frame, ds) for box in find_text(view)]


def find_text(img: Any) -> list[tuple[int, int, int, int]]:
    """Boxes (x, y, w, h) of text in an 8-bit image: what tesseract reads at 0, 90 and 270
    degrees in the brightest pixels, the darkest, the image and its inverse (in each orientation
    the first of these that reads anything), plus the lines of character-sized marks of the
    research gate's detector (:func:`carelens.privacy.burned_in.text_lines`), which OCR may not
    read."""
    import numpy as np

    h, w = img.shape
    bright, dark = extreme_levels(img)
    orientations = {0: (bright, 255 - img, img, dark), 1: (bright, dark), 3: (bright, dark)}
    turns = [k for k, candidates in orientations.items() for _ in candidates]
    reads = _ocr([np.ascontiguousarray(np.rot90(c, k)) for k, candidates in orientations.items() for c in candidates])
    boxes: list[tuple[int, int, int, int]] = []
    for k in orientations:
        found = next((read for turn, read in zip(turns, reads, strict=True) if turn == k and read), [])
        boxes += [_unrotate(b, k, w, h) for b in found]
    return boxes + [line.box for line in text_lines(img)]


def ocr_threads() -> int:
    """Tesseract processes run at once: ``CARELENS_OCR_THREADS``, or one per core (at most 4)."""
    return cores_to_use(load_settings().ocr_threads)


def _ocr(images: list[Any]) -> list[list[tuple[int, int, int, int]]]:
    """Boxes of the legible words tesseract reads in each image (enlarged to ~1200 px), the images shared out among
    :func:`ocr_threads` tesseract processes."""
    from PIL import Image

    pils, scales = [], []
    for img in images:
        pil = Image.fromarray(img)
        scale = max(1, min(4, 1200 // max(pil.size)))
        pils.append(pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.LANCZOS) if scale > 1 else pil)
        scales.append(scale)
    processes = max(1, min(ocr_threads(), len(images)))
    shares = [list(range(first, len(images), processes)) for first in range(processes)]
    with ThreadPoolExecutor(max_workers=processes) as pool:
        pages = list(pool.map(lambda share: images_to_data([pils[i] for i in share], "--psm 11"), shares))
    reads: list[list[tuple[int, int, int, int]]] = [[] for _ in images]
    for share, datas in zip(shares, pages, strict=True):
        for i, data in zip(share, datas, strict=True):
            reads[i] = _legible(data, scales[i])
    return reads


def _legible(data: dict[str, list[Any]], scale: int) -> list[tuple[int, int, int, int]]:
    """The boxes (in the image before its enlargement by ``scale``) of words of two letters or more, read with
    confidence 60 or more, at least 8 x 5 px: smaller is noise, not legible text."""
    out = []
    for i, word in enumerate(data["text"]):
        big = data["width"][i] >= 8 * scale and data["height"][i] >= 5 * scale
        if big and word.strip() and len(re.sub(r"\W", "", word)) >= 2 and float(data["conf"][i]) >= 60:
            out.append((data["left"][i] // scale, data["top"][i] // scale, data["width"][i] // scale + 1,
                        data["height"][i] // scale + 1))  # fmt: skip
    return out


def _unrotate(box: tuple[int, int, int, int], k: int, w: int, h: int) -> tuple[int, int, int, int]:
    """A box found in ``np.rot90(image, k)`` in the coordinates of the image (w x h)."""
    x, y, bw, bh = box
    if k == 1:
        return (w - y - bh, x, bh, bw)
    if k == 3:
        return (y, h - x - bw, bh, bw)
    return box


# ---------------------------------------------------------------------------------------
def deid_dicom_file(path: Path, target: Path, deid: DicomDeidentifier) -> DicomResult:
    """De-identify one file into ``target`` (atomically). ``ValueError`` with a reason to quarantine."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.uid import ExplicitVRLittleEndian

    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"not a readable DICOM file ({type(err).__name__})") from None
    if "PixelData" not in ds:
        raise ValueError("no pixel data: burned-in text cannot be checked")
    missing = [name for name in (*REQUIRED_UIDS, "SOPClassUID") if not ds.get(name)]
    if missing:
        raise ValueError(f"DICOM header lacks {', '.join(missing)}: no valid copy can be written")
    ctx = deid.context_for(ds, path)
    known = deid.known_for(ds, ctx, path)
    expected = native_pixel_bytes(ds)
    if expected is not None and len(ds.PixelData) > expected + 1:
        ds.PixelData = ds.PixelData[: expected + expected % 2]  # bytes after the image are never shown
    hidden = unused_bits(ds)
    if hidden is not None and not deid.options.clean_pixels:  # cleaning rewrites the pixels from the image
        words, mask = hidden
        signed = bool(ds.get("PixelRepresentation", 0))
        sign = 1 << (16 - bin(mask).count("1") - 1)
        extension = (words & sign).astype(bool) * mask if signed else 0
        ds.PixelData = ((words & ~mask & 0xFFFF) | extension).astype("<u2").tobytes()
    syntax = ds.file_meta.get("TransferSyntaxUID") if getattr(ds, "file_meta", None) is not None else None
    result = DicomResult()
    burned = str(ds.get("BurnedInAnnotation", "") or "")
    if deid.options.clean_pixels:
        try:
            if syntax is not None and syntax.is_compressed:
                ds.decompress(generate_instance_uid=False)  # pydicom would give it a random new UID
            _ = ds.pixel_array
        except Exception:  # decoders raise many kinds; their messages are not needed here
            name = getattr(syntax, "name", "unknown transfer syntax")
            raise ValueError(f"pixel data cannot be decoded ({name}, {ds.get('BitsStored', '?')}-bit)") from None
        try:
            result.text_boxes_blanked, result.text_left_after_cleaning = clean_burned_in_text(ds)
        except RuntimeError as err:
            raise ValueError(str(err)) from None
        if result.text_left_after_cleaning:
            raise ValueError(f"burned-in text still found after blanking ({result.text_left_after_cleaning} regions)")
        syntax = ExplicitVRLittleEndian
    try:
        header = deid.dataset(ds, ctx, known)
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(f"header cannot be cleaned ({type(err).__name__})") from None
    result.actions = header.actions
    # checked pixels carry no text any more; unchecked ones may (unless the source said NO)
    ds.BurnedInAnnotation = "NO" if deid.options.clean_pixels or burned == "NO" else "YES"
    _record_method(ds, deid.options)
    ds.file_meta = _file_meta(ds, syntax or ExplicitVRLittleEndian)
    ds.preamble = bytes(128)  # the 128 bytes before "DICM" are free for any use, a name included
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        ds.save_as(tmp, enforce_file_format=True)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return result


def _file_meta(ds: Any, syntax: Any) -> Any:
    """Group 0002 rebuilt from nothing: no source AE title, no private information."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "CARELENS"
    return meta


def _record_method(ds: Any, options: DicomOptions) -> None:
    from pydicom.dataset import Dataset

    ds.PatientIdentityRemoved = "YES"
    used = ["basic"]
    if options.clean_pixels:
        used.append("clean_pixel")
    if options.clean_structured_content:
        used.append("clean_structured_content")
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
    """De-identify DICOM files under ``src`` into ``out`` as ``<patient pseudonym>/<keyed hash>.dcm``
    (input file and folder names, which often name the patient, never reach the output)."""
    import pydicom

    deid = DicomDeidentifier(keys, options, patients)
    result = BatchResult()
    base = src if src.is_dir() else src.parent
    for path in dicom_files(src):
        rel = path.relative_to(base)
        with warnings.catch_warnings():  # pydicom's warnings quote values (a birth date, a name)
            warnings.simplefilter("ignore")
            try:
                head = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientID"])
                pseudonym = deid.context_for(head, path).pseudonym
            except Exception:  # unreadable: deid_dicom_file says why
                pseudonym = "unknown"
            target = out / pseudonym / (keys.hash_hex("dicom-file", rel.as_posix(), 24) + ".dcm")
            try:
                deid_dicom_file(path, target, deid)
            except ValueError as err:
                result.quarantine(str(path), "file", str(err))
                continue
            except Exception as err:  # a cleaner bug must not end the batch; the type only (no PHI)
                result.quarantine(str(path), "file", f"internal error ({type(err).__name__}); nothing written")
                continue
        result.done["dicom"] += 1
        if on_file:
            on_file(path)
    return result
