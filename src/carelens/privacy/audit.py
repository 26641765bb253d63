"""Leak audit: search de-identified output for every identifier known from the source.

``audit(out, source)`` collects the identifiers of each patient in ``source``: from every
person-like FHIR resource, Coverage, Device and the source file names
(:mod:`carelens.privacy.known`), DICOM patient attributes, VCF sample names. It searches every
file and folder name under ``out`` and every piece of every file: each JSON string (with its
path), base64 attachments of any content type decoded, every DICOM attribute (file meta,
sequences, binary and UN values as text), DICOM pixels and any other binary image data (the
burned-in text gate), each VCF or text line; compressed streams are inflated wherever they are
(a PDF's FlateDecode content, PNG text chunks, gzip/bgzip/BCF files, zip members and names).
Names in scripts written without spaces (Chinese, Japanese, Korean) match inside a run of
letters; other names match word by word, in any case, with trailing digits ("Anna123") or
letters spaced out ("A n n a"); a one-word name that is also an ordinary word ("Day", "May",
"Fields") does not count where it is that word (lower case in mixed-case text, a month in a
date, the label of a code of the source). Codes (MRN, SSN, phone, serial numbers) match with
any separators. A birth date counts only as a date in a birth context ("DOB", "born",
"birthDate") and, when the site key is at hand, only in the output of that patient (files
holding the patient's pseudonym), so a shifted date that happens to equal someone's birth date
is not a leak. A leak names the kind of identifier, where it is and
why it matched, never the value. The research-zone ingest calls it and refuses a batch with
leaks; ``out`` and ``source`` may each be several files or folders. ``audit_resources`` is the
same search over one patient's copy held in memory (``carelens run``'s research step).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import gzip
import io
import re
import zipfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from carelens.privacy.burned_in import gate_dicom
from carelens.privacy.keys import KeyService
from carelens.privacy.known import Known, add_dicom, add_resource, name_letters, patterns, plain, unspaced
from carelens.privacy.lexicon import lexicon
from carelens.privacy.names import case_mode

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]  # fmt: skip
_WORD = re.compile(r"[^\W\d_]+")
_SPACED = re.compile(r"(?<![^\W\d_])(?:[^\W\d_][ ._\-]){2,}[^\W\d_](?![^\W\d_])")
_BIRTH_CONTEXT = re.compile(r"birth|born|\bdob\b|d\.o\.b|\bb-?day\b|geboren|naissance", re.IGNORECASE)
_DATES = re.compile(
    r"(?<!\d)(?:(\d{4})-(\d\d)-(\d\d)|(\d{4})(\d\d)(\d\d)|(\d{1,2})[/-](\d{1,2})[/-](\d{4})"
    r"|(" + "|".join(m[:3] for m in MONTHS) + r")[a-z]*\.?\s+(\d{1,2}),?\s+(\d{4})"
    r"|(\d{1,2})[\s-](" + "|".join(m[:3] for m in MONTHS) + r")[a-z]*[\s-](\d{4}))(?!\d)",
    re.IGNORECASE,
)
_PSEUDONYM = re.compile(r"P[0-9a-f]{16}")
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]{16,}$")
_LONG_BASE64 = re.compile(r"^[A-Za-z0-9+/]{22,}={0,2}$")  # base64 under any key (valueBase64Binary...)
_DATA_URI = re.compile(r"base64,([A-Za-z0-9+/]{16,}={0,2})")
_ZLIB_START = re.compile(rb"\x78[\x01\x5e\x9c\xda]|\x1f\x8b\x08")  # zlib and gzip stream headers
INFLATE_TRIES = 200  # compressed streams tried per binary value
INFLATE_LIMIT = 8 << 20  # bytes inflated per binary value at most
_BINARY_SKIP = (".npz", ".npy", ".png", ".jpg", ".jpeg", ".parquet", ".pt", ".onnx", ".duckdb")
_WHY = {
    "name": "a name word of the patient (any case, digits after it or letters spaced out allowed)",
    "address": "a street address line of the patient (any punctuation between words)",
    "mrn": "an identifier of the patient (MRN, subscriber id, record id; any separators)",
    "ssn": "the patient's social security number (any separators)",
    "phone": "a telephone number of the patient (any separators)",
    "email": "an e-mail address (or its local part) of the patient",
    "device": "a serial, lot or UDI of the patient's device (any separators)",
    "accession": "an accession number of the patient's study (any separators)",
    "sample": "a VCF sample id of the source",
    "birth_date": "the patient's birth date as a date in a birth context",
}


@dataclass
class Leak:
    """One identifier found in the output: its kind (``name``, ``mrn``...), where, and why."""

    value_kind: str
    location: str
    reason: str = ""


@dataclass
class AuditReport:
    leaks: list[Leak] = field(default_factory=list)
    files_scanned: int = 0
    identifiers: Counter[str] = field(default_factory=Counter)

    @property
    def clean(self) -> bool:
        return not self.leaks

    def as_dict(self) -> dict[str, Any]:
        return {"leaks": [{"value_kind": x.value_kind, "location": x.location, "reason": x.reason} for x in self.leaks],
                "clean": self.clean, "files_scanned": self.files_scanned,
                "identifiers_searched": dict(self.identifiers)}  # fmt: skip


# -- the source ----------------------------------------------------------------------------
@dataclass
class _Source:
    known: dict[str, Known] = field(default_factory=dict)
    labels: set[str] = field(default_factory=set)


def source_identifiers(source: Path | Sequence[Path]) -> list[tuple[str, str]]:
    """(kind, value) of every identifier known from the files under ``source``."""
    found = _scan_source(source).known.values()
    return sorted({v for k in found for v in k.values} | {("birth_date", k.birth_date) for k in found if k.birth_date})


def _scan_source(source: Path | Sequence[Path]) -> _Source:
    from carelens.privacy.fhir import iter_resources, known_identifiers

    out = _Source()
    fhir: list[Path] = []
    for path in (p for root in _roots(source) for p in _files(root)):
        name = path.name.lower()
        if name.endswith((".json", ".ndjson")) and not name.endswith(".phi.json"):
            fhir.append(path)
        elif name.endswith(".dcm") or _is_dicom(path):
            _dicom_identifiers(path, out.known)
        elif name.endswith((".vcf", ".vcf.gz", ".vcf.bgz", ".bcf")):
            for sample in _vcf_samples(path):
                out.known.setdefault(f"vcf:{sample}", Known()).add("sample", sample)
    if fhir:  # read twice rather than held: a source may be a whole export
        _add_fhir(out, known_identifiers(fhir), iter_resources(fhir))
    return out


def _add_fhir(src: _Source, known: dict[str, Known], resources: Iterable[dict[str, Any]]) -> None:
    """The identifiers known of each patient and the code labels of the source's FHIR resources."""
    for pid, k in known.items():
        mine = src.known.setdefault(pid, Known())
        mine.values |= k.values
        mine.birth_date = mine.birth_date or k.birth_date
    for resource in resources:
        _code_labels(resource, src.labels)


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


