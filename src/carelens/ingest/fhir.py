"""Read FHIR R4 resources from bundles (``.json``) and Bulk Data NDJSON files or folders.

Every resource comes out with its references normalised to ``Type/id``: a bundle's
``fullUrl`` (``urn:uuid:...`` in Synthea transaction bundles, or an absolute URL) maps to
``Type/id`` of the entry it names. Bad items are quarantined on the ``BatchResult``, the rest
goes on:

- a file that is not JSON text (binary content), or truncated or malformed JSON;
- a bundle entry or NDJSON line without ``resourceType`` (one without ``id`` and without a
  ``urn:uuid`` fullUrl to take it from gets a stable synthetic key, ``syn-<content hash>``);
- a ``urn:`` reference that names no entry of its bundle (such references can only resolve
  inside their bundle, so this is checked here). Literal ``Type/id`` references to resources
  in other files are checked by :func:`carelens.ingest.ingest` against the whole batch and the
  lake, because only it sees all of them.

``where`` says ``entry i`` (0-based index into ``Bundle.entry``), ``line n`` (1-based NDJSON
line) or ``file``. Reasons never quote the data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal, cast

import msgspec
import orjson

from carelens.core.fhir import MAX_NESTING, nested_deeper_than, patient_in_references, patient_of
from carelens.core.ids import stable_id
from carelens.core.quarantine import BatchResult

FHIR_SUFFIXES = (".json", ".ndjson")
SIDECAR_SUFFIXES = (".phi.json", ".meta.json")

_REFERENCE = re.compile(rb'("reference"\s*:\s*")([^"\\]+)(")')
_REFERENCE_KEY = b'"reference":"'  # as orjson writes it: compact, no spaces
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')
_LITERAL_REFERENCE = re.compile(rb'"reference"\s*:\s*"([A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64})(?:/_history/[^"\\]*)?"')
_LITERAL_VALUES = re.compile(rb"^([A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64})(?:/_history/.*)?$", re.MULTILINE)
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # the FHIR R4 id datatype
RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{0,63}")
BOM = b"\xef\xbb\xbf"
TOO_DEEP = "JSON nested too deeply"
_LARGE_NUMBER = re.compile(rb"\d[eE]\+?\d{3}|\d{309}")  # where a number past a 64-bit float's range can be


@dataclass
class FhirItem:
    """One FHIR resource read from a file, with its references normalised to ``Type/id``.

    ``where`` is ``entry i`` (bundle) or ``line n`` (NDJSON); ``patient_id`` is the
    ``Patient.id`` the resource belongs to (its own id for a Patient), or None.
    """

    resource: dict[str, Any]
    source: str
    where: str
    patient_id: str | None

    @property
    def resource_type(self) -> str:
        return str(self.resource["resourceType"])

    @property
    def id(self) -> str:
        return str(self.resource["id"])

    @property
    def key(self) -> str:
        """``Type/id``."""
        return f"{self.resource_type}/{self.id}"


@dataclass(slots=True)
class FhirRow:
    """A resource as the lake stores it: compact normalised JSON bytes plus its keys."""

    resource_type: str
    id: str
    patient_id: str | None
    json: bytes
    where: str

    @property
    def key(self) -> str:
        return f"{self.resource_type}/{self.id}"


def read_fhir(paths: Iterable[Path], batch: BatchResult) -> Iterator[FhirItem]:
    """Yield every resource of the FHIR bundles and NDJSON files (or folders of them) in
    ``paths``; bad items go to ``batch.quarantine``."""
    for path in iter_fhir_files(paths):
        source = str(path)
        for row in read_fhir_file(path, batch):
            yield FhirItem(resource=orjson.loads(row.json), source=source, where=row.where, patient_id=row.patient_id)


def iter_fhir_files(paths: Iterable[Path]) -> Iterator[Path]:
    """The ``.json``/``.ndjson`` files in ``paths`` (folders walked recursively, sorted);
    sidecar files (``*.phi.json``, ``*.meta.json``) are not FHIR and are left out."""
    for path in paths:
        path = Path(path)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and is_fhir_name(child):
                    yield child
        else:
            yield path


def is_fhir_name(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(FHIR_SUFFIXES) and not name.endswith(SIDECAR_SUFFIXES)


def is_export_log(data: bytes) -> bool:
    """True for a Bulk Data export log (NDJSON events with ``eventId``, no resources)."""
    first = data.lstrip()[:4096].split(b"\n", 1)[0]
    try:
        obj = orjson.loads(first)
    except orjson.JSONDecodeError:
        return False
    return isinstance(obj, dict) and "resourceType" not in obj and "eventId" in obj and "exportId" in obj


def read_fhir_file(
    path: Path, batch: BatchResult, data: bytes | None = None, references: set[str] | None = None
) -> list[FhirRow]:
    """All resources of one bundle or NDJSON file as :class:`FhirRow` (quarantining bad items).

    ``references``, when given, receives the literal ``Type/id`` references the file makes
    (after normalising; a superset when some items were quarantined)."""
    source = str(path)
    if data is None:
        data = path.read_bytes()
    data = strip_bom(data)
    if _looks_binary(data):
        batch.quarantine(source, "file", "binary content, not a JSON text file")
        return []
    found: set[bytes] = set()
    before = len(batch.quarantined)
    try:
        if path.name.lower().endswith(".ndjson"):
            rows = _read_ndjson(data, source, batch)
            found.update(_LITERAL_REFERENCE.findall(data))
        else:
            rows = _read_json(data, source, batch, found)
    except RecursionError:  # a parser's own depth limit; orjson's gives a JSONDecodeError
        del batch.quarantined[before:]
        batch.quarantine(source, "file", TOO_DEEP)
        return []
    if references is not None:  # one value a line: a reference value never holds a raw newline
        references.update(m.decode() for m in _LITERAL_VALUES.findall(b"\n".join(found)))
    return _readable(rows, source, batch, numbers=_LARGE_NUMBER.search(data) is not None)


def _readable(rows: list[FhirRow], source: str, batch: BatchResult, numbers: bool) -> list[FhirRow]:
    """``rows`` less those every later step (de-identification, summaries, JSON writers with their own lower
    limits) could not read, quarantined: nested deeper than ``MAX_NESTING``, or (``numbers``: the file holds
    a long exponent or number) a number no 64-bit float holds, which the fast bundle reader lets through."""
    out = []
    for row in rows:
        reason = _row_problem(row.json, numbers)
        if reason:
            batch.quarantine(source, row.where, reason)
        else:
            out.append(row)
    return out


def _row_problem(json: bytes, numbers: bool) -> str | None:
    """Why a row's JSON cannot be read by every step, or None; parsed only when its brackets or numbers
    could make it so."""
    deep = json.count(b"{") + json.count(b"[") > MAX_NESTING
    if not deep and not (numbers and _LARGE_NUMBER.search(json)):
        return None
    try:
        value = orjson.loads(json)
    except orjson.JSONDecodeError as err:
        return "a number too large for a 64-bit float" if "infinity" in str(err) else "malformed JSON"
    return f"{TOO_DEEP} (more than {MAX_NESTING} levels)" if deep and nested_deeper_than(value) else None


def strip_bom(data: bytes) -> bytes:
    """``data`` without a leading UTF-8 byte order mark."""
    return data[len(BOM) :] if data.startswith(BOM) else data


def _looks_binary(data: bytes) -> bool:
    head = data[:8192]
    if b"\x00" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        return err.start < len(head) - 4  # a cut multi-byte character at the end is fine
    return False


def _json_error(err: orjson.JSONDecodeError) -> str:
    if "recursion" in str(err) or "depth limit" in str(err):
        return TOO_DEEP
    if "end of data" in str(err) or "EOF" in str(err):
        return f"truncated JSON (unexpected end of data at line {err.lineno})"
    return f"malformed JSON at line {err.lineno} column {err.colno}"


def _read_ndjson(data: bytes, source: str, batch: BatchResult) -> list[FhirRow]:
    rows: list[FhirRow] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        line = line.strip()
        if not line:
            continue
        where = f"line {number}"
        try:
            resource = orjson.loads(line)
        except orjson.JSONDecodeError as err:
            batch.quarantine(source, where, _json_error(err))
            continue
        keyless = isinstance(resource, dict) and resource.get("id") is None
        reason = _resource_problem(_keyed(resource))
        if reason:
            batch.quarantine(source, where, reason)
            continue
        if _has_urn_reference(line):
            batch.quarantine(source, where, "urn: reference outside a bundle cannot be resolved")
            continue
        rows.append(_row(resource, orjson.dumps(resource) if keyless else line, where, {}))
    return rows


def _has_urn_reference(json: bytes) -> bool:
    return b'"urn:' in json and any(m.group(2).startswith(b"urn:") for m in _REFERENCE.finditer(json))


def _is_ndjson(data: bytes) -> bool:
    first, newline, rest = data.strip().partition(b"\n")
    if not newline or not rest.strip():
        return False
    try:
        return isinstance(orjson.loads(first), dict)
    except orjson.JSONDecodeError:
        return False


def _keyed(resource: Any) -> Any:
    """``resource`` with a stable synthetic id when it has none (a transaction entry may leave the
    id to the server): ``syn-`` and a hash of its content, so the same resource gets the same key
    in every run and nothing is dropped for lacking one (an empty ``""`` id is malformed: quarantined)."""
    if isinstance(resource, dict) and isinstance(resource.get("resourceType"), str) and resource.get("id") is None:
        resource["id"] = "syn-" + stable_id(orjson.dumps(resource, option=orjson.OPT_SORT_KEYS).decode(), length=32)
    return resource


def _resource_problem(resource: Any) -> str | None:
    if not isinstance(resource, dict):
        return "not a JSON object"
    if not isinstance(resource.get("resourceType"), str) or not resource["resourceType"]:
        return "entry without resourceType"
    if not RESOURCE_TYPE.fullmatch(resource["resourceType"]):
        return "resourceType is not a FHIR resource type name"
    if not isinstance(resource.get("id"), str) or not resource["id"]:
        return "resource without id"
    if not FHIR_ID.fullmatch(resource["id"]):
        return "id is not a FHIR id (1-64 of A-Z a-z 0-9 - .)"
    return None


def _read_json(data: bytes, source: str, batch: BatchResult, found: set[bytes]) -> list[FhirRow]:
    rows = _read_bundle_fast(data, source, batch, found)
    if rows is not None:
        return rows
    try:
        top = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        if _is_ndjson(data):  # NDJSON saved under a .json name
            found.update(_LITERAL_REFERENCE.findall(data))
            return _read_ndjson(data, source, batch)
        batch.quarantine(source, "file", _json_error(err))
        return []
    if not isinstance(top, dict) or not isinstance(top.get("resourceType"), str):
        batch.quarantine(source, "file", "JSON without resourceType, not a FHIR resource or bundle")
        return []
    if top["resourceType"] != "Bundle":
        reason = _resource_problem(_keyed(top))
        if reason:
            batch.quarantine(source, "file", reason)
            return []
        json = orjson.dumps(top)
        found.update(_LITERAL_REFERENCE.findall(json))
        return [_row(top, json, "resource", {})]
    return _read_bundle(top, source, batch, found)


class _Reference(msgspec.Struct):
    reference: str | None = None


class _Head(msgspec.Struct):
    """The fields of a resource that a lake row needs besides its JSON text."""

    resourceType: str
    id: str
    subject: _Reference | None = None
    patient: _Reference | None = None
    beneficiary: _Reference | None = None

    def references(self) -> tuple[str | None, str | None, str | None]:
        """The ``subject``, ``patient`` and ``beneficiary`` reference values, in that order."""
        subject, patient, beneficiary = self.subject, self.patient, self.beneficiary
        return (
            subject.reference if subject is not None else None,
            patient.reference if patient is not None else None,
            beneficiary.reference if beneficiary is not None else None,
        )


class _HeadEntry(msgspec.Struct):
    resource: _Head
    fullUrl: str | None = None


class _HeadBundle(msgspec.Struct):
    resourceType: Literal["Bundle"]
    entry: list[_HeadEntry] = []


class _RawEntry(msgspec.Struct):
    resource: msgspec.Raw


class _RawBundle(msgspec.Struct):
    entry: list[_RawEntry] = []


_HEADS = msgspec.json.Decoder(_HeadBundle)
_RAWS = msgspec.json.Decoder(_RawBundle)


def _read_bundle_fast(data: bytes, source: str, batch: BatchResult, found: set[bytes]) -> list[FhirRow] | None:
    """A well-formed bundle read without building its objects: the whole text is compacted and
    its references rewritten in a few C-level passes, then each resource's JSON is sliced out
    of it (msgspec ``Raw``) next to the few fields a row needs. None for anything else (not a
    bundle, malformed JSON, an entry needing a quarantine decision or an ``id`` from its
    ``fullUrl``, a field of an unexpected type): :func:`_read_json` then reads the file the
    general way, with its reasons; so does a reference value with an escape (``\\``), as the
    source text is compared with ``fullUrl``s here, not the decoded value. (References outside
    the resources, as in ``Bundle.signature``, are rewritten and added to ``found`` too; no
    row keeps them.)"""
    try:
        compact = msgspec.json.format(data, indent=-1)
        if not compact.isascii():
            compact.decode("utf-8")  # msgspec does not check UTF-8 inside strings it skips
        heads = _HEADS.decode(compact).entry
    except (msgspec.MsgspecError, UnicodeDecodeError):
        return None
    if not all(_valid_head(h.resource) for h in heads):
        return None
    full_urls = {h.fullUrl: f"{h.resource.resourceType}/{h.resource.id}" for h in heads if h.fullUrl}
    values: set[bytes] = set()
    compact, missing = _rewrite_references(compact, full_urls, values)
    if any(b"\\" in value for value in values):
        return None  # an escape in a reference: only the general reader compares it exactly
    found.update(values)
    raws = _RAWS.decode(compact).entry  # the same JSON text, only reference values changed
    rows: list[FhirRow] = []
    append = rows.append
    patients: dict[tuple[str | None, ...], str | None] = {}  # most resources share their subject
    for index, (entry, raw) in enumerate(zip(heads, raws, strict=True)):
        json = bytes(raw.resource)
        if missing and _has_urn_reference(json):
            batch.quarantine(source, f"entry {index}", "reference to a resource missing from the bundle")
            continue
        head = entry.resource
        rtype, rid = head.resourceType, head.id
        if rtype == "Patient":
            patient_id: str | None = rid
        else:
            references = head.references()
            if references in patients:
                patient_id = patients[references]
            else:
                patient_id = patients[references] = patient_in_references(references, full_urls, urn_is_patient=False)
        append(FhirRow(rtype, rid, patient_id, json, f"entry {index}"))
    return rows


def _valid_head(head: _Head) -> bool:
    return bool(RESOURCE_TYPE.fullmatch(head.resourceType) and FHIR_ID.fullmatch(head.id))


def _read_bundle(bundle: dict[str, Any], source: str, batch: BatchResult, found: set[bytes]) -> list[FhirRow]:
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        batch.quarantine(source, "file", "Bundle.entry is not a list")
        return []
    resources: list[tuple[int, dict[str, Any]]] = []
    full_urls: dict[str, str] = {}
    for index, entry in enumerate(entries):
        where = f"entry {index}"
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            batch.quarantine(source, where, "entry without resource")
            continue
        full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        if not resource.get("id") and full_url and full_url.startswith("urn:uuid:"):
            resource["id"] = full_url[len("urn:uuid:") :]
        reason = _resource_problem(_keyed(resource))
        if reason:
            batch.quarantine(source, where, reason)
            continue
        resources.append((index, resource))
        if full_url:
            full_urls[full_url] = f"{resource['resourceType']}/{resource['id']}"
    jsons = _normalise_references([orjson.dumps(r) for _, r in resources], full_urls, found)
    rows = []
    for (index, resource), json in zip(resources, jsons, strict=True):
        if json is None:
            batch.quarantine(source, f"entry {index}", "reference to a resource missing from the bundle")
            continue
        rows.append(_row(resource, json, f"entry {index}", full_urls))
    return rows


def _normalise_references(jsons: list[bytes], full_urls: dict[str, str], found: set[bytes]) -> list[bytes | None]:
    """Rewrite references that name a bundle ``fullUrl`` to ``Type/id`` in the compact JSON of
    each resource; None for a resource with a ``urn:`` reference that names no entry. Works on
    all resources at once, joined by newlines (which compact JSON never contains)."""
    if not jsons:
        return []
    joined, missing = _rewrite_references(b"\n".join(jsons), full_urls, found)
    out: list[bytes | None] = list(joined.split(b"\n"))
    if missing:
        out = [None if json is not None and _has_urn_reference(json) else json for json in out]
    return out


def _rewrite_references(json: bytes, full_urls: dict[str, str], found: set[bytes]) -> tuple[bytes, bool]:
    """``json`` (compact) with references that name a ``fullUrl`` rewritten to ``Type/id``, and
    whether a ``urn:`` reference names none. Every reference value (after rewriting) is added
    to ``found``. Splits on the literal ``"reference":"`` key and maps the values with C-level
    ``map`` calls: no regular expression, no Python step per reference."""
    if not full_urls and b'"urn:' not in json:
        found.update(_LITERAL_REFERENCE.findall(json))
        return json, False
    targets = _json_texts(full_urls)
    pieces = json.split(_REFERENCE_KEY)
    count = len(pieces) - 1
    split = list(map(bytes.partition, pieces[1:], repeat(b'"', count)))  # (value, '"', rest)
    values = list(map(itemgetter(0), split))
    mapped = cast(list[bytes], list(map(targets.get, values, values)))  # the value itself by default
    out = [pieces[0], *[_REFERENCE_KEY, b"", b'"', b""] * count]
    out[2::4] = mapped
    out[4::4] = map(itemgetter(2), split)
    unique = set(mapped)
    found.update(unique)
    missing = any(value.startswith(b"urn:") for value in unique.difference(targets.values()))
    return b"".join(out), missing


def _json_texts(full_urls: dict[str, str]) -> dict[bytes, bytes]:
    """``full_urls`` (fullUrl -> ``Type/id``) as they stand in compact JSON text."""
    if not _NEEDS_ESCAPE.search("".join(full_urls) + "".join(full_urls.values())):
        return dict(zip(map(str.encode, full_urls), map(str.encode, full_urls.values()), strict=True))
    return dict(zip(map(_json_text, full_urls), map(_json_text, full_urls.values()), strict=True))


def _json_text(value: str) -> bytes:
    """``value`` as it stands inside a compact JSON string (escaped), without the quotes."""
    return orjson.dumps(value)[1:-1]


def literal_references(json: bytes) -> list[str]:
    """The literal ``Type/id`` references in a resource's JSON (or several joined)."""
    return [m.decode() for m in _LITERAL_REFERENCE.findall(json)]


def _row(resource: dict[str, Any], json: bytes, where: str, full_urls: dict[str, str]) -> FhirRow:
    rtype, rid = resource["resourceType"], resource["id"]
    return FhirRow(
        resource_type=rtype,
        id=rid,
        patient_id=rid if rtype == "Patient" else patient_of(resource, full_urls, urn_is_patient=False),
        json=json,
        where=where,
    )
