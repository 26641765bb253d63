"""Render a patient's story as a FHIR R4 transaction bundle (Synthea style: ``urn:uuid``
fullUrls, ``POST`` requests), collecting the planted facts on the way."""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from carelens.demo import catalog as cat
from carelens.demo.manifest import (
    PlantedAllergy,
    PlantedMedication,
    PlantedProblem,
    PlantedResult,
)
from carelens.demo.story import REFERENCE_DATE, Encounter, Story, age_on, new_id

Resource = dict[str, Any]
INTERPRETATION_DISPLAY = {"H": "High", "L": "Low", "HH": "Critical high", "LL": "Critical low", "N": "Normal"}


@dataclass
class ImagePlan:
    """One chest radiograph of the patient (rendered to DICOM by :mod:`carelens.demo.dicom`)."""

    encounter: Encounter
    opacity: bool
    burned_in: bool
    study_uid: str
    series_uid: str
    sop_uid: str
    accession: str
    imaging_study_id: str


@dataclass
class NoteDoc:
    """A note with the id of its DocumentReference."""

    document_id: str
    kind: str
    encounter: Encounter
    text: str


@dataclass
class BundleResult:
    bundle: Resource
    problems: list[PlantedProblem] = field(default_factory=list)
    medications: list[PlantedMedication] = field(default_factory=list)
    allergies: list[PlantedAllergy] = field(default_factory=list)
    critical: list[PlantedResult] = field(default_factory=list)


def ts(d: date, hour: int = 9, minute: int = 0) -> str:
    """A FHIR dateTime at a fixed clinic time zone."""
    return f"{d.isoformat()}T{hour:02d}:{minute:02d}:00-05:00"


def coding(system: str, code: str, display: str) -> Resource:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def ref(kind: str, rid: str) -> Resource:
    return {"reference": f"urn:uuid:{rid}"}


class _Bundle:
    def __init__(self) -> None:
        self.entries: list[Resource] = []

    def add(self, resource: Resource) -> Resource:
        self.entries.append(
            {
                "fullUrl": f"urn:uuid:{resource['id']}",
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
        )
        return resource


def _patient(s: Story) -> Resource:
    rel = s.relatives[0]
    return {
        "resourceType": "Patient",
        "id": s.id,
        "identifier": [
            {
                "type": coding(cat.V2_IDENTIFIER_TYPE, "MR", "Medical Record Number"),
                "system": cat.MRN_SYSTEM,
                "value": s.mrn,
            },
            {
                "type": coding(cat.V2_IDENTIFIER_TYPE, "SS", "Social Security number"),
                "system": cat.SSN_SYSTEM,
                "value": s.ssn,
            },
        ],
        "name": [{"use": "official", "family": s.patient.family, "given": [s.patient.given, s.middle]}],
        "telecom": [
            {"system": "phone", "value": s.phone, "use": "home"},
            {"system": "phone", "value": s.work_phone, "use": "work"},
            {"system": "email", "value": s.email},
        ],
        "gender": s.sex,
        "birthDate": s.birth_date.isoformat(),
        "address": [{"line": [s.street], "city": s.city, "state": s.state, "postalCode": s.zip, "country": "US"}],
        "maritalStatus": coding(
            "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
            *(("M", "Married") if rel.relation in ("wife", "husband") else ("S", "Never Married")),
        ),
        "contact": [
            {
                "relationship": [{"text": rel.relation}],
                "name": {"family": rel.family, "given": [rel.given]},
                "telecom": [{"system": "phone", "value": s.phone}],
            }
        ],
        "communication": [{"language": coding("urn:ietf:bcp:47", "en-US", "English (United States)")}],
    }


ENCOUNTER_CLASS = {
    "ambulatory": ("AMB", "ambulatory"),
    "emergency": ("EMER", "emergency"),
    "inpatient": ("IMP", "inpatient encounter"),
}
ENCOUNTER_TYPE = {
    "ambulatory": ("185349003", "Encounter for check up (procedure)"),
    "emergency": ("50849002", "Emergency room admission (procedure)"),
    "inpatient": ("32485007", "Hospital admission (procedure)"),
}


def _encounter(s: Story, e: Encounter) -> Resource:
    code, display = ENCOUNTER_CLASS[e.kind]
    res: Resource = {
        "resourceType": "Encounter",
        "id": e.id,
        "status": "finished",
        "class": {"system": cat.ENCOUNTER_CLASS, "code": code, "display": display},
        "type": [coding(cat.SNOMED, *ENCOUNTER_TYPE[e.kind])],
        "subject": ref("Patient", s.id),
        "participant": [{"individual": {"display": f"Dr. {e.clinician.full}"}}],
        "period": {"start": ts(e.start, 9), "end": ts(e.end, 11 if e.days else 9, 0 if e.days else 40)},
        "serviceProvider": {"display": e.hospital},
    }
    if e.reason in cat.PROBLEMS:
        p = cat.PROBLEMS[e.reason]
        res["reasonCode"] = [coding(cat.SNOMED, p.snomed, p.display)]
    return res


def _interpretation(lab: cat.Lab, v: float) -> str:
    if lab.critical_high is not None and v >= lab.critical_high:
        return "HH"
    if lab.critical_low is not None and v <= lab.critical_low:
        return "LL"
    if lab.high is not None and v > lab.high:
        return "H"
    if lab.low is not None and v < lab.low:
        return "L"
    return "N"


def _lab(s: Story, e: Encounter, key: str, value: float, rid: str) -> Resource:
    lab = cat.LABS[key]
    value = round(value, lab.decimals) if lab.decimals else float(round(value))
    interp = _interpretation(lab, value)
    rng_: Resource = {}
    if lab.low is not None:
        rng_["low"] = {"value": lab.low, "unit": lab.unit, "system": cat.UCUM, "code": lab.unit}
    if lab.high is not None:
        rng_["high"] = {"value": lab.high, "unit": lab.unit, "system": cat.UCUM, "code": lab.unit}
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "category": [coding(cat.OBS_CATEGORY, "laboratory", "Laboratory")],
        "code": coding(cat.LOINC, lab.loinc, lab.display),
        "subject": ref("Patient", s.id),
        "encounter": ref("Encounter", e.id),
        "effectiveDateTime": ts(e.start, 10),
        "issued": f"{e.start.isoformat()}T15:00:00.000-05:00",
        "valueQuantity": {"value": value, "unit": lab.unit, "system": cat.UCUM, "code": lab.unit},
        "interpretation": [coding(cat.INTERPRETATION, interp, INTERPRETATION_DISPLAY[interp])],
        "referenceRange": [rng_],
    }


