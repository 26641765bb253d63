# ruff: noqa: E501
"""Benchmark: structured de-identification throughput beside plain parsing of the same files.

FHIR resources/s (``deid_fhir_path`` on Synthea bundles vs orjson parsing and walking the
entries), DICOM instances/s with OCR of burned-in text (``deid_dicom_path`` vs ``pydicom.dcmread``
+ decoding the pixels), VCF records/s (``deid_vcf`` vs reading and splitting each line). Wall and
CPU seconds (this process plus its tesseract children); the machine load is printed beside them.
Writes ``benchmarks/results/deid_structured.md`` with ``--write``.

    .venv/bin/python benchmarks/deid_structured.py [--fhir-files 10] [--dicom 6] [--write]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from carelens.core.config import shared_data_dir
from carelens.privacy.keys import KeyService


def cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[], int]) -> tuple[int, float, float]:
    c0, t0 = cpu(), time.perf_counter()
    n = fn()
    return n, time.perf_counter() - t0, cpu() - c0


def fhir(data: Path, files: int, work: Path, keys: KeyService) -> tuple[tuple, tuple]:
    from carelens.privacy.fhir import deid_fhir_path

    src = work / "fhir-src"
    src.mkdir()
    for path in sorted((data / "fhir" / "synthea-r4").glob("*.json"))[:files]:
        shutil.copy(path, src / path.name)

    def parse() -> int:
        n = 0
        for path in sorted(src.glob("*.json")):
            bundle = orjson.loads(path.read_bytes())
            n += sum(1 for e in bundle.get("entry", []) if isinstance(e.get("resource"), dict))
        return n

    def deid() -> int:
        return deid_fhir_path(src, work / "fhir-out", keys).done["resources"]

    measured = timed(parse), timed(deid)
    print(f"FHIR output digest (compare across commits: byte-identical output): {tree_digest(work / 'fhir-out')}")
    return measured


def tree_digest(root: Path) -> str:
    """SHA-256 over the relative names and bytes of every file under ``root``."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def dicom(data: Path, count: int, work: Path, keys: KeyService) -> tuple[tuple, tuple]:
    import numpy as np
    import pydicom
    from PIL import Image, ImageDraw, ImageFont
    from pydicom.data import get_testdata_file

    from carelens.privacy.dicom import deid_dicom_path

    src = work / "dicom-src"
    src.mkdir()
    sources = [get_testdata_file("CT_small.dcm"), get_testdata_file("CT_small.dcm"), get_testdata_file("MR_small.dcm")]
    cr = data / "imaging" / "chest-cr-rsna.dcm"
    if cr.exists():
        sources.append(str(cr))
    for i in range(count):
        ds = pydicom.dcmread(sources[i % len(sources)])
        ds.PatientName, ds.PatientID = f"Doe{i}^Jane", f"MRN{i:06d}"
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.2.1125.99.{i}"
        if i % 2 == 0 and min(ds.Rows, ds.Columns) >= 128:  # half carry burned-in text (some vertical)
            ds.decompress() if ds.file_meta.TransferSyntaxUID.is_compressed else None
            arr = ds.pixel_array.copy()
            mask = Image.new("L", (120, 24), 0)
            ImageDraw.Draw(mask).text((2, 2), f"DOE MRN{i:06d}", fill=255, font=ImageFont.load_default(size=16))
            stamp = np.asarray(mask.rotate(90 if i % 4 == 2 else 0, expand=True)) > 127
            arr[4 : 4 + stamp.shape[0], 4 : 4 + stamp.shape[1]][stamp] = arr.max()
            ds.PixelData = arr.tobytes()
        ds.save_as(src / f"img{i:03d}.dcm", enforce_file_format=True)

    def parse() -> int:
        n = 0
        for path in sorted(src.glob("*.dcm")):
            _ = pydicom.dcmread(path).pixel_array
            n += 1
        return n

    def deid() -> int:
        result = deid_dicom_path(src, work / "dicom-out", keys)
        for q in result.quarantined:
            print(f"  quarantined: {q.reason}", file=sys.stderr)
        return result.done["dicom"]

    return timed(parse), timed(deid)