def _dicom_identifiers(path: Path, known: dict[str, Known]) -> None:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception:
        return
    mine = known.setdefault(str(ds.get("PatientID", "") or "") or f"dicom:{path}", Known())
    mine.birth_date = add_dicom(ds, mine) or mine.birth_date


def _vcf_samples(path: Path) -> list[str]:
    """The sample ids of a VCF (plain, gzip or bgzip) or BCF (its header is VCF text after a
    9-byte preamble, which may split into two short lines)."""
    try:
        with path.open("rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
        with gzip.open(path, "rb") if compressed else path.open("rb") as handle:
            for n, line in enumerate(handle):
                if line.startswith(b"#CHROM"):
                    return line.decode("utf-8", "replace").rstrip("\n").split("\t")[9:]
                if n > 1 and not line.startswith(b"#"):
                    break
    except (OSError, EOFError, zlib.error):
        return []
    return []


# -- the search ----------------------------------------------------------------------------
@dataclass
class _Searches:
    """Every identifier of the source, indexed for a fast first pass over whole files."""

    names: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # word -> patients
    unspaced: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # CJK name -> patients
    codes: dict[str, list[tuple[str, str, re.Pattern[str]]]] = field(default_factory=lambda: defaultdict(list))
    births: dict[date, set[str]] = field(default_factory=lambda: defaultdict(set))
    counts: Counter[str] = field(default_factory=Counter)

    @classmethod
    def build(cls, known: dict[str, Known]) -> _Searches:
        out = cls()
        for pid, k in known.items():
            for kind, value in k.values:
                if kind == "city":
                    continue  # also street, organisation and place names: the text de-identifier owns them
                out.counts[kind] += 1
                if kind == "name":
                    for word in re.split(r"[\s,^=]+", value):
                        letters = name_letters(word).lower()
                        if letters:
                            (out.unspaced if unspaced(letters) else out.names)[letters].add(pid)
                    continue
                flat = re.sub(r"[^a-z0-9]", "", value.lower())
                if len(flat) >= (8 if kind == "address" else 5):
                    out.codes[flat] += [(kind, pid, re.compile(p, re.IGNORECASE)) for p in patterns(kind, value)]
            if k.birth_date:
                out.counts["birth_date"] += 1
                try:
                    out.births[date.fromisoformat(k.birth_date)].add(pid)
                except ValueError:
                    continue
        return out


def audit(out: Path | Sequence[Path], source: Path | Sequence[Path], keys: KeyService | None = None,
          pixels: bool = True) -> AuditReport:  # fmt: skip
    """Every identifier from ``source`` found anywhere under ``out`` (kinds, places and reasons only).
    ``keys``: the site key (default: the one in the environment, when set) to tell whose output a
    file is, so that birth dates are looked for in their own patient's files. ``pixels``: also pass
    every DICOM's pixels through the burned-in text gate (:mod:`carelens.privacy.burned_in`: a
    text-line detector on every frame, OCR only of the lines it finds)."""
    src = _scan_source(source)
    searches = _Searches.build(src.known)
    report = AuditReport(identifiers=searches.counts)
    if not src.known:
        return report
    owners = _owners(src.known, keys)
    roots = _roots(out)
    for root in roots:  # locations relative to the folder given (to its parent when several are)
        base = root if root.is_dir() and len(roots) == 1 else root.parent
        given = root if root.is_dir() else root.parent  # the path as given is stored with each file
        where = [(f"{given}/", "folder name of the path given", part) for part in given.parts]
        _search(report, searches, src, where, set())
        seen_dirs: set[Path] = set()
        for path in _files(root):
            rel = path.relative_to(base)
            for parent in rel.parents:
                if str(parent) != "." and parent not in seen_dirs:
                    seen_dirs.add(parent)
                    _search(report, searches, src, [(f"{parent}/", "folder name", parent.name)], set())
            _search_file(report, searches, src, owners, str(rel), _pieces(path), _sidecar(path))
            if pixels and (path.name.lower().endswith(".dcm") or _is_dicom(path)):
                reason = gate_dicom(path)
                if reason:
                    report.leaks.append(Leak("burned_in_text", _redacted(f"{rel}:PixelData", searches), reason))
    return report


def audit_resources(out: Sequence[dict[str, Any]], source: Sequence[dict[str, Any]], patient_id: str,
                    name: str = "research.ndjson") -> AuditReport:  # fmt: skip
    """:func:`audit` of one patient's de-identified resources ``out``, held in memory, searched as the
    NDJSON file ``name``, against the patient's own source resources (``patient_id``'s, as the lake
    holds them): the same search, with no file written or read. All of ``out`` is the patient's, so
    their birth date is looked for in all of it."""
    src = _Source()
    known = Known()
    for resource in source:
        add_resource(resource, known)
    _add_fhir(src, {patient_id: known}, source)
    searches = _Searches.build(src.known)
    report = AuditReport(identifiers=searches.counts)
    pieces = [piece for i, doc in enumerate(out) for piece in _json_pieces(doc, f"line {i + 1} ")]
    _search_file(report, searches, src, {}, name, pieces)
    return report


def _search_file(report: AuditReport, s: _Searches, src: _Source, owners: dict[str, str], rel: str,
                 pieces: list[tuple[str, str]], sidecar: str = "") -> None:  # fmt: skip
    """Search one file's name and (location, text) pieces, plain forms of each included; the file is the
    output of the patients whose pseudonyms it or its ``sidecar`` (a note's metadata) holds."""
    report.files_scanned += 1
    located = [(rel, "file name", Path(rel).name), *((rel, w, t) for w, t in pieces)]
    located += [(r, f"{w} (decoded)", d) for r, w, t in located if (d := plain(t)) != t]
    named = {p for t in (sidecar, *(t for _r, _w, t in located)) for p in _PSEUDONYM.findall(t)} if owners else set()
    mine = {owners.get(p, "") for p in named}  # "": a patient not in the source
    _search(report, s, src, located, mine)


def _owners(known: dict[str, Known], keys: KeyService | None) -> dict[str, str]:
    """pseudonym -> source patient id (empty without a site key)."""
    if keys is None:
        try:
            keys = KeyService.from_env()
        except Exception:  # no key configured: birth dates are then looked for in every file
            return {}
    return {keys.pseudonym(pid): pid for pid in known}


def _search(report: AuditReport, s: _Searches, src: _Source, pieces: list[tuple[str, str, str]],
            mine: set[str]) -> None:  # fmt: skip
    text = "\x00".join(t for _r, _w, t in pieces)
    starts, pos = [], 0
    for _r, _w, t in pieces:
        starts.append(pos)
        pos += len(t) + 1

    def where(offset: int) -> tuple[str, str]:
        i = bisect.bisect_right(starts, offset) - 1
        rel, w, _t = pieces[i]
        return _redacted(f"{rel}:{w}" if w else f"{rel}:offset {offset - starts[i]}", s), pieces[i][2]

    hits: set[tuple[str, str]] = set()
    for m in _name_words(text, s.names):
        word = m.group(0).lower()
        if not (_is_word(word) and _ordinary_use(text, m, src.labels)):
            hits.add(("name", where(m.start())[0]))
    for name in (n for n in s.unspaced if n in text):  # scripts without spaces: anywhere in a run of letters
        hits |= {("name", where(m.start())[0]) for m in re.finditer(re.escape(name), text)}
    for m in _SPACED.finditer(text):
        if "".join(_WORD.findall(m.group(0))).lower() in s.names:
            hits.add(("name", where(m.start())[0]))
    flat = re.sub(r"[^a-z0-9]", "", text.lower())
    for code, searches in s.codes.items():
        if code in flat:
            for kind, _pid, regex in searches:
                for m in regex.finditer(text):
                    hits.add((kind, where(m.start())[0]))
    years = {str(d.year) for d in s.births}  # every form _DATES reads holds the year's digits
    for start, (_r, _w, piece) in zip(starts, pieces, strict=True) if years else ():  # no date spans a "\x00"
        if piece.isascii() and not any(y in piece for y in years):  # another script's digits read as numbers too
            continue
        for m in _DATES.finditer(piece):
            found = _date_of(m)
            pids = s.births.get(found) if found else None
            if not pids or (mine and not pids & mine):
                continue
            loc = where(start + m.start())[0]
            context = piece[max(0, m.start() - 80) : m.start() + 40] + " " + loc
            if _BIRTH_CONTEXT.search(context):
                hits.add(("birth_date", loc))
    report.leaks += [Leak(kind, loc, _WHY.get(kind, "an identifier of the patient")) for kind, loc in sorted(hits)]


def _name_words(text: str, names: dict[str, set[str]]) -> Iterator[re.Match[str]]:
    """Each word of ``text`` (a run of letters) that is a name word in any case: the words of the
    text are first gathered at C speed and met with the names, and only the names found are then
    looked for one by one (most output holds few or none)."""
    found = {w.lower() for w in set(_WORD.findall(text))} & names.keys()
    if not found:
        return
    alternatives = "|".join(re.escape(w) for w in sorted(found, key=len, reverse=True))
    for m in re.finditer(rf"(?<![^\W\d_])(?:{alternatives})(?![^\W\d_])", text, re.IGNORECASE):
        if m.group(0).lower() in found:
            yield m


def _redacted(location: str, s: _Searches) -> str:
    """``location`` with every part that holds an identifier (a file, folder or key named by
    it) replaced by ``*``: a report never prints an identifier."""
    parts = re.split(r"([/.:\[\]\s]+)", location)
    out = []
    for part in parts:
        words = {w.lower() for w in _WORD.findall(part)}
        flat = re.sub(r"[^a-z0-9]", "", part.lower())
        bad = words & s.names.keys() or any(code in flat for code in s.codes if len(flat) >= 5)
        bad = bad or any(name in part for name in s.unspaced)
        out.append("*" if bad else part)
    return "".join(out)


def _date_of(m: re.Match[str]) -> date | None:
    g = m.groups()
    try:
        if g[0]:
            return date(int(g[0]), int(g[1]), int(g[2]))
        if g[3]:
            return date(int(g[3]), int(g[4]), int(g[5]))
        if g[6]:
            return date(int(g[8]), int(g[6]), int(g[7]))
        if g[9]:
            return date(int(g[11]), _month(g[9]), int(g[10]))
        return date(int(g[14]), _month(g[13]), int(g[12]))
    except ValueError:
        return None


def _month(name: str) -> int:
    return [m[:3].lower() for m in MONTHS].index(name[:3].lower()) + 1


def _is_word(word: str) -> bool:
    """A one-word name that is also an ordinary word ("day", "may", "fields")."""
    return word.isalpha() and lexicon().is_ambiguous(word)


def _ordinary_use(text: str, m: re.Match[str], labels: set[str]) -> bool:
    """Whether a match of such a name is the ordinary word, not the name: lower-case in
    mixed-case text ("hospital day 4", "lung fields"), a month in a date ("May 15", "13-May-2024"),
    or inside a string that is the label of one of the source's codes ("English (United States)")."""
    opening, closing = text.rfind("\x00", 0, m.start()), text.find("\x00", m.end())
    if text[opening + 1 : closing if closing >= 0 else len(text)] in labels:
        return True
    word = m.group(0)
    low = word.lower()
    month = any(low in (x.lower(), x[:3].lower()) for x in MONTHS)
    before, after = text[max(0, m.start() - 2) : m.start()], text[m.end() : m.end() + 3]
    if month and (re.match(r"\W{0,2}\d", after) or re.search(r"\d[\s\-/.]$", before)):
        return True
    if not word.islower():
        return False
    start = max(text.rfind("\n", 0, m.start()), text.rfind("\x00", 0, m.start()), m.start() - 300)
    ends = [e for e in (text.find("\n", m.end()), text.find("\x00", m.end())) if e >= 0]
    return case_mode(text[max(start, 0) : min([*ends, m.end() + 300])]) == "mixed"


def _sidecar(path: Path) -> str:
    """The text of a note's ``NAME.meta.json`` (its patient's research id), or ""."""
    if path.name.endswith(".meta.json"):
        return ""
    sidecar = path.with_name(path.name[: -len(path.suffix)] + ".meta.json") if path.suffix else None
    try:
        return sidecar.read_text(encoding="utf-8", errors="replace")[:4096] if sidecar and sidecar.is_file() else ""
    except OSError:
        return ""


# -- the pieces of a file ------------------------------------------------------------------
def _roots(paths: Path | Sequence[Path]) -> list[Path]:
    return [paths] if isinstance(paths, Path) else list(paths)


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file())


