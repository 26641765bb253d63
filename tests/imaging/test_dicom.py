"""DICOM read as a viewer shows it: modality LUT, VOI LUT, MONOCHROME1, compressed syntaxes; refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from carelens.core import InputError
from carelens.imaging import read_image

CANARY = "Zyxwv^Canary"


def _testfile(name: str) -> Path:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"pydicom test file {name} not available")
    return Path(path)


def test_mr_small_reads_in_unit_range() -> None:
    img = read_image(_testfile("MR_small.dcm"))
    assert img.kind == "dicom" and img.modality == "MR" and img.photometric == "MONOCHROME2"
    assert img.pixels.shape == (64, 64) and img.pixels.dtype == np.float32
    assert img.pixels.min() == 0.0 and img.pixels.max() == 1.0
    assert img.dicom["SOPInstanceUID"]


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_testfile("MR_small.dcm"))
    normal = read_image(_testfile("MR_small.dcm")).pixels
    ds.PhotometricInterpretation = "MONOCHROME1"
    path = tmp_path / "mono1.dcm"
    ds.save_as(path)
    inverted = read_image(path)
    assert inverted.photometric == "MONOCHROME1"
    np.testing.assert_allclose(inverted.pixels, 1.0 - normal, atol=1e-6)


def test_rescale_and_window_are_applied(tmp_path: Path) -> None:
    """CT_small stores raw values with slope 1, intercept -1024; a soft-tissue window (40/400 HU)
    must clip in Hounsfield units, which only works if the rescale was applied first."""
    ds = pydicom.dcmread(_testfile("CT_small.dcm"))
    ds.WindowCenter, ds.WindowWidth = 40, 400
    path = tmp_path / "ct_window.dcm"
    ds.save_as(path)
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    pixels = read_image(path).pixels
    below, above = hu < 40 - 200, hu > 40 + 200
    assert below.any() and above.any()
    assert np.all(pixels[below] == 0.0)
    assert np.all(pixels[above] == 1.0)
    inside = ~below & ~above
    assert np.corrcoef(pixels[inside], hu[inside])[0, 1] > 0.99


def test_voi_lut_sequence_is_applied(tmp_path: Path) -> None:
    """A VOI LUT (here a step at raw value 1000) replaces the window: output follows the table."""
    ds = pydicom.dcmread(_testfile("MR_small.dcm"))
    raw = ds.pixel_array.astype(np.int64)
    del ds.WindowCenter, ds.WindowWidth
    lut = pydicom.Dataset()
    lut.add_new("LUTDescriptor", "US", [4096, 0, 16])
    lut.add_new("LUTData", "US", [0 if v < 1000 else 4095 for v in range(4096)])
    ds.VOILUTSequence = [lut]
    path = tmp_path / "voi_lut.dcm"
    ds.save_as(path)
    pixels = read_image(path).pixels
    assert 0 < (raw >= 1000).mean() < 1
    np.testing.assert_array_equal(pixels, (raw >= 1000).astype(np.float32))


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"])
def test_lossless_compressed_syntaxes_match_uncompressed(name: str) -> None:
    reference = read_image(_testfile("MR_small.dcm")).pixels
    np.testing.assert_allclose(read_image(_testfile(name)).pixels, reference, atol=1e-6)


def test_jpeg2000_and_jpeg_baseline_decode(shared_data: Path) -> None:
    j2k = read_image(_testfile("JPEG2000.dcm"))
    assert j2k.pixels.shape == (1024, 256)
    chest = read_image(shared_data / "imaging" / "chest-cr-rsna.dcm")
    assert chest.modality == "CR" and chest.pixels.shape == (1024, 1024)
    assert 0.2 < float(chest.pixels.mean()) < 0.8


def test_png_reads(shared_data: Path) -> None:
    img = read_image(shared_data / "imaging" / "chest-xray-nih-00000001_000.png")
    assert img.kind == "png" and img.pixels.ndim == 2 and img.channels == 1


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("rtplan.dcm", "holds no image"),
        ("test-SR.dcm", "holds no image"),
        ("SC_rgb_rle_2frame.dcm", "multi-frame"),
        ("MR_truncated.dcm", "cannot be decoded"),
        ("examples_palette.dcm", "photometric interpretation PALETTE COLOR"),
    ],
)
def test_refusals_carry_a_reason(name: str, reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        read_image(_testfile(name))


def test_undecodable_transfer_syntax_is_named() -> None:
    """JPEG Lossless (Process 14) has no handler installed here: the reason names the syntax."""
    with pytest.raises(InputError, match="JPEG Lossless"):
        read_image(_testfile("SC_rgb_jpeg_gdcm.dcm"))


def test_not_dicom_and_corrupt_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(InputError, match=r"not a DICOM file|corrupt DICOM"):
        read_image(junk)
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(InputError, match="not a readable image"):
        read_image(text)


def test_reasons_never_quote_patient_data(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_testfile("SC_rgb_rle_2frame.dcm"))
    ds.PatientName = CANARY
    ds.PatientID = "CANARY-ID-4711"
    path = tmp_path / "phi.dcm"
    ds.save_as(path)
    with pytest.raises(InputError) as err:
        read_image(path)
    assert CANARY not in str(err.value) and "CANARY-ID-4711" not in str(err.value)


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` grey pixels and holds none (its header alone)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(("width", "height"), [(9000, 9000), (15000, 15000), (1, 100_000_000)])
def test_an_image_too_large_to_be_a_radiograph_is_refused_before_it_is_decoded(
    width: int, height: int, tmp_path: Path
) -> None:
    """A 218 KB PNG of 15,000 x 15,000 pixels ended ``image predict`` with "internal error
    (DecompressionBombError)", the rest of the batch unread."""
    path = tmp_path / "large.png"
    path.write_bytes(_png_header(width, height))
    with pytest.raises(InputError, match=r"more than (the )?[\d,]+ pixels"):
        read_image(path)


def test_a_dicom_declaring_too_many_pixels_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_testfile("MR_small.dcm"))
    ds.Rows = ds.Columns = 9000
    path = tmp_path / "large.dcm"
    ds.save_as(path)
    with pytest.raises(InputError, match="image is 9000x9000 px, more than"):
        read_image(path)
