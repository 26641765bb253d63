"""Leak audit: search de-identified output for every identifier known from the source.

``audit(out, source)`` collects the identifiers of each patient in ``source`` (FHIR Patient
names, identifiers such as MRN and SSN, phone numbers, address lines, exact birth dates;
DICOM patient attributes; VCF sample names) and searches every file under ``out`` (text,
JSON/NDJSON, DICOM headers, VCF), case-insensitive and tolerant of separators; a one-word
name that is also an ordinary word ("Day", "May", "Fields") does not count where it is that
word: lower-case in mixed-case text, a month in a date ("May 15"), or the label of a code
of the source ("English (United States)"). A leak names
what kind of value leaked and where (file and offset, line or DICOM attribute), never the
value. The research-zone ingest (``carelens ingest --zone research``) calls it and refuses a
batch with leaks; ``out`` and ``source`` may each be several files or folders.
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from carelens.privacy.detect import case_mode
from carelens.privacy.lexicon import lexicon

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]  # fmt: skip


@dataclass
class Leak:
    """One identifier found in the output: its kind (``name``, ``mrn``...) and location."""

    value_kind: str
    location: str


@dataclass
class AuditReport:
    leaks: list[Leak] = field(default_factory=list)
    files_scanned: int = 0
    identifiers: Counter[str] = field(default_factory=Counter)

    @property
    def clean(self) -> bool:
        return not self.leaks

    def as_dict(self) -> dict[str, Any]:
        return {"leaks": [{"value_kind": x.value_kind, "location": x.location} for x in self.leaks],
                "clean": self.clean, "files_scanned": self.files_scanned,
                "identifiers_searched": dict(self.identifiers)}  # fmt: skip


def source_identifiers(source: Path | Sequence[Path]) -> list[tuple[str, str]]:
    """(kind, value) of every identifier known from the files under ``source``."""
    return _scan_source(source)[0]


def _scan_source(source: Path | Sequence[Path]) -> tuple[list[tuple[str, str]], set[str]]:
    """The identifiers of ``source``, and the labels of its FHIR codes ("English (United States)")."""
    found: set[tuple[str, str]] = set()
    labels: set[str] = set()
    for path in (p for root in _roots(source) for p in _files(root)):
        name = path.name.lower()
        if name.endswith((".json", ".ndjson")) and not name.endswith(".phi.json"):
            from carelens.privacy.fhir import iter_resources

            for resource in iter_resources([path]):
                if resource["resourceType"] in ("Patient", "RelatedPerson"):
                    found |= _fhir_identifiers(resource)
                _code_labels(resource, labels)
        elif name.endswith(".dcm"):
            found |= _dicom_identifiers(path)
        elif name.endswith((".vcf", ".vcf.gz")):
            found |= {("sample", s) for s in _vcf_samples(path)}
    return sorted(v for v in found if len(re.sub(r"\W", "", v[1])) >= 3), labels


def _code_labels(value: Any, out: set[str]) -> None:
    """Coding displays and CodeableConcept texts anywhere in a resource."""
    if isinstance(value, dict):
        if isinstance(value.get("display"), str) and "code" in value:
            out.add(value["display"])
        if isinstance(value.get("text"), str) and "coding" in value:
            out.add(value["text"])
        for item in value.values():
            if isinstance(item, dict | list):
                _code_labels(item, out)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list):
                _code_labels(item, out)


def _fhir_identifiers(r: dict[str, Any]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for name in r.get("name") or []:
        given = [g for g in name.get("given") or [] if isinstance(g, str)]
        family = name.get("family") if isinstance(name.get("family"), str) else ""
        if family:
            out.add(("name", family))
        for g in given:
            if family:
                out.add(("name", f"{g} {family}"))
                out.add(("name", f"{family}, {g}"))
    for ident in r.get("identifier") or []:
        value = ident.get("value")
        if isinstance(value, str):
            system = str(ident.get("system", "")).lower()
            kind = "ssn" if "ssn" in system or re.fullmatch(r"\d{3}-\d{2}-\d{4}", value) else "mrn"
            out.add((kind, value))
    for tel in r.get("telecom") or []:
        if isinstance(tel.get("value"), str):
            out.add(("email" if "@" in tel["value"] else "phone", tel["value"]))
    for addr in r.get("address") or []:
        for line in addr.get("line") or []:
            out.add(("address", str(line)))
    if isinstance(r.get("birthDate"), str) and len(r["birthDate"]) >= 10:
        out.add(("birth_date", r["birthDate"][:10]))
    return out


def _dicom_identifiers(path: Path) -> set[tuple[str, str]]:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception:
        return set()
    out: set[tuple[str, str]] = set()
    name = str(ds.get("PatientName", "") or "")
    for part in re.split(r"[\^ ]+", name):
        if len(part) >= 3:
            out.add(("name", part))
    for kw, kind in (("PatientID", "mrn"), ("OtherPatientIDs", "mrn"), ("PatientAddress", "address"),
                     ("PatientTelephoneNumbers", "phone"), ("AccessionNumber", "accession")):  # fmt: skip
        value = ds.get(kw)
        if value:
            out.add((kind, str(value)))
    bd = str(ds.get("PatientBirthDate", "") or "")
    if re.fullmatch(r"\d{8}", bd):
        out.add(("birth_date", f"{bd[:4]}-{bd[4:6]}-{bd[6:]}"))
    return out


def _vcf_samples(path: Path) -> list[str]:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("#CHROM"):
                    return line.rstrip("\n").split("\t")[9:]
                if not line.startswith("#"):
                    break
    except (OSError, EOFError):
        return []
    return []


def _pattern(kind: str, value: str) -> str:
    if kind == "birth_date":
        d = date.fromisoformat(value)
        forms = [d.isoformat(), f"{d.year}{d.month:02d}{d.day:02d}", f"0?{d.month}/0?{d.day}/{d.year}",
                 f"0?{d.month}-0?{d.day}-{d.year}", f"{MONTHS[d.month - 1]}\\s+{d.day},?\\s+{d.year}",
                 f"{d.day:02d}-{MONTHS[d.month - 1][:3]}-{d.year}"]  # fmt: skip
        return r"(?<!\d)(?:" + "|".join(forms) + r")(?!\d)"
    chars = [c for c in value if c.isalnum()]
    if kind in ("name", "address"):
        words = re.findall(r"\w+", value)
        return r"(?<!\w)" + r"\W{1,3}".join(re.escape(w) for w in words) + r"(?!\w)"
    return r"(?<![A-Za-z0-9])" + r"[\s\-./()^]{0,2}".join(re.escape(c) for c in chars) + r"(?![A-Za-z0-9])"


def _is_word(kind: str, value: str) -> bool:
    """A one-word name that is also an ordinary word ("Day", "May", "Fields")."""
    return kind == "name" and value.isalpha() and lexicon().is_ambiguous(value.lower())


def _ordinary_use(text: str, m: re.Match[str], labels: set[str]) -> bool:
    """Whether a match of such a name is the ordinary word, not the name: lower-case in
    mixed-case text ("hospital day 4", "lung fields"), a month in a date ("May 15", "13-May-2024"),
    or inside a JSON string that is the label of one of the source's codes ("English (United States)")."""
    opening, closing = text.rfind('"', 0, m.start()), text.find('"', m.end())
    if opening >= 0 and closing >= 0 and text[opening + 1 : closing] in labels:
        return True
    word = m.group(0)
    low = word.lower()
    month = any(low in (x.lower(), x[:3].lower()) for x in MONTHS)
    before, after = text[max(0, m.start() - 2) : m.start()], text[m.end() : m.end() + 3]
    if month and (re.match(r"\W{0,2}\d", after) or re.search(r"\d[\s\-/.]$", before)):
        return True
    if not word.islower():
        return False
    start = max(text.rfind("\n", 0, m.start()), text.rfind("\\n", 0, m.start()), m.start() - 300)
    ends = [e for e in (text.find("\n", m.end()), text.find("\\n", m.end())) if e >= 0]
    return case_mode(text[max(start, 0) : min([*ends, m.end() + 300])]) == "mixed"


