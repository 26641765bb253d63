"""VCF (plain or bgzipped) into variant rows, via cyvcf2.

The header must describe GRCh38: a ``##reference`` naming another build (GRCh37, hg19, ...)
or a ``##contig`` whose length is not its GRCh38 length quarantines the whole file; a file
that states no build at all is accepted. Each data line is checked before cyvcf2 sees it
(column count, position, alleles, genotypes); a malformed line is quarantined on its own
(``line n``, 1-based in the uncompressed file) and the other lines are ingested. One row per
record and sample (one row with ``sample`` NULL for a sites-only VCF).

:func:`stream_vcf` reads a file of any size in bounded memory: the text is decompressed and read
line by line, :data:`STREAM_LINES` data lines at a time are checked, parsed by cyvcf2 and written
as one Parquet row group, so a process holds at most one block of lines and its rows (about
``STREAM_LINES`` x samples rows; with the default 50,000 lines and one sample, tens of MB)
whatever the file's size.
"""

from __future__ import annotations

import gzip
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carelens.core.errors import InputError

VCF_SUFFIXES = (".vcf", ".vcf.gz", ".vcf.bgz")
GRCH38_LENGTHS = {
    "1": 248956422, "2": 242193529, "3": 198295559, "4": 190214555, "5": 181538259, "6": 170805979,
    "7": 159345973, "8": 145138636, "9": 138394717, "10": 133797422, "11": 135086622, "12": 133275309,
    "13": 114364328, "14": 107043718, "15": 101991189, "16": 90338345, "17": 83257441, "18": 80373285,
    "19": 58617616, "20": 64444167, "21": 46709983, "22": 50818468, "X": 156040895, "Y": 57227415,
    "M": 16569, "MT": 16569,
}  # fmt: skip
_OTHER_BUILDS = ("grch37", "hg19", "hg18", "b37", "hs37", "ncbi36", "ncbi37", "grch36", "t2t", "chm13", "hs1")
_GRCH38_NAMES = ("grch38", "hg38", "b38", "gca_000001405.15", "hs38")
_BASES = re.compile(r"^[ACGTNacgtn]+$")
_ALT = re.compile(
    r"^([ACGTNacgtn]+|\*|<[^<>,]+>|[ACGTNacgtn]*[\[\]][^\[\],]+[\[\]][ACGTNacgtn]*|\.[ACGTNacgtn]+|[ACGTNacgtn]+\.)$"
)
_GT = re.compile(r"(\.|[0-9]{1,4})([/|](\.|[0-9]{1,4}))*")  # ASCII digits: htslib refuses (or crashes on) others
_CHROM = re.compile(r"[!-~]+")  # printable ASCII, no space
POSITION = re.compile(r"[0-9]{1,10}")  # ASCII: htslib cannot read (and cyvcf2 crashes on) other digits
_QUAL = re.compile(r"[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]{1,3})?")
_MAX_POS = 2**31 - 1  # BCF's limit; htslib crashes reading a larger or non-ASCII POS
_CONTIG = re.compile(r"ID=([^,>]+)")
_LENGTH = re.compile(r"length=(\d+)")