def vcf(data: Path, work: Path, keys: KeyService) -> tuple[tuple, tuple]:
    from carelens.privacy.vcf import deid_vcf

    files = sorted(p for p in (data / "genomics").rglob("*") if p.name.endswith((".vcf", ".vcf.gz", ".vcf.bgz")))

    def parse() -> int:
        n = 0
        for path in files:
            opener = gzip.open if path.name.endswith(("gz", "bgz")) else open
            with opener(path, "rt", encoding="utf-8") as handle:
                for line in handle:
                    if not line.startswith("#"):
                        line.rstrip("\n").split("\t")
                        n += 1
        return n

    def deid() -> int:
        n = 0
        for i, path in enumerate(files):
            n += deid_vcf(path, work / "vcf-out" / f"{i}.vcf.gz", keys)["records"]
        return n

    return timed(parse), timed(deid)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fhir-files", type=int, default=10)
    ap.add_argument("--dicom", type=int, default=6)
    ap.add_argument("--write", action="store_true", help="write benchmarks/results/deid_structured.md")
    ap.add_argument("--only", choices=("fhir", "dicom", "vcf"), help="measure one kind only (not with --write)")
    args = ap.parse_args()
    data = shared_data_dir()
    if data is None:
        sys.exit("no shared data (../shared/data): nothing to measure")
    keys = KeyService(b"benchmark-deid-structured-0123456789")
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        kinds = (
            ("fhir", "FHIR (Synthea bundles)", "resources", lambda: fhir(data, args.fhir_files, work, keys)),
            (
                "dicom",
                "DICOM (with OCR, half with burned-in text)",
                "instances",
                lambda: dicom(data, args.dicom, work, keys),
            ),
            ("vcf", "VCF (shared genomics files)", "records", lambda: vcf(data, work, keys)),
        )
        for kind, name, unit, measure in kinds:
            if args.only in (None, kind):
                plain, deid = measure()
                rows.append((name, unit, plain, deid))
    load_after = os.getloadavg()
    lines = [
        "| data | items | plain parse: /s wall (/CPU-s) | de-identify: /s wall (/CPU-s) | slower by (wall) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, unit, (n0, w0, c0), (n1, w1, c1) in rows:
        lines.append(
            f"| {name} | {n1} {unit} (parsed {n0}) | {n0 / w0:,.0f} ({n0 / max(c0, 1e-9):,.0f}) | "
            f"{n1 / w1:,.1f} ({n1 / max(c1, 1e-9):,.1f}) | {(w1 / max(n1, 1)) / (w0 / max(n0, 1)):,.0f}x |"
        )
    load = f"load average before {load_before[0]:.2f} {load_before[1]:.2f}, after {load_after[0]:.2f} {load_after[1]:.2f} (2 cores)"
    table = "\n".join(lines)
    print(table)
    print(load)
    if args.write and args.only is None:
        out = Path(__file__).parent / "results" / "deid_structured.md"
        cmd = f"python benchmarks/deid_structured.py --fhir-files {args.fhir_files} --dicom {args.dicom} --write"
        out.write_text(
            "# Structured de-identification throughput\n\n"
            f"`{cmd}` on the shared data ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}); {load}.\n\n"
            + table
            + "\n\nPlain parse: orjson loads and walks the bundle entries; pydicom reads the file and decodes "
            "its pixels; each VCF line is read and split. De-identify: `deid_fhir_path` (allow-list profile, "
            "text de-identifier on every free-text string, known-identifier search), `deid_dicom_path` (Annex E "
            "table, OCR at 0/90/270 degrees on several polarities plus the text-region detector, blanking, the "
            "same check again), `deid_vcf` (header and field allow-lists). CPU seconds include the tesseract "
            "processes.\n"
        )
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
