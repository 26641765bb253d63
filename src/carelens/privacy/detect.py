# ruff: noqa: E501
"""Find PHI in text: rules, dictionaries, context cues, the patient's known identifiers and
a learned sequence model (a CRF, ``crf``), combined with recall first.

``detect_phi(text, context)`` returns non-overlapping ``PhiSpan`` s sorted by position, with
offsets into ``text``. The rule and dictionary layers are the CRF's hints; what the CRF flags is
kept, plus identifiers with a shape (phones, e-mails, ids, full dates...), names right after a
title, what the context cues after the CRF find (``cues``: an unknown word after "dr" or a relative,
before a credential or "aware", month/year dates) and the patient's own identifiers; model ``a/b``
dates that are ratios and one-word clinical spans are dropped. Overlapping proposals are merged (the
most specific type wins).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from carelens.privacy import patterns as P
from carelens.privacy.context import PatientContext
from carelens.privacy.crf import CrfModel, crf_model, crf_tokens, token_hints
from carelens.privacy.cues import cue_spans, not_dates
from carelens.privacy.dates import DATE_RE, DATES, is_plausible
from carelens.privacy.known_in_text import known_spans
from carelens.privacy.lexicon import CLINICAL_WORDS, EPONYMS, Lexicon, lexicon
from carelens.privacy.stopwords import STOP_WORDS
from carelens.privacy.tokens import PhiSpan, Tok, tokenize

# The order decides which type wins when spans of two types overlap.
TYPE_PRIORITY = [
    "EMAIL", "URL", "IP", "SSN", "PHONE", "FAX", "MRN", "ACCOUNT", "HEALTHPLAN", "LICENSE", "DEVICE", "VEHICLE",
    "DATE", "AGE", "ADDRESS", "ZIP", "HOSPITAL", "ORGANIZATION", "CITY", "STATE", "NAME", "ID", "LOCATION",
]  # fmt: skip
_RANK = {t: i for i, t in enumerate(TYPE_PRIORITY)}
# rule types kept as they are next to the CRF (identifiers with a shape)
SHAPED = frozenset(
    {
        "EMAIL",
        "URL",
        "IP",
        "SSN",
        "PHONE",
        "FAX",
        "MRN",
        "ACCOUNT",
        "HEALTHPLAN",
        "LICENSE",
        "DEVICE",
        "VEHICLE",
        "ZIP",
        "AGE",
        "ID",
    }
)

TITLES = {"dr", "doctor", "mr", "mrs", "ms", "miss", "mx", "prof", "professor", "sr", "jr", "rev", "sir", "dame"}
RELATION_CUES = {
    "wife", "husband", "son", "daughter", "mother", "father", "mom", "dad", "sister", "brother", "friend", "niece",
    "nephew", "aunt", "uncle", "grandson", "granddaughter", "grandmother", "grandfather", "neighbor", "neighbour",
    "partner", "fiance", "fiancee", "boyfriend", "girlfriend", "spouse", "sibling", "cousin", "guardian", "hcp",
    "proxy", "by", "with", "per", "to", "from", "attending", "rn", "np", "nurse", "md", "pcp", "resident", "fellow",
    "pt", "patient", "name", "named", "called", "cc", "signed", "dictated", "contact", "paged", "notified", "informed",
    "surgeon", "physician", "provider", "doctor", "dr", "intern", "therapist", "ot", "pt's", "pts", "mrs", "mr", "ms",
}  # fmt: skip
RIGHT_CUES = {"is", "was", "presents", "presented", "reports", "reported", "denies", "states", "stated", "complains",
              "arrived", "returns", "returned", "notes", "endorses", "c/o", "says", "said", "called", "agreed", "comes",
              "came", "remains", "feels", "felt", "has", "had", "continues", "tolerated", "underwent"}  # fmt: skip
WEAK_CUES = {"by", "with", "per", "to", "from", "pt", "pts", "pt's", "patient", "name", "named", "called", "cc",
             "contact", "paged", "notified", "informed", "signed", "dictated"}  # fmt: skip
CREDENTIALS = {"md", "rn", "np", "pa", "do", "phd", "lpn", "cnm", "crna", "dds", "pharmd", "msw", "lcsw", "bsn", "aprn"}
HOSPITAL_HEADS = {
    "hospital", "hosp", "clinic", "clinics", "center", "centre", "ctr", "infirmary", "hospice", "institute",
    "healthcare", "medical", "memorial", "rehab", "rehabilitation", "pharmacy", "associates", "home", "health",
    "sanatorium", "nursing", "practice", "group", "university", "college", "school", "laboratories", "labs",
    "general", "regional", "community", "children's", "childrens",
}  # fmt: skip
HOSPITAL_ENDS = {"hospital", "hosp", "clinic", "clinics", "center", "centre", "ctr", "infirmary", "hospice",
                 "institute", "healthcare", "home", "sanatorium", "practice", "group", "associates", "pharmacy", "mc"}  # fmt: skip
KNOWN_HOSPITALS = [
    "beth israel", "beth israel deaconess", "bidmc", "brigham", "brigham and women's", "bwh", "mass general",
    "massachusetts general", "mgh", "dana farber", "dana-farber", "lahey", "tufts", "mount auburn", "mt auburn",
    "spaulding", "newton-wellesley", "newton wellesley", "faulkner", "boston medical", "bmc", "st elizabeth's",
    "st. elizabeth's", "caritas", "carney", "youville", "hebrew rehab", "mayo clinic", "cleveland clinic",
    "johns hopkins", "mount sinai", "mt sinai", "cedars-sinai", "cedars sinai",
]  # fmt: skip
_VERY_COMMON = frozenset(STOP_WORDS) | frozenset(CLINICAL_WORDS) | {
    "no", "not", "yes", "on", "in", "at", "of", "and", "or", "for", "the", "a", "an", "is", "was", "are", "be",
    "has", "had", "have", "this", "that", "with", "as", "by", "to", "from", "up", "down", "out", "over", "off",
    "january", "february", "march", "april", "june", "july", "august", "september", "october", "november",
    "december", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "sun", "mon",
}  # fmt: skip


def detect_phi(
    text: str, context: PatientContext | None = None, model: bool = True, crf: CrfModel | None = None
) -> list[PhiSpan]:
    """Every PHI span in ``text`` (merged, sorted, offsets into ``text``).

    With the learned layer (``crf``, else the shipped model unless ``model`` is false) the rule and
    dictionary layers are the CRF's hints and only identifiers with a shape (``SHAPED``) are kept
    from the rules directly; without it, every layer's proposal is kept (recall first).
    """
    if not text.strip():
        return []
    rules = _rule_spans(text)
    tokens = tokenize(text)
    layers = rules + _token_spans(text, tokens, lexicon(), case_mode(text))
    spans = known_spans(text, tokens, context) if context is not None else []
    clf = crf if crf is not None else (crf_model() if model else None)
    if clf is None:
        spans += layers
    else:
        ctoks = crf_tokens(text)
        spans += [
            s
            for s in rules
            if s.type in SHAPED
            or (s.type == "DATE" and _FULL_DATE.search(text, s.start, s.end) and text[s.end : s.end + 1] != "%")
        ]  # "10/5/40%" is a ventilator setting
        spans += _titled(text, layers, clf.vocabulary)
        spans += _last_first(tokens, text)
        spans += not_dates(text, _drop_words(text, clf.spans(text, ctoks, token_hints(ctoks, layers))))
        spans += cue_spans(text, ctoks, clf.vocabulary)
    spans += _propagate_names(tokens, spans)
    return merge_spans(spans, text)


# a date with day, month and year ("1951-07-23", "07/23/1951", "July 23, 1951"): kept as the rule found it
_FULL_DATE = re.compile(r"\d{1,4}\W\d{1,2}\W\d{2,4}|[A-Za-z]{3,9}\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4}")
_TITLE_BEFORE = re.compile(r"\b(?:dr|doctor|mr|mrs|ms|miss|prof)\.?\s*$", re.IGNORECASE)


def _titled(text: str, layers: list[PhiSpan], vocabulary: frozenset[str]) -> list[PhiSpan]:
    """Dictionary names right after a title ("Dr. May Chen", "MRS. OKAFOR"), and the names that follow
    those unless they are words of the CRF's vocabulary ("DR. OKAFOR AWARE")."""
    out: list[PhiSpan] = []
    for s in sorted(x for x in layers if x.type == "NAME"):
        after_kept = (
            bool(out) and text[out[-1].end : s.start] == " " and text[s.start : s.end].lower() not in vocabulary
        )
        if after_kept or _TITLE_BEFORE.search(text, max(0, s.start - 10), s.start):
            out.append(s)
    return out


