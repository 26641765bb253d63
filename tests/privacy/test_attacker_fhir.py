"""FHIR, an attacker's sweep: one planted canary per place a name can hide (primitive extensions,
contained resources, narrative, meta, references, answers, payloads, agents, Binary, unknown
resource types, ids, URLs with query strings, compressed PDFs, NDJSON bulk files). De-identified,
none survives in any byte or file name; planted into a de-identified batch (de-identification off
for that place), the audit finds it and the research ingest refuses the batch."""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from carelens.ingest.research import BatchRefused, ingest_research
from carelens.privacy.audit import audit
from carelens.privacy.fhir import deid_fhir_path
from carelens.privacy.keys import KeyService
from tests.privacy.adversarial import adversarial_bundle, found_canaries
from tests.privacy.conftest import CANARY as C

GIVEN, FAMILY = f"{C['given']}123", f"{C['family']}456"
REF = {"reference": "urn:uuid:pat-adv-1"}
EXT = "http://x.org/e"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def flate_pdf(text: str) -> bytes:
    """A one-page PDF whose content stream (holding ``text``) is Flate-compressed, as most are."""
    stream = zlib.compress(f"BT /F1 12 Tf 72 712 Td ({text}) Tj ET".encode())
    head = f"%PDF-1.4\n4 0 obj << /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode()
    return head + stream + b"\nendstream\nendobj\n%%EOF\n"


def _of(bundle: dict, rtype: str) -> dict:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype)


def _add(resource: dict) -> Callable[[dict], None]:
    return lambda b: b["entry"].append({"fullUrl": f"urn:uuid:{resource.get('id', 'x')}", "resource": resource})


def _set(rtype: str, key: str, value: object) -> Callable[[dict], None]:
    return lambda b: _of(b, rtype).__setitem__(key, value)


def _string_ext(value: str) -> dict:
    return {"extension": [{"url": EXT, "valueString": value}]}


