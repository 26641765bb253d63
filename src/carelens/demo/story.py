"""One synthetic patient's story: who they are and what happened to them over years of care.

The story is plain data drawn from a seeded ``random.Random`` and a seeded Faker; the FHIR
bundle, the notes, the images and the VCF are all rendered from it, so they agree.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta

from faker import Faker

from carelens.demo import catalog as cat

REFERENCE_DATE = date(2025, 6, 30)
MAIL_DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "example.net"]

# the first patients of every cohort have fixed clinical archetypes, so even a 3-patient demo
# shows an anticoagulated CKD patient, a clopidogrel poor metaboliser and a chemotherapy DPYD carrier
ARCHETYPES: list[dict] = [
    {
        "active": ["htn", "afib", "ckd3", "hld"],
        "resolved": ["pneumonia"],
        "anticoagulant": "warfarin",
        "allergies": ["penicillin"],
        "critical_potassium": True,
        "egfr_declining": True,
        "pgx": {"CYP2C9": ("*1", "*3"), "VKORC1": ("rs9923231 reference (C)", "rs9923231 variant (T)")},
        "variants": ["BRCA1"],
        "age": (68, 80),
        "smoking": "former",
        "opacity": True,
    },
    {
        "active": ["cad", "dm2", "htn", "hld"],
        "resolved": ["uti"],
        "insulin": True,
        "swap_statin": True,
        "allergies": [],
        "pgx": {"CYP2C19": ("*2", "*2"), "SLCO1B1": ("*5", "*15")},
        "variants": ["ISG15"],
        "age": (90, 94),
        "smoking": "never",
        "opacity": False,
    },
    {
        "active": ["colon_ca", "lbp", "mdd", "gerd"],
        "resolved": ["cellulitis", "bronchitis"],
        "opioid": True,
        "allergies": ["sulfa", "latex"],
        "pgx": {"DPYD": ("Reference", "c.1905+1G>A (*2A)"), "CYP2C19": ("*1", "*17")},
        "variants": ["MUTYH"],
        "age": (50, 64),
        "smoking": "current",
        "opacity": True,
        "depression_drug": "citalopram",
    },
]


def new_id(rng: random.Random) -> str:
    """A UUID4 drawn from ``rng`` (deterministic per seed)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def fmt_phone(rng: random.Random) -> str:
    area = rng.choice([201, 212, 303, 312, 404, 415, 503, 512, 617, 702, 720, 808, 919, 971])
    return f"({area}) {rng.randint(201, 989)}-{rng.randint(0, 9999):04d}"


@dataclass
class Person:
    given: str
    family: str
    relation: str = ""

    @property
    def full(self) -> str:
        return f"{self.given} {self.family}"


@dataclass
class Encounter:
    id: str
    start: date
    kind: str  # ambulatory | emergency | inpatient
    reason: str  # problem key
    hospital: str
    clinician: Person
    days: int = 0  # length of stay for inpatient

    @property
    def end(self) -> date:
        return self.start + timedelta(days=self.days)


@dataclass
class ProblemFact:
    id: str
    key: str
    onset: date
    abatement: date | None = None

    @property
    def problem(self) -> cat.Problem:
        return cat.PROBLEMS[self.key]


@dataclass
class MedFact:
    id: str
    key: str
    start: date
    stop: date | None
    reason: str | None
    encounter: str | None = None

    @property
    def drug(self) -> cat.Drug:
        return cat.DRUGS[self.key]


@dataclass
class AllergyFact:
    id: str
    key: str
    recorded: date
    high_risk: bool

    @property
    def allergen(self) -> cat.Allergen:
        return cat.ALLERGENS[self.key]