def _drop_words(text: str, spans: list[PhiSpan]) -> list[PhiSpan]:
    """Model spans that are not PHI after all: one clinical eponym ("Foley", "Cooley's") unless a title
    precedes it, and an age of 89 or less ("67 yo", "45 year old")."""
    out = []
    for s in spans:
        word = text[s.start : s.end].lower()
        if (word in EPONYMS or (word in CLINICAL_WORDS and not lexicon().is_name(word))) and not _TITLE_BEFORE.search(
            text, max(0, s.start - 10), s.start
        ):
            continue
        if word.isdigit() and int(word) <= 89 and _AGE_AFTER.match(text, s.end):
            continue
        out.append(s)
    return out


_AGE_AFTER = re.compile(r"\s*-?\s*(?:yo\b|y/o|y\.o\.|yr|year|years)", re.IGNORECASE)


def _last_first(tokens: list[Tok], text: str) -> list[PhiSpan]:
    """ "QUIXLEY, GLORIA" / "Quixley, Gloria": a capitalised word that is no ordinary or clinical word,
    a comma, and a first name, on one line."""
    lex = lexicon()
    out = []
    for i in range(len(tokens) - 2):
        a, comma, b = tokens[i], tokens[i + 1], tokens[i + 2]
        if comma.text != "," or not (a.alpha and b.alpha) or not (a.text[0].isupper() and b.text[0].isupper()):
            continue
        if text[a.end : comma.start] or text[comma.end : b.start] != " ":
            continue
        if b.low not in lex.first_names or b.low in _VERY_COMMON:
            continue
        if len(a.low) < 3 or a.low in lex.common_words or a.low in _VERY_COMMON:
            continue
        out.append(PhiSpan(a.start, b.end, "NAME", "dict"))
    return out


