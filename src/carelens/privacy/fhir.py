"""FHIR de-identification by allow-list (HIPAA Safe Harbor).

The profile (``data/fhir_safe_harbor.json``) names, per resource type, the elements that may
leave and how each is treated (kept, shifted, generalised, hashed, run through the text
de-identifier); every element it does not name is removed, and a resource of a type it does not
name is dropped (quarantined; a contained one left out). Extensions are kept or removed by
value type, attachments that are not text are dropped (and counted), Bundle-level fields are
rebuilt (no link, meta, identifier, timestamp or response location). Every string that leaves,
decoded attachments included, is searched for every identifier known for the patient (Patient,
RelatedPerson, Coverage, Device and the source file's name; ``carelens.privacy.known``) and
matches are replaced. Ids and references are hashed with the site key (a Patient's id becomes
its pseudonym), so references stay consistent across resources, files and runs. Output file
names are pseudonyms: ``<patient pseudonym>.json`` for a one-patient bundle, a keyed hash
otherwise (bulk files named only by resource type keep that name).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from carelens.core.fhir import MAX_NESTING, nested_deeper_than, patient_of
from carelens.core.quarantine import BatchResult
from carelens.ingest.fhir import iter_fhir_files, read_fhir
from carelens.privacy.context import PatientContext
from carelens.privacy.keys import KeyService
from carelens.privacy.known import Known, collect
from carelens.privacy.text import deidentify_text
from carelens.privacy.zip3 import safe_harbor_zip

_DATE = re.compile(
    r"^([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2})(T[0-9:.]+(?:Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?$"
)  # FHIR's, ASCII
_BULK_NAME = re.compile(r"^[A-Z][A-Za-z]+(\.\d{1,6})?\.ndjson$")
_URI = re.compile(r"^(?:https?://[A-Za-z0-9.\-]+(?:/[A-Za-z0-9.\-_]+)*|urn:oid:[0-9.]+|urn:ietf:rfc:\d+)$")
MAX_ATTACHMENT_BYTES = 8 * 1024 * 1024
BUNDLE_TYPES = {"document", "message", "transaction", "transaction-response", "batch", "batch-response", "history",
                "searchset", "collection"}  # fmt: skip


class Unsafe(ValueError):
    """A resource that cannot be made safe (quarantined whole, never written half-cleaned)."""


@dataclass
class Profile:
    """The allow-list: per resource type element -> method, nested keys, extension value types."""

    resources: dict[str, dict[str, str]]
    elements: dict[str, str]
    extensions: dict[str, str]
    removed_extensions: tuple[str, ...] = ()
    name: str = ""
    _allowed: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)

    @classmethod
    def _from(cls, data: dict[str, Any], name: str) -> Profile:
        if not isinstance(data.get("resources"), dict):
            raise ValueError(f"{name}: not an allow-list profile (no 'resources')")
        return cls(resources=data["resources"], elements=data.get("elements", {}),
                   extensions=data.get("extensions", {}), removed_extensions=tuple(data.get("removed_extensions", ())),
                   name=data.get("name", name))  # fmt: skip

    @classmethod
    def default(cls) -> Profile:
        text = resources.files("carelens.privacy").joinpath("data/fhir_safe_harbor.json").read_text()
        return cls._from(json.loads(text), "default")

    @classmethod
    def from_file(cls, path: Path) -> Profile:
        return cls._from(json.loads(Path(path).read_text()), str(path))

    def allowed(self, rtype: str) -> dict[str, str]:
        """Element -> method for one resource type (the ``*`` rules under its own), built once."""
        found = self._allowed.get(rtype)
        if found is None:
            found = self._allowed[rtype] = {**self.resources.get("*", {}), **self.resources.get(rtype, {})}
        return found

    def knows(self, rtype: str) -> bool:
        """Whether the profile has rules for this resource type (any other is dropped, never copied)."""
        return rtype != "*" and rtype in self.resources

    def type_words(self) -> frozenset[str]:
        return frozenset({t.lower() for t in self.resources} | {"bundle", "fhir", "export", "ndjson", "data"})


def iter_resources(paths: list[Path]) -> Iterator[dict[str, Any]]:
    """Every resource in FHIR JSON / bundle / NDJSON files or folders (read by the ingest's
    reader; unreadable items skipped, ``deid_fhir_path`` is the place that quarantines them)."""
    for _path, items in iter_file_resources(paths):
        yield from (r for r, _pid in items)


def iter_file_resources(paths: list[Path]) -> Iterator[tuple[Path, list[tuple[dict[str, Any], str]]]]:
    """(file, [(resource, the id of the patient it belongs to or '')]) for every FHIR file under
    ``paths``: :func:`carelens.ingest.fhir.read_fhir` reads them (references within a bundle made
    local, the owner decided by :func:`carelens.core.fhir.patient_of`)."""
    current: Path | None = None
    items: list[tuple[dict[str, Any], str]] = []
    batch = BatchResult()
    for item in read_fhir(paths, batch):
        if current is not None and item.source != str(current):
            yield current, items
            items = []
        current = Path(item.source)
        items.append((item.resource, item.patient_id or ""))
    if current is not None:
        yield current, items
    yield from _bad_id_people(batch)


def _bad_id_people(batch: BatchResult) -> Iterator[tuple[Path, list[tuple[dict[str, Any], str]]]]:
    """The people the reader left out for an id that is not a FHIR id ("Zebulon Quixley"): the
    ingest quarantines them, but what they say about the patient must still be known here."""
    for q in batch.quarantined:
        if not q.reason.startswith("id is not a FHIR id"):
            continue
        kind, _sp, number = q.where.partition(" ")
        try:
            raw = Path(q.source).read_bytes()
            data = orjson.loads(raw.split(b"\n")[int(number) - 1] if kind == "line" else raw)
            data = data["entry"][int(number)]["resource"] if kind == "entry" else data
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            continue
        if isinstance(data, dict) and data.get("resourceType") in ("Patient", "RelatedPerson", "Coverage", "Device"):
            owner = patient_of(data, urn_is_patient=False) or ""
            yield Path(q.source), [(data, owner)]


def known_identifiers(paths: list[Path], profile: Profile | None = None) -> dict[str, Known]:
    """Every identifier known for each patient in the FHIR files (``carelens.privacy.known``)."""
    words = (profile or Profile.default()).type_words()
    return collect(iter_file_resources(paths), words)


def load_patients(paths: list[Path], keys: KeyService, profile: Profile | None = None) -> dict[str, PatientContext]:
    """The ``PatientContext`` of every Patient in the given FHIR files, by patient id and by the
    id of each DocumentReference of that patient (notes are often named by document id); each
    context also knows the identifiers of the patient's RelatedPersons, Coverage and Devices."""
    return patients_and_known(paths, keys, profile)[0]


