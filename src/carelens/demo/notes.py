"""Clinical notes with exact gold PHI spans.

A note is built piece by piece (:class:`NoteBuilder`): plain text, PHI pieces and clinical
mentions; each PHI piece records its ``[start, end)`` while the text is assembled, so the gold
spans are exact by construction. Phrasing, section order, date and phone formats vary per note,
and nursing notes are ALL CAPS shorthand with misspellings, so no single template can be learnt.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from carelens.demo import catalog as cat
from carelens.demo.story import Encounter, Person, Story, age_on

MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
MISSPELL = {
    "PATIENT": ["PATEINT", "PT", "PATIEN"],
    "TOLERATED": ["TOLERTED", "TOLLERATED"],
    "MEDICATIONS": ["MEDICATOINS", "MEDS", "MEDICATINS"],
    "BREATHING": ["BREATHNG", "BRETHING"],
    "RESPIRATIONS": ["RESPIRATINS", "RESP"],
    "COMFORTABLE": ["COMFORTBLE", "COMFERTABLE"],
    "FAMILY": ["FAMLY", "FAMLIY"],
    "AMBULATING": ["AMBULATEING", "AMBULATNG"],
    "UNLABORED": ["UNLABOURED", "UNLABRED"],
    "DISCOMFORT": ["DISCOMFRT", "DISCOMFORT"],
}


def fmt_date(d: date, style: str) -> str:
    """A date the way clinicians write it: ``slash`` 03/14/2019, ``slash_short`` 3/14/2019,
    ``long`` March 14, 2019, ``iso`` 2019-03-14, ``md`` 3/14, ``dmy`` 14-Mar-2019, ``mon_d`` Mar 14."""
    if style == "slash":
        return f"{d.month:02d}/{d.day:02d}/{d.year}"
    if style == "slash_short":
        return f"{d.month}/{d.day}/{d.year}"
    if style == "long":
        return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"
    if style == "iso":
        return d.isoformat()
    if style == "md":
        return f"{d.month}/{d.day}"
    if style == "dmy":
        return f"{d.day:02d}-{MONTHS[d.month - 1][:3]}-{d.year}"
    if style == "mon_d":
        return f"{MONTHS[d.month - 1][:3]} {d.day}"
    raise ValueError(f"unknown date style {style}")


def fmt_phone(phone: str, style: int) -> str:
    """Re-format ``(415) 555-0134`` as one of a few common styles."""
    digits = "".join(c for c in phone if c.isdigit())
    a, b, c = digits[:3], digits[3:6], digits[6:]
    return [f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"{a}.{b}.{c}", f"{a} {b} {c}", f"1-{a}-{b}-{c}"][style % 5]


@dataclass
class Mention:
    kind: str
    concept: str
    snomed: str
    start: int
    end: int
    text: str


@dataclass
class NoteBuilder:
    """Assemble a note and its gold spans at the same time. ``caps`` upper-cases everything."""

    caps: bool = False
    misspell: dict[str, str] = field(default_factory=dict)
    parts: list[str] = field(default_factory=list)
    spans: list[dict] = field(default_factory=list)
    mentions: list[Mention] = field(default_factory=list)
    pos: int = 0

    def add(self, text: str) -> NoteBuilder:
        if self.caps:
            text = text.upper()
            for right, wrong in self.misspell.items():
                text = text.replace(right, wrong)
        self.parts.append(text)
        self.pos += len(text)
        return self

    def phi(self, text: str, kind: str) -> NoteBuilder:
        start = self.pos
        if self.caps:
            text = text.upper()
        self.parts.append(text)
        self.pos += len(text)
        self.spans.append({"start": start, "end": self.pos, "type": kind, "text": text})
        return self

    def hospital(self, name: str) -> NoteBuilder:
        """A hospital's name as PHI, a closing generic "Hospital" as plain text (real notes' gold
        leaves it out: it names no one)."""
        head, tail = name.removesuffix(" Hospital"), " Hospital" if name.endswith(" Hospital") else ""
        return self.phi(head, "HOSPITAL").add(tail)

    def mention(self, text: str, kind: str, concept: str, snomed: str) -> NoteBuilder:
        start = self.pos
        self.add(text)
        self.mentions.append(Mention(kind, concept, snomed, start, self.pos, self.parts[-1]))
        return self

    @property
    def text(self) -> str:
        return "".join(self.parts)


@dataclass
class Note:
    kind: str
    encounter: Encounter
    text: str
    spans: list[dict]
    mentions: list[Mention]
    all_caps: bool


class _Writer:
    """Shared helpers: how this note writes dates, names and phones."""

    def __init__(self, story: Story, enc: Encounter, rng: random.Random, caps: bool = False) -> None:
        self.s = story
        self.enc = enc
        self.rng = rng
        typos = {k: rng.choice(v) for k, v in MISSPELL.items() if rng.random() < 0.5} if caps else {}
        self.b = NoteBuilder(caps=caps, misspell=typos)
        self.date_style = rng.choice(["slash", "slash_short", "long", "iso", "dmy"])

    def dt(self, d: date, style: str | None = None) -> None:
        self.b.phi(fmt_date(d, style or self.date_style), "DATE")

    def patient_name(self, form: str | None = None) -> None:
        p = self.s.patient
        form = form or self.rng.choice(["full", "full", "title", "given", "middle"])
        if form == "title":
            self.b.add("Mr. " if self.s.sex == "male" else self.rng.choice(["Ms. ", "Mrs. "])).phi(p.family, "NAME")
        elif form == "given":
            self.b.phi(p.given, "NAME")
        elif form == "middle":
            self.b.phi(f"{p.given} {self.s.middle}. {p.family}", "NAME")
        elif form == "last_first":
            self.b.phi(f"{p.family}, {p.given}", "NAME")
        else:
            self.b.phi(p.full, "NAME")

    def doctor(self, who: Person | None = None, full: bool | None = None) -> None:
        who = who or self.enc.clinician
        self.b.add("Dr. ")
        if full if full is not None else self.rng.random() < 0.5:
            self.b.phi(who.full, "NAME")
        else:
            self.b.phi(who.family, "NAME")

    def phone(self, number: str | None = None) -> None:
        self.b.phi(fmt_phone(number or self.s.phone, self.rng.randint(0, 4)), "PHONE")

    def age_words(self) -> None:
        age = age_on(self.s.birth_date, self.enc.start)
        sex = "female" if self.s.sex == "female" else "male"
        style = self.rng.choice(["yo", "year-old", "y/o"])
        if age > 89:
            self.b.phi(str(age), "AGE")
        else:
            self.b.add(str(age))
        self.b.add({"yo": f" yo {sex[0].upper()}", "year-old": f"-year-old {sex}", "y/o": f" y/o {sex}"}[style])

    def address(self) -> None:
        self.b.phi(self.s.street, "ADDRESS").add(", ").phi(self.s.city, "CITY").add(", ")
        self.b.phi(self.s.state, "STATE").add(" ").phi(self.s.zip, "ZIP")

    def hospital(self, which: int | None = None) -> None:
        self.b.hospital(self.enc.hospital if which is None else self.s.hospitals[which])

    # clinical content -------------------------------------------------------------------
    def problems_on(self, d: date) -> list[cat.Problem]:
        return [p.problem for p in self.s.problems if p.onset <= d and (p.abatement is None or p.abatement > d)]

    def chronic_on(self, d: date) -> list[cat.Problem]:
        return [p for p in self.problems_on(d) if p.chronic]

    def meds_on(self, d: date) -> list[cat.Drug]:
        return [m.drug for m in self.s.meds if m.start <= d and (m.stop is None or m.stop > d)]

    def negations(self, short: bool = False) -> None:
        for i, term in enumerate(self.s.negated):
            snomed, abbrev = cat.NEGATABLE[term]
            if short:
                self.b.add(", " if i else "").add(self.rng.choice(["DENIES ", "NO ", "(-) "]))
                self.b.mention(abbrev, "negated", term, snomed)
                continue
            if term in cat.NEGATABLE_DIAGNOSES:
                lead = self.rng.choice(["There is no evidence of ", "No signs of ", "Imaging negative for ", "No "])
            else:
                lead = self.rng.choice(["The patient denies ", "Denies ", "No ", "Negative for ", "Pt denies any "])
            self.b.add(lead).mention(term, "negated", term, snomed).add(". ")

    def family(self, short: bool = False) -> None:
        for relation, disease in self.s.family_history:
            code = cat.FAMILY_DISEASES[disease]
            if short:
                self.b.add(f"FHX {relation.upper()} - ").mention(disease, "family", disease, code).add(". ")
                continue
            pattern = self.rng.choice(
                [
                    "{r} had {d}",
                    "{R} with history of {d}",
                    "{r} was diagnosed with {d}",
                    "Family history significant for {d} in {r}",
                ]
            )
            before, after = pattern.split("{d}")
            self.b.add(
                before.format(
                    r=f"His {relation}" if self.s.sex == "male" else f"Her {relation}", R=relation.capitalize()
                )
            )
            self.b.mention(disease, "family", disease, code)
            self.b.add(after.format(r=f"the patient's {relation}") + ". ")

    def uncertainty(self) -> None:
        for term in self.s.uncertain:
            snomed, phrase = cat.UNCERTAIN[term]
            self.b.add(self.rng.choice(["", "Impression: ", "Differential: "]))
            self.b.mention(
                phrase if self.rng.random() < 0.7 else phrase[0].lower() + phrase[1:], "uncertain", term, snomed
            )
            self.b.add(self.rng.choice([", pending further workup. ", "; will obtain imaging. ", " - not confirmed. "]))

    def med_list(self, d: date, short: bool = False) -> None:
        meds = self.meds_on(d)
        if not meds:
            self.b.add("NO CURRENT MEDS. " if short else "No current medications.\n")
            return
        if short:
            self.b.add("MEDS: " + ", ".join(m.name.upper() for m in meds) + ". ")
            return
        for m in meds:
            self.b.add(f"- {m.product}: {m.sig}\n")

    def allergy_line(self, short: bool = False) -> None:
        if not self.s.allergies:
            self.b.add("NKDA. " if short else self.rng.choice(["Allergies: NKDA.\n", "No known drug allergies.\n"]))
            return
        parts = []
        for a in self.s.allergies:
            al = a.allergen
            reaction = al.high_risk_reaction[1] if a.high_risk and al.high_risk_reaction else al.reactions[0][1]
            reaction = reaction.split(" (")[0].lower()
            parts.append(f"{al.phrase} ({reaction})")
        self.b.add(("ALLERGIES: " if short else "Allergies: ") + "; ".join(parts) + (". " if short else ".\n"))


def _header(w: _Writer, title: str) -> None:
    b, s = w.b, w.s
    b.add(f"{title}\n")
    b.add(w.rng.choice(["Patient: ", "Name: ", "PATIENT NAME: "]))
    w.patient_name(w.rng.choice(["full", "last_first", "middle"]))
    b.add(w.rng.choice(["    MRN: ", "  MR#: ", "\nMedical record number: "])).phi(s.mrn, "MRN")
    b.add(w.rng.choice(["\nDOB: ", "\nDate of birth: "]))
    w.dt(s.birth_date, w.rng.choice(["slash", "iso", "long"]))
    if w.rng.random() < 0.3:
        b.add("   SSN: ").phi(s.ssn, "SSN")
    b.add(w.rng.choice(["\nDate of service: ", "\nVisit date: ", "\nDOS: "]))
    w.dt(w.enc.start)
    b.add("\nLocation: ")
    w.hospital()
    b.add("\n\n")


def hp_note(story: Story, enc: Encounter, rng: random.Random) -> Note:
    """History and physical (LOINC 34117-2)."""
    w = _Writer(story, enc, rng)
    b = w.b
    _header(w, rng.choice(["HISTORY AND PHYSICAL", "Admission History & Physical", "H&P"]))
    b.add(rng.choice(["CHIEF COMPLAINT: ", "Chief complaint: ", "CC: "]))
    reason = cat.PROBLEMS[enc.reason].phrase if enc.reason in cat.PROBLEMS else "routine follow-up"
    b.add(f"{reason}.\n\n")
    b.add(rng.choice(["HISTORY OF PRESENT ILLNESS:\n", "HPI: ", "History of present illness: "]))
    w.patient_name()
    b.add(" is a ")
    w.age_words()
    chronic = w.chronic_on(enc.start)
    if chronic:
        b.add(" with a history of " + ", ".join(p.phrase for p in chronic))
    b.add(rng.choice([" who presents with ", " presenting with ", " who comes in for "]) + reason + ". ")
    if enc.reason in cat.PROBLEMS:
        b.add(rng.choice(["Symptoms began on ", "Onset was ", "First noticed on "]))
        w.dt(enc.start - timedelta(days=rng.randint(1, 4)), "md")
        b.add(". ")
    w.negations()
    b.add("Patient lives at ")
    w.address()
    b.add(rng.choice([" with ", " together with "]) + f"{story.relatives[0].relation} ")
    b.phi(story.relatives[0].full, "NAME")
    b.add(rng.choice([", who can be reached at ", "; contact number "]))
    w.phone()
    b.add(".\n\n")
    b.add(rng.choice(["PAST MEDICAL HISTORY: ", "PMH: ", "Past medical history: "]))
    b.add((", ".join(p.phrase for p in chronic) or "none") + ".\n")
    b.add(rng.choice(["MEDICATIONS:\n", "Home medications:\n", "Current Outpatient Medications:\n"]))
    w.med_list(enc.start)
    w.allergy_line()
    b.add(rng.choice(["FAMILY HISTORY: ", "Family hx: ", "FH: "]))
    w.family()
    b.add("\n" + rng.choice(["SOCIAL HISTORY: ", "Social: "]))
    b.add(
        {"never": "Never smoker. ", "former": "Former smoker, quit years ago. ", "current": "Current smoker, 1 ppd. "}[
            story.smoking
        ]
    )
    b.add("Insurance: ").phi(story.insurer, "ORGANIZATION").add(", member ID ").phi(story.health_plan, "HEALTHPLAN")
    b.add(".\n\nASSESSMENT AND PLAN:\n")
    for p in chronic:
        b.add(
            f"# {p.phrase[0].upper()}{p.phrase[1:]}: "
            + rng.choice(["continue current management.", "stable, continue.", "follow up labs.", "monitor."])
            + "\n"
        )
    w.uncertainty()
    b.add("\nPrimary care: ")
    w.doctor(story.clinicians[0], full=True)
    b.add(", phone ")
    w.phone(story.work_phone)
    b.add(", fax ").phi(fmt_phone(story.work_phone[:-1] + "9", rng.randint(0, 4)), "FAX")
    b.add(".\nAttending: ")
    w.doctor()
    b.add("\n")
    return Note("hp", enc, b.text, b.spans, b.mentions, False)


def progress_note(story: Story, enc: Encounter, rng: random.Random) -> Note:
    """Outpatient progress note (LOINC 11506-3), SOAP or narrative."""
    w = _Writer(story, enc, rng)
    b = w.b
    chronic = w.chronic_on(enc.start)
    if rng.random() < 0.5:
        _header(w, rng.choice(["PROGRESS NOTE", "Clinic Follow-up Note", "Office Visit"]))
        b.add("S: ")
    else:
        b.add(rng.choice(["Follow-up visit ", "Seen today, "]))
        w.dt(enc.start)
        b.add(", at ")
        w.hospital()
        b.add(". ")
    w.patient_name()
    b.add(rng.choice([" returns for follow-up of ", " is seen for ", " comes in to review "]))
    b.add((", ".join(p.phrase for p in chronic) or "general health") + ". ")
    for p in story.problems:
        if p.abatement is not None and p.abatement < enc.start:
            b.add(rng.choice(["History of ", "Remote history of ", "Hx of "]) + p.problem.phrase + " (")
            w.dt(p.onset, rng.choice(["slash", "long", "iso", "dmy"]))
            b.add(rng.choice([", resolved", ", treated at ", ", since resolved"]))
            if b.parts[-1] == ", treated at ":
                b.hospital(story.hospitals[1])
            b.add("). ")
    b.add(rng.choice(["Accompanied by ", "Here with ", "Brought in by "]) + f"{story.relatives[1].relation} ")
    b.phi(story.relatives[1].full, "NAME")
    b.add(". ")
    w.negations()
    if age_on(story.birth_date, enc.start) > 89:
        b.add("At ").phi(str(age_on(story.birth_date, enc.start)), "AGE").add(
            " she" if story.sex == "female" else " he"
        )
        b.add(" remains independent in ADLs. ")
    b.add("\nO: ")
    b.add(
        f"BP {rng.randint(118, 162)}/{rng.randint(68, 96)}, HR {rng.randint(58, 96)}, SpO2 {rng.randint(93, 99)}% RA. "
    )
    if story.egfr_declining:
        b.add("Labs reviewed: eGFR continues to decline compared with ")
        w.dt(story.encounters[0].start, rng.choice(["slash", "long", "iso"]))
        b.add(". ")
    if any(m.drug.high_alert == "anticoagulant" for m in story.meds if m.stop is None):
        b.add("Anticoagulation reviewed; no bleeding. ")
    b.add("\nA/P: ")
    for prob in chronic:
        b.add(f"{prob.phrase[0].upper()}{prob.phrase[1:]} - " + rng.choice(["stable. ", "controlled. ", "unchanged. "]))
    b.add("Medications:\n")
    w.med_list(enc.start)
    w.allergy_line()
    w.uncertainty()
    if rng.random() < 0.5:
        b.add("Portal message sent via ").phi("https://mychart.example-health.org/patient/" + story.mrn, "URL")
        b.add(" and copy emailed to ").phi(story.email, "EMAIL").add(". ")
    else:
        b.add("Patient prefers contact by email (").phi(story.email, "EMAIL").add("). ")
    b.add(rng.choice(["RTC 6 months", "Return in 3-6 months", "Follow up in clinic in 6 mo"]) + ". Next labs ")
    w.dt(enc.start + timedelta(days=rng.randint(80, 180)), rng.choice(["md", "mon_d", "slash"]))
    b.add(".\n")
    w.doctor()
    b.add(rng.choice([", MD\n", "\nElectronically signed\n"]))
    return Note("progress", enc, b.text, b.spans, b.mentions, False)


def discharge_note(story: Story, enc: Encounter, rng: random.Random) -> Note:
    """Discharge summary (LOINC 18842-5) for an inpatient stay."""
    w = _Writer(story, enc, rng)
    b = w.b
    _header(w, rng.choice(["DISCHARGE SUMMARY", "Discharge Summary", "Hospital Course and Discharge"]))
    problem = cat.PROBLEMS[enc.reason]
    b.add("Admission date: ")
    w.dt(enc.start)
    b.add("   Discharge date: ")
    w.dt(enc.end)
    b.add("\nAccount number: ").phi(story.account, "ACCOUNT")
    b.add(f"\n\nDIAGNOSIS: {problem.phrase}.\n\nHOSPITAL COURSE: ")
    w.patient_name()
    b.add(" was admitted to ")
    w.hospital()
    b.add(f" with {problem.phrase}")
    treat = cat.ACUTE_TREATMENT.get(enc.reason)
    if treat:
        b.add(f" and treated with {cat.DRUGS[treat].name}")
    b.add(". ")
    w.negations()
    b.add(f"Symptoms improved by hospital day {rng.randint(2, 4)}. ")
    if rng.random() < 0.5:
        b.add("A telehealth follow-up was set up; session logged from IP ")
        b.phi(f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}", "IP").add(". ")
    if rng.random() < 0.4:
        b.add("Prior to admission patient had a minor MVC as driver of vehicle plate ")
        b.phi(
            f"{rng.randint(1, 9)}{rng.choice('ABCDEFGHJK')}{rng.choice('LMNPRSTUVW')}"
            f"{rng.choice('XYZ')}{rng.randint(100, 999)}",
            "VEHICLE",
        ).add("; no injuries. ")
    if rng.random() < 0.3:
        b.add("Enrolled in registry, participant ID ").phi(f"CL-{rng.randint(1000, 9999)}-{rng.randint(10, 99)}", "ID")
        b.add(". ")
    b.add("\n\nDISCHARGE MEDICATIONS:\n")
    w.med_list(enc.start)
    w.allergy_line()
    b.add("\nFOLLOW-UP: with ")
    w.doctor(story.clinicians[0])
    b.add(" on ")
    w.dt(enc.end.replace(day=min(enc.end.day, 28)), rng.choice(["mon_d", "long", "md"]))
    b.add(". Call ")
    w.phone(story.work_phone)
    b.add(" with questions. Discharged home with ")
    b.add(f"{story.relatives[0].relation} ").phi(story.relatives[0].given, "NAME").add(".\n")
    b.add("Dictated by ")
    w.doctor(full=True)
    b.add(", license ").phi(f"{rng.choice(['MD', 'A', 'G'])}{rng.randint(10000, 99999)}", "LICENSE").add("\n")
    return Note("discharge", enc, b.text, b.spans, b.mentions, False)


def nursing_note(story: Story, enc: Encounter, rng: random.Random) -> Note:
    """Nursing note: ALL CAPS shorthand, run-on, misspelled."""
    w = _Writer(story, enc, rng, caps=True)
    b = w.b
    b.add(rng.choice(["RN NOTE ", "NSG NOTE ", "NURSING ", "TRIAGE RN "]))
    w.dt(enc.start, rng.choice(["md", "slash_short"]))
    b.add(f" {rng.randint(0, 23):02d}{rng.choice(['00', '15', '30', '45'])}: ")
    w.patient_name(rng.choice(["title", "last_first", "full"]))
    b.add(" MRN ").phi(story.mrn, "MRN").add(" ")
    age = age_on(story.birth_date, enc.start)
    if age > 89:
        b.phi(str(age), "AGE")
    else:
        b.add(str(age))
    b.add(f"{story.sex[0]} ".upper())
    denied = {cat.NEGATABLE[t][1] for t in story.negated}
    complaint = rng.choice(
        [c for c in ["SOB", "DIZZINESS", "WEAKNESS", "COUGH", "BACK PAIN", "FALL AT HOME"] if c not in denied]
    )
    b.add(f"PT C/O {complaint}")
    if story.negated:
        b.add(", ")
        w.negations(short=True)
    b.add(". " + rng.choice(["HX ", "PMH ", "H/O "]) + ", ".join(p.short for p in w.chronic_on(enc.start)) + ". ")
    parts = [lambda: w.allergy_line(short=True), lambda: w.med_list(enc.start, short=True)]
    if story.family_history:
        parts.append(lambda: w.family(short=True))
    rng.shuffle(parts)
    for part in parts:
        part()
    b.add(rng.choice(["VSS. ", "V/S STABLE. ", "AFEBRILE, VSS. ", "VS WNL. "]))
    for phrase in rng.sample(NURSING_PHRASES, 2):
        b.add(phrase)
    b.add(f"{story.relatives[0].relation} ".upper())
    b.phi(story.relatives[0].given, "NAME")
    b.add(" AT BEDSIDE, CALL ")
    w.phone()
    b.add(" IF CHANGES. ")
    if rng.random() < 0.5:
        b.add("PACEMAKER SN ").phi(f"PJN{rng.randint(100000, 999999)}S", "DEVICE").add(" CHECKED. ")
    b.add("F/U W/ ")
    w.doctor(story.clinicians[0], full=False)
    b.add(" @ ")
    b.phi(_shorthand_hospital(enc.hospital), "HOSPITAL")
    b.add(" ")
    w.dt(enc.start.replace(day=min(enc.start.day, 28)), "md")
    b.add(
        ". "
        + rng.choice(["PATIENT COMFORTABLE, FAMILY UPDATED.", "WILL CONT TO MONITOR.", "REPORT GIVEN TO ONCOMING RN."])
    )
    _icu_shorthand(w, random.Random(f"icu:{story.mrn}:{enc.start}"))  # its own draws: the rest is unchanged
    b.add("\n")
    return Note("nursing", enc, b.text, b.spans, b.mentions, True)


UNITS = ["MICU", "SICU", "CCU", "CSRU", "TSICU", "NICU", "PACU", "ER", "EW", "OR", "CATH LAB", "STEPDOWN"]
NICKNAMES = {"William": "Bill", "Robert": "Bob", "Margaret": "Peggy", "Elizabeth": "Liz", "Richard": "Dick",
             "James": "Jim", "Patricia": "Pat", "Katherine": "Kate", "Joseph": "Joe", "Thomas": "Tom"}  # fmt: skip


def _icu_shorthand(w: _Writer, r: random.Random) -> None:
    """ICU nursing shorthand as real notes have it: "DR. X" and a bare surname, a nickname or
    initials, a ward named after a person, a unit phone extension, "7/22", "THE 3RD", "2 DAYS AGO"."""
    b, story = w.b, w.s
    doc, other = story.clinicians[0], story.clinicians[-1]
    b.add(f" ?{r.choice(['ASPIRATION', 'PNA', 'UTI'])} {r.randint(2, 5)} DAYS AGO; ")
    b.add(r.choice(["SEEN BY ", "D/W ", "AWARE: "]))
    b.add("DR. ").phi(doc.family, "NAME").add(r.choice([", ", " AND ", "/"]))
    b.phi(other.family, "NAME").add(r.choice([" AWARE. ", " TO F/U. ", " NOTIFIED. "]))
    rel = story.relatives[0]
    short = NICKNAMES.get(rel.given, rel.given[:1] + ".")
    b.add(f"{rel.relation} ".upper()).phi(short, "NAME").add(" CALLED, UPDATED BY RN ")
    b.phi(f"{other.given[:1]}.{other.family[:1]}.", "NAME").add(". ")
    b.add(f"TX FROM {r.choice(UNITS)}/").phi(story.relatives[-1].family, "HOSPITAL").add(" ")
    b.add(r.choice(["ON ", "ARRIVED "]))
    w.dt(w.enc.start, "md")
    b.add(". PAGE ")
    b.phi(f"X{r.randint(2, 7)}-{r.randint(1000, 9999)}", "PHONE")
    b.add(" WITH QUESTIONS. CT DONE ON THE ")
    day = w.enc.start.day
    b.phi(f"{day}{'TH' if 11 <= day % 100 <= 13 else {1: 'ST', 2: 'ND', 3: 'RD'}.get(day % 10, 'TH')}", "DATE")
    b.add(".")


NURSING_PHRASES = [
    "PATIENT TOLERATED PO. ",
    "RESPIRATIONS EVEN, BREATHING UNLABORED. ",
    "AMBULATING W/ WALKER. ",
    "DENIES DISCOMFORT AT IV SITE. ",
    "MEDICATIONS GIVEN AS ORDERED. ",
    "SKIN WARM AND DRY. ",
    "CALL LIGHT IN REACH. ",
]


def _shorthand_hospital(name: str) -> str:
    return (
        name.replace("Hospital", "HOSP")
        .replace("General", "GEN")
        .replace("Medical Center", "MC")
        .replace("Memorial", "MEM")
        .replace("Saint", "ST")
        .replace("Community", "COMM")
    )


def write_notes(story: Story, rng: random.Random) -> list[Note]:
    """The notes of one patient: an H&P, a discharge summary per admission, progress notes and
    a nursing note."""
    notes: list[Note] = []
    encs = story.encounters
    inpatient = [e for e in encs if e.kind == "inpatient"]
    ambulatory = [e for e in encs if e.kind == "ambulatory" and e.reason == "checkup"]
    first = inpatient[0] if inpatient else ambulatory[len(ambulatory) // 3]
    notes.append(hp_note(story, first, rng))
    notes.extend(discharge_note(story, e, rng) for e in inpatient)
    for e in [ambulatory[len(ambulatory) // 2], ambulatory[-1]]:
        notes.append(progress_note(story, e, rng))
    acute = [e for e in encs if e.kind in ("emergency", "inpatient")] or ambulatory[-1:]
    notes.append(nursing_note(story, acute[-1], rng))
    return notes