def layer_spans(text: str) -> list[PhiSpan]:
    """What the rule and dictionary layers propose (unmerged): the CRF's hints."""
    tokens = tokenize(text)
    return _rule_spans(text) + _token_spans(text, tokens, lexicon(), case_mode(text))


def _propagate_names(tokens: list[Tok], spans: list[PhiSpan]) -> list[PhiSpan]:
    """A word found as a name once is a name everywhere in the same text (unless it is an English word
    that is no known name: "care", "bronch")."""
    starts = {s.start: s for s in spans if s.type == "NAME"}
    lex = lexicon()
    names = set()
    for tok in tokens:
        span = starts.get(tok.start)
        if span is None or not tok.alpha or len(tok.low) < 3 or tok.low in _VERY_COMMON:
            continue
        if tok.low not in lex.common_words or lex.is_name(tok.low) or tok.low in lex.census_last:
            names.add(tok.low)
    covered = {s.start for s in spans}
    return [PhiSpan(t.start, t.end, "NAME", "propagated") for t in tokens
            if t.alpha and t.low in names and t.start not in covered]  # fmt: skip


def merge_spans(spans: Iterable[PhiSpan], text: str) -> list[PhiSpan]:
    """Union overlapping spans (and name parts separated only by spaces); the most specific type wins."""
    ordered = sorted(spans, key=lambda s: (s.start, -s.end))
    merged: list[PhiSpan] = []
    for span in ordered:
        if span.end <= span.start:
            continue
        if merged:
            last = merged[-1]
            gap = text[last.end : span.start]
            name_like = {last.type, span.type} <= {"NAME", "CITY", "STATE", "LOCATION"} and "NAME" in {
                last.type,
                span.type,
            }
            joinable = (last.type == span.type == "NAME" and not gap.strip(" ,")) or (name_like and gap == " ")
            joinable = joinable and "\n" not in text[last.end : span.start] and span.start - last.end <= 2
            if span.start < last.end or joinable:
                kind = last.type if _RANK.get(last.type, 99) <= _RANK.get(span.type, 99) else span.type
                if name_like and span.start >= last.end:
                    kind = "NAME"
                if (
                    span.start < last.end
                    and span.type != last.type
                    and (last.end - last.start) < (span.end - span.start)
                ):
                    kind = span.type if _RANK.get(span.type, 99) < 16 or _RANK.get(last.type, 99) >= 16 else kind
                merged[-1] = PhiSpan(last.start, max(last.end, span.end), kind, last.source)
                continue
        merged.append(span)
    return merged