def patients_and_known(
    paths: list[Path], keys: KeyService, profile: Profile | None = None
) -> tuple[dict[str, PatientContext], dict[str, Known]]:
    """:func:`load_patients` and :func:`known_identifiers` from one reading of the files."""
    out: dict[str, PatientContext] = {}
    documents: dict[str, str] = {}

    def noted() -> Iterator[tuple[Path, list[tuple[dict[str, Any], str]]]]:
        for path, items in iter_file_resources(paths):
            for resource, pid in items:
                rid = str(resource.get("id", ""))
                if resource["resourceType"] == "Patient" and rid:
                    out[rid] = PatientContext.from_fhir(resource, keys)
                elif resource["resourceType"] == "DocumentReference" and rid and pid:
                    documents[rid] = pid
            yield path, items

    known = collect(noted(), (profile or Profile.default()).type_words())
    for pid, found in known.items():
        if pid in out:
            ctx = out[pid]
            ctx.names += [v for k, v in sorted(found.values) if k == "name" and v not in ctx.names]
            ctx.identifiers += [v for k, v in sorted(found.values) if k in ("mrn", "ssn", "device")
                                and v not in ctx.identifiers]  # fmt: skip
    avoid = frozenset(w for ctx in out.values() for w in ctx.name_parts())
    for ctx in out.values():
        ctx.avoid = avoid
    for doc_id, patient_id in documents.items():
        if patient_id in out:
            out[doc_id] = out[patient_id]
    return out, known


_REMOVED = object()


