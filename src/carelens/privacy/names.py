"""The dictionary layer of the text de-identifier: names, places and organisations found from word
lists, cue words (titles, relatives, credentials) and capitalisation. Its spans are the CRF's hints
(without the CRF, they are kept as they are). The cue words are data (``data/deid_words.json``).
"""

from __future__ import annotations

import re
from importlib import resources

import orjson

from carelens.privacy.lexicon import CLINICAL_WORDS, Lexicon
from carelens.privacy.stopwords import STOP_WORDS
from carelens.privacy.tokens import PhiSpan, Tok

_WORDS: dict[str, list[str]] = orjson.loads(
    resources.files("carelens.privacy").joinpath("data", "deid_words.json").read_bytes()
)
TITLES = frozenset(_WORDS["titles"])
RELATION_CUES = frozenset(_WORDS["relation_cues"])
RIGHT_CUES = frozenset(_WORDS["right_cues"])
WEAK_CUES = frozenset(_WORDS["weak_cues"])
CREDENTIALS = frozenset(_WORDS["credentials"])
HOSPITAL_HEADS = frozenset(_WORDS["hospital_heads"])
HOSPITAL_ENDS = frozenset(_WORDS["hospital_ends"])
CITY_PREFIXES = frozenset(_WORDS["city_prefixes"])
CITY_SUFFIXES = tuple(_WORDS["city_suffixes"])
KNOWN_HOSPITALS = tuple(_WORDS["known_hospitals"])
INSURER_WORDS = tuple(_WORDS["insurer_words"])
STREET_FOREIGN_HINTS = tuple(_WORDS["street_foreign_hints"])
# words that are never a name on their own: stop words, clinical words, months and days
VERY_COMMON = frozenset(STOP_WORDS) | CLINICAL_WORDS | frozenset(_WORDS["very_common"])


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
            and nxt.low not in VERY_COMMON)  # fmt: skip


def _sentence_start(tokens: list[Tok], i: int, text: str) -> bool:
    if i == 0:
        return True
    prev = tokens[i - 1]
    return prev.text in ".!?:;-*#•" or "\n" in text[prev.end : tokens[i].start]


def name_spans(text: str, tokens: list[Tok], lex: Lexicon, mode: str) -> list[PhiSpan]:
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
            if w in VERY_COMMON or w in lex.clinical_words or len(w) <= 2:
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
                    or (t.low in VERY_COMMON and strength[k] < 2 and not _titled_name(tokens, k, i, text, lex, mode))
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
            plausible = strength[j] >= 1 and t.low not in VERY_COMMON
            if w in WEAK_CUES and t.low in lex.common_words and not lex.is_name(t.low):
                plausible = False
            elif w in WEAK_CUES and not caps_informative:
                plausible = strength[j] == 3 or (strength[j] == 2 and t.low in lex.first_names)
            if caps_informative:
                plausible = plausible or (_is_cap(t) and t.low not in lex.common_words and t.low not in VERY_COMMON)
                plausible = plausible and (_is_cap(t) or strength[j] == 3)
            if plausible:
                is_name[j] = True
        if w in CREDENTIALS and i >= 1:
            k = i - 1
            if tokens[k].text == ",":
                k -= 1
            for m in range(k, max(k - 3, -1), -1):
                t = tokens[m]
                if not t.alpha or t.low in VERY_COMMON or "\n" in text[t.end : tokens[m + 1].start]:
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
            if a.text.isupper() or b.text.isupper() or a.low in VERY_COMMON or b.low in VERY_COMMON:
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
                if (ok and t.low not in VERY_COMMON) or initial:
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
        place = (w in lex.cities or w in lex.states) and len(w) >= 4 and w not in VERY_COMMON
        if place and (w not in lex.common_words or (caps_informative and _is_cap(tok))):
            out.append(PhiSpan(tok.start, tok.end, "STATE" if w in lex.states else "CITY", "dict"))
        if w.endswith(CITY_SUFFIXES) and (not caps_informative or _is_cap(tok)) and w not in lex.common_words:
            stem = next((w[: -len(x)] for x in CITY_SUFFIXES if w.endswith(x) and lex.is_name(w[: -len(x)])), None)
            if stem and len(stem) >= 3 and stem not in VERY_COMMON:
                first = i - 1 if i >= 1 and tokens[i - 1].low in CITY_PREFIXES else i
                out.append(PhiSpan(tokens[first].start, tok.end, "CITY", "dict"))
        if w in CITY_PREFIXES and i + 1 < n and tokens[i + 1].alpha and tokens[i + 1].low in lex.first_names:
            nxt = tokens[i + 1]
            if (not caps_informative or (_is_cap(tok) and _is_cap(nxt))) and nxt.low not in VERY_COMMON:
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
            if t.low in VERY_COMMON and t.low not in HOSPITAL_HEADS and t.low not in ("st", "saint", "mt", "mount"):
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