def case_mode(text: str) -> str:
    """``upper``, ``lower`` or ``mixed``: whether letter case tells names from words in ``text``."""
    head = text[:4000].encode("latin-1", "replace")  # the letter ranges below are all Latin-1
    upper = len(head.translate(None, _NOT_UPPER))
    lower = len(head.translate(None, _NOT_LOWER))
    if upper + lower == 0:
        return "mixed"
    share = upper / (upper + lower)
    if share > 0.6:
        return "upper"
    if share < 0.01:
        return "lower"
    return "mixed"


_UPPER_BYTES = {*range(0x41, 0x5B), *range(0xC0, 0xDF)}  # A-Z, À-Þ
_LOWER_BYTES = {*range(0x61, 0x7B), *range(0xDF, 0x100)}  # a-z, ß-ÿ
_NOT_UPPER = bytes(b for b in range(256) if b not in _UPPER_BYTES)
_NOT_LOWER = bytes(b for b in range(256) if b not in _LOWER_BYTES)


_DIGIT_AGE = re.compile(r"(?<!\d)(?:9\d|1[0-2]\d)(?!\d)")
_INSURER_WORDS = ("medicare", "medicaid", "aetna", "cigna", "humana", "anthem", "tricare", "kaiser", "united",
                  "blue", "bcbs", "harvard", "tufts", "masshealth", "molina", "centene", "wellcare", "oscar")  # fmt: skip
_STREET_FOREIGN_HINTS = ("strasse", "straße", "weg ", "gasse", "platz", "katu", "tie ", "vej", "gatan", "vägen", "utca")


def _rule_spans(text: str) -> list[PhiSpan]:
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
        for m in P.PHONE_EXT.finditer(text):
            add(PhiSpan(m.start(), m.end(), "PHONE"))
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
        for m in P.ID_CUE.finditer(text):
            cue = m.group("cue").lower().split()[0].rstrip(".'s")
            add(PhiSpan(m.start("value"), m.end("value"), P.ID_TYPES.get(cue, "ID")))
        for m in P.LONG_ID.finditer(text):
            if not DATE_RE.fullmatch(m.group(0)):
                add(PhiSpan(m.start(), m.end(), "ID"))
        for m in P.VIN.finditer(text):
            if any(c.isalpha() for c in m.group(0)):
                add(PhiSpan(m.start(), m.end(), "VEHICLE"))
        for m in P.STREET.finditer(text):
            add(PhiSpan(m.start(), m.end(), "ADDRESS"))
        if any(h in low for h in _STREET_FOREIGN_HINTS):
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
    if any(w in low for w in _INSURER_WORDS):
        for m in P.INSURERS.finditer(text):
            add(PhiSpan(m.start(), m.end(), "ORGANIZATION"))
    if any(w in low for w in ("insur", "payer", "carrier", "employ", "works")):
        for m in P.ORG_CUE.finditer(text):
            add(PhiSpan(m.start("value"), m.end("value"), "ORGANIZATION"))
    if "st" in low or "saint" in low:  # "St Elizabeth's", "ST ELIZABETHS", "Saint Vincents"
        for m in P.SAINT_PLACE.finditer(text):
            base = m.group("name").lower()
            if base in lexicon().first_names and base not in _VERY_COMMON:
                add(PhiSpan(m.start(), m.end(), "HOSPITAL"))
    for name in KNOWN_HOSPITALS:
        if name in low:
            for m in _word_re(name).finditer(low):
                add(PhiSpan(m.start(), m.end(), "HOSPITAL"))
    return out


