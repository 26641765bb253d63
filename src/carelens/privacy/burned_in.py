"""The burned-in text gate of the research zone: an affordable check that a DICOM's pixels carry
no readable text other than the usual radiographic annotations.

Every frame goes through a text-line detector (a morphological top-hat in both polarities, so
light-on-dark, dark-on-light and grey text alike; marks of a character's size in rows or in
columns, so horizontal and vertical text alike; again with the levels next to black and white
spread out, for faint ink there; a small frame enlarged 2x first, for 9 px text): a frame without
text-like lines passes at the cost of a few array operations. Only where the detector fires is each line read by OCR
(tesseract, the line's own crop, in its orientation and the polarity that makes it dark on
light). An instance passes when every line reads as words of the annotation allow-list
(``data/burned_in_words.json``: laterality markers, projections, positioning, technique) or as
nothing legible in a weak line; a line that reads as anything else (a long number counts even
read with little confidence: tiny record numbers and dates), or a clear word-like line that OCR
reads as no allowed word, makes the instance fail with a one-line reason that never holds the text.
An instance also fails when it holds binary data the gate does not read (an overlay plane, an
icon or other pixels inside a sequence, an encapsulated document, curve or waveform data, bytes
after the image): by allow-list, only the image's own pixels and lookup tables may be there.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

Box = tuple[int, int, int, int]  # x, y, width, height
BANDS = ((5, 11), (8, 15), (13, 24), (21, 38), (34, 60))  # character heights (pixels) looked for, overlapping
CONTRAST = 32  # grey levels (of 255) a mark stands out from its surroundings by
OCR_LINE_HEIGHT = 48  # pixels a line is enlarged to before OCR
SURE_LETTERS = 3  # a confident reading shorter than this ("ee", "4") is OCR noise on anatomy, not a word
MASK_LETTERS = 4  # ... in the extreme levels' masks, where OCR reads three-letter words into bright bone ("Vey")
CONFIDENT = 60  # tesseract word confidence (0-100) above which a reading counts
STRONG_MARKS = 5  # a line of this many regular marks is word-like: OCR must read it as allowed words
NUMBER_DIGITS = 5  # a less confident reading with this many digits in a word is a record number or a date
LESS_CONFIDENT = 30  # ... read at least this confident (tesseract is unsure of tiny digits)
OUTSIDE = "burned-in text in the pixels outside the annotation allow-list (read by OCR)"
UNREADABLE = "a word-like line of marks in the pixels that OCR cannot read"
BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}
BINARY_ALLOWED = {
    "PixelData",
    "FloatPixelData",
    "DoubleFloatPixelData",
    "LUTData",
    "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData",
    "DataSetTrailingPadding",
}  # fmt: skip  (padding is never shown; the leak audit reads its bytes)
MAX_SIDE = 2048  # larger frames are reduced first (text of a readable size stays above 5 pixels)
UPSCALE_BELOW = 512  # smaller frames are enlarged 2x first (9 px text: its letters touch, thin strokes vanish)


@dataclass(frozen=True)
class TextLine:
    """A row (``vertical`` False) or column of character-sized marks in one polarity."""

    box: Box
    vertical: bool
    bright: bool
    marks: int


@dataclass
class GateResult:
    """The gate's verdict on one image: ``reason`` None when it passes."""

    reason: str | None
    lines: int = 0
    ocr_lines: int = 0


@lru_cache(maxsize=1)
def allowed_words() -> frozenset[str]:
    """Upper-case words that may be burned into a research image (annotations that identify no one)."""
    data = json.loads(resources.files("carelens.privacy").joinpath("data/burned_in_words.json").read_text())
    return frozenset(w.upper() for w in data["words"])


def to_uint8(frame: Any) -> Any:
    """A frame (grey or colour, any depth) as an 8-bit grey image stretched to its own range."""
    import numpy as np

    if frame.ndim == 3:
        frame = frame.mean(axis=2)
    f = frame.astype(np.float32)
    lo, hi = float(f.min()), float(f.max())
    scaled = (f - lo) / (hi - lo) * 255 if hi > lo else f * 0
    return scaled.astype(np.uint8)