def _vital(s: Story, e: Encounter, key: str, value: float, rid: str) -> Resource:
    loinc, display, unit = cat.VITALS[key]
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "category": [coding(cat.OBS_CATEGORY, "vital-signs", "Vital signs")],
        "code": coding(cat.LOINC, loinc, display),
        "subject": ref("Patient", s.id),
        "encounter": ref("Encounter", e.id),
        "effectiveDateTime": ts(e.start, 9, 10),
        "valueQuantity": {"value": value, "unit": unit, "system": cat.UCUM, "code": unit},
    }


def _bp(s: Story, e: Encounter, sys_: int, dia: int, rid: str) -> Resource:
    def comp(key: str, v: int) -> Resource:
        loinc, display, unit = cat.VITALS[key]
        return {
            "code": coding(cat.LOINC, loinc, display),
            "valueQuantity": {"value": v, "unit": unit, "system": cat.UCUM, "code": unit},
        }

    res = _vital(s, e, "systolic", 0, rid)
    del res["valueQuantity"]
    res["code"] = coding(cat.LOINC, *cat.BP_PANEL)
    res["component"] = [comp("systolic", sys_), comp("diastolic", dia)]
    return res


def _observations(s: Story, rng: random.Random, out: BundleResult, b: _Bundle) -> None:
    visits = [e for e in s.encounters if e.kind == "ambulatory" and e.reason == "checkup"]
    n = len(visits)
    critical_visit = rng.randrange(max(0, n - 3), n) if s.critical_potassium else -1
    weight = rng.uniform(55, 110)
    height = rng.uniform(1.55, 1.9)
    on = {m.key: m for m in s.meds}
    for i, e in enumerate(visits):
        frac = i / max(1, n - 1)
        htn = s.active("htn") and any(p.key == "htn" and p.onset <= e.start for p in s.problems)
        b.add(
            _bp(
                s,
                e,
                rng.randint(138, 165) if htn else rng.randint(108, 132),
                rng.randint(84, 98) if htn else rng.randint(64, 82),
                new_id(rng),
            )
        )
        b.add(_vital(s, e, "heart_rate", rng.randint(58, 98), new_id(rng)))
        weight += rng.uniform(-1.5, 1.5)
        b.add(_vital(s, e, "weight", round(weight, 1), new_id(rng)))
        b.add(_vital(s, e, "bmi", round(weight / height**2, 1), new_id(rng)))
        if i in (0, n - 1):
            code, display = cat.SMOKING_VALUES[s.smoking]
            b.add(
                {
                    "resourceType": "Observation",
                    "id": new_id(rng),
                    "status": "final",
                    "category": [coding(cat.OBS_CATEGORY, "social-history", "Social history")],
                    "code": coding(cat.LOINC, *cat.SMOKING),
                    "subject": ref("Patient", s.id),
                    "encounter": ref("Encounter", e.id),
                    "effectiveDateTime": ts(e.start, 9, 5),
                    "valueCodeableConcept": coding(cat.SNOMED, code, display),
                }
            )
        # kidney function: a steady decline for CKD, normal otherwise
        egfr = (74 - 38 * frac + rng.uniform(-2, 2)) if s.egfr_declining else rng.uniform(78, 104)
        labs: dict[str, float] = {
            "egfr": egfr,
            "creatinine": 0.95 * 80 / egfr + rng.uniform(-0.05, 0.05),
            "sodium": rng.uniform(136, 144),
            "potassium": rng.uniform(4.9, 5.6) if s.egfr_declining and frac > 0.6 else rng.uniform(3.7, 4.9),
            "glucose": rng.uniform(80, 98),
            "hgb": rng.uniform(12.4, 15.2),
        }
        if i == critical_visit:
            labs["potassium"] = 6.5
        dm = next((p for p in s.problems if p.key == "dm2" and p.onset <= e.start), None)
        if dm:
            labs["a1c"] = 8.9 - 1.6 * frac + rng.uniform(-0.2, 0.2)
            labs["glucose"] = 110 + 30 * labs["a1c"] - 200 + rng.uniform(-10, 10)
        if any(p.key == "hld" and p.onset <= e.start for p in s.problems) and i % 2 == 0:
            labs["ldl"] = 165 - 70 * frac + rng.uniform(-8, 8)
        war = on.get("warfarin")
        if war and war.start <= e.start and (war.stop is None or war.stop > e.start):
            labs["inr"] = rng.choice([2.1, 2.4, 2.7, 3.0, 3.6, 1.8])
        if s.active("hypothyroid"):
            labs["tsh"] = rng.uniform(1.2, 5.8)
        for key, value in labs.items():
            obs = b.add(_lab(s, e, key, value, new_id(rng)))
            interp = obs["interpretation"][0]["coding"][0]["code"]
            if interp in ("HH", "LL"):
                lab = cat.LABS[key]
                out.critical.append(
                    PlantedResult(
                        observation_id=obs["id"],
                        loinc=lab.loinc,
                        name=key,
                        value=obs["valueQuantity"]["value"],
                        unit=lab.unit,
                        date=e.start.isoformat(),
                        interpretation=interp,
                    )
                )


