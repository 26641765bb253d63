"""Shipped clinical knowledge the summary uses: high-alert medicines, key labs and their usual
adult ranges, "no known allergy" codes, and common note terms and abbreviations."""

from __future__ import annotations

from typing import NamedTuple

#: ISMP high-alert medicines (community/ambulatory and acute care lists), by ingredient word.
HIGH_ALERT: dict[str, str] = {
    **dict.fromkeys(
        [
            "warfarin",
            "heparin",
            "enoxaparin",
            "dalteparin",
            "fondaparinux",
            "apixaban",
            "rivaroxaban",
            "dabigatran",
            "edoxaban",
            "argatroban",
            "bivalirudin",
        ],
        "anticoagulant",
    ),
    **dict.fromkeys(["clopidogrel", "prasugrel", "ticagrelor"], "antiplatelet"),
    **dict.fromkeys(["insulin"], "insulin"),
    **dict.fromkeys(["glipizide", "glyburide", "glimepiride"], "sulfonylurea"),
    **dict.fromkeys(
        [
            "morphine",
            "oxycodone",
            "hydrocodone",
            "hydromorphone",
            "fentanyl",
            "methadone",
            "meperidine",
            "tramadol",
            "codeine",
            "tapentadol",
            "buprenorphine",
            "oxymorphone",
            "sufentanil",
            "remifentanil",
        ],
        "opioid",
    ),
    **dict.fromkeys(
        [
            "methotrexate",
            "cyclophosphamide",
            "cisplatin",
            "carboplatin",
            "oxaliplatin",
            "paclitaxel",
            "docetaxel",
            "doxorubicin",
            "epirubicin",
            "fluorouracil",
            "capecitabine",
            "gemcitabine",
            "vincristine",
            "etoposide",
            "cytarabine",
            "azacitidine",
            "imatinib",
            "tamoxifen",
            "anastrozole",
            "letrozole",
            "leuprolide",
        ],
        "chemotherapy",
    ),
    **dict.fromkeys(["amiodarone", "dronedarone", "digoxin", "dofetilide", "sotalol"], "antiarrhythmic"),
    **dict.fromkeys(["tacrolimus", "cyclosporine", "mycophenolate", "sirolimus"], "immunosuppressant"),
    **dict.fromkeys(["lithium"], "lithium"),
    **dict.fromkeys(["midazolam", "propofol", "ketamine"], "sedative"),
    **dict.fromkeys(["potassium chloride", "magnesium sulfate"], "concentrated electrolyte"),
}


class Lab(NamedTuple):
    """A key lab: name, usual adult range (None = no bound) and critical limits."""

    name: str
    low: float | None
    high: float | None
    critical_low: float | None = None
    critical_high: float | None = None


#: Key labs by LOINC, in the order the Results section lists them.
KEY_LABS: dict[str, Lab] = {
    "2823-3": Lab("Potassium", 3.5, 5.1, 2.5, 6.0),
    "6298-4": Lab("Potassium", 3.5, 5.1, 2.5, 6.0),
    "2951-2": Lab("Sodium", 135, 145, 120, 160),
    "2947-0": Lab("Sodium", 135, 145, 120, 160),
    "2160-0": Lab("Creatinine", 0.6, 1.3),
    "38483-4": Lab("Creatinine", 0.6, 1.3),
    "33914-3": Lab("eGFR", 60, None, 15, None),
    "62238-1": Lab("eGFR", 60, None, 15, None),
    "6299-2": Lab("Urea nitrogen", 7, 20),
    "2345-7": Lab("Glucose", 70, 99, 54, 400),
    "2339-0": Lab("Glucose", 70, 99, 54, 400),
    "4548-4": Lab("Hemoglobin A1c", None, 5.7),
    "718-7": Lab("Hemoglobin", 12, 17.5, 7, None),
    "6690-2": Lab("Leukocytes", 4, 11),
    "777-3": Lab("Platelets", 150, 450, 50, None),
    "6301-6": Lab("INR", None, 1.2, None, 5),
    "2093-3": Lab("Cholesterol", None, 200),
    "18262-6": Lab("LDL cholesterol", None, 130),
    "13457-7": Lab("LDL cholesterol", None, 130),
    "2085-9": Lab("HDL cholesterol", 40, None),
    "2571-8": Lab("Triglycerides", None, 150),
    "17861-6": Lab("Calcium", 8.5, 10.2, 6, 13),
    "1742-6": Lab("ALT", None, 56),
    "1920-8": Lab("AST", None, 40),
    "3016-3": Lab("TSH", 0.4, 4.0),
    "14959-1": Lab("Microalbumin/creatinine ratio", None, 30),
}

#: Codes (SNOMED CT, and the IPS absent-unknown code system) of resources that record that a
#: required section has nothing to list, with what they say: "no known ..." or "no information".
NO_KNOWN_ALLERGY = {
    "716186003": "no known allergies",
    "409137002": "no known drug allergies",
    "429625007": "no known food allergies",
    "428607008": "no known environmental allergies",
    "428197003": "no known allergies",
    "no-known-allergies": "no known allergies",
    "no-known-medication-allergies": "no known medication allergies",
    "no-known-environmental-allergies": "no known environmental allergies",
    "no-known-food-allergies": "no known food allergies",
    "no-allergy-info": "no information",
}
NO_KNOWN_PROBLEM = {
    "160245001": "no known problems",
    "no-known-problems": "no known problems",
    "no-problem-info": "no information",
}
NO_KNOWN_MEDICATION = {
    "no-known-medications": "no known medications",
    "no-medication-info": "no information",
}