PLANTS: dict[str, Callable[[dict], None]] = {
    "_birthDate.extension": _set("Patient", "_birthDate", _string_ext(FAMILY)),
    "name[0]._family": _set("Patient", "name", [{"_family": _string_ext(GIVEN)}]),
    "note[0]._text in a walked element": _set("Condition", "note", [{"text": "ok", "_text": _string_ext(FAMILY)}]),
    "contained Patient": _set("Observation", "contained", [
        {"resourceType": "Patient", "id": "c1", "name": [{"family": FAMILY}], "identifier": [{"value": C["mrn"]}]}]),
    "contained resource named by the patient": _set("Observation", "contained", [{"resourceType": FAMILY}]),
    "text.div narrative": _set("Observation", "text", {"status": "generated", "div": f"<div>{GIVEN} {FAMILY}</div>"}),
    "meta.tag and meta.security display": _set("Observation", "meta", {
        "tag": [{"system": "http://x.org/t", "code": "t", "display": FAMILY}],
        "security": [{"system": "http://x.org/s", "code": "s", "display": C["mrn"]}]}),
    "Reference.display": _set("Observation", "subject", {**REF, "display": f"{GIVEN} {FAMILY}"}),
    "Reference.identifier": _set("Observation", "performer", [{"identifier": {"value": C["mrn"]}, "display": GIVEN}]),
    "QuestionnaireResponse answer": _add({
        "resourceType": "QuestionnaireResponse", "id": "qr-1", "subject": REF, "status": "completed",
        "item": [{"linkId": "1", "text": "Name", "answer": [{"valueString": f"{GIVEN} {FAMILY}"}]}]}),
    "Observation.valueString": _set("Observation", "valueString", f"spoke with {FAMILY} ({C['mrn']})"),
    "Observation.component valueString": _set("Observation", "component", [
        {"code": {"text": "who"}, "valueString": f"{GIVEN} {FAMILY}"}]),
    "Communication.payload": _add({
        "resourceType": "Communication", "id": "com-1", "subject": REF, "status": "completed",
        "payload": [{"contentString": f"Dear {GIVEN}, MRN {C['mrn']}"}]}),
    "Provenance agent": _add({
        "resourceType": "Provenance", "id": "prov-1", "target": [REF], "recorded": "2019-07-23T10:00:00Z",
        "agent": [{"who": {"display": FAMILY}, "onBehalfOf": {"display": GIVEN, "identifier": {"value": C["mrn"]}}}]}),
    "AuditEvent agent": _add({
        "resourceType": "AuditEvent", "id": "ae-1", "recorded": "2019-07-23T10:00:00Z",
        "agent": [{"name": FAMILY, "altId": C["mrn"], "requestor": True}], "entity": [{"what": REF, "name": GIVEN}]}),
    "Binary resource": _add({"resourceType": "Binary", "id": "bin-1", "contentType": "text/plain",
                             "data": _b64(f"{FAMILY} {C['mrn']}".encode())}),
    "resource type unknown to the profile": _add({
        "resourceType": "FamilyMemberHistory", "id": "fmh-1", "patient": REF, "status": "completed",
        "identifier": [{"system": "http://x.org/id", "value": "fmh"}], "name": GIVEN,
        "code": {"text": "ok"}, "note": [{"text": f"mother of {FAMILY}"}]}),
    "resourceType that is a name": _add({"resourceType": FAMILY, "id": "odd-1", "status": "final"}),
    "id and fullUrl with a name and MRN": lambda b: b["entry"].append({
        "fullUrl": f"http://fhir.example/Observation/{FAMILY}-{C['mrn']}",
        "resource": {"resourceType": "Observation", "id": f"{FAMILY}-{C['mrn']}", "status": "final",
                     "subject": REF, "code": {"text": "x"}}}),
    "URLs with query strings": _set("Observation", "extension", [
        {"url": f"http://x.org/ext?name={FAMILY}", "valueCode": "a"},
        {"url": EXT, "valueCoding": {"system": f"http://x.org/cs?mrn={C['mrn']}", "code": "a"}}]),
    "valueBase64Binary extension": _set("Observation", "extension", [
        {"url": EXT, "valueBase64Binary": _b64(f"{GIVEN} {FAMILY} {C['mrn']}".encode())}]),
    "data: URI inside the narrative": _set("Observation", "text", {"status": "generated", "div": (
        '<div><img src="data:text/plain;base64,' + _b64(f"{FAMILY} {C['mrn']}".encode()) + '"/></div>')}),
    "an SSN written as a number": _set("Observation", "valueQuantity", {"value": int(C["ssn"].replace("-", ""))}),
    "name as HTML character references": _set("Observation", "valueString", "seen: Q&#117;ixley&#52;56"),
    "name percent-encoded": _set("Condition", "code", {"text": "x", "coding": [
        {"system": "http://snomed.info/sct", "code": f"Q%75ixley-{C['mrn']}".replace("M", "%4D")}]}),
    "zero-width space inside the name": _set("Observation", "valueString", "seen: Quix\u200bley456 today"),
    "fullwidth letters": _set("Condition", "note", [{"text": "per \uff31\uff55\uff49\uff58\uff4c\uff45\uff59"}]),
    "UTF-16 bytes labelled UTF-8": _set("DocumentReference", "content", [{"attachment": {
        "contentType": "text/plain; charset=utf-8", "data": _b64(f"note on {FAMILY}".encode("utf-16-le"))}}]),
    "compressed PDF attachment": _set("DocumentReference", "content", [
        {"attachment": {"contentType": "application/pdf", "data": _b64(flate_pdf(f"{GIVEN} {FAMILY}"))}}]),
}  # fmt: skip


def _source(tmp_path: Path, place: str) -> Path:
    bundle = adversarial_bundle()
    PLANTS[place](bundle)
    src = tmp_path / "src"
    src.mkdir()
    (src / "bundle.json").write_text(json.dumps(bundle))
    return src


@pytest.mark.parametrize("place", sorted(PLANTS))
def test_deidentified_output_holds_no_canary(place: str, tmp_path: Path, keys: KeyService) -> None:
    src = _source(tmp_path, place)
    out = tmp_path / "out"
    result = deid_fhir_path(src, out, keys)
    assert found_canaries(out) == [], place
    assert audit(out, src, keys).clean
    for item in result.quarantined:  # reasons never hold the identifying text
        assert C["family"].lower() not in item.reason.lower() and C["mrn"] not in item.reason
    count = sum(len(json.loads(p.read_text())["entry"]) for p in out.glob("*.json"))
    assert count + len(result.quarantined) == len(json.loads((src / "bundle.json").read_text())["entry"])