# a blood gas "7.38-33-169" (pH, pCO2, pO2...), not a phone number
_BLOOD_GAS = re.compile(r"[67]\.\d{1,2}[ /-]")
_ZIP_BEFORE = re.compile(r"(?:\b[A-Z]{2}|zip(?:\s*code)?:?|,)\s*$", re.IGNORECASE)
CITY_PREFIXES = {"north", "east", "west", "south", "new", "lake", "port", "fort", "mount", "saint", "st"}
CITY_SUFFIXES = ("town", "ton", "land", "ville", "berg", "burgh", "borough", "bury", "view", "port", "mouth", "stad",
                 "furt", "chester", "fort", "haven", "side", "shire")  # fmt: skip


@lru_cache(maxsize=256)
def _word_re(phrase: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)")


def _is_cap(tok: Tok) -> bool:
    return tok.text[0].isupper()


def _titled_name(tokens: list[Tok], k: int, title: int, text: str, lex: Lexicon, mode: str) -> bool:
    """A name that is also a common word ("Joy", "May", "Will") right after a title ("Dr. Joy
    Green", "DR. MURPHY", "Mrs. May"): capitalised in mixed-case text or not a stop word, else followed
    by a name word in the same line."""
    t = tokens[k]
    if tokens[title].low not in TITLES or not lex.is_name(t.low) or (mode == "mixed" and not _is_cap(t)):
        return False
    if (mode == "mixed" and not t.text.isupper()) or t.low not in STOP_WORDS:
        return True
    nxt = tokens[k + 1] if k + 1 < len(tokens) else None  # "DR. MAY CHEN" but not "DR. WILL SEE PT"
    return (nxt is not None and nxt.alpha and "\n" not in text[t.end : nxt.start] and lex.is_name(nxt.low)
            and nxt.low not in _VERY_COMMON)  # fmt: skip


def _sentence_start(tokens: list[Tok], i: int, text: str) -> bool:
    if i == 0:
        return True
    prev = tokens[i - 1]
    return prev.text in ".!?:;-*#•" or "\n" in text[prev.end : tokens[i].start]