def audit(out: Path | Sequence[Path], source: Path | Sequence[Path]) -> AuditReport:
    """Every identifier from ``source`` found anywhere under ``out`` (kinds and locations only)."""
    idents, labels = _scan_source(source)
    report = AuditReport(identifiers=Counter(kind for kind, _ in idents))
    if not idents:
        return report
    searches = []
    for kind, value in idents:
        try:
            regex = re.compile(_pattern(kind, value), re.IGNORECASE)
            searches.append((kind, _anchor(kind, value), regex, _is_word(kind, value)))
        except ValueError:
            continue
    roots = _roots(out)
    for root in roots:  # locations relative to the folder given (to its parent when several are)
        base = root if root.is_dir() and len(roots) == 1 else root.parent
        for path in _files(root):
            report.files_scanned += 1
            rel = str(path.relative_to(base))
            for where, text in _texts(path):
                low = text.lower()
                for kind, anchor, regex, word in searches:
                    if anchor not in low:
                        continue
                    for m in regex.finditer(text):
                        if word and _ordinary_use(text, m, labels):
                            continue
                        report.leaks.append(Leak(kind, f"{rel}:{where}" if where else f"{rel}:offset {m.start()}"))
    return report


def _roots(paths: Path | Sequence[Path]) -> list[Path]:
    return [paths] if isinstance(paths, Path) else list(paths)