@dataclass
class FhirDeidentifier:
    """De-identifies resources with one key, one allow-list profile and the known patients."""

    keys: KeyService
    profile: Profile = field(default_factory=Profile.default)
    patients: dict[str, PatientContext] = field(default_factory=dict)
    passthrough: bool = False
    known: dict[str, Known] = field(default_factory=dict)
    dropped_attachments: int = 0
    _text_cache: dict[tuple[str, str], str] = field(default_factory=dict)
    _ids: dict[tuple[bool, str], str] = field(default_factory=dict)

    def new_id(self, resource_type: str, old: str) -> str:
        """A resource's keyed id (a Patient's: its pseudonym); remembered, as ids recur in every reference."""
        key = (resource_type == "Patient", old)
        found = self._ids.get(key)
        if found is None:
            found = self.keys.pseudonym(old) if key[0] else self.keys.hash_hex("fhir-id", old, 32)
            if len(self._ids) > 200_000:
                self._ids.clear()
            self._ids[key] = found
        return found

    def new_reference(self, ref: str, full_urls: dict[str, str]) -> str:
        ref = full_urls.get(ref, ref)
        m = re.match(r"^(?:.*/)?([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(/_history/.*)?$", ref)
        if m:
            return f"{m.group(1)}/{self.new_id(m.group(1), m.group(2))}"
        if ref.startswith("urn:uuid:"):
            return "urn:uuid:" + self.keys.hash_hex("fhir-id", ref[9:], 32)
        return self.keys.hash_hex("fhir-ref", ref, 32)

    def context_of(self, resource: dict[str, Any], full_urls: dict[str, str]) -> PatientContext:
        pid = patient_of(resource, full_urls, urn_is_patient=False) or ""
        if pid in self.patients:
            return self.patients[pid]
        return PatientContext(patient_id=pid or f"resource:{resource.get('id', '')}", keys=self.keys)

    def resource(self, resource: dict[str, Any], full_urls: dict[str, str] | None = None,
                 owner: str = "") -> dict[str, Any]:  # fmt: skip
        """A de-identified copy of one resource (``Unsafe`` when it cannot be made safe).
        ``owner``: the patient the resource belongs to when it names none (a one-patient bundle)."""
        if self.passthrough:
            return resource
        if nested_deeper_than(resource):  # the walk below recurses (a lake row ingested before the limit)
            raise Unsafe(f"nested deeper than {MAX_NESTING} levels")
        full_urls = full_urls or {}
        ctx = self.context_of(resource, full_urls)
        if owner and ctx.patient_id.startswith("resource:") and owner in self.patients:
            ctx = self.patients[owner]
        known = self.known.get(ctx.patient_id) or self.known.get(owner) or Known()
        job = _Job(self, ctx, known, full_urls, ctx.date_shift)
        return job.resource(resource)


