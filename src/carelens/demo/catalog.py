"""The clinical vocabulary the demo cohort draws from: coded problems, medications, allergies,
labs, vitals, procedures and immunizations, with the code systems a FHIR server expects."""

from __future__ import annotations

from dataclasses import dataclass, field

SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
CVX = "http://hl7.org/fhir/sid/cvx"
UCUM = "http://unitsofmeasure.org"
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
MRN_SYSTEM = "http://hospital.carelens.example/mrn"
V2_IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ENCOUNTER_CLASS = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


@dataclass(frozen=True)
class Problem:
    """A coded problem, how notes say it (plain and nursing shorthand), and what it implies."""

    key: str
    snomed: str
    display: str
    phrase: str
    short: str
    chronic: bool = True


@dataclass(frozen=True)
class Drug:
    """A medication at ingredient level (RxNorm IN) with a typical product and dosing."""

    key: str
    rxnorm: str
    name: str
    product: str
    dose_value: float
    dose_unit: str
    sig: str
    frequency: int
    period_unit: str = "d"
    high_alert: str | None = None  # anticoagulant | insulin | opioid


PROBLEMS: dict[str, Problem] = {
    p.key: p
    for p in [
        Problem("htn", "59621000", "Essential hypertension (disorder)", "hypertension", "HTN"),
        Problem("dm2", "44054006", "Diabetes mellitus type 2 (disorder)", "type 2 diabetes", "DM2"),
        Problem("hld", "55822004", "Hyperlipidemia (disorder)", "hyperlipidemia", "HLD"),
        Problem(
            "ckd3", "433144002", "Chronic kidney disease stage 3 (disorder)", "chronic kidney disease stage 3", "CKD3"
        ),
        Problem("afib", "49436004", "Atrial fibrillation (disorder)", "atrial fibrillation", "AFIB"),
        Problem("cad", "53741008", "Coronary arteriosclerosis (disorder)", "coronary artery disease", "CAD"),
        Problem("chf", "84114007", "Heart failure (disorder)", "heart failure", "CHF"),
        Problem("asthma", "195967001", "Asthma (disorder)", "asthma", "ASTHMA"),
        Problem("copd", "13645005", "Chronic obstructive lung disease (disorder)", "COPD", "COPD"),
        Problem("hypothyroid", "40930008", "Hypothyroidism (disorder)", "hypothyroidism", "HYPOTHYROID"),
        Problem("mdd", "370143000", "Major depressive disorder (disorder)", "major depressive disorder", "MDD"),
        Problem("oa_knee", "239873007", "Osteoarthritis of knee (disorder)", "osteoarthritis of the knee", "OA KNEE"),
        Problem("lbp", "278860009", "Chronic low back pain (finding)", "chronic low back pain", "CHR LBP"),
        Problem("gerd", "235595009", "Gastroesophageal reflux disease (disorder)", "GERD", "GERD"),
        Problem("dvt", "128053003", "Deep venous thrombosis (disorder)", "deep vein thrombosis", "DVT"),
        Problem("colon_ca", "363406005", "Malignant neoplasm of colon (disorder)", "colon cancer", "COLON CA"),
        # resolved, acute problems
        Problem(
            "pneumonia",
            "385093006",
            "Community acquired pneumonia (disorder)",
            "community-acquired pneumonia",
            "CAP",
            False,
        ),
        Problem("bronchitis", "10509002", "Acute bronchitis (disorder)", "acute bronchitis", "BRONCHITIS", False),
        Problem(
            "uti", "68566005", "Urinary tract infectious disease (disorder)", "urinary tract infection", "UTI", False
        ),
        Problem("sinusitis", "444814009", "Viral sinusitis (disorder)", "viral sinusitis", "SINUSITIS", False),
        Problem("cellulitis", "128045006", "Cellulitis (disorder)", "cellulitis of the leg", "CELLULITIS", False),
        Problem("fracture", "65966004", "Fracture of forearm (disorder)", "forearm fracture", "FX FOREARM", False),
        Problem(
            "gastroenteritis", "25374005", "Gastroenteritis (disorder)", "gastroenteritis", "GASTROENTERITIS", False
        ),
    ]
}