def _anchor(kind: str, value: str) -> str:
    """A literal every match must contain (a fast pre-filter before the regex)."""
    if kind == "birth_date":
        return value[:4]
    runs = re.findall(r"[a-z]+|\d+", value.lower())
    return max(runs, key=len) if runs else ""


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def _texts(path: Path) -> list[tuple[str, str]]:
    """(location, text) pieces of a file: DICOM attributes, VCF lines or the whole text."""
    name = path.name.lower()
    if name.endswith(".dcm") or _is_dicom(path):
        return _dicom_texts(path)
    try:
        data = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile):
        return []
    if name.endswith((".npz", ".npy", ".png", ".jpg", ".parquet")):
        return []
    text = data.decode("utf-8", errors="replace")
    if name.endswith((".json", ".ndjson")) and "base64" not in name:
        text = text + "\n" + _decoded_attachments(data)
    return [("", text)]


def _decoded_attachments(data: bytes) -> str:
    """Base64 text attachments inside FHIR JSON, decoded (a leak can hide there)."""
    import base64

    out = []
    for m in re.finditer(rb'"data"\s*:\s*"([A-Za-z0-9+/=]{8,})"', data):
        try:
            out.append(base64.b64decode(m.group(1)).decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            continue
    return "\n".join(out)


def _is_dicom(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def _dicom_texts(path: Path) -> list[tuple[str, str]]:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception:
        return [("unreadable", "")]
    out: list[tuple[str, str]] = []

    def visit(dataset: Any, prefix: str) -> None:
        for elem in dataset:
            if elem.VR == "SQ":
                for i, item in enumerate(elem.value):
                    visit(item, f"{prefix}{elem.keyword or elem.tag}[{i}].")
            elif elem.VR not in ("OB", "OW", "OF", "OD", "OL", "UN") and elem.value is not None:
                out.append((f"{prefix}{elem.keyword or str(elem.tag)}", str(elem.value)))

    visit(ds.file_meta, "meta.") if hasattr(ds, "file_meta") else None
    visit(ds, "")
    return out


def audit_json(report: AuditReport) -> bytes:
    return orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2)