def _pieces(path: Path) -> list[tuple[str, str]]:
    """(location, text) pieces of a file: JSON strings by path, decoded attachments, DICOM
    attributes, or lines of text."""
    name = path.name.lower()
    if name.endswith(".dcm") or _is_dicom(path):
        return _dicom_pieces(path)
    try:
        data = path.read_bytes()
        data = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data  # .gz, bgzip, BCF
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error):
        return [("unreadable", "")]
    if data[:4] == b"PK\x03\x04":
        return _zip_pieces(data)
    if name.endswith(_BINARY_SKIP):
        return [("", data.decode("latin-1"))] if len(data) < 1_000_000 else []
    if name.endswith((".json", ".ndjson")):
        try:
            docs = (
                [orjson.loads(data)]
                if name.endswith(".json")
                else [orjson.loads(x) for x in data.splitlines() if x.strip()]
            )
        except orjson.JSONDecodeError:
            docs = None
        if docs is not None:
            out: list[tuple[str, str]] = []
            for i, doc in enumerate(docs):
                out += _json_pieces(doc, f"line {i + 1} " if name.endswith(".ndjson") else "")
            return out
    lines = data.decode("utf-8", errors="replace").split("\n")
    return [(f"line {i}", line) for i, line in enumerate(lines, 1) if line.strip()]


