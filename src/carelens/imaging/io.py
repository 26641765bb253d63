"""Reading one image file (DICOM, PNG, JPEG) into display-ready pixels, and fitting it to a model's input.

DICOM is read the way a viewer shows it: pixel data decoded through pydicom's handlers
(JPEG, JPEG 2000, JPEG-LS and RLE through pylibjpeg / pyjpegls / Pillow), the modality LUT
(rescale slope and intercept), the VOI LUT or window, and MONOCHROME1 inverted so that
higher values are always brighter. Multi-frame and non-image objects are refused.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from carelens.core import InputError

# SOP classes / modalities that hold no picture to classify.
NON_IMAGE_MODALITIES = {"SR", "RTPLAN", "RTSTRUCT", "RTDOSE", "SEG", "ECG", "KO", "PR", "REG", "DOC", "RWV"}
GREY_PHOTOMETRICS = {"MONOCHROME1", "MONOCHROME2"}
COLOUR_PHOTOMETRICS = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT", "YBR_PARTIAL_420"}
# Pixels of the largest image read (a mammogram, the largest radiograph, is ~25 million): a larger one is
# refused before it is decoded (a 218 KB PNG can declare 15,000 x 15,000 pixels).
MAX_PIXELS = 8192 * 8192


@dataclass
class LoadedImage:
    """One decoded image: ``pixels`` float32 ``H x W`` (grey) or ``H x W x 3`` (colour) in [0, 1].

    ``photometric`` is the DICOM Photometric Interpretation (``MONOCHROME2`` for grey PNG/JPEG,
    ``RGB`` for colour ones) as it was in the file; ``dicom`` holds the identifiers of a DICOM
    source (study, series, SOP instance UIDs), needed to reference it from a report.
    """

    pixels: np.ndarray
    photometric: str
    modality: str | None
    kind: str
    dicom: dict[str, str] = field(default_factory=dict)
    body_part: str | None = None

    @property
    def channels(self) -> int:
        return 1 if self.pixels.ndim == 2 else int(self.pixels.shape[-1])


def read_image(path: str | Path) -> LoadedImage:
    """Read a DICOM, PNG or JPEG file; raise :class:`InputError` with a one-line reason when it cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found")
    with path.open("rb") as fh:
        head = fh.read(132)
    if head[128:132] == b"DICM" or path.suffix.lower() in (".dcm", ".dicom"):
        return read_dicom(path)
    return read_picture(path)