@dataclass
class _Job:
    """One resource's de-identification: the patient context and known identifiers at hand."""

    deid: FhirDeidentifier
    ctx: PatientContext
    known: Known
    full_urls: dict[str, str]
    shift: int  # the patient's date shift, derived once a resource

    def resource(self, resource: dict[str, Any]) -> dict[str, Any]:
        rtype = str(resource["resourceType"])
        if not self.deid.profile.knows(rtype):
            raise Unsafe("resource type not in the de-identification profile (dropped)")
        allowed = self.deid.profile.allowed(rtype)
        out: dict[str, Any] = {"resourceType": rtype}
        for key, value in resource.items():
            method = allowed.get(key)
            if key == "resourceType" or method is None:
                continue
            if key == "id":
                new: Any = self.deid.new_id(rtype, str(value))
            else:
                new = self.apply(method, value, key)
            if new is not _REMOVED and new != [] and new != {}:
                out[key] = new
        return out

    # -- methods ---------------------------------------------------------------------------
    def apply(self, method: str, value: Any, key: str) -> Any:
        if isinstance(value, list) and method not in ("keep",):
            items = [self.apply(method, v, key) for v in value]
            return [v for v in items if v is not _REMOVED]
        if method == "remove":
            return _REMOVED
        handler = getattr(self, "m_" + method, None)
        if handler is None:
            raise ValueError(f"unknown FHIR de-identification method {method!r}")
        return handler(value, key)

    def m_keep(self, value: Any, key: str) -> Any:
        return self.scrub_all(value)

    def m_id(self, value: Any, key: str) -> Any:
        return self.deid.keys.hash_hex("fhir-id", str(value), 32)

    def m_uid(self, value: Any, key: str) -> Any:
        return self.deid.keys.uid(value) if isinstance(value, str) and value else _REMOVED

    def m_hash(self, value: Any, key: str) -> Any:
        if isinstance(value, dict | list):
            return _REMOVED
        return self.deid.keys.hash_hex("fhir-value", str(value), 32)

    def m_shift(self, value: Any, key: str) -> Any:
        if isinstance(value, dict):
            return self.m_walk(value, key)
        if not isinstance(value, str) or not _DATE.match(value):
            return _REMOVED
        return _shift_fhir_date(value, self.shift) or _REMOVED  # "2000-13-45" is no date

    def m_year(self, value: Any, key: str) -> Any:
        """A date's (shifted) year; anything else in a date's place leaves nothing ("²⁰⁰⁰", "Zebulon")."""
        if not isinstance(value, str) or not _DATE.match(value):
            return _REMOVED
        return _generalize(value, "year", self.shift) or _REMOVED

    def m_text(self, value: Any, key: str) -> Any:
        if not isinstance(value, str):
            return self.m_walk(value, key) if isinstance(value, dict) else value
        return self.text(value)

    def m_meta(self, value: Any, key: str) -> Any:
        if not isinstance(value, dict):
            return _REMOVED
        profiles = [p for p in value.get("profile") or [] if isinstance(p, str) and _URI.match(p)]
        kept = [p for p in profiles if self.known.scrub(p) == p]
        return {"profile": kept} if kept else _REMOVED

    def m_concept(self, value: Any, key: str) -> Any:
        if isinstance(value, str):
            return self.scrub_all(value) if key == "code" else self.text(value)
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k in ("system", "version") and isinstance(v, str):
                out[k] = v if _URI.match(v) or k == "version" else self.deid.keys.hash_hex("fhir-value", v, 32)
                out[k] = self.scrub_all(out[k])
            elif k == "code":
                out[k] = self.scrub_all(v)
            elif k in ("display", "text"):
                out[k] = self.text(v) if isinstance(v, str) else _REMOVED
            elif k == "coding":
                out[k] = self.apply("concept", v, k)
            elif k in ("extension", "userSelected"):
                out[k] = self.apply("extension", v, k) if k == "extension" else v
        return {k: v for k, v in out.items() if v is not _REMOVED}

    def m_reference(self, value: Any, key: str) -> Any:
        if not isinstance(value, dict):
            return _REMOVED
        out: dict[str, Any] = {}
        if isinstance(value.get("reference"), str):
            out["reference"] = self.deid.new_reference(value["reference"], self.full_urls)
        if isinstance(value.get("type"), str) and re.fullmatch(r"[A-Z][A-Za-z]+", value["type"]):
            out["type"] = value["type"]
        if isinstance(value.get("identifier"), dict):
            out["identifier"] = self.m_identifier(value["identifier"], "identifier")
        return out or _REMOVED

    def m_identifier(self, value: Any, key: str) -> Any:
        if not isinstance(value, dict):
            return _REMOVED
        out: dict[str, Any] = {}
        if isinstance(value.get("system"), str):
            out["system"] = (
                value["system"]
                if _URI.match(value["system"])
                else self.deid.keys.hash_hex("fhir-value", value["system"], 16)
            )
        if isinstance(value.get("use"), str):
            out["use"] = self.scrub_all(value["use"])
        if isinstance(value.get("type"), dict):
            out["type"] = self.m_concept(value["type"], "type")
        if value.get("value") is not None:
            out["value"] = self.deid.keys.hash_hex("fhir-value", str(value["value"]), 32)
        return out

    def m_address(self, value: Any, key: str) -> Any:
        if not isinstance(value, dict):
            return _REMOVED
        out: dict[str, Any] = {}
        for k in ("state", "country", "use", "type"):
            if isinstance(value.get(k), str):
                out[k] = self.text(value[k])
        if isinstance(value.get("postalCode"), str):
            zip3 = _generalize(value["postalCode"], "zip3", 0)
            if zip3:
                out["postalCode"] = zip3
        return out or _REMOVED

    def m_attachment(self, value: Any, key: str) -> Any:
        if not isinstance(value, dict):
            return _REMOVED
        content_type = str(value.get("contentType") or "")
        out: dict[str, Any] = {}
        if content_type:
            out["contentType"] = (
                content_type
                if re.fullmatch(r"[\w.+\-]+/[\w.+\-]+(; ?charset=[\w\-]+)?", content_type)
                else "application/octet-stream"
            )
        if isinstance(value.get("language"), str):
            out["language"] = self.scrub_all(value["language"])
        if isinstance(value.get("title"), str):
            out["title"] = self.text(value["title"])
        if isinstance(value.get("creation"), str):
            shifted = self.m_shift(value["creation"], "creation")
            if shifted is not _REMOVED:
                out["creation"] = shifted
        if "data" in value:
            if not content_type.lower().startswith("text/"):
                self.deid.dropped_attachments += 1
            else:
                text = _decode_text_attachment(value["data"], content_type)
                out["data"] = base64.b64encode(self.text(text).encode("utf-8")).decode("ascii")
                out["contentType"] = (
                    "text/plain; charset=utf-8"
                    if "plain" in content_type
                    else content_type.split(";")[0] + "; charset=utf-8"
                )
        elif "url" in value:
            self.deid.dropped_attachments += 1
        return out or _REMOVED

    def m_extension(self, value: Any, key: str) -> Any:
        if not isinstance(value, dict):
            return _REMOVED
        url = value.get("url")
        if not isinstance(url, str) or not _URI.match(url) or self.known.scrub(url) != url:
            return _REMOVED
        if url.endswith(self.deid.profile.removed_extensions):
            return _REMOVED
        out: dict[str, Any] = {"url": url}
        if isinstance(value.get("extension"), list):
            nested = self.apply("extension", value["extension"], "extension")
            if nested:
                out["extension"] = nested
        for k, v in value.items():
            if k.startswith("value"):
                method = self.deid.profile.extensions.get(k)
                new = self.apply(method, v, k) if method else _REMOVED
                if new is _REMOVED:
                    return _REMOVED  # a value type that may not leave removes the whole extension
                out[k] = new
        return out if len(out) > 1 else _REMOVED

    def m_contained(self, value: Any, key: str) -> Any:
        if not isinstance(value, dict) or not self.deid.profile.knows(str(value.get("resourceType"))):
            return _REMOVED
        return self.resource(value)

    def m_walk(self, value: Any, key: str) -> Any:
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for k, v in value.items():
                if self.known.scrub(k) != k:
                    continue  # a key that is an identifier (a name used as a JSON key)
                method = self.deid.profile.elements.get(k)
                new = self.apply(method, v, k) if method else self.m_walk(v, k)
                if new is not _REMOVED and new != [] and new != {}:
                    out[k] = new
            return out or _REMOVED
        if isinstance(value, list):
            return [v for v in (self.m_walk(v, key) for v in value) if v is not _REMOVED]
        if isinstance(value, str):
            if _DATE.match(value):
                return _shift_fhir_date(value, self.shift)
            return self.text(value)
        return self.number(value)

    def m_value(self, value: Any, key: str) -> Any:
        return self.text(value) if isinstance(value, str) else self.m_walk(value, key)

    # -- strings ---------------------------------------------------------------------------
    def text(self, value: str) -> str:
        """Free text: the text de-identifier with the patient's context, then known identifiers."""
        if not value.strip():
            return value
        if _DATE.match(value):
            return _shift_fhir_date(value, self.shift)
        cache = self.deid._text_cache
        key = (self.ctx.patient_id, value)
        if key not in cache:
            if len(cache) > 50_000:
                cache.clear()
            cache[key] = self.known.scrub(deidentify_text(value, self.ctx).text)
        return cache[key]

    def scrub_all(self, value: Any) -> Any:
        """Kept values: every string searched for known identifiers all the same, and a number
        that is one (an SSN or MRN written as an integer) removed."""
        if isinstance(value, str):
            return self.known.scrub(value)
        if isinstance(value, list):
            return [v for v in (self.scrub_all(v) for v in value) if v is not _REMOVED]
        if isinstance(value, dict):
            return {k: v for k, v in ((k, self.scrub_all(v)) for k, v in value.items()) if v is not _REMOVED}
        return self.number(value)

    def number(self, value: Any) -> Any:
        """A number as it may leave: removed when its digits are a known identifier."""
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        return _REMOVED if numeric and self.known.scrub(str(value)) != str(value) else value