def _condition(s: Story, p: Any, encounter: str | None) -> Resource:
    prob = p.problem
    status = "active" if p.abatement is None else "resolved"
    res: Resource = {
        "resourceType": "Condition",
        "id": p.id,
        "clinicalStatus": coding(cat.CONDITION_CLINICAL, status, status.capitalize()),
        "verificationStatus": coding(cat.CONDITION_VERIFICATION, "confirmed", "Confirmed"),
        "category": [
            coding(
                "http://terminology.hl7.org/CodeSystem/condition-category",
                *(
                    ("problem-list-item", "Problem List Item")
                    if prob.chronic
                    else ("encounter-diagnosis", "Encounter Diagnosis")
                ),
            )
        ],
        "code": coding(cat.SNOMED, prob.snomed, prob.display),
        "subject": ref("Patient", s.id),
        "onsetDateTime": ts(p.onset),
        "recordedDate": ts(p.onset, 10),
    }
    if encounter:
        res["encounter"] = ref("Encounter", encounter)
    if p.abatement:
        res["abatementDateTime"] = ts(p.abatement)
    return res


def _med_request(s: Story, m: Any, cond_ids: dict[str, str], clinician: str) -> Resource:
    d = m.drug
    res: Resource = {
        "resourceType": "MedicationRequest",
        "id": m.id,
        "status": "active" if m.stop is None else "stopped",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": cat.RXNORM, "code": d.rxnorm, "display": d.name}],
            "text": d.product,
        },
        "subject": ref("Patient", s.id),
        "authoredOn": ts(m.start, 10, 30),
        "requester": {"display": f"Dr. {clinician}"},
        "dosageInstruction": [
            {
                "sequence": 1,
                "text": d.sig,
                "timing": {"repeat": {"frequency": d.frequency, "period": 1, "periodUnit": d.period_unit}},
                "asNeededBoolean": "as needed" in d.sig,
                "doseAndRate": [
                    {
                        "type": coding("http://terminology.hl7.org/CodeSystem/dose-rate-type", "ordered", "Ordered"),
                        "doseQuantity": {
                            "value": d.dose_value,
                            "unit": d.dose_unit,
                            "system": cat.UCUM,
                            "code": d.dose_unit,
                        },
                    }
                ],
            }
        ],
        "dispenseRequest": {"validityPeriod": {"start": m.start.isoformat()}},
    }
    if m.stop:
        res["dispenseRequest"]["validityPeriod"]["end"] = m.stop.isoformat()
        res["statusReason"] = {"text": "course completed" if m.encounter else "changed therapy"}
    if m.reason and m.reason in cond_ids:
        res["reasonReference"] = [ref("Condition", cond_ids[m.reason])]
    if m.encounter:
        res["encounter"] = ref("Encounter", m.encounter)
    return res