@pytest.mark.parametrize("place", sorted(PLANTS))
def test_the_audit_finds_each_place_and_ingest_refuses(place: str, tmp_path: Path, keys: KeyService) -> None:
    clean = tmp_path / "clean"
    (clean / "src").mkdir(parents=True)
    (clean / "src" / "bundle.json").write_text(json.dumps(adversarial_bundle()))
    batch = tmp_path / "batch"
    deid_fhir_path(clean / "src", batch, keys)
    (path,) = list(batch.iterdir())
    bundle = json.loads(path.read_text())
    PLANTS[place](bundle)  # the place, de-identification off
    path.write_text(json.dumps(bundle))
    src = _source(tmp_path, place)
    report = audit(batch, src, keys)
    assert report.leaks, place
    assert all(C["family"].lower() not in x.location.lower() and C["mrn"] not in x.location for x in report.leaks)
    with pytest.raises(BatchRefused):
        ingest_research([batch], [src], tmp_path / "store")


def test_unknown_resource_types_are_dropped_with_a_reason_that_names_nothing(tmp_path: Path, keys: KeyService):
    bundle = adversarial_bundle()
    for place in ("resource type unknown to the profile", "resourceType that is a name", "Binary resource"):
        PLANTS[place](bundle)
    src = tmp_path / "src"
    src.mkdir()
    (src / "b.json").write_text(json.dumps(bundle))
    result = deid_fhir_path(src, tmp_path / "out", keys)
    bundles = [json.loads(p.read_text()) for p in (tmp_path / "out").iterdir()]
    types = {e["resource"]["resourceType"] for b in bundles for e in b["entry"]}
    assert not types & {"FamilyMemberHistory", "Binary", FAMILY}
    reasons = [q.reason for q in result.quarantined]
    assert len(reasons) == 3 and all("not in the de-identification profile" in r for r in reasons)
    assert not any(FAMILY.lower() in r.lower() for r in reasons)


def test_ndjson_bulk_files_are_cleaned_and_keep_their_type_names(tmp_path: Path, keys: KeyService) -> None:
    bundle = adversarial_bundle()
    src = tmp_path / "bulk"
    src.mkdir()
    by_type: dict[str, list[dict]] = {}
    for entry in bundle["entry"]:
        by_type.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    by_type["Observation"].append({"resourceType": "Observation", "id": "o2", "status": "final",
                                   "subject": {"reference": "Patient/pat-adv-1", "display": FAMILY},
                                   "code": {"text": "note"}, "valueString": f"{GIVEN} {C['mrn']}"})  # fmt: skip
    for rtype, items in by_type.items():  # bulk files refer to Patient/<id>, not to a bundle's urn:uuid
        items = [json.loads(json.dumps(r).replace("urn:uuid:pat-adv-1", "Patient/pat-adv-1")) for r in items]
        (src / f"{rtype}.ndjson").write_text("\n".join(json.dumps(r) for r in items) + "\n")
    out = tmp_path / "out"
    result = deid_fhir_path(src, out, keys)
    assert result.done["resources"] == sum(len(v) for v in by_type.values())
    assert found_canaries(out) == []
    assert "Observation.ndjson" in {p.name for p in out.iterdir()}
    assert audit(out, src, keys).clean


def test_a_patient_without_id_or_fullurl_is_known_and_cleaned(tmp_path: Path, keys: KeyService) -> None:
    patient = {"resourceType": "Patient", "name": [{"family": FAMILY, "given": [GIVEN]}],
               "identifier": [{"system": "http://x.org/mrn", "value": C["mrn"]}]}  # fmt: skip
    note = {"resourceType": "Observation", "status": "final", "code": {"text": "note"},
            "valueString": f"{GIVEN.lower()}:{C['mrn']}"}  # fmt: skip
    src = tmp_path / "src"
    src.mkdir()
    (src / "b.json").write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                            "entry": [{"resource": patient}, {"resource": note}]}))  # fmt: skip
    out = tmp_path / "out"
    result = deid_fhir_path(src, out, keys)
    assert result.done["resources"] == 2 and not result.quarantined
    assert found_canaries(out) == []
    passthrough = tmp_path / "passthrough"
    deid_fhir_path(src, passthrough, keys, passthrough=True)
    assert {"name", "mrn"} <= {x.value_kind for x in audit(passthrough, src, keys).leaks}