def read_picture(path: Path) -> LoadedImage:
    """A PNG or JPEG file (8- or 16-bit grey, RGB; alpha dropped)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(path)
        with opened:
            _check_size(*opened.size)
            opened.load()
            fmt = opened.format or "image"
            mode = opened.mode
            im: Image.Image = opened
            if mode in ("RGBA", "LA", "P", "PA", "CMYK", "YCbCr"):
                im = opened.convert("RGB" if mode not in ("LA",) else "L")
            arr = np.asarray(im)
    except UnidentifiedImageError:
        with path.open("rb") as fh:
            head = fh.read(8)
        if head.startswith((b"\x89PNG", b"\xff\xd8\xff")):
            raise InputError("corrupt or truncated image file (PNG/JPEG header but unreadable data)") from None
        raise InputError("not a readable image (neither DICOM nor PNG/JPEG)") from None
    except Image.DecompressionBombError:
        raise InputError(f"image has more than {2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels: refused unread") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise InputError(f"corrupt or truncated image file ({type(err).__name__})") from None
    if arr.ndim == 3 and arr.shape[-1] == 3 and _is_grey(arr):
        arr = arr[..., 0]
    pixels = _to_unit(
        arr.astype(np.float64), integer_max=float(np.iinfo(arr.dtype).max) if arr.dtype.kind in "ui" else None
    )
    photometric = "MONOCHROME2" if pixels.ndim == 2 else "RGB"
    return LoadedImage(pixels=pixels, photometric=photometric, modality=None, kind=fmt.lower())


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise InputError(f"image is {width}x{height} px, more than the {MAX_PIXELS:,} pixels carelens reads")


def _is_grey(arr: np.ndarray) -> bool:
    return bool(np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]))


def _to_unit(arr: np.ndarray, integer_max: float | None = None) -> np.ndarray:
    """Scale to [0, 1]: by the integer range for 8-bit pictures, by min/max otherwise."""
    if integer_max == 255.0:
        return (arr / 255.0).astype(np.float32)
    lo, hi = float(np.min(arr)), float(np.max(arr))
    if hi - lo < 1e-12:
        return np.zeros(arr.shape, dtype=np.float32)
    return ((arr - lo) / (hi - lo)).astype(np.float32)


def read_dicom(path: Path) -> LoadedImage:
    """A single-frame DICOM image, as a viewer would display it (see module docstring)."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError:
        raise InputError("not a DICOM file (no DICM preamble)") from None
    except Exception as err:  # truncated or malformed files raise many kinds of errors
        raise InputError(f"corrupt DICOM file ({type(err).__name__})") from None
    modality = str(ds.get("Modality", "") or "") or None
    if "PixelData" not in ds:
        what = f"modality {modality}" if modality else "no modality"
        raise InputError(f"DICOM object holds no image ({what}, no pixel data)")
    if modality in NON_IMAGE_MODALITIES:
        raise InputError(f"DICOM object is not an image to classify (modality {modality})")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise InputError(f"multi-frame DICOM ({frames} frames) is not supported: send single-frame images")
    photometric = str(ds.get("PhotometricInterpretation", "") or "")
    if photometric not in GREY_PHOTOMETRICS | COLOUR_PHOTOMETRICS:
        raise InputError(f"photometric interpretation {photometric or 'missing'} is not supported")
    try:
        _check_size(int(ds.get("Columns", 0) or 0), int(ds.get("Rows", 0) or 0))
    except (TypeError, ValueError):
        raise InputError("Rows or Columns is not a number") from None
    meta = getattr(ds, "file_meta", None)
    tsyntax = meta.get("TransferSyntaxUID") if meta is not None else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = ds.pixel_array
    except NotImplementedError:
        raise InputError(f"transfer syntax {_syntax_name(tsyntax)} cannot be decoded here (no pixel handler)") from None
    except Exception as err:
        raise InputError(f"pixel data cannot be decoded ({_syntax_name(tsyntax)}, {type(err).__name__})") from None
    if photometric in GREY_PHOTOMETRICS:
        if arr.ndim != 2:
            raise InputError(f"unexpected pixel array shape for a single-frame grey image ({arr.ndim} dimensions)")
        values = apply_modality_lut(arr, ds)
        windowed = "WindowCenter" in ds or "VOILUTSequence" in ds
        if windowed:
            values = apply_voi_lut(values, ds, index=0)
        pixels = _to_unit(np.asarray(values, dtype=np.float64))
        if photometric == "MONOCHROME1":
            pixels = 1.0 - pixels
    else:
        pixels = _to_unit(np.asarray(arr, dtype=np.float64), integer_max=255.0 if arr.dtype == np.uint8 else None)
        if pixels.ndim == 3 and _is_grey(pixels):
            pixels = pixels[..., 0]
    uids = {
        key: str(ds.get(key))
        for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
        if ds.get(key)
    }
    body_part = str(ds.get("BodyPartExamined", "") or "").strip().upper() or None
    return LoadedImage(
        pixels=pixels.astype(np.float32),
        photometric=photometric,
        modality=modality,
        kind="dicom",
        dicom=uids,
        body_part=body_part,
    )


def _syntax_name(uid: object) -> str:
    name = getattr(uid, "name", None)
    return str(name) if name else str(uid or "unknown")


def prepare_image(pixels: np.ndarray, image_size: int, channels: int = 1) -> np.ndarray:
    """Fit decoded pixels to a model input: pad to square, resize to ``image_size``, ``C x H x W`` float32."""
    from PIL import Image

    arr = np.asarray(pixels, dtype=np.float32)
    if arr.ndim == 3 and channels == 1:
        raise InputError(f"colour image ({arr.shape[-1]} channels) but the model reads greyscale images")
    planes = [arr] if arr.ndim == 2 else [arr[..., c] for c in range(arr.shape[-1])]
    if channels == 3 and len(planes) == 1:
        planes = planes * 3
    out = []
    for plane in planes:
        h, w = plane.shape
        side = max(h, w)
        square = np.zeros((side, side), dtype=np.float32)
        top, left = (side - h) // 2, (side - w) // 2
        square[top : top + h, left : left + w] = plane
        resized = Image.fromarray(square, mode="F").resize((image_size, image_size), Image.Resampling.BOX)
        out.append(np.asarray(resized, dtype=np.float32))
    return np.clip(np.stack(out), 0.0, 1.0)
