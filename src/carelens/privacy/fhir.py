"""FHIR de-identification with path rules in the spirit of Microsoft's FHIR anonymizer.

Methods: ``keep``, ``redact``, ``dateShift``, ``cryptoHash``, ``substitute``, ``generalize``
and ``text`` (the text de-identifier, with the patient's context). The Safe Harbor default
profile ships as ``data/fhir_safe_harbor.json``. Ids and references are hashed with the site
key (a Patient's id becomes its pseudonym), so references stay consistent across resources,
files and runs. Bundles come out as bundles, NDJSON as NDJSON, under the same relative path.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
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

from carelens.core.quarantine import BatchResult
from carelens.privacy.context import PatientContext
from carelens.privacy.keys import KeyService
from carelens.privacy.text import deidentify_text
from carelens.privacy.zip3 import safe_harbor_zip

_DATE = re.compile(r"^(\d{4})(?:-(\d\d)(?:-(\d\d)(T[0-9:.]+(?:Z|[+-]\d\d:\d\d)?)?)?)?$")
_IDENTIFYING_EXTENSIONS = ("mothersMaidenName", "birthPlace", "geolocation", "patient-birthTime", "us-core-race-text")


@dataclass
class Profile:
    """An ordered list of path rules (first match wins)."""

    rules: list[dict[str, Any]]
    name: str = ""

    @classmethod
    def default(cls) -> Profile:
        data = json.loads(resources.files("carelens.privacy").joinpath("data/fhir_safe_harbor.json").read_text())
        return cls(rules=data["rules"], name=data["name"])

    @classmethod
    def from_file(cls, path: Path) -> Profile:
        data = json.loads(Path(path).read_text())
        return cls(rules=data["rules"], name=data.get("name", str(path)))


def iter_resources(paths: list[Path]) -> Iterator[dict[str, Any]]:
    """Every resource in FHIR JSON / bundle / NDJSON files or folders (unreadable items skipped;
    ``deid_fhir_path`` is the place that quarantines them)."""
    for root in paths:
        for path in fhir_files(Path(root)):
            try:
                data = path.read_bytes()
            except OSError:
                continue
            chunks = data.splitlines() if path.suffix == ".ndjson" else [data]
            for chunk in chunks:
                try:
                    value = orjson.loads(chunk) if chunk.strip() else None
                except orjson.JSONDecodeError:
                    continue
                if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
                    continue
                if value["resourceType"] == "Bundle":
                    full_urls = _full_urls(value)
                    for entry in value.get("entry") or []:
                        inner = entry.get("resource") if isinstance(entry, dict) else None
                        if isinstance(inner, dict) and isinstance(inner.get("resourceType"), str):
                            yield _with_local_refs(inner, full_urls)
                else:
                    yield value


def _with_local_refs(resource: dict[str, Any], full_urls: dict[str, str]) -> dict[str, Any]:
    for key in ("subject", "patient"):
        ref = resource.get(key)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str) and ref["reference"] in full_urls:
            resource = {**resource, key: {**ref, "reference": full_urls[ref["reference"]]}}
    return resource


def _patient_ref(resource: dict[str, Any]) -> str | None:
    for key in ("subject", "patient"):
        ref = resource.get(key)
        if isinstance(ref, dict) and str(ref.get("reference", "")).startswith("Patient/"):
            return str(ref["reference"]).split("/", 1)[1]
    return None


def load_patients(paths: list[Path], keys: KeyService) -> dict[str, PatientContext]:
    """The ``PatientContext`` of every Patient in the given FHIR files, by patient id and by the
    id of each DocumentReference of that patient (notes are often named by document id)."""
    out: dict[str, PatientContext] = {}
    documents: dict[str, str] = {}
    for resource in iter_resources(paths):
        rid = str(resource.get("id", ""))
        if resource["resourceType"] == "Patient" and rid:
            out[rid] = PatientContext.from_fhir(resource, keys)
        elif resource["resourceType"] == "DocumentReference" and rid:
            pid = _patient_ref(resource)
            if pid:
                documents[rid] = pid
    avoid = frozenset(w for ctx in out.values() for w in ctx.name_parts())
    for ctx in out.values():
        ctx.avoid = avoid
    for doc_id, patient_id in documents.items():
        if patient_id in out:
            out[doc_id] = out[patient_id]
    return out


@dataclass
class FhirDeidentifier:
    """De-identifies resources with one key, one profile and the known patients."""

    keys: KeyService
    profile: Profile = field(default_factory=Profile.default)
    patients: dict[str, PatientContext] = field(default_factory=dict)
    passthrough: bool = False

    def new_id(self, resource_type: str, old: str) -> str:
        if resource_type == "Patient":
            return self.keys.pseudonym(old)
        return self.keys.hash_hex("fhir-id", old, 32)

    def new_reference(self, ref: str, full_urls: dict[str, str]) -> str:
        ref = full_urls.get(ref, ref)
        m = re.match(r"^(?:.*/)?([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(/_history/.*)?$", ref)
        if m:
            return f"{m.group(1)}/{self.new_id(m.group(1), m.group(2))}"
        if ref.startswith("urn:uuid:"):
            return "urn:uuid:" + self.keys.hash_hex("fhir-id", ref[9:], 32)
        return self.keys.hash_hex("fhir-ref", ref, 32)

    def context_of(self, resource: dict[str, Any], full_urls: dict[str, str]) -> PatientContext:
        if resource.get("resourceType") == "Patient" and resource.get("id"):
            pid = str(resource["id"])
        else:
            pid = ""
            for key in ("subject", "patient", "beneficiary"):
                ref = (resource.get(key) or {}).get("reference") if isinstance(resource.get(key), dict) else None
                if isinstance(ref, str):
                    ref = full_urls.get(ref, ref)
                    if ref.startswith("Patient/"):
                        pid = ref.split("/", 1)[1]
                        break
        if pid in self.patients:
            return self.patients[pid]
        return PatientContext(patient_id=pid or f"resource:{resource.get('id', '')}", keys=self.keys)

    def resource(self, resource: dict[str, Any], full_urls: dict[str, str] | None = None) -> dict[str, Any]:
        """A de-identified copy of one resource."""
        if self.passthrough:
            return resource
        full_urls = full_urls or {}
        ctx = self.context_of(resource, full_urls)
        rtype = str(resource["resourceType"])
        out = self._walk(resource, rtype, rtype, ctx, full_urls, None)
        return out if isinstance(out, dict) else {"resourceType": rtype}

    # ------------------------------------------------------------------------------------
    def _rule(self, path: str, value: Any, parent: dict[str, Any] | None) -> dict[str, Any] | None:
        for rule in self.profile.rules:
            if fnmatch.fnmatchcase(path, rule["path"]) and _when(rule.get("when"), value, parent, path):
                return rule
        return None

    def _walk(self, value: Any, path: str, rtype: str, ctx: PatientContext, full_urls: dict[str, str],
              parent: dict[str, Any] | None) -> Any:  # fmt: skip
        rule = self._rule(path, value, parent) if path != rtype else None
        if rule is not None:
            return self._apply(rule, value, path, rtype, ctx, full_urls, parent)
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                new = self._walk(v, f"{path}.{k}", rtype, ctx, full_urls, value)
                if new is not _REMOVED:
                    out[k] = new
            return out
        if isinstance(value, list):
            items = [self._walk(v, path, rtype, ctx, full_urls, parent) for v in value]
            return [v for v in items if v is not _REMOVED]
        if isinstance(value, str) and _DATE.match(value):
            return _shift_fhir_date(value, ctx.date_shift)
        return value

    def _apply(self, rule: dict[str, Any], value: Any, path: str, rtype: str, ctx: PatientContext,
               full_urls: dict[str, str], parent: dict[str, Any] | None) -> Any:  # fmt: skip
        method = rule["method"]
        if method == "keep":
            return value
        if method == "redact":
            return _REMOVED
        if isinstance(value, list):
            return [self._apply(rule, v, path, rtype, ctx, full_urls, parent) for v in value]
        if isinstance(value, dict):
            return self._walk(value, path + ".", rtype, ctx, full_urls, parent)
        if method == "cryptoHash":
            if path.endswith(".reference") or path.endswith(".fullUrl"):
                return self.new_reference(str(value), full_urls)
            if path == f"{rtype}.id":
                return self.new_id(rtype, str(value))
            return self.keys.hash_hex("fhir-value", str(value), 32)
        if method == "dateShift":
            return _shift_fhir_date(str(value), ctx.date_shift) if _DATE.match(str(value)) else _REMOVED
        if method == "substitute":
            return f"{rule.get('value', 'REDACTED')} {self.keys.hash_hex('substitute', str(value), 6)}"
        if method == "generalize":
            return _generalize(str(value), rule.get("to", ""), ctx.date_shift)
        if method == "text":
            if path.endswith("attachment.data"):
                return _deid_base64(str(value), ctx)
            return deidentify_text(str(value), ctx).text if isinstance(value, str) else value
        raise ValueError(f"unknown FHIR de-identification method {method!r}")


_REMOVED = object()


def _when(cond: str | None, value: Any, parent: dict[str, Any] | None, path: str) -> bool:
    if cond is None:
        return True
    if cond == "HumanName":
        items = value if isinstance(value, list) else [value]
        return any(isinstance(v, dict) and ({"family", "given", "text"} & set(v)) for v in items)
    if cond == "identifying-extension":
        items = value if isinstance(value, list) else [value]
        return any(isinstance(v, dict) and str(v.get("url", "")).endswith(_IDENTIFYING_EXTENSIONS) for v in items)
    if cond == "not-terminology":
        return not (isinstance(parent, dict) and ("system" in parent or "code" in parent))
    if cond == "text-attachment":
        return isinstance(parent, dict) and str(parent.get("contentType", "text/plain")).startswith("text/")
    if cond == "free-text":
        return isinstance(value, str) and not (isinstance(parent, dict) and "coding" in parent)
    return False


def _shift_fhir_date(value: str, days: int) -> str:
    m = _DATE.match(value)
    if not m:
        return value
    year, month, day, time_part = m.groups()
    if month is None:
        return value  # a year alone is not an identifier
    d = date(int(year), int(month), int(day or 15)) + timedelta(days=days)
    if day is None:
        return f"{d.year:04d}-{d.month:02d}"
    return d.isoformat() + (time_part or "")


def _generalize(value: str, to: str, days: int) -> str:
    if to == "year":
        shifted = _shift_fhir_date(value, days)[:4]
        if shifted.isdigit() and date.today().year - int(shifted) > 89:
            return str(date.today().year - 90)  # Safe Harbor: ages over 89 fold into one 90+ group
        return shifted
    if to == "zip3":
        return safe_harbor_zip(value)
    return ""


def _deid_base64(data: str, ctx: PatientContext) -> str:
    try:
        text = base64.b64decode(data, validate=False).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""  # not text we can clean: drop it rather than pass it through
    return base64.b64encode(deidentify_text(text, ctx).text.encode("utf-8")).decode("ascii")


def fhir_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.suffix in (".json", ".ndjson") and not p.name.endswith(".phi.json"))


def deid_fhir_path(src: Path, out: Path, keys: KeyService, profile: Profile | None = None, passthrough: bool = False,
                   on_file: Callable[[Path], object] | None = None) -> BatchResult:  # fmt: skip
    """De-identify FHIR bundles / NDJSON under ``src`` into ``out`` (same relative layout)."""
    files = fhir_files(src)
    result = BatchResult()
    patients = {k: v for k, v in load_patients(files, keys).items()}
    deid = FhirDeidentifier(keys, profile or Profile.default(), patients, passthrough)
    base = src if src.is_dir() else src.parent
    for path in files:
        target = out / path.relative_to(base)
        try:
            data = path.read_bytes()
        except OSError as err:
            result.quarantine(str(path), "file", f"unreadable: {err.strerror}")
            continue
        if path.suffix == ".ndjson":
            lines = []
            for n, line in enumerate(data.splitlines(), 1):
                if not line.strip():
                    continue
                resource = _parse(line, str(path), f"line {n}", result)
                if resource is not None:
                    lines.append(orjson.dumps(deid.resource(resource)))
                    result.done["resources"] += 1
            if lines:
                _write_atomic(target, b"\n".join(lines) + b"\n")
        else:
            resource = _parse(data, str(path), "file", result)
            if resource is None:
                continue
            if resource["resourceType"] == "Bundle":
                full_urls = _full_urls(resource)
                entries = []
                for i, entry in enumerate(resource.get("entry") or []):
                    inner = entry.get("resource") if isinstance(entry, dict) else None
                    if not isinstance(inner, dict) or not isinstance(inner.get("resourceType"), str):
                        result.quarantine(str(path), f"entry {i}", "entry has no resource with a resourceType")
                        continue
                    new_entry = {k: v for k, v in entry.items() if k not in ("resource", "fullUrl")}
                    if "fullUrl" in entry and not passthrough:
                        new_entry["fullUrl"] = deid.new_reference(str(entry["fullUrl"]), full_urls)
                    elif "fullUrl" in entry:
                        new_entry["fullUrl"] = entry["fullUrl"]
                    if "request" in entry and not passthrough:
                        new_entry["request"] = {"method": entry["request"].get("method", "POST"),
                                                "url": inner["resourceType"]}  # fmt: skip
                    new_entry["resource"] = deid.resource(inner, full_urls)
                    entries.append(new_entry)
                    result.done["resources"] += 1
                bundle = {k: v for k, v in resource.items() if k not in ("entry", "id", "identifier")}
                bundle["entry"] = entries
                _write_atomic(target, orjson.dumps(bundle, option=orjson.OPT_INDENT_2))
            else:
                _write_atomic(target, orjson.dumps(deid.resource(resource), option=orjson.OPT_INDENT_2))
                result.done["resources"] += 1
        if on_file:
            on_file(path)
    return result


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