def shown_views(frame: Any, ds: Any = None) -> list[Any]:
    """8-bit grey images of one frame as a viewer may show it, each stretched to its own range: the frame itself (a
    colour frame: each channel apart, as text in a colour of the background's brightness shows in no grey mean), a
    PALETTE COLOR frame through its palette, a grey frame through its Modality LUT Sequence and through each of the
    file's own windows or VOI LUTs that shows more than the whole range does (text three levels above a 12-bit
    background is invisible when 4,096 levels are stretched to 256, and plain under a window six levels wide)."""
    import numpy as np

    photometric = str(ds.get("PhotometricInterpretation", "")).strip() if ds is not None else ""
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        frame = apply_color_lut(frame, ds)
    if frame.ndim == 3:
        return [to_uint8(frame[..., channel]) for channel in range(frame.shape[2])]
    if ds is None:
        return [to_uint8(frame)]
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    if "ModalityLUTSequence" in ds:  # a viewer shows the table's output, which may set neighbouring levels far apart
        frame = apply_modality_lut(frame, ds)
    views = [to_uint8(frame)]
    windows = max(len(_values(ds.get("WindowCenter"))), len(ds.get("VOILUTSequence", None) or []))
    if windows:
        rescaled = frame if "ModalityLUTSequence" in ds else apply_modality_lut(frame, ds)
        for index in range(windows):
            view = to_uint8(apply_voi_lut(rescaled, ds, index=index))
            if np.abs(view.astype(np.int16) - views[0]).max() > 1:  # a window over the whole range shows nothing new
                views.append(view)
    return views


def extreme_levels(img: Any) -> tuple[Any, Any]:
    """The pixels within 8 levels of an 8-bit image's brightest, and those within 8 of its darkest, each black on
    white: where burned-in text is drawn, and where it stands out of noise that hides it from the line detector."""
    import numpy as np

    bright = np.where(img >= max(int(img.max()) - 8, 1), 0, 255).astype(np.uint8)
    dark = np.where(img <= int(img.min()) + 8, 0, 255).astype(np.uint8)
    return bright, dark


