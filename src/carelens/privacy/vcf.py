"""VCF de-identification by allow-list (``data/vcf_allowlist.json``).

Header: ``##fileformat``; ``##contig`` with ID and length only; ``##INFO``/``##FORMAT``/
``##FILTER``/``##ALT`` definitions of allowed ids with ID, Number, Type and the Description
run through the text de-identifier; every other ``##`` line (``##source``, ``##commandline``,
``##reference``, ``##fileDate``, ``##SAMPLE``...) and free ``#`` comment is removed. Records:
the ID column keeps dbSNP ids only, INFO and FORMAT keys not allowed are removed, INFO values
and FILTER names are kept only when they are plain tokens (free text in them is searched for the
known identifiers), sample ids become the patients' pseudonyms. A broken file (no
``##fileformat``, no ``#CHROM`` line before records, malformed meta or record lines) raises
``InputError`` and nothing is written.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from carelens.core.errors import InputError
from carelens.ingest.vcf import POSITION
from carelens.privacy.detect import detect_phi
from carelens.privacy.keys import KeyService
from carelens.privacy.known import Known, add_file_name

_META = re.compile(r"^##([A-Za-z_]+)=(.*)$")
_STRUCT = re.compile(r'([A-Za-z_]+)=("(?:[^"\\]|\\.)*"|[^,]*)')
_TOKEN = re.compile(r"^[A-Za-z0-9_.+*:\-]{1,64}$")
_VALUE = re.compile(r"^[A-Za-z0-9_.,:|/&()+\-=%*>~\[\]?]*$")
_REF = re.compile(r"^[ACGTNacgtn]+$")
_ALT = re.compile(
    r"^(?:[ACGTNacgtn*.]+|<[A-Za-z0-9_:.*\-]+>|[ACGTNacgtn]*[\[\]][A-Za-z0-9_.]+:\d+[\[\]][ACGTNacgtn]*)$"
)
_STANDARD_SV = re.compile(r"^(?:DEL|INS|DUP|INV|CNV|BND|NON_REF|\*)(?::[A-Z0-9_]{1,16}){0,3}$")  # VCF 4.3 1.4.5
_VERSION = re.compile(r"^VCFv\d\.\d$")
SAMPLE_WORDS = frozenset({"vcf", "sample", "samples", "genome", "exome", "variants", "tumor", "normal", "germline"})
_CHROM = re.compile(r"^[A-Za-z0-9_.\-]{1,40}$")
_RSID = re.compile(r"^rs[0-9]{1,12}$")


@lru_cache(maxsize=1)
def allow_list() -> dict[str, Any]:
    """The shipped allow-list: INFO keys, FORMAT keys and meta-line keys that may leave."""
    text = resources.files("carelens.privacy").joinpath("data/vcf_allowlist.json").read_text()
    data = json.loads(text)
    return {k: set(data[k]) for k in ("info", "format", "meta")}


def deid_vcf(src: Path, out: Path, keys: KeyService, sample_map: Callable[[str], str] | None = None,
             known: Known | None = None) -> dict[str, int]:  # fmt: skip
    """Write a de-identified copy of ``src`` to ``out`` (gzip when ``out`` ends in .gz).

    ``sample_map(sample)`` gives the patient id of a sample (default: the sample name itself);
    its pseudonym replaces the sample id. ``known``: identifiers to search free text for (the
    sample ids and the file's name are always searched). Written atomically; ``InputError``
    with a one-line reason on a broken or non-VCF file (never its name: file names can name the patient).
    """
    mapping = sample_map or (lambda s: s)
    opener = gzip.open if src.name.endswith((".gz", ".bgz")) else open
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gzip.open if out.name.endswith(".gz") else open
    job = _Job(Known(values=set(known.values)) if known else Known())
    add_file_name(src, job.known, SAMPLE_WORDS)
    counts = {"records": 0, "samples": 0, "header_lines_removed": 0, "records_dropped": 0}
    try:
        with opener(src, "rt", encoding="utf-8") as inp, writer(tmp, "wt", encoding="utf-8") as dst:
            first = inp.readline()
            if not first.startswith("##fileformat=VCF"):
                raise InputError("not a VCF (no ##fileformat=VCF header)")
            version = first.split("=", 1)[1].strip()
            dst.write(f"##fileformat={version if _VERSION.match(version) else 'VCFv4.2'}\n")
            header: list[str] = []
            seen_chrom = False
            for n, line in enumerate(inp, 2):
                line = line.rstrip("\n")
                if line.startswith("##"):
                    header.append(line)
                elif line.startswith("#CHROM"):
                    cols = line.split("\t")
                    if cols[:8] != ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]:
                        raise InputError(f"line {n}: malformed #CHROM header")
                    for sample in cols[9:]:
                        job.known.add("sample", sample)
                        add_file_name(Path(sample), job.known, SAMPLE_WORDS)  # "Zebulon_Quixley": each name
                    for meta in header:
                        cleaned = job.meta_line(meta)
                        if cleaned is None:
                            counts["header_lines_removed"] += 1
                        else:
                            dst.write(cleaned + "\n")
                    samples = [keys.pseudonym(mapping(s)) for s in cols[9:]]
                    counts["samples"] = len(samples)
                    dst.write("\t".join(cols[:9] + samples if samples else cols[:8]) + "\n")
                    seen_chrom = True
                elif line.startswith("#"):
                    counts["header_lines_removed"] += 1  # a free comment
                elif not line.strip():
                    continue
                elif not seen_chrom:
                    raise InputError(f"line {n}: a record before the #CHROM header")
                else:
                    record = job.record(line, counts["samples"], n)
                    if record is None:
                        counts["records_dropped"] += 1
                    else:
                        dst.write(record + "\n")
                        counts["records"] += 1
            if not seen_chrom:
                raise InputError("no #CHROM header line")
        os.replace(tmp, out)
    except (UnicodeDecodeError, EOFError, OSError, gzip.BadGzipFile) as err:
        tmp.unlink(missing_ok=True)
        raise InputError(f"unreadable VCF ({type(err).__name__})") from None
    except InputError:
        tmp.unlink(missing_ok=True)
        raise
    return counts


class _Job:
    """One file's cleaning: the identifiers to search for, the declared ids."""

    def __init__(self, known: Known) -> None:
        self.known = known
        self.filters: set[str] = {"PASS"}
        self.alts: set[str] = set()
        self._text: dict[str, str] = {}

    def text(self, value: str) -> str:
        """A header description with what looks like PHI replaced by its type in brackets (metadata,
        not narrative: a surrogate name here could be another patient's name)."""
        if value not in self._text:
            pieces, at = [], 0
            for span in sorted(detect_phi(value), key=lambda s: s.start):
                if span.start >= at:
                    pieces += [value[at : span.start], f"[{span.type}]"]
                    at = span.end
            cleaned = "".join([*pieces, value[at:]])
            self._text[value] = self.known.scrub(cleaned).replace('"', "'")
        return self._text[value]

    def meta_line(self, line: str) -> str | None:
        """The header line as it may leave, or None when it must go."""
        m = _META.match(line)
        allowed = allow_list()
        if not m or m.group(1) not in allowed["meta"] or m.group(1) == "fileformat":
            return None
        key, value = m.groups()
        if not (value.startswith("<") and value.endswith(">")):
            raise InputError(f"malformed ##{key} line")
        fields = dict(_STRUCT.findall(value[1:-1]))
        ident = fields.get("ID", "")
        if not _TOKEN.match(ident):
            raise InputError(f"##{key} line without a valid ID")
        if self.known.scrub(ident) != ident:
            return None
        if key == "contig":
            length = fields.get("length", "")
            return f"##contig=<ID={ident}" + (f",length={length}" if length.isdigit() else "") + ">"
        if (key == "INFO" and ident not in allowed["info"]) or (key == "FORMAT" and ident not in allowed["format"]):
            return None
        if key == "FILTER":
            self.filters.add(ident)
        if key == "ALT":
            self.alts.add(ident)
        parts = [f"ID={ident}"]
        for attr in ("Number", "Type"):
            if attr in fields and _TOKEN.match(fields[attr]):
                parts.append(f"{attr}={fields[attr]}")
        description = fields.get("Description", "").strip('"')
        parts.append(f'Description="{self.text(description)}"')
        return f"##{key}=<" + ",".join(parts) + ">"

    def record(self, line: str, samples: int, n: int) -> str | None:
        cols = line.split("\t")
        if len(cols) < 8 or len(cols) != (9 + samples if samples else len(cols)) or not POSITION.fullmatch(cols[1]):
            raise InputError(f"line {n}: malformed record")
        chrom, pos, ident, ref, alt, qual, flt, info = cols[:8]
        if not _CHROM.match(chrom) or self.known.scrub(chrom) != chrom or not _REF.match(ref):
            return None
        alts = alt.split(",")
        if not all(_ALT.match(a) and self.known.scrub(a) == a for a in alts):
            return None
        symbolic = [a[1:-1] for a in alts if a.startswith("<")]
        if not all(s in self.alts or _STANDARD_SV.match(s) for s in symbolic):
            return None  # a symbolic allele neither declared nor standard: its name could be anything
        ids = [i for i in ident.split(";") if _RSID.match(i)]
        qual = qual if re.fullmatch(r"[0-9.eE+\-]+|\.", qual) else "."
        filters = [f for f in flt.split(";") if f in self.filters]
        out = [chrom, pos, ";".join(ids) or ".", ref, alt, qual, ";".join(filters) or ".", self.info(info)]
        if samples:
            out += self.sample_columns(cols[8], cols[9:])
        return "\t".join(out)

    def info(self, info: str) -> str:
        allowed = allow_list()["info"]
        kept = []
        for item in info.split(";"):
            key, _eq, value = item.partition("=")
            if key in allowed and _VALUE.match(value) and self.known.scrub(value) == value:
                kept.append(item)
        return ";".join(kept) or "."

    def sample_columns(self, fmt: str, values: list[str]) -> list[str]:
        allowed = allow_list()["format"]
        keys = fmt.split(":")
        keep = [i for i, k in enumerate(keys) if k in allowed]
        out = [":".join(keys[i] for i in keep) or "GT"]
        for value in values:
            parts = value.split(":")
            cells = [parts[i] if i < len(parts) and re.fullmatch(r"[0-9.,/|\-eE+]*", parts[i]) else "." for i in keep]
            out.append(":".join(cells) or ".")
        return out