DRUGS: dict[str, Drug] = {
    d.key: d
    for d in [
        Drug(
            "lisinopril",
            "29046",
            "lisinopril",
            "lisinopril 10 mg oral tablet",
            10,
            "mg",
            "Take 10 mg by mouth once daily",
            1,
        ),
        Drug(
            "amlodipine",
            "17767",
            "amlodipine",
            "amlodipine 5 mg oral tablet",
            5,
            "mg",
            "Take 5 mg by mouth once daily",
            1,
        ),
        Drug(
            "metoprolol",
            "6918",
            "metoprolol",
            "metoprolol succinate 50 mg ER tablet",
            50,
            "mg",
            "Take 50 mg by mouth daily",
            1,
        ),
        Drug(
            "metformin",
            "6809",
            "metformin",
            "metformin 500 mg oral tablet",
            500,
            "mg",
            "Take 500 mg by mouth twice daily with meals",
            2,
        ),
        Drug(
            "atorvastatin",
            "83367",
            "atorvastatin",
            "atorvastatin 20 mg oral tablet",
            20,
            "mg",
            "Take 20 mg by mouth at bedtime",
            1,
        ),
        Drug(
            "simvastatin",
            "36567",
            "simvastatin",
            "simvastatin 40 mg oral tablet",
            40,
            "mg",
            "Take 40 mg by mouth at bedtime",
            1,
        ),
        Drug(
            "warfarin",
            "11289",
            "warfarin",
            "warfarin 5 mg oral tablet",
            5,
            "mg",
            "Take 5 mg by mouth daily or as directed by the anticoagulation clinic",
            1,
            high_alert="anticoagulant",
        ),
        Drug(
            "apixaban",
            "1364430",
            "apixaban",
            "apixaban 5 mg oral tablet",
            5,
            "mg",
            "Take 5 mg by mouth twice daily",
            2,
            high_alert="anticoagulant",
        ),
        Drug(
            "insulin_glargine",
            "274783",
            "insulin glargine",
            "insulin glargine 100 units/mL pen",
            20,
            "U",
            "Inject 20 units under the skin at bedtime",
            1,
            high_alert="insulin",
        ),
        Drug(
            "oxycodone",
            "7804",
            "oxycodone",
            "oxycodone 5 mg oral tablet",
            5,
            "mg",
            "Take 5 mg by mouth every 6 hours as needed for pain",
            4,
            high_alert="opioid",
        ),
        Drug(
            "clopidogrel",
            "32968",
            "clopidogrel",
            "clopidogrel 75 mg oral tablet",
            75,
            "mg",
            "Take 75 mg by mouth once daily",
            1,
        ),
        Drug(
            "levothyroxine",
            "10582",
            "levothyroxine",
            "levothyroxine 75 mcg oral tablet",
            75,
            "ug",
            "Take 75 mcg by mouth every morning",
            1,
        ),
        Drug(
            "citalopram",
            "2556",
            "citalopram",
            "citalopram 20 mg oral tablet",
            20,
            "mg",
            "Take 20 mg by mouth once daily",
            1,
        ),
        Drug(
            "sertraline",
            "36437",
            "sertraline",
            "sertraline 50 mg oral tablet",
            50,
            "mg",
            "Take 50 mg by mouth once daily",
            1,
        ),
        Drug(
            "albuterol",
            "435",
            "albuterol",
            "albuterol 90 mcg/actuation inhaler",
            2,
            "{puff}",
            "Inhale 2 puffs every 4 hours as needed for wheezing",
            6,
        ),
        Drug(
            "tiotropium",
            "69120",
            "tiotropium",
            "tiotropium 18 mcg inhalation capsule",
            18,
            "ug",
            "Inhale contents of 1 capsule once daily",
            1,
        ),
        Drug(
            "omeprazole",
            "7646",
            "omeprazole",
            "omeprazole 20 mg DR capsule",
            20,
            "mg",
            "Take 20 mg by mouth daily before breakfast",
            1,
        ),
        Drug(
            "furosemide",
            "4603",
            "furosemide",
            "furosemide 40 mg oral tablet",
            40,
            "mg",
            "Take 40 mg by mouth every morning",
            1,
        ),
        Drug(
            "capecitabine",
            "194000",
            "capecitabine",
            "capecitabine 500 mg oral tablet",
            1000,
            "mg",
            "Take 1000 mg/m2 by mouth twice daily, days 1-14 of each cycle",
            2,
        ),
        Drug(
            "acetaminophen",
            "161",
            "acetaminophen",
            "acetaminophen 500 mg oral tablet",
            1000,
            "mg",
            "Take 1000 mg by mouth every 8 hours as needed",
            3,
        ),
        # short courses, stopped
        Drug(
            "amoxicillin",
            "723",
            "amoxicillin",
            "amoxicillin 500 mg oral capsule",
            500,
            "mg",
            "Take 500 mg by mouth three times daily for 7 days",
            3,
        ),
        Drug(
            "azithromycin",
            "18631",
            "azithromycin",
            "azithromycin 250 mg oral tablet",
            250,
            "mg",
            "Take 500 mg on day 1, then 250 mg daily for 4 days",
            1,
        ),
        Drug(
            "nitrofurantoin",
            "7454",
            "nitrofurantoin",
            "nitrofurantoin 100 mg oral capsule",
            100,
            "mg",
            "Take 100 mg by mouth twice daily for 5 days",
            2,
        ),
        Drug(
            "cephalexin",
            "2231",
            "cephalexin",
            "cephalexin 500 mg oral capsule",
            500,
            "mg",
            "Take 500 mg by mouth four times daily for 7 days",
            4,
        ),
        Drug(
            "ibuprofen",
            "5640",
            "ibuprofen",
            "ibuprofen 400 mg oral tablet",
            400,
            "mg",
            "Take 400 mg by mouth every 6 hours as needed",
            4,
        ),
        Drug(
            "doxycycline",
            "3640",
            "doxycycline",
            "doxycycline 100 mg oral tablet",
            100,
            "mg",
            "Take 100 mg by mouth twice daily for 7 days",
            2,
        ),
    ]
}