def _allergy(s: Story, a: Any) -> Resource:
    al = a.allergen
    reaction = al.high_risk_reaction if a.high_risk and al.high_risk_reaction else al.reactions[0]
    return {
        "resourceType": "AllergyIntolerance",
        "id": a.id,
        "clinicalStatus": coding(cat.ALLERGY_CLINICAL, "active", "Active"),
        "verificationStatus": coding(
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed", "Confirmed"
        ),
        "type": "allergy",
        "category": [al.category],
        "criticality": "high" if a.high_risk else "low",
        "code": coding(al.system, al.code, al.display),
        "patient": ref("Patient", s.id),
        "recordedDate": ts(a.recorded),
        "reaction": [{"manifestation": [coding(cat.SNOMED, reaction[0], reaction[1])], "severity": reaction[2]}],
    }


def _procedures(s: Story, rng: random.Random, images: list[ImagePlan], b: _Bundle) -> None:
    def proc(key: str, e: Encounter) -> None:
        code, display = cat.PROCEDURES[key]
        b.add(
            {
                "resourceType": "Procedure",
                "id": new_id(rng),
                "status": "completed",
                "code": coding(cat.SNOMED, code, display),
                "subject": ref("Patient", s.id),
                "encounter": ref("Encounter", e.id),
                "performedPeriod": {"start": ts(e.start, 10), "end": ts(e.start, 10, 45)},
            }
        )

    visits = [e for e in s.encounters if e.kind == "ambulatory"]
    for p in s.problems:
        first = next((e for e in s.encounters if e.start >= p.onset), visits[-1])
        if p.key in ("afib", "cad"):
            proc("ecg", first)
        if p.key in ("afib", "chf"):
            proc("echo", first)
        if p.key == "cad":
            proc("cardiac_cath", first)
        if p.key == "colon_ca":
            proc("colonoscopy", first)
        if p.key == "oa_knee" and rng.random() < 0.5:
            proc("knee_replacement", visits[-1])
    for img in images:
        proc("cxr", img.encounter)


def _immunizations(s: Story, rng: random.Random, b: _Bundle) -> None:
    start = s.encounters[0].start

    def vax(key: str, d: date) -> None:
        code, display = cat.IMMUNIZATIONS[key]
        b.add(
            {
                "resourceType": "Immunization",
                "id": new_id(rng),
                "status": "completed",
                "vaccineCode": coding(cat.CVX, code, display),
                "patient": ref("Patient", s.id),
                "occurrenceDateTime": ts(d, 11),
                "primarySource": True,
                "location": {"display": s.hospitals[0]},
            }
        )

    for year in range(start.year, REFERENCE_DATE.year):
        if rng.random() < 0.8:
            vax("flu", date(year, 10, rng.randint(1, 28)))
    vax("tdap", start + timedelta(days=rng.randint(0, 700)))
    vax("covid", date(2021, rng.randint(2, 5), rng.randint(1, 28)))
    if age_on(s.birth_date, REFERENCE_DATE) >= 65:
        vax("pcv13", start + timedelta(days=rng.randint(30, 400)))
        vax("ppsv23", start + timedelta(days=rng.randint(500, 900)))
    if age_on(s.birth_date, REFERENCE_DATE) >= 50:
        vax("zoster", date(2019, rng.randint(1, 12), rng.randint(1, 28)))