def _zip_pieces(data: bytes) -> list[tuple[str, str]]:
    """A zip archive's member names and contents (a name hides in either; deflated members are
    not readable in the archive's bytes)."""
    out = [("", binary_text(data))]
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            budget = INFLATE_LIMIT
            for info in archive.infolist()[:10_000]:
                out.append((f"member {len(out)} name", info.filename))
                if budget > 0 and not info.is_dir():
                    with archive.open(info) as member:
                        content = member.read(budget)
                    budget -= len(content)
                    out.append((f"member {len(out) - 1}", binary_text(content)))
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError, zlib.error):
        out.append(("unreadable archive", ""))
    return out


def _json_pieces(value: Any, path: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for where, key, item in _json_strings(value, path):
        out.append((where, key))  # keys are places a name can hide too
        out.append((where, item))
        encoded = [item] if key == "data" or _LONG_BASE64.match(item) else []
        encoded += _DATA_URI.findall(item)  # data: URIs inside narrative and other strings
        for data in encoded:
            decoded = _decode_any(data) if _BASE64.match(data) else ""
            if decoded:
                out.append((f"{where} (decoded attachment)", decoded))
    return out


def _json_strings(value: Any, path: str) -> Iterator[tuple[str, str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _json_strings(v, f"{path}.{k}" if path else str(k))
            if not isinstance(v, str):
                yield (f"{path}.{k}" if path else str(k)), str(k), ""
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _json_strings(v, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, path.rsplit(".", 1)[-1], value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield path, path.rsplit(".", 1)[-1], str(value)  # an SSN or MRN written as a number


def _decode_any(data: str) -> str:
    """A base64 attachment of any content type as text: UTF-8, UTF-16, else Latin-1 (so the
    ASCII inside a PDF or other binary is searched)."""
    try:
        raw = base64.b64decode(re.sub(r"\s", "", data), validate=True)
    except (binascii.Error, ValueError):
        return ""
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or raw[1::2].count(0) > len(raw) // 4:
        try:
            return raw.decode("utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-16-le")
        except UnicodeDecodeError:
            pass
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return binary_text(raw)


def binary_text(raw: bytes) -> str:
    """The text a binary value can hold: its bytes as Latin-1 (the ASCII inside), then every
    compressed stream in it inflated (a PDF's FlateDecode content, a PNG's zTXt/iTXt chunk, a
    gzip or zlib blob) and read the same way, so a name in a compressed document is searched."""
    out = [raw.decode("latin-1")]
    budget = INFLATE_LIMIT
    tried = 0
    for m in _ZLIB_START.finditer(raw):
        if tried >= INFLATE_TRIES or budget <= 0:
            break
        tried += 1
        start = m.start()
        try:
            if raw[start : start + 2] == b"\x1f\x8b":
                inflated = zlib.decompressobj(47).decompress(raw[start:], budget)
            else:
                inflated = zlib.decompressobj().decompress(raw[start:], budget)
        except zlib.error:
            continue
        if inflated:
            budget -= len(inflated)
            text = inflated.decode("utf-16-le") if inflated[1::2].count(0) > len(inflated) // 3 else None
            out.append(text if text is not None else inflated.decode("latin-1"))
    return "\n".join(out)


def _is_dicom(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def _dicom_pieces(path: Path) -> list[tuple[str, str]]:
    import pydicom

    try:
        ds = pydicom.dcmread(path, force=True, defer_size=1 << 20)
    except Exception:
        return [("unreadable", "")]
    out: list[tuple[str, str]] = []

    def visit(dataset: Any, prefix: str) -> None:
        for elem in dataset:
            name = f"{prefix}{elem.keyword or str(elem.tag)}"
            if elem.tag == 0x7FE00010:
                continue  # pixels: burned-in text is the OCR check's (carelens.privacy.dicom)
            if elem.VR == "SQ":
                for i, item in enumerate(elem.value or []):
                    visit(item, f"{name}[{i}].")
            elif isinstance(elem.value, bytes):
                out.append((name, binary_text(elem.value[:4_000_000])))
            elif elem.value is not None:
                out.append((name, str(elem.value)))

    if ds.preamble:
        out.append(("preamble", binary_text(ds.preamble)))
    if getattr(ds, "file_meta", None) is not None:
        visit(ds.file_meta, "meta.")
    try:
        visit(ds, "")
    except Exception:
        out.append(("unreadable", ""))
    return out


def audit_json(report: AuditReport) -> bytes:
    return orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2)