def _values(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue" else [value]


def frames_of(arr: Any, samples_per_pixel: int = 1) -> Any:
    """The frames of a DICOM pixel array (one frame gets a leading axis)."""
    return arr if arr.ndim == (4 if samples_per_pixel > 1 else 3) else arr[None, ...]


def text_lines(img: Any) -> list[TextLine]:
    """Rows and columns of at least three character-sized marks of like size, standing out from
    their surroundings (top-hat) in either polarity, in an 8-bit grey image; again with the grey
    levels next to each polarity's extreme spread out (faint ink on near-black or near-white, a
    line found there kept only where no line was found before)."""
    import numpy as np
    from scipy import ndimage

    scale = max(1, -(-max(img.shape) // MAX_SIDE))
    if scale > 1:
        img = img[::scale, ::scale]
    if max(img.shape) < UPSCALE_BELOW:
        big = [(_shrink(t.box), t.vertical, t.bright, t.marks) for t in text_lines(ndimage.zoom(img, 2, order=1))]
        return [TextLine(box, vertical, bright, marks) for box, vertical, bright, marks in big]
    size = int(np.clip(min(img.shape) // 24, 9, 41)) | 1
    lines: list[TextLine] = []
    for bright, stretched in ((True, False), (False, False), (True, True), (False, True)):
        work = img if bright else 255 - img
        if stretched:  # the levels next to the ink's own extreme spread out: faint ink on near-black or near-white
            work = (255 - np.sqrt(255.0 * (255 - work.astype(np.float32)))).astype(np.uint8)
        tophat = work.astype(np.int16) - ndimage.grey_opening(work, size=(size, size)).astype(np.int16)
        mask = tophat >= CONTRAST
        if mask.mean() > 0.25:
            continue  # texture everywhere: no mark stands out
        labels, _n = ndimage.label(mask, structure=np.ones((3, 3), bool))
        marks = _marks(labels, ndimage.find_objects(labels))
        for vertical in (False, True):
            found = _lines(marks, mask.shape, vertical, bright)
            lines += [t for t in found if not (stretched and any(_overlap(t, u) for u in lines))]
    return [TextLine((x * scale, y * scale, w * scale, h * scale), t.vertical, t.bright, t.marks)
            for t in lines for x, y, w, h in [t.box]]  # fmt: skip


def _overlap(a: TextLine, b: TextLine) -> bool:
    """Whether two lines of one orientation share pixels."""
    (ax, ay, aw, ah), (bx, by, bw, bh) = a.box, b.box
    return a.vertical == b.vertical and ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def _shrink(box: Box) -> Box:
    """A box found in the 2x enlarged frame, in the frame's own pixels (rounded outwards)."""
    x, y, w, h = box
    return x // 2, y // 2, -(-(x + w) // 2) - x // 2, -(-(y + h) // 2) - y // 2


def _marks(labels: Any, slices: list[Any]) -> list[tuple[int, int, int, int]]:
    """(y, x, height, width) of each component the size of a character (not a dot, not a bone)."""
    out = []
    for i, sl in enumerate(slices, 1):
        if sl is None:
            continue
        hh, ww = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
        if max(hh, ww) < 5 or max(hh, ww) > 64 or hh * ww < 12:
            continue
        fill = int((labels[sl] == i).sum()) / (hh * ww)
        if 0.12 <= fill <= 0.9 or min(hh, ww) <= 3:
            out.append((sl[0].start, sl[1].start, hh, ww))
    return out


def _lines(
    marks: list[tuple[int, int, int, int]], shape: tuple[int, int], vertical: bool, bright: bool
) -> list[TextLine]:
    import numpy as np
    from scipy import ndimage

    found: dict[Box, TextLine] = {}
    for lo, hi in BANDS:
        chosen = [m for m in marks if lo <= (m[3] if vertical else m[2]) <= hi]
        if len(chosen) < 3:
            continue
        grid = np.zeros(shape, bool)
        for y, x, hh, ww in chosen:
            grid[y : y + hh, x : x + ww] = True
        gap = int(hi * 0.7) + 3  # room for a letter the detector missed (merged, thin) in small text
        structure = np.ones((gap, 1) if vertical else (1, gap), bool)
        groups, _n = ndimage.label(ndimage.binary_dilation(grid, structure))
        counts: dict[int, list[int]] = {}
        for y, x, hh, ww in chosen:
            g = int(groups[y + hh // 2, x + ww // 2])
            counts.setdefault(g, []).append(ww if vertical else hh)
        for g, sl in enumerate(ndimage.find_objects(groups), 1):
            sizes = counts.get(g, [])
            if sl is None or len(sizes) < 3:
                continue
            gh, gw = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
            across, along = (gw, gh) if vertical else (gh, gw)
            regular = float(np.std(sizes)) <= 0.3 * float(np.mean(sizes))
            if regular and along >= 2.5 * across and across <= 1.8 * hi:
                box = (sl[1].start, sl[0].start, gw, gh)
                found[box] = TextLine(box, vertical, bright, len(sizes))
    return list(found.values())


def read_line(img: Any, line: TextLine) -> list[tuple[str, float]]:
    """(word, confidence) of what tesseract reads in one detected line: its crop (with room
    along the line for letters the detector missed), turned upright, dark on light, first with
    the background taken away (the top-hat the detector saw), then as it is; the reading with
    the most confident letters wins."""
    import numpy as np

    x, y, w, h = line.box
    across = w if line.vertical else h
    pad_along, pad_across = max(4, 2 * across), max(3, across // 2)
    px, py = (pad_across, pad_along) if line.vertical else (pad_along, pad_across)
    crop = img[max(0, y - py) : y + h + py, max(0, x - px) : x + w + px]
    if not line.bright:
        crop = 255 - crop  # the marks bright, as the detector saw them
    best: list[tuple[str, float]] = []
    for variant in (_marks_only(crop), 255 - crop):
        for turn in (1, 3) if line.vertical else (0,):
            read = _ocr_line(np.ascontiguousarray(np.rot90(variant, turn)), across)
            if _score(read) > _score(best):
                best = read
        if any(c >= CONFIDENT and len(t) >= 3 for t, c in best):
            break
    return best


def _score(read: list[tuple[str, float]]) -> float:
    return sum(c * len(t) for t, c in read)


def _marks_only(crop: Any) -> Any:
    """Dark marks on white: the crop's top-hat (what stands out of its surroundings), stretched."""
    import numpy as np
    from scipy import ndimage

    size = max(9, min(crop.shape) // 2) | 1
    tophat = crop.astype(np.int16) - ndimage.grey_opening(crop, size=(size, size)).astype(np.int16)
    peak = max(1, int(tophat.max()))
    return (255 - np.clip(tophat * (255 / peak), 0, 255)).astype(np.uint8)


def image_to_data(pil: Any, config: str) -> dict[str, list[Any]]:
    """Tesseract's words in one PIL image (:func:`images_to_data`)."""
    return images_to_data([pil], config)[0]


def images_to_data(pils: list[Any], config: str) -> list[dict[str, list[Any]]]:
    """Tesseract's words (``text``), boxes (``left``, ``top``, ``width``, ``height``) and confidences
    (``conf``, -1 for rows that are no word) in each of 8-bit PIL images, one list per column of its TSV output.

    One tesseract process reads them all, as the pages of one TIFF on its stdin: the words of each page are those
    of a call of its own, without tesseract's start-up (~0.2 CPU-s, loading its model) for every image. It runs on
    one thread (its callers run one process per core): ``OMP_THREAD_LIMIT=1`` goes to its own environment only. Set
    in this process it would reach torch's OpenMP too, whose training then computes NaN (seen: the demo's image
    model after the de-identify stage)."""
    if not pils:
        return []
    tiff = io.BytesIO()
    pils[0].save(tiff, format="TIFF", save_all=True, append_images=pils[1:])
    done = subprocess.run(
        ["tesseract", "stdin", "stdout", *config.split(), "tsv"],
        input=tiff.getvalue(),
        capture_output=True,
        env={**os.environ, "OMP_THREAD_LIMIT": "1"},
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"tesseract failed (exit status {done.returncode})")
    header, *rows = (line.split("\t") for line in done.stdout.decode("utf-8", "replace").splitlines())
    pages: list[dict[str, list[Any]]] = [{column: [] for column in header} for _ in pils]
    for row in rows:
        values = dict(zip(header, row + [""] * (len(header) - len(row)), strict=True))
        data = pages[int(values["page_num"]) - 1]
        for column, value in values.items():
            data[column].append(
                value if column == "text" else float(value or -1) if column == "conf" else int(value or 0)
            )
    return pages


def _ocr_line(crop: Any, across: int) -> list[tuple[str, float]]:
    """Tesseract's words in an upright crop of one line ``across`` pixels high, enlarged to
    the letter size it reads best."""
    from PIL import Image

    pil = Image.fromarray(crop)
    factor = max(1, min(8, round(OCR_LINE_HEIGHT / max(1, across))))
    if factor > 1:
        pil = pil.resize((pil.width * factor, pil.height * factor), Image.Resampling.LANCZOS)
    data = image_to_data(pil, "--psm 7")
    read = [(re.sub(r"\W", "", t), float(c)) for t, c in zip(data["text"], data["conf"], strict=True)]
    return [(t, c) for t, c in read if t]


def allowed(words: list[str]) -> bool:
    """Whether the words read in one line are annotations of the allow-list: each word is one,
    or part of one (a crop that cut letters off), or all of them together read as one with a
    letter or two misread (PORTAGE for PORTABLE); one-letter marks (L, R) are allowed."""
    vocabulary = allowed_words()
    upper = [w.upper() for w in words if len(w) >= 2 or w.isdigit()]

    def near(word: str) -> bool:
        if word in vocabulary or (len(word) >= 4 and any(word in v for v in vocabulary)):
            return True
        slack = 2 if len(word) >= 7 else 1 if len(word) >= 5 else 0
        return slack > 0 and any(abs(len(v) - len(word)) <= slack and _distance(word, v) <= slack for v in vocabulary)

    return all(near(w) for w in upper) or (len(upper) > 1 and near("".join(upper)))


def _distance(a: str, b: str) -> int:
    """Levenshtein distance."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def gate_frame(img: Any, mask: bool = False) -> GateResult:
    """The gate on one 8-bit grey frame; ``mask``: on a frame's :func:`extreme_levels`, where OCR reads words into
    blobs of anatomy, only a confident word of :data:`MASK_LETTERS` letters or a long number fails it."""
    lines = text_lines(img)
    if not lines:
        return GateResult(None)
    if shutil.which("tesseract") is None:
        return GateResult("text-like regions in the pixels and no OCR to read them (tesseract not installed)",
                          len(lines))  # fmt: skip
    for n, line in enumerate(sorted(lines, key=lambda t: -t.marks), 1):
        read = read_line(img, line)
        sure = [w for w, c in read if c >= CONFIDENT and len(w) >= (MASK_LETTERS if mask else SURE_LETTERS)]
        sure += [w for w, c in read if LESS_CONFIDENT <= c < CONFIDENT and sum(map(str.isdigit, w)) >= NUMBER_DIGITS]
        if sure and not allowed(sure):
            return GateResult(OUTSIDE, len(lines), n)
        words = [w for w, _c in read if len(w) >= 2]
        if not mask and not sure and line.marks >= STRONG_MARKS and not (words and allowed(words)):
            return GateResult(UNREADABLE, len(lines), n)
    return GateResult(None, len(lines), len(lines))


def gate_pixels(arr: Any, samples_per_pixel: int = 1, ds: Any = None) -> GateResult:
    """The gate on every view (:func:`shown_views`, with the DICOM ``ds`` the array is of) of every frame of a pixel
    array and on its :func:`extreme_levels`; the first failing image decides."""
    total = GateResult(None)
    for frame in frames_of(arr, samples_per_pixel):
        for view in shown_views(frame, ds):
            for image, mask in ((view, False), *((level, True) for level in extreme_levels(view))):
                one = gate_frame(image, mask)
                total.lines += one.lines
                total.ocr_lines += one.ocr_lines
                if one.reason:
                    total.reason = one.reason
                    return total
    return total


def other_binary(ds: Any, top: bool = True) -> str | None:
    """The keyword (or tag) of the first non-empty binary value other than the image's own pixels
    and lookup tables (an overlay plane, an icon or thumbnail in a sequence, an encapsulated
    document, curve, waveform or audio data, an unknown value): text can hide in each, and the
    gate reads only the image. None when there is none (allow-list: ``BINARY_ALLOWED``; zero
    bytes, such as trailing padding, hold nothing)."""
    for elem in ds:
        if elem.VR == "SQ":
            found = next((f for item in elem.value or [] if (f := other_binary(item, False))), None)
            if found:
                return found
        elif set(str(elem.VR).replace(" or ", " ").split()) & BINARY_VRS and _holds_data(elem.value):
            allowed = elem.keyword == "LUTData" or (top and elem.keyword in BINARY_ALLOWED)
            if not allowed:
                return elem.keyword or f"({elem.tag.group:04X},{elem.tag.element:04X})"
    return None


def native_pixel_bytes(ds: Any) -> int | None:
    """How many bytes the image of an uncompressed dataset takes (None when compressed or unknown)."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is None or syntax.is_compressed or "PixelData" not in ds:
        return None
    try:
        pixels = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1)
        pixels *= int(ds.get("NumberOfFrames", 1) or 1)
        return -(-pixels * int(ds.BitsAllocated) // 8)
    except (AttributeError, TypeError, ValueError):
        return None


def unused_bits(ds: Any) -> tuple[Any, int] | None:
    """The words of native 16-bit pixel data and the mask of their bits above BitsStored, where an
    old-style overlay (a name, burned into bit 15) hides unseen: the decoded image leaves those bits
    out. None when there are no such bits (or the data is compressed, big-endian or not 16-bit)."""
    import numpy as np

    expected = native_pixel_bytes(ds)
    stored, allocated = int(ds.get("BitsStored", 0) or 0), int(ds.get("BitsAllocated", 0) or 0)
    if expected is None or allocated != 16 or not 0 < stored < 16:
        return None
    if not ds.file_meta.TransferSyntaxUID.is_little_endian:
        return None
    return np.frombuffer(ds.PixelData[:expected], dtype="<u2"), 0xFFFF & ~((1 << stored) - 1)


def _hidden_bits(ds: Any) -> bool:
    """Whether the bits above BitsStored hold anything but zeros (or, in signed data, the sign)."""
    import numpy as np

    found = unused_bits(ds)
    if found is None:
        return False
    words, mask = found
    high = words & mask
    return bool(high.any()) if not ds.get("PixelRepresentation", 0) else bool((~np.isin(high, (0, mask))).any())


def _holds_data(value: Any) -> bool:
    """Whether a binary value holds anything (all zero bytes, such as trailing padding, holds nothing)."""
    return bool(value) and (not isinstance(value, bytes) or bool(value.strip(b"\0")))


def gate_dicom(source: Path | bytes) -> str | None:
    """Why a DICOM file (a path or its bytes) may not enter the research zone for its pixels,
    or None when it may. Pixels that cannot be decoded cannot be shown clean: they fail."""
    import io

    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(source) if isinstance(source, bytes) else source, force=True)
        arr = ds.pixel_array
    except Exception:  # decoders raise many kinds (and quote nothing useful)
        return "pixel data cannot be decoded, so it cannot be shown free of burned-in text"
    expected = native_pixel_bytes(ds)
    if expected is not None and len(ds.PixelData) > expected + 1:
        return "pixel data longer than its image (bytes that are never shown cannot be checked)"
    if _hidden_bits(ds):
        return "pixel bits above BitsStored hold data (an overlay a viewer may show, never checked)"
    hidden = other_binary(ds)
    if hidden:
        return f"binary data outside the image pixels ({hidden}) cannot be shown free of text"
    try:
        return gate_pixels(arr, int(ds.get("SamplesPerPixel", 1) or 1), ds).reason
    except Exception as err:  # OCR or array failures fail closed: the pixels were not shown clean
        return f"the pixels could not be checked for burned-in text ({type(err).__name__})"