# the chronic drugs each problem calls for (first choice first)
TREATMENT: dict[str, list[str]] = {
    "htn": ["lisinopril", "amlodipine"],
    "dm2": ["metformin"],
    "hld": ["atorvastatin"],
    "afib": ["metoprolol"],
    "cad": ["clopidogrel", "atorvastatin"],
    "chf": ["furosemide", "metoprolol"],
    "asthma": ["albuterol"],
    "copd": ["tiotropium", "albuterol"],
    "hypothyroid": ["levothyroxine"],
    "mdd": ["sertraline"],
    "oa_knee": ["acetaminophen"],
    "gerd": ["omeprazole"],
    "dvt": ["apixaban"],
    "colon_ca": ["capecitabine"],
}
ACUTE_TREATMENT: dict[str, str] = {
    "pneumonia": "azithromycin",
    "bronchitis": "doxycycline",
    "uti": "nitrofurantoin",
    "sinusitis": "amoxicillin",
    "cellulitis": "cephalexin",
    "fracture": "ibuprofen",
    "gastroenteritis": "ibuprofen",
}


@dataclass(frozen=True)
class Allergen:
    key: str
    system: str
    code: str
    display: str
    phrase: str
    category: str
    reactions: tuple[tuple[str, str, str], ...]  # (snomed, display, severity)
    high_risk_reaction: tuple[str, str, str] | None = None
    avoid: tuple[str, ...] = field(default_factory=tuple)


ANAPHYLAXIS = ("39579001", "Anaphylaxis (disorder)", "severe")
ALLERGENS: dict[str, Allergen] = {
    a.key: a
    for a in [
        Allergen(
            "penicillin",
            SNOMED,
            "91936005",
            "Allergy to penicillin (finding)",
            "penicillin",
            "medication",
            (("271807003", "Eruption of skin (disorder)", "moderate"),),
            ANAPHYLAXIS,
            ("amoxicillin",),
        ),
        Allergen(
            "sulfa",
            RXNORM,
            "10180",
            "sulfamethoxazole",
            "sulfa drugs",
            "medication",
            (("271807003", "Eruption of skin (disorder)", "mild"),),
        ),
        Allergen(
            "codeine", RXNORM, "2670", "codeine", "codeine", "medication", (("422587007", "Nausea (finding)", "mild"),)
        ),
        Allergen(
            "peanut",
            SNOMED,
            "91935009",
            "Allergy to peanuts (finding)",
            "peanuts",
            "food",
            (("247472004", "Wheal (finding)", "moderate"),),
            ANAPHYLAXIS,
        ),
        Allergen(
            "latex",
            SNOMED,
            "300916003",
            "Latex allergy (finding)",
            "latex",
            "environment",
            (("878820003", "Rhinoconjunctivitis (disorder)", "mild"),),
        ),
    ]
}


@dataclass(frozen=True)
class Lab:
    key: str
    loinc: str
    display: str
    unit: str
    low: float | None
    high: float | None
    critical_low: float | None = None
    critical_high: float | None = None
    decimals: int = 1
    category: str = "laboratory"