@dataclass
class VcfResult:
    """The rows of one VCF and its malformed lines (line number, reason)."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    records: int = 0
    bad_lines: list[tuple[int, str]] = field(default_factory=list)


def is_vcf(path: Path) -> bool:
    return path.name.lower().endswith(VCF_SUFFIXES)


def read_vcf(path: Path, data: bytes, source: str) -> VcfResult:
    """Variant rows ``(sample, chrom, pos, id, ref, alt, qual, filter, gt, phased, source,
    where)`` of one VCF given as its file bytes; raises ``InputError`` for a file that cannot
    be used at all (not VCF, not GRCh38, bad compression)."""
    text = _text(data)
    lines = text.split("\n")
    header, body_start = _header(lines)
    _check_build(header)
    columns = header[-1].split("\t")
    n_samples = max(0, len(columns) - 9)
    result = VcfResult()
    good: list[str] = []
    numbers: list[int] = []
    for index in range(body_start, len(lines)):
        line = lines[index].rstrip("\r")
        if not line:
            continue
        problem = _line_problem(line.split("\t"), n_samples)
        if problem:
            result.bad_lines.append((index + 1, problem))
        else:
            good.append(line)
            numbers.append(index + 1)
    if good:
        result.rows = _parse(header, good, numbers, source)
    result.records = len(good)
    return result


def sample_count(path: Path, data: bytes = b"") -> int | None:
    """How many samples the VCF's ``#CHROM`` line names (0: a sites-only VCF, such as ClinVar's),
    read from its header only (``data``: the file's bytes, else the file is opened); None when
    the header cannot be read (the reader then says why)."""
    try:
        if data:  # a small file, read whole already
            return _stream_header(iter(_text(data).split("\n")))[1]
        with _open_text(path) as lines:
            return _stream_header(lines)[1]
    except (InputError, OSError, EOFError, UnicodeDecodeError):
        return None


STREAM_LINES = 50_000


def stream_vcf(path: Path, source: str, part: Path, schema: Any) -> VcfResult:
    """Read ``path`` block by block into the Parquet file ``part`` (``schema``: the variants
    table's); ``rows`` of the result stays empty. Raises ``InputError`` like :func:`read_vcf`
    (``part`` is then not left behind)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    result = VcfResult()
    writer: Any = None
    try:
        with _open_text(path) as lines:
            header, n_samples, number = _stream_header(lines)
            good: list[str] = []
            numbers: list[int] = []

            def flush() -> None:
                nonlocal writer
                rows = _parse(header, good, numbers, source)
                columns: list[Any] = list(zip(*rows, strict=True)) if rows else [[] for _ in schema]
                arrays = [pa.array(list(c), type=f.type) for c, f in zip(columns, schema, strict=True)]
                table = pa.Table.from_arrays(arrays, schema=schema)
                if writer is None:
                    writer = pq.ParquetWriter(part, schema, compression="zstd")
                writer.write_table(table)
                good.clear()
                numbers.clear()

            for raw in lines:
                number += 1
                line = raw.rstrip("\n").rstrip("\r")
                if not line:
                    continue
                problem = _line_problem(line.split("\t"), n_samples)
                if problem:
                    result.bad_lines.append((number, problem))
                    continue
                good.append(line)
                numbers.append(number)
                result.records += 1
                if len(good) >= STREAM_LINES:
                    flush()
            if good or writer is None:
                flush()
    except (OSError, EOFError) as err:
        part.unlink(missing_ok=True)
        raise InputError(f"truncated or damaged gzip/bgzip compression ({type(err).__name__})") from None
    except UnicodeDecodeError:
        part.unlink(missing_ok=True)
        raise InputError("not a VCF text file (invalid UTF-8)") from None
    except InputError:
        part.unlink(missing_ok=True)
        raise
    finally:
        if writer is not None:
            writer.close()
    return result


@contextmanager
def _open_text(path: Path) -> Iterator[Iterator[str]]:
    with open(path, "rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    if gz:
        with gzip.open(path, "rt", encoding="utf-8", newline="\n") as handle:
            yield iter(handle)
    else:
        with open(path, encoding="utf-8", newline="\n") as handle:
            yield iter(handle)


def _stream_header(lines: Iterator[str]) -> tuple[list[str], int, int]:
    """The header lines (through ``#CHROM``), the number of samples and the last line number read."""
    header: list[str] = []
    for raw in lines:
        line = raw.rstrip("\n").rstrip("\r")
        header.append(line)
        if line.startswith("#CHROM"):
            break
        if len(header) == 1 and not line.startswith("##fileformat=VCF"):
            raise InputError("not a VCF file (first line is not ##fileformat=VCF...)")
        if not line.startswith("##"):
            raise InputError("VCF header has no #CHROM line")
    if not header or not header[0].startswith("##fileformat=VCF"):
        raise InputError("not a VCF file (first line is not ##fileformat=VCF...)")
    if not header[-1].startswith("#CHROM"):
        raise InputError("VCF header has no #CHROM line")
    if len(header[-1].split("\t")) < 8:
        raise InputError(f"malformed #CHROM header line (line {len(header)})")
    _check_build(header)
    return header, max(0, len(header[-1].split("\t")) - 9), len(header)


def _text(data: bytes) -> str:
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError):
            raise InputError("truncated or damaged gzip/bgzip compression") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"not a VCF text file (invalid UTF-8 at byte {err.start})") from None


def _header(lines: list[str]) -> tuple[list[str], int]:
    if not lines or not lines[0].startswith("##fileformat=VCF"):
        raise InputError("not a VCF file (first line is not ##fileformat=VCF...)")
    for index, line in enumerate(lines):
        if line.startswith("#CHROM"):
            if len(line.rstrip("\r").split("\t")) < 8:
                raise InputError(f"malformed #CHROM header line (line {index + 1})")
            return [h.rstrip("\r") for h in lines[: index + 1]], index + 1
        if not line.startswith("##"):
            break
    raise InputError("VCF header has no #CHROM line")


def _check_build(header: list[str]) -> None:
    for line in header:
        low = line.lower()
        if low.startswith("##reference=") or (low.startswith("##contig=") and "assembly=" in low):
            value = low.split("assembly=", 1)[1] if low.startswith("##contig=") else low
            if any(name in value for name in _OTHER_BUILDS) and not any(name in value for name in _GRCH38_NAMES):
                raise InputError("non-GRCh38 header (##reference or contig assembly names another genome build)")
        if low.startswith("##contig="):
            contig, length = _CONTIG.search(line), _LENGTH.search(line)
            if contig and length:
                name = contig.group(1).removeprefix("chr")
                expected = GRCH38_LENGTHS.get(name)
                if expected is not None and int(length.group(1)) != expected:
                    raise InputError(f"non-GRCh38 header (contig {name} length is not its GRCh38 length)")


def _line_problem(fields: list[str], n_samples: int) -> str | None:
    """Why a data line cannot go to cyvcf2 (None: it can). An allow-list of each field htslib parses:
    cyvcf2 0.34 crashes the process on a POS it cannot read (its fix, brentp/cyvcf2#334, needs numpy 2)."""
    expected = 9 + n_samples if n_samples else 8
    if len(fields) < 8 or (n_samples and len(fields) != expected):
        return f"malformed line ({len(fields)} columns, expected {expected})"
    if not _CHROM.fullmatch(fields[0]):
        return "malformed line (CHROM is empty or not printable ASCII)"
    if not POSITION.fullmatch(fields[1]) or int(fields[1]) > _MAX_POS:
        return "malformed line (POS is not a number from 0 to 2^31 - 1)"
    if not _BASES.match(fields[3]):
        return "malformed line (REF is not a sequence of bases)"
    if fields[4] != "." and not all(_ALT.match(a) for a in fields[4].split(",")):
        return "malformed line (ALT allele is not valid)"
    if fields[5] != "." and not _QUAL.fullmatch(fields[5]):
        return "malformed line (QUAL is not a number)"
    if n_samples and fields[8].split(":", 1)[0] == "GT":
        alleles = 1 + (0 if fields[4] == "." else fields[4].count(",") + 1)
        for sample in fields[9:]:
            gt = sample.split(":", 1)[0]
            if not _GT.fullmatch(gt) or any(int(a) >= alleles for a in re.split(r"[/|]", gt) if a != "."):
                return "malformed line (genotype is not valid)"
    return None


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """htslib warns on fd 2 (contig names, positions); keep the command's stderr clean."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _parse(header: list[str], lines: list[str], numbers: list[int], source: str) -> list[tuple[Any, ...]]:
    from cyvcf2 import VCF

    rows: list[tuple[Any, ...]] = []
    # an unnamed file (no name on disk even for a moment on Linux): a killed ingest leaves no genotypes behind
    with tempfile.TemporaryFile() as checked:
        checked.write(("\n".join(header + lines) + "\n").encode("utf-8"))
        checked.flush()
        checked.seek(0)
        with _quiet_stderr():
            vcf = VCF(checked.fileno(), gts012=False, strict_gt=False)
            samples = list(vcf.samples)
            for number, record in zip(numbers, vcf, strict=True):
                alt = ",".join(record.ALT) or None
                filters = ";".join(record.FILTERS) or None
                qual = None if record.QUAL is None else float(record.QUAL)
                base = (record.CHROM, int(record.POS), record.ID, record.REF, alt, qual, filters)
                where = f"line {number}"
                if not samples:
                    rows.append((None, *base, None, None, source, where))
                    continue
                for sample, genotype in zip(samples, record.genotypes, strict=True):
                    gt, phased = _genotype(genotype)
                    rows.append((sample, *base, gt, phased, source, where))
            vcf.close()
    return rows


def _genotype(genotype: list[Any]) -> tuple[str, bool]:
    *alleles, phased = genotype
    text = ("|" if phased else "/").join("." if a < 0 else str(a) for a in alleles)
    return text, bool(phased)
