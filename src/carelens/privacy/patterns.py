# ruff: noqa: E501
"""Compiled regular expressions for the identifiers that have a shape (rules layer)."""

from __future__ import annotations

import re

from carelens.privacy.gating import FOLDS_TO_ASCII, Gated, word_gate

I = re.IGNORECASE  # noqa: E741

EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
URL = re.compile(
    r"\b(?:https?://|ftp://|www\.)[^\s<>\"')\]]+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|edu|gov|io|info|biz|us|uk|de|fr|hu|it|nl)(?:/[^\s<>\"')\]]*)?\b",
    I,
)
TLD_HINT = re.compile(r"\.(?:com|org|net|edu|gov|io|info|biz|us|uk|de|fr|hu|it|nl)\b")
IPV4 = Gated(
    re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.]\d)"),
    r"\d(?<![\d.]\d)(?=\d{0,2}\.\d)",
)
IPV6 = Gated(
    re.compile(r"(?<![\w:])(?:[0-9a-f]{1,4}:){2,7}[0-9a-f]{1,4}(?![\w:])", I),
    r"[0-9A-Fa-f](?<![\w:].)(?=[0-9A-Fa-f]{0,3}:[0-9A-Fa-f]{1,4}:)",
)
SSN = Gated(
    re.compile(r"(?<![\d-])\d{3}[- ]\d{2}[- ]\d{4}(?![\d-])|(?<=ssn)[\s:#]*\d{9}\b", I),
    r"[\d\s:#](?:(?<![\d-]\d)(?=\d\d[- ]\d\d[- ]\d{4})|(?<=[sS][sS][nN].))",
)
PHONE = Gated(
    re.compile(
        r"(?<![\w+])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?:\s*(?:x|ext\.?|extension)\s*\d{1,5})?(?!\d)"
        r"|(?<![\w+])\+\d{1,3}[\s.-]?\(?\d{1,4}\)?(?:[\s.-]?\d{2,4}){2,4}(?!\d)"
        r"|(?<![\w.-])\d{3}-\d{4}(?![\w-])"
        r"|(?<![\w.-])\d{10}(?!\d)",
        I,
    ),
    r"[\d(+](?<!\w.)",
)
PHONE_CUE = Gated(
    re.compile(
        r"\b(?:phone|tel|telephone|mobile|cell|pager|beeper|fax|contact|call(?:\s+me)?(?:\s+(?:at|on))?|answering\s+at|messages\s+to|reach(?:ed)?\s+(?:me\s+)?at)"
        r"\s*(?:#|no\.?|number)?\s*[:.]?\s*(?P<value>\+?\(?\d[\d\s().-]{4,22}\d)",
        I,
    ),
    word_gate("phone tel telephone mobile cell pager beeper fax contact call answering messages reach"),
)
PHONE_GROUPS = Gated(
    re.compile(r"(?<![\w.,/:-])\+?\(?\d{1,4}\)?(?:[ .-]\d{2,4}){2,5}(?![\w/]|[.,]\d|-\d)"),
    r"[\d(+](?<![\w.,/:-].)",
)
ZIP_CUE = Gated(
    re.compile(
        r"\b(?:zip|postal|post)\s*(?:code)?\s*(?:is|:)?\s*(?P<value>[A-Z0-9][A-Z0-9 -]{1,8}[A-Z0-9]|\d{3,})\b", I
    ),
    word_gate("zip postal post"),
)
FAX_CUE = re.compile(r"fax\W{0,3}$", I)
ID_CUE = Gated(
    re.compile(
        r"\b(?P<cue>mrn|medical\s+record(?:\s+(?:number|no|#))?|med\s*rec|record\s*(?:#|no\.?|number)|acct|account(?:\s+(?:number|no|#))?"
        r"|member\s*(?:id|#|number)|policy\s*(?:id|#|number|no\.?)?|subscriber\s*(?:id|#)|group\s*(?:id|#|number)|health\s*plan(?:\s+(?:id|#|number))?"
        r"|insurance\s*(?:id|#|number)|licen[cs]e(?:\s+(?:number|no|#))?|lic\.?|dea|npi|serial(?:\s+(?:number|no|#))?|s/n|device\s*(?:id|#)"
        r"|vin|plate(?:\s+(?:number|no|#))?|unit\s*(?:#|no|number)|case\s*(?:#|no|number)|id|patient\s*id|ssn|social\s+security(?:\s+number)?"
        r"|passport(?:\s+(?:number|no|#))?|driver'?s?\s+licen[cs]e|bed\s*#?|room\s*#?|pager|beeper|order\s*#|accession(?:\s+(?:number|no|#))?)"
        r"\s*(?:is|was|:|#|no\.?|number)?\s*[:#]?\s*(?P<value>(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{2,})\b",
        I,
    ),
    word_gate(
        "mrn medical med record acct account member policy subscriber group health insurance licence license lic dea npi"
        " serial s/n device vin plate unit case id patient ssn social passport driver bed room pager beeper order accession"
    ),
)
ID_TYPES = {
    "mrn": "MRN", "medical": "MRN", "med": "MRN", "record": "MRN", "acct": "ACCOUNT", "account": "ACCOUNT",
    "member": "HEALTHPLAN", "policy": "HEALTHPLAN", "subscriber": "HEALTHPLAN", "group": "HEALTHPLAN",
    "health": "HEALTHPLAN", "insurance": "HEALTHPLAN", "licence": "LICENSE", "license": "LICENSE", "lic": "LICENSE",
    "dea": "LICENSE", "npi": "LICENSE", "driver": "LICENSE", "passport": "LICENSE", "serial": "DEVICE",
    "s/n": "DEVICE", "device": "DEVICE", "vin": "VEHICLE", "plate": "VEHICLE", "ssn": "SSN", "social": "SSN",
}  # fmt: skip
LONG_ID = Gated(
    re.compile(r"(?<![\w.-])(?=[A-Z0-9-]*\d{5})(?=[A-Z0-9-]*\d)[A-Z0-9]+(?:-[A-Z0-9]+)*(?![\w-]|\.\d)", I),
    r"[A-Za-z0-9" + FOLDS_TO_ASCII + r"](?<![\w.-].)(?=[A-Za-z0-9" + FOLDS_TO_ASCII + r"-]*\d{4})",
)
VIN = Gated(
    re.compile(r"\b[A-HJ-NPR-Z0-9]{17}\b"),
    r"[A-HJ-NPR-Z0-9](?<!\w.)(?=[A-HJ-NPR-Z0-9]{16}\b)",
)
ZIP = Gated(
    re.compile(r"(?<![\w.-])\d{5}(?:-\d{4})?(?![\w-]|\.\d)"),
    r"\d(?<![\w.-]\d)(?=\d{4})",
)
_STREET_SUFFIXES = sorted(
    {w.lower() for w in __import__("faker.providers.address.en_US", fromlist=["Provider"]).Provider.street_suffixes}
    | {
        "st",
        "ave",
        "rd",
        "blvd",
        "ln",
        "dr",
        "ct",
        "pl",
        "ter",
        "cir",
        "hwy",
        "pkwy",
        "sq",
        "trl",
        "koz",
        "utca",
        "út",
        "strasse",
        "straße",
        "weg",
        "gasse",
        "platz",
        "calle",
        "avenida",
        "katu",
        "tie",
        "close",
        "row",
    },
    key=len,
    reverse=True,
)
_UNITS = r"(?:mg|mcg|g|gm|ml|l|units?|u|tabs?|caps?|hrs?|hours?|x|times|cm|mm|kg|lbs?|meq|mmol|%|puffs?|drops?|min|mins|days?|weeks?|years?|yrs?|y|yo|mo|months?|pm|am|beats?|bpm)"
STREET = Gated(
    re.compile(
        r"\b\d{1,6}[A-Z]?\s+(?!"
        + _UNITS
        + r"\b)(?:[NSEW]\.?\s+)?(?:(?!(?:with|and|together|to|at|in|of|the|for|on|from|by|her|his|brother|sister)\b)[A-Za-z0-9'.-]+\s+){0,4}?"
        r"(?:" + "|".join(re.escape(w) for w in _STREET_SUFFIXES) + r")\b\.?"
        r"(?:,?\s*(?:apt|apartment|suite|ste|unit|#|no\.?|floor|fl)\.?\s*#?\s*[\w-]+)?",
        I,
    ),
    r"\d(?<!\w\d)(?=\d{0,5}[A-Za-z" + FOLDS_TO_ASCII + r"]?\s)",
)
LIVES_AT = Gated(
    re.compile(
        r"(?:lives at|residing at|resides at|home address|address)\s*:?\s+(?P<value>\d[^\n;,]{3,60}?)(?=\s*(?:[.;,\n]|$|\s(?:and|with|together|alone)\b))",
        I,
    ),
    word_gate("lives residing resides home address", word_start=False),
)
CITY_STATE_ZIP = Gated(
    re.compile(
        r"(?P<city>\b[A-Z][A-Za-z'.-]+(?:\s+[A-Z][A-Za-z'.-]+){0,2}),\s*(?P<state>[A-Z]{2})\s+(?P<zip>\d{5}(?:-\d{4})?)\b"
    ),
    r"[A-Z](?<!\w.)(?=[A-Za-z'.\s-]*,\s*[A-Z]{2}\s+\d{5})",
)
INSURERS = Gated(
    re.compile(
        r"\b(?:medicare|medicaid|aetna|cigna|humana|anthem|tricare|kaiser(?:\s+permanente)?|united\s*health(?:care)?|blue\s+cross(?:\s+blue\s+shield)?|blue\s+shield(?:\s+of(?:\s+the)?(?:\s+[A-Z][a-z]+){1,2})?|bcbs|harvard\s+pilgrim|tufts\s+health(?:\s+plan)?|masshealth|molina|centene|wellcare|oscar)\b",
        I,
    ),
    word_gate(
        "medicare medicaid aetna cigna humana anthem tricare kaiser united blue bcbs harvard tufts masshealth molina centene wellcare oscar"
    ),
)
ORG_CUE = Gated(
    re.compile(
        r"\b(?i:insurance|insurer|payer|carrier|employer|works\s+(?:at|for)|employed\s+(?:at|by))\s*:?\s+(?P<value>[A-Z][\w&'.-]*(?:\s+(?:of|the|and|&|[A-Z][\w&'.-]*)){0,5})",
        re.UNICODE,
    ),
    word_gate("insurance insurer payer carrier employer works employed"),
)
STREET_FOREIGN = re.compile(
    r"\b[A-ZÀ-Ž][\w'-]+(?:strasse|straße|weg|gasse|platz|katu|tie|vej|gatan|vägen|utca)\s+\d{1,5}\w?\b", I
)
UNIT = Gated(
    re.compile(r"\b(?:apt|apartment|suite|ste|unit|room|rm)\.?\s*#?\s*\d{1,5}[A-Z]?\b", I),
    word_gate("apt apartment suite ste unit room rm"),
)
NUM_NAME_NUM = Gated(
    re.compile(
        r"(?<![\d/.:-])\b\d{1,6}\s+(?!"
        + _UNITS
        + r"\b)[A-ZÀ-ÖØ-ÞĀ-Ž][\w'.-]*(?:\s+(?!"
        + _UNITS
        + r"\b)[^\W\d_][\w'.-]*){0,2}\s+\d{1,5}\b\.?"
    ),
    r"\d(?<![\w/.:-]\d)(?=\d{0,5}\s)",
)
MILITARY = Gated(
    re.compile(r"\b(?:PSC|Unit|CMR)\s+\d{3,5},?\s+Box\s+\d{3,5}\b|\b(?:APO|FPO|DPO)\s+A[AEP]\s+\d{5}\b", I),
    word_gate("psc unit cmr apo fpo dpo"),
)
STREET_PREFIXED = Gated(
    re.compile(
        r"\b(?:via|rue|calle|avenida|avenue|strada|piazza|rua|viale|corso|avda)\s+[^\W\d_][\w'.-]*(?:\s+[^\W\d_][\w'.-]*){0,3}?\s+\d{1,5}\b",
        I,
    ),
    word_gate("via rue calle avenida avenue strada piazza rua viale corso avda"),
)
SAINT_PLACE = Gated(
    re.compile(r"\b(?:st|saint)\.?\s+(?P<name>[A-Z][a-z]+|[A-Z]+)(?:'s|'S|s|S)(?=\s|[.,;:]|$)", I),
    word_gate("st saint"),
)
PO_BOX = re.compile(r"\bp\.?\s?o\.?\s*box\s+\d+\b", I)
# an age over 89 opening a line before what the patient had or has ("98 s/p hip fx", "94 w/ CHF")
AGE_LEAD = re.compile(r"(?m)^[ \t]*(?P<age>9\d|1[01]\d)(?=[ \t]+(?:s/p|w/|with|h/o|presents|presented|admitted)\b)", I)
AGE_OVER_89 = Gated(
    re.compile(
        r"\b(?P<age>9\d|1[0-2]\d)(?=\s*(?:-|\s)?\s*(?:y/?o\b|yo\b|y\.o\.|yrs?\b|years?\b|-?year-old|year\s+old|yr\s+old|f\b|m\b))"
        r"|(?<=\bage\s)(?P<age2>9\d|1[0-2]\d)\b|(?<=\baged\s)(?P<age3>9\d|1[0-2]\d)\b"
        r"|(?<=\bat\s)(?P<age4>9\d|1[0-2]\d)(?=,?\s+(?:she|he|they|the\s+patient|pt)\b)",
        I,
    ),
    r"[19](?<!\w.)(?=\d)",
)
# a unit or pager extension: "x4-5678", "X 4-5678", "ext. 45678", "beeper #2-1234"
PHONE_EXT = re.compile(
    r"(?<![\w-])(?:x|ext\.?|extension|beeper|pager|bpr)\s?#?\s?(?P<value>\d{1,2}-?\d{4})(?![\d-])", I
)
TOKEN = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*\d*|\d+|\S", re.UNICODE)