def _imaging_study(s: Story, img: ImagePlan) -> Resource:
    return {
        "resourceType": "ImagingStudy",
        "id": img.imaging_study_id,
        "identifier": [
            {"system": "urn:dicom:uid", "value": f"urn:oid:{img.study_uid}"},
            {"type": coding(cat.V2_IDENTIFIER_TYPE, "ACSN", "Accession ID"), "value": img.accession},
        ],
        "status": "available",
        "subject": ref("Patient", s.id),
        "encounter": ref("Encounter", img.encounter.id),
        "started": ts(img.encounter.start, 10),
        "numberOfSeries": 1,
        "numberOfInstances": 1,
        "description": "XR CHEST PA",
        "series": [
            {
                "uid": img.series_uid,
                "number": 1,
                "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "DX"},
                "bodySite": {"system": cat.SNOMED, "code": "51185008", "display": "Thoracic structure"},
                "instance": [
                    {
                        "uid": img.sop_uid,
                        "number": 1,
                        "sopClass": {"system": "urn:ietf:rfc:3986", "code": "urn:oid:1.2.840.10008.5.1.4.1.1.1.1"},
                    }
                ],
            }
        ],
    }


def _document(s: Story, note: NoteDoc) -> Resource:
    loinc, display = cat.NOTE_TYPES[note.kind]
    e = note.encounter
    return {
        "resourceType": "DocumentReference",
        "id": note.document_id,
        "status": "current",
        "docStatus": "final",
        "type": coding(cat.LOINC, loinc, display),
        "category": [
            coding(
                "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
                "clinical-note",
                "Clinical Note",
            )
        ],
        "subject": ref("Patient", s.id),
        "date": f"{e.end.isoformat()}T16:00:00-05:00",
        "author": [{"display": f"Dr. {e.clinician.full}"}],
        "custodian": {"display": e.hospital},
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "data": base64.b64encode(note.text.encode("utf-8")).decode("ascii"),
                    "title": display,
                }
            }
        ],
        "context": {"encounter": [ref("Encounter", e.id)], "period": {"start": ts(e.start), "end": ts(e.end, 16)}},
    }


def build_bundle(s: Story, notes: list[NoteDoc], images: list[ImagePlan], rng: random.Random) -> BundleResult:
    """The transaction bundle of one patient and the facts it plants."""
    b = _Bundle()
    out = BundleResult(bundle={})
    b.add(_patient(s))
    for e in s.encounters:
        b.add(_encounter(s, e))
    cond_ids: dict[str, str] = {}
    for p in s.problems:
        enc = next((e.id for e in s.encounters if e.reason == p.key), None)
        cond = b.add(_condition(s, p, enc))
        cond_ids[p.key] = p.id
        out.problems.append(
            PlantedProblem(
                condition_id=cond["id"],
                snomed=p.problem.snomed,
                display=p.problem.display,
                status="active" if p.abatement is None else "resolved",
                onset=p.onset.isoformat(),
                abatement=p.abatement.isoformat() if p.abatement else None,
            )
        )
    for m in sorted(s.meds, key=lambda m: (m.start, m.key)):
        clinician = s.clinicians[2 if m.encounter else 0].full
        b.add(_med_request(s, m, cond_ids, clinician))
        out.medications.append(
            PlantedMedication(
                request_id=m.id,
                rxnorm=m.drug.rxnorm,
                name=m.drug.name,
                status="active" if m.stop is None else "stopped",
                sig=m.drug.sig,
                authored_on=m.start.isoformat(),
                high_alert=m.drug.high_alert,
            )
        )
    for a in s.allergies:
        res = b.add(_allergy(s, a))
        reaction = res["reaction"][0]
        out.allergies.append(
            PlantedAllergy(
                allergy_id=a.id,
                system=a.allergen.system,
                code=a.allergen.code,
                substance=a.allergen.phrase,
                criticality=res["criticality"],
                reaction=reaction["manifestation"][0]["coding"][0]["display"],
                severity=reaction["severity"],
            )
        )
    _observations(s, rng, out, b)
    _procedures(s, rng, images, b)
    _immunizations(s, rng, b)
    for img in images:
        b.add(_imaging_study(s, img))
    for note in notes:
        b.add(_document(s, note))
    out.bundle = {"resourceType": "Bundle", "id": new_id(rng), "type": "transaction", "entry": b.entries}
    return out
