"""DICOM files: header fields for the studies/series/instances table, pixel data by reference.

The header is read with pydicom (``stop_before_pixels``); the pixel data stays in the file and
the lake keeps its path and the file's content hash. pydicom reads a cut-off file without
complaint, so the file is checked for completeness here: the last header element must have
all its bytes, an image must have its pixel data element, and that element (native or
encapsulated fragments) must fit in the file.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
from pathlib import Path
from typing import Any

from carelens.core.errors import InputError

DICOM_SUFFIXES = (".dcm", ".dicom")
_PIXEL_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
REQUIRED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")  # an instance without one is refused
UID_SHAPE = re.compile(r"[0-9]+(?:\.[0-9]+)*")  # PS3.5 9.1: digits and dots, at most 64 characters


def is_dicom(path: Path, head: bytes | None = None) -> bool:
    """True for a ``.dcm`` name or a file with the ``DICM`` preamble magic."""
    if path.name.lower().endswith(DICOM_SUFFIXES):
        return True
    if head is None:
        with open(path, "rb") as handle:
            head = handle.read(132)
    return head[128:132] == b"DICM"


def read_dicom_header(data: bytes) -> dict[str, Any]:
    """The header fields of one DICOM file (given as bytes) for ``dicom_instances``; raises
    ``InputError`` for a file that is not DICOM, truncated or lacks its UIDs.

    pydicom's warnings about odd values are silenced: they quote the values (possibly PHI).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _read_header(data)


def _read_header(data: bytes) -> dict[str, Any]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    handle = io.BytesIO(data)
    try:
        ds = pydicom.dcmread(handle, stop_before_pixels=True)
    except InvalidDicomError:
        raise InputError("not a DICOM file (no DICM preamble or file meta header)") from None
    except Exception as err:  # pydicom raises many kinds on damaged files; never quote values
        raise InputError(f"unreadable DICOM header ({type(err).__name__})") from None
    _check_complete(ds, data, handle.tell())
    missing = [name for name in REQUIRED_UIDS if not ds.get(name)]
    if missing:
        raise InputError(f"DICOM header lacks {', '.join(missing)} (truncated or incomplete header)")
    malformed = [name for name in REQUIRED_UIDS if not is_uid(str(ds.get(name)))]
    if malformed:
        raise InputError(f"DICOM {', '.join(malformed)} is not a UID (digits and dots, at most 64 characters)")
    meta = ds.get("file_meta") or {}
    return {
        "study_uid": str(ds.StudyInstanceUID),
        "series_uid": str(ds.SeriesInstanceUID),
        "sop_uid": str(ds.SOPInstanceUID),
        "sop_class_uid": _text(ds.get("SOPClassUID")),
        "patient_id": _text(ds.get("PatientID")),
        "modality": _text(ds.get("Modality")),
        "study_date": _text(ds.get("StudyDate")),
        "series_date": _text(ds.get("SeriesDate")),
        "study_description": _text(ds.get("StudyDescription")),
        "series_description": _text(ds.get("SeriesDescription")),
        "body_part": _text(ds.get("BodyPartExamined")),
        "rows": _int(ds.get("Rows")),
        "columns": _int(ds.get("Columns")),
        "transfer_syntax": _text(getattr(meta, "TransferSyntaxUID", None)),
    }


def is_uid(value: str) -> bool:
    """Whether ``value`` is a DICOM UID: the instance's key in the lake, in its reads' SR and FHIR ImagingStudy."""
    return len(value) <= 64 and UID_SHAPE.fullmatch(value) is not None


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _int(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def _check_complete(ds: Any, data: bytes, stop: int) -> None:
    raw = list(ds._dict.values())
    last = raw[-1] if raw else None
    value = getattr(last, "value", None)
    length = getattr(last, "length", None)
    if isinstance(value, bytes) and isinstance(length, int) and length != 0xFFFFFFFF and len(value) < length:
        raise InputError("truncated DICOM file (header ends inside an element)")
    if stop >= len(data):
        if "Rows" in ds:
            raise InputError("truncated DICOM file (image without pixel data)")
        return
    ts = getattr(ds.get("file_meta"), "TransferSyntaxUID", None)
    big = ts == "1.2.840.10008.1.2.2"
    explicit = ts != "1.2.840.10008.1.2"
    _check_pixel_element(data, stop, explicit, big)


def _check_pixel_element(data: bytes, pos: int, explicit: bool, big: bool) -> None:
    """Walk the elements from the pixel data to the end of the file: each must fit."""
    end = "<>"[big]
    group, _ = struct.unpack(end + "HH", data[pos : pos + 4]) if pos + 4 <= len(data) else (0, 0)
    if group != 0x7FE0:
        return  # stopped before something else pydicom treats as pixels; nothing to check
    while pos < len(data):
        if pos + 8 > len(data):
            raise InputError("truncated DICOM file (element header cut off after the pixel data)")
        group, element = struct.unpack(end + "HH", data[pos : pos + 4])
        if explicit and data[pos + 4 : pos + 6] in _LONG_VRS:
            if pos + 12 > len(data):
                raise InputError("truncated DICOM file (element header cut off after the pixel data)")
            (length,) = struct.unpack(end + "I", data[pos + 8 : pos + 12])
            start = pos + 12
        elif explicit:
            (length,) = struct.unpack(end + "H", data[pos + 6 : pos + 8])
            start = pos + 8
        else:
            (length,) = struct.unpack(end + "I", data[pos + 4 : pos + 8])
            start = pos + 8
        if length == 0xFFFFFFFF:
            if (group, element) in _PIXEL_TAGS:
                pos = _check_fragments(data, start)
                continue
            return  # an undefined-length sequence after the pixels: not walked
        if start + length > len(data):
            what = "pixel data" if (group, element) in _PIXEL_TAGS else "an element after the pixel data"
            raise InputError(f"truncated DICOM file ({what} shorter than its declared length)")
        pos = start + length


def _check_fragments(data: bytes, pos: int) -> int:
    """Walk encapsulated pixel data items (always little endian) up to the delimiter; returns
    the position after it."""
    while pos + 8 <= len(data):
        group, element, length = struct.unpack("<HHI", data[pos : pos + 8])
        if (group, element) == (0xFFFE, 0xE0DD):
            return pos + 8
        if (group, element) != (0xFFFE, 0xE000):
            raise InputError("damaged DICOM file (unexpected element inside encapsulated pixel data)")
        pos += 8 + length
    raise InputError("truncated DICOM file (encapsulated pixel data cut off)")