@dataclass
class Story:
    index: int
    id: str
    mrn: str
    sex: str
    patient: Person
    middle: str
    birth_date: date
    street: str
    city: str
    state: str
    zip: str
    phone: str
    work_phone: str
    email: str
    ssn: str
    account: str
    health_plan: str
    insurer: str
    relatives: list[Person]
    clinicians: list[Person]
    hospitals: list[str]
    encounters: list[Encounter]
    problems: list[ProblemFact]
    meds: list[MedFact]
    allergies: list[AllergyFact]
    smoking: str
    critical_potassium: bool
    egfr_declining: bool
    pgx: dict[str, tuple[str, str]]
    variants: list[str]
    opacity: bool
    negated: list[str] = field(default_factory=list)
    family_history: list[tuple[str, str]] = field(default_factory=list)  # (relation, disease)
    uncertain: list[str] = field(default_factory=list)

    @property
    def age(self) -> int:
        return age_on(self.birth_date, REFERENCE_DATE)

    def active(self, key: str) -> bool:
        return any(p.key == key and p.abatement is None for p in self.problems)

    def on_drug(self, key: str) -> bool:
        return any(m.key == key and m.stop is None for m in self.meds)


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _pick_active(rng: random.Random) -> list[str]:
    pool = [
        "htn",
        "dm2",
        "hld",
        "ckd3",
        "afib",
        "cad",
        "chf",
        "asthma",
        "copd",
        "hypothyroid",
        "mdd",
        "oa_knee",
        "lbp",
        "gerd",
        "dvt",
    ]
    chosen = rng.sample(pool, rng.randint(2, 4))
    if "copd" in chosen and "asthma" in chosen:
        chosen.remove("asthma")
    return chosen


def _random_pgx(rng: random.Random) -> dict[str, tuple[str, str]]:
    def pair(options: list[tuple[str, float]]) -> tuple[str, str]:
        names, weights = zip(*options, strict=True)
        a, b = rng.choices(names, weights, k=2)
        return (a, b)

    return {
        "CYP2C19": pair([("*1", 0.6), ("*2", 0.15), ("*17", 0.2), ("*3", 0.05)]),
        "CYP2C9": pair([("*1", 0.8), ("*2", 0.12), ("*3", 0.08)]),
        "VKORC1": pair([("rs9923231 reference (C)", 0.6), ("rs9923231 variant (T)", 0.4)]),
        "SLCO1B1": pair([("*1", 0.75), ("*5", 0.1), ("*15", 0.15)]),
        "DPYD": pair([("Reference", 0.95), ("c.2846A>T", 0.03), ("c.1679T>G (*13)", 0.02)]),
    }