def _decode_text_attachment(data: Any, content_type: str) -> str:
    if not isinstance(data, str):
        raise Unsafe("attachment data is not base64 text")
    if len(data) > MAX_ATTACHMENT_BYTES * 4 // 3 + 4:
        raise Unsafe(f"text attachment over {MAX_ATTACHMENT_BYTES:,} bytes")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise Unsafe("attachment data is not valid base64") from None
    m = re.search(r"charset=([\w\-]+)", content_type, re.IGNORECASE)
    charset = m.group(1) if m else ("utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8")
    try:
        codec = codecs.lookup(charset).name
    except LookupError:
        raise Unsafe("text attachment in an unknown charset") from None  # its name is the sender's to choose
    try:
        return raw.decode(codec)
    except UnicodeDecodeError:
        raise Unsafe(f"text attachment does not decode as {codec}") from None


def _shift_fhir_date(value: str, days: int) -> str:
    m = _DATE.match(value)
    if not m:
        return value
    year, month, day, time_part = m.groups()
    if month is None:
        return value  # a year alone is not an identifier
    try:
        d = date(int(year), int(month), int(day or 15)) + timedelta(days=days)
    except ValueError:
        return ""
    if day is None:
        return f"{d.year:04d}-{d.month:02d}"
    return d.isoformat() + (time_part or "")