#: SNOMED CT code of anaphylaxis (a reaction that makes an allergy high-risk).
ANAPHYLAXIS = "39579001"
#: LOINC code of tobacco smoking status.
SMOKING_STATUS = "72166-2"

#: Common note terms and abbreviations: term -> (kind, canonical). Kind is ``problem`` or
#: ``medication``; the canonical name's ``|``-separated alternatives are matched (as substrings)
#: against the record's coded displays to tell a known fact from a note-only one.
NOTE_TERMS: dict[str, tuple[str, str]] = {
    **{t: ("problem", "hypertension|hypertensive") for t in ["htn", "hypertension", "high blood pressure"]},
    **{
        t: ("problem", "diabetes")
        for t in ["dm", "dm2", "t2dm", "niddm", "diabetes", "diabetes mellitus", "type 2 diabetes", "type ii diabetes"]
    },
    **{
        t: ("problem", "heart failure|cardiac failure")
        for t in ["chf", "hfref", "hfpef", "heart failure", "congestive heart failure"]
    },
    **{
        t: ("problem", "chronic obstructive|copd|emphysema")
        for t in ["copd", "chronic obstructive pulmonary disease", "emphysema"]
    },
    **{t: ("problem", "coronary|ischemic heart") for t in ["cad", "coronary artery disease", "ischemic heart disease"]},
    **{t: ("problem", "atrial fibrillation") for t in ["afib", "a-fib", "af", "atrial fibrillation"]},
    **{
        t: ("problem", "myocardial infarction|heart attack")
        for t in ["mi", "myocardial infarction", "heart attack", "stemi", "nstemi"]
    },
    **{t: ("problem", "kidney disease|renal") for t in ["ckd", "chronic kidney disease", "renal insufficiency"]},
    **{
        t: ("problem", "stroke|cerebrovascular|infarction of brain|transient ischemic")
        for t in ["cva", "stroke", "tia"]
    },
    **{t: ("problem", "venous thrombosis|thrombosis") for t in ["dvt", "deep vein thrombosis"]},
    **{t: ("problem", "pulmonary embol") for t in ["pe", "pulmonary embolism"]},
    **{t: ("problem", "asthma") for t in ["asthma"]},
    **{
        t: ("problem", "hyperlipidemia|hypercholesterol|dyslipidemia|lipid")
        for t in ["hld", "hyperlipidemia", "dyslipidemia", "high cholesterol"]
    },
    **{t: ("problem", "obes|body mass index 30") for t in ["obesity", "obese"]},
    **{t: ("problem", "depress") for t in ["depression", "mdd", "major depressive disorder"]},
    **{t: ("problem", "anxiety") for t in ["anxiety", "gad"]},
    **{
        t: ("problem", "cancer|neoplasm|carcinoma|malignan|tumor|lymphoma|leukemia")
        for t in [
            "cancer",
            "carcinoma",
            "malignancy",
            "breast cancer",
            "lung cancer",
            "colon cancer",
            "prostate cancer",
        ]
    },
    **{t: ("problem", "pneumonia") for t in ["pneumonia", "cap"]},
    **{t: ("problem", "chest pain") for t in ["chest pain", "cp"]},
    **{t: ("problem", "shortness of breath|dyspnea") for t in ["sob", "shortness of breath", "dyspnea"]},
    **{t: ("problem", "arthritis|arthrosis") for t in ["oa", "osteoarthritis"]},
    **{t: ("problem", "hypothyroidism") for t in ["hypothyroidism"]},
    **{t: ("problem", "gerd|reflux") for t in ["gerd", "reflux"]},
    **{t: ("problem", "seizure|epilep") for t in ["seizure", "seizures", "epilepsy"]},
    **{
        name: ("medication", name)
        for name in [
            "warfarin",
            "heparin",
            "enoxaparin",
            "apixaban",
            "rivaroxaban",
            "dabigatran",
            "insulin",
            "metformin",
            "lisinopril",
            "amlodipine",
            "atorvastatin",
            "simvastatin",
            "metoprolol",
            "aspirin",
            "clopidogrel",
            "furosemide",
            "hydrochlorothiazide",
            "levothyroxine",
            "prednisone",
            "albuterol",
            "morphine",
            "oxycodone",
            "hydrocodone",
            "fentanyl",
            "penicillin",
            "amoxicillin",
            "digoxin",
            "amiodarone",
            "methotrexate",
        ]
    },
    "asa": ("medication", "aspirin"),
    "coumadin": ("medication", "warfarin"),
    "eliquis": ("medication", "apixaban"),
    "xarelto": ("medication", "rivaroxaban"),
    "lasix": ("medication", "furosemide"),
    "hctz": ("medication", "hydrochlorothiazide"),
}

#: Note phrases that state the patient has no known allergies.
NKA_PHRASES = ["no known allergies", "nka", "nkda", "no known drug allergies", "no allergies"]