def make_story(index: int, seed: int, fake: Faker) -> Story:
    """Draw patient ``index`` of the cohort with ``seed``."""
    rng = random.Random(f"carelens-demo:{seed}:{index}")
    fake.seed_instance(rng.getrandbits(32))
    arche = ARCHETYPES[index] if index < len(ARCHETYPES) else {}

    sex = rng.choice(["female", "male"])
    given = fake.first_name_female() if sex == "female" else fake.first_name_male()
    family = fake.last_name()
    lo, hi = arche.get("age", (34, 93))
    age = rng.randint(lo, hi)
    birth = REFERENCE_DATE - timedelta(days=365 * age + rng.randint(15, 340))
    relatives = []
    for relation in rng.sample(cat.RELATIONS, 2):
        if relation in ("wife", "husband"):
            relation = "wife" if sex == "male" else "husband"
        female = relation in ("wife", "daughter", "sister", "niece")
        first = fake.first_name_female() if female else fake.first_name_male()
        last = family if rng.random() < 0.7 else fake.last_name()
        relatives.append(Person(first, last, relation))
    clinicians = [Person(fake.first_name(), fake.last_name(), "clinician") for _ in range(3)]
    hospitals = rng.sample(cat.HOSPITALS, 2)

    story = Story(
        index=index,
        id=new_id(rng),
        mrn=str(rng.randint(10_000_000, 99_999_999)),
        sex=sex,
        patient=Person(given, family),
        middle=fake.first_name()[0],
        birth_date=birth,
        street=fake.street_address(),
        city=fake.city(),
        state=fake.state_abbr(include_territories=False),
        zip=fake.zipcode(),
        phone=fmt_phone(rng),
        work_phone=fmt_phone(rng),
        email=f"{given.lower()}.{family.lower()}{rng.randint(1, 99)}@{rng.choice(MAIL_DOMAINS)}",
        ssn=f"{rng.randint(101, 665):03d}-{rng.randint(10, 99):02d}-{rng.randint(1000, 9999):04d}",
        account=f"ACCT{rng.randint(1_000_000, 9_999_999)}",
        health_plan=f"{rng.choice('ABCHKMWZ')}{rng.choice('ABCHKMWZ')}{rng.randint(100_000_000, 999_999_999)}",
        insurer=rng.choice(cat.ORGANIZATIONS),
        relatives=relatives,
        clinicians=clinicians,
        hospitals=hospitals,
        encounters=[],
        problems=[],
        meds=[],
        allergies=[],
        smoking=arche.get("smoking") or rng.choice(["never", "never", "former", "current"]),
        critical_potassium=arche.get("critical_potassium", rng.random() < 0.2),
        egfr_declining=False,
        pgx=_random_pgx(rng) | arche.get("pgx", {}),
        variants=arche.get("variants") or (["BRCA1"] if rng.random() < 0.1 else []),
        opacity=arche.get("opacity", rng.random() < 0.4),
    )

    # years of care: first visit 6-10 years before the reference date
    care_start = REFERENCE_DATE - timedelta(days=rng.randint(6 * 365, 10 * 365))
    active = list(arche.get("active") or _pick_active(rng))
    resolved = list(arche.get("resolved") or rng.sample(sorted(cat.ACUTE_TREATMENT), rng.randint(1, 2)))
    span = (REFERENCE_DATE - care_start).days

    for key in active:
        onset = care_start + timedelta(days=rng.randint(0, span // 2))
        story.problems.append(ProblemFact(new_id(rng), key, onset))
    story.egfr_declining = story.active("ckd3")

    # ambulatory visits every ~6-9 months, plus an ED visit or admission for each acute problem
    day = care_start
    while day < REFERENCE_DATE - timedelta(days=20):
        clin = clinicians[0] if rng.random() < 0.75 else clinicians[1]
        story.encounters.append(Encounter(new_id(rng), day, "ambulatory", "checkup", hospitals[0], clin))
        day += timedelta(days=rng.randint(170, 280))
    for key in resolved:
        onset = care_start + timedelta(days=rng.randint(30, span - 60))
        kind = "inpatient" if key in ("pneumonia", "cellulitis") else rng.choice(["emergency", "ambulatory"])
        days = rng.randint(2, 6) if kind == "inpatient" else 0
        enc = Encounter(new_id(rng), onset, kind, key, hospitals[1], clinicians[2], days)
        story.encounters.append(enc)
        abatement = onset + timedelta(days=rng.randint(10, 30))
        story.problems.append(ProblemFact(new_id(rng), key, onset, abatement))
        drug = cat.ACUTE_TREATMENT[key]
        story.meds.append(MedFact(new_id(rng), drug, onset, onset + timedelta(days=7), key, enc.id))
    story.encounters.sort(key=lambda e: (e.start, e.id))

    # chronic meds for active problems, started at onset
    for prob in [p for p in story.problems if p.abatement is None]:
        for drug in cat.TREATMENT.get(prob.key, [])[: 1 if rng.random() < 0.6 else 2]:
            if prob.key == "mdd" and arche.get("depression_drug"):
                drug = arche["depression_drug"]
            if not story.on_drug(drug):
                story.meds.append(MedFact(new_id(rng), drug, prob.onset, None, prob.key))
    if story.active("afib") or story.active("dvt"):
        anticoag = arche.get("anticoagulant") or rng.choice(["warfarin", "apixaban"])
        reason = "afib" if story.active("afib") else "dvt"
        onset = next(p.onset for p in story.problems if p.key == reason)
        story.meds = [m for m in story.meds if m.key not in ("warfarin", "apixaban")]
        if anticoag == "apixaban" and rng.random() < 0.5:  # switched from warfarin
            switch = onset + timedelta(days=rng.randint(200, 600))
            story.meds.append(MedFact(new_id(rng), "warfarin", onset, switch, reason))
            story.meds.append(MedFact(new_id(rng), "apixaban", switch, None, reason))
        else:
            story.meds.append(MedFact(new_id(rng), anticoag, onset, None, reason))
    if story.active("dm2") and (arche.get("insulin") or rng.random() < 0.4):
        onset = next(p.onset for p in story.problems if p.key == "dm2")
        story.meds.append(MedFact(new_id(rng), "insulin_glargine", onset + timedelta(days=400), None, "dm2"))
    if (story.active("lbp") or story.active("oa_knee")) and (arche.get("opioid") or rng.random() < 0.5):
        reason = "lbp" if story.active("lbp") else "oa_knee"
        onset = next(p.onset for p in story.problems if p.key == reason)
        story.meds.append(MedFact(new_id(rng), "oxycodone", onset + timedelta(days=90), None, reason))
    if arche.get("swap_statin") or (story.active("hld") and rng.random() < 0.3):
        # simvastatin stopped for myalgia, atorvastatin continued
        for m in story.meds:
            if m.key == "atorvastatin":
                story.meds.append(MedFact(new_id(rng), "simvastatin", m.start, m.start + timedelta(days=300), m.reason))
                m.start = m.start + timedelta(days=300)
                break
        else:
            if story.active("hld"):
                onset = next(p.onset for p in story.problems if p.key == "hld")
                story.meds.append(MedFact(new_id(rng), "simvastatin", onset, onset + timedelta(days=300), "hld"))
                story.meds.append(MedFact(new_id(rng), "atorvastatin", onset + timedelta(days=300), None, "hld"))

    allergy_keys = arche.get("allergies")
    if allergy_keys is None:
        allergy_keys = rng.sample(sorted(cat.ALLERGENS), rng.choice([0, 0, 1, 1, 2]))
    for key in allergy_keys:
        allergen = cat.ALLERGENS[key]
        high = allergen.high_risk_reaction is not None and (key == "penicillin" or rng.random() < 0.5)
        story.allergies.append(AllergyFact(new_id(rng), key, care_start, high))
    # an allergy forbids its drugs
    avoid = {d for a in story.allergies for d in a.allergen.avoid}
    story.meds = [m for m in story.meds if m.key not in avoid]
    if "amoxicillin" in avoid:
        for p in story.problems:
            if p.key == "sinusitis":
                story.meds.append(
                    MedFact(new_id(rng), "doxycycline", p.onset, p.onset + timedelta(days=7), "sinusitis")
                )

    def clashes(term: str, code: str) -> bool:
        """True when a mention would name one of the patient's own problems."""
        probs = [cat.PROBLEMS[p.key] for p in story.problems]
        return any(code == p.snomed or term.lower() in (p.phrase + " " + p.display).lower() for p in probs)

    story.negated = [k for k in rng.sample(sorted(cat.NEGATABLE), 4) if not clashes(k, cat.NEGATABLE[k][0])][:3]
    fam_relations = ["mother", "father", "brother", "sister", "maternal grandmother", "paternal uncle"]
    story.family_history = [
        (rng.choice(fam_relations), d)
        for d in rng.sample(sorted(cat.FAMILY_DISEASES), 2)
        if not clashes(d, cat.FAMILY_DISEASES[d])
    ]
    story.uncertain = [k for k in rng.sample(sorted(cat.UNCERTAIN), 2) if not clashes(k, cat.UNCERTAIN[k][0])][:1]
    return story