def _generalize(value: str, to: str, days: int) -> str:
    if to == "year":
        shifted = _shift_fhir_date(value, days)[:4]
        if shifted.isdecimal() and date.today().year - int(shifted) > 89:
            return str(date.today().year - 90)  # Safe Harbor: ages over 89 fold into one 90+ group
        return shifted
    if to == "zip3":
        return safe_harbor_zip(value)
    return ""


def output_name(path: Path, rel: Path, patient_ids: set[str], keys: KeyService, profile: Profile,
                taken: set[str]) -> str:  # fmt: skip
    """The pseudonymous name of a de-identified file (never the input's name, which can name
    the patient): a bulk file's resource-type name ("Condition.000.ndjson"), the patient's
    pseudonym, or a keyed hash of the input's path."""
    bulk = _BULK_NAME.match(path.name) and path.name.split(".")[0] in profile.resources and len(rel.parts) == 1
    if bulk:
        name = path.name
    elif len(patient_ids) == 1:
        name = keys.pseudonym(next(iter(patient_ids))) + path.suffix
    else:
        name = "fhir-" + keys.hash_hex("fhir-file", rel.as_posix(), 20) + path.suffix
    if name in taken:
        name = f"{name.split('.')[0]}-{keys.hash_hex('fhir-file', rel.as_posix(), 8)}{path.suffix}"
    taken.add(name)
    return name


def deid_fhir_path(src: Path, out: Path, keys: KeyService, profile: Profile | None = None, passthrough: bool = False,
                   on_file: Callable[[Path], object] | None = None) -> BatchResult:  # fmt: skip
    """De-identify FHIR bundles / NDJSON under ``src`` into ``out`` (flat, pseudonymous names).
    A resource that cannot be made safe is quarantined and left out; attachments that are not
    text are dropped and counted (``done["attachments_dropped"]``)."""
    files = list(iter_fhir_files([src]))
    result = BatchResult()
    profile = profile or Profile.default()
    patients, known = patients_and_known(files, keys, profile)
    deid = FhirDeidentifier(keys, profile, patients, passthrough, known)
    base = src if src.is_dir() else src.parent
    taken: set[str] = set()
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as err:
            result.quarantine(str(path), "file", f"unreadable: {err.strerror}")
            continue
        rel = path.relative_to(base)
        if path.suffix == ".ndjson":
            lines, pids = [], set()
            for n, line in enumerate(data.splitlines(), 1):
                if not line.strip():
                    continue
                resource = _parse(line, str(path), f"line {n}", result)
                if resource is not None:
                    pids.add(patient_of(resource, urn_is_patient=False) or "")
                    new = _safely(deid, resource, {}, "", str(path), f"line {n}", result)
                    if new is not None:
                        lines.append(orjson.dumps(new))
            if lines:
                owners = set() if "" in pids else pids
                name = path.name if passthrough else output_name(path, rel, owners, keys, profile, taken)
                _write_atomic(out / name, b"\n".join(lines) + b"\n")
        else:
            resource = _parse(data, str(path), "file", result)
            if resource is None:
                continue
            if resource["resourceType"] == "Bundle":
                bundle, pids = _bundle(deid, resource, str(path), result)
                payload = bundle
            else:
                pids = {patient_of(resource, urn_is_patient=False) or ""} - {""}
                new = _safely(deid, resource, {}, "", str(path), "file", result)
                if new is None:
                    continue
                payload = new
            name = path.name if passthrough else output_name(path, rel, pids, keys, profile, taken)
            _write_atomic(out / name, orjson.dumps(payload, option=orjson.OPT_INDENT_2))
        if on_file:
            on_file(path)
    if deid.dropped_attachments:
        result.done["attachments_dropped"] += deid.dropped_attachments
    return result