LABS: dict[str, Lab] = {
    x.key: x
    for x in [
        Lab("potassium", "2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.1, 2.8, 6.2),
        Lab("sodium", "2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 135, 145, 120, 160, 0),
        Lab("creatinine", "2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 1.3, None, None, 2),
        Lab(
            "egfr",
            "33914-3",
            "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma or Blood"
            " by Creatinine-based formula (MDRD)",
            "mL/min/{1.73_m2}",
            60,
            None,
            15,
            None,
            0,
        ),
        Lab("glucose", "2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 99, 40, 450, 0),
        Lab("a1c", "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.0, 5.6),
        Lab(
            "ldl",
            "13457-7",
            "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation",
            "mg/dL",
            None,
            100,
            None,
            None,
            0,
        ),
        Lab("hgb", "718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12.0, 16.0, 7.0, None),
        Lab("inr", "6301-6", "INR in Platelet poor plasma by Coagulation assay", "{INR}", 0.8, 1.2, None, 5.0),
        Lab("tsh", "3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "m[IU]/L", 0.4, 4.0, None, None, 2),
    ]
}

VITALS: dict[str, tuple[str, str, str]] = {
    "systolic": ("8480-6", "Systolic blood pressure", "mm[Hg]"),
    "diastolic": ("8462-4", "Diastolic blood pressure", "mm[Hg]"),
    "heart_rate": ("8867-4", "Heart rate", "/min"),
    "weight": ("29463-7", "Body weight", "kg"),
    "bmi": ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2"),
    "temp": ("8310-5", "Body temperature", "Cel"),
    "spo2": ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%"),
}
BP_PANEL = ("85354-9", "Blood pressure panel with all children optional")
SMOKING = ("72166-2", "Tobacco smoking status")
SMOKING_VALUES = {
    "never": ("266919005", "Never smoked tobacco (finding)"),
    "former": ("8517006", "Ex-smoker (finding)"),
    "current": ("77176002", "Smoker (finding)"),
}

PROCEDURES: dict[str, tuple[str, str]] = {
    "colonoscopy": ("73761001", "Colonoscopy (procedure)"),
    "echo": ("40701008", "Echocardiography (procedure)"),
    "ecg": ("29303009", "Electrocardiographic procedure (procedure)"),
    "cxr": ("399208008", "Plain chest X-ray (procedure)"),
    "appendectomy": ("80146002", "Excision of appendix (procedure)"),
    "knee_replacement": ("609588000", "Total knee replacement (procedure)"),
    "cardiac_cath": ("41976001", "Cardiac catheterization (procedure)"),
}

IMMUNIZATIONS: dict[str, tuple[str, str]] = {
    "flu": ("140", "Influenza, seasonal, injectable, preservative free"),
    "tdap": ("115", "Tdap"),
    "ppsv23": ("33", "pneumococcal polysaccharide vaccine, 23 valent"),
    "pcv13": ("133", "Pneumococcal conjugate PCV 13"),
    "covid": ("208", "SARS-COV-2 (COVID-19) vaccine, mRNA, spike protein, LNP, preservative free, 30 mcg/0.3mL dose"),
    "zoster": ("187", "zoster vaccine recombinant"),
}

NOTE_TYPES: dict[str, tuple[str, str]] = {
    "hp": ("34117-2", "History and physical note"),
    "progress": ("11506-3", "Progress note"),
    "discharge": ("18842-5", "Discharge summary"),
    "nursing": ("11506-3", "Progress note"),
}

# findings that notes deny or rule out: they must never become problems
NEGATABLE: dict[str, tuple[str, str]] = {
    "chest pain": ("29857009", "CP"),
    "shortness of breath": ("267036007", "SOB"),
    "fever": ("386661006", "FEVER"),
    "nausea": ("422587007", "N/V"),
    "pneumonia": ("233604007", "PNA"),
    "pulmonary embolism": ("59282003", "PE"),
    "suicidal ideation": ("6471006", "SI"),
    "melena": ("2901004", "MELENA"),
    "headache": ("25064002", "HA"),
    "syncope": ("271594007", "SYNCOPE"),
}
# diseases relatives had: they must never become the patient's problems
FAMILY_DISEASES: dict[str, str] = {
    "breast cancer": "254837009",
    "colon cancer": "363406005",
    "myocardial infarction": "22298006",
    "stroke": "230690007",
    "type 2 diabetes": "44054006",
    "Alzheimer disease": "26929004",
    "prostate cancer": "399068003",
}
# considered, not confirmed: must not become active problems
UNCERTAIN: dict[str, tuple[str, str]] = {
    "early CHF": ("84114007", "Possible early CHF"),
    "pulmonary embolism": ("59282003", "Rule out PE"),
    "sleep apnea": ("73430006", "Suspect obstructive sleep apnea"),
    "pneumonia": ("233604007", "Questionable early pneumonia"),
}
# negatable terms that are diagnoses rather than symptoms ("no evidence of", not "denies")
NEGATABLE_DIAGNOSES = {"pneumonia", "pulmonary embolism", "melena"}

HOSPITALS = [
    "Mercy General Hospital",
    "St. Agnes Medical Center",
    "Riverside Regional Medical Center",
    "Lakeview Community Hospital",
    "Good Samaritan Hospital",
    "Northfield University Hospital",
    "Saint Luke's Memorial Hospital",
    "Valley Presbyterian Hospital",
    "Harborview Heart Institute",
    "Cedar Ridge Clinic",
]
ORGANIZATIONS = ["Blue Shield of the Valley", "Medicare", "Aetna", "United Healthcare", "Kaiser Permanente"]
RELATIONS = ["wife", "husband", "daughter", "son", "sister", "brother", "niece", "grandson"]
