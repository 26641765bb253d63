"""The rule layer of the text de-identifier: identifiers with a shape (e-mails, URLs, IPs, SSNs,
phones, zips, ages over 89, addresses, dates, insurers, known hospitals). Cheap substring checks
skip the regular expressions that cannot match."""

from __future__ import annotations

import re
from functools import lru_cache

from carelens.privacy import patterns as P
from carelens.privacy.dates import DATE_RE, DATES, is_plausible
from carelens.privacy.lexicon import lexicon
from carelens.privacy.names import INSURER_WORDS, KNOWN_HOSPITALS, STREET_FOREIGN_HINTS, VERY_COMMON
from carelens.privacy.tokens import PhiSpan

_DIGIT_AGE = re.compile(r"(?<!\d)(?:9\d|1[0-2]\d)(?!\d)")


def rule_spans(text: str) -> list[PhiSpan]:
    """Identifiers with a shape. Cheap substring checks skip regexes that cannot match."""
    out: list[PhiSpan] = []
    add = out.append
    low = text.lower()
    has_digit = any(c in text for c in "0123456789")
    if "@" in text:
        for m in P.EMAIL.finditer(text):
            add(PhiSpan(m.start(), m.end(), "EMAIL"))
    if "." in text and ("http" in low or "www" in low or "ftp" in low or P.TLD_HINT.search(low)):
        for m in P.URL.finditer(text):
            if "@" not in m.group(0):
                add(PhiSpan(m.start(), m.end(), "URL"))
    if has_digit:
        if text.count(".") >= 3:
            for m in P.IPV4.finditer(text):
                add(PhiSpan(m.start(), m.end(), "IP"))
        if text.count(":") >= 2:
            for m in P.IPV6.finditer(text):
                add(PhiSpan(m.start(), m.end(), "IP"))
        for m in P.SSN.finditer(text):
            add(PhiSpan(m.start(), m.end(), "SSN"))
        for m in P.PHONE.finditer(text):
            kind = "FAX" if P.FAX_CUE.search(text, max(0, m.start() - 8), m.start()) else "PHONE"
            add(PhiSpan(m.start(), m.end(), kind))
        for m in P.PHONE_EXT.finditer(text):  # the number, not its cue word ("Pager 83554")
            add(PhiSpan(m.start("value"), m.end("value"), "PHONE"))
        for m in P.PHONE_CUE.finditer(text):
            value = m.group("value").rstrip(" .-(")
            if sum(c.isdigit() for c in value) >= 6:
                add(PhiSpan(m.start("value"), m.start("value") + len(value), "PHONE"))
        for m in P.PHONE_GROUPS.finditer(text):
            value = m.group(0)
            if sum(c.isdigit() for c in value) >= 8 and not DATE_RE.fullmatch(value) and not _BLOOD_GAS.match(value):
                add(PhiSpan(m.start(), m.end(), "PHONE"))
        if "zip" in low or "postal" in low or "post code" in low:
            for m in P.ZIP_CUE.finditer(text):
                add(PhiSpan(m.start("value"), m.end("value"), "ZIP"))
        if _DIGIT_AGE.search(text):
            for m in P.AGE_OVER_89.finditer(text):
                g = next(k for k in ("age", "age2", "age3", "age4") if m.group(k))
                add(PhiSpan(m.start(g), m.end(g), "AGE"))
            for m in P.AGE_LEAD.finditer(text):
                add(PhiSpan(m.start("age"), m.end("age"), "AGE"))
        for m in P.ID_CUE.finditer(text):
            cue = m.group("cue").lower().split()[0].rstrip(".'s")
            if cue == "id" and _VITAL_SIGN.fullmatch(m.group("value")):
                continue  # "ID: TMAX-99": the infectious-disease heading before a vital sign
            add(PhiSpan(m.start("value"), m.end("value"), P.ID_TYPES.get(cue, "ID")))
        for m in P.LONG_ID.finditer(text):
            if not DATE_RE.fullmatch(m.group(0)):
                add(PhiSpan(m.start(), m.end(), "ID"))
        for m in P.VIN.finditer(text):
            if any(c.isalpha() for c in m.group(0)):
                add(PhiSpan(m.start(), m.end(), "VEHICLE"))
        for m in P.STREET.finditer(text):
            add(PhiSpan(m.start(), m.end(), "ADDRESS"))
        if any(h in low for h in STREET_FOREIGN_HINTS):
            for m in P.STREET_FOREIGN.finditer(text):
                add(PhiSpan(m.start(), m.end(), "ADDRESS"))
        for rx in (P.UNIT, P.STREET_PREFIXED):
            for m in rx.finditer(text):
                add(PhiSpan(m.start(), m.end(), "ADDRESS"))
        lex = lexicon()
        for m in P.NUM_NAME_NUM.finditer(text):  # "6750 Koskikatu 25": the street word must not be vocabulary
            first = m.group(0).split()[1].lower()
            if len(first) >= 4 and first not in lex.common_words and first not in lex.clinical_words:
                add(PhiSpan(m.start(), m.end(), "ADDRESS"))
        if "box" in low:
            for m in P.MILITARY.finditer(text):
                add(PhiSpan(m.start(), m.end(), "ADDRESS"))
        if "box" in low:
            for m in P.PO_BOX.finditer(text):
                add(PhiSpan(m.start(), m.end(), "ADDRESS"))
        for m in P.ZIP.finditer(text):
            before = text[max(0, m.start() - 30) : m.start()]
            if text[m.start()] == "0" or _ZIP_BEFORE.search(before):
                add(PhiSpan(m.start(), m.end(), "ZIP"))
        if "liv" in low or "resid" in low or "address" in low:
            for m in P.LIVES_AT.finditer(text):
                add(PhiSpan(m.start("value"), m.end("value"), "ADDRESS"))
        if "," in text:
            for m in P.CITY_STATE_ZIP.finditer(text):
                if m.group("state").lower() in lexicon().state_abbrs:
                    add(PhiSpan(m.start("city"), m.end("city"), "CITY"))
                    add(PhiSpan(m.start("state"), m.end("state"), "STATE"))
                    add(PhiSpan(m.start("zip"), m.end("zip"), "ZIP"))
        for m in DATES.finditer(text):
            if is_plausible(m, text):
                add(PhiSpan(m.start(), m.end(), "DATE"))
    if any(w in low for w in INSURER_WORDS):
        for m in P.INSURERS.finditer(text):
            add(PhiSpan(m.start(), m.end(), "ORGANIZATION"))
    if any(w in low for w in ("insur", "payer", "carrier", "employ", "works")):
        for m in P.ORG_CUE.finditer(text):
            add(PhiSpan(m.start("value"), m.end("value"), "ORGANIZATION"))
    if "st" in low or "saint" in low:  # "St Elizabeth's", "ST ELIZABETHS", "Saint Vincents"
        for m in P.SAINT_PLACE.finditer(text):
            base = m.group("name").lower()
            if base in lexicon().first_names and base not in VERY_COMMON:
                add(PhiSpan(m.start(), m.end(), "HOSPITAL"))
    for name in KNOWN_HOSPITALS:
        if name in low:
            for m in _word_re(name).finditer(low):
                add(PhiSpan(m.start(), m.end(), "HOSPITAL"))
    return out


# a word and a number of up to three digits ("TMAX-99", "T-101"): a vital sign, no identifier
_VITAL_SIGN = re.compile(r"[A-Za-z]{1,6}-?\d{1,3}(?:\.\d)?")
# a blood gas "7.38-33-169" (pH, pCO2, pO2...), not a phone number
_BLOOD_GAS = re.compile(r"[67]\.\d{1,2}[ /-]")
_ZIP_BEFORE = re.compile(r"(?:\b[A-Z]{2}|zip(?:\s*code)?:?|,)\s*$", re.IGNORECASE)


@lru_cache(maxsize=256)
def _word_re(phrase: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)")