def _safely(deid: FhirDeidentifier, resource: dict[str, Any], full_urls: dict[str, str], owner: str, source: str,
            where: str, result: BatchResult) -> dict[str, Any] | None:  # fmt: skip
    try:
        new = deid.resource(resource, full_urls, owner)
    except Unsafe as err:
        rtype = str(resource.get("resourceType"))
        result.quarantine(source, where, f"{rtype if deid.profile.knows(rtype) else 'resource'}: {err}")
        return None
    result.done["resources"] += 1
    return new


def _bundle(deid: FhirDeidentifier, resource: dict[str, Any], source: str,
            result: BatchResult) -> tuple[dict[str, Any], set[str]]:  # fmt: skip
    full_urls = _full_urls(resource)
    inner = [(i, e.get("resource") if isinstance(e, dict) else None) for i, e in enumerate(resource.get("entry") or [])]
    pids = {patient_of(r, full_urls, urn_is_patient=False) or "" for _i, r in inner if isinstance(r, dict)} - {""}
    owner = next(iter(pids)) if len(pids) == 1 else ""
    entries = []
    for i, res in inner:
        entry = resource["entry"][i]
        if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
            result.quarantine(source, f"entry {i}", "entry has no resource with a resourceType")
            continue
        if deid.passthrough:
            entries.append(entry)
            result.done["resources"] += 1
            continue
        new = _safely(deid, res, full_urls, owner, source, f"entry {i}", result)
        if new is None:
            continue
        new_entry: dict[str, Any] = {}
        if "fullUrl" in entry:
            new_entry["fullUrl"] = deid.new_reference(str(entry["fullUrl"]), full_urls)
        new_entry["resource"] = new
        request = entry.get("request")
        if isinstance(request, dict):
            method = str(request.get("method", "POST"))
            new_entry["request"] = {"method": method if method in ("GET", "POST", "PUT", "DELETE", "PATCH") else "POST",
                                    "url": res["resourceType"]}  # fmt: skip
        response = entry.get("response")
        if isinstance(response, dict) and re.fullmatch(r"\d{3}( [A-Za-z ]{0,20})?", str(response.get("status", ""))):
            new_entry["response"] = {"status": str(response["status"])[:3]}
        entries.append(new_entry)
    if deid.passthrough:
        return resource, pids
    bundle: dict[str, Any] = {"resourceType": "Bundle"}
    if resource.get("type") in BUNDLE_TYPES:
        bundle["type"] = resource["type"]
    bundle["entry"] = entries
    return bundle, pids


def _parse(data: bytes, source: str, where: str, result: BatchResult) -> dict[str, Any] | None:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        result.quarantine(source, where, "not valid JSON")
        return None
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        result.quarantine(source, where, "not a FHIR resource (no resourceType)")
        return None
    return value


def _full_urls(bundle: dict[str, Any]) -> dict[str, str]:
    out = {}
    for entry in bundle.get("entry") or []:
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
            r = entry["resource"]
            if entry.get("fullUrl") and r.get("resourceType") and r.get("id"):
                out[str(entry["fullUrl"])] = f"{r['resourceType']}/{r['id']}"
    return out


def _write_atomic(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, target)