def _token_spans(text: str, tokens: list[Tok], lex: Lexicon, mode: str) -> list[PhiSpan]:
    """Names, places and organisations from dictionaries, cues and capitalisation."""
    n = len(tokens)
    strength = [0] * n  # 3 strong name, 2 medium, 1 weak, 0 none
    is_name = [False] * n
    caps_informative = mode == "mixed"
    for i, tok in enumerate(tokens):
        if not tok.alpha or len(tok.low) < 2:
            continue
        w = tok.low
        if lex.is_name(w):
            if w in _VERY_COMMON or w in lex.clinical_words or len(w) <= 2:
                strength[i] = 1
            elif mode == "mixed" and tok.text.isupper() and len(w) <= 4:
                strength[i] = 1  # an acronym in mixed-case text
            elif w in lex.common_words or len(w) == 3:
                strength[i] = 2
            else:
                strength[i] = 3
    out: list[PhiSpan] = []
    # 1. dictionary names
    for i, tok in enumerate(tokens):
        s = strength[i]
        if s == 3:
            if caps_informative and not _is_cap(tok) and tok.low in lex.common_words:
                continue
            is_name[i] = True
        elif (
            s == 2
            and caps_informative
            and _is_cap(tok)
            and not tok.text.isupper()
            and not _sentence_start(tokens, i, text)
        ):
            is_name[i] = True
    # 2. cues: titles and relations; credentials after a name
    for i, tok in enumerate(tokens):
        if not tok.alpha:
            continue
        w = tok.low
        j = i + 1
        if j < n and tokens[j].text in ".:-":
            j += 1
        title_like = w in TITLES or (
            w in ("name", "patient", "pt", "signed", "by") and i + 1 < n and tokens[i + 1].text == ":"
        )
        if title_like and j < n and tokens[j].alpha:
            for k in range(j, min(j + 3, n)):
                t = tokens[k]
                if (
                    not t.alpha
                    or (t.low in _VERY_COMMON and strength[k] < 2 and not _titled_name(tokens, k, i, text, lex, mode))
                    or "\n" in text[tokens[k - 1].end : t.start]
                ):
                    break
                if caps_informative and not _is_cap(t) and strength[k] == 0:
                    break
                is_name[k] = True
                if k + 1 < n and tokens[k + 1].text == ".":  # initial "J."
                    continue
        elif w in RELATION_CUES and j < n and tokens[j].alpha:
            t = tokens[j]
            plausible = strength[j] >= 1 and t.low not in _VERY_COMMON
            if w in WEAK_CUES and t.low in lex.common_words and not lex.is_name(t.low):
                plausible = False
            elif w in WEAK_CUES and not caps_informative:
                plausible = strength[j] == 3 or (strength[j] == 2 and t.low in lex.first_names)
            if caps_informative:
                plausible = plausible or (_is_cap(t) and t.low not in lex.common_words and t.low not in _VERY_COMMON)
                plausible = plausible and (_is_cap(t) or strength[j] == 3)
            if plausible:
                is_name[j] = True
        if w in CREDENTIALS and i >= 1:
            k = i - 1
            if tokens[k].text == ",":
                k -= 1
            for m in range(k, max(k - 3, -1), -1):
                t = tokens[m]
                if not t.alpha or t.low in _VERY_COMMON or "\n" in text[t.end : tokens[m + 1].start]:
                    break
                if caps_informative and not _is_cap(t):
                    break
                if strength[m] == 0 and (t.low in lex.common_words or not caps_informative):
                    break
                is_name[m] = True
    # pairs of name words ("LYONS, WILLIAM", "Andrew Wise") and "<First name> is a ..."
    for i in range(n - 1):
        a = tokens[i]
        if not a.alpha or strength[i] < 2:
            continue
        k = i + 1
        if tokens[k].text == "," and k + 1 < n:
            k += 1
        middle = None
        if k + 2 < n and len(tokens[k].text) == 1 and tokens[k].text.isupper() and tokens[k + 1].text == ".":
            middle, k = k, k + 2
        b = tokens[k]
        gap = text[a.end : b.start]
        close = b.alpha and strength[k] >= 2 and "\n" not in gap and len(gap) <= (2 if middle is None else 5)
        if close and (not caps_informative or (_is_cap(a) and _is_cap(b))):
            is_name[i] = is_name[k] = True
            if middle is not None:
                is_name[middle] = True
        if tokens[k].low in RIGHT_CUES and a.low in lex.first_names and (not caps_informative or _is_cap(a)):
            is_name[i] = True
    # proper-noun pairs in mixed-case text: "Caitlin Lennox", "Wisława Szczepańska"
    if caps_informative:
        for i in range(n - 1):
            a, b = tokens[i], tokens[i + 1]
            if not (a.alpha and b.alpha and _is_cap(a) and _is_cap(b)) or text[a.end : b.start] != " ":
                continue
            if a.text.isupper() or b.text.isupper() or a.low in _VERY_COMMON or b.low in _VERY_COMMON:
                continue
            unknown_a = strength[i] == 0 and a.low not in lex.common_words and len(a.low) >= 3
            unknown_b = strength[i + 1] == 0 and b.low not in lex.common_words and len(b.low) >= 3
            first_a = a.low in lex.first_names and strength[i] >= 2
            if unknown_b and (unknown_a or first_a):
                is_name[i] = is_name[i + 1] = True
        for i in range(n - 1):  # "Enrico shouted ...": a first name opening a sentence before a lower-case word
            a, b = tokens[i], tokens[i + 1]
            if (strength[i] >= 2 and a.low in lex.first_names and _is_cap(a) and not a.text.isupper()
                    and b.alpha and b.text.islower() and _sentence_start(tokens, i, text)
                    and (b.low in RIGHT_CUES or b.low.endswith(("ed", "es", "s")))):  # fmt: skip
                is_name[i] = True
    # 3. spread: a name-ish neighbour of a found name is part of it ("John MAY", "Smith, Anne")
    changed = True
    while changed:
        changed = False
        for i in range(n):
            if not is_name[i]:
                continue
            for j in (i - 1, i + 1, i - 2, i + 2):
                if not 0 <= j < n or is_name[j] or not tokens[j].alpha:
                    continue
                between = text[min(tokens[i].end, tokens[j].end) : max(tokens[i].start, tokens[j].start)]
                if (abs(i - j) == 2 and between.strip() not in (",", ".")) or "\n" in between:
                    continue
                t = tokens[j]
                initial = len(t.text) == 1 and t.text.isupper() and j + 1 < n and tokens[j + 1].text == "."
                unknown = strength[j] == 0 and len(t.low) >= 3 and t.low not in lex.common_words
                ok = strength[j] >= 2 or initial or unknown or (strength[j] == 1 and caps_informative and _is_cap(t))
                if caps_informative and not _is_cap(t):
                    ok = False
                if (ok and t.low not in _VERY_COMMON) or initial:
                    is_name[j] = True
                    changed = True
    for i, tok in enumerate(tokens):
        if is_name[i]:
            end = tok.end
            if len(tok.text) == 1 and i + 1 < n and tokens[i + 1].text == ".":
                end = tokens[i + 1].end
            out.append(PhiSpan(tok.start, end, "NAME", "dict"))
    # 4. places: cities (1-3 words), states (countries are not PHI); Faker-style towns
    multi_first = lex.place_first_words
    for i in range(n):
        tok = tokens[i]
        if not tok.alpha:
            continue
        w = tok.low
        if w in multi_first:
            for size in (3, 2):
                if i + size > n:
                    continue
                group = tokens[i : i + size]
                phrase = text[group[0].start : group[-1].end].lower()
                if phrase in lex.cities or phrase in lex.states:
                    kind = "STATE" if phrase in lex.states else "CITY"
                    out.append(PhiSpan(group[0].start, group[-1].end, kind, "dict"))
                    break
        place = (w in lex.cities or w in lex.states) and len(w) >= 4 and w not in _VERY_COMMON
        if place and (w not in lex.common_words or (caps_informative and _is_cap(tok))):
            out.append(PhiSpan(tok.start, tok.end, "STATE" if w in lex.states else "CITY", "dict"))
        if w.endswith(CITY_SUFFIXES) and (not caps_informative or _is_cap(tok)) and w not in lex.common_words:
            stem = next((w[: -len(x)] for x in CITY_SUFFIXES if w.endswith(x) and lex.is_name(w[: -len(x)])), None)
            if stem and len(stem) >= 3 and stem not in _VERY_COMMON:
                first = i - 1 if i >= 1 and tokens[i - 1].low in CITY_PREFIXES else i
                out.append(PhiSpan(tokens[first].start, tok.end, "CITY", "dict"))
        if w in CITY_PREFIXES and i + 1 < n and tokens[i + 1].alpha and tokens[i + 1].low in lex.first_names:
            nxt = tokens[i + 1]
            if (not caps_informative or (_is_cap(tok) and _is_cap(nxt))) and nxt.low not in _VERY_COMMON:
                out.append(PhiSpan(tok.start, nxt.end, "CITY", "dict"))
    for i, tok in enumerate(tokens):  # "Boston, MA" / "MA 02115"
        if tok.alpha and len(tok.text) == 2 and tok.low in lex.state_abbrs and tok.text.isupper():
            prev_comma = i >= 1 and tokens[i - 1].text == "," and tok.low not in CREDENTIALS
            next_zip = i + 1 < n and re.fullmatch(r"\d{5}", tokens[i + 1].text) is not None
            if prev_comma or next_zip:
                out.append(PhiSpan(tok.start, tok.end, "STATE", "dict"))
    # 5. organisations: "<Name words> Hospital|Clinic|Medical Center", "Hospital of <Name>"
    for i, tok in enumerate(tokens):
        if not tok.alpha or tok.low not in HOSPITAL_ENDS:
            continue
        if caps_informative and not _is_cap(tok):
            continue
        k = i - 1
        first = i
        while k >= 0 and i - k <= 5:
            t = tokens[k]
            if t.text in ".'&-" and k > 0:
                k -= 1
                continue
            if not t.alpha or "\n" in text[t.end : tokens[k + 1].start]:
                break
            if t.low in _VERY_COMMON and t.low not in HOSPITAL_HEADS and t.low not in ("st", "saint", "mt", "mount"):
                break
            if caps_informative and not _is_cap(t):
                break
            first = k
            k -= 1
        specific = any(tokens[m].alpha and tokens[m].low not in HOSPITAL_HEADS for m in range(first, i))
        if specific:
            end = tok.end
            if (
                i + 2 < n
                and tokens[i + 1].low == "of"
                and tokens[i + 2].alpha
                and (not caps_informative or _is_cap(tokens[i + 2]))
            ):
                end = tokens[i + 2].end
            out.append(PhiSpan(tokens[first].start, end, "HOSPITAL", "dict"))
    return out