def test_a_patient_whose_id_is_no_fhir_id_is_still_known(tmp_path: Path, keys: KeyService) -> None:
    """The reader quarantines an id with a space; its names must still be searched for."""
    pid = f"{C['given']} {C['family']}"
    patient = {"resourceType": "Patient", "id": pid, "name": [{"family": FAMILY, "given": [GIVEN]}]}
    note = {"resourceType": "Observation", "id": "o1", "status": "final", "subject": {"reference": f"Patient/{pid}"},
            "code": {"text": "note"}, "valueString": f"{GIVEN.lower()}/{FAMILY.lower()}"}  # fmt: skip
    src = tmp_path / "src"
    src.mkdir()
    (src / "b.json").write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                            "entry": [{"resource": patient}, {"resource": note}]}))  # fmt: skip
    out = tmp_path / "out"
    deid_fhir_path(src, out, keys)
    assert found_canaries(out) == []
    passthrough = tmp_path / "passthrough"
    deid_fhir_path(src, passthrough, keys, passthrough=True)
    assert "name" in {x.value_kind for x in audit(passthrough, src, keys).leaks}


def test_the_folder_holding_the_batch_is_searched_too(tmp_path: Path, keys: KeyService) -> None:
    """The research lake keeps each file's path as given, folders above the batch included."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "bundle.json").write_text(json.dumps(adversarial_bundle()))
    batch = tmp_path / f"{C['family']}_{C['given']}" / "batch"
    deid_fhir_path(src, batch, keys)
    leaks = audit(batch, src, keys).leaks
    assert leaks and all(x.location.endswith("folder name of the path given") for x in leaks)
    assert all(C["family"].lower() not in x.location.lower() for x in leaks)
    with pytest.raises(BatchRefused):
        ingest_research([batch], [src], tmp_path / "store")


def test_a_resource_nested_too_deep_for_the_walk_is_quarantined_and_the_rest_written(
    tmp_path: Path, keys: KeyService
) -> None:
    """450 extensions inside one another made the cleaning walk overflow Python's stack: the whole command
    ended with "internal error (RecursionError)", the other patient unwritten."""
    inner: dict = {"url": EXT, "valueString": f"{GIVEN} {FAMILY}"}
    for _ in range(450):
        inner = {"url": EXT, "extension": [inner]}
    deep = {"resourceType": "Patient", "id": "deep", "name": [{"family": FAMILY}], "extension": [inner]}
    plain = {"resourceType": "Patient", "id": "plain", "name": [{"family": "Smith"}], "gender": "female"}
    src = tmp_path / "b.json"
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": deep}, {"resource": plain}]}
    src.write_text(json.dumps(bundle))
    result = deid_fhir_path(src, tmp_path / "out", keys)
    assert result.done["resources"] == 1
    assert [(q.where, q.reason) for q in result.quarantined] == [("entry 0", "Patient: nested deeper than 128 levels")]
    written = "".join(p.read_text() for p in (tmp_path / "out").iterdir())
    assert "female" in written and C["family"] not in written


def test_an_attachment_charset_is_never_echoed_in_a_reason(tmp_path: Path, keys: KeyService) -> None:
    bundle = adversarial_bundle()
    doc = _of(bundle, "DocumentReference")
    doc["content"] = [{"attachment": {"contentType": f"text/plain; charset={FAMILY}", "data": _b64(b"note")}}]
    src = tmp_path / "b.json"
    src.write_text(json.dumps(bundle))
    result = deid_fhir_path(src, tmp_path / "out", keys)
    reasons = [q.reason for q in result.quarantined]
    assert reasons and all(C["family"] not in r for r in reasons), reasons
    assert any("unknown charset" in r for r in reasons)
