"""An adversarial FHIR source: one planted canary in every place the issue names (each a
distinct value, so a leak names its place), and a check that finds any of them in output bytes."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from tests.privacy.conftest import CANARY

C = CANARY
# place -> the canary planted there (each one is an identifier the audit knows from the source)
PLACES = {
    "file name": "Zebulon_Quixley_0f4c2a9e-8b1d-4e5f-9a7c-3d2e1f0a9b8c.json",
    "related person": "Ottoline Vasquerro",
    "coverage subscriberId": "SUBX7781234",
    "device serial": "SN-99812-ZQ",
    "device udi": "(01)00643169007222(17)160128(21)BLC200461H",
}


def _b64(text: str, encoding: str = "utf-8") -> str:
    return base64.b64encode(text.encode(encoding)).decode()


def adversarial_bundle() -> dict:
    """A Synthea-like bundle whose patient's identifiers hide in every element the allow-list must handle."""
    pid = "pat-adv-1"
    ref = {"reference": f"urn:uuid:{pid}"}
    given, family = f"{C['given']}123", f"{C['family']}456"  # Synthea writes digits after names
    patient = {
        "resourceType": "Patient", "id": pid,
        "identifier": [{"system": "http://hospital.example.org/mrn", "value": C["mrn"]},
                       {"system": "http://hl7.org/fhir/sid/us-ssn", "value": C["ssn"]}],
        "name": [{"family": family, "given": [given]}],
        "telecom": [{"system": "phone", "value": C["phone"]}, {"system": "email", "value": "zeb.quixley@mail.example"}],
        "birthDate": C["birth"], "gender": "male",
        "address": [{"line": [C["line"]], "city": C["city"], "state": "MA", "postalCode": C["zip"]}],
        "extension": [
            {"url": "http://example.org/x/addr", "valueAddress": {"line": [C["line"]], "city": C["city"]}},
            {"url": "http://example.org/x/name", "valueHumanName": {"family": family, "given": [given]}},
            {"url": "http://example.org/x/ident", "valueIdentifier": {"value": C["mrn"]}},
            {"url": "http://example.org/x/tel", "valueContactPoint": {"value": C["phone"]}},
            {"url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName", "valueString": "Pemberton"},
        ],
    }  # fmt: skip
    resources = [
        patient,
        {"resourceType": "RelatedPerson", "id": "rp-1", "patient": ref,
         "name": [{"family": "Vasquerro", "given": ["Ottoline"]}]},
        {"resourceType": "Coverage", "id": "cov-1", "beneficiary": ref, "subscriberId": PLACES["coverage subscriberId"],
         "status": "active"},
        {"resourceType": "Device", "id": "dev-1", "patient": ref, "serialNumber": PLACES["device serial"],
         "udiCarrier": [{"carrierHRF": PLACES["device udi"], "deviceIdentifier": "00643169007222"}]},
        {"resourceType": "Condition", "id": "cond-1", "subject": ref,
         "code": {"text": f"Seen with {given} {family} SSN {C['ssn']}",
                  "coding": [{"system": "http://snomed.info/sct", "code": "44054006",
                              "display": f"Diabetes of {family}"}]},
         "note": [{"authorString": f"{given} {family}", "text": "stable"}]},
        {"resourceType": "DiagnosticReport", "id": "dr-1", "subject": ref, "status": "final",
         "code": {"coding": [{"system": "http://loinc.org", "code": "34117-2"}]},
         "presentedForm": [{"contentType": "text/plain",
                            "data": _b64(f"History and physical for {given.upper()} {family}. Ottoline visits.")}]},
        {"resourceType": "DocumentReference", "id": "doc-1", "subject": ref, "status": "current",
         "content": [
             {"attachment": {"contentType": "text/plain; charset=utf-16",
                             "data": _b64(f"Note: z e b u l o n {family} called.", "utf-16")}},
             {"attachment": {"contentType": "application/pdf", "data": _b64(f"%PDF-1.4 {given} {family}")}},
             {"attachment": {"contentType": "application/octet-stream", "data": _b64(f"{C['mrn']} {family}")}},
             {"attachment": {"contentType": "text/plain", "url": f"http://example.org/{family}.txt"}},
         ]},
        {"resourceType": "Media", "id": "media-1", "subject": ref, "status": "completed",
         "content": {"contentType": "image/png", "data": _b64(f"PNG {family} {C['mrn']}"),
                     "title": f"{given} photo"}},
        {"resourceType": "Observation", "id": "obs-1", "subject": ref, "status": "final",
         "code": {"text": "contact"}, "valueString": f"email zeb.quixley@mail.example or {C['phone']}",
         "performer": [{"reference": "urn:uuid:rp-1", "display": f"{given} {family}"}]},
    ]  # fmt: skip
    entries = [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r,
                "response": {"status": "201 Created", "location": f"Patient?name={family}&identifier={C['mrn']}"}}
               for r in resources]  # fmt: skip
    return {"resourceType": "Bundle", "type": "transaction", "id": f"bundle-{family}",
            "meta": {"source": f"#{given}-{family}", "tag": [{"display": family}]},
            "identifier": {"value": C["mrn"]},
            "link": [{"relation": "self", "url": f"http://fhir.example/Patient?name={family}"}],
            "entry": entries}  # fmt: skip


def write_adversarial(tmp_path: Path) -> Path:
    src = tmp_path / "adv-src"
    src.mkdir()
    (src / PLACES["file name"]).write_text(json.dumps(adversarial_bundle()))
    return src


CANARY_WORDS = ["zebulon", "quixley", "ottoline", "vasquerro", "pemberton", "thornbury", "wellfleet",
                re.sub(r"\D", "", C["mrn"]), re.sub(r"\D", "", C["ssn"]), re.sub(r"\D", "", C["phone"]),
                "subx7781234", "99812", "blc200461h", "0f4c2a9e"]  # fmt: skip


def found_canaries(root: Path) -> list[str]:
    """Canary words in any file name or byte under ``root``, base64 data decoded (utf-8 and utf-16),
    case, digits, spaces and punctuation ignored."""
    hits = []
    for path in sorted(root.rglob("*")):
        texts = [str(path.relative_to(root))]
        if path.is_file():
            raw = path.read_bytes()
            texts.append(raw.decode("utf-8", "replace"))
            for m in re.finditer(rb'"data"\s*:\s*"([A-Za-z0-9+/=]+)"', raw):
                data = base64.b64decode(m.group(1))
                texts += [data.decode("utf-8", "replace"), data.decode("utf-16", "replace")]
        for text in texts:
            flat = re.sub(r"[^a-z0-9]", "", text.lower())
            letters = re.sub(r"[^a-z]", "", text.lower())
            hits += [f"{w} in {path.name}" for w in CANARY_WORDS if w in (letters if w.isalpha() else flat)]
    return hits
