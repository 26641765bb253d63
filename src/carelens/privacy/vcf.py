"""VCF de-identification: sample ids become the patients' pseudonyms; header lines that
identify people, places or runs are cleaned; variant records are kept as they are.

Kept: ``##fileformat``, ``##contig``, ``##INFO``/``##FORMAT``/``##FILTER``/``##ALT``,
``##reference`` (reduced to its file name), ``##source`` (program name only). Removed:
``##fileDate``, ``##commandline`` and other command lines, ``##SAMPLE``/``##PEDIGREE`` (names),
and any other ``##key=value`` line that is not a known, harmless key.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Callable
from pathlib import Path

from carelens.core.errors import InputError
from carelens.privacy.keys import KeyService

KEEP = ("fileformat", "contig", "INFO", "FORMAT", "FILTER", "ALT", "phasing", "assembly")


def deid_vcf(src: Path, out: Path, keys: KeyService, sample_map: Callable[[str], str] | None = None) -> dict[str, int]:
    """Write a de-identified copy of ``src`` to ``out`` (gzip when ``out`` ends in .gz).

    ``sample_map(sample)`` gives the patient id of a sample (default: the sample name itself);
    its pseudonym replaces the sample id. Written atomically; ``InputError`` on a non-VCF.
    """
    mapping = sample_map or (lambda s: s)
    opener = gzip.open if src.name.endswith(".gz") else open
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gzip.open if out.name.endswith(".gz") else open
    counts = {"records": 0, "samples": 0, "header_lines_removed": 0}
    try:
        with opener(src, "rt", encoding="utf-8") as inp, writer(tmp, "wt", encoding="utf-8") as dst:
            first = inp.readline()
            if not first.startswith("##fileformat=VCF"):
                raise InputError(f"{src.name}: not a VCF (no ##fileformat=VCF header)")
            dst.write(first)
            for line in inp:
                if line.startswith("##"):
                    cleaned = clean_header_line(line)
                    if cleaned is None:
                        counts["header_lines_removed"] += 1
                    else:
                        dst.write(cleaned)
                elif line.startswith("#CHROM"):
                    cols = line.rstrip("\n").split("\t")
                    samples = [keys.pseudonym(mapping(s)) for s in cols[9:]]
                    counts["samples"] = len(samples)
                    dst.write("\t".join(cols[:9] + samples) + "\n")
                else:
                    dst.write(line)
                    counts["records"] += 1
        os.replace(tmp, out)
    except (UnicodeDecodeError, EOFError, OSError, gzip.BadGzipFile) as err:
        tmp.unlink(missing_ok=True)
        raise InputError(f"{src.name}: unreadable VCF ({type(err).__name__})") from None
    except InputError:
        tmp.unlink(missing_ok=True)
        raise
    return counts


def clean_header_line(line: str) -> str | None:
    """The header line as it may leave, or None when it must go."""
    m = re.match(r"^##([A-Za-z_]+)=", line)
    if not m:
        return None
    key = m.group(1)
    if key in KEEP:
        return line
    if key == "reference":
        return "##reference=" + _last_part(line.split("=", 1)[1]) + "\n"
    if key == "source":
        return "##source=" + (_last_part(line.split("=", 1)[1]).split(" ")[0] or "unknown") + "\n"
    return None


def _last_part(value: str) -> str:
    """The file or program name at the end of a path (directories can name people or sites)."""
    return _PATH_SEP.split(value.strip())[-1]


_PATH_SEP = re.compile(r"[/\\]")
